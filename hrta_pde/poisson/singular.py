"""Points where ``u`` is singular, and network inputs that make the singularity smooth.

Two kinds of points are found: the corners of a polygon (below), and, in 2-D boxes and polygons,
the points where straight interfaces of a piecewise coefficient ``a`` cross each other or meet
the boundary (also at a corner of the domain): there ``u ~ r^lam mu(theta)`` with ``mu`` piecewise
trigonometric on the sectors between the rays, ``mu`` and ``a mu'`` continuous across them (and
``mu = 0`` on a Dirichlet side, ``a mu' = 0`` on a Neumann or Robin one). The exponents ``lam`` are
the roots of a transfer-matrix condition (:func:`sector_modes`; Kellogg's checkerboard, ``a``
1 | 10 on four quadrants, has ``lam = 0.39``); each mode with a non-integer ``lam < 2`` is one
input (:class:`SectorFeature`, cut off smoothly before the nearest other interface or side). Where
an interface meets a side, ``lam = 1`` is a mode, and boundary data that no continuous, piecewise
linear ``u`` with continuous flux takes there (Robin; the flux ``h`` or the slope of ``g`` on the two
sides in the wrong ratio) excite it: ``u`` gets an ``r log r`` term, whose input is
:class:`LogSectorFeature`.

At a vertex ``v`` of interior angle ``omega`` whose two edges carry conditions of kinds ``k0``
(the edge where the angle ``theta`` starts, ``theta = 0``) and ``k1`` (``theta = omega``), the solution
of ``-div(a grad u) + c u = f`` behaves like ``sum_k c_k r^(k lam) trig(k lam theta) + smooth``, with
``lam = pi / omega`` when both edges are Dirichlet or both not (Neumann, Robin) and
``lam = pi / (2 omega)`` when they differ (Grisvard, *Elliptic problems in nonsmooth domains*,
1985, ch. 4 and 5). For ``lam < 1`` the gradient of ``u`` is unbounded at ``v``: a smooth network
approximates it badly there (the L-shape's re-entrant corner, ``lam = 2/3``; a Dirichlet edge that
meets a Neumann edge at an angle above ``pi/2``).

The terms are the real and imaginary parts of the powers of ``w = (r e^(i theta))^lam``: every
``r^(k lam) sin(k lam theta)`` and ``r^(k lam) cos(k lam theta)`` is a polynomial in ``Re w`` and
``Im w``. So a network given ``Re w`` and ``Im w`` as two more inputs (:class:`CornerFeature`,
appended by :class:`hrta_pde.poisson.interfaces.InterfaceInputs`) represents the singular
expansion with smooth functions of its inputs, also under exact Dirichlet data ``u = g + phi N``,
whose corner function ``phi ~ Im w`` (:mod:`hrta_pde.poisson.distance`) leaves ``N = u / phi`` a
polynomial in ``Re w`` and ``Im w`` near ``v``.

``theta`` has its branch cut on the exterior bisector. Where that ray meets the domain further out
(a polygon that wraps around the vertex), both inputs are multiplied by a ``C^2`` cutoff that is 1
up to half the distance ``R`` from ``v`` to the nearest edge not at ``v`` and 0 from ``R`` on, so
they stay smooth in the whole domain. The cutoff's Laplacian is taken exactly (autograd).

Only 2-D polygons (``type = "polygon"``, ``"lshape"``) are searched for corners, and 2-D boxes and
polygons for interface points, where every interface is a straight line (a curved interface, or
a domain made by CSG, gets no such inputs; a corner that a curved interface reaches keeps its
corner inputs, whose exponent then ignores the jump).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["CornerFeature", "LogCornerFeature", "LogSectorFeature", "MAX_SINGULAR_FEATURES", "SectorFeature", "SingularError", "corner_exponent", "corner_features", "interface_cross_features", "log_corner_features",
           "sector_modes", "singular_features", "singular_points"]

#: Corners with ``lam`` at or above this are smooth enough (``r^lam`` with ``lam >= 1``).
SINGULAR_BELOW = 1.0 - 1e-9
#: At interface crossings the modes up to this exponent are inputs (``1 < lam < 2``: a bounded
#: gradient, but second derivatives like ``r^(lam - 2)``, which no other input gives).
CROSS_MODES_BELOW = 2.0 - 1e-9


#: At most this many singular inputs (each one is a network input; a polygon with hundreds of
#: re-entrant corners would make the first layer that wide and take minutes to set up).
MAX_SINGULAR_FEATURES = 32


class SingularError(ValueError):
    """More singular points than :data:`MAX_SINGULAR_FEATURES` inputs can serve (one line)."""


def _check_count(n: int, what: str) -> None:
    if n > MAX_SINGULAR_FEATURES:
        raise SingularError(f"this problem has {what}, more inputs than the {MAX_SINGULAR_FEATURES} the network "
                            "takes for singular points")


def corner_exponent(omega: float, start_dirichlet: bool, end_dirichlet: bool) -> float:
    """The leading exponent ``lam`` of ``r^lam`` at a corner of angle ``omega`` (radians)."""
    return math.pi / omega if start_dirichlet == end_dirichlet else math.pi / (2 * omega)


def _polar_parts(x: torch.Tensor, v: np.ndarray, r_min: float):
    """``(rel, r2, at)``: ``x - v`` with the points within ``r_min`` of ``v`` (``at``) moved to
    ``v + (r_min, 0)``, so that ``atan2`` and ``r^lam`` keep finite derivatives there (the caller
    sets the feature to 0 at those points), and ``|rel|^2``."""
    rel = x - torch.as_tensor(v, dtype=x.dtype, device=x.device)
    r2 = (rel * rel).sum(dim=-1)
    # below this the second derivatives (~ r^(lam - 2), with r^4 in atan2's) leave the dtype's range
    r_min = max(r_min, 10 * torch.finfo(x.dtype).tiny ** 0.25)
    at = r2 < r_min**2
    safe = torch.zeros_like(rel)
    safe[..., 0] = r_min
    rel = torch.where(at[..., None], safe, rel)
    return rel, torch.where(at, torch.full_like(r2, r_min**2), r2), at


def _smoothstep(t):
    """``C^2`` step from 1 (``t <= 0``) to 0 (``t >= 1``): ``1 - (6 t^5 - 15 t^4 + 10 t^3)``."""
    t = torch.clamp(t, 0.0, 1.0)
    return 1 - t**3 * (10 - 15 * t + 6 * t * t)


class CornerFeature:
    """``Re w`` (``part = 0``) or ``Im w`` (``part = 1``) of ``w = (r e^(i theta))^lam`` at ``vertex``:
    ``theta`` from the ray ``start`` (unit vector, ``theta = 0``) counterclockwise through the domain
    to the other edge (``theta = omega``), branch cut on the exterior bisector; times the cutoff of
    radius ``cutoff`` (None: no cutoff). ``fn(x)``: (n, 2) -> (n,), pure torch (works under
    ``torch.func``)."""

    def __init__(self, vertex, start, omega: float, lam: float, part: int, cutoff: float | None = None):
        self.v = np.asarray(vertex, dtype=np.float64)
        e = np.asarray(start, dtype=np.float64)
        e = e / np.linalg.norm(e)
        self.start = e
        self.omega, self.lam, self.part, self.cutoff = float(omega), float(lam), int(part), cutoff
        half = self.omega / 2  # theta is measured from the interior bisector b, offset by omega / 2
        self.b = np.array([e[0] * math.cos(half) - e[1] * math.sin(half), e[0] * math.sin(half) + e[1] * math.cos(half)])
        # within this distance of the vertex the feature is 0 with zero derivatives (finite there)
        self._r_min = 1e-12 * max(1.0, float(np.abs(self.v).max()))

    def __repr__(self):
        return (f"CornerFeature({'Im' if self.part else 'Re'} w, w = (r e^(i theta))^{self.lam:.6g} at "
                f"{self.v.tolist()}{'' if self.cutoff is None else f', cutoff {self.cutoff:.4g}'})")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = torch.as_tensor(self.b, dtype=x.dtype, device=x.device)
        rel, r2, at = _polar_parts(x, self.v, self._r_min)
        c = rel[..., 0] * b[0] + rel[..., 1] * b[1]
        s = b[0] * rel[..., 1] - b[1] * rel[..., 0]
        theta = self.omega / 2 + torch.atan2(s, c)
        rl = r2 ** (self.lam / 2)
        out = rl * (torch.sin(self.lam * theta) if self.part else torch.cos(self.lam * theta))
        if self.cutoff is not None:
            out = out * _smoothstep(2 * torch.sqrt(r2) / self.cutoff - 1)
        return torch.where(at, torch.zeros_like(out), out)


class LogCornerFeature(CornerFeature):
    """``Im(z^2 log(z / R)) = r^2 (log(r / R) sin 2 theta + theta cos 2 theta)`` at a corner of angle
    ``omega = pi/2`` (or ``3 pi/2``) between two Dirichlet edges (``theta`` from ``start``, as in
    :class:`CornerFeature`; ``R`` the domain's diameter): there ``lam = 2`` is a mode, and data that
    no smooth ``u`` takes at the vertex give ``u`` the term ``-(m / (2 omega a)) Im(z^2 log z)`` with
    ``m = f + a (g0'' + g1'') + grad a . grad u - c g`` (:func:`_log_corner_mismatch`; for
    ``-Laplace u = 1``, ``u = 0`` on a square: ``m = 1``). It vanishes on the ``theta = 0`` edge; its
    gradient is bounded and its Laplacian is 0, but its second derivatives grow like ``log r``,
    which a smooth network does not follow (the PINN residual sees them). ``r^2 log r`` is in
    ``H^(3 - eps)``: the Gauss rule is not graded towards these corners (the FEM mesh is)."""

    def __init__(self, vertex, start, omega: float, scale: float, cutoff: float | None = None):
        super().__init__(vertex, start, omega, 2.0, 1, cutoff)
        self.scale = float(scale)

    def __repr__(self):
        return (f"LogCornerFeature(r^2 (log r sin 2 theta + theta cos 2 theta) at {self.v.tolist()}, angle "
                f"{self.omega:.6g}{'' if self.cutoff is None else f', cutoff {self.cutoff:.4g}'})")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = torch.as_tensor(self.b, dtype=x.dtype, device=x.device)
        rel, r2, at = _polar_parts(x, self.v, self._r_min)
        c = rel[..., 0] * b[0] + rel[..., 1] * b[1]
        s = b[0] * rel[..., 1] - b[1] * rel[..., 0]
        theta = self.omega / 2 + torch.atan2(s, c)
        out = r2 * (0.5 * torch.log(r2 / self.scale**2) * torch.sin(2 * theta) + theta * torch.cos(2 * theta))
        if self.cutoff is not None:
            out = out * _smoothstep(2 * torch.sqrt(r2) / self.cutoff - 1)
        return torch.where(at, torch.zeros_like(out), out)


def singular_features(problem) -> list:
    """Every feature the network takes for ``problem``'s singular points: the interface crossings'
    (:func:`interface_cross_features`, also at a corner of the domain that an interface reaches,
    with the sectors it makes) and the other polygon corners' (:func:`corner_features`)."""
    cross = interface_cross_features(problem)
    taken = [f.v for f in cross]
    corners = [f for f in corner_features(problem) if not any(np.allclose(f.v, q, rtol=0, atol=1e-9) for q in taken)]
    return corners + cross


def log_corner_features(problem, taken=()) -> list:
    """The :class:`LogCornerFeature` s of ``problem``: at each corner of a 2-D polygon or box of angle
    ``pi/2`` between two Dirichlet edges whose data excite the ``r^2 log r`` term (``3 pi/2`` has the
    term too, but ``r^(2/3)`` leads there and has its own inputs: the L-shape with ``-Laplace u = 1``
    reached 5.8e-6 with it and 6.3e-6 without, PINN, seed 0), but not at the points ``taken``
    (interface points, whose own features hold there). [] where there are none or more than
    :data:`MAX_SINGULAR_FEATURES`. (The edges of a 3-D box have the term too; inputs for them with
    the penalty did worse than the exact data without them: benchmarks/README.md.)"""
    key = tuple(tuple(np.round(np.asarray(q, dtype=np.float64), 12).tolist()) for q in taken)
    cached = getattr(problem, "_log_corner_features", {})
    if key not in cached:
        cached[key] = tuple(_log_corner_features(problem, taken))
        try:
            problem._log_corner_features = cached
        except AttributeError:  # a problem object that takes no attributes: recomputed next time
            pass
    return list(cached[key])


def _log_corner_features(problem, taken) -> list:
    shape = problem.shape
    kind = type(shape).__name__
    if problem.dim != 2 or kind not in ("Polygon", "Box"):
        return []
    with torch.no_grad():
        inside = problem.sample_interior(64, generator=torch.Generator().manual_seed(0), sampler="random",
                                         dtype=torch.float64, device="cpu")
        f_max = float(problem.f_torch(inside).abs().max())
    diam = float(np.linalg.norm(shape.hi - shape.lo))
    out = []
    for v, start, end, k0, k1, cutoff in _corners_of(problem, shape, taken):
        if _log_corner_mismatch(problem, v, start, end, problem.conditions[k0], problem.conditions[k1], f_max):
            out.append(LogCornerFeature(v, start, math.pi / 2, diam, cutoff()))
    return out if len(out) <= MAX_SINGULAR_FEATURES else []


def _corners_of(problem, shape, taken=()) -> list:
    """``[(v, start, end, k0, k1, cutoff)]`` for the right-angled corners of a 2-D polygon or box
    between two Dirichlet edges, but the points ``taken``: the edges leave ``v`` along the unit
    vectors ``start`` (part ``k0``) and ``end`` (part ``k1``), the domain counterclockwise from
    ``start``; ``cutoff()`` as for :class:`CornerFeature` (None where the exterior bisector stays
    outside; computed when called, it costs a sweep of the edges)."""

    def wanted(v, k0, k1):
        c0, c1 = problem.conditions[k0], problem.conditions[k1]
        return (c0 is not None and c1 is not None and c0.kind == "dirichlet" and c1.kind == "dirichlet"
                and not any(np.allclose(v, q, rtol=0, atol=1e-9) for q in taken))

    if type(shape).__name__ == "Box":
        lo, hi = np.asarray(shape.lo, dtype=np.float64), np.asarray(shape.hi, dtype=np.float64)
        out = []
        for sx in (0, 1):
            for sy in (0, 1):
                v = np.array([hi[0] if sx else lo[0], hi[1] if sy else lo[1]])
                along_x = (np.array([-1.0 if sx else 1.0, 0.0]), 2 + sy)  # the side y = y_sy
                along_y = (np.array([0.0, -1.0 if sy else 1.0]), sx)  # the side x = x_sx
                a, b = (along_x, along_y) if along_x[0][0] * along_y[0][1] > 0 else (along_y, along_x)
                if wanted(v, a[1], b[1]):
                    out.append((v, a[0], b[0], a[1], b[1], lambda: None))
        return out
    v = np.asarray(shape.user_vertices, dtype=np.float64)
    nv = len(v)
    area2 = float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
    diam = float(np.linalg.norm(shape.hi - shape.lo))
    out = []
    for i in range(nv):
        before, after = (i - 1) % nv, i
        to_prev, to_next = v[before] - v[i], v[(i + 1) % nv] - v[i]
        (start, k0), (end, k1) = ((to_next, after), (to_prev, before)) if area2 > 0 else ((to_prev, before), (to_next, after))
        e0, e1 = start / np.linalg.norm(start), end / np.linalg.norm(end)
        omega = math.atan2(e0[0] * e1[1] - e0[1] * e1[0], float(e0 @ e1)) % (2 * math.pi)
        if abs(omega - math.pi / 2) > 1e-9 or not wanted(v[i], k0, k1):
            continue
        bis = (e0 + e1) / np.linalg.norm(e0 + e1)

        def cutoff(p=v[i], bis=bis, skip=(before, after)):
            if not _ray_meets_domain(shape, p, -bis, 2 * diam):
                return None
            return min(_segment_distance(p, v[j], v[(j + 1) % nv]) for j in range(nv) if j not in skip)

        out.append((v[i], e0, e1, k0, k1, cutoff))
    return out


def _log_corner_mismatch(problem, v, e0, e1, c0, c1, f_max: float) -> bool:
    """Whether ``m = f + a (g0'' + g1'') + grad a . grad u - c g`` at the right-angled Dirichlet
    corner ``v`` is not 0, i.e. no smooth ``u`` takes the data there: along the edges (unit
    directions ``e0``, ``e1``) ``u_ss = g''`` and ``grad u`` follows from the two slopes, and
    ``-a Laplace u - grad a . grad u + c u = f``. Everything at ``v`` itself (each part's
    ``g`` is an expression defined there; at one point a smooth exact solution gives ``m = 0`` to
    rounding however steep it is), the derivatives of ``g`` by autograd. ``m`` counts when
    it exceeds ``1e-6`` of the largest term, of ``f_max`` (``max |f|`` over the domain) and of
    ``a (|g0'| + |g1'|) / diam`` (so that data near 0 at the vertex, and the rounding of a ``g``
    that is the exact solution, give no input). Where the data are not finite at ``v`` (an exact
    ``u`` that has the term, ``log`` at the vertex) they are taken ``1e-6 diam`` inside, and ``m``
    counts above ``1e-3`` of that scale."""
    diam = float(np.linalg.norm(problem.shape.hi - problem.shape.lo))
    for t0 in (0.0, 1e-6 * diam):  # data singular at v itself (an exact u with the term): just inside
        bis = (e0 + e1) / np.linalg.norm(e0 + e1)
        g0, s0, curv0 = _along(c0.g_torch, v + t0 * e0, e0)
        _, s1, curv1 = _along(c1.g_torch, v + t0 * e1, e1)
        grad_u = s0 * e0 + s1 * e1
        p = torch.as_tensor(v + t0 * bis, dtype=torch.float64)[None, :]
        with torch.no_grad():
            a, f, c = (float(fn(p).reshape(-1)[0]) for fn in (problem.a_torch, problem.f_torch, problem.c_torch))
            grad_a = problem.grad_a_torch(p).reshape(-1).numpy()
        terms = [f, a * curv0, a * curv1, float(grad_a @ grad_u), -c * g0]
        m = sum(terms)
        scale = max([abs(t) for t in terms] + [f_max, abs(a) * (abs(s0) + abs(s1)) / diam])
        if np.isfinite(m) and np.isfinite(scale):
            return abs(m) > (1e-6 if t0 == 0.0 else 1e-3) * scale
    return False


def _along(g, v, e) -> tuple:
    """``(g, dg/dt, d2g/dt2)`` of ``g(v + t e)`` at ``t = 0`` (float64 autograd; 0 for a ``g``
    that does not depend on ``x``)."""
    t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    x = torch.as_tensor(v, dtype=torch.float64)[None, :] + t[:, None] * torch.as_tensor(e, dtype=torch.float64)[None, :]
    y = g(x).reshape(-1)[:1].sum()
    if not y.requires_grad:
        return float(y.detach()), 0.0, 0.0
    (d1,) = torch.autograd.grad(y, t, create_graph=True, allow_unused=True)
    if d1 is None:
        return float(y.detach()), 0.0, 0.0
    d2 = torch.autograd.grad(d1.sum(), t, allow_unused=True)[0] if d1.requires_grad else None
    return float(y.detach()), float(d1.detach().sum()), 0.0 if d2 is None else float(d2.sum())


def singular_points(problem) -> np.ndarray:
    """The points (k, d) of :func:`singular_features` (the Gauss rule is graded towards them); none
    where there are too many (:class:`SingularError`)."""
    try:
        feats = singular_features(problem)
    except SingularError:
        feats = []
    points = {tuple(f.v.tolist()) for f in feats}
    return np.array(sorted(points), dtype=np.float64).reshape(-1, problem.dim)


def _segment_distance(p, a, b) -> float:
    e = b - a
    t = min(1.0, max(0.0, float((p - a) @ e) / float(e @ e)))
    return float(np.linalg.norm(p - a - t * e))


def _ray_meets_domain(shape, v, direction, far: float, n: int = 4096) -> bool:
    """Whether the ray from ``v`` along ``direction`` enters the domain (sampled, beyond ``v``)."""
    t = np.linspace(0.0, far, n + 1)[1:]
    pts = v[None, :] + t[:, None] * direction[None, :]
    return bool((shape.classify(pts, tol=0.0) <= 0).any()) if pts.size else False


def corner_features(problem) -> list:
    """The :class:`CornerFeature` s (``Re w``, ``Im w`` per vertex) of ``problem``'s singular corners
    (``lam < 1``), cached on the problem; [] for a domain that is not a 2-D polygon."""
    cached = getattr(problem, "_corner_features", None)
    if cached is not None:
        return list(cached)
    out = []
    shape = problem.shape
    if type(shape).__name__ == "Polygon":
        out = _polygon_corners(problem, shape)
    try:
        problem._corner_features = tuple(out)
    except AttributeError:  # a problem object that takes no attributes: recomputed next time
        pass
    return list(out)


def _polygon_corners(problem, shape) -> list:
    v = np.asarray(shape.user_vertices, dtype=np.float64)
    nv = len(v)
    area2 = float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
    diam = float(np.linalg.norm(shape.hi - shape.lo))
    conditions = problem.conditions
    out, found = [], []
    for i in range(nv):
        before, after = (i - 1) % nv, i  # user edge i-1 ends at vertex i, user edge i starts there
        to_prev, to_next = v[before] - v[i], v[(i + 1) % nv] - v[i]
        # the domain lies counterclockwise from `start` to `end`
        (start, k0), (end, k1) = ((to_next, after), (to_prev, before)) if area2 > 0 else ((to_prev, before), (to_next, after))
        omega = math.atan2(start[0] * end[1] - start[1] * end[0], float(start @ end)) % (2 * math.pi)
        c0, c1 = conditions[k0], conditions[k1]
        if c0 is None or c1 is None:
            continue
        lam = corner_exponent(omega, c0.kind == "dirichlet", c1.kind == "dirichlet")
        if lam < SINGULAR_BELOW:
            found.append((i, before, after, start, omega, lam))
    _check_count(2 * len(found), f"{len(found)} singular corners")
    for i, before, after, start, omega, lam in found:
        e = start / np.linalg.norm(start)
        half = omega / 2
        bis = np.array([e[0] * math.cos(half) - e[1] * math.sin(half), e[0] * math.sin(half) + e[1] * math.cos(half)])
        cutoff = None
        if _ray_meets_domain(shape, v[i], -bis, 2 * diam):
            others = [_segment_distance(v[i], v[j], v[(j + 1) % nv]) for j in range(nv)
                      if j not in (before, after)]
            cutoff = min(others)
        out += [CornerFeature(v[i], start, omega, lam, part, cutoff) for part in (0, 1)]
    return out


# ----------------------------------------------------------------------------------------------
# points where straight interfaces of a cross each other or meet the boundary
# ----------------------------------------------------------------------------------------------
def _transfer(lam: float, omega: float, a: float) -> np.ndarray:
    """The map of ``(mu, a mu')`` across a sector of angle ``omega`` and coefficient ``a`` for
    ``mu = A cos(lam t) + B sin(lam t)``."""
    c, s = math.cos(lam * omega), math.sin(lam * omega)
    return np.array([[c, s / (a * lam)], [-a * lam * s, c]])


def _chain(lam, omegas, coeffs) -> np.ndarray:
    t = np.eye(2)
    for om, a in zip(omegas, coeffs):
        t = _transfer(lam, om, a) @ t
    return t


_START = {"D": np.array([0.0, 1.0]), "N": np.array([1.0, 0.0])}


def sector_modes(omegas, coeffs, ends=None, lam_min: float = 1e-3, lam_max: float = SINGULAR_BELOW,
                 grid: int = 4000) -> list:
    """The singular modes ``r^lam mu(theta)`` (``lam_min <= lam < lam_max``) of
    ``-div(a grad u) = 0`` near a point where sectors of angles ``omegas`` (radians, in order
    counterclockwise) with constant coefficients ``coeffs`` meet: ``mu`` and ``a mu'`` continuous
    across the rays between sectors, and either periodic (``ends=None``, an interior point: the
    angles sum to ``2 pi``) or with the conditions ``ends = (k0, k1)`` on the first and last ray,
    ``"D"`` (``mu = 0``) or ``"N"`` (``a mu' = 0``; Robin behaves so at the point).

    Returns ``[(lam, [(A_k, B_k), ...]), ...]`` with ``mu = A_k cos(lam t) + B_k sin(lam t)`` on
    sector ``k`` (``t`` the angle from its first ray), scaled to ``max |mu| = 1``; a periodic ``lam``
    whose transfer matrix is the identity gives two modes. The roots of ``trace(T) - 2`` (periodic)
    or of the end condition are found on a grid of ``grid`` values and refined (Brent, or a
    bounded minimisation where the function only touches 0)."""
    from scipy.optimize import brentq, minimize_scalar

    omegas, coeffs = [float(o) for o in omegas], [float(a) for a in coeffs]
    if ends is None:
        v0 = None

        def f(lam):
            return 2.0 - float(np.trace(_chain(lam, omegas, coeffs)))
    else:
        v0 = _START[ends[0]]
        row = 0 if ends[1] == "D" else 1

        def f(lam):
            return float((_chain(lam, omegas, coeffs) @ v0)[row])

    lams = np.linspace(lam_min, lam_max, grid)
    vals = np.array([f(x) for x in lams])
    scale = max(1.0, float(np.abs(vals).max()))
    roots = []
    for i in range(grid - 1):
        if vals[i] == 0:
            roots.append(lams[i])
        elif vals[i] * vals[i + 1] < 0:
            roots.append(brentq(f, lams[i], lams[i + 1], xtol=1e-15, rtol=1e-15))
        elif 0 < i and abs(vals[i]) < abs(vals[i - 1]) and abs(vals[i]) <= abs(vals[i + 1]):
            res = minimize_scalar(lambda x: abs(f(x)), bounds=(lams[i - 1], lams[i + 1]), method="bounded",
                                  options={"xatol": 1e-14})
            if abs(f(res.x)) < 1e-9 * scale:
                roots.append(float(res.x))
    distinct = []
    for r in sorted(roots):
        if not distinct or r - distinct[-1] > 1e-8:
            distinct.append(r)
    out = []
    for lam in distinct:
        if ends is None:
            m = _chain(lam, omegas, coeffs) - np.eye(2)
            _, sv, vt = np.linalg.svd(m)
            starts = [vt[k] for k in range(2) if sv[k] <= 1e-6 * max(1.0, np.abs(m).max() + 1.0)]
            if not starts:
                starts = [vt[-1]]
        else:
            starts = [v0]
        for v in starts:
            out.append((lam, _mode_coefficients(lam, omegas, coeffs, v)))
    return out


def _mode_coefficients(lam, omegas, coeffs, v) -> list:
    coef = []
    state = np.asarray(v, dtype=np.float64)
    for om, a in zip(omegas, coeffs):
        coef.append((state[0], state[1] / (a * lam)))
        state = _transfer(lam, om, a) @ state
    t = np.linspace(0.0, 1.0, 257)
    top = max(float(np.abs(A * np.cos(lam * om * t) + B * np.sin(lam * om * t)).max())
              for (A, B), om in zip(coef, omegas))
    return [(A / top, B / top) for A, B in coef]


class SectorFeature:
    """``chi(r) r^lam mu(theta)`` at ``point``: ``theta`` measured counterclockwise from the ray at
    the angle ``start`` (radians), ``mu`` piecewise (:func:`sector_modes`) on the sectors that end at
    the cumulative angles ``edges`` (the last is ``2 pi`` at an interior point, less on the
    boundary, where the rest is outside the domain); ``chi`` the cutoff of :class:`CornerFeature`
    with radius ``cutoff``. ``levels``: ``{j: grad psi_j}`` of the interfaces through the point, for
    :meth:`__call__`'s ``side = (j, s)``: on interface ``j`` the feature takes the sector on the side
    ``s psi_j > 0``, so that its one-sided derivatives are those of that side.

    The sector of a point is chosen in float64 from the detached point (a nudge of ``1e-9`` rad
    decides the side on a ray, in any dtype); each sector's formula takes the angle in a window
    centred on that sector, so a point on a ray, or across ``theta = 0``, gets its sector's
    continuation there, not a value ``2 pi`` away."""

    one_sided = True
    NUDGE = 1e-9

    def __init__(self, point, start: float, edges, lam: float, coefficients, cutoff: float, levels=None):
        self.v = np.asarray(point, dtype=np.float64)
        self.start, self.edges = float(start), [float(e) for e in edges]
        self.lam, self.coefficients, self.cutoff = float(lam), [tuple(map(float, c)) for c in coefficients], float(cutoff)
        self.levels = dict(levels or {})
        self._r_min = 1e-12 * max(1.0, float(np.abs(self.v).max()))
        self._gap = 2 * math.pi - self.edges[-1]  # outside the domain (0 at an interior point)

    def __repr__(self):
        return f"SectorFeature(r^{self.lam:.6g} mu(theta) at {self.v.tolist()}, {len(self.edges)} sectors)"

    def _sector(self, x: torch.Tensor, side) -> torch.Tensor:
        """The sector index of each point (long), chosen in float64 (from the point as the dtype
        has it); on interface ``side[0]`` a point within rounding of its line is put on it first, so
        that the nudge, not the rounding, decides the side."""
        v = torch.as_tensor(self.v, dtype=x.dtype, device=x.device).to(torch.float64)
        rel = x.detach().to(torch.float64) - v
        if side is not None and side[0] in self.levels:
            g = torch.as_tensor(self.levels[side[0]], dtype=torch.float64, device=x.device)
            dist = (rel * g).sum(dim=-1) / g.norm()
            scale = max(1.0, float(np.abs(self.v).max())) + rel.detach().abs().amax(dim=-1)
            near = dist.abs() <= 64 * torch.finfo(x.dtype).eps * scale
            rel = torch.where(near[..., None], rel - (dist / g.norm())[..., None] * g, rel)
        phi = torch.atan2(rel[..., 1], rel[..., 0]) - self.start
        if side is not None and side[0] in self.levels:
            g = self.levels[side[0]]
            dpsi = -rel[..., 1] * float(g[0]) + rel[..., 0] * float(g[1])  # d psi / d theta
            phi = phi + self.NUDGE * float(side[1]) * torch.sign(dpsi)
        half = self._gap / 2  # the cut in the middle of the part outside the domain
        phi = torch.remainder(phi + half, 2 * math.pi) - half
        which = torch.zeros_like(phi, dtype=torch.long)
        for bound in self.edges[:-1]:
            which = which + (phi >= bound).long()
        return which

    def __call__(self, x: torch.Tensor, side=None) -> torch.Tensor:
        rel, r2, at = _polar_parts(x, self.v, self._r_min)
        phi = torch.atan2(rel[..., 1], rel[..., 0]) - self.start
        which = self._sector(x, side)
        out = torch.zeros_like(phi)
        lo = 0.0
        for k, hi in enumerate(self.edges):
            centre = (lo + hi) / 2  # the angle from the sector's first ray, in a window about its middle
            t = torch.remainder(phi - centre + math.pi, 2 * math.pi) - math.pi + (centre - lo)
            out = torch.where(which == k, self._profile(k, t, r2), out)
            lo = hi
        out = out * _smoothstep(2 * torch.sqrt(r2) / self.cutoff - 1)
        return torch.where(at, torch.zeros_like(out), out)

    def _profile(self, k: int, t: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
        """The feature on sector ``k`` at the angle ``t`` from its first ray (before the cutoff)."""
        A, B = self.coefficients[k][:2]
        return r2 ** (self.lam / 2) * (A * torch.cos(self.lam * t) + B * torch.sin(self.lam * t))


class LogSectorFeature(SectorFeature):
    """``chi(r) r (log(r / R) mu(theta) + psi(theta))`` at a point on the boundary where ``lam = 1``
    is a mode of the sectors (``mu``, e.g. where an interface meets a straight Neumann, Robin or
    Dirichlet side): there boundary data with a nonzero flux (Neumann, Robin) or slope (Dirichlet)
    excite it (:func:`_data_excite`), and ``u`` has an ``r log r`` term (its gradient grows like ``log r``; measured on the
    FEM solution where ``a = 1 | 10`` meets a Robin side). ``psi`` solves ``psi'' + psi = -2 mu`` on each
    sector with ``psi`` and ``a psi'`` continuous across the rays, so the feature is harmonic on
    each sector with continuous flux; on the boundary rays its flux (or value over ``r``) is
    constant, the data it balances. ``coefficients``: ``(A, B, C, D)`` per sector,
    ``mu = A cos t + B sin t``, ``psi = -A t sin t + B t cos t + C cos t + D sin t``."""

    def __repr__(self):
        return f"LogSectorFeature(r log r mu(theta) at {self.v.tolist()}, {len(self.edges)} sectors)"

    def _profile(self, k, t, r2):
        A, B, C, D = self.coefficients[k]
        c, s = torch.cos(t), torch.sin(t)
        r = torch.sqrt(r2)
        return r * (0.5 * torch.log(r2 / self.cutoff**2) * (A * c + B * s) - A * t * s + B * t * c + C * c + D * s)


def _data_excite(problem, p, conds, rays, diam, omegas, coeffs, ends) -> bool:
    """Whether the boundary data at ``p`` excite the ``r log r`` term of the ``lam = 1`` mode: a
    Robin ray with ``alpha != 0`` may (its datum ``h - alpha u`` depends on ``u``); else the data to
    first order, the slope ``dg/dr`` of ``g`` along a Dirichlet ray and the flux ``h`` on a Neumann
    one, excite it unless a continuous ``u = u(p) + r psi(theta)`` (``psi`` of the ``lam = 1``
    problem, with ``psi`` and ``a psi'`` continuous across the rays) takes them: the second ray's
    datum must be what the first one's gives through the transfer matrix (the free part of the start
    state is the mode itself, which the resonance maps to 0 there)."""
    delta = 1e-4 * diam
    data = []
    for cond, d in zip(conds, rays):
        q = p[None, :] + np.array([[0.0], [1.0], [2.0]]) * delta * d[None, :]
        if cond is None:
            data.append(0.0)
        elif cond.kind == "dirichlet":
            g = np.broadcast_to(np.asarray(cond.g_numpy(q), dtype=np.float64).reshape(-1), (3,))
            data.append(float(-3 * g[0] + 4 * g[1] - g[2]) / (2 * delta))  # dg/dr at p
        else:
            if cond.kind == "robin":
                alpha = np.broadcast_to(np.asarray(cond.alpha_numpy(q), dtype=np.float64).reshape(-1), (3,))
                if np.abs(alpha).max() > 0:
                    return True
            h = np.broadcast_to(np.asarray(cond.h_numpy(q, problem.shape.normal(q)), dtype=np.float64).reshape(-1), (3,))
            data.append(float(2 * h[1] - h[2]))  # h at p, from inside the ray
    # start state (psi, a psi') with the free part 0: a D ray fixes psi, an N ray a psi' = -h
    # (the outward normal is -theta there); on the last ray the outward normal is +theta
    v0 = np.array([data[0], 0.0]) if ends[0] == "D" else np.array([0.0, -data[0]])
    end = _chain(1.0, omegas, coeffs) @ v0
    got = end[0] if ends[1] == "D" else end[1]
    return abs(got - data[1]) > 1e-6 * max(1.0, abs(got), abs(data[1]), float(np.abs(v0).max()))


def _log_mode(omegas, coeffs, ends):
    """``(A, B, C, D)`` per sector of :class:`LogSectorFeature` where ``lam = 1`` is a mode of the
    sectors with the end conditions ``ends``, else None."""
    v0 = _START[ends[0]]
    row = 0 if ends[1] == "D" else 1
    end = _chain(1.0, omegas, coeffs) @ v0
    if abs(end[row]) > 1e-9 * max(1.0, float(np.abs(end).max())):
        return None
    mu = _mode_coefficients(1.0, omegas, coeffs, v0)
    out, C, D = [], 0.0, 0.0
    for (A, B), om, a in zip(mu, omegas, coeffs):
        out.append((A, B, C, D))
        # psi and psi' at the sector's last ray; then a psi' carries over to the next sector
        c, s = math.cos(om), math.sin(om)
        psi = -A * om * s + B * om * c + C * c + D * s
        dpsi = -A * (s + om * c) + B * (c - om * s) - C * s + D * c
        nxt = len(out)
        if nxt < len(coeffs):  # psi(0) = C and psi'(0) = B + D on the next sector
            C, D = psi, a * dpsi / coeffs[nxt] - mu[nxt][1]
    return out


def _linear_levels(problem):
    """``[(j, g, c)]`` with ``psi_j(x) = g . x + c`` for every interface level of ``a`` if all are
    straight lines (2-D), else None."""
    import sympy

    from hrta_pde.poisson.expressions import coordinate_symbols
    from hrta_pde.poisson.interfaces import InterfaceError, interface_levels

    try:
        levels = interface_levels(problem)
    except InterfaceError:
        return None
    xs = coordinate_symbols(2)
    out = []
    for j, psi in enumerate(levels):
        try:
            poly = sympy.Poly(sympy.expand(psi), *xs)
        except sympy.PolynomialError:
            return None
        if poly.total_degree() > 1:
            return None
        g = np.array([float(poly.coeff_monomial(x)) for x in xs])
        c = float(poly.coeff_monomial(1))
        if np.linalg.norm(g) == 0:
            return None
        out.append((j, g, c))
    return out


def _edges_of(shape):
    """The boundary segments ``[(a, b)]`` of a 2-D box or polygon, else None."""
    name = type(shape).__name__
    if name == "Polygon":
        return [(shape._a[i], shape._b[i]) for i in range(len(shape._a))]
    if name == "Box" and shape.dim == 2:
        (x0, y0), (x1, y1) = shape.lo, shape.hi
        c = [np.array(p, dtype=np.float64) for p in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        return [(c[i], c[(i + 1) % 4]) for i in range(4)]
    return None


def interface_cross_features(problem) -> list:
    """The :class:`SectorFeature` s of ``problem``: at each point where two straight interfaces of
    ``a`` cross, or one meets a straight side of a 2-D box or polygon (not at a corner), the
    singular modes ``lam < 1`` of the sectors there (:func:`sector_modes`), cached on the problem.
    [] where ``a`` has no interface, an interface is not a straight line, or the domain is not a
    2-D box or polygon."""
    cached = getattr(problem, "_cross_features", None)
    if cached is not None:
        return list(cached)
    out = []
    levels = _linear_levels(problem) if problem.dim == 2 else None
    edges = _edges_of(problem.shape) if levels else None
    if levels and edges:
        out = _cross_features(problem, levels, edges)
    try:
        problem._cross_features = tuple(out)
    except AttributeError:
        pass
    return list(out)


def _cross_features(problem, levels, edges) -> list:
    shape = problem.shape
    diam = float(np.linalg.norm(shape.hi - shape.lo))
    tol = 1e-10 * max(1.0, diam)
    candidates = []
    for i, (_, g1, c1) in enumerate(levels):
        for _, g2, c2 in levels[i + 1:]:
            m = np.array([g1, g2])
            if abs(np.linalg.det(m)) > 1e-12 * np.linalg.norm(g1) * np.linalg.norm(g2):
                candidates.append(np.linalg.solve(m, -np.array([c1, c2])))
        for a, b in edges:
            e = b - a
            den = float(g1 @ e)
            if abs(den) <= 1e-12 * np.linalg.norm(g1) * np.linalg.norm(e):
                continue  # parallel to the side
            t = -(float(g1 @ a) + c1) / den
            if -1e-9 <= t <= 1 + 1e-9:  # (at a corner of the domain too)
                candidates.append(a + min(1.0, max(0.0, t)) * e)
    points = []
    for p in candidates:
        if shape.classify(p[None, :], tol=tol)[0] <= 0 and not any(np.linalg.norm(p - q) <= tol for q in points):
            points.append(p)
    _check_count(len(points), f"{len(points)} points where interfaces of a cross or meet the boundary")
    out = []
    for p in points:
        out += _features_at(problem, p, levels, edges, diam, tol)
    _check_count(len(out), f"{len(points)} points where interfaces of a cross or meet the boundary")
    return out


def _limit_at(problem, p, direction, eps: float = 1e-6) -> float:
    """``a``'s limit at ``p`` along the unit ``direction`` (linear extrapolation from two points)."""
    diam = float(np.linalg.norm(problem.shape.hi - problem.shape.lo))
    q = p[None, :] + np.array([[1.0], [2.0]]) * (eps * diam) * direction[None, :]
    a1, a2 = np.broadcast_to(np.asarray(problem.a_numpy(q), dtype=np.float64).reshape(-1), (2,))
    return float(2 * a1 - a2)


def _features_at(problem, p, levels, edges, diam, tol) -> list:
    shape = problem.shape
    through = {j: g for j, g, c in levels if abs(float(g @ p) + c) <= tol * max(1.0, np.linalg.norm(g))}
    on_edges = [(a, b) for a, b in edges if _segment_distance(p, a, b) <= tol]
    angles = []
    for g in through.values():
        t = math.atan2(g[0], -g[1])  # a direction along the line
        angles += [t % (2 * math.pi), (t + math.pi) % (2 * math.pi)]
    for a, b in on_edges:
        for q in (a, b):
            if np.linalg.norm(q - p) > tol:
                d = q - p
                angles.append(math.atan2(d[1], d[0]) % (2 * math.pi))
    angles = sorted(angles)
    angles = [t for k, t in enumerate(angles) if k == 0 or t - angles[k - 1] > 1e-10]
    if len(angles) > 1 and angles[0] + 2 * math.pi - angles[-1] <= 1e-10:
        angles = angles[:-1]  # the same ray on either side of angle 0
    if len(angles) < 2:
        return []
    eps = 1e-6 * diam
    sectors = []  # (start angle, opening, inside?)
    for k, t0 in enumerate(angles):
        t1 = angles[(k + 1) % len(angles)] + (2 * math.pi if k == len(angles) - 1 else 0.0)
        mid = (t0 + t1) / 2
        q = p + eps * np.array([math.cos(mid), math.sin(mid)])
        sectors.append((t0, t1 - t0, bool(shape.classify(q[None, :], tol=0.0)[0] == -1), q,
                        np.array([math.cos(mid), math.sin(mid)])))
    inside = [s[2] for s in sectors]
    if all(inside):
        order, ends = sectors, None
    elif sum(1 for k in range(len(sectors)) if inside[k] and not inside[k - 1]) == 1:
        first = next(k for k in range(len(sectors)) if inside[k] and not inside[k - 1])
        order = []
        k = first
        while inside[k % len(sectors)] and len(order) < len(sectors):
            order.append(sectors[k % len(sectors)])
            k += 1
        ends, conds, rays = [], [], []
        for ray in (order[0][0], order[-1][0] + order[-1][1]):
            d = np.array([math.cos(ray), math.sin(ray)])
            part = int(problem.part_of((p + eps * d)[None, :])[0])
            cond = problem.conditions[part]
            ends.append("D" if cond is None or cond.kind == "dirichlet" else "N")
            conds.append(cond)
            rays.append(d)
        ends = tuple(ends)
    else:
        return []
    coeffs = [_limit_at(problem, p, s[4]) for s in order]
    vertex = any(min(np.linalg.norm(a - p), np.linalg.norm(b - p)) <= tol for a, b in on_edges)
    if max(coeffs) - min(coeffs) <= 1e-6 * max(coeffs) and not vertex:
        return []  # no jump here (a continuous, if kinked): nothing singular from the interfaces
    omegas = [s[1] for s in order]
    modes = [(lam, coef) for lam, coef in sector_modes(omegas, coeffs, ends, lam_max=CROSS_MODES_BELOW)
             if abs(lam - round(lam)) > 1e-4]  # r^k mu with integer k: smooth between the interfaces
    log_mode = None
    if ends is not None and max(coeffs) > min(coeffs) * (1 + 1e-6):
        log_mode = _log_mode(omegas, coeffs, ends)
        if log_mode is not None and not _data_excite(problem, p, conds, rays, diam, omegas, coeffs, ends):
            log_mode = None
    if not modes and log_mode is None:
        return []
    start = order[0][0]
    cum = np.cumsum(omegas).tolist()
    # the cutoff: the nearest interface or side that does not pass through p
    dists = [abs(float(g @ p) + c) / np.linalg.norm(g) for j, g, c in levels if j not in through]
    dists += [_segment_distance(p, a, b) for a, b in edges if _segment_distance(p, a, b) > tol]
    cutoff = min(dists) if dists else diam
    out = [SectorFeature(p, start, cum, lam, coef, cutoff, through) for lam, coef in modes]
    if log_mode is not None:
        out.append(LogSectorFeature(p, start, cum, 1.0, log_mode, cutoff, through))
    return out
