"""Exact Dirichlet data on any domain: ``u = g_ext(x) + phi(x) N(x)``.

``phi`` is an approximate distance function (ADF) of the Dirichlet parts of the boundary, built
as in Sukumar & Srivastava, "Exact imposition of boundary conditions with distance functions in
physics-informed deep neural networks" (CMAME 389, 2022):

* each piece gets a normalised first-order ADF ``phi_i`` (zero on the piece, gradient of norm 1
  there, positive in the domain): a straight segment ``[p, q]`` (polygon edge, side of a 2-D box)
  the signed distance to its line where that line does not cut the domain, else the trimmed form ``sqrt(f^2 + ((sqrt(t^2 + f^4) - t) / 2)^2)`` with ``f`` the signed distance
  to the line and ``t = ((L/2)^2 - |x - x_c|^2) / L`` the trimming disk; a circle or sphere
  ``(r^2 - |x - c|^2) / (2 r)`` (sign chosen so it is positive in the domain: a hole gets the
  other sign); a face of a box in d >= 3 (or an end of an interval) the distance to its plane;
* at a re-entrant polygon vertex (interior angle ``omega > pi``) whose two edges carry the same
  written data, the two trimmed segments are replaced by the harmonic corner function
  ``r^(pi/omega) sin(pi theta/omega)`` (:class:`Corner`), which behaves like the solution there;
* the pieces are joined by R-equivalence (m = 1): ``phi = 1 / sum_i (1/phi_i)``, written as
  ``prod_i phi_i / sum_j prod_{k != j} phi_k`` so that it is finite and smooth where one piece
  vanishes; ``phi`` vanishes (to 1e-100) on the Dirichlet parts only, is positive inside, and is scaled so
  that its largest value on sample points of the domain is 1.

The data are extended inside by transfinite interpolation over the parts with different data,
``g_ext = sum_j w_j g_j`` with ``w_j = (1/psi_j) / sum_l (1/psi_l)`` (``psi_j`` the ADF of the parts
of data ``g_j``; ``w_j = 1`` on those parts), each ``g_j`` the expression written in the file, or
the single written ``g`` as is where all Dirichlet parts share it. Data derived from ``u`` are used
on the Dirichlet parts only (:class:`TraceExtension`): the Coons interpolation of the face values
on a box; where every Dirichlet part is a circle and one's centre lies in the domain, the harmonic
extension (:class:`LaurentExtension`, a Laurent series fitted on the circles); a radial extension
on a ball (or a circle's Fourier series where it is blended with other parts); else ``u`` at each
part's closest point, blended by the same weights. The weights and the R-equivalence are finite where several pieces vanish.

Everything is pure torch (no in-place updates, no ``.item()``), so the transform works under
``torch.func.vmap`` / ``jacrev``; ``x`` may be ``(n, d)`` or a single point ``(d,)``.
A plane or sphere that cuts through the domain, or a piece only partly on the boundary (a side
swallowed by another CSG operand), has no such ADF here: :func:`dirichlet_pieces` raises
:class:`DistanceError` with a one-line reason.

The formulas live here; each shape of :mod:`hrta_pde.poisson.geometry` hands out the ones of its
parts (``shape.distance_function(k)``, ``shape.bubble()``). :func:`hard_dirichlet` builds the
transform of a problem, :func:`hard_bc_obstacle` says why it cannot (or None).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from hrta_pde.engd import field_derivatives
from hrta_pde.poisson.expressions import expressions_agree

__all__ = ["DistanceError", "HardDirichlet", "dirichlet_pieces", "hard_bc_applicable", "hard_bc_obstacle",
           "hard_dirichlet", "r_equivalence"]


class DistanceError(ValueError):
    """No approximate distance function for these Dirichlet parts; the message says why, and
    ``reason`` is the :func:`hard_bc_obstacle` that refused it (None for other failures)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


def _t(v, x):
    return torch.as_tensor(v, dtype=x.dtype, device=x.device)


# sqrt(max(s, _TINY)): the ADF of a segment behaves like |distance| at the segment, whose autograd
# derivative there would be 0/0; clamped, phi is 1e-100 on the segment (not 0 to 1e-12 accuracy
# but far below it) and its derivatives are finite everywhere (exact away from the segment).
_TINY = 1e-200


def _sqrt(s):
    return torch.sqrt(torch.clamp(s, min=_TINY if s.dtype == torch.float64 else torch.finfo(s.dtype).tiny))


class Segment:
    def __init__(self, p, q):
        self.p, self.q = np.asarray(p, float), np.asarray(q, float)
        self.L = float(np.linalg.norm(self.q - self.p))

    def __call__(self, x):
        p, q, L = _t(self.p, x), _t(self.q, x), self.L
        d = q - p
        rel = x - p
        f = (rel[..., 0] * d[1] - rel[..., 1] * d[0]) / L
        xc = (p + q) / 2
        t = ((L / 2) ** 2 - ((x - xc) ** 2).sum(dim=-1)) / L
        varphi = _sqrt(t**2 + f**4)
        return _sqrt(f**2 + ((varphi - t) / 2) ** 2)

    def project(self, x):
        """The closest point of the segment (the line's foot point, clamped to ``[p, q]``)."""
        p, d = _t(self.p, x), _t(self.q - self.p, x)
        t = torch.clamp(((x - p) * d).sum(dim=-1, keepdim=True) / self.L**2, 0.0, 1.0)
        return p + t * d


class Line:
    """Signed distance to the line through a segment (used where the line stays outside the
    domain: smoother and cheaper than the trimmed segment, no singular derivatives at its ends)."""

    def __init__(self, p, q, sign=1.0):
        self.p, self.q, self.sign = np.asarray(p, float), np.asarray(q, float), float(sign)
        self.L = float(np.linalg.norm(self.q - self.p))

    def __call__(self, x):
        p, d = _t(self.p, x), _t(self.q - self.p, x)
        rel = x - p
        return self.sign * (rel[..., 0] * d[1] - rel[..., 1] * d[0]) / self.L

    def project(self, x):
        """The foot point on the line (affine in ``x``)."""
        p, d = _t(self.p, x), _t(self.q - self.p, x)
        return p + ((x - p) * d).sum(dim=-1, keepdim=True) / self.L**2 * d


class Corner:
    """``r^(pi/omega) sin(pi theta / omega)`` at a re-entrant vertex ``v`` of interior angle
    ``omega > pi``: ``r = |x - v|``, ``theta`` the angle from the first edge's ray, through the
    domain, to the second's. It vanishes on both edges (on their whole rays), is positive in the
    sector between them and harmonic, so, unlike the two trimmed segments it replaces, its
    Laplacian is bounded (0) at the vertex; its gradient grows like ``r^(pi/omega - 1)``, as that
    of the solution does there (``-Laplace u = f`` with ``u = 0`` on both edges behaves like this
    function near the vertex)."""

    def __init__(self, vertex, start, omega):
        self.v, self.omega = np.asarray(vertex, float), float(omega)
        e = np.asarray(start, float) / np.linalg.norm(start)
        half = self.omega / 2  # the angle is measured from the interior bisector, so that its
        self.b = np.array([e[0] * math.cos(half) - e[1] * math.sin(half),  # branch cut lies in
                           e[0] * math.sin(half) + e[1] * math.cos(half)])  # the exterior wedge

    def __call__(self, x):
        rel = x - _t(self.v, x)
        b = _t(self.b, x)
        c = rel[..., 0] * b[0] + rel[..., 1] * b[1]
        s = b[0] * rel[..., 1] - b[1] * rel[..., 0]
        theta = self.omega / 2 + torch.atan2(s, c)
        r = _sqrt((rel**2).sum(dim=-1))
        k = math.pi / self.omega
        return r**k * torch.sin(k * theta)


def _vanishes_elsewhere(piece, problem, own) -> bool:
    """Whether ``piece`` vanishes on a Neumann or Robin part (a line or ray along that part)."""
    shape = problem.shape
    for j, cd in enumerate(problem.conditions):
        if j in own or cd is None or cd.kind == "dirichlet" or (problem.parts.present and not problem.parts.present[j]):
            continue
        xp = torch.as_tensor(shape.part_points(j, 64), dtype=torch.float64)
        if bool((piece(xp).abs() < 1e-9).any()):
            return True
    return False


def _reentrant_corners(shape, pieces, problem, x) -> dict:
    """``{part: Corner}`` for the re-entrant vertices of a polygon whose two edges are Dirichlet
    parts with the same written data and trimmed segments here (the L-shape's inner corner)."""
    if type(shape).__name__ != "Polygon":
        return {}
    v = shape.user_vertices
    nv = len(v)
    area2 = float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
    out = {}
    for i in range(nv):
        before, after = (i - 1) % nv, i  # edge i-1 ends at vertex i, edge i starts there
        if not all(isinstance(pieces.get(k), Segment) for k in (before, after)):
            continue
        cd = problem.conditions[before]
        if cd is not problem.conditions[after] or _traced(cd):
            continue
        to_prev, to_next = v[before] - v[i], v[(i + 1) % nv] - v[i]
        start, end = (to_next, to_prev) if area2 > 0 else (to_prev, to_next)  # the domain is CCW from start
        omega = math.atan2(start[0] * end[1] - start[1] * end[0], start @ end) % (2 * math.pi)
        if omega <= math.pi + 1e-9:
            continue
        corner = Corner(v[i], start, omega)
        if not bool((corner(x) > 0).all()) or _vanishes_elsewhere(corner, problem, (before, after)):
            continue  # a ray that comes back into the domain, or runs along another part
        out[before] = out[after] = corner
    return out


class Sphere:
    def __init__(self, center, radius, sign):
        self.c, self.r, self.sign = np.asarray(center, float), float(radius), float(sign)

    def __call__(self, x):
        return self.sign * (self.r**2 - ((x - _t(self.c, x)) ** 2).sum(dim=-1)) / (2 * self.r)

    def project(self, x):
        """The radial projection ``c + r (x - c) / |x - c|`` (singular at the centre only)."""
        c = _t(self.c, x)
        return c + self.r * (x - c) / _sqrt(((x - c) ** 2).sum(dim=-1, keepdim=True))


class Plane:
    def __init__(self, axis, value, sign):
        self.axis, self.value, self.sign = int(axis), float(value), float(sign)

    def __call__(self, x):
        return self.sign * (x[..., self.axis] - self.value)

    def project(self, x):
        """``x`` with coordinate ``axis`` set to ``value``."""
        e = torch.zeros(x.shape[-1], dtype=x.dtype, device=x.device)
        e = e + (torch.arange(x.shape[-1], device=x.device) == self.axis).to(x.dtype)
        return x + (self.value - x[..., self.axis:self.axis + 1]) * e


class BoxBubble:
    """``prod_i (x_i - lo_i)(hi_i - x_i) / ((hi_i - lo_i)/2)^2``: zero on the box's boundary, 1 at its
    centre."""

    kind = "box"

    def __init__(self, lo, hi):
        self.lo, self.hi = np.array(lo, dtype=float), np.array(hi, dtype=float)

    def __call__(self, x):
        a, b = _t(self.lo, x), _t(self.hi, x)
        return torch.prod((x - a) * (b - x) / ((b - a) / 2) ** 2, dim=-1)


class BallBubble:
    """``1 - |x - c|^2 / r^2``: zero on the sphere, 1 at the centre."""

    kind = "ball"

    def __init__(self, center, radius):
        self.c, self.r = np.array(center, dtype=float), float(radius)

    def __call__(self, x):
        return 1.0 - ((x - _t(self.c, x)) ** 2).sum(dim=-1) / self.r**2


def r_equivalence(phis: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(prod_i phi_i / S, [prod_{k != j} phi_k / S for j])`` with ``S = sum_j prod_{k != j}
    phi_k``: the R-equivalence ``1 / sum 1/phi_i`` and the transfinite weights (sum to 1).

    Where two or more ``phi_i`` vanish (a corner between pieces) ``S = 0``: there the
    equivalence is 0 and the weights are shared by the vanishing pieces, not 0/0."""
    k = len(phis)
    if k == 1:
        return phis[0], [torch.ones_like(phis[0])]
    prefix = [torch.ones_like(phis[0])]
    for p in phis[:-1]:
        prefix.append(prefix[-1] * p)
    suffix = [torch.ones_like(phis[0])]
    for p in reversed(phis[1:]):
        suffix.append(suffix[-1] * p)
    suffix = suffix[::-1]
    others = [prefix[j] * suffix[j] for j in range(k)]
    total = others[0]
    for o in others[1:]:
        total = total + o
    corner = total == 0
    safe = torch.where(corner, torch.ones_like(total), total)
    zeros = [(p == 0).to(p.dtype) for p in phis]
    count = zeros[0]
    for z in zeros[1:]:
        count = count + z
    count = torch.clamp(count, min=1.0)
    weights = [torch.where(corner, z / count, o / safe) for z, o in zip(zeros, others)]
    return prefix[-1] * phis[-1] / safe, weights


def dirichlet_pieces(problem, n_check: int = 4096):
    """``(phis, x_check)``: the ADF of every Dirichlet part (oriented, checked), by part index.

    Raises :class:`DistanceError` if a Dirichlet part is only partly on the boundary or its plane
    or sphere cuts through the domain.
    """
    shape, parts = problem.shape, problem.parts
    ks = [k for k, cd in enumerate(problem.conditions)
          if cd is not None and cd.kind == "dirichlet" and (not parts.present or parts.present[k])]
    if not ks:
        raise DistanceError(f"problem {problem.name!r} has no Dirichlet part")
    x = problem.sample_interior(n_check, generator=torch.Generator().manual_seed(0), sampler="sobol",
                                dtype=torch.float64, device="cpu")
    phis = {}
    for k in ks:
        name = parts.names[k]
        xp = shape.part_points(k, 64)
        if not np.all(shape.classify(xp) == 0):
            raise DistanceError(f"the Dirichlet part {name!r} is only partly on the boundary of the "
                                "domain (another operand covers some of it)")
        phi = shape.distance_function(k)
        if isinstance(phi, Segment):  # the plain line where it does not cut the domain
            line = Line(phi.p, phi.q)
            lv = line(x)
            if bool((lv < 0).all()):
                line.sign, lv = -1.0, -lv
            if bool((lv > 0).all()) and not _vanishes_elsewhere(line, problem, (k,)):
                phi = line
        v = phi(x)
        if isinstance(phi, (Sphere, Plane)) and bool((v < 0).all()):
            phi.sign = -phi.sign
            v = -v
        if not bool((v > 0).all()):
            what = "sphere" if isinstance(phi, Sphere) and problem.dim > 2 else (
                "circle" if isinstance(phi, Sphere) else "plane")
            raise DistanceError(f"the {what} of the Dirichlet part {name!r} cuts through the domain, "
                                "so its distance function would vanish inside")
        phis[k] = phi
    return phis, x


class HardDirichlet:
    """``u = g_ext(x) + phi(x) N(x)``: Dirichlet data imposed exactly.

    ``phi(x)`` (..., ) vanishes on the Dirichlet parts and is positive inside; ``g_ext(x)`` equals
    the Dirichlet data on the Dirichlet parts. Calling ``transform(x, out)`` with the network's
    output ``out`` (n, 1) gives ``g_ext(x)[:, None] + phi(x)[:, None] * out`` (for
    ``net.apply_output_transform``). ``kind`` is ``"box"``, ``"ball"`` (the product formulas of
    earlier versions, kept for pure Dirichlet problems on those) or ``"adf"``. ``smooth``: none of
    the pieces that measured badly with the strong form: no trimmed segment (an edge whose line cuts
    the domain: its distance's second derivatives are unbounded at its ends), no :class:`Corner`
    (its gradient is unbounded at the vertex), no data from ``u`` blended between pieces that meet
    at corners or mixing a disk's radial extension with other parts. (The R-equivalence of two
    lines at a corner has a Laplacian like ``1/r`` too; with it PINN measured better than with the
    penalty, on the square with holes and the mixed square, so it counts as smooth.)
    ``smooth_but_corners``: smooth if the :class:`Corner` pieces are left aside, which suits a network
    with the singular inputs of :mod:`hrta_pde.poisson.singular` (``u / phi`` is smooth in them).
    """

    def __init__(self, phi_fn, groups, kind, scale=1.0, smooth=True, smooth_but_corners=None):
        self._phi_fn, self._groups, self.kind, self.scale = phi_fn, groups, kind, float(scale)
        self.smooth = bool(smooth)
        self.smooth_but_corners = self.smooth if smooth_but_corners is None else bool(smooth_but_corners)
        self.corner_vertices: list = []  # the vertices where phi is a Corner piece
        self._frozen: list = []  # [(x, (g, grad g, hess g), (phi, grad phi, hess phi))], newest last

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return self._phi_fn(x) * self.scale if self.scale != 1.0 else self._phi_fn(x)

    def g_ext(self, x: torch.Tensor) -> torch.Tensor:
        if len(self._groups) == 1:
            return _eval_g(self._groups[0][1], x)
        psis = [_req([p(x) for p in pieces]) for pieces, _ in self._groups]
        _, weights = r_equivalence(psis)
        out = weights[0] * _eval_g(self._groups[0][1], x)
        for w, (_, g) in zip(weights[1:], self._groups[1:]):
            out = out + w * _eval_g(g, x)
        return out

    def __call__(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        frozen = self.frozen(x)
        if frozen is None:
            return self.g_ext(x)[..., None] + self.phi(x)[..., None] * out
        (_, g), (_, p) = frozen
        return g[:, None] + p[:, None] * out

    def frozen(self, x: torch.Tensor):
        """``((g, G), (phi, P))`` at the points ``x`` from a cache, or None.

        ``g_ext`` and ``phi`` do not change during training, and the losses differentiate them at
        the same training points at every evaluation (a box's extension from ``u`` has up to 80 terms,
        a polygon's distance function one per edge). Where ``x`` (n, d) asks for derivatives (grad
        mode, ``x.requires_grad``), their values, gradients and Hessians at these points are computed
        once and kept (the :data:`FROZEN_SETS` sets used last); ``G``, ``P`` are then the values with
        those derivatives attached for autograd, exact to second order (what every loss here uses).
        ``(G, P)`` are None where nothing is cached (under ``torch.func`` transforms, in no-grad
        mode, or with ``x`` not a plain (n, d) tensor)."""
        if not (torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.dim() == 2 and x.requires_grad):
            return None
        if torch._C._functorch.is_functorch_wrapped_tensor(x) or torch._C._functorch.peek_interpreter_stack() is not None:
            return None  # under a torch.func transform (over the parameters too): no custom Function
        g, p = self.derivatives(x.detach())
        return ((g, _Frozen.apply(x, *g)), (p, _Frozen.apply(x, *p)))

    def derivatives(self, x: torch.Tensor):
        """``((g, grad g, Hessian g), (phi, grad phi, Hessian phi))`` at the points ``x`` (n, d),
        computed once per point set (the :data:`FROZEN_SETS` sets used last are kept): the losses'
        autograd (:meth:`frozen`) and the engd Jacobian share them."""
        for i, entry in enumerate(self._frozen):
            if entry[0].shape == x.shape and entry[0].dtype == x.dtype and entry[0].device == x.device \
                    and torch.equal(entry[0], x):
                self._frozen.append(self._frozen.pop(i))  # least recently used goes first
                return entry[1], entry[2]
        hit = (x.detach().clone(), field_derivatives(self.g_ext, x), field_derivatives(self.phi, x))
        self._frozen = (self._frozen + [hit])[-FROZEN_SETS:]
        return hit[1], hit[2]


#: How many point sets :meth:`HardDirichlet.frozen` keeps (interior, boundary, test points, ...).
FROZEN_SETS = 48  # training, check and test points, interior and boundary, and up to 32 interfaces


class _Frozen(torch.autograd.Function):
    """A field given at fixed points by its value, gradient and Hessian there: autograd sees the
    gradient, and (through :class:`_FrozenGrad`) the Hessian as its derivative."""

    @staticmethod
    def forward(ctx, x, value, grad, hess):
        ctx.save_for_backward(x, grad, hess)
        return value.clone()

    @staticmethod
    def backward(ctx, out):
        x, grad, hess = ctx.saved_tensors
        return out[:, None] * _FrozenGrad.apply(x, grad, hess), None, None, None


class _FrozenGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grad, hess):
        ctx.save_for_backward(hess)
        return grad.clone()

    @staticmethod
    def backward(ctx, out):
        (hess,) = ctx.saved_tensors
        return (out[:, :, None] * hess).sum(dim=1), None, None


def _req(values):
    return r_equivalence(values)[0]


def _eval_g(g, x):
    if x.dim() == 1:
        return g(x[None])[0]
    return g(x)


#: At most this many evaluations of ``g`` per point for the box's transfinite (Coons) extension,
#: ``prod_i (1 + n_i) - 1`` with ``n_i`` the Dirichlet faces of axis ``i`` (80: a 4-D box).
COONS_MAX_TERMS = 80


class TraceExtension:
    """Dirichlet data known on the boundary only (derived from ``u``), extended inside from there.

    ``u`` is evaluated only on the Dirichlet parts and on their lines, planes and circles (a closest
    point may lie beyond a straight part, on its line, which does not enter the domain), never
    inside, so the extension never hands the network the solution. Three forms:

    * ``"coons"``: on a box, the Boolean sum of the axes' interpolations (Gordon's transfinite, or
      Coons, interpolation), ``g_ext = (1 - prod_i (1 - P_i)) g`` with ``P_i g`` the linear
      interpolation in ``x_i`` between the values on the two faces of axis ``i`` (or the value on
      its one Dirichlet face). It equals ``g`` on every Dirichlet face and is as smooth as ``g``;
    * ``"ball"``: on a disk or ball, ``rho^4 g(c + r (x - c)/|x - c|) + (1 - rho^4) mean(g)`` with
      ``rho = |x - c| / r``: ``g`` on the sphere, twice differentiable at the centre;
    * ``"piece"``: one part, ``g`` at the closest point of the piece (its line, plane or circle; a
      trimmed segment clamps to its ends), blended between parts by the transfinite weights.
    """

    def __init__(self, g, form, *, terms=None, piece=None, center=None, radius=None, mean=0.0):
        self.g, self.form, self.terms, self.piece = g, form, terms, piece
        self.center, self.radius, self.mean = center, radius, float(mean)

    def __call__(self, x):
        if self.form == "piece":
            if isinstance(self.piece, Segment):
                return self._segment(x)
            return self.g(self.piece.project(x))
        if self.form == "ball":
            c = _t(self.center, x)
            rho4 = (((x - c) ** 2).sum(dim=-1) / self.radius**2) ** 2
            on_sphere = self.g(c + self.radius * (x - c) / _sqrt(((x - c) ** 2).sum(dim=-1, keepdim=True)))
            return rho4 * on_sphere + (1.0 - rho4) * self.mean
        out = None
        cols = [x[..., j] for j in range(x.shape[-1])]
        for sign, fixes in self.terms:
            y, weight = list(cols), None
            for axis, value, factor in fixes:
                y[axis] = torch.full_like(cols[axis], value)
                if factor is not None:
                    lo, hi, upper = factor
                    t = (cols[axis] - lo) / (hi - lo)
                    w = t if upper else 1.0 - t
                    weight = w if weight is None else weight * w
            v = self.g(torch.stack(y, dim=-1))
            v = sign * (v if weight is None else weight * v)
            out = v if out is None else out + v
        return out

    def _segment(self, x):
        """``g`` at the closest point of a trimmed segment: the foot point inside, the end's value
        (a constant) beyond it. ``g`` is evaluated at the segment's midpoint for the points beyond, so
        that a ``u`` singular at an end (the L-shape's re-entrant corner) leaves no NaN in the
        derivatives."""
        seg = self.piece
        p, d = _t(seg.p, x), _t(seg.q - seg.p, x)
        t = ((x - p) * d).sum(dim=-1, keepdim=True) / seg.L**2
        inside = (t > 0) & (t < 1)
        safe = torch.where(inside, t, torch.full_like(t, 0.5))
        ends = self.g(torch.stack([p, p + d]))
        v = self.g(p + safe * d)
        return torch.where(inside[..., 0], v, torch.where(t[..., 0] <= 0, ends[0], ends[1]))


#: Samples of a circle's data for the Fourier series of the harmonic extension.
HARMONIC_SAMPLES = 1024

#: At most this many terms of the series (data that need more are not resolved by it).
HARMONIC_MODES = 256

#: The series resolves the data where it matches them, between the samples, to this fraction of
#: their largest value (then the extension is a polynomial to round-off).
HARMONIC_TOL = 1e-12


def _harmonic_extension(g, center, radius):
    """The harmonic extension of data ``g`` on one circle, form ``"harmonic"`` (None where ``g`` is
    not finite there): their Fourier series ``H(x) = Re sum_k d_k z^k``, ``z = (x - c) / r`` as a
    complex number (the one-circle :class:`LaurentExtension`: a polynomial in ``x``, smooth at the
    centre too), plus ``rho^4 (g - H)`` at the radial projection, which makes it equal ``g`` on the
    circle to round-off whatever the data; where the series resolves the data (``resolved``: that
    correction is below :data:`HARMONIC_TOL` of the data everywhere) it is as smooth as ``H``."""
    m = HARMONIC_SAMPLES
    c = np.asarray(center, float)

    def on_circle(theta):
        pts = c + radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        with torch.no_grad():
            return g(torch.as_tensor(pts, dtype=torch.float64)).detach().cpu().numpy().astype(float)

    theta = 2 * np.pi * np.arange(m) / m
    v = on_circle(theta)
    if not np.all(np.isfinite(v)):
        return None
    spectrum = np.fft.rfft(v) / m
    d = spectrum[: m // 2] * np.where(np.arange(m // 2) == 0, 1.0, 2.0)
    scale = max(float(np.abs(v).max()), 1e-300)
    big = np.nonzero(np.abs(d) > 1e-15 * scale)[0]
    d = d[: min(HARMONIC_MODES, int(big[-1]) + 1 if big.size else 1)]  # the correction takes the rest
    coefficients = np.stack([d.real, d.imag], axis=1)
    # H(x) = Re sum d_k z^k takes the values sum_k |d_k| (Re, Im) cos/sin on the circle: compare
    # it with the data between the samples
    mid = theta + np.pi / m
    w = on_circle(mid)
    k = np.arange(len(d))
    h = (np.exp(1j * np.outer(mid, k)) @ d).real
    resolved = bool(np.all(np.isfinite(w))) and float(np.abs(w - h).max()) <= HARMONIC_TOL * scale
    fit = LaurentExtension([(c, float(radius), True)], [coefficients], resolved)

    def residual(y):
        return g(y) - fit(y)

    return _Corrected(fit, TraceExtension(residual, "ball", center=c, radius=float(radius)), form="harmonic")


def _horner(d, wr, wi, lowest):
    """``sum_{k >= lowest} d_k w^(k - lowest)`` as (Re, Im) for complex ``d`` (rows Re, Im) and ``w``."""
    sr, si = d[-1, 0] + 0 * wr, d[-1, 1] + 0 * wr
    for k in range(d.shape[0] - 2, lowest - 1, -1):
        sr, si = sr * wr - si * wi + d[k, 0], sr * wi + si * wr + d[k, 1]
    return sr, si


class LaurentExtension:
    """The harmonic extension of data ``g`` given on circles ``|x - c_j| = r_j`` in 2-D (data from
    ``u``), fitted by least squares on the circles: with ``z`` the point as a complex number,

        H(x) = Re [ sum_{k>=0} a_jk ((z - c_j) / r_j)^k ]                        (circles around the domain)
             + sum_j [ b_j log(|z - c_j| / r_j) + Re sum_{k>=1} e_jk (r_j / (z - c_j))^k ]   (holes)

    a truncated Laurent series, harmonic and smooth in the domain (each term's singularity lies
    outside it). ``resolved``: ``H`` matches ``g`` between the fitting points to :data:`HARMONIC_TOL`
    of the data; the transform then uses ``H + sum_j w_j R_j`` with ``R_j`` the residual ``g - H``
    extended from circle ``j`` (:class:`TraceExtension`), which equals ``g`` on every circle and is
    as smooth as ``H`` where the residual is round-off."""

    form = "laurent"

    def __init__(self, circles, coefficients, resolved):
        self.circles = circles  # [(center, radius, outer)]
        self.coefficients = coefficients  # per circle: (K+1, 2) Re/Im of a_k, or of (b, e_1..e_K)
        self.resolved = bool(resolved)

    def __call__(self, x):
        out = None
        for (c, r, outer), d in zip(self.circles, self.coefficients):
            cc, dd = _t(c, x), _t(d, x)
            zr, zi = x[..., 0] - cc[0], x[..., 1] - cc[1]
            if outer:
                term = _horner(dd, zr / r, zi / r, 0)[0]
            else:
                q = zr * zr + zi * zi
                wr, wi = r * zr / q, -r * zi / q  # r / (z - c)
                sr, si = _horner(dd, wr, wi, 1)
                term = (sr * wr - si * wi) + dd[0, 0] * 0.5 * torch.log(q / r**2)
            out = term if out is None else out + term
        return out

    @staticmethod
    def columns(points: np.ndarray, circles, modes: int) -> np.ndarray:
        """The basis at ``points`` (m, 2), circle by circle: outer ``1, Re w^k, Im w^k``; hole
        ``log, Re v^k, Im v^k`` (``k = 1..modes``)."""
        cols = []
        z = points[:, 0] + 1j * points[:, 1]
        for c, r, outer in circles:
            w = (z - complex(*c)) / r
            if outer:
                cols.append(np.ones(len(z)))
                powers = w[:, None] ** np.arange(1, modes + 1)
            else:
                cols.append(np.log(np.abs(w)))
                powers = (1.0 / w)[:, None] ** np.arange(1, modes + 1)
            cols += [powers.real, powers.imag]
        return np.column_stack([np.atleast_2d(c).reshape(len(z), -1) for c in cols])


#: Terms per circle tried for :class:`LaurentExtension` (the first that resolves the data is kept).
LAURENT_MODES = (16, 32, 64)

#: At most this many circles get the Laurent fit (a least-squares problem of 256 rows and 129
#: columns per circle); more keep the radial traces, and PINN the penalty there.
LAURENT_MAX_CIRCLES = 8


def _laurent_extension(g, circles) -> LaurentExtension | None:
    """Fit :class:`LaurentExtension` to ``g`` on ``circles`` [(center, radius, outer)], or None if
    ``g`` is not finite there."""
    m = max(4 * LAURENT_MODES[-1], 64)
    theta = 2 * np.pi * np.arange(m) / m

    def ring(shift):
        return np.concatenate([np.asarray(c) + r * np.stack([np.cos(theta + shift), np.sin(theta + shift)], 1)
                               for c, r, _ in circles])

    def values(pts):
        with torch.no_grad():
            return g(torch.as_tensor(pts, dtype=torch.float64)).detach().cpu().numpy().astype(float)

    pts, mid = ring(0.0), ring(np.pi / m)
    v, w = values(pts), values(mid)
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(w))):
        return None
    scale = max(float(np.abs(v).max()), 1e-300)
    best = None
    for modes in LAURENT_MODES:
        sol = np.linalg.lstsq(LaurentExtension.columns(pts, circles, modes), v, rcond=None)[0]
        err = float(np.abs(LaurentExtension.columns(mid, circles, modes) @ sol - w).max())
        if best is None or err < best[0]:
            best = (err, modes, sol)
        if err <= HARMONIC_TOL * scale:
            break
    err, modes, sol = best
    coefficients, k = [], 0
    for _ in circles:  # per circle: constant (or log) then Re and Im of the K powers
        first, re, im = sol[k], sol[k + 1:k + 1 + modes], sol[k + 1 + modes:k + 1 + 2 * modes]
        k += 1 + 2 * modes
        # Re(w^k) a + Im(w^k) b = Re((a - i b) w^k)
        coefficients.append(np.column_stack([np.concatenate([[first], re]), np.concatenate([[0.0], -im])]))
    return LaurentExtension(circles, coefficients, err <= HARMONIC_TOL * scale)


class _Corrected:
    """``H(x) + R(x)``: a harmonic fit ``H`` of all the circles' data plus one circle's residual
    ``g - H`` extended from that circle (see :class:`LaurentExtension`); ``form`` ``"laurent"``, or
    ``"harmonic"`` for the series of one circle (:func:`_harmonic_extension`)."""

    def __init__(self, fit: LaurentExtension, residual: TraceExtension, form: str = "laurent"):
        self.fit, self.residual = fit, residual
        self.form, self.resolved = form, fit.resolved

    def __call__(self, x):
        return self.fit(x) + self.residual(x)

    def series(self, x):
        """The harmonic fit ``H`` alone."""
        return self.fit(x)


def _laurent_groups(problem, d_conds, pieces, shape) -> list | None:
    """The groups of :func:`_build` with the Laurent fit where every Dirichlet part is a circle of
    a 2-D domain with data from ``u``, the centre of one of them lies in the domain (there its
    radial projection is singular) and the fit resolves the data (else None)."""
    if problem.dim != 2 or not d_conds or not all(_traced(cd) for cd, _ in d_conds.values()):
        return None
    ks = [k for _, kk in d_conds.values() for k in kk]
    if not ks or not all(isinstance(pieces[k], Sphere) for k in ks):
        return None
    if not any(int(shape.classify(pieces[k].c[None])[0]) <= 0 for k in ks):
        return None  # every radial projection is smooth in the domain: the plain closest-point traces
    if len(ks) > LAURENT_MAX_CIRCLES:
        return None  # the fit's cost grows like the cube of the circles: the radial traces instead
    g = next(iter(d_conds.values()))[0].g_torch
    circles = [(pieces[k].c, pieces[k].r, pieces[k].sign > 0) for k in ks]
    fit = _laurent_extension(g, circles)
    if fit is None or not fit.resolved:
        return None

    def residual(y, fit=fit):
        return g(y) - fit(y)

    return [([pieces[k]], _Corrected(fit, _piece_trace(residual, pieces[k], k, shape, harmonic=False))) for k in ks]


def _piece_trace(g, piece, k, shape, harmonic=True):
    """The extension of ``g`` from one part, for a circle or sphere whose centre is in the domain
    (the radial projection is singular there): the harmonic extension on a circle, the radial
    blend to the mean on a sphere; else ``g`` at the closest point."""
    if isinstance(piece, Sphere) and int(shape.classify(piece.c[None])[0]) <= 0:
        if len(piece.c) == 2 and harmonic:
            series = _harmonic_extension(g, piece.c, piece.r)
            if series is not None:
                return series
        on = torch.as_tensor(shape.part_points(k, 256), dtype=torch.float64)
        return TraceExtension(g, "ball", center=piece.c, radius=piece.r, mean=float(g(on).mean()))
    return TraceExtension(g, "piece", piece=piece)


def _distinct(pieces) -> list:
    """The pieces in order, each once (a :class:`Corner` stands for both edges of its vertex)."""
    return list({id(p): p for p in pieces}.values())


def _coons_terms(lo, hi, faces) -> list:
    """``[(sign, [(axis, value, factor)])]``: the terms of the Boolean sum over the axes with
    Dirichlet faces (``faces[i]``: the Dirichlet sides of axis ``i``, 0 = lo, 1 = hi); ``factor``
    ``(lo, hi, upper)`` for the linear weight, None where the axis has one face."""
    axes = [i for i in range(len(lo)) if faces[i]]
    terms = []
    for size in range(1, len(axes) + 1):
        for subset in itertools.combinations(axes, size):
            for choice in itertools.product(*[faces[i] for i in subset]):
                fixes = []
                for axis, side in zip(subset, choice):
                    value = float(hi[axis] if side else lo[axis])
                    factor = (float(lo[axis]), float(hi[axis]), bool(side)) if len(faces[axis]) == 2 else None
                    fixes.append((axis, value, factor))
                terms.append((1.0 if size % 2 else -1.0, fixes))
    return terms


def _dirichlet_conditions(problem) -> dict:
    """``{id(cd): (cd, [part indices])}`` of the Dirichlet conditions on the boundary."""
    out = {}
    for k, cd in enumerate(problem.conditions):
        if cd is not None and cd.kind == "dirichlet" and (not problem.parts.present or problem.parts.present[k]):
            out.setdefault(id(cd), (cd, []))[1].append(k)
    return out


def _traced(cd) -> bool:
    """Whether the Dirichlet data of ``cd`` are derived from ``u`` (not written in the file)."""
    return "g" not in cd.written


def _data_obstacle(problem) -> str | None:
    """The obstacles of :func:`hard_bc_obstacle` that need no transform built: no Dirichlet part,
    or a written ``g`` equal to ``u`` inside."""
    conds = [cd for cd, _ in _dirichlet_conditions(problem).values()]
    if not conds:
        return (f"hard_bc needs a Dirichlet part; {problem.name!r} is a {problem.boundary_kind} problem "
                "without one")
    inside = None
    for cd in conds:
        if not _traced(cd) and problem.u is not None:
            if inside is None:
                inside = problem.sample_interior(64, generator=torch.Generator().manual_seed(0),
                                                 sampler="random", dtype=torch.float64, device="cpu").numpy()
            if expressions_agree(cd.g, problem.u, problem.dim, points=inside):
                return (f"hard_bc: g of {problem.name!r} ({cd.where}) equals u inside the domain too, so the "
                        "extension would be the exact solution; omit g (it is then taken from u on the "
                        "boundary only) or write g so that it only matches u on the boundary")
    return None


def hard_bc_obstacle(problem) -> str | None:
    """Why :func:`hard_dirichlet` cannot apply to ``problem`` (None if it can)."""
    try:
        hard_dirichlet(problem)
    except DistanceError as exc:
        if exc.reason is None:
            raise
        return exc.reason
    return None


def hard_bc_applicable(problem) -> bool:
    """Whether :func:`hard_dirichlet` applies (see :func:`hard_bc_obstacle`)."""
    return hard_bc_obstacle(problem) is None


def _bubble_applies(problem, d_conds) -> bool:
    """Pure Dirichlet with one ``g`` (or data from ``u`` only) on a shape with a product formula
    (a box or a ball)."""
    one = len(d_conds) == 1 or all(_traced(cd) for cd, _ in d_conds.values())
    return (all(cd is not None and cd.kind == "dirichlet" for cd in problem.conditions) and one
            and problem.shape.bubble() is not None)


def hard_dirichlet(problem) -> HardDirichlet:
    """``u = g_ext(x) + phi(x) N(x)``: the problem's Dirichlet data imposed exactly.

    ``phi`` vanishes exactly on the Dirichlet parts and is positive inside, scaled to at most 1: for a
    pure Dirichlet problem with one ``g`` on a box ``prod_i (x_i - lo_i)(hi_i - x_i) / ((hi_i - lo_i)/2)^2``
    and on a ball ``1 - |x - c|^2 / r^2`` (the shape's :meth:`bubble`); elsewhere (polygons, disks with
    holes, CSG domains, Dirichlet data on some parts only) the R-function combination of the parts'
    distance functions (the shape's ``distance_function``). ``g_ext``: a ``g`` written in the problem
    file is evaluated inside the domain too, blended by transfinite interpolation where parts have
    different data; a ``g`` derived from ``u`` is taken on the Dirichlet parts only and extended
    from there (:class:`TraceExtension`). Refused with :class:`DistanceError` (the reason of
    :func:`hard_bc_obstacle`): problems without Dirichlet parts, a written ``g`` equal to ``u``
    inside (the extension would be the exact solution), parts without a distance function here, and
    data from ``u`` that are not finite where the extension evaluates them.
    """
    obstacle = _data_obstacle(problem)
    if obstacle is None:
        try:
            return _build(problem)
        except DistanceError as exc:
            obstacle = f"hard_bc: {exc}"
    raise DistanceError(obstacle + "; impose the Dirichlet data with the boundary penalty instead "
                        "(hard_bc off)", reason=obstacle)


def _build(problem) -> HardDirichlet:
    d_conds = _dirichlet_conditions(problem)
    shape = problem.shape
    traced = [cd for cd, _ in d_conds.values() if _traced(cd)]
    if _bubble_applies(problem, d_conds) and not traced:
        bubble = shape.bubble()
        return HardDirichlet(bubble, [(None, next(iter(d_conds.values()))[0].g_torch)], bubble.kind)
    pieces, x = dirichlet_pieces(problem)
    pieces.update(_reentrant_corners(shape, pieces, problem, x))
    if _bubble_applies(problem, d_conds):
        phi, kind, scale = shape.bubble(), shape.bubble().kind, 1.0
    else:
        order = _distinct(pieces[k] for k in sorted(pieces))

        def phi(x):
            return _req([p(x) for p in order])

        top = float(phi(x).max())
        scale = 1.0 / top if top > 0 and math.isfinite(top) else 1.0
        kind = "adf"
    smooth = not any(isinstance(p, (Segment, Corner)) for p in pieces.values())
    corners_only = not any(isinstance(p, Segment) for p in pieces.values())  # smooth but for Corner pieces
    g_u = traced[0].g_torch if traced else None
    lo, hi = getattr(shape, "lo", None), getattr(shape, "hi", None)
    box_faces = None
    if traced and len(traced) == len(d_conds) and type(shape).__name__ == "Box":
        box_faces = [[side for side in (0, 1) if 2 * i + side in pieces] for i in range(problem.dim)]
        if int(np.prod([1 + len(f) for f in box_faces])) - 1 > COONS_MAX_TERMS:
            box_faces = None
    if box_faces is not None:
        groups = [(None, TraceExtension(g_u, "coons", terms=_coons_terms(lo, hi, box_faces)))]
    else:
        groups = _laurent_groups(problem, d_conds, pieces, shape) or []
        for cd, ks in (d_conds.values() if not groups else ()):
            if _traced(cd):
                groups += [([pieces[k]], _piece_trace(cd.g_torch, pieces[k], k, shape)) for k in ks]
            else:
                groups.append((_distinct(pieces[k] for k in ks), cd.g_torch))
        if traced and len(groups) > 1 and any(not isinstance(p, Sphere) for p in pieces.values()):
            smooth = corners_only = False  # the transfinite weights are not twice differentiable where pieces meet
        if len(groups) > 1 and any(getattr(g, "form", None) in ("ball", "harmonic", "laurent")
                                   for _, g in groups):
            # measured, a disk with an off-centre hole (data from u), PINN: 5.8e-4 with the radial blend,
            # 9.1e-4 with the harmonic fit (u / phi is far from simple there; 1.5e-5 with 2 x 32),
            # against 4.5e-7 with the penalty
            smooth = corners_only = False
    out = HardDirichlet(phi, groups, kind, scale, smooth=smooth, smooth_but_corners=corners_only)
    out.corner_vertices = [p.v for p in pieces.values() if isinstance(p, Corner)]
    if traced:
        values = out.g_ext(x)
        if bool(torch.isfinite(values).all()):
            values = torch.cat([t.reshape(-1) for t in field_derivatives(out.g_ext, x[:256])])
        if not bool(torch.isfinite(values).all()):
            raise DistanceError(f"the Dirichlet data of {problem.name!r} derived from u are not finite where "
                                "they are extended into the domain (at the closest boundary points), or their "
                                "derivatives there are not; write "
                                "g in the problem file")
    return out
