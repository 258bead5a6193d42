"""Gauss quadrature of a domain and its boundary: points with weights (the sampler ``gauss``).

A second-order optimizer minimises the *discrete* loss to round-off, so the discrete loss has to
be the continuous one: with Monte Carlo or Sobol points the Deep Ritz energy of a network can sit
below the exact minimum (the network fits the quadrature, benchmarks/README.md). Gauss rules
integrate smooth integrands to many digits with few points:

* boxes in 1 to 3 dimensions: composite Gauss-Legendre, ``GAUSS_ORDER`` points per cell and axis,
  on a grid of equal cells (a coefficient that jumps on a cell face, such as ``where(x < 0.5, ..)``
  with an even number of cells, is integrated exactly piece by piece; the cells that an interface
  of the coefficient cuts, such as a circle, are halved ``CUT_DEPTH`` times); each face of the box gets
  the same rule in one dimension fewer (the two end points in 1-D);
* polygons: a triangle mesh of the polygon (:func:`hrta_pde.poisson.mesh.mesh_shape`) with the
  7-point degree-5 rule on each triangle (positive weights), graded towards the corners where ``u``
  is singular (:func:`_graded_triangles`); each edge a composite Gauss-Legendre rule;
* disks and concentric annuli (a disk minus a disk with the same centre): polar coordinates,
  composite Gauss-Legendre in the radius (weight ``r``) times the midpoint rule in the angle (exact
  for trigonometric polynomials of degree below the number of angles); each circle the midpoint
  rule in the angle.

The weights sum to the measure of the domain (of the boundary). Other domains (3-D balls, other
CSG combinations, more than 3 dimensions) have no rule here: :func:`check_gauss` refuses them.
"""
from __future__ import annotations

import math

import numpy as np

from hrta_pde.poisson.errors import ProblemError

__all__ = ["GAUSS_ORDER", "gauss_obstacle", "check_gauss", "interior_rule", "boundary_rule"]

#: Gauss-Legendre points per cell and axis of a box (exact for polynomials of degree 9 per cell).
GAUSS_ORDER = 5
_MAX_DIM = 3
_TRIANGLE_DEGREE = 5


def _gauss_01(q: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(q)
    return (t + 1.0) / 2.0, w / 2.0


def _axis_rule(lo: float, hi: float, m: int, q: int = GAUSS_ORDER) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre on ``[lo, hi]`` with about ``m`` points: ``round(m / q)`` equal cells
    of ``q`` points (``m`` points in one cell when ``m < q``)."""
    q = max(1, min(q, m))
    cells = max(1, round(m / q))
    t, w = _gauss_01(q)
    edges = np.linspace(lo, hi, cells + 1)
    h = np.diff(edges)
    x = (edges[:-1, None] + h[:, None] * t[None, :]).reshape(-1)
    return x, (h[:, None] * w[None, :]).reshape(-1)


def _tensor(axes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    xs = np.meshgrid(*[a[0] for a in axes], indexing="ij")
    ws = np.meshgrid(*[a[1] for a in axes], indexing="ij")
    return np.stack([x.reshape(-1) for x in xs], axis=1), np.prod([w.reshape(-1) for w in ws], axis=0)


def _rings(shape):
    """``(center, r_in, r_out)`` of a 2-D disk (``r_in = 0``) or a concentric annulus, else None."""
    from hrta_pde.poisson.geometry import Ball, Csg

    if isinstance(shape, Ball) and shape.dim == 2:
        return shape.center, 0.0, shape.radius
    if (isinstance(shape, Csg) and shape.op == "difference" and isinstance(shape.a, Ball)
            and isinstance(shape.b, Ball) and shape.a.dim == 2):
        a, b = shape.a, shape.b
        if np.array_equal(a.center, b.center) and 0 < b.radius < a.radius:
            return a.center, b.radius, a.radius
    return None


def gauss_obstacle(shape) -> str | None:
    """Why ``shape`` has no Gauss rule here (what has one), or None where it has one."""
    from hrta_pde.poisson.geometry import Box, Polygon

    if isinstance(shape, Box) and shape.dim <= _MAX_DIM or isinstance(shape, Polygon) or _rings(shape):
        return None
    what = (f"a {shape.dim}-D box" if isinstance(shape, Box)
            else f"a {shape.dim}-D {type(shape).__name__.lower()} domain")
    return (f"sampler 'gauss' has no rule for {what}: it integrates boxes in 1 to {_MAX_DIM} dimensions, "
            "polygons, disks and concentric annuli")


def check_gauss(shape) -> None:
    """Refuse a shape without a Gauss rule here (:func:`gauss_obstacle`), naming the alternative."""
    obstacle = gauss_obstacle(shape)
    if obstacle is not None:
        raise ProblemError(obstacle + "; use sampler 'sobol'")


def _ring_interior(rings, n: int):
    c, r0, r1 = rings
    m_r = max(1, round(math.sqrt(n * (r1 - r0) / (math.pi * (r1 + r0)))))
    r, wr = _axis_rule(r0, r1, m_r)
    m_t = max(3, round(n / len(r)))
    t = 2.0 * np.pi * (np.arange(m_t) + 0.5) / m_t
    rr, tt = np.meshgrid(r, t, indexing="ij")
    x = c + np.stack([(rr * np.cos(tt)).reshape(-1), (rr * np.sin(tt)).reshape(-1)], axis=1)
    w = (wr * r)[:, None] * np.full(m_t, 2.0 * np.pi / m_t)[None, :]
    return x, w.reshape(-1)


def _ring_boundary(rings, n: int):
    c, r0, r1 = rings
    circles = [(r1, 1.0)] + ([(r0, -1.0)] if r0 > 0 else [])
    xs, ns, ws = [], [], []
    for radius, sign in circles:
        m = max(8, round(n * radius / (r0 + r1)))
        t = 2.0 * np.pi * (np.arange(m) + 0.5) / m
        unit = np.column_stack([np.cos(t), np.sin(t)])
        xs.append(c + radius * unit), ns.append(sign * unit), ws.append(np.full(m, 2.0 * np.pi * radius / m))
    x = np.concatenate(xs)
    return x, np.concatenate(ns), np.full(len(x), -1, np.int64), np.concatenate(ws)


#: How many times a box's cells cut by an interface of the coefficient are halved along every axis.
CUT_DEPTH = {1: 3, 2: 3, 3: 2}


def _box_interior(box, n: int, levels=(), singular=()):
    m = max(1, round(n ** (1.0 / box.dim)))
    cut = _cut_box_interior(box, m, levels, singular) if len(levels) or len(singular) else None
    if cut is None:  # no interface cuts a cell: the plain rule, bit for bit
        return _tensor([_axis_rule(box.lo[i], box.hi[i], m) for i in range(box.dim)])
    return cut


def _cut_box_interior(box, m: int, levels, singular=()):
    """The composite rule of :func:`_box_interior` with its cells that an interface cuts (a level
    function changes sign among the cell's corners and Gauss points) halved along every axis,
    :data:`CUT_DEPTH` times: an integrand that jumps inside a cell is integrated with an error of
    the order of the cut cells' measure, which the halving divides by ``2^depth``. The cells nearer
    to a ``singular`` point than ``GRADING_RATIO`` times their size are halved too, up to
    ``GRADING_LEVELS`` times (as :func:`_graded_triangles`). None where no cell is cut or graded."""
    d = box.dim
    pts_s = np.asarray(singular, dtype=np.float64).reshape(-1, d)
    q = max(1, min(GAUSS_ORDER, m))
    cells = max(1, round(m / q))
    t, w = _gauss_01(q)
    ref = _tensor([(t, w)] * d)  # q^d points in the unit cell
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * d, indexing="ij")).reshape(d, -1).T
    probe = np.concatenate([ref[0], corners])
    size = (box.hi - box.lo) / cells
    grid = np.array(np.meshgrid(*[np.arange(cells)] * d, indexing="ij")).reshape(d, -1).T
    lo = box.lo + grid * size
    leaves = []
    depth = CUT_DEPTH.get(d, 2)
    for rnd in range(max(depth, GRADING_LEVELS if len(pts_s) else 0)):
        cut = np.zeros(len(lo), dtype=bool)
        if rnd < depth:
            flat = (lo[:, None, :] + probe[None, :, :] * size).reshape(-1, d)
            for f in levels:
                v = np.broadcast_to(np.asarray(f(flat), dtype=np.float64), (len(flat),)).reshape(len(lo), -1)
                cut |= (v > 0).any(axis=1) & (v < 0).any(axis=1)
        if len(pts_s) and rnd < GRADING_LEVELS:
            for q in pts_s:  # distance from q to each cell
                gap = np.linalg.norm(np.clip(q[None, :], lo, lo + size) - q[None, :], axis=1)
                cut |= gap < GRADING_RATIO * float(size.max()) + 1e-12 * max(1.0, float(np.abs(q).max()))
        if not leaves and not cut.any():
            return None
        leaves.append((lo[~cut], size.copy()))
        if not cut.any():
            lo = lo[:0]
            break
        size = size / 2.0
        lo = (lo[cut][:, None, :] + corners[None, :, :] * size).reshape(-1, d)
    leaves.append((lo, size))
    xs, ws = [], []
    for cell_lo, cell_size in leaves:
        if len(cell_lo):
            xs.append((cell_lo[:, None, :] + ref[0][None, :, :] * cell_size).reshape(-1, d))
            ws.append(np.repeat(np.prod(cell_size) * ref[1][None, :], len(cell_lo), axis=0).reshape(-1))
    return np.concatenate(xs), np.concatenate(ws)


def _box_boundary(box, n: int):
    """Each face gets a rule in ``d - 1`` dimensions with about ``n * area / |dOmega|`` points."""
    d = box.dim
    xs, ns, faces, ws = [], [], [], []
    for face in range(2 * d):
        axis, upper = face // 2, face % 2 == 1
        if d == 1:
            free, w = np.empty((1, 0)), np.ones(1)
        else:
            share = max(1.0, n * box.face_area[face] / box.boundary_measure)
            m = max(1, round(share ** (1.0 / (d - 1))))
            others = [j for j in range(d) if j != axis]
            free, w = _tensor([_axis_rule(box.lo[j], box.hi[j], m) for j in others])
        x = np.empty((len(w), d))
        x[:, [j for j in range(d) if j != axis]] = free
        x[:, axis] = box.hi[axis] if upper else box.lo[axis]
        normal = np.zeros((len(w), d))
        normal[:, axis] = 1.0 if upper else -1.0
        xs.append(x), ns.append(normal), ws.append(w), faces.append(np.full(len(w), face, np.int64))
    return np.concatenate(xs), np.concatenate(ns), np.concatenate(faces), np.concatenate(ws)


def _triangle_rule():
    from skfem.quadrature import get_quadrature
    from skfem.refdom import RefTri

    ref, w = get_quadrature(RefTri, _TRIANGLE_DEGREE)
    assert (w > 0).all()
    return ref, w


#: Levels of the grading towards a singular point (:func:`_graded_triangles`): the pieces at the
#: point are ``2^GRADING_LEVELS`` times smaller than the mesh's triangles.
GRADING_LEVELS = 12
#: A triangle is split while its distance to a singular point is below this times its size.
GRADING_RATIO = 0.5


def _triangle_distance(a, b, c, q) -> np.ndarray:
    """Distance from the point ``q`` (2,) to each triangle ``(a, b, c)`` (0 inside it)."""
    def edge(p0, p1):
        e = p1 - p0
        t = np.clip(((q - p0) * e).sum(axis=1) / np.maximum((e * e).sum(axis=1), 1e-300), 0.0, 1.0)
        return np.linalg.norm(q - p0 - t[:, None] * e, axis=1)

    def cross(p0, p1):
        return (p1[:, 0] - p0[:, 0]) * (q[1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (q[0] - p0[:, 0])

    s1, s2, s3 = cross(a, b), cross(b, c), cross(c, a)
    inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    d = np.minimum(np.minimum(edge(a, b), edge(b, c)), edge(c, a))
    return np.where(inside, 0.0, d)


def _graded_triangles(a, b, c, singular, tol: float, levels: int = GRADING_LEVELS):
    """The triangles ``(a, b, c)`` (arrays (t, 2)) refined geometrically towards the ``singular``
    points: a triangle whose distance to one of them (0 for a triangle that contains it) is below
    ``GRADING_RATIO`` times its longest edge is split into the four triangles of its edge midpoints,
    up to ``levels`` times. The pieces at distance ``rho`` then have size ``~rho``, so a gradient
    like ``r^(lam - 1)`` is integrated with the same relative accuracy on each, and the last ones,
    at the point, are ``2^levels`` times smaller than the mesh's triangles (``tol``: a triangle
    within ``tol`` of a point counts as touching it). On the L-shape's re-entrant corner the
    energy of ``r^(2/3) sin(2 theta/3)`` with about 2500 points is off by 8e-4 without the grading,
    1.5e-6 with it (5000 points; ratio 1: 8e-8 with 8500 points)."""
    pts = np.asarray(singular, dtype=np.float64).reshape(-1, 2)
    if not len(pts):
        return a, b, c
    done = [[], [], []]
    for _ in range(levels + 1):
        size = np.max([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1),
                       np.linalg.norm(a - c, axis=1)], axis=0)
        dist = np.min([_triangle_distance(a, b, c, q) for q in pts], axis=0)
        split = dist < GRADING_RATIO * size + tol
        if _ == levels:
            split[:] = False
        for k, q in enumerate((a, b, c)):
            done[k].append(q[~split])
        if not split.any():
            break
        a, b, c = a[split], b[split], c[split]
        ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
        a, b, c = (np.concatenate(t) for t in ((a, ab, ca, ab), (ab, b, bc, bc), (ca, bc, c, ca)))
    return tuple(np.concatenate(d) for d in done)


def _polygon_interior(poly, n: int, singular=()):
    from hrta_pde.poisson.mesh import mesh_shape

    ref, wref = _triangle_rule()
    triangles = max(2.0, n / len(wref))
    mesh = mesh_shape(poly, math.sqrt(2.0 * poly.measure / triangles))
    p, t = mesh.points[:, :2], mesh.cells[0].data
    a, b, c = p[t[:, 0]], p[t[:, 1]], p[t[:, 2]]
    a, b, c = _graded_triangles(a, b, c, singular, 1e-9 * max(1.0, float(np.abs(p).max())))
    e1, e2 = b - a, c - a
    det = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    x = a[:, None, :] + ref[0][None, :, None] * e1[:, None, :] + ref[1][None, :, None] * e2[:, None, :]
    w = det[:, None] * wref[None, :]
    return x.reshape(-1, 2), w.reshape(-1) * (poly.measure / w.sum())  # exact area, not the mesh's sum


def _polygon_boundary(poly, n: int):
    xs, ns, ws = [], [], []
    for a, edge, length, normal in zip(poly._a, poly._edge, poly._len, poly._normals):
        m = max(GAUSS_ORDER, round(n * length / poly.boundary_measure))
        t, w = _axis_rule(0.0, 1.0, m)
        xs.append(a + t[:, None] * edge)
        ns.append(np.repeat(normal[None, :], len(t), axis=0))
        ws.append(w * length)
    x = np.concatenate(xs)
    return x, np.concatenate(ns), np.full(len(x), -1, np.int64), np.concatenate(ws)


def interior_rule(shape, n: int, levels=(), singular=()) -> tuple[np.ndarray, np.ndarray]:
    """About ``n`` interior Gauss points of ``shape`` and their weights (summing to its measure).
    ``levels``: numpy level functions of interfaces where the integrand may jump; on a box the cells
    they cut are refined (:func:`_cut_box_interior`; more points than ``n`` then). ``singular``:
    points (k, 2) of a polygon where the integrand may be singular (its corners of
    :mod:`hrta_pde.poisson.singular`); the triangles there are graded (:func:`_graded_triangles`)."""
    from hrta_pde.poisson.geometry import Box

    check_gauss(shape)
    rings = _rings(shape)
    if rings:
        return _ring_interior(rings, n)
    return _box_interior(shape, n, levels, singular) if isinstance(shape, Box) else _polygon_interior(shape, n, singular)


def boundary_rule(shape, n: int):
    """About ``n`` boundary Gauss points: ``(x, normal, face, weight)``, the weights summing to the
    boundary measure (faces labelled as :meth:`hrta_pde.poisson.geometry.Shape.boundary`)."""
    from hrta_pde.poisson.geometry import Box

    check_gauss(shape)
    rings = _rings(shape)
    if rings:
        return _ring_boundary(rings, n)
    return _box_boundary(shape, n) if isinstance(shape, Box) else _polygon_boundary(shape, n)
