"""Exact shapes: box, ball and polygon (float64 numpy), the primitives of every domain.

A shape knows its domain exactly: membership (:meth:`Shape.classify`, :meth:`Shape.inside`),
outward normals, uniform samples of the interior and of the boundary, the measures ``|Omega|``
and ``|dOmega|``, its boundary pieces ("parts": box sides, polygon edges, the sphere) with their
distances and distance functions, and its boundary as exact curves for the 2-D mesher.
Combinations are in :mod:`hrta_pde.poisson.geometry.csg`. Every primitive is sampled exactly
in float64, with exact outward normals.

Example::

    >>> square = Box([0.0, 0.0], [1.0, 1.0])
    >>> square.measure, square.boundary_measure
    (1.0, 4.0)
    >>> square.classify(np.array([[0.5, 0.5], [1.0, 0.5], [2.0, 0.0]])).tolist()
    [-1, 0, 1]
"""
from __future__ import annotations

import contextlib
import io
import math

import numpy as np
from scipy.special import ndtri

from hrta_pde.poisson.distance import BallBubble, BoxBubble, Plane, Segment, Sphere
from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.sampling import uniform_source

__all__ = ["Shape", "Box", "Ball", "Polygon", "to_deepxde"]

# Relative tolerance for "on the boundary" (times the size of the coordinates).
TOL = 1e-9


def _normalize_rows(z: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    bad = norm[:, 0] < 1e-300
    if bad.any():  # probability zero; keep the rows finite
        z = z.copy()
        z[bad] = 0.0
        z[bad, 0] = 1.0
        norm[bad] = 1.0
    return z / norm


def _loop(vertices):
    """The straight edges of a closed polygon as ``(p(t), straight)`` curves, t in [0, 1]."""
    v = np.asarray(vertices, dtype=np.float64)
    return [(_segment(v[i], v[(i + 1) % len(v)]), True) for i in range(len(v))]


def _segment(a, b):
    # (1 - t) a + t b: exactly a at t = 0 and exactly b at t = 1
    return lambda t: (1.0 - t)[:, None] * a + t[:, None] * b


def _classes(signed: np.ndarray, tol: float) -> np.ndarray:
    """-1 strictly inside, 0 on the boundary (within tol), +1 outside, from a signed distance."""
    return np.where(signed > tol, 1, np.where(signed >= -tol, 0, -1)).astype(np.int8)


class Shape:
    """A domain: exact membership, normals and uniform sampling (float64 numpy).

    ``classify(x, tol=None)``: -1 strictly inside, 0 on the boundary (within ``tol``, default
    :attr:`tol`), +1 outside.
    ``normal(x)``: the outward unit normal of the nearest boundary piece.
    ``interior(m, src)``: exactly ``m`` i.i.d. uniform points of the (closed) domain.
    ``boundary(m, src)``: exactly ``m`` points uniform w.r.t. the boundary measure, with their
    outward normals and a face label (box faces ``2*i`` = ``x{i+1}_min``, ``2*i+1`` =
    ``x{i+1}_max``; -1 elsewhere).
    ``uniform_boundary(h)``: deterministic boundary points about ``h`` (boundary measure) apart.
    ``n_parts``, ``part_distances(x)``, ``part_points(k, m)``, ``distance_function(k)``: the atomic
    boundary parts (box sides, polygon edges, the sphere), see
    :class:`hrta_pde.poisson.geometry.parts.BoundaryParts`.
    ``curves()``: the boundary of a 2-D primitive as exact curves ``p(t)``, ``t`` in [0, 1].
    """

    dim: int
    lo: np.ndarray
    hi: np.ndarray
    measure: float
    boundary_measure: float
    exact: bool
    tol: float

    def uniform_boundary(self, h: float):
        m = max(1, int(round(self.boundary_measure / h)))
        return self.boundary(m, uniform_source())

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Whether each point is in the closed domain, without tolerance."""
        return self.classify(x, 0.0) <= 0

    def on_boundary(self, x: np.ndarray) -> np.ndarray:
        """Whether each point is on the boundary (within :attr:`tol`)."""
        return self.classify(x) == 0

    def leaves(self) -> list["Shape"]:
        """The primitives of the shape, left to right (a primitive is its own leaf)."""
        return [self]

    def bubble(self):
        """``phi(x)`` (torch, ``(..., d) -> (...)``) vanishing on the whole boundary and positive
        inside, as a product formula; None where the shape has none (polygons, CSG)."""
        return None

    def intervals(self) -> list[tuple[float, float]]:
        """The domain as a union of intervals: defined for 1-D shapes only (boxes and their CSG)."""
        raise TypeError(f"{type(self).__name__} is not a 1-D shape: only intervals and their CSG "
                        "combinations are unions of intervals")


class Box(Shape):
    """The box ``[lo, hi]`` in ``d`` dimensions (an interval for d = 1)."""

    def __init__(self, lo, hi):
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.dim = len(self.lo)
        side = self.hi - self.lo
        self.measure = float(np.prod(side))
        # face i (normal e_i) has area prod_{j != i} side_j; a 1-D "face" is a point (count 1)
        area = np.array([np.prod(np.delete(side, i)) for i in range(self.dim)], dtype=np.float64)
        self.face_area = np.repeat(area, 2)
        self.boundary_measure = float(self.face_area.sum())
        self.exact = True
        self.tol = TOL * max(1.0, float(np.abs(self.lo).max()), float(np.abs(self.hi).max()))
        cum = np.cumsum(self.face_area) / self.face_area.sum()
        cum[-1] = 1.0
        self._cum = np.concatenate(([0.0], cum))
        self._other_axes = np.array([[j for j in range(self.dim) if j != i]
                                     for i in range(self.dim)], dtype=np.int64)

    def _gaps(self, x):
        """(n, 2d) signed distances outside each face plane: lo_i - x_i, x_i - hi_i."""
        g = np.empty((len(x), 2 * self.dim))
        g[:, 0::2] = self.lo - x
        g[:, 1::2] = x - self.hi
        return g

    def classify(self, x, tol=None):
        return _classes(self._gaps(x).max(axis=1), self.tol if tol is None else tol)

    def face_of(self, x):
        return self._gaps(x).argmax(axis=1)

    def normal(self, x):
        face = self.face_of(x)
        n = np.zeros((len(x), self.dim))
        n[np.arange(len(x)), face // 2] = np.where(face % 2 == 1, 1.0, -1.0)
        return n

    def interior(self, m, src):
        return self.lo + src.draw(m, self.dim) * (self.hi - self.lo)

    def boundary(self, m, src):
        d = self.dim
        u = src.draw(m, max(1, d - 1))
        t = u[:, 0]
        face = np.minimum(np.searchsorted(self._cum, t, side="right") - 1, 2 * d - 1)
        start, stop = self._cum[face], self._cum[face + 1]
        axis, upper = face // 2, face % 2 == 1
        rows = np.arange(m)
        x = np.empty((m, d))
        if d >= 2:
            # the position of t inside its face's interval is uniform and independent of the face
            free = np.column_stack([(t - start) / (stop - start), u[:, 1:]])
            free = np.clip(free, 1e-12, 1.0 - 1e-12)  # stay off edges and corners
            cols = self._other_axes[axis]
            x[rows[:, None], cols] = self.lo[cols] + free * (self.hi - self.lo)[cols]
        x[rows, axis] = np.where(upper, self.hi[axis], self.lo[axis])
        n = np.zeros((m, d))
        n[rows, axis] = np.where(upper, 1.0, -1.0)
        return x, n, face

    def intervals(self):
        return [(float(self.lo[0]), float(self.hi[0]))]

    @property
    def n_parts(self) -> int:
        return 2 * self.dim

    def part_distances(self, x):
        """(n, 2d) distances to the faces (face 2i: x_i = lo_i, 2i+1: x_i = hi_i)."""
        out = np.maximum(np.maximum(self.lo - x, x - self.hi), 0.0)  # (n, d) outside each slab
        total = (out**2).sum(axis=1, keepdims=True)
        d = np.empty((len(x), 2 * self.dim))
        for i in range(self.dim):
            rest = total[:, 0] - out[:, i] ** 2
            d[:, 2 * i] = np.sqrt((x[:, i] - self.lo[i]) ** 2 + rest)
            d[:, 2 * i + 1] = np.sqrt((x[:, i] - self.hi[i]) ** 2 + rest)
        return d

    def part_points(self, k, m):
        """``m`` deterministic points spread over face ``k`` (off its edges)."""
        axis, upper = k // 2, k % 2 == 1
        x = np.empty((m, self.dim))
        if self.dim > 1:
            u = 0.02 + 0.96 * uniform_source().draw(m, self.dim - 1)
            cols = self._other_axes[axis]
            x[:, cols] = self.lo[cols] + u * (self.hi - self.lo)[cols]
        x[:, axis] = self.hi[axis] if upper else self.lo[axis]
        return x

    def distance_function(self, k):
        """The distance function of side ``k``: its segment in 2-D, its plane otherwise."""
        axis, upper = k // 2, k % 2 == 1
        value = self.hi[axis] if upper else self.lo[axis]
        if self.dim == 2:
            other = 1 - axis
            p, q = np.empty(2), np.empty(2)
            p[axis] = q[axis] = value
            p[other], q[other] = self.lo[other], self.hi[other]
            return Segment(p, q)
        return Plane(axis, value, -1.0 if upper else 1.0)

    def bubble(self):
        return BoxBubble(self.lo, self.hi)

    def curves(self):
        (x0, y0), (x1, y1) = self.lo, self.hi
        return _loop([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])

    def to_dde(self, dde):
        g = dde.geometry
        lo, hi = self.lo, self.hi
        if self.dim == 1:
            return g.Interval(float(lo[0]), float(hi[0]))
        if self.dim == 2:
            return g.Rectangle(lo.tolist(), hi.tolist())
        if self.dim == 3:
            return g.Cuboid(lo.tolist(), hi.tolist())
        return g.Hypercube(lo.tolist(), hi.tolist())


def _ball_volume(d: int, r: float) -> float:
    """Volume of the d-ball of radius r: pi^(d/2) / Gamma(d/2 + 1) * r^d."""
    return math.pi ** (d / 2) / math.gamma(d / 2 + 1) * r**d


class Ball(Shape):
    """The closed ball ``|x - c| <= r`` in d >= 2 dimensions."""

    def __init__(self, center, radius):
        self.center = np.asarray(center, dtype=np.float64)
        self.radius = float(radius)
        self.dim = d = len(self.center)
        self.lo, self.hi = self.center - self.radius, self.center + self.radius
        self.measure = _ball_volume(d, self.radius)
        self.boundary_measure = d * self.measure / self.radius  # sphere area = d * V / r
        self.exact = True
        self.tol = TOL * max(1.0, float(np.abs(self.lo).max()), float(np.abs(self.hi).max()))

    def classify(self, x, tol=None):
        return _classes(np.linalg.norm(x - self.center, axis=1) - self.radius,
                        self.tol if tol is None else tol)

    def normal(self, x):
        return _normalize_rows(x - self.center)

    def interior(self, m, src):
        d = self.dim
        if d == 2:
            u = src.draw(m, 2)
            r, th = self.radius * np.sqrt(u[:, 0]), 2.0 * np.pi * u[:, 1]
            return self.center + r[:, None] * np.column_stack([np.cos(th), np.sin(th)])
        u = src.draw(m, d + 1)
        r = self.radius * u[:, 0] ** (1.0 / d)
        return self.center + r[:, None] * _normalize_rows(ndtri(u[:, 1:]))

    n_parts = 1

    def part_distances(self, x):
        return np.abs(np.linalg.norm(x - self.center, axis=1) - self.radius)[:, None]

    def part_points(self, k, m):
        return self.boundary(m, uniform_source())[0]

    def boundary(self, m, src):
        if self.dim == 2:
            th = 2.0 * np.pi * src.draw(m, 1)[:, 0]
            n = np.column_stack([np.cos(th), np.sin(th)])
        else:
            n = _normalize_rows(ndtri(src.draw(m, self.dim)))
        return self.center + self.radius * n, n, np.full(m, -1, dtype=np.int64)

    def distance_function(self, k):
        return Sphere(self.center, self.radius, 1.0)

    def bubble(self):
        return BallBubble(self.center, self.radius)

    def curves(self):
        c, r = self.center, self.radius

        def circle(t):
            a = 2 * np.pi * t
            return c + r * np.stack([np.cos(a), np.sin(a)], axis=1)

        return [(circle, False)]

    def to_dde(self, dde):
        g = dde.geometry
        c = self.center.tolist()
        if self.dim == 2:
            return g.Disk(c, self.radius)
        if self.dim == 3:
            return g.Sphere(c, self.radius)
        return g.Hypersphere(c, self.radius)


def _signed_area(v: np.ndarray) -> float:
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _orient(a, b, c):
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _segments_touch(p1, q1, p2, q2, eps):
    """Whether the closed segments p1q1 and p2q2 share a point (eps: zero for orientations)."""
    o1, o2 = _orient(p1, q1, p2), _orient(p1, q1, q2)
    o3, o4 = _orient(p2, q2, p1), _orient(p2, q2, q1)
    s = [0 if abs(o) <= eps else (1 if o > 0 else -1) for o in (o1, o2, o3, o4)]
    if s[0] * s[1] < 0 and s[2] * s[3] < 0:
        return True

    def on(a, b, c):  # c collinear with ab: is it within the segment's bounding box?
        return (min(a[0], b[0]) - 1e-12 <= c[0] <= max(a[0], b[0]) + 1e-12
                and min(a[1], b[1]) - 1e-12 <= c[1] <= max(a[1], b[1]) + 1e-12)

    return ((s[0] == 0 and on(p1, q1, p2)) or (s[1] == 0 and on(p1, q1, q2))
            or (s[2] == 0 and on(p2, q2, p1)) or (s[3] == 0 and on(p2, q2, q1)))


class Polygon(Shape):
    """A simple polygon (vertices in either orientation; stored counterclockwise)."""

    def __init__(self, vertices, where: str = "domain"):
        v = np.asarray(vertices, dtype=np.float64)
        self.user_vertices = v
        nv = len(v)
        if nv < 3:
            raise ProblemError(f"{where}.vertices has {nv} vertices; a polygon needs at least 3")
        scale = max(1.0, float(np.abs(v).max()))
        edge = np.roll(v, -1, axis=0) - v
        length = np.linalg.norm(edge, axis=1)
        if (length <= 1e-12 * scale).any():
            i = int(np.argmax(length <= 1e-12 * scale))
            raise ProblemError(f"{where}.vertices[{i}] and [{(i + 1) % nv}] coincide; "
                               "remove the repeated vertex")
        eps = 1e-12 * scale**2
        if np.linalg.svd(v - v.mean(axis=0), compute_uv=False)[1] <= 1e-12 * scale:
            raise ProblemError(f"{where}.vertices lie on one line and enclose zero area "
                               "(degenerate polygon); give the corners of a simple polygon")
        for i in range(nv):
            # adjacent edges must not fold back onto each other
            a, b = edge[i - 1], edge[i]
            cross = a[0] * b[1] - a[1] * b[0]
            if abs(cross) <= eps and a @ b < 0:
                raise ProblemError(f"{where}.vertices: the polygon folds back on itself at vertex "
                                   f"{i} {v[i].tolist()}; it must be simple")
            for j in range(i + 2, nv):
                if i == 0 and j == nv - 1:
                    continue  # adjacent through the closing edge
                if _segments_touch(v[i], v[(i + 1) % nv], v[j], v[(j + 1) % nv], eps):
                    raise ProblemError(
                        f"{where}.vertices: edge {i} {v[i].tolist()}-{v[(i + 1) % nv].tolist()} "
                        f"meets edge {j} {v[j].tolist()}-{v[(j + 1) % nv].tolist()}; the polygon "
                        "is self-intersecting: give the vertices in order around the boundary")
        area = _signed_area(v)
        if abs(area) <= eps:
            raise ProblemError(f"{where}.vertices enclose zero area (degenerate polygon); "
                               "give the corners of a simple polygon in order")
        # stored edge j (from v[j] to v[j+1] of the counterclockwise order) is the user's edge
        # user_edge[j] (from user vertex i to i+1)
        self.user_edge = np.arange(nv)
        if area < 0:
            v = v[::-1].copy()
            self.user_edge = (nv - 2 - np.arange(nv)) % nv
        self.vertices = v
        self.dim = 2
        self.lo, self.hi = v.min(axis=0), v.max(axis=0)
        self._a = v
        self._b = np.roll(v, -1, axis=0)
        self._edge = self._b - self._a
        self._len = np.linalg.norm(self._edge, axis=1)
        self._normals = np.column_stack([self._edge[:, 1], -self._edge[:, 0]]) / self._len[:, None]
        self._cum = np.concatenate(([0.0], np.cumsum(self._len)))
        self.measure = abs(area)
        self.boundary_measure = float(self._len.sum())
        self.exact = True
        self.tol = TOL * scale

    def _distances(self, x):
        """(n, edges) distances from the points to the edges."""
        d = np.empty((len(x), len(self._a)))
        for i, (a, e, ell) in enumerate(zip(self._a, self._edge, self._len)):
            t = np.clip(((x - a) @ e) / ell**2, 0.0, 1.0)
            d[:, i] = np.linalg.norm(x - a - t[:, None] * e, axis=1)
        return d

    def classify(self, x, tol=None):
        inside = np.zeros(len(x), dtype=bool)
        px, py = x[:, 0], x[:, 1]
        for a, b in zip(self._a, self._b):
            crosses = (a[1] > py) != (b[1] > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                xc = a[0] + (py - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            inside ^= crosses & (px < xc)
        near = self._distances(x).min(axis=1) <= (self.tol if tol is None else tol)
        return np.where(near, 0, np.where(inside, -1, 1)).astype(np.int8)

    def normal(self, x):
        return self._normals[self._distances(x).argmin(axis=1)]

    @property
    def n_parts(self) -> int:
        return len(self._a)

    def part_distances(self, x):
        """(n, edges) distances to the edges, in the user's order (edge i: vertex i to i+1)."""
        d = self._distances(x)
        out = np.empty_like(d)
        out[:, self.user_edge] = d
        return out

    def part_points(self, k, m):
        j = int(np.nonzero(self.user_edge == k)[0][0])
        t = 0.02 + 0.96 * (np.arange(m) + 0.5) / m
        return self._a[j] + t[:, None] * self._edge[j]

    def interior(self, m, src):
        out, have = [], 0
        ratio = self.measure / float(np.prod(self.hi - self.lo))
        while have < m:
            k = int((m - have) / ratio * 1.1) + 16
            x = self.lo + src.draw(k, 2) * (self.hi - self.lo)
            x = x[self.classify(x) <= 0]
            out.append(x)
            have += len(x)
        return np.concatenate(out)[:m]

    def boundary(self, m, src):
        s = src.draw(m, 1)[:, 0] * self.boundary_measure
        i = np.clip(np.searchsorted(self._cum, s, side="right") - 1, 0, len(self._len) - 1)
        t = np.clip((s - self._cum[i]) / self._len[i], 1e-12, 1.0 - 1e-12)
        x = self._a[i] + t[:, None] * self._edge[i]
        return x, self._normals[i].copy(), np.full(m, -1, dtype=np.int64)

    def distance_function(self, k):
        v = self.user_vertices
        return Segment(v[k], v[(k + 1) % len(v)])

    def curves(self):
        return _loop(self.vertices)

    def to_dde(self, dde):
        g = dde.geometry
        v = self.user_vertices
        if len(v) == 3:
            return g.Triangle(*v.tolist())
        if g.Rectangle.is_valid(v):  # DeepXDE refuses a rectangle given as a polygon
            return g.Rectangle(v.min(axis=0).tolist(), v.max(axis=0).tolist())
        return g.Polygon(v.tolist())



@contextlib.contextmanager
def _float64_geometry(dde):
    """Build DeepXDE geometries with float64 parameters (its default is float32)."""
    real = dde.config.real
    previous = real.precision
    real.set_float64()
    try:
        yield
    finally:
        {16: real.set_float16, 32: real.set_float32, 64: real.set_float64}[previous]()


def to_deepxde(shape: Shape):
    """The DeepXDE geometry of a shape (float64 parameters), for DeepXDE users: the package itself
    samples, meshes and plots with the shape."""
    with contextlib.redirect_stdout(io.StringIO()):
        from hrta_pde._backend import import_deepxde

        dde = import_deepxde()
    with _float64_geometry(dde):
        try:
            return shape.to_dde(dde)
        except ValueError as exc:  # pragma: no cover - our checks come first
            raise ProblemError(f"DeepXDE refuses the domain: {exc}") from None
