"""The ``[boundary]`` table of a problem file: a default condition for every part and per-part
tables ``[boundary.NAME]``, checked and turned into one :class:`BoundaryCondition` per atomic part.

Example (the annulus with a Robin hole)::

    [boundary]
    type = "dirichlet"
    [boundary.b]
    type = "robin"
    alpha = "2"
"""
from __future__ import annotations

from dataclasses import dataclass

from hrta_pde.poisson.domain_spec import as_table, check_keys, expression_text, require
from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.expressions import gradient, parse_expression
from hrta_pde.poisson.geometry.parts import PART_KINDS, side_index, side_names
from hrta_pde.poisson.problem import BoundaryCondition

__all__ = ["BOUNDARY_TYPES", "BoundarySpec", "read_boundary", "default_data", "conditions_per_part",
           "boundary_kind", "shared_data", "PART_KEYS"]

BOUNDARY_TYPES = ("dirichlet", "neumann", "mixed", "robin")
_BOUNDARY_KEYS = ("type", "g", "h", "alpha", "neumann_sides")
_BOX_TYPES = ("interval", "rectangle", "box", "hypercube")


@dataclass
class BoundarySpec:
    """The [boundary] table: the default condition (``kind``, its data) and the per-part tables."""

    top: dict
    part_tables: dict
    kind: str | None
    g_text: str | None
    h_text: str | None
    sides: tuple


def read_boundary(data: dict, domain: dict, dim: int) -> BoundarySpec:
    boundary = as_table(data.get("boundary", {}), "boundary")
    part_tables = _flatten_boundary(boundary, "", {}, "boundary")
    top = {k: v for k, v in boundary.items() if not isinstance(v, dict)}
    check_keys(top, _BOUNDARY_KEYS, "[boundary]")
    for pname, table in part_tables.items():
        check_keys(table, PART_KEYS, f"[boundary.{pname}]")
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
    g_text = expression_text(top, "g", "boundary")
    h_text = expression_text(top, "h", "boundary")
    if kind == "dirichlet" and h_text is not None:
        raise ProblemError("boundary.h is Neumann data: use it with boundary.type = 'neumann' or "
                           "'mixed', or remove it")
    if kind == "neumann" and g_text is not None:
        raise ProblemError("boundary.g is Dirichlet data: use it with boundary.type = "
                           "'dirichlet' or 'mixed', or remove it")
    if "alpha" in top and kind != "robin":
        raise ProblemError("boundary.alpha is Robin data: use it with boundary.type = 'robin' "
                           "(a du/dn + alpha u = h), or remove it")
    if "neumann_sides" in top and kind != "mixed":
        raise ProblemError("boundary.neumann_sides is only used with boundary.type = 'mixed'")
    sides = _neumann_sides(top, domain, dim) if kind == "mixed" else ()
    return BoundarySpec(top, part_tables, kind, g_text, h_text, sides)


def _neumann_sides(top: dict, domain: dict, dim: int) -> tuple[str, ...]:
    """The checked ``neumann_sides`` of a ``mixed`` boundary (a box domain)."""
    if domain["type"] not in _BOX_TYPES:
        raise ProblemError(f"boundary.type 'mixed' needs a box domain ({', '.join(_BOX_TYPES)})"
                           f"; for domain type {domain['type']!r} give each boundary part its "
                           "own [boundary.PART] table (PART: a side, edge, circle or operand name)")
    allowed = side_names(dim)
    raw = require(top, "neumann_sides", "boundary", f"a list of box sides from: {', '.join(allowed)}")
    if not isinstance(raw, list) or not raw:
        raise ProblemError(f"boundary.neumann_sides must be a non-empty list of sides from: "
                           f"{', '.join(allowed)}")
    xyz = {f"{c}_{end}": f"x{i + 1}_{end}" for i, c in enumerate("xyz"[:dim] if dim <= 3 else "")
           for end in ("min", "max")}
    raw = [xyz.get(s, s) if isinstance(s, str) else s for s in raw]  # x_min, y_max, z_max as in [boundary.PART]
    for s in raw:
        if s not in allowed:
            raise ProblemError(f"boundary.neumann_sides: unknown side {s!r:.40}; use names "
                               f"from: {', '.join(allowed)}" + (f" (or {', '.join(xyz)})" if xyz else ""))
    if len(set(raw)) != len(raw):
        raise ProblemError("boundary.neumann_sides lists a side twice")
    if len(raw) == len(allowed):
        raise ProblemError("boundary.neumann_sides lists every side; use boundary.type = "
                           "'neumann' instead")
    return tuple(raw)


def default_data(bd: BoundarySpec, u, a, dim: int):
    """The data ``g``, ``h`` of a single [boundary] type (kept as the problem's g and h)."""
    kind = bd.kind
    g = h = None
    if kind in ("dirichlet", "mixed"):
        if bd.g_text is None and u is None:
            raise ProblemError(f"a {kind} problem needs boundary.g (or solution.u, from which g = u)")
        g = parse_expression(bd.g_text, dim, name="boundary.g") if bd.g_text is not None else u
    if kind in ("neumann", "mixed"):
        if bd.h_text is None and u is None:
            raise ProblemError(f"a {kind} problem needs boundary.h (or solution.u, from which "
                               "h = a grad u . n)")
        h = (parse_expression(bd.h_text, dim, name="boundary.h") if bd.h_text is not None
             else tuple(a * du for du in gradient(u, dim)))
    return g, h


def conditions_per_part(bd: BoundarySpec, u, a, parts, n_parts: int, dim: int, g, h) -> list:
    """The condition of every atomic part: the default of [boundary], then the part tables."""
    kind = bd.kind
    conditions: list = [None] * n_parts
    if kind in ("dirichlet", "mixed"):
        d_cond = BoundaryCondition("dirichlet", dim, g=g, written=("g",) if bd.g_text else (),
                                   where="[boundary]", texts={"g": bd.g_text} if bd.g_text else {})
        conditions = [d_cond] * n_parts
    if kind in ("neumann", "mixed"):
        n_cond = BoundaryCondition("neumann", dim, h_vec=h if isinstance(h, tuple) else None,
                                   h_scalar=None if isinstance(h, tuple) else h,
                                   written=("h",) if bd.h_text else (), where="[boundary]",
                                   texts={"h": bd.h_text} if bd.h_text else {})
        if kind == "neumann":
            conditions = [n_cond] * n_parts
        else:
            for side in bd.sides:
                conditions[side_index(side)] = n_cond
    if kind == "robin":
        conditions = [_make_condition("robin", bd.top, "boundary", dim, u, a)] * n_parts
    given_by: list = [None] * n_parts
    for pname, table in bd.part_tables.items():
        where = f"boundary.{pname}"
        ids = parts.resolve(pname, f"[{where}]")
        pkind = require(table, "type", where, f"the condition: one of {', '.join(PART_KINDS)}")
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
        if parts.present[k] and conditions[k] is None:
            raise ProblemError(f"boundary part {parts.names[k]!r} has no condition: add a "
                               f"[boundary.{parts.names[k]}] table with type = 'dirichlet', "
                               "'neumann' or 'robin', or a default type under [boundary]")
    return conditions


def boundary_kind(kind: str | None, used: list) -> str:
    """``mixed`` unless every part of the boundary has a condition of one kind."""
    kinds = {cond.kind for cond in used}
    if kind != "mixed" and len(kinds) == 1:
        return kinds.pop()
    return "mixed"


def shared_data(used: list):
    """``(g, h)``: the Dirichlet and Neumann data shared by all parts of that kind (else None)."""
    d_conds = {id(cd): cd for cd in used if cd.kind == "dirichlet"}
    n_conds = {id(cd): cd for cd in used if cd.kind == "neumann"}
    g = next(iter(d_conds.values())).g if len(d_conds) == 1 else None
    h = None
    if len(n_conds) == 1:
        only = next(iter(n_conds.values()))
        h = only.h_scalar if only.h_vec is None else only.h_vec
    return g, h


PART_KEYS = ("type", "g", "h", "alpha")


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
    g_text = expression_text(table, "g", where)
    h_text = expression_text(table, "h", where)
    alpha_text = expression_text(table, "alpha", where)
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
