"""CSG domains: the union, intersection and difference of two shapes, exactly.

Membership and normals follow from the operands; the boundary is what survives of each
operand's boundary (see :class:`Csg`), sampled by rejection from the operands in proportion to
their measures.  Measures ``|Omega|`` and ``|dOmega|`` are exact for 1-D unions, intersections
and differences of intervals, and for a box or ball with holes (primitives strictly inside it,
apart from each other); other CSG domains get quasi-Monte Carlo estimates from 2^20 points
(``exact = False``).

Example::

    >>> annulus = Csg("difference", Ball([0, 0], 1.0), Ball([0, 0], 0.5), "domain")
    >>> annulus.measure, annulus.exact  # pi - pi/4: a ball with a hole
    (2.356194490192345, True)
"""
from __future__ import annotations

import numpy as np

from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.geometry.shapes import Ball, Box, Polygon, Shape
from hrta_pde.poisson.sampling import fixed_source

__all__ = ["Csg"]

# Points of the quasi-Monte Carlo estimates of CSG measures.
_MC_POINTS = 2**20


def _rejection(m, ratio, draw, failure):
    """Concatenated draws ``draw(k)`` (tuples of arrays) until they hold ``m`` rows; ``ratio``:
    the expected fraction of a draw that is kept."""
    out, have = [], 0
    for _ in range(10_000):
        k = int((m - have) / max(ratio, 1e-6) * 1.1) + 16
        got = draw(k)
        out.append(got)
        have += len(got[0])
        if have >= m:
            break
    else:
        raise ProblemError(failure)
    return tuple(np.concatenate(cols) for cols in zip(*out))


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


class Csg(Shape):
    """``a | b``, ``a & b`` or ``a - b`` (op: union, intersection, difference).

    Boundary rule (what survives of each part's boundary): for a union, the points of dA
    outside B and of dB outside A; for an intersection, of dA inside B and dB inside A; for a
    difference, of dA outside B and of dB inside A, with the normal of B reversed.  Points on
    both boundaries are kept once, from A, when the two surfaces face the same way (union,
    intersection) or opposite ways (difference).
    """

    def __init__(self, op: str, a: Shape, b: Shape, where: str = "domain"):
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

    def classify(self, x, tol=None):
        ca, cb = self.a.classify(x, tol), self.b.classify(x, tol)
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

    def inside(self, x):
        """The set operation on the closed operands, without tolerance: ``A | B``, ``A & B`` or
        ``A \\ B`` (a difference leaves out the boundary of what it removes)."""
        ia, ib = self.a.inside(x), self.b.inside(x)
        if self.op == "union":
            return ia | ib
        if self.op == "intersection":
            return ia & ib
        return ia & ~ib

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
            src = fixed_source()
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

        def draw(k):
            if self.op == "union":
                ka = src.split(k, a.measure / total)
                xa, xb = a.interior(ka, src), b.interior(k - ka, src)
                return (np.concatenate([xa, xb[self._keep_interior_b(xb)]]),)
            x = a.interior(k, src)
            return (x[self._keep_interior_a(x)],)

        (x,) = _rejection(m, ratio, draw, f"could not sample the {self.op} domain: it is too "
                                          "small a part of its parts; enlarge it")
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

        def draw(k):
            ka = src.split(k, a.boundary_measure / total)
            x, n, _ = self._boundary_parts(ka, k - ka, lambda j: a.boundary(j, src),
                                           lambda j: b.boundary(j, src))
            return x, n

        x, n = _rejection(m, self.boundary_measure / total, draw, "could not sample the boundary "
                          f"of the {self.op} domain; check that its parts overlap")
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

    def leaves(self):
        return self.a.leaves() + self.b.leaves()

    def distance_function(self, k):
        na = self.a.n_parts
        return self.a.distance_function(k) if k < na else self.b.distance_function(k - na)

    def to_dde(self, dde):
        csg = dde.geometry.csg
        cls = {"union": csg.CSGUnion, "intersection": csg.CSGIntersection,
               "difference": csg.CSGDifference}[self.op]
        return cls(self.a.to_dde(dde), self.b.to_dde(dde))


def _disjoint(p: Shape, q: Shape) -> bool:
    """Whether two primitives are apart (balls: by their centres; else by bounding boxes)."""
    tol = max(p.tol, q.tol)
    if isinstance(p, Ball) and isinstance(q, Ball):
        return bool(np.linalg.norm(p.center - q.center) > p.radius + q.radius + tol)
    return bool(np.any(p.hi < q.lo - tol) or np.any(q.hi < p.lo - tol))


def _is_hole(hole: Shape, outer: Shape) -> bool:
    """Whether ``hole`` lies strictly inside a primitive ``outer``, or inside the base of a chain
    ``((base - h1) - h2) ...`` of such holes and apart from each of them."""
    if isinstance(outer, Csg):
        if outer.op != "difference" or not _is_hole(outer.b, outer.a):
            return False
        return _is_hole(hole, outer.a) and not isinstance(outer.b, Csg) and _disjoint(hole, outer.b)
    return _strictly_inside(hole, outer)


def _strictly_inside(inner: Shape, outer: Shape) -> bool:
    """Whether ``inner`` lies in the interior of the convex primitive ``outer``."""
    if not isinstance(outer, (Box, Ball)) or inner.dim != outer.dim:
        return False
    tol = outer.tol
    if isinstance(inner, Ball):
        if isinstance(outer, Ball):
            gap = outer.radius - inner.radius - np.linalg.norm(inner.center - outer.center)
            return bool(gap > tol)
        return bool(np.all(inner.lo > outer.lo + tol) and np.all(inner.hi < outer.hi - tol))
    if isinstance(inner, Box):
        d = inner.dim
        corners = np.array([[inner.hi[i] if (k >> i) & 1 else inner.lo[i] for i in range(d)]
                            for k in range(2**d)])
        return bool(np.all(outer.classify(corners) == -1))
    if isinstance(inner, Polygon):
        return bool(np.all(outer.classify(inner.vertices) == -1))
    return False

