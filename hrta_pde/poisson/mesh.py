"""Conforming simplex meshes of DeepXDE geometries, and writing point data for ParaView.

:func:`mesh_geometry` turns a DeepXDE geometry into a :class:`meshio.Mesh` whose cells cover the
actual domain: no cell lies outside it, holes stay empty, and curved boundaries are followed to
the mesh size (every boundary vertex lies exactly on the boundary curve).

* 1-D: ``Interval`` (and unions/differences/intersections of intervals) -> ``"line"`` cells.
* 2-D: ``Rectangle``/``Hypercube``, ``Polygon`` (convex or not), ``Triangle``, ``Disk``/
  ``Hypersphere``, ``Ellipse``, ``StarShaped`` and any CSG combination of them (``|``, ``-``,
  ``&``) -> ``"triangle"`` cells, counterclockwise.
* 3-D: ``Cuboid``/``Hypercube`` -> structured ``"tetra"`` cells (6 per grid cube);
  ``Sphere``/``Hypersphere`` -> Delaunay ``"tetra"`` cells, right-handed.

The 2-D mesher is a small conforming-Delaunay scheme built on scipy: boundary vertices at
spacing <= h on the exact boundary curves (corners and curve crossings included), interior
vertices on a hexagonal lattice kept >= h/2 from the boundary, ``scipy.spatial.Delaunay``, then
boundary segments missing from the triangulation are split at their (curve) midpoint until every
one is an edge, and triangles whose centroid is outside the domain are dropped.

:func:`write_mesh` writes a mesh plus point data in any format meshio knows, chosen by the file
suffix (``.vtu`` for ParaView), atomically. ``.xdmf``/``.xmf`` is written here, with the data
inline (one self-contained file, no ``.h5`` companion, no h5py needed).
:func:`write_points_csv` is the fallback for domains of dimension > 3.
"""
from __future__ import annotations

import math
import os
import pathlib
import uuid
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import meshio
import numpy as np
from scipy.spatial import Delaunay, QhullError, cKDTree
from hrta_pde.io.atomic import atomic_write

__all__ = ["MeshError", "mesh_geometry", "cell_measures", "write_mesh", "write_points_csv"]


class MeshError(ValueError):
    """A mesh cannot be built or written; the message is one line and says what to do."""


SUPPORTED = (
    "Interval (1-D); Rectangle, Polygon, Triangle, Disk, Ellipse, StarShaped, Hypercube, "
    "Hypersphere and their CSG combinations with |, -, & (2-D); Cuboid, Hypercube, Sphere, "
    "Hypersphere (3-D)"
)
# Guard against an h that would need more memory than a laptop has.
MAX_POINTS = 4_000_000


def _dde():
    from hrta_pde._backend import import_deepxde

    return import_deepxde()


# ----------------------------------------------------------------------------------------------
# mesh_geometry
# ----------------------------------------------------------------------------------------------
def mesh_geometry(geom, h: float) -> meshio.Mesh:
    """Mesh the domain of DeepXDE geometry ``geom`` with cells of size about ``h``.

    Returns a :class:`meshio.Mesh` with ``geom.dim`` point columns and a single cell block:
    ``"line"`` (1-D), ``"triangle"`` (2-D, counterclockwise) or ``"tetra"`` (3-D, positive
    volume). Raises :class:`MeshError` for a bad ``h``, a domain of dimension > 3 or a geometry
    type without a mesher.
    """
    try:
        h = float(h)
    except (TypeError, ValueError):
        raise MeshError(f"mesh size h={h!r} is not a number: pass a float > 0") from None
    if not math.isfinite(h) or h <= 0:
        raise MeshError(f"mesh size h={h!r} must be finite and > 0: pass e.g. h=0.05")
    dde = _dde()
    geo = dde.geometry
    if not isinstance(geom, geo.Geometry):
        raise MeshError(
            f"cannot mesh a {type(geom).__name__}: pass a DeepXDE geometry ({SUPPORTED})"
        )
    if isinstance(geom, geo.GeometryXTime):
        raise MeshError(
            "cannot mesh a GeometryXTime: mesh its spatial part (geom.geometry) and write one "
            "file per time"
        )
    dim = int(geom.dim)
    if dim > 3:
        raise MeshError(
            f"no mesh for a {dim}-dimensional domain: ParaView meshes stop at 3-D; "
            "export point values as CSV instead (.csv)"
        )
    mesher = {1: _mesh_1d, 2: _mesh_2d, 3: _mesh_3d}[dim]
    with warnings.catch_warnings():
        # DeepXDE's Triangle.inside calls np.cross on 2-D vectors (deprecated in NumPy 2).
        warnings.simplefilter("ignore", DeprecationWarning)
        return mesher(geom, h, geo)


def _unsupported(geom, dim):
    return MeshError(
        f"no mesher for {type(geom).__name__} in {dim}-D: supported are {SUPPORTED}"
    )


def _check_size(n_est, h, what):
    if n_est > MAX_POINTS:
        raise MeshError(
            f"h={h:g} would put about {int(n_est):,} points in the {what}: "
            f"use a larger h (the limit is {MAX_POINTS:,} points)"
        )


def _csg_leaves(geom, geo, dim):
    """The primitive geometries of a (nested) CSG expression, left to right."""
    csg = (geo.csg.CSGUnion, geo.csg.CSGDifference, geo.csg.CSGIntersection)
    if isinstance(geom, csg):
        return _csg_leaves(geom.geom1, geo, dim) + _csg_leaves(geom.geom2, geo, dim)
    return [geom]


# ---------------------------------------------------------------------------------------- 1-D
def _mesh_1d(geom, h, geo):
    bounds = []
    for leaf in _csg_leaves(geom, geo, 1):
        if isinstance(leaf, geo.Interval):
            bounds += [float(leaf.l), float(leaf.r)]
        elif isinstance(leaf, geo.Hypercube):
            bounds += [float(leaf.xmin[0]), float(leaf.xmax[0])]
        elif isinstance(leaf, geo.Hypersphere):
            c, r = float(leaf.center[0]), float(leaf.radius)
            bounds += [c - r, c + r]
        else:
            raise _unsupported(leaf, 1)
    breaks = np.unique(np.asarray(bounds, dtype=np.float64))
    mids = 0.5 * (breaks[1:] + breaks[:-1])
    keep = np.asarray(geom.inside(mids[:, None]), dtype=bool).reshape(-1)
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
        raise MeshError(f"the 1-D domain {type(geom).__name__} is empty: check its bounds")
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


def _line(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    # (1 - t) a + t b: exactly a at t=0 and exactly b at t=1.
    return _Curve(lambda t: (1.0 - t)[:, None] * a + t[:, None] * b, straight=True)


def _loop(vertices):
    v = np.asarray(vertices, dtype=np.float64)
    return [_line(v[i], v[(i + 1) % len(v)]) for i in range(len(v))]


def _leaf_curves(leaf, geo):
    if isinstance(leaf, geo.Hypercube):  # Rectangle, or a 2-D Hypercube
        (x0, y0), (x1, y1) = np.asarray(leaf.xmin, float), np.asarray(leaf.xmax, float)
        return _loop([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if isinstance(leaf, geo.Polygon):
        return _loop(leaf.vertices)
    if isinstance(leaf, geo.Triangle):
        return _loop([leaf.x1, leaf.x2, leaf.x3])
    if isinstance(leaf, geo.Hypersphere):  # Disk, or a 2-D Hypersphere
        c, r = np.asarray(leaf.center, dtype=np.float64), float(leaf.radius)

        def circle(t):
            a = 2 * np.pi * t
            return c + r * np.stack([np.cos(a), np.sin(a)], axis=1)

        return [_Curve(circle)]
    if isinstance(leaf, geo.Ellipse):
        c = np.asarray(leaf.center, dtype=np.float64)
        rot = np.asarray(leaf.rotation_mat, dtype=np.float64)
        a, b = float(leaf.semimajor), float(leaf.semiminor)

        def ellipse(t):
            th = 2 * np.pi * t
            return np.stack([a * np.cos(th), b * np.sin(th)], axis=1) @ rot.T + c

        return [_Curve(ellipse)]
    if isinstance(leaf, geo.StarShaped):
        c = np.asarray(leaf.center, dtype=np.float64)

        def star(t):
            th = 2 * np.pi * t
            r = leaf._r_theta(th)
            return c + r[:, None] * np.stack([np.cos(th), np.sin(th)], axis=1)

        return [_Curve(star)]
    raise _unsupported(leaf, 2)


def _inside(g, x):
    return np.asarray(g.inside(x), dtype=bool).reshape(-1)


def _crossings(curve, other, h):
    """Parameters where ``curve`` enters or leaves the closed set ``other`` (by bisection)."""
    n = max(256, 16 * math.ceil(curve.length / h))
    t = np.linspace(0.0, 1.0, n + 1)
    ins = _inside(other, curve(t))
    k = np.nonzero(ins[1:] != ins[:-1])[0]
    if len(k) == 0:
        return np.empty(0)
    lo, hi, side = t[k].copy(), t[k + 1].copy(), ins[k]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        same = _inside(other, curve(mid)) == side
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
    on = _inside(geom, mid + eps * nrm) != _inside(geom, mid - eps * nrm)
    # A stretch shared with an earlier primitive's boundary is already there.
    li_of = np.array([li for _, li, _, _ in pieces])
    for lk, leaf in enumerate(leaves[:-1]):
        later = on & (li_of > lk)
        if later.any():
            shared = np.asarray(leaf.on_boundary(mid[later]), dtype=bool).reshape(-1)
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


def _mesh_2d(geom, h, geo):
    leaves = _csg_leaves(geom, geo, 2)
    curves = [(li, c) for li, leaf in enumerate(leaves) for c in _leaf_curves(leaf, geo)]
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
    cand = cand[_inside(geom, cand)]
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

    cells = simp[_inside(geom, pts[simp].mean(axis=1))]
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
            f"Delaunay triangulation of {name} at h={h:g} failed ({_one_line(err)[:80]}): "
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
def _mesh_3d(geom, h, geo):
    if isinstance(geom, geo.Hypercube):  # Cuboid, or a 3-D Hypercube
        return _mesh_box(np.asarray(geom.xmin, float), np.asarray(geom.xmax, float), h)
    if isinstance(geom, geo.Hypersphere):  # Sphere, or a 3-D Hypersphere
        return _mesh_ball(np.asarray(geom.center, float), float(geom.radius), h)
    raise _unsupported(geom, 3)


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


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
COMMON_SUFFIXES = ".vtu (ParaView), .xdmf, .vtk"
_XDMF = (".xdmf", ".xmf")
# Formats that want x, y, z points (meshio would pad them itself, with a console warning; XDMF
# has no "X" geometry). Other formats get the points as they are.
_PAD_TO_3D = {"vtu", "vtk", "vtk42", "vtk51", "xdmf", "gmsh", "gmsh22", "nastran", "avsucd",
              "off", "mdpa", "stl", "permas", "tetgen"}
_VECTORS_3D = {"vtk", "vtk42", "vtk51", "gmsh", "gmsh22"}  # 2-vectors get a zero third component
_PREFERRED = {".msh": "gmsh"}  # meshio lists ansys first for .msh; gmsh is the common one
_MULTI_FILE = {"tetgen"}  # writes companion files named after the target: no temp name


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _check_target(path) -> pathlib.Path:
    path = pathlib.Path(os.fspath(path)).expanduser()
    folder = path.parent
    if path.is_dir():
        raise _cannot(path, f"it is a folder; give a file name such as {path / 'solution.vtu'}")
    if not folder.exists():
        raise _cannot(path, f"folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise _cannot(path, f"{folder} is not a folder; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _cannot(path, f"folder {folder} is not writable; choose another output folder")
    return path


def _cannot(path, why):
    return MeshError(f"cannot write {path}: {why}")


def _as_array(name, value, n, what):
    if not isinstance(name, str) or not name:
        raise MeshError(f"{what} names must be non-empty strings, got {name!r}")
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iuf":
        raise MeshError(f"{what} {name!r} has dtype {arr.dtype}: pass real numbers")
    if n is not None and (arr.ndim not in (1, 2) or arr.shape[0] != n):
        raise MeshError(
            f"{what} {name!r} has shape {arr.shape} but the mesh has {n} points: pass shape "
            f"({n},) or ({n}, k), values at mesh.points"
        )
    return np.ascontiguousarray(arr)


def _atomic(path, write, direct=False):
    """Run ``write(target)`` on a temporary name in the same folder, then rename it to path."""
    if direct:
        try:
            write(path)
        except OSError as err:
            why = _one_line(err.strerror or err)
            raise _cannot(path, f"{why}; choose another output folder") from None
        return path
    try:
        return atomic_write(path, write)
    except OSError as err:
        why = _one_line(err.strerror or err)
        raise _cannot(path, f"{why}; choose another output folder") from None


def write_mesh(mesh: meshio.Mesh, path, point_data: Mapping[str, np.ndarray],
               field_data: Mapping | None = None) -> pathlib.Path:
    """Write ``mesh`` with ``point_data`` (name -> (n,) or (n, k) array) to ``path``.

    The format comes from the suffix: ``.vtu`` (ParaView's native format), ``.xdmf``/``.xmf``
    (written here with the data inline: one self-contained file that ParaView opens; meshio's
    reader still wants h5py installed, although it does not use it for inline data), ``.vtk``,
    ``.msh`` (Gmsh) or anything else meshio writes. 1-D and 2-D points get zero columns for formats
    that need x, y, z (VTK, XDMF, Gmsh, ...); legacy ``.vtk`` and Gmsh also pad 2-component
    vectors to 3 components.
    ``field_data`` (name -> number or numeric array, e.g. ``{"time": 0.5}``) goes into a
    ``<FieldData>`` block, ``.vtu`` only. The file is written under a temporary name in the same
    folder and renamed, so a reader never sees half a file. Returns the path written.
    """
    path = pathlib.Path(os.fspath(path)).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raise MeshError(
            f"{path}: a .csv file holds no cells; use write_points_csv, or {COMMON_SUFFIXES}"
        )
    if suffix in _XDMF:
        fmt = "xdmf"
    elif suffix in _PREFERRED:
        fmt = _PREFERRED[suffix]
    else:
        formats = meshio.extension_to_filetypes.get(suffix)
        if not formats:
            raise MeshError(
                f"unknown mesh file suffix {suffix or '(none)'!r} in {path}: use {COMMON_SUFFIXES} "
                "or another suffix meshio writes"
            )
        fmt = formats[0]
    path = _check_target(path)

    points = np.asarray(mesh.points, dtype=np.float64)
    n = len(points)
    pdata = {k: _as_array(k, v, n, "point data") for k, v in (point_data or {}).items()}
    fdata = {}
    for k, v in (field_data or {}).items():
        fdata[k] = np.atleast_1d(_as_array(k, v, None, "field data"))
        if fdata[k].ndim > 2:
            raise MeshError(
                f"field data {k!r} has shape {fdata[k].shape}: pass a number or a 1-D/2-D array"
            )
    if fdata and fmt != "vtu":
        raise MeshError(
            f"{path}: field_data is stored in .vtu files only; write .vtu, or pass field_data=None"
        )
    if fmt in _PAD_TO_3D and points.shape[1] < 3:
        points = np.hstack([points, np.zeros((n, 3 - points.shape[1]))])
    if fmt in _VECTORS_3D:
        pdata = {k: np.hstack([v, np.zeros((n, 1), v.dtype)]) if v.ndim == 2 and v.shape[1] == 2
                 else v for k, v in pdata.items()}
    cells = [(b.type, np.asarray(b.data)) for b in mesh.cells]

    if fmt == "xdmf":
        return _atomic(path, lambda target: _write_xdmf(target, points, cells, pdata))

    out = meshio.Mesh(points, cells, point_data=pdata)

    def write(target):
        try:
            meshio.write(target, out, file_format=fmt)
        except (meshio.WriteError, ValueError, KeyError, TypeError) as err:
            why = _one_line(err)
            raise MeshError(f"meshio cannot write {path} as {fmt}: {why}; try .vtu") from None
        if fdata:
            _add_vtu_field_data(target, fdata)

    return _atomic(path, write, direct=fmt in _MULTI_FILE)


def _add_vtu_field_data(target, fdata):
    """Insert a <FieldData> block (meshio 5.3 does not write one) into a VTU file."""
    block = ET.Element("FieldData")
    for name, arr in fdata.items():
        vtype = {"f": "Float64", "i": "Int64", "u": "UInt64"}[arr.dtype.kind]
        da = ET.SubElement(block, "DataArray", type=vtype, Name=name,
                           NumberOfTuples=str(arr.shape[0]), format="ascii")
        if arr.ndim == 2:
            da.set("NumberOfComponents", str(arr.shape[1]))
        da.text = " ".join(map(repr if arr.dtype.kind == "f" else str, arr.reshape(-1).tolist()))
    data = pathlib.Path(target).read_bytes()
    tag = b"<UnstructuredGrid>"
    at = data.find(tag)
    if at < 0:
        raise MeshError(f"{target}: no <UnstructuredGrid> in meshio's VTU output for field_data")
    at += len(tag)
    pathlib.Path(target).write_bytes(data[:at] + ET.tostring(block) + data[at:])


def _xdmf_item(parent, arr):
    from meshio.xdmf.common import numpy_to_xdmf_dtype

    if arr.dtype.name not in numpy_to_xdmf_dtype:
        arr = arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64)
    dt, prec = numpy_to_xdmf_dtype[arr.dtype.name]
    item = ET.SubElement(parent, "DataItem", DataType=dt, Dimensions=" ".join(map(str, arr.shape)),
                         Format="XML", Precision=prec)
    # repr() of a Python float is the shortest text that reads back to the same float64 (and a
    # float32 value widened to float64 reads back to the same float32).
    fmt = repr if arr.dtype.kind == "f" else str
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    item.text = "\n" + "\n".join(" ".join(map(fmt, row)) for row in flat.tolist()) + "\n"


def _write_xdmf(target, points, cells, pdata):
    from meshio.xdmf.common import attribute_type, meshio_to_xdmf_type

    if len(cells) != 1:
        raise MeshError(f"{target}: XDMF here takes one cell type, not {len(cells)}; write .vtu")
    ctype, cdata = cells[0]
    if ctype not in meshio_to_xdmf_type:
        raise MeshError(f"XDMF has no {ctype!r} cells; write .vtu")
    root = ET.Element("Xdmf", Version="3.0")
    grid = ET.SubElement(ET.SubElement(root, "Domain"), "Grid", Name="Grid")
    _xdmf_item(ET.SubElement(grid, "Geometry", GeometryType="XYZ"[: points.shape[1]]), points)
    topo = ET.SubElement(grid, "Topology", TopologyType=meshio_to_xdmf_type[ctype][0],
                         NumberOfElements=str(len(cdata)), NodesPerElement=str(cdata.shape[1]))
    _xdmf_item(topo, cdata)
    for name, arr in pdata.items():
        att = ET.SubElement(grid, "Attribute", Name=name, AttributeType=attribute_type(arr),
                            Center="Node")
        _xdmf_item(att, arr)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)


def write_points_csv(points: np.ndarray, path, columns: Mapping[str, np.ndarray]) -> pathlib.Path:
    """Write point coordinates and values as CSV: header ``x1,...,xd,<columns>``.

    For domains with no mesh (dimension > 3) or any point cloud. A column of shape (n, k) becomes
    ``name_1, ..., name_k``. Values are written as the shortest text that reads back to the
    same float64. Written atomically like :func:`write_mesh`. Returns the path written.
    """
    path = _check_target(path)
    pts = _as_array("points", points, None, "points")
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2:
        raise MeshError(f"points has shape {pts.shape}: pass an (n, d) array")
    n, d = pts.shape
    header = [f"x{i + 1}" for i in range(d)]
    blocks = [pts.astype(np.float64)]
    for name, value in columns.items():
        if any(ch in name for ch in ',"\n\r'):
            raise MeshError(f"column name {name!r} has a comma, quote or newline: rename it")
        arr = _as_array(name, value, n, "column")
        if arr.ndim == 1 or arr.shape[1] == 1:
            header.append(name)
            blocks.append(arr.reshape(n, 1).astype(np.float64))
        else:
            header += [f"{name}_{j + 1}" for j in range(arr.shape[1])]
            blocks.append(arr.astype(np.float64))
    if len(set(header)) != len(header):
        raise MeshError(f"CSV columns repeat a name ({', '.join(header)}): rename the columns")
    table = np.hstack(blocks)

    def write(target):
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(",".join(header) + "\n")
            for row in table.tolist():
                f.write(",".join(map(repr, row)) + "\n")

    return _atomic(path, write)
