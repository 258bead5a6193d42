"""The ``[domain]`` table of a problem file: checked, normalised (every parameter explicit) and
turned into an exact shape; and the value checks the rest of the problem file shares.

Domain types: ``interval``, ``rectangle``, ``box``, ``hypercube`` (boxes), ``disk``, ``ball``,
``polygon``, ``lshape``, and the CSG types ``difference``, ``union``, ``intersection`` with
operand tables ``a`` and ``b`` (each may carry a ``name`` for its boundary parts).

Example::

    >>> spec = normalize_domain({"type": "disk"}, "domain", 0)
    >>> spec
    {'type': 'disk', 'center': [0.0, 0.0], 'radius': 1.0}
    >>> build_shape(spec, "domain", 0).boundary_measure == 2 * math.pi
    True
"""
from __future__ import annotations

import math
import re

from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.geometry import Ball, Box, Csg, Polygon, Shape

__all__ = ["DOMAIN_TYPES", "MAX_DIM", "normalize_domain", "build_shape", "check_keys", "as_table",
           "require", "expression_text"]

DOMAIN_TYPES = ("interval", "rectangle", "box", "hypercube", "disk", "ball", "polygon", "lshape",
                "difference", "union", "intersection")
MAX_DIM = 10
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
_LSHAPE_VERTICES = ((-1.0, -1.0), (0.0, -1.0), (0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (-1.0, 1.0))
_MAX_CSG_DEPTH = 16
_MAX_POLYGON_VERTICES = 1000


def check_keys(table: dict, allowed, where: str) -> None:
    """``where``: the table as the user sees it, e.g. ``[domain] (type disk)``."""
    for key in table:
        if key not in allowed:
            raise ProblemError(f"unknown key {key!r:.60} in {where}; allowed keys: "
                               f"{', '.join(allowed)}")


def as_table(value, where: str) -> dict:
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


def require(table: dict, key: str, where: str, hint: str):
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


def normalize_domain(table, where: str, depth: int) -> dict:
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
    table = as_table(table, where)
    if depth > _MAX_CSG_DEPTH:
        raise ProblemError(f"[{where}] is nested more than {_MAX_CSG_DEPTH} levels deep")
    kind = require(table, "type", where, f"one of: {', '.join(DOMAIN_TYPES)}")
    if kind not in DOMAIN_TYPES:
        raise ProblemError(f"{where}.type {kind!r} is unknown; use one of: "
                           f"{', '.join(DOMAIN_TYPES)}")
    check_keys(table, _DOMAIN_KEYS[kind], f"[{where}] (type {kind})")
    if kind == "interval":
        lo = require(table, "xmin", where, "the left end, e.g. xmin = 0.0")
        hi = require(table, "xmax", where, "the right end, e.g. xmax = 1.0")
        lo = _vector(lo, f"{where}.xmin", 1)[0] if isinstance(lo, list) else _number(lo, f"{where}.xmin")
        hi = _vector(hi, f"{where}.xmax", 1)[0] if isinstance(hi, list) else _number(hi, f"{where}.xmax")
        _box_bounds([lo], [hi], where)
        return {"type": kind, "xmin": lo, "xmax": hi}
    if kind in ("rectangle", "box"):
        length = 2 if kind == "rectangle" else None
        lo = _vector(require(table, "xmin", where, "a list, e.g. xmin = [0.0, 0.0]"),
                     f"{where}.xmin", length)
        hi = _vector(require(table, "xmax", where, "a list, e.g. xmax = [1.0, 1.0]"),
                     f"{where}.xmax", length)
        _box_bounds(lo, hi, where)
        return {"type": kind, "xmin": lo, "xmax": hi}
    if kind == "hypercube":
        dim = require(table, "dim", where, f"the dimension, 1 to {MAX_DIM}")
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
            center = _vector(require(table, "center", where, "a list whose length is the "
                                      "dimension, e.g. center = [0.0, 0.0, 0.0]"),
                             f"{where}.center")
        radius = _number(table.get("radius", 1.0), f"{where}.radius")
        if radius <= 0:
            raise ProblemError(f"{where}.radius must be positive, got {radius}")
        return {"type": kind, "center": center, "radius": radius}
    if kind == "polygon":
        verts = require(table, "vertices", where, "the corners in order, e.g. "
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
    a = normalize_domain(require(table, "a", where, f"the first part, as [{where}.a]"),
                          f"{where}.a", depth + 1)
    b = normalize_domain(require(table, "b", where, f"the second part, as [{where}.b]"),
                          f"{where}.b", depth + 1)
    return {"type": kind, "a": a, "b": b}


def build_shape(spec: dict, where: str, depth: int) -> Shape:
    """The shape of a normalized [domain] table."""
    kind = spec["type"]
    if kind == "interval":
        return Box([spec["xmin"]], [spec["xmax"]])
    if kind in ("rectangle", "box"):
        return Box(spec["xmin"], spec["xmax"])
    if kind == "hypercube":
        return Box([spec["xmin"]] * spec["dim"], [spec["xmax"]] * spec["dim"])
    if kind in ("disk", "ball"):
        c, r = spec["center"], spec["radius"]
        if len(c) == 1:
            return Box([c[0] - r], [c[0] + r])
        return Ball(c, r)
    if kind == "polygon":
        return Polygon(spec["vertices"], where)
    if kind == "lshape":
        return Polygon(_LSHAPE_VERTICES, where)
    a = build_shape(spec["a"], f"{where}.a", depth + 1)
    b = build_shape(spec["b"], f"{where}.b", depth + 1)
    if a.dim != b.dim:
        raise ProblemError(f"{where}: part a is {a.dim}-dimensional but part b is "
                           f"{b.dim}-dimensional; both parts of a {kind} need the same dimension")
    return Csg(kind, a, b, where)


def expression_text(table: dict, key: str, where: str) -> str | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ProblemError(f"{where}.{key} must be a formula string such as 'sin(pi*x)', got "
                           f"{type(value).__name__} {value!r:.60}")
    return value if isinstance(value, str) else repr(value)

