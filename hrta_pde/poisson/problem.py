"""Poisson problems ``-div(a grad u) + c u = f`` on DeepXDE geometries, from TOML files or dicts.

A problem is data: a domain, a source ``f`` (or an exact solution ``u`` from which
``f = -div(a grad u) + c u`` is derived with sympy; ``a = 1`` and ``c = 0`` unless given under
``[solution]``, ``a > 0`` and ``c >= 0`` checked), and boundary data per part of the boundary:
Dirichlet ``u = g``, Neumann ``a du/dn = h`` or Robin ``a du/dn + alpha u = h``.  The parts
(:class:`BoundaryParts`) are box sides ``x_min, x_max, y_min, ...``, polygon edges ``edge0, ...``,
``circle`` / ``sphere``, and the operands of a CSG domain by their ``name`` (or path ``a``,
``a.b``), e.g. ``[boundary.hole] type = "robin", alpha = "2", h = "0"``; a plain ``[boundary]``
``type`` sets every part without a table of its own.  The TOML format::

    name = "poisson_2d_sin"
    [domain]
    type = "rectangle"
    xmin = [0.0, 0.0]
    xmax = [1.0, 1.0]
    [solution]
    u = "sin(pi*x)*sin(pi*y)"          # f = 2*pi^2*sin(pi*x)*sin(pi*y) is derived
    [boundary]
    type = "dirichlet"                 # g = u on the boundary is derived

Example::

    >>> p = builtin_problem("poisson_2d_sin")
    >>> x = p.sample_interior(1000, generator=torch.Generator().manual_seed(0))
    >>> b = p.sample_boundary(400, generator=torch.Generator().manual_seed(1))
    >>> p.measure, p.boundary_measure
    (1.0, 4.0)

Sampling is done here, not with DeepXDE's samplers, for three reasons: DeepXDE draws from
numpy's global RNG (we draw from a ``torch.Generator`` and never touch numpy's state), it
samples in float32 by default, and its box and CSG boundary samplers are not uniform with
respect to the boundary measure (a box face is picked uniformly, not by area; a CSG boundary
gets as many points from each part whatever their sizes).  Here every primitive (box, ball,
polygon) is sampled exactly in float64, with exact outward normals, and a CSG domain by
rejection from its parts, weighted by their measures.  The DeepXDE geometry
(:attr:`PoissonProblem.geometry`) is built alongside, with float64 parameters, for everything
else (meshing, plotting, ``inside``/``on_boundary``).

Measures ``|Omega|`` and ``|dOmega|`` are exact for the primitives, for 1-D unions,
intersections and differences of intervals, and for a box or ball with a hole (a primitive
strictly inside it); other CSG domains get quasi-Monte Carlo estimates from 2^20 points
(``measure_exact = False``).
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import sympy
import torch
from scipy.special import ndtri

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from hrta_pde.poisson.expressions import (
    ExpressionError,
    _cheap_simplify,
    _drop_delta,
    coordinate_symbols,
    expressions_agree,
    gradient,
    laplacian,
    parse_expression,
    to_numpy,
    to_torch,
)

__all__ = [
    "ProblemError",
    "BoundaryBatch",
    "PoissonProblem",
    "problem_from_dict",
    "load_problem",
    "problem_to_toml",
    "builtin_problem",
    "list_builtin_problems",
    "resolve_problem",
    "describe_parts",
    "BoundaryParts",
    "BoundaryCondition",
    "DOMAIN_TYPES",
    "BOUNDARY_TYPES",
    "SAMPLERS",
    "SOLVER_KEYS",
]

DOMAIN_TYPES = ("interval", "rectangle", "box", "hypercube", "disk", "ball", "polygon", "lshape",
                "difference", "union", "intersection")
BOUNDARY_TYPES = ("dirichlet", "neumann", "mixed", "robin")
SAMPLERS = ("random", "uniform", "sobol")
#: Keys allowed in the optional ``[solver]`` table (the flat form of ``SolveConfig``); their
#: values are checked by the solver.
from hrta_pde.poisson.settings import SOLVER_KEYS  # noqa: E402
MAX_DIM = 10

_TOP_KEYS = ("name", "description", "domain", "solution", "boundary", "solver")
_SOLUTION_KEYS = ("u", "f", "a", "c")
_BOUNDARY_KEYS = ("type", "g", "h", "alpha", "neumann_sides")
_DOMAIN_KEYS = {
    "interval": ("type", "xmin", "xmax", "name"),
    "rectangle": ("type", "xmin", "xmax", "name"),
    "box": ("type", "xmin", "xmax", "name"),
    "hypercube": ("type", "dim", "xmin", "xmax", "name"),
    "disk": ("type", "center", "radius", "name"),
    "ball": ("type", "center", "radius", "name"),
    "polygon": ("type", "vertices", "name"),
    "lshape": ("type", "name"),
    "difference": ("type", "a", "b", "name"),
    "union": ("type", "a", "b", "name"),
    "intersection": ("type", "a", "b", "name"),
}
_PART_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,59}\Z")
_BOX_TYPES = ("interval", "rectangle", "box", "hypercube")
_LSHAPE_VERTICES = ((-1.0, -1.0), (0.0, -1.0), (0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (-1.0, 1.0))
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,100}\Z")
_MAX_CSG_DEPTH = 16
_MAX_POLYGON_VERTICES = 1000
# Relative tolerance for "on the boundary" (times the size of the coordinates).
_TOL = 1e-9
# Points of the quasi-Monte Carlo estimates of CSG measures, and their fixed seed.
_MC_POINTS = 2**20
_MC_SEED = 20240531
# A pure Neumann problem is refused if |int f + int h| > this fraction of int |f| + int |h|.
COMPATIBILITY_TOLERANCE = 1e-2
_MAX_GRID_POINTS = 5_000_000


class ProblemError(ValueError):
    """One-line message naming the bad value or key and the fix.

    Example: ``problem.toml: unknown key 'radus' in [domain]; allowed keys: type, center, radius``.
    """


# ============================================================================ random sources

class _Source:
    """Uniform numbers in (0, 1) for the samplers: ``random``, ``sobol`` or ``uniform``.

    ``random`` draws from the torch generator; ``sobol`` from scrambled Sobol engines (one per
    dimension) seeded from the generator; ``uniform`` is deterministic: the midpoints
    ``(i + 1/2)/m`` in one dimension, a fixed-seed Sobol set in more.
    """

    def __init__(self, sampler: str, generator: torch.Generator | None):
        self.sampler = sampler
        self.generator = generator
        self._engines: dict[int, torch.quasirandom.SobolEngine] = {}

    def _kw(self) -> dict:
        g = self.generator
        return {} if g is None else {"generator": g, "device": g.device}

    def _seed(self) -> int:
        return int(torch.randint(0, 2**62, (1,), **self._kw()).item())

    def draw(self, m: int, k: int) -> np.ndarray:
        if m <= 0:
            return np.empty((0, k))
        if self.sampler == "random":
            u = torch.rand((m, k), dtype=torch.float64, **self._kw()).cpu().numpy()
        elif self.sampler == "sobol":
            engine = self._engines.get(k)
            if engine is None:
                engine = torch.quasirandom.SobolEngine(k, scramble=True, seed=self._seed())
                self._engines[k] = engine
            u = engine.draw(m, dtype=torch.float64).numpy()
        elif k == 1:
            u = ((np.arange(m) + 0.5) / m)[:, None]
        else:
            u = torch.quasirandom.SobolEngine(k, scramble=True, seed=12345).draw(
                m, dtype=torch.float64).numpy()
        return np.clip(u, 1e-15, 1.0 - 1e-15)

    def split(self, m: int, w: float) -> int:
        """How many of ``m`` draws go to the first of two parts chosen with probability ``w``."""
        if self.sampler == "random":
            return int((torch.rand(m, dtype=torch.float64, **self._kw()) < w).sum().item())
        return int(round(m * w))

    def permutation(self, m: int) -> np.ndarray:
        if self.sampler == "uniform":
            return np.arange(m)
        return torch.randperm(m, **self._kw()).cpu().numpy()


def _uniform_source() -> _Source:
    return _Source("uniform", None)


def _fixed_source() -> _Source:
    return _Source("sobol", torch.Generator().manual_seed(_MC_SEED))


# ============================================================================ shapes

def _normalize_rows(z: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    bad = norm[:, 0] < 1e-300
    if bad.any():  # probability zero; keep the rows finite
        z = z.copy()
        z[bad] = 0.0
        z[bad, 0] = 1.0
        norm[bad] = 1.0
    return z / norm


def _classes(signed: np.ndarray, tol: float) -> np.ndarray:
    """-1 strictly inside, 0 on the boundary (within tol), +1 outside, from a signed distance."""
    return np.where(signed > tol, 1, np.where(signed >= -tol, 0, -1)).astype(np.int8)


class _Shape:
    """A domain: exact membership, normals and uniform sampling (float64 numpy).

    ``classify(x)``: -1 strictly inside, 0 on the boundary, +1 outside.
    ``normal(x)``: the outward unit normal of the nearest boundary piece.
    ``interior(m, src)``: exactly ``m`` i.i.d. uniform points of the (closed) domain.
    ``boundary(m, src)``: exactly ``m`` points uniform w.r.t. the boundary measure, with their
    outward normals and a face label (box faces ``2*i`` = ``x{i+1}_min``, ``2*i+1`` =
    ``x{i+1}_max``; -1 elsewhere).
    ``uniform_boundary(h)``: deterministic boundary points about ``h`` (boundary measure) apart.
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
        return self.boundary(m, _uniform_source())

    def intervals(self) -> list[tuple[float, float]]:
        """The domain as a union of intervals: defined for 1-D shapes only (boxes and their CSG)."""
        raise TypeError(f"{type(self).__name__} is not a 1-D shape: only intervals and their CSG "
                        "combinations are unions of intervals")


class _Box(_Shape):
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
        self.tol = _TOL * max(1.0, float(np.abs(self.lo).max()), float(np.abs(self.hi).max()))
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

    def classify(self, x):
        return _classes(self._gaps(x).max(axis=1), self.tol)

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
            u = 0.02 + 0.96 * _uniform_source().draw(m, self.dim - 1)
            cols = self._other_axes[axis]
            x[:, cols] = self.lo[cols] + u * (self.hi - self.lo)[cols]
        x[:, axis] = self.hi[axis] if upper else self.lo[axis]
        return x

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


class _Ball(_Shape):
    """The closed ball ``|x - c| <= r`` in d >= 2 dimensions."""

    def __init__(self, center, radius):
        self.center = np.asarray(center, dtype=np.float64)
        self.radius = float(radius)
        self.dim = d = len(self.center)
        self.lo, self.hi = self.center - self.radius, self.center + self.radius
        self.measure = _ball_volume(d, self.radius)
        self.boundary_measure = d * self.measure / self.radius  # sphere area = d * V / r
        self.exact = True
        self.tol = _TOL * max(1.0, float(np.abs(self.lo).max()), float(np.abs(self.hi).max()))

    def classify(self, x):
        return _classes(np.linalg.norm(x - self.center, axis=1) - self.radius, self.tol)

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
        return self.boundary(m, _uniform_source())[0]

    def boundary(self, m, src):
        if self.dim == 2:
            th = 2.0 * np.pi * src.draw(m, 1)[:, 0]
            n = np.column_stack([np.cos(th), np.sin(th)])
        else:
            n = _normalize_rows(ndtri(src.draw(m, self.dim)))
        return self.center + self.radius * n, n, np.full(m, -1, dtype=np.int64)

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


class _Polygon(_Shape):
    """A simple polygon (vertices in either orientation; stored counterclockwise)."""

    def __init__(self, vertices, where: str):
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
        self.tol = _TOL * scale

    def _distances(self, x):
        """(n, edges) distances from the points to the edges."""
        d = np.empty((len(x), len(self._a)))
        for i, (a, e, ell) in enumerate(zip(self._a, self._edge, self._len)):
            t = np.clip(((x - a) @ e) / ell**2, 0.0, 1.0)
            d[:, i] = np.linalg.norm(x - a - t[:, None] * e, axis=1)
        return d

    def classify(self, x):
        inside = np.zeros(len(x), dtype=bool)
        px, py = x[:, 0], x[:, 1]
        for a, b in zip(self._a, self._b):
            crosses = (a[1] > py) != (b[1] > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                xc = a[0] + (py - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            inside ^= crosses & (px < xc)
        near = self._distances(x).min(axis=1) <= self.tol
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

    def to_dde(self, dde):
        g = dde.geometry
        v = self.user_vertices
        if len(v) == 3:
            return g.Triangle(*v.tolist())
        if g.Rectangle.is_valid(v):  # DeepXDE refuses a rectangle given as a polygon
            return g.Rectangle(v.min(axis=0).tolist(), v.max(axis=0).tolist())
        return g.Polygon(v.tolist())


def _merge(intervals, tol):
    out = []
    for a, b in sorted(intervals):
        if b - a <= tol:
            continue
        if out and a <= out[-1][1] + tol:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class _Csg(_Shape):
    """``a | b``, ``a & b`` or ``a - b`` (op: union, intersection, difference).

    Boundary rule (what survives of each part's boundary): for a union, the points of dA
    outside B and of dB outside A; for an intersection, of dA inside B and dB inside A; for a
    difference, of dA outside B and of dB inside A, with the normal of B reversed.  Points on
    both boundaries are kept once, from A, when the two surfaces face the same way (union,
    intersection) or opposite ways (difference).
    """

    def __init__(self, op: str, a: _Shape, b: _Shape, where: str):
        self.op, self.a, self.b = op, a, b
        self.dim = a.dim
        self.tol = max(a.tol, b.tol)
        if op == "union":
            self.lo, self.hi = np.minimum(a.lo, b.lo), np.maximum(a.hi, b.hi)
        elif op == "intersection":
            self.lo, self.hi = np.maximum(a.lo, b.lo), np.minimum(a.hi, b.hi)
        else:
            self.lo, self.hi = a.lo.copy(), a.hi.copy()
        if np.any(self.hi - self.lo <= 0):
            raise ProblemError(f"{where}: the {op} of domain parts a and b is empty; "
                               "make the parts overlap")
        self._measures(where)

    # -- membership
    def _same_direction(self, x, na=None):
        na = self.a.normal(x) if na is None else na
        return np.einsum("ij,ij->i", na, self.b.normal(x)) > 0

    def classify(self, x):
        ca, cb = self.a.classify(x), self.b.classify(x)
        both = (ca == 0) & (cb == 0)
        same = np.zeros(len(x), dtype=bool)
        if both.any():
            same[both] = self._same_direction(x[both])
        if self.op == "union":
            res = np.where((ca == -1) | (cb == -1), -1, np.where((ca == 1) & (cb == 1), 1, 0))
            res[both & ~same] = -1  # two faces pressed together are inside the union
        elif self.op == "intersection":
            res = np.where((ca == 1) | (cb == 1), 1, np.where((ca == -1) & (cb == -1), -1, 0))
            res[both & ~same] = 1
        else:
            res = np.where((ca == 1) | (cb == -1), 1, np.where((ca == -1) & (cb == 1), -1, 0))
            res[both & same] = 1
        return res.astype(np.int8)

    def normal(self, x):
        on_a = self.a.classify(x) == 0
        nb = self.b.normal(x)
        if self.op == "difference":
            nb = -nb
        return np.where(on_a[:, None], self.a.normal(x), nb)

    # -- the parts of each child that belong to the result
    def _keep_interior_a(self, x):
        if self.op == "union":
            return np.ones(len(x), dtype=bool)
        cb = self.b.classify(x)
        return cb == -1 if self.op == "intersection" else cb == 1

    def _keep_interior_b(self, x):  # union only
        return self.a.classify(x) == 1

    def _keep_boundary_a(self, x, na):
        cb = self.b.classify(x)
        keep = cb == (-1 if self.op == "intersection" else 1)
        both = cb == 0
        if both.any():
            same = self._same_direction(x[both], na[both])
            keep[both] = ~same if self.op == "difference" else same
        return keep

    def _keep_boundary_b(self, x):
        return self.a.classify(x) == (1 if self.op == "union" else -1)

    # -- measures
    def _measures(self, where):
        a, b = self.a, self.b
        if self.dim == 1 and a.exact and b.exact:
            pieces = self.intervals()
            self.measure = float(sum(q - p for p, q in pieces))
            self.boundary_measure = float(2 * len(pieces))
            self.exact = True
        elif self.op == "difference" and _is_hole(b, a):
            # a box or ball with holes (strictly inside it, apart from each other)
            self.measure = a.measure - b.measure
            self.boundary_measure = a.boundary_measure + b.boundary_measure
            self.exact = a.exact and b.exact
        else:
            n = _MC_POINTS if self.dim <= 3 else _MC_POINTS // 8
            src = _fixed_source()
            if self.op == "union":
                xb = b.interior(n, src)
                self.measure = a.measure + b.measure * float(self._keep_interior_b(xb).mean())
            else:
                xa = a.interior(n, src)
                self.measure = a.measure * float(self._keep_interior_a(xa).mean())
            xa, na, _ = a.boundary(n, src)
            xb, _, _ = b.boundary(n, src)
            self.boundary_measure = (a.boundary_measure * float(self._keep_boundary_a(xa, na).mean())
                                     + b.boundary_measure * float(self._keep_boundary_b(xb).mean()))
            self.exact = False
        if self.measure <= 0 or self.boundary_measure <= 0:
            raise ProblemError(f"{where}: the {self.op} of domain parts a and b is empty; "
                               "make the parts overlap")

    def intervals(self):
        tol = self.tol
        pa, pb = _merge(self.a.intervals(), tol), _merge(self.b.intervals(), tol)
        if self.op == "union":
            return _merge(pa + pb, tol)
        if self.op == "intersection":
            return _merge([(max(p, r), min(q, s)) for p, q in pa for r, s in pb], tol)
        out = []
        for p, q in pa:
            pieces = [(p, q)]
            for r, s in pb:
                pieces = [piece for (u, v) in pieces for piece in ((u, min(v, r)), (max(u, s), v))]
            out += pieces
        return _merge(out, tol)

    # -- sampling
    def interior(self, m, src):
        a, b = self.a, self.b
        if self.op == "union":
            total = a.measure + b.measure
            ratio = self.measure / total
        else:
            ratio = self.measure / a.measure
        out, have = [], 0
        for _ in range(10_000):
            k = int((m - have) / max(ratio, 1e-6) * 1.1) + 16
            if self.op == "union":
                ka = src.split(k, a.measure / total)
                xa, xb = a.interior(ka, src), b.interior(k - ka, src)
                x = np.concatenate([xa, xb[self._keep_interior_b(xb)]])
            else:
                x = a.interior(k, src)
                x = x[self._keep_interior_a(x)]
            out.append(x)
            have += len(x)
            if have >= m:
                break
        else:
            raise ProblemError(f"could not sample the {self.op} domain: it is too small a part of "
                               "its parts; enlarge it")
        x = np.concatenate(out)
        return x[src.permutation(len(x))][:m]

    def _boundary_parts(self, ka, kb, draw_a, draw_b):
        xa, na, la = draw_a(ka)
        keep = self._keep_boundary_a(xa, na)
        xb, nb, lb = draw_b(kb)
        keepb = self._keep_boundary_b(xb)
        if self.op == "difference":
            nb = -nb
        return (np.concatenate([xa[keep], xb[keepb]]), np.concatenate([na[keep], nb[keepb]]),
                np.full(int(keep.sum() + keepb.sum()), -1, dtype=np.int64))

    def boundary(self, m, src):
        a, b = self.a, self.b
        total = a.boundary_measure + b.boundary_measure
        ratio = self.boundary_measure / total
        xs, ns, have = [], [], 0
        for _ in range(10_000):
            k = int((m - have) / max(ratio, 1e-6) * 1.1) + 16
            ka = src.split(k, a.boundary_measure / total)
            x, n, _ = self._boundary_parts(ka, k - ka, lambda j: a.boundary(j, src),
                                           lambda j: b.boundary(j, src))
            xs.append(x)
            ns.append(n)
            have += len(x)
            if have >= m:
                break
        else:
            raise ProblemError(f"could not sample the boundary of the {self.op} domain; "
                               "check that its parts overlap")
        x, n = np.concatenate(xs), np.concatenate(ns)
        p = src.permutation(len(x))[:m]
        return x[p], n[p], np.full(len(p), -1, dtype=np.int64)

    def uniform_boundary(self, h):
        return self._boundary_parts(0, 0, lambda _: self.a.uniform_boundary(h),
                                    lambda _: self.b.uniform_boundary(h))

    @property
    def n_parts(self) -> int:
        return self.a.n_parts + self.b.n_parts

    def part_distances(self, x):
        return np.hstack([self.a.part_distances(x), self.b.part_distances(x)])

    def part_points(self, k, m):
        na = self.a.n_parts
        return self.a.part_points(k, m) if k < na else self.b.part_points(k - na, m)

    def to_dde(self, dde):
        csg = dde.geometry.csg
        cls = {"union": csg.CSGUnion, "intersection": csg.CSGIntersection,
               "difference": csg.CSGDifference}[self.op]
        return cls(self.a.to_dde(dde), self.b.to_dde(dde))


def _disjoint(p: _Shape, q: _Shape) -> bool:
    """Whether two primitives are apart (balls: by their centres; else by bounding boxes)."""
    tol = max(p.tol, q.tol)
    if isinstance(p, _Ball) and isinstance(q, _Ball):
        return bool(np.linalg.norm(p.center - q.center) > p.radius + q.radius + tol)
    return bool(np.any(p.hi < q.lo - tol) or np.any(q.hi < p.lo - tol))


def _is_hole(hole: _Shape, outer: _Shape) -> bool:
    """Whether ``hole`` lies strictly inside a primitive ``outer``, or inside the base of a chain
    ``((base - h1) - h2) ...`` of such holes and apart from each of them."""
    if isinstance(outer, _Csg):
        if outer.op != "difference" or not _is_hole(outer.b, outer.a):
            return False
        return _is_hole(hole, outer.a) and not isinstance(outer.b, _Csg) and _disjoint(hole, outer.b)
    return _strictly_inside(hole, outer)


def _strictly_inside(inner: _Shape, outer: _Shape) -> bool:
    """Whether ``inner`` lies in the interior of the convex primitive ``outer``."""
    if not isinstance(outer, (_Box, _Ball)) or inner.dim != outer.dim:
        return False
    tol = outer.tol
    if isinstance(inner, _Ball):
        if isinstance(outer, _Ball):
            gap = outer.radius - inner.radius - np.linalg.norm(inner.center - outer.center)
            return bool(gap > tol)
        return bool(np.all(inner.lo > outer.lo + tol) and np.all(inner.hi < outer.hi - tol))
    if isinstance(inner, _Box):
        d = inner.dim
        corners = np.array([[inner.hi[i] if (k >> i) & 1 else inner.lo[i] for i in range(d)]
                            for k in range(2**d)])
        return bool(np.all(outer.classify(corners) == -1))
    if isinstance(inner, _Polygon):
        return bool(np.all(outer.classify(inner.vertices) == -1))
    return False


# ============================================================================ boundary parts

_AXIS_NAMES = ("x", "y", "z")
PART_KINDS = ("dirichlet", "neumann", "robin")


def _box_side_names(dim: int) -> list[str]:
    """Side names of a box: ``x_min, x_max, y_min, ...`` up to 3-D, ``x1_min, ...`` above."""
    if dim <= 3:
        return [f"{_AXIS_NAMES[i]}_{end}" for i in range(dim) for end in ("min", "max")]
    return _side_names(dim)


@dataclass
class BoundaryParts:
    """The named pieces of a domain's boundary.

    ``names[k]`` is the name of atomic part ``k`` (the index returned by the shapes'
    ``part_distances``): box sides ``x_min, x_max, y_min, ...`` (``x1_min``... in d > 3), polygon
    edges ``edge0, edge1, ...`` (edge i from vertex i to vertex i+1, in the order of the file),
    ``circle`` / ``sphere`` for a disk / ball; inside a CSG domain each operand is named by its
    ``name`` key or its path (``a``, ``b``, ``a.b``, ...), its sides as ``NAME.x_min``,
    ``NAME.edge0``, and the operand's name stands for all of its pieces.
    ``groups`` maps every accepted name (atomic names, aliases such as ``x1_min``, operand
    names) to the atomic parts it covers; ``present[k]`` says whether part k is a piece of the
    domain's boundary (a side swallowed by another operand is not).
    """

    names: tuple
    groups: dict
    aliases: dict
    operands: tuple
    present: tuple = ()

    def resolve(self, name: str, where: str) -> list[int]:
        if name not in self.groups:
            shown = ", ".join(self.listing())
            raise ProblemError(f"{where}: unknown boundary part {name!r:.60}; this domain's parts "
                               f"are: {shown:.400}")
        return self.groups[name]

    def listing(self) -> list[str]:
        """The part names worth showing: atomic parts on the boundary, then operand names."""
        out = [n for k, n in enumerate(self.names) if not self.present or self.present[k]]
        return out + [o for o in self.operands if o not in out]


def _boundary_parts(spec: dict, shape: _Shape) -> BoundaryParts:
    names: list[str] = []
    groups: dict[str, list[int]] = {}
    aliases: dict[str, str] = {}
    operands: list[str] = []

    def add_leaf(sp, sh, label):
        start = len(names)
        if isinstance(sh, _Box):
            sides, canon = _box_side_names(sh.dim), _side_names(sh.dim)
            for side, alias in zip(sides, canon):
                full = side if label is None else f"{label}.{side}"
                names.append(full)
                if alias != side:
                    aliases[alias if label is None else f"{label}.{alias}"] = full
        elif isinstance(sh, _Polygon):
            for i in range(sh.n_parts):
                names.append(f"edge{i}" if label is None else f"{label}.edge{i}")
        else:
            names.append(("circle" if sh.dim == 2 else "sphere") if label is None else label)
        return list(range(start, len(names)))

    def walk(sp, sh, path, label):
        if isinstance(sh, _Csg):
            ids = []
            for key, sub_sp, sub_sh in (("a", sp["a"], sh.a), ("b", sp["b"], sh.b)):
                sub_path = key if path is None else f"{path}.{key}"
                ids += walk(sub_sp, sub_sh, sub_path, sub_sp.get("name", sub_path))
        else:
            ids = add_leaf(sp, sh, label)
        if label is not None and (isinstance(sh, _Csg) or len(ids) > 1):
            if label in groups:
                raise ProblemError(f"domain: the name {label!r} is used by two domain parts; "
                                   "give each part its own name")
            groups[label] = ids
            operands.append(label)
        return ids

    walk(spec, shape, None, None)
    for k, n in enumerate(names):
        if n in groups and groups[n] != [k]:
            raise ProblemError(f"domain: the name {n!r} is used by two domain parts; give each "
                               "part its own name")
        groups[n] = [k]
    for alias, full in aliases.items():
        groups.setdefault(alias, groups[full])
    return BoundaryParts(tuple(names), groups, aliases, tuple(operands))


def _present_parts(shape: _Shape, m: int = 64) -> tuple:
    """Which atomic parts are pieces of the boundary (some of their points are on it)."""
    present = []
    for k in range(shape.n_parts):
        x = shape.part_points(k, m)
        on = shape.classify(x) == 0
        ok = False
        if on.any():
            ok = bool((shape.part_distances(x[on]).argmin(axis=1) == k).any())
        present.append(ok)
    return tuple(present)


class BoundaryCondition:
    """The condition on some boundary parts: ``kind`` dirichlet (``u = g``), neumann
    (``a du/dn = h``) or robin (``a du/dn + alpha u = h``).

    ``g``, ``alpha``: sympy expressions (None where they do not apply). The flux data are
    ``h(x, n) = h_vec(x) . n + h_scalar(x)``: ``h_vec = None`` and ``h_scalar = h`` for data
    written in the file; derived from the exact solution, ``h_vec = a grad u`` and
    ``h_scalar = alpha u`` (robin) or None (neumann). ``written`` lists the keys given in the
    file; ``where`` names the table for messages.
    """

    def __init__(self, kind, dim, *, g=None, h_vec=None, h_scalar=None, alpha=None, written=(),
                 where="[boundary]", texts=None):
        self.kind, self.dim = kind, dim
        self.g, self.h_vec, self.h_scalar, self.alpha = g, h_vec, h_scalar, alpha
        self.written, self.where, self.texts = tuple(written), where, dict(texts or {})

    def __repr__(self):
        return f"BoundaryCondition({self.kind!r}, where={self.where!r})"

    @functools.cached_property
    def _fns(self) -> dict:
        d, c = self.dim, {}
        if self.g is not None:
            c.update(g_t=to_torch(self.g, d), g_n=to_numpy(self.g, d))
        if self.alpha is not None:
            c.update(alpha_t=to_torch(self.alpha, d), alpha_n=to_numpy(self.alpha, d))
        if self.h_vec is not None:
            c.update(hv_t=[to_torch(e, d) for e in self.h_vec], hv_n=[to_numpy(e, d) for e in self.h_vec])
        if self.h_scalar is not None:
            c.update(hs_t=to_torch(self.h_scalar, d), hs_n=to_numpy(self.h_scalar, d))
        return c

    def g_numpy(self, x):
        return self._fns["g_n"](x)

    def g_torch(self, x):
        return self._fns["g_t"](x)

    def alpha_numpy(self, x):
        return self._fns["alpha_n"](x) if self.alpha is not None else np.zeros(len(x))

    def alpha_torch(self, x):
        return self._fns["alpha_t"](x)

    def h_numpy(self, x, normal):
        f = self._fns
        out = None
        if "hv_n" in f:
            out = np.einsum("ij,ij->i", np.stack([p(x) for p in f["hv_n"]], axis=1), normal)
        if "hs_n" in f:
            out = f["hs_n"](x) if out is None else out + f["hs_n"](x)
        return np.zeros(len(x)) if out is None else out

    def h_torch(self, x, normal):
        f = self._fns
        out = None
        if "hv_t" in f:
            out = (torch.stack([p(x) for p in f["hv_t"]], dim=1) * normal).sum(dim=1)
        if "hs_t" in f:
            out = f["hs_t"](x) if out is None else out + f["hs_t"](x)
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) if out is None else out


_PART_KEYS = ("type", "g", "h", "alpha")


def _flatten_boundary(table: dict, prefix: str, out: dict, where: str) -> dict:
    """The condition tables of [boundary] by part name (nested TOML tables joined by '.')."""
    for key, value in table.items():
        if not isinstance(value, dict):
            continue
        name = key if not prefix else f"{prefix}.{key}"
        own = {k: v for k, v in value.items() if not isinstance(v, dict)}
        if own:
            out[name] = own
        _flatten_boundary(value, name, out, where)
    return out


def _make_condition(kind, table, where, dim, u, a, *, default_g=None):
    """A BoundaryCondition from a table with keys type/g/h/alpha (checked)."""
    g_text = _expression_text(table, "g", where)
    h_text = _expression_text(table, "h", where)
    alpha_text = _expression_text(table, "alpha", where)
    label = f"[{where}]"
    if kind == "dirichlet" and (h_text is not None or alpha_text is not None):
        bad = "h" if h_text is not None else "alpha"
        raise ProblemError(f"{where}.{bad} is {'flux' if bad == 'h' else 'Robin'} data: a dirichlet "
                           f"part takes only g; remove it or use type = 'neumann' / 'robin'")
    if kind in ("neumann", "robin") and g_text is not None:
        raise ProblemError(f"{where}.g is Dirichlet data: a {kind} part takes "
                           f"{'h' if kind == 'neumann' else 'alpha and h'}; remove g or use "
                           "type = 'dirichlet'")
    if kind == "neumann" and alpha_text is not None:
        raise ProblemError(f"{where}.alpha is Robin data: use it with type = 'robin' "
                           "(a du/dn + alpha u = h), or remove it")
    texts = {k: v for k, v in (("g", g_text), ("h", h_text), ("alpha", alpha_text)) if v is not None}
    written = tuple(texts)
    if kind == "dirichlet":
        if g_text is None and u is None:
            raise ProblemError(f"{where} is a dirichlet part and needs g (u = g), or solution.u "
                               "from which g = u")
        g = parse_expression(g_text, dim, name=f"{where}.g") if g_text is not None else u
        return BoundaryCondition(kind, dim, g=g, written=written, where=label, texts=texts)
    alpha = None
    if kind == "robin":
        if alpha_text is None:
            raise ProblemError(f"{where} is a robin part (a du/dn + alpha u = h) and needs alpha, "
                               "e.g. alpha = \"1\"")
        alpha = parse_expression(alpha_text, dim, name=f"{where}.alpha")
    if h_text is None and u is None:
        what = "a du/dn = h" if kind == "neumann" else "a du/dn + alpha u = h"
        raise ProblemError(f"{where} is a {kind} part ({what}) and needs h, or solution.u from "
                           "which h is derived")
    if h_text is not None:
        h_vec, h_scalar = None, parse_expression(h_text, dim, name=f"{where}.h")
    else:
        h_vec = tuple(a * du for du in gradient(u, dim))
        h_scalar = alpha * u if kind == "robin" else None
    return BoundaryCondition(kind, dim, h_vec=h_vec, h_scalar=h_scalar, alpha=alpha,
                             written=written, where=label, texts=texts)


# ============================================================================ data classes

@dataclass
class BoundaryBatch:
    """Boundary points with their outward normals and boundary data.

    Exactly one of ``dirichlet[i]`` (``u = g``), ``neumann[i]`` (``a du/dn = h``) and
    ``robin[i]`` (``a du/dn + alpha u = h``) is True at ``x[i]``; ``g`` is 0 where not
    Dirichlet, ``h`` 0 on Dirichlet points, ``alpha`` 0 where not Robin; ``a`` is the diffusion
    coefficient at the points; ``part`` the index of the boundary part (see
    :class:`BoundaryParts`). Built without the newer fields (``neumann``, ``robin``, ``alpha``,
    ``a``), they default to: Neumann wherever not Dirichlet, no Robin points, ``a = 1``.
    """

    x: torch.Tensor          # (n, d) points on the boundary
    normal: torch.Tensor     # (n, d) outward unit normals
    dirichlet: torch.Tensor  # (n,) bool
    g: torch.Tensor          # (n,) Dirichlet value (0 where not Dirichlet)
    h: torch.Tensor          # (n,) flux data: a du/dn (Neumann) or a du/dn + alpha u (Robin)
    neumann: torch.Tensor | None = None  # (n,) bool
    robin: torch.Tensor | None = None    # (n,) bool
    alpha: torch.Tensor | None = None    # (n,) Robin coefficient (0 where not Robin)
    a: torch.Tensor | None = None        # (n,) diffusion coefficient at the points
    part: torch.Tensor | None = None     # (n,) int64 boundary part index

    def __post_init__(self):
        if self.robin is None:
            self.robin = torch.zeros_like(self.dirichlet)
        if self.neumann is None:
            self.neumann = ~self.dirichlet & ~self.robin
        if self.alpha is None:
            self.alpha = torch.zeros_like(self.g)
        if self.a is None:
            self.a = torch.ones_like(self.g)


def _check_count(n, what="n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ProblemError(f"{what} must be a non-negative integer number of points, got {n!r}")
    return int(n)


def _check_sampler(sampler) -> str:
    if sampler not in SAMPLERS:
        raise ProblemError(f"sampler {sampler!r} is unknown; use one of: {', '.join(SAMPLERS)}")
    return sampler


_NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _check_dtype(dtype) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in _NP_DTYPES:
        raise ProblemError(f"dtype {dtype} is not supported for points; use torch.float32 or "
                           "torch.float64")
    return dtype


@dataclass(eq=False)
class PoissonProblem:
    """``-Laplace u = f`` in ``Omega``, with ``u = g`` and/or ``du/dn = h`` on ``dOmega``.

    ``h`` is a sympy expression when the user gave it (a scalar function whose boundary values
    are ``du/dn``), or the tuple ``grad u`` when it is derived from the exact solution, in which
    case ``h(x) = grad u(x) . n(x)`` needs the normal (:meth:`h_torch`).  ``measure`` and
    ``boundary_measure`` are ``|Omega|`` and ``|dOmega|`` (for d = 1 the boundary measure counts
    the end points); ``measure_exact`` is False where they are quasi-Monte Carlo estimates.
    ``solver`` holds the optional ``[solver]`` table of the problem file, unchecked.
    A pure Neumann problem determines ``u`` only up to a constant; the solver fixes its mean.
    Build problems with :func:`problem_from_dict`, :func:`load_problem` or
    :func:`builtin_problem`.
    """

    name: str
    dim: int
    geometry: Any
    spec: dict
    u: sympy.Expr | None
    f: sympy.Expr
    g: sympy.Expr | None
    h: sympy.Expr | tuple | None
    measure: float
    boundary_measure: float
    boundary_kind: str
    neumann_sides: tuple[str, ...] = ()
    measure_exact: bool = True
    solver: dict = field(default_factory=dict)
    description: str = ""
    shape: Any = field(default=None, repr=False)
    a: sympy.Expr = sympy.S.One    # diffusion coefficient of -div(a grad u) + c u = f
    c: sympy.Expr = sympy.S.Zero   # reaction coefficient
    parts: Any = field(default=None, repr=False)       # BoundaryParts
    conditions: tuple = field(default=(), repr=False)  # BoundaryCondition per atomic part

    def __post_init__(self):
        if self.shape is None:
            self.shape = _build_shape(self.spec["domain"], "domain", 0)
        if self.parts is None:
            self.parts = _boundary_parts(self.spec["domain"], self.shape)
            self.parts.present = _present_parts(self.shape)
        if not self.conditions:  # from the legacy fields
            n = self.shape.n_parts
            dc = BoundaryCondition("dirichlet", self.dim, g=self.g) if self.g is not None else None
            nc = None
            if self.h is not None:
                nc = BoundaryCondition("neumann", self.dim,
                                       h_vec=self.h if isinstance(self.h, tuple) else None,
                                       h_scalar=None if isinstance(self.h, tuple) else self.h)
            if self.boundary_kind == "neumann":
                conds = [nc] * n
            else:
                conds = [dc] * n
                for side in self.neumann_sides:
                    conds[_side_index(side)] = nc
            self.conditions = tuple(conds)

    # -- properties
    @property
    def has_exact(self) -> bool:
        """Whether an exact solution ``u`` is known."""
        return self.u is not None

    @property
    def pure_neumann(self) -> bool:
        """Whether ``a du/dn = h`` holds on the whole boundary and ``c = 0`` (u is unique only
        up to a constant)."""
        return self.boundary_kind == "neumann" and self.c == 0

    @property
    def has_coefficient(self) -> bool:
        """Whether the diffusion coefficient ``a`` is not the constant 1."""
        return self.a != 1

    @property
    def has_reaction(self) -> bool:
        """Whether the reaction coefficient ``c`` is not 0."""
        return self.c != 0

    @property
    def has_robin(self) -> bool:
        return any(cd is not None and cd.kind == "robin" for cd in self.conditions)

    @property
    def part_names(self) -> tuple:
        """The names of the boundary parts (see :class:`BoundaryParts`)."""
        return tuple(self.parts.listing())

    def part_of(self, x: np.ndarray) -> np.ndarray:
        """Index of the boundary part nearest to each point (parts with a condition only)."""
        d = self.shape.part_distances(np.asarray(x, dtype=np.float64))
        missing = [k for k, cd in enumerate(self.conditions) if cd is None]
        if missing:
            d[:, missing] = np.inf
        return d.argmin(axis=1)

    def a_numpy(self, x: np.ndarray) -> np.ndarray:
        if self.a == 1:
            return np.ones(len(x))
        return self._compiled["a_n"](x)

    def c_numpy(self, x: np.ndarray) -> np.ndarray:
        if self.c == 0:
            return np.zeros(len(x))
        return self._compiled["c_n"](x)

    def a_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The diffusion coefficient at ``x`` (n, d) -> (n,)."""
        if self.a == 1:
            return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        return self._compiled["a_t"](x)

    def grad_a_torch(self, x: torch.Tensor) -> torch.Tensor:
        """``grad a`` at ``x`` (n, d) -> (n, d) (piecewise: pointwise derivative)."""
        if self.a == 1:
            return torch.zeros_like(x)
        return torch.stack([p(x) for p in self._compiled["da_t"]], dim=1)

    def c_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The reaction coefficient at ``x`` (n, d) -> (n,)."""
        if self.c == 0:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return self._compiled["c_t"](x)

    @property
    def h_from_u(self) -> bool:
        """Whether the Neumann data are ``grad u . n`` of the exact solution."""
        return isinstance(self.h, tuple)

    # -- compiled functions (built on first use)
    @functools.cached_property
    def _compiled(self) -> dict:
        d = self.dim
        c = {"f_t": to_torch(self.f, d), "f_n": to_numpy(self.f, d)}
        if self.u is not None:
            grad = gradient(self.u, d)
            c.update(u_t=to_torch(self.u, d), u_n=to_numpy(self.u, d),
                     du_t=[to_torch(e, d) for e in grad], du_n=[to_numpy(e, d) for e in grad])
        if self.g is not None:
            c.update(g_t=to_torch(self.g, d), g_n=to_numpy(self.g, d))
        if isinstance(self.h, tuple):
            c.update(h_t=[to_torch(e, d) for e in self.h], h_n=[to_numpy(e, d) for e in self.h])
        elif self.h is not None:
            c.update(h_t=to_torch(self.h, d), h_n=to_numpy(self.h, d))
        if self.a != 1:
            c.update(a_t=to_torch(self.a, d), a_n=to_numpy(self.a, d),
                     da_t=[to_torch(e, d) for e in gradient(self.a, d)])
        if self.c != 0:
            c.update(c_t=to_torch(self.c, d), c_n=to_numpy(self.c, d))
        return c

    def _need(self, key: str, what: str):
        fn = self._compiled.get(key)
        if fn is None:
            raise ProblemError(f"problem {self.name!r} has no {what}")
        return fn

    def f_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The source ``f`` at points ``x`` (n, d) -> (n,), differentiable."""
        return self._compiled["f_t"](x)

    def f_numpy(self, x: np.ndarray) -> np.ndarray:
        return self._compiled["f_n"](x)

    def u_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The exact solution at ``x`` (n, d) -> (n,); ProblemError if none is known."""
        return self._need("u_t", "exact solution: give [solution] u")(x)

    def u_numpy(self, x: np.ndarray) -> np.ndarray:
        return self._need("u_n", "exact solution: give [solution] u")(x)

    def grad_u_torch(self, x: torch.Tensor) -> torch.Tensor:
        """``grad u`` of the exact solution at ``x`` (n, d) -> (n, d)."""
        parts = self._need("du_t", "exact solution: give [solution] u")
        return torch.stack([p(x) for p in parts], dim=1)

    def grad_u_numpy(self, x: np.ndarray) -> np.ndarray:
        parts = self._need("du_n", "exact solution: give [solution] u")
        return np.stack([p(x) for p in parts], axis=1)

    def g_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Dirichlet data ``g`` at boundary points ``x`` (n, d) -> (n,)."""
        return self._need("g_t", "Dirichlet data g")(x)

    def g_numpy(self, x: np.ndarray) -> np.ndarray:
        return self._need("g_n", "Dirichlet data g")(x)

    def h_torch(self, x: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Neumann data ``du/dn`` at boundary points ``x`` with outward normals ``normal``.

        ``h(x)`` if h was given, else ``grad u(x) . normal``.
        """
        fn = self._need("h_t", "Neumann data h")
        if isinstance(fn, list):
            return (torch.stack([p(x) for p in fn], dim=1) * normal).sum(dim=1)
        return fn(x)

    def h_numpy(self, x: np.ndarray, normal: np.ndarray) -> np.ndarray:
        fn = self._need("h_n", "Neumann data h")
        if isinstance(fn, list):
            return np.einsum("ij,ij->i", np.stack([p(x) for p in fn], axis=1), normal)
        return fn(x)

    # -- sampling
    def _uniform_interior(self, n: int) -> np.ndarray:
        shape = self.shape
        if isinstance(shape, _Box):
            with contextlib.redirect_stdout(io.StringIO()):  # DeepXDE prints count warnings
                return np.asarray(self.geometry.uniform_points(n, boundary=False), np.float64)
        # a cell-centred grid over the bounding box, spacing chosen to put about n points inside
        h = (self.measure / n) ** (1.0 / self.dim)
        counts = np.maximum(1, np.ceil((shape.hi - shape.lo) / h).astype(np.int64))
        if np.prod(counts.astype(float)) > _MAX_GRID_POINTS:
            raise ProblemError(f"a uniform grid of {n} points in this {self.dim}-D domain needs "
                               f"more than {_MAX_GRID_POINTS} grid cells; use sampler='sobol'")
        axes = [shape.lo[i] + (np.arange(c) + 0.5) * (shape.hi[i] - shape.lo[i]) / c
                for i, c in enumerate(counts)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)

    def sample_interior(self, n: int, *, generator: torch.Generator | None = None,
                        sampler: str = "random", dtype: torch.dtype | None = None,
                        device=None) -> torch.Tensor:
        """``n`` points strictly inside the domain, uniformly distributed, as an (n, d) tensor.

        ``sampler``: ``"random"`` (i.i.d. from ``generator``; None: torch's global generator),
        ``"sobol"`` (scrambled Sobol, seeded from ``generator``) or ``"uniform"`` (a
        deterministic grid: DeepXDE's ``uniform_points(n, boundary=False)`` for boxes, a
        cell-centred grid elsewhere; about, not exactly, ``n`` points).  numpy's global
        random state is never used.  The points are strictly inside even after rounding to
        ``dtype`` (default: torch's default dtype).
        """
        n, sampler, dtype = _check_count(n), _check_sampler(sampler), _check_dtype(dtype)
        np_dtype = _NP_DTYPES[dtype]
        shape = self.shape
        if n == 0:
            x = np.empty((0, self.dim))
        elif sampler == "uniform":
            x = self._uniform_interior(n).astype(np_dtype).astype(np.float64)
            x = x[shape.classify(x) == -1]
        else:
            src, parts, have = _Source(sampler, generator), [], 0
            for _ in range(1000):
                x = shape.interior(n - have + 8, src).astype(np_dtype).astype(np.float64)
                x = x[shape.classify(x) == -1]
                parts.append(x)
                have += len(x)
                if have >= n:
                    break
            else:  # pragma: no cover - a domain of positive measure is always hit
                raise ProblemError(f"could not sample the interior of problem {self.name!r}")
            x = np.concatenate(parts)[:n]
        return torch.as_tensor(x, dtype=dtype, device=device)

    def sample_boundary(self, n: int, *, generator: torch.Generator | None = None,
                        sampler: str = "random", dtype: torch.dtype | None = None,
                        device=None) -> BoundaryBatch:
        """``n`` boundary points, uniform w.r.t. the boundary measure, with normals and data.

        Boxes pick a face with probability proportional to its area; CSG domains sample their
        parts in proportion to the parts' boundary measures and keep the points on the
        result's boundary.  Normals are exact.  ``sampler="uniform"`` gives deterministic
        points about ``|dOmega| / n`` apart (about, not exactly, ``n`` of them).
        """
        n, sampler, dtype = _check_count(n), _check_sampler(sampler), _check_dtype(dtype)
        shape = self.shape
        if n == 0:
            x, nrm, face = np.empty((0, self.dim)), np.empty((0, self.dim)), np.empty(0, np.int64)
        elif sampler == "uniform":
            x, nrm, face = shape.uniform_boundary(self.boundary_measure / n)
        else:
            x, nrm, face = shape.boundary(n, _Source(sampler, generator))
        part = self.part_of(x) if len(x) else np.empty(0, np.int64)
        m = len(x)
        dirichlet, neumann, robin = (np.zeros(m, dtype=bool) for _ in range(3))
        g, h, alpha = np.zeros(m), np.zeros(m), np.zeros(m)
        groups: dict = {}
        for k, cond in enumerate(self.conditions):
            if cond is not None:
                groups.setdefault(id(cond), (cond, []))[1].append(k)
        for cond, ks in groups.values():
            sel = np.isin(part, ks)
            if not sel.any():
                continue
            if cond.kind == "dirichlet":
                dirichlet |= sel
                g[sel] = cond.g_numpy(x[sel])
            else:
                (neumann if cond.kind == "neumann" else robin)[sel] = True
                h[sel] = cond.h_numpy(x[sel], nrm[sel])
                if cond.kind == "robin":
                    alpha[sel] = cond.alpha_numpy(x[sel])
        a = self.a_numpy(x) if m else np.zeros(0)

        def t(v):
            return torch.as_tensor(v, dtype=dtype, device=device)

        def b(v):
            return torch.as_tensor(v, device=device)

        return BoundaryBatch(x=t(x), normal=t(nrm), dirichlet=b(dirichlet), g=t(g), h=t(h),
                             neumann=b(neumann), robin=b(robin), alpha=t(alpha), a=t(a),
                             part=torch.as_tensor(part, dtype=torch.int64, device=device))

    # -- checks
    def check_compatibility(self) -> float:
        """For a pure Neumann problem, the relative defect of ``int f + int h = 0``.

        ``-Laplace u = f`` with ``du/dn = h`` has a solution only if
        ``int_Omega f + int_dOmega h = 0`` (divergence theorem).  Returns
        ``|int f + int h| / (int |f| + int |h|)``, by quasi-Monte Carlo with 2^16 points in the
        domain and on its boundary, and raises :class:`ProblemError` if it exceeds 1e-2.  Other
        problems have Dirichlet data somewhere, so any ``f`` is compatible: returns 0.0.
        """
        if not self.pure_neumann:
            return 0.0
        n = 2**16
        gen = torch.Generator().manual_seed(_MC_SEED)
        x = self.sample_interior(n, generator=gen, sampler="sobol", dtype=torch.float64).numpy()
        fv = self.f_numpy(x)
        sampler = "uniform" if self.dim == 1 else "sobol"  # d = 1: the end points, evenly
        b = self.sample_boundary(n, generator=gen, sampler=sampler, dtype=torch.float64)
        hv = b.h.numpy()
        int_f, abs_f = self.measure * fv.mean(), self.measure * np.abs(fv).mean()
        int_h, abs_h = self.boundary_measure * hv.mean(), self.boundary_measure * np.abs(hv).mean()
        defect = float(abs(int_f + int_h) / (abs_f + abs_h + 1e-300))
        if not np.isfinite(defect) or defect > COMPATIBILITY_TOLERANCE:
            raise ProblemError(
                f"pure Neumann problem {self.name!r} is incompatible: int f + int h = "
                f"{int_f:.6g} + {int_h:.6g} != 0 (relative defect {defect:.3g} > "
                f"{COMPATIBILITY_TOLERANCE}); a solution needs int_Omega f + int_dOmega h = 0: "
                "fix solution.f or boundary.h")
        return defect

    def to_toml(self) -> str:
        """The problem as TOML text (see :func:`problem_to_toml`)."""
        return problem_to_toml(self)


# ============================================================================ validation

def _side_names(dim: int) -> list[str]:
    return [f"x{i}_{end}" for i in range(1, dim + 1) for end in ("min", "max")]


def _side_index(name: str) -> int:
    i, end = name[1:].split("_")
    return 2 * (int(i) - 1) + (1 if end == "max" else 0)


def _check_keys(table: dict, allowed, where: str) -> None:
    """``where``: the table as the user sees it, e.g. ``[domain] (type disk)``."""
    for key in table:
        if key not in allowed:
            raise ProblemError(f"unknown key {key!r:.60} in {where}; allowed keys: "
                               f"{', '.join(allowed)}")


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ProblemError(f"[{where}] must be a table, got {type(value).__name__} {value!r:.60}")
    return value


def _number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProblemError(f"{key} must be a number, got {type(value).__name__} {value!r:.60}")
    value = float(value)
    if not math.isfinite(value):
        raise ProblemError(f"{key} must be a finite number, got {value}")
    return value


def _vector(value, key: str, length: int | None = None) -> list[float]:
    if not isinstance(value, (list, tuple)):
        raise ProblemError(f"{key} must be a list of numbers such as [0.0, 0.0], got "
                           f"{type(value).__name__} {value!r:.60}")
    if length is not None and len(value) != length:
        raise ProblemError(f"{key} must have {length} entries, got {len(value)}")
    if not 1 <= len(value) <= MAX_DIM:
        raise ProblemError(f"{key} must have 1 to {MAX_DIM} entries (the dimension), "
                           f"got {len(value)}")
    return [_number(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _require(table: dict, key: str, where: str, hint: str):
    if key not in table:
        raise ProblemError(f"[{where}] needs {key} ({hint})")
    return table[key]


def _box_bounds(lo: list[float], hi: list[float], where: str) -> None:
    if len(lo) != len(hi):
        raise ProblemError(f"{where}.xmin has {len(lo)} entries but {where}.xmax has {len(hi)}; "
                           "give one per dimension")
    for i, (a, b) in enumerate(zip(lo, hi)):
        if not a < b:
            raise ProblemError(f"{where}: xmin[{i}] = {a} >= xmax[{i}] = {b}; a box needs "
                               "xmin < xmax in every coordinate")


def _normalize_domain(table, where: str, depth: int) -> dict:
    """Check a [domain] table and return it as plain data with every parameter explicit.

    The optional ``name`` of a part names its boundary in [boundary.NAME] tables."""
    out = _normalize_domain_body(table, where, depth)
    if isinstance(table, dict) and "name" in table:
        nm = table["name"]
        if not isinstance(nm, str) or not _PART_NAME_RE.match(nm) or nm in _RESERVED_PART_NAMES:
            raise ProblemError(f"{where}.name {nm!r:.60} must start with a letter and use letters, "
                               "digits, '_' or '-' (no '.'), and not be a side name such as x_min")
        out["name"] = nm
    return out


_RESERVED_PART_NAMES = {"circle", "sphere", "a", "b"} | {f"edge{i}" for i in range(1000)} | {
    f"{ax}_{e}" for ax in ("x", "y", "z", *[f"x{i}" for i in range(1, 11)]) for e in ("min", "max")}


def _normalize_domain_body(table, where: str, depth: int) -> dict:
    table = _table(table, where)
    if depth > _MAX_CSG_DEPTH:
        raise ProblemError(f"[{where}] is nested more than {_MAX_CSG_DEPTH} levels deep")
    kind = _require(table, "type", where, f"one of: {', '.join(DOMAIN_TYPES)}")
    if kind not in DOMAIN_TYPES:
        raise ProblemError(f"{where}.type {kind!r} is unknown; use one of: "
                           f"{', '.join(DOMAIN_TYPES)}")
    _check_keys(table, _DOMAIN_KEYS[kind], f"[{where}] (type {kind})")
    if kind == "interval":
        lo = _require(table, "xmin", where, "the left end, e.g. xmin = 0.0")
        hi = _require(table, "xmax", where, "the right end, e.g. xmax = 1.0")
        lo = _vector(lo, f"{where}.xmin", 1)[0] if isinstance(lo, list) else _number(lo, f"{where}.xmin")
        hi = _vector(hi, f"{where}.xmax", 1)[0] if isinstance(hi, list) else _number(hi, f"{where}.xmax")
        _box_bounds([lo], [hi], where)
        return {"type": kind, "xmin": lo, "xmax": hi}
    if kind in ("rectangle", "box"):
        length = 2 if kind == "rectangle" else None
        lo = _vector(_require(table, "xmin", where, "a list, e.g. xmin = [0.0, 0.0]"),
                     f"{where}.xmin", length)
        hi = _vector(_require(table, "xmax", where, "a list, e.g. xmax = [1.0, 1.0]"),
                     f"{where}.xmax", length)
        _box_bounds(lo, hi, where)
        return {"type": kind, "xmin": lo, "xmax": hi}
    if kind == "hypercube":
        dim = _require(table, "dim", where, f"the dimension, 1 to {MAX_DIM}")
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
            raise ProblemError(f"{where}.dim must be an integer from 1 to {MAX_DIM}, got {dim!r}")
        lo = _number(table.get("xmin", 0.0), f"{where}.xmin")
        hi = _number(table.get("xmax", 1.0), f"{where}.xmax")
        _box_bounds([lo], [hi], where)
        return {"type": kind, "dim": dim, "xmin": lo, "xmax": hi}
    if kind in ("disk", "ball"):
        if kind == "disk":
            center = _vector(table.get("center", [0.0, 0.0]), f"{where}.center", 2)
        else:
            center = _vector(_require(table, "center", where, "a list whose length is the "
                                      "dimension, e.g. center = [0.0, 0.0, 0.0]"),
                             f"{where}.center")
        radius = _number(table.get("radius", 1.0), f"{where}.radius")
        if radius <= 0:
            raise ProblemError(f"{where}.radius must be positive, got {radius}")
        return {"type": kind, "center": center, "radius": radius}
    if kind == "polygon":
        verts = _require(table, "vertices", where, "the corners in order, e.g. "
                         "vertices = [[0, 0], [1, 0], [0, 1]]")
        if not isinstance(verts, (list, tuple)):
            raise ProblemError(f"{where}.vertices must be a list of [x, y] pairs, got "
                               f"{type(verts).__name__}")
        if len(verts) < 3:
            raise ProblemError(f"{where}.vertices has {len(verts)} vertices; a polygon needs at "
                               "least 3")
        if len(verts) > _MAX_POLYGON_VERTICES:
            raise ProblemError(f"{where}.vertices has {len(verts)} vertices; use at most "
                               f"{_MAX_POLYGON_VERTICES}")
        out = []
        for i, v in enumerate(verts):
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise ProblemError(f"{where}.vertices[{i}] must be a pair [x, y], got {v!r:.60}")
            out.append([_number(c, f"{where}.vertices[{i}]") for c in v])
        return {"type": kind, "vertices": out}
    if kind == "lshape":
        return {"type": kind}
    a = _normalize_domain(_require(table, "a", where, f"the first part, as [{where}.a]"),
                          f"{where}.a", depth + 1)
    b = _normalize_domain(_require(table, "b", where, f"the second part, as [{where}.b]"),
                          f"{where}.b", depth + 1)
    return {"type": kind, "a": a, "b": b}


def _build_shape(spec: dict, where: str, depth: int) -> _Shape:
    """The shape of a normalized [domain] table."""
    kind = spec["type"]
    if kind == "interval":
        return _Box([spec["xmin"]], [spec["xmax"]])
    if kind in ("rectangle", "box"):
        return _Box(spec["xmin"], spec["xmax"])
    if kind == "hypercube":
        return _Box([spec["xmin"]] * spec["dim"], [spec["xmax"]] * spec["dim"])
    if kind in ("disk", "ball"):
        c, r = spec["center"], spec["radius"]
        if len(c) == 1:
            return _Box([c[0] - r], [c[0] + r])
        return _Ball(c, r)
    if kind == "polygon":
        return _Polygon(spec["vertices"], where)
    if kind == "lshape":
        return _Polygon(_LSHAPE_VERTICES, where)
    a = _build_shape(spec["a"], f"{where}.a", depth + 1)
    b = _build_shape(spec["b"], f"{where}.b", depth + 1)
    if a.dim != b.dim:
        raise ProblemError(f"{where}: part a is {a.dim}-dimensional but part b is "
                           f"{b.dim}-dimensional; both parts of a {kind} need the same dimension")
    return _Csg(kind, a, b, where)


def _expression_text(table: dict, key: str, where: str) -> str | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ProblemError(f"{where}.{key} must be a formula string such as 'sin(pi*x)', got "
                           f"{type(value).__name__} {value!r:.60}")
    return value if isinstance(value, str) else repr(value)


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


def _numerically_zero(terms: list[sympy.Expr], dim: int, x: np.ndarray) -> bool:
    """Whether sum(terms) cancels to rounding error at the points ``x``."""
    with np.errstate(all="ignore"):
        try:
            vals = np.stack([to_numpy(t, dim)(x) for t in terms])
        except ExpressionError:
            return False
        total, size = np.abs(vals.sum(axis=0)), np.abs(vals).sum(axis=0)
        ok = np.isfinite(total) & np.isfinite(size)
        if ok.sum() * 2 < len(x):
            return False
        return bool(np.all(total[ok] <= 1e-9 * size[ok]))


def _agree(a: np.ndarray, b: np.ndarray) -> tuple[bool, int]:
    """Whether two arrays of values agree where both are finite; index of the worst point."""
    with np.errstate(all="ignore"):
        ok = np.isfinite(a) & np.isfinite(b)
        if not ok.any():
            return True, -1
        err = np.where(ok, np.abs(a - b), 0.0)
        scale = 1e-8 + 1e-6 * max(np.abs(a[ok]).max(), np.abs(b[ok]).max())
        worst = int(err.argmax())
        return bool(err[worst] <= scale), worst


def problem_from_dict(data: dict, *, source: str = "problem dict") -> PoissonProblem:
    """Build a :class:`PoissonProblem` from the plain data of a problem file.

    Checks everything once, here: unknown keys, the domain, the expressions (parsed safely
    with :func:`hrta_pde.poisson.expressions.parse_expression`; an :class:`ExpressionError` is raised
    as is), that ``f = -laplacian(u)`` when both are given, that ``g = u`` and
    ``h = du/dn`` on the boundary when given with ``u``, and, for a pure Neumann problem,
    the compatibility ``int f + int h = 0``.  Other errors are :class:`ProblemError` with a
    one-line message starting with ``source``.
    Example: ``problem_from_dict({"domain": {"type": "disk"}, "solution": {"u": "1-x^2-y^2"}})``.
    """
    try:
        return _problem_from_dict(data, source)
    except ProblemError as exc:
        message = str(exc)
        if not message.startswith(f"{source}: "):
            message = f"{source}: {message}"
        raise ProblemError(message) from None


def _problem_from_dict(data, source: str) -> PoissonProblem:
    data = _table(data, "problem")
    _check_keys(data, _TOP_KEYS, "the top level")
    name = data.get("name", Path(source).stem if source.endswith(".toml") else "problem")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ProblemError(f"name {name!r:.60} must be 1-100 letters, digits, '_', '-' or '.'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ProblemError(f"description must be a string, got {type(description).__name__}")
    if "domain" not in data:
        raise ProblemError("missing [domain]; give e.g. [domain] type = \"rectangle\", "
                           "xmin = [0.0, 0.0], xmax = [1.0, 1.0]")
    domain = _normalize_domain(data["domain"], "domain", 0)
    shape = _build_shape(domain, "domain", 0)
    dim = shape.dim

    solution = _table(data.get("solution", {}), "solution")
    _check_keys(solution, _SOLUTION_KEYS, "[solution]")
    u_text = _expression_text(solution, "u", "solution")
    f_text = _expression_text(solution, "f", "solution")
    a_text = _expression_text(solution, "a", "solution")
    c_text = _expression_text(solution, "c", "solution")
    if u_text is None and f_text is None:
        raise ProblemError("[solution] needs f (the source) or u (an exact solution, from which "
                           "f = -div(a grad u) + c u)")
    u = parse_expression(u_text, dim, name="solution.u") if u_text is not None else None
    f_given = parse_expression(f_text, dim, name="solution.f") if f_text is not None else None
    a = parse_expression(a_text, dim, name="solution.a") if a_text is not None else sympy.S.One
    c = parse_expression(c_text, dim, name="solution.c") if c_text is not None else sympy.S.Zero
    general = not (a == 1 and c == 0)

    parts = _boundary_parts(domain, shape)
    present = _present_parts(shape)
    parts.present = present
    boundary = _table(data.get("boundary", {}), "boundary")
    part_tables = _flatten_boundary(boundary, "", {}, "boundary")
    top = {k: v for k, v in boundary.items() if not isinstance(v, dict)}
    _check_keys(top, _BOUNDARY_KEYS, "[boundary]")
    for pname, table in part_tables.items():
        _check_keys(table, _PART_KEYS, f"[boundary.{pname}]")
    has_default = "type" in top or not part_tables
    kind = top.get("type", "dirichlet") if has_default else None
    if kind is not None and kind not in BOUNDARY_TYPES:
        raise ProblemError(f"boundary.type {kind!r:.60} is unknown; use one of: "
                           f"{', '.join(BOUNDARY_TYPES)}")
    if not has_default and any(k in top for k in ("g", "h", "alpha")):
        raise ProblemError("[boundary] has data (g, h or alpha) but no type: add type = "
                           "'dirichlet', 'neumann' or 'robin' for the parts without their own table")
    if part_tables and kind == "mixed":
        raise ProblemError("boundary.type 'mixed' with neumann_sides cannot be combined with "
                           "per-part tables; give each part its own [boundary.PART] table instead")
    g_text = _expression_text(top, "g", "boundary")
    h_text = _expression_text(top, "h", "boundary")
    if kind == "dirichlet" and h_text is not None:
        raise ProblemError("boundary.h is Neumann data: use it with boundary.type = 'neumann' or "
                           "'mixed', or remove it")
    if kind == "neumann" and g_text is not None:
        raise ProblemError("boundary.g is Dirichlet data: use it with boundary.type = "
                           "'dirichlet' or 'mixed', or remove it")
    if "alpha" in top and kind != "robin":
        raise ProblemError("boundary.alpha is Robin data: use it with boundary.type = 'robin' "
                           "(a du/dn + alpha u = h), or remove it")
    sides: tuple[str, ...] = ()
    if "neumann_sides" in top and kind != "mixed":
        raise ProblemError("boundary.neumann_sides is only used with boundary.type = 'mixed'")
    if kind == "mixed":
        if domain["type"] not in _BOX_TYPES:
            raise ProblemError(f"boundary.type 'mixed' needs a box domain ({', '.join(_BOX_TYPES)})"
                               f"; for domain type {domain['type']!r} give each boundary part its "
                               "own [boundary.PART] table (hrta-pde problems --show lists the parts)")
        allowed = _side_names(dim)
        raw = _require(top, "neumann_sides", "boundary",
                       f"a list of box sides from: {', '.join(allowed)}")
        if not isinstance(raw, list) or not raw:
            raise ProblemError(f"boundary.neumann_sides must be a non-empty list of sides from: "
                               f"{', '.join(allowed)}")
        for s in raw:
            if s not in allowed:
                raise ProblemError(f"boundary.neumann_sides: unknown side {s!r:.40}; use names "
                                   f"from: {', '.join(allowed)}")
        if len(set(raw)) != len(raw):
            raise ProblemError("boundary.neumann_sides lists a side twice")
        if len(raw) == len(allowed):
            raise ProblemError("boundary.neumann_sides lists every side; use boundary.type = "
                               "'neumann' instead")
        sides = tuple(raw)
    # legacy data g, h of a single [boundary] type (kept as the problem's g and h)
    g = h = None
    if kind in ("dirichlet", "mixed"):
        if g_text is None and u is None:
            raise ProblemError(f"a {kind} problem needs boundary.g (or solution.u, from which g = u)")
        g = parse_expression(g_text, dim, name="boundary.g") if g_text is not None else u
    if kind in ("neumann", "mixed"):
        if h_text is None and u is None:
            raise ProblemError(f"a {kind} problem needs boundary.h (or solution.u, from which "
                               "h = a grad u . n)")
        h = (parse_expression(h_text, dim, name="boundary.h") if h_text is not None
             else tuple(a * du for du in gradient(u, dim)))

    # the condition of every atomic part
    n_parts = shape.n_parts
    conditions: list = [None] * n_parts
    if kind in ("dirichlet", "mixed"):
        d_cond = BoundaryCondition("dirichlet", dim, g=g, written=("g",) if g_text else (),
                                   where="[boundary]", texts={"g": g_text} if g_text else {})
        conditions = [d_cond] * n_parts
    if kind in ("neumann", "mixed"):
        n_cond = BoundaryCondition("neumann", dim, h_vec=h if isinstance(h, tuple) else None,
                                   h_scalar=None if isinstance(h, tuple) else h,
                                   written=("h",) if h_text else (), where="[boundary]",
                                   texts={"h": h_text} if h_text else {})
        if kind == "neumann":
            conditions = [n_cond] * n_parts
        else:
            for side in sides:
                conditions[_side_index(side)] = n_cond
    if kind == "robin":
        conditions = [_make_condition("robin", top, "boundary", dim, u, a)] * n_parts
    given_by: list = [None] * n_parts
    for pname, table in part_tables.items():
        where = f"boundary.{pname}"
        ids = parts.resolve(pname, f"[{where}]")
        pkind = _require(table, "type", where, f"the condition: one of {', '.join(PART_KINDS)}")
        if pkind not in PART_KINDS:
            raise ProblemError(f"{where}.type {pkind!r:.40} is unknown; use one of: "
                               f"{', '.join(PART_KINDS)}")
        cond = _make_condition(pkind, table, where, dim, u, a)
        for k in ids:
            if given_by[k] is not None:
                raise ProblemError(f"boundary part {parts.names[k]!r} gets two conditions, from "
                                   f"[boundary.{given_by[k]}] and [{where}]; give it one")
            given_by[k] = pname
            conditions[k] = cond
    for k in range(n_parts):
        if present[k] and conditions[k] is None:
            raise ProblemError(f"boundary part {parts.names[k]!r} has no condition: add a "
                               f"[boundary.{parts.names[k]}] table with type = 'dirichlet', "
                               "'neumann' or 'robin', or a default type under [boundary]")
    used = [conditions[k] for k in range(n_parts) if present[k]]
    kinds = {cond.kind for cond in used}
    if kind == "mixed":
        boundary_kind = "mixed"
    elif len(kinds) == 1:
        boundary_kind = kinds.pop()
    else:
        boundary_kind = "mixed"
    if part_tables:  # the problem's g and h: the data shared by all parts of that kind, if any
        d_conds = {id(cd): cd for cd in used if cd.kind == "dirichlet"}
        n_conds = {id(cd): cd for cd in used if cd.kind == "neumann"}
        g = next(iter(d_conds.values())).g if len(d_conds) == 1 else None
        h = None
        if len(n_conds) == 1:
            only = next(iter(n_conds.values()))
            h = only.h_scalar if only.h_vec is None else only.h_vec

    solver = _table(data.get("solver", {}), "solver")
    _check_keys(solver, SOLVER_KEYS, "[solver]")

    spec: dict = {"name": name}
    if description:
        spec["description"] = description
    spec["domain"] = domain
    spec["solution"] = {k: v for k, v in (("u", u_text), ("f", f_text), ("a", a_text),
                                          ("c", c_text)) if v is not None}
    spec["boundary"] = {"type": kind} if kind is not None else {}
    if g_text is not None:
        spec["boundary"]["g"] = g_text
    if h_text is not None:
        spec["boundary"]["h"] = h_text
    if "alpha" in top:
        spec["boundary"]["alpha"] = _expression_text(top, "alpha", "boundary")
    if sides:
        spec["boundary"]["neumann_sides"] = list(sides)
    for pname, table in part_tables.items():
        spec["boundary"][pname] = {k: (table[k] if k == "type" else _expression_text(table, k, pname))
                                   for k in _PART_KEYS if k in table}
    if solver:
        spec["solver"] = dict(solver)

    # points for the numerical checks, from a fixed seed
    gen = torch.Generator().manual_seed(_MC_SEED)
    x_in = shape.interior(200, _Source("random", gen))
    x_in = x_in[shape.classify(x_in) == -1]
    if u is not None:
        if not general:
            terms = [gradient(du, dim)[i] for i, du in enumerate(gradient(u, dim))]
            f_u = -laplacian(u, dim)
        else:
            xs = coordinate_symbols(dim)
            terms = [_drop_delta(sympy.diff(a * du, xs[i])) for i, du in enumerate(gradient(u, dim))]
            if c != 0:
                terms.append(-c * u)
            f_u = _cheap_simplify(-sympy.Add(*terms))
        if f_u != 0 and terms and _numerically_zero(terms, dim, x_in):
            f_u = sympy.S.Zero  # harmonic u whose Laplacian sympy cannot cancel cheaply
        if f_given is not None and not expressions_agree(f_given, f_u, dim, points=x_in):
            what = "-laplacian(u)" if not general else "-div(a grad u) + c u"
            raise ProblemError(f"solution.f '{f_text:.60}' is not {what} = {str(f_u):.80} "
                               "for solution.u; fix one of them, or give only u")
        f = f_given if f_given is not None else f_u
    else:
        f = f_given

    with contextlib.redirect_stdout(io.StringIO()):
        from hrta_pde._backend import import_deepxde

        dde = import_deepxde()
    with _float64_geometry(dde):
        try:
            geometry = shape.to_dde(dde)
        except ValueError as exc:  # pragma: no cover - our checks come first
            raise ProblemError(f"DeepXDE refuses the domain: {exc}") from None

    problem = PoissonProblem(
        name=name, dim=dim, geometry=geometry, spec=spec, u=u, f=f, g=g, h=h,
        measure=float(shape.measure), boundary_measure=float(shape.boundary_measure),
        boundary_kind=boundary_kind, neumann_sides=sides, measure_exact=bool(shape.exact),
        solver=dict(solver), description=description, shape=shape, a=a, c=c,
        parts=parts, conditions=tuple(conditions))

    # everything compiles, and is finite inside the domain
    f_what = "solution.f" if f_given is not None else ("f = -laplacian(u)" if not general
                                                        else "f = -div(a grad u) + c u")
    with np.errstate(all="ignore"):
        for what, values in ((f_what, problem.f_numpy(x_in)),
                             ("solution.u", problem.u_numpy(x_in) if u is not None else None)):
            if values is not None and not np.all(np.isfinite(values)):
                i = int(np.argmax(~np.isfinite(values)))
                raise ProblemError(f"{what} is not finite at {x_in[i].tolist()} inside the "
                                   "domain; fix the expression")
    # per-part points (on the boundary) for the checks of the boundary data
    part_x = {}
    for k in range(n_parts):
        if present[k]:
            xk = shape.part_points(k, 64)
            xk = xk[shape.classify(xk) == 0]
            part_x[k] = xk[shape.part_distances(xk).argmin(axis=1) == k]
    _check_coefficients(problem, x_in, np.concatenate([part_x[k] for k in part_x] or [x_in[:0]]),
                        a_text, c_text)
    by_cond: dict = {}
    for k, xk in part_x.items():
        by_cond.setdefault(id(conditions[k]), (conditions[k], []))[1].append(xk)
    for cond, xs_list in by_cond.values():
        xb = np.concatenate(xs_list)
        if not len(xb):
            continue
        nb = shape.normal(xb)
        if cond.alpha is not None:
            with np.errstate(all="ignore"):
                av = cond.alpha_numpy(xb)
            bad = ~(np.isfinite(av) & (av >= 0))
            if bad.any():
                i = int(np.argmax(bad))
                raise ProblemError(f"{cond.where[1:-1]}.alpha '{cond.texts.get('alpha', '')}' is "
                                   f"{av[i]:.6g} at {xb[i].tolist()}; the Robin coefficient must be "
                                   ">= 0 and finite on its parts: fix alpha")
        if u is None:
            continue
        label = cond.where[1:-1]
        if "g" in cond.written:
            ok, i = _agree(cond.g_numpy(xb), problem.u_numpy(xb))
            if not ok:
                raise ProblemError(f"{label}.g '{cond.texts['g']:.60}' differs from solution.u on "
                                   f"the boundary (at {xb[i].tolist()}); fix g or u, or give only u")
        if "h" in cond.written:
            flux = problem.a_numpy(xb) * np.einsum("ij,ij->i", problem.grad_u_numpy(xb), nb)
            if cond.kind == "robin":
                flux = flux + cond.alpha_numpy(xb) * problem.u_numpy(xb)
            ok, i = _agree(cond.h_numpy(xb, nb), flux)
            if not ok:
                what = ("du/dn" if not general else "a du/dn") + (" + alpha u" if cond.kind == "robin"
                                                                   else "")
                raise ProblemError(f"{label}.h '{cond.texts['h']:.60}' differs from {what} of "
                                   f"solution.u on the boundary (at {xb[i].tolist()}); fix h or u, or "
                                   "give only u")
        _check_derived_boundary_data(problem, cond, xb, nb)
    if problem.pure_neumann:
        problem.check_compatibility()
    return problem


def _check_derived_boundary_data(problem, cond, xb, nb) -> None:
    """Dirichlet and Neumann/Robin data derived from ``u`` are finite on the part's points.

    ``u = x*log(x)`` is finite inside (0, 1) but not at x = 0: without this check the problem
    loads and training stops with a NaN loss at iteration 1.
    """
    with np.errstate(all="ignore"):
        if cond.kind == "dirichlet" and "g" not in cond.written:
            what, values = "Dirichlet data g = u", problem.u_numpy(xb)
        elif cond.kind != "dirichlet" and "h" not in cond.written:
            flux = "a du/dn" if problem.has_coefficient else "du/dn"
            what = f"Neumann data h = {flux}" if cond.kind == "neumann" else f"Robin data h = {flux} + alpha u"
            values = problem.a_numpy(xb) * np.einsum("ij,ij->i", problem.grad_u_numpy(xb), nb)
        else:
            return
    bad = ~np.isfinite(values)
    if bad.any():
        raise ProblemError(f"{what} is not finite at {xb[int(np.argmax(bad))].tolist()} on the "
                           "boundary; fix solution.u there or give the boundary data explicitly")


def _check_coefficients(problem, x_in, x_b, a_text, c_text) -> None:
    """``a > 0`` and ``c >= 0``, finite, at the check points inside and on the boundary."""
    x = np.concatenate([x_in, x_b]) if len(x_b) else x_in
    for key, text, expr, strict in (("a", a_text, problem.a, True), ("c", c_text, problem.c, False)):
        if text is None:
            continue
        with np.errstate(all="ignore"):
            v = to_numpy(expr, problem.dim)(x)
        bad = ~np.isfinite(v) | ((v <= 0) if strict else (v < 0))
        if bad.any():
            i = int(np.argmax(bad))
            need = "a diffusion coefficient a > 0" if strict else "a reaction coefficient c >= 0"
            raise ProblemError(f"solution.{key} '{text:.60}' is {v[i]:.6g} at {x[i].tolist()}; the "
                               f"operator -div(a grad u) + c u needs {need} (finite) in the whole "
                               f"domain: fix solution.{key}")


def describe_parts(problem: PoissonProblem) -> str:
    """The boundary parts of a problem's domain and their conditions, as TOML comment lines.

    Example: ``# boundary parts (name them in [boundary.NAME] tables): x_min dirichlet, ...``.
    """
    parts = problem.parts
    lines = ["", "# boundary parts of this domain (give each a [boundary.NAME] table with type ="
             " 'dirichlet', 'neumann' or 'robin'):"]
    for k, nm in enumerate(parts.names):
        if parts.present and not parts.present[k]:
            continue
        cond = problem.conditions[k] if k < len(problem.conditions) else None
        alias = [al for al, full in parts.aliases.items() if full == nm]
        extra = f" (also {', '.join(alias)})" if alias else ""
        lines.append(f"#   {nm}{extra}: {cond.kind if cond is not None else 'no condition'}")
    for op in parts.operands:
        members = [parts.names[k] for k in parts.groups[op]]
        lines.append(f"#   {op}: all of {', '.join(members)}")
    return "\n".join(lines)


# ============================================================================ files

def load_problem(path) -> PoissonProblem:
    """Read a problem from a TOML file (see the module docstring for the format)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ProblemError(f"problem file {str(path)!r} not found; give the path of a .toml file "
                           f"or a built-in problem: {', '.join(list_builtin_problems())}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemError(f"cannot read problem file {str(path)!r}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProblemError(f"{path}: invalid TOML: {' '.join(str(exc).split())}") from None
    return problem_from_dict(data, source=str(path))


def _data_dir():
    return resources.files("hrta_pde.poisson").joinpath("problems_data")


def list_builtin_problems() -> list[str]:
    """Names of the problems shipped in ``hrta_pde/poisson/problems_data`` (also in ``problems/``)."""
    return sorted(p.name[:-5] for p in _data_dir().iterdir() if p.name.endswith(".toml"))


def builtin_problem(name: str) -> PoissonProblem:
    """A catalog problem by name, e.g. ``builtin_problem("poisson_2d_sin")``."""
    names = list_builtin_problems()
    if name not in names:
        raise ProblemError(f"unknown built-in problem {name!r:.60}; available: {', '.join(names)}")
    text = _data_dir().joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return problem_from_dict(tomllib.loads(text), source=f"{name}.toml")


def builtin_problem_text(name: str) -> str:
    """The commented TOML text of a catalog problem (a template for your own)."""
    names = list_builtin_problems()
    if name not in names:
        raise ProblemError(f"unknown built-in problem {name!r:.60}; available: {', '.join(names)}")
    return _data_dir().joinpath(f"{name}.toml").read_text(encoding="utf-8")


def resolve_problem(name_or_path) -> PoissonProblem:
    """A built-in problem if ``name_or_path`` names one, else the TOML file at that path."""
    text = str(name_or_path)
    if text in list_builtin_problems() and not Path(text).exists():
        return builtin_problem(text)
    return load_problem(text)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ProblemError(f"cannot write {type(value).__name__} {value!r:.60} to TOML")


def _toml_table(table: dict, header: str | None, lines: list[str]) -> None:
    if header is not None:
        lines.append(f"\n[{header}]")
    for key, value in table.items():
        if not isinstance(value, dict):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            sub = _toml_key(key) if header is None else f"{header}.{_toml_key(key)}"
            _toml_table(value, sub, lines)


def problem_to_toml(problem: PoissonProblem, solver: dict | None = None) -> str:
    """The problem's :attr:`~PoissonProblem.spec` as TOML text that :func:`load_problem` reads
    back into the same problem; derived data are noted in comments. ``solver`` (e.g. the
    resolved solver settings of a run) replaces the ``[solver]`` table; ``None`` values are left out."""
    general = problem.has_coefficient or problem.has_reaction
    op = "-div(a grad u) + c u = f" if general else "-Laplace u = f"
    lines = [f"# Poisson problem {problem.name!r}: {op}, written by hrta_pde"]
    spec = dict(problem.spec)
    if solver is not None:
        spec["solver"] = {k: v for k, v in solver.items() if v is not None}
    if "f" not in spec.get("solution", {}):
        lines.append(f"# f = {'-div(a grad u) + c u' if general else '-laplacian(u)'} = "
                     f"{' '.join(str(problem.f).split())}"[:2000])
    derived = {cd.kind for cd in problem.conditions if cd is not None
               and (("g" not in cd.written) if cd.kind == "dirichlet" else ("h" not in cd.written))}
    if "dirichlet" in derived:
        lines.append("# g = u on the Dirichlet parts without g")
    if "neumann" in derived:
        lines.append("# h = a grad u . n on the Neumann parts without h")
    if "robin" in derived:
        lines.append("# h = a grad u . n + alpha u on the Robin parts without h")
    exact = "exact" if problem.measure_exact else "estimated"
    lines.append(f"# |Omega| = {problem.measure:.12g}, |dOmega| = {problem.boundary_measure:.12g} "
                 f"({exact})")
    _toml_table(spec, None, lines)
    return "\n".join(lines) + "\n"
