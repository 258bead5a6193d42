"""Conforming simplex meshes of the exact shapes of :mod:`hrta_pde.poisson.geometry`.

:func:`mesh_shape` turns a shape (``problem.shape``) into a :class:`meshio.Mesh` whose cells cover
the actual domain: no cell lies outside it, holes stay empty, and curved boundaries are followed
to the mesh size (every boundary vertex lies exactly on the boundary curve).

* 1-D: intervals and their unions, differences and intersections -> ``"line"`` cells.
* 2-D: boxes, polygons (convex or not), disks and any CSG combination of them -> ``"triangle"``
  cells, counterclockwise.
* 3-D: boxes -> structured ``"tetra"`` cells (6 per grid cube); balls -> Delaunay ``"tetra"``
  cells, right-handed.

The 2-D mesher is a small conforming-Delaunay scheme built on scipy: boundary vertices at
spacing <= h on the exact boundary curves of the primitives (:meth:`Shape.curves`; corners and
curve crossings included), interior vertices on a hexagonal lattice kept >= h/2 from the
boundary, ``scipy.spatial.Delaunay``, then boundary segments missing from the triangulation are
split at their (curve) midpoint until every one is an edge, and triangles whose centroid is
outside the domain are dropped.  Writing meshes to files is :mod:`hrta_pde.io.meshfiles`.
"""
from __future__ import annotations

import math

import meshio
import numpy as np
from scipy.spatial import Delaunay, QhullError, cKDTree

from hrta_pde.io.meshfiles import MeshError
from hrta_pde.poisson.geometry import Ball, Box, Shape

__all__ = ["MeshError", "mesh_shape", "cell_measures"]

SUPPORTED = "intervals and their CSG combinations (1-D); boxes, polygons, disks and their CSG " \
    "combinations (2-D); boxes and balls (3-D)"
# Guard against an h that would need more memory than a laptop has.
MAX_POINTS = 4_000_000


# ----------------------------------------------------------------------------------------------
# mesh_shape
# ----------------------------------------------------------------------------------------------
def mesh_shape(shape: Shape, h: float, *, keep: bool = False) -> meshio.Mesh:
    """Mesh the domain of ``shape`` (e.g. ``problem.shape``) with cells of size about ``h``.

    Returns a :class:`meshio.Mesh` with ``shape.dim`` point columns and a single cell block:
    ``"line"`` (1-D), ``"triangle"`` (2-D, counterclockwise) or ``"tetra"`` (3-D, positive
    volume). Raises :class:`MeshError` for a bad ``h``, a domain of dimension > 3 or a shape
    without a mesher (a 3-D CSG domain). ``keep``: hold this mesh apart from the last few kept
    (the export's mesh, made before a training whose FEM reference meshes the domain again).
    """
    try:
        h = float(h)
    except (TypeError, ValueError):
        raise MeshError(f"mesh size h={h!r} is not a number: pass a float > 0") from None
    if not math.isfinite(h) or h <= 0:
        raise MeshError(f"mesh size h={h!r} must be finite and > 0: pass e.g. h=0.05")
    if not isinstance(shape, Shape):
        raise MeshError(f"cannot mesh a {type(shape).__name__}: pass a shape of "
                        f"hrta_pde.poisson.geometry such as problem.shape ({SUPPORTED})")
    if shape.dim > 3:
        raise MeshError(
            f"no mesh for a {shape.dim}-dimensional domain: ParaView meshes stop at 3-D; "
            "export point values as CSV instead (.csv)"
        )
    key = (id(shape), h)
    if key in _PINNED and _PINNED[key][0] is shape:
        mesh = _PINNED[key][1]
    else:
        if key not in _MESHES or _MESHES[key][0] is not shape:
            _MESHES[key] = (shape, {1: _mesh_1d, 2: _mesh_2d, 3: _mesh_3d}[shape.dim](shape, h))
            while len(_MESHES) > _MESHES_KEPT:
                _MESHES.pop(next(iter(_MESHES)))
        mesh = _MESHES[key][1]
        if keep:
            _PINNED[key] = _MESHES[key]
            while len(_PINNED) > _PINNED_KEPT:
                _PINNED.pop(next(iter(_PINNED)))
    # a copy: the caller may change its arrays
    return meshio.Mesh(mesh.points.copy(), [(block.type, block.data.copy()) for block in mesh.cells])


#: The last meshes made, by (shape, h): one run's plot and its exports mesh the domain once.
_MESHES: dict = {}
_MESHES_KEPT = 4
#: Meshes asked for with ``keep=True`` (the export's), apart from the others.
_PINNED: dict = {}
_PINNED_KEPT = 2


def _unsupported(shape, dim):
    return MeshError(f"no mesher for a {type(shape).__name__} in {dim}-D: supported are {SUPPORTED}")


def _check_size(n_est, h, what):
    if n_est > MAX_POINTS:
        raise MeshError(
            f"h={h:g} would put about {int(n_est):,} points in the {what}: "
            f"use a larger h (the limit is {MAX_POINTS:,} points)"
        )




# ---------------------------------------------------------------------------------------- 1-D
def _mesh_1d(shape, h):
    bounds = []
    for leaf in shape.leaves():
        if not isinstance(leaf, Box):
            raise _unsupported(leaf, 1)
        bounds += [float(leaf.lo[0]), float(leaf.hi[0])]
    breaks = np.unique(np.asarray(bounds, dtype=np.float64))
    mids = 0.5 * (breaks[1:] + breaks[:-1])
    keep = shape.inside(mids[:, None])
    _check_size(np.sum(np.diff(breaks)[keep]) / h, h, "interval")
    pieces = []
    start = None
    for i, k in enumerate(keep):  # join adjacent kept sub-intervals into runs
        if k and start is None:
            start = breaks[i]
        if start is not None and (not k or i == len(keep) - 1):
            end = breaks[i + 1] if k else breaks[i]
            n = max(1, math.ceil((end - start) / h - 1e-9))
            pieces.append(np.linspace(start, end, n + 1))
            start = None
    if not pieces:
        raise MeshError(f"the 1-D domain {type(shape).__name__} is empty: check its bounds")
    points, cells, offset = [], [], 0
    for x in pieces:
        points.append(x)
        idx = np.arange(offset, offset + len(x))
        cells.append(np.stack([idx[:-1], idx[1:]], axis=1))
        offset += len(x)
    return meshio.Mesh(np.concatenate(points)[:, None], [("line", np.concatenate(cells))])


# ---------------------------------------------------------------------------------------- 2-D
class _Curve:
    """A boundary curve p(t), t in [0, 1], evaluated exactly (no interpolation)."""

    def __init__(self, fn, straight=False):
        self.fn = fn
        self.straight = straight
        t = np.linspace(0.0, 1.0, 4097)
        self.length = float(np.sum(np.linalg.norm(np.diff(fn(t), axis=0), axis=1)))

    def __call__(self, t):
        return self.fn(np.asarray(t, dtype=np.float64).reshape(-1))

    def normal(self, t):
        d = 1e-7
        tangent = self(np.clip(t + d, 0, 1)) - self(np.clip(t - d, 0, 1))
        n = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        return n / np.linalg.norm(n, axis=1, keepdims=True)


def _crossings(curve, other, h):
    """Parameters where ``curve`` enters or leaves the closed set ``other`` (by bisection)."""
    n = max(256, 16 * math.ceil(curve.length / h))
    t = np.linspace(0.0, 1.0, n + 1)
    ins = other.inside(curve(t))
    k = np.nonzero(ins[1:] != ins[:-1])[0]
    if len(k) == 0:
        return np.empty(0)
    lo, hi, side = t[k].copy(), t[k + 1].copy(), ins[k]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        same = other.inside(curve(mid)) == side
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    return 0.5 * (lo + hi)


def _subdivide(curve, ta, tb, h):
    """Parameters ta = s_0 < ... < s_n = tb with arc length <= h between neighbours."""
    m = max(32, 32 * math.ceil(curve.length * (tb - ta) / h))
    s = np.linspace(ta, tb, m + 1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve(s), axis=0), axis=1))])
    n = max(1, math.ceil(arc[-1] / h - 1e-9))
    if not curve.straight:  # at least 16 chords on a whole closed curve, whatever h is
        n = max(n, math.ceil(16 * (tb - ta) - 1e-9))
    out = np.interp(np.linspace(0.0, arc[-1], n + 1), arc, s)
    out[0], out[-1] = ta, tb
    return out


def _boundary_2d(geom, leaves, curves, h, scale):
    """Boundary vertices and segments of the domain, on the exact curves."""
    eps = 1e-7 * scale
    # Cut every curve where it crosses another primitive's boundary.
    pieces = []  # (curve index, leaf index, ta, tb)
    for ci, (li, curve) in enumerate(curves):
        brk = [np.array([0.0, 1.0])]
        for lj, other in enumerate(leaves):
            if lj != li:
                brk.append(_crossings(curve, other, h))
        brk = np.unique(np.concatenate(brk))
        brk = brk[np.concatenate([[True], np.diff(brk) > 1e-13])]
        brk[-1] = 1.0
        pieces += [(ci, li, ta, tb) for ta, tb in zip(brk[:-1], brk[1:])]
    # A piece is on the domain boundary if the domain is on one side of it only.
    mid = np.array([curves[ci][1](np.array([0.5 * (ta + tb)]))[0] for ci, _, ta, tb in pieces])
    nrm = np.array([curves[ci][1].normal(np.array([0.5 * (ta + tb)]))[0]
                    for ci, _, ta, tb in pieces])
    on = geom.inside(mid + eps * nrm) != geom.inside(mid - eps * nrm)
    # A stretch shared with an earlier primitive's boundary is already there.
    li_of = np.array([li for _, li, _, _ in pieces])
    for lk, leaf in enumerate(leaves[:-1]):
        later = on & (li_of > lk)
        if later.any():
            shared = leaf.on_boundary(mid[later])
            on[np.nonzero(later)[0][shared]] = False
    seg_curve, seg_t, pts, exact = [], [], [], []
    for (ci, li, ta, tb), keep in zip(pieces, on):
        if not keep:
            continue
        curve = curves[ci][1]
        s = _subdivide(curve, ta, tb, h)
        pts.append(curve(s))
        exact.append((s == 0.0) | (s == 1.0))
        seg_curve.append(np.full(len(s) - 1, ci))
        seg_t.append(np.stack([s[:-1], s[1:]], axis=1))
    if not pts:
        raise MeshError(f"the 2-D domain {type(geom).__name__} has no boundary: is it empty?")
    # Consecutive parameter pairs become segments between consecutive points of each piece.
    sizes = [len(p) for p in pts]
    starts = np.cumsum([0] + sizes[:-1])
    seg = np.concatenate([np.stack([st + np.arange(n - 1), st + np.arange(1, n)], axis=1)
                          for st, n in zip(starts, sizes)])
    pts, exact = np.concatenate(pts), np.concatenate(exact)
    # Merge coincident vertices: piece ends, and curve crossings found from both curves (a
    # tangential crossing is only located to ~sqrt(machine epsilon)). Features smaller than
    # 1e-6 of the domain size vanish. A merged vertex is a curve end (a polygon corner, exact)
    # where the group has one, else the first bisection result.
    order = np.argsort(~exact, kind="stable")
    rank = np.empty(len(pts), dtype=np.intp)
    rank[order] = np.arange(len(pts))
    rep = np.arange(len(pts))
    for i, j in cKDTree(pts).query_pairs(1e-6 * scale):
        ri, rj = _find(rep, i), _find(rep, j)
        if ri != rj:
            lo_, hi_ = (ri, rj) if rank[ri] < rank[rj] else (rj, ri)
            rep[hi_] = lo_
    rep = np.array([_find(rep, i) for i in range(len(pts))])
    uniq, inv = np.unique(rep, return_inverse=True)
    pts, seg = pts[uniq], inv[seg].astype(np.int64)
    seg_curve, seg_t = np.concatenate(seg_curve), np.concatenate(seg_t)
    ok = seg[:, 0] != seg[:, 1]
    return pts, seg[ok], seg_curve[ok], seg_t[ok]


def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _point_segment_distance(p, a, b):
    ab = b - a
    t = np.clip(np.sum((p - a) * ab, axis=1) / np.maximum(np.sum(ab * ab, axis=1), 1e-300), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def _distance_to_segments(q, pts, seg, radius):
    """Distance from each q to the nearest segment, capped at ``radius``."""
    a, b = pts[seg[:, 0]], pts[seg[:, 1]]
    mid = 0.5 * (a + b)
    half = 0.5 * float(np.max(np.linalg.norm(b - a, axis=1)))
    lists = cKDTree(mid).query_ball_point(q, radius + half)
    lens = np.fromiter((len(x) for x in lists), dtype=np.intp, count=len(q))
    out = np.full(len(q), radius)
    if lens.sum() == 0:
        return out
    qi = np.repeat(np.arange(len(q)), lens)
    si = np.fromiter((s for x in lists for s in x), dtype=np.intp, count=int(lens.sum()))
    d = _point_segment_distance(q[qi], a[si], b[si])
    np.minimum.at(out, qi, d)
    return out


def _encroaching(q, pts, seg):
    """Mask of points q strictly inside the diametral circle of some segment."""
    if len(q) == 0 or len(seg) == 0:
        return np.zeros(len(q), dtype=bool)
    a, b = pts[seg[:, 0]], pts[seg[:, 1]]
    mid, rad = 0.5 * (a + b), 0.5 * np.linalg.norm(b - a, axis=1)
    hits = cKDTree(q).query_ball_point(mid, rad * (1 - 1e-9))
    mask = np.zeros(len(q), dtype=bool)
    for h_ in hits:
        mask[h_] = True
    return mask


def _mesh_2d(geom, h):
    leaves = geom.leaves()
    curves = [(li, _Curve(fn, straight)) for li, leaf in enumerate(leaves)
              for fn, straight in leaf.curves()]
    sample = np.concatenate([c(np.linspace(0, 1, 257)) for _, c in curves])
    lo, hi = sample.min(axis=0), sample.max(axis=0)
    scale = float(np.max(hi - lo))
    _check_size(np.prod(hi - lo) / (0.86 * h * h) + sum(c.length for _, c in curves) / h, h,
                "bounding box")
    bpts, seg, seg_curve, seg_t = _boundary_2d(geom, leaves, curves, h, scale)
    lo, hi = bpts.min(axis=0), bpts.max(axis=0)

    # Interior vertices: hexagonal lattice, inside, at least h/2 from the boundary.
    dy = h * math.sqrt(3) / 2
    ys = lo[1] + dy * (0.5 + np.arange(max(1, math.ceil((hi[1] - lo[1]) / dy))))
    xs = lo[0] + h * (0.25 + np.arange(max(1, math.ceil((hi[0] - lo[0]) / h) + 1)))
    gx, gy = np.meshgrid(xs, ys)
    gx = gx + 0.5 * h * (np.arange(len(ys)) % 2)[:, None]
    cand = np.stack([gx.ravel(), gy.ravel()], axis=1)
    cand = cand[geom.inside(cand)]
    if len(cand):
        cand = cand[_distance_to_segments(cand, bpts, seg, h) >= 0.5 * h]
    inner = cand[~_encroaching(cand, bpts, seg)]

    # Conforming Delaunay: split boundary segments until each one is a triangulation edge.
    n_boundary = len(bpts)
    for _ in range(40):
        pts = np.concatenate([bpts, inner])
        simp = _delaunay(pts, geom, h)
        n = len(pts)
        e = np.sort(np.concatenate([simp[:, [0, 1]], simp[:, [1, 2]], simp[:, [2, 0]]]), axis=1)
        s = np.sort(seg, axis=1)
        missing = ~np.isin(s[:, 0] * n + s[:, 1], e[:, 0] * n + e[:, 1])
        if not missing.any():
            break
        # Drop interior vertices crowding the missing segments; split those still missing.
        crowd = _encroaching(inner, bpts, seg[missing])
        if crowd.any():
            inner = inner[~crowd]
            continue
        if len(bpts) > 4 * n_boundary or np.min(np.diff(seg_t[missing], axis=1)) < 1e-9:
            break  # splitting is not converging: fail below instead of looping
        new_pts, new_seg, new_curve, new_t = [], [], [], []
        nb = len(bpts)
        for k in np.nonzero(missing)[0]:
            ci = seg_curve[k]
            t0, t1 = seg_t[k]
            tm = 0.5 * (t0 + t1)
            new_pts.append(curves[ci][1](np.array([tm]))[0])
            m = nb + len(new_pts) - 1
            new_seg += [[seg[k, 0], m], [m, seg[k, 1]]]
            new_curve += [ci, ci]
            new_t += [[t0, tm], [tm, t1]]
        keep = ~missing
        bpts = np.concatenate([bpts, np.asarray(new_pts)])
        seg = np.concatenate([seg[keep], np.asarray(new_seg, dtype=seg.dtype)])
        seg_curve = np.concatenate([seg_curve[keep], np.asarray(new_curve, dtype=seg_curve.dtype)])
        seg_t = np.concatenate([seg_t[keep], np.asarray(new_t)])
        inner = inner[~_encroaching(inner, bpts, seg)]
    if missing.any():
        raise MeshError(
            f"could not make a mesh of {type(geom).__name__} that follows its boundary at "
            f"h={h:g}: try a smaller h"
        )

    cells = simp[geom.inside(pts[simp].mean(axis=1))]
    a, b, c = pts[cells[:, 0]], pts[cells[:, 1]], pts[cells[:, 2]]
    u, w = b - a, c - a
    area = 0.5 * (u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0])
    good = np.abs(area) > 1e-12 * h * h
    cells, area = cells[good], area[good]
    flip = area < 0
    cells[flip] = cells[flip][:, [0, 2, 1]]
    _check_conforming(cells, seg, len(pts), geom, h)
    return _compact(pts, "triangle", cells)


def _delaunay(pts, geom, h):
    try:
        return Delaunay(pts).simplices.astype(np.int64)
    except QhullError as err:
        name = geom if isinstance(geom, str) else type(geom).__name__
        raise MeshError(
            f"Delaunay triangulation of {name} at h={h:g} failed ({' '.join(str(err).split())[:80]}): "
            "check that the domain is not degenerate, or try a smaller h"
        ) from None


def _check_conforming(cells, seg, n, geom, h):
    """Each boundary segment is an edge of one cell, and each free cell edge is a segment."""
    e = np.sort(np.concatenate([cells[:, [0, 1]], cells[:, [1, 2]], cells[:, [2, 0]]]), axis=1)
    codes, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)
    free = codes[counts == 1]
    s = np.sort(seg, axis=1)
    scodes = s[:, 0] * n + s[:, 1]
    if not (np.array_equal(np.sort(free), np.sort(np.unique(scodes))) and counts.max() <= 2):
        raise MeshError(
            f"could not make a mesh of {type(geom).__name__} that follows its boundary at "
            f"h={h:g}: try a smaller h"
        )


def _compact(points, cell_type, cells):
    used = np.unique(cells)
    new = np.full(len(points), -1, dtype=np.int64)
    new[used] = np.arange(len(used))
    return meshio.Mesh(np.ascontiguousarray(points[used], dtype=np.float64),
                       [(cell_type, new[cells].astype(np.int64))])


# ---------------------------------------------------------------------------------------- 3-D
def _mesh_3d(shape, h):
    if isinstance(shape, Box):
        return _mesh_box(shape.lo, shape.hi, h)
    if isinstance(shape, Ball):
        return _mesh_ball(shape.center, shape.radius, h)
    raise _unsupported(shape, 3)


def _tet_volume(p, cells):
    a = p[cells[:, 0]]
    return np.einsum("ij,ij->i", np.cross(p[cells[:, 1]] - a, p[cells[:, 2]] - a),
                     p[cells[:, 3]] - a) / 6.0


def _mesh_box(xmin, xmax, h):
    n = np.maximum(1, np.ceil((xmax - xmin) / h - 1e-9)).astype(int)
    _check_size(np.prod(n + 1), h, "cuboid")
    axes = [np.linspace(xmin[i], xmax[i], n[i] + 1) for i in range(3)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    idx = np.arange(np.prod(n + 1)).reshape(n + 1)
    base = idx[:-1, :-1, :-1].reshape(-1)
    stride = np.array([idx.strides[k] // idx.itemsize for k in range(3)])
    # Kuhn split: each cube into 6 tetrahedra along the main diagonal; conforming across cubes.
    tets = []
    for perm in ([0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]):
        v = [np.zeros(3, int)]
        for axis in perm:
            step = v[-1].copy()
            step[axis] = 1
            v.append(step)
        tets.append(np.stack([base + int(stride @ vi) for vi in v], axis=1))
    cells = np.concatenate(tets)
    vol = _tet_volume(g, cells)
    cells[vol < 0] = cells[vol < 0][:, [0, 2, 1, 3]]
    return meshio.Mesh(g, [("tetra", cells.astype(np.int64))])


def _mesh_ball(c, r, h):
    _check_size((2 * r / h) ** 3, h, "ball")
    # Surface: Fibonacci points at spacing about h (hexagonal density), exactly on the sphere.
    ns = max(12, math.ceil(4 * np.pi * r * r / (math.sqrt(3) / 2 * h * h)))
    i = np.arange(ns)
    z = 1 - (2 * i + 1) / ns
    rho = np.sqrt(1 - z * z)
    phi = i * np.pi * (3 - math.sqrt(5))
    surf = c + r * np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)
    # Interior: a jittered cubic lattice (no cospherical ties), >= h/2 inside the sphere.
    k = np.arange(-math.ceil(r / h), math.ceil(r / h) + 1) * h
    g = np.stack(np.meshgrid(k, k, k, indexing="ij"), axis=-1).reshape(-1, 3)
    g = g + np.random.default_rng(0).uniform(-0.1 * h, 0.1 * h, size=g.shape)
    g = g[np.linalg.norm(g, axis=1) <= r - 0.5 * h] + c
    pts = np.concatenate([surf, g])
    cells = _delaunay(pts, "ball", h)
    vol = _tet_volume(pts, cells)
    keep = np.abs(vol) > 1e-12 * h ** 3
    cells, vol = cells[keep], vol[keep]
    cells[vol < 0] = cells[vol < 0][:, [0, 2, 1, 3]]
    return _compact(pts, "tetra", cells)


# ----------------------------------------------------------------------------------------------
# cell_measures
# ----------------------------------------------------------------------------------------------
def cell_measures(mesh) -> np.ndarray:
    """Length / area / volume of every cell, cell blocks in order.

    A cell of the same dimension as the points (lines in 1-D, triangles in 2-D, tetrahedra in
    3-D) gets a *signed* measure: positive for increasing x, counterclockwise, right-handed.
    Cells embedded in a higher dimension (e.g. 2-D points padded to 3 columns) get the unsigned
    measure.
    """
    p = np.asarray(mesh.points, dtype=np.float64)
    d = p.shape[1]
    out = []
    for block in mesh.cells:
        c = np.asarray(block.data)
        if block.type == "line":
            v = p[c[:, 1]] - p[c[:, 0]]
            out.append(v[:, 0] if d == 1 else np.linalg.norm(v, axis=1))
        elif block.type == "triangle":
            u, w = p[c[:, 1]] - p[c[:, 0]], p[c[:, 2]] - p[c[:, 0]]
            if d == 2:
                out.append(0.5 * (u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0]))
            else:
                out.append(0.5 * np.linalg.norm(np.cross(u, w), axis=1))
        elif block.type == "tetra" and d == 3:
            out.append(_tet_volume(p, c))
        else:
            raise MeshError(
                f"cell_measures handles line, triangle and tetra cells, not {block.type!r} "
                f"with {d}-D points"
            )
    return np.concatenate(out) if out else np.empty(0)
