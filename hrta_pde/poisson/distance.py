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
* the pieces are joined by R-equivalence (m = 1): ``phi = 1 / sum_i (1/phi_i)``, written as
  ``prod_i phi_i / sum_j prod_{k != j} phi_k`` so that it is finite and smooth where one piece
  vanishes; ``phi`` vanishes (to 1e-100) on the Dirichlet parts only, is positive inside, and is scaled so
  that its largest value on sample points of the domain is 1.

The data are extended inside by transfinite interpolation over the parts with different data,
``g_ext = sum_j w_j g_j`` with ``w_j = (1/psi_j) / sum_l (1/psi_l)`` (``psi_j`` the ADF of the parts
of data ``g_j``; ``w_j = 1`` on those parts), each ``g_j`` the expression written in the file, or
the single written ``g`` as is where all Dirichlet parts share it.

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

import math

import numpy as np
import torch

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
    return torch.sqrt(torch.clamp(s, min=_TINY))


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


class Sphere:
    def __init__(self, center, radius, sign):
        self.c, self.r, self.sign = np.asarray(center, float), float(radius), float(sign)

    def __call__(self, x):
        return self.sign * (self.r**2 - ((x - _t(self.c, x)) ** 2).sum(dim=-1)) / (2 * self.r)


class Plane:
    def __init__(self, axis, value, sign):
        self.axis, self.value, self.sign = int(axis), float(value), float(sign)

    def __call__(self, x):
        return self.sign * (x[..., self.axis] - self.value)


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
    phi_k``: the R-equivalence ``1 / sum 1/phi_i`` and the transfinite weights (sum to 1)."""
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
    return prefix[-1] * phis[-1] / total, [o / total for o in others]


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
            if bool((lv > 0).all()):
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
    earlier versions, kept for pure Dirichlet problems on those) or ``"adf"``. ``smooth``: no trimmed
    segment among the pieces (an edge whose line cuts the domain, as at the re-entrant corner of
    the L-shape): the second derivatives of a trimmed segment's distance are unbounded at its ends.
    """

    def __init__(self, phi_fn, groups, kind, scale=1.0, smooth=True):
        self._phi_fn, self._groups, self.kind, self.scale = phi_fn, groups, kind, float(scale)
        self.smooth = bool(smooth)

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
        return self.g_ext(x)[..., None] + self.phi(x)[..., None] * out


def _req(values):
    return r_equivalence(values)[0]


def _eval_g(g, x):
    if x.dim() == 1:
        return g(x[None])[0]
    return g(x)


def hard_bc_obstacle(problem) -> str | None:
    """Why :func:`hard_dirichlet` cannot apply to ``problem`` (None if it can)."""
    conds = [cd for k, cd in enumerate(problem.conditions) if cd is not None and cd.kind == "dirichlet"
             and (not problem.parts.present or problem.parts.present[k])]
    if not conds:
        return (f"hard_bc needs a Dirichlet part; {problem.name!r} is a {problem.boundary_kind} problem "
                "without one")
    inside = None
    for cd in {id(cd): cd for cd in conds}.values():
        if "g" not in cd.written:
            return (f"hard_bc needs the Dirichlet data g written in the problem file ({cd.where} g = ...): it "
                    f"is extended into the domain from that expression, and {problem.name!r} derives g from "
                    "u, which would hand the network the exact solution")
        if problem.u is not None:
            if inside is None:
                inside = problem.sample_interior(64, generator=torch.Generator().manual_seed(0),
                                                 sampler="random", dtype=torch.float64, device="cpu").numpy()
            if expressions_agree(cd.g, problem.u, problem.dim, points=inside):
                return (f"hard_bc: g of {problem.name!r} ({cd.where}) equals u inside the domain too, so the "
                        "extension would be the exact solution; write g so that it only matches u on the "
                        "boundary")
    if not _bubble_applies(problem):
        try:
            dirichlet_pieces(problem)
        except DistanceError as exc:
            return f"hard_bc: {exc}"
    return None


def hard_bc_applicable(problem) -> bool:
    """Whether :func:`hard_dirichlet` applies (see :func:`hard_bc_obstacle`)."""
    return hard_bc_obstacle(problem) is None


def _bubble_applies(problem) -> bool:
    """Pure Dirichlet with one ``g`` on a shape with a product formula (a box or a ball)."""
    conds = problem.conditions
    d_conds = {id(cd) for k, cd in enumerate(conds) if cd is not None and cd.kind == "dirichlet"
               and (not problem.parts.present or problem.parts.present[k])}
    return (all(cd is not None and cd.kind == "dirichlet" for cd in conds) and len(d_conds) == 1
            and problem.shape.bubble() is not None)


def hard_dirichlet(problem) -> HardDirichlet:
    """``u = g_ext(x) + phi(x) N(x)``: the problem's Dirichlet data imposed exactly.

    ``phi`` vanishes exactly on the Dirichlet parts and is positive inside, scaled to at most 1: for a
    pure Dirichlet problem with one ``g`` on a box ``prod_i (x_i - lo_i)(hi_i - x_i) / ((hi_i - lo_i)/2)^2``
    and on a ball ``1 - |x - c|^2 / r^2`` (the shape's :meth:`bubble`); elsewhere (polygons, disks with
    holes, CSG domains, Dirichlet data on some parts only) the R-function combination of the parts'
    distance functions (the shape's ``distance_function``). ``g_ext`` is the Dirichlet expression of the
    problem file evaluated inside the domain too, blended by transfinite interpolation where parts have
    different data. Refused with :class:`DistanceError` (the reason of :func:`hard_bc_obstacle`):
    problems without Dirichlet parts, a ``g`` derived from ``u`` or equal to ``u`` inside (the
    extension would be the exact solution), and parts without a distance function here.
    """
    obstacle = hard_bc_obstacle(problem)
    if obstacle is not None:
        raise DistanceError(obstacle + "; impose the Dirichlet data with the boundary penalty instead "
                            "(hard_bc off)", reason=obstacle)
    conds = problem.conditions
    d_conds = {}
    for k, cd in enumerate(conds):
        if cd is not None and cd.kind == "dirichlet" and (not problem.parts.present
                                                          or problem.parts.present[k]):
            d_conds.setdefault(id(cd), (cd, []))[1].append(k)
    if _bubble_applies(problem):
        bubble = problem.shape.bubble()
        return HardDirichlet(bubble, [(None, next(iter(d_conds.values()))[0].g_torch)], bubble.kind)
    pieces, x = dirichlet_pieces(problem)
    groups = [([pieces[k] for k in ks], cd.g_torch) for cd, ks in d_conds.values()]
    order = [pieces[k] for k in sorted(pieces)]

    def phi(x):
        return _req([p(x) for p in order])

    top = float(phi(x).max())
    scale = 1.0 / top if top > 0 and math.isfinite(top) else 1.0
    return HardDirichlet(phi, groups, "adf", scale, smooth=not any(isinstance(p, Segment) for p in order))
