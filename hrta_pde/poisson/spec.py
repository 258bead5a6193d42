"""The problem file's schema: :func:`problem_from_dict` checks the plain data of a problem file once
and builds the :class:`~hrta_pde.poisson.problem.PoissonProblem`.

The format (TOML; see ``hrta_pde/poisson/problems_data`` for the catalog)::

    name = "poisson_2d_sin"
    [domain]
    type = "rectangle"
    xmin = [0.0, 0.0]
    xmax = [1.0, 1.0]
    [solution]
    u = "sin(pi*x)*sin(pi*y)"          # f = 2*pi^2*sin(pi*x)*sin(pi*y) is derived
    [boundary]
    type = "dirichlet"                 # g = u on the boundary is derived

``[solution]`` holds ``f`` (or an exact solution ``u`` from which ``f = -div(a grad u) + c u``
is derived with sympy) and the coefficients ``a`` (default 1, ``a > 0``) and ``c`` (default 0,
``c >= 0``).  ``[boundary]`` gives a condition per part of the boundary
(:class:`~hrta_pde.poisson.geometry.BoundaryParts`): Dirichlet ``u = g``, Neumann
``a du/dn = h`` or Robin ``a du/dn + alpha u = h``, e.g. ``[boundary.hole] type = "robin",
alpha = "2", h = "0"``; a plain ``[boundary]`` ``type`` sets every part without a table of its
own.  The domain table is checked by :mod:`hrta_pde.poisson.domain_spec`; the optional
``[solver]`` table holds solver settings (:data:`SOLVER_KEYS`), whose values the solver checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re

import numpy as np
import sympy
import torch

from hrta_pde.poisson.boundary_spec import (PART_KEYS, BoundarySpec, boundary_kind,
                                            conditions_per_part, default_data, read_boundary,
                                            shared_data)
from hrta_pde.poisson.domain_spec import as_table, build_shape, check_keys, expression_text, normalize_domain
from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.expressions import (
    expressions_agree,
    parse_expression,
    source_term,
    to_numpy,
)
from hrta_pde.poisson.geometry import boundary_parts, present_parts
from hrta_pde.poisson.problem import PoissonProblem
from hrta_pde.poisson.sampling import MC_SEED, Source

__all__ = ["problem_from_dict", "SOLVER_KEYS"]

#: Keys allowed in the optional ``[solver]`` table (the flat form of ``SolveConfig``); their
#: values are checked by the solver.
from hrta_pde.poisson.settings import SOLVER_KEYS  # noqa: E402

_TOP_KEYS = ("name", "description", "domain", "solution", "boundary", "solver")
_SOLUTION_KEYS = ("u", "f", "a", "c")
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,100}\Z")


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


@dataclass
class _Solution:
    """The [solution] table: the texts as written and their parsed expressions."""

    texts: dict      # u, f, a, c -> text or None
    u: sympy.Expr | None
    f_given: sympy.Expr | None
    a: sympy.Expr
    c: sympy.Expr

    @property
    def general(self) -> bool:
        return not (self.a == 1 and self.c == 0)


def _problem_from_dict(data, source: str) -> PoissonProblem:
    data = as_table(data, "problem")
    check_keys(data, _TOP_KEYS, "the top level")
    name, description = _read_names(data, source)
    if "domain" not in data:
        raise ProblemError("missing [domain]; give e.g. [domain] type = \"rectangle\", "
                           "xmin = [0.0, 0.0], xmax = [1.0, 1.0]")
    domain = normalize_domain(data["domain"], "domain", 0)
    shape = build_shape(domain, "domain", 0)
    dim = shape.dim
    sol = _read_solution(data, dim)
    parts = boundary_parts(domain, shape)
    parts.present = present = present_parts(shape)
    bd = read_boundary(data, domain, dim)
    g, h = default_data(bd, sol.u, sol.a, dim)
    conditions = conditions_per_part(bd, sol.u, sol.a, parts, shape.n_parts, dim, g, h)
    used = [conditions[k] for k in range(shape.n_parts) if present[k]]
    kind = boundary_kind(bd.kind, used)
    if bd.part_tables:  # the problem's g and h: the data shared by all parts of that kind, if any
        g, h = shared_data(used)
    solver = as_table(data.get("solver", {}), "solver")
    check_keys(solver, SOLVER_KEYS, "[solver]")
    spec = _normalized_spec(name, description, domain, sol, bd, solver)
    # points for the numerical checks, from a fixed seed
    x_in = shape.interior(200, Source("random", torch.Generator().manual_seed(MC_SEED)))
    x_in = x_in[shape.classify(x_in) == -1]
    f = _source(sol, dim, x_in)
    problem = PoissonProblem(
        name=name, dim=dim, spec=spec, u=sol.u, f=f, g=g, h=h,
        measure=float(shape.measure), boundary_measure=float(shape.boundary_measure),
        boundary_kind=kind, neumann_sides=bd.sides, measure_exact=bool(shape.exact),
        solver=dict(solver), description=description, shape=shape, a=sol.a, c=sol.c,
        parts=parts, conditions=tuple(conditions))
    _check_finite(problem, sol, x_in)
    part_x = _part_points(shape, present)
    _check_coefficients(problem, x_in, np.concatenate([part_x[k] for k in part_x] or [x_in[:0]]),
                        sol.texts["a"], sol.texts["c"])
    _check_boundary_data(problem, part_x)
    if problem.pure_neumann:
        problem.check_compatibility()
    return problem


def _read_names(data: dict, source: str) -> tuple[str, str]:
    name = data.get("name", Path(source).stem if source.endswith(".toml") else "problem")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ProblemError(f"name {name!r:.60} must be 1-100 letters, digits, '_', '-' or '.'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ProblemError(f"description must be a string, got {type(description).__name__}")
    return name, description


def _read_solution(data: dict, dim: int) -> _Solution:
    solution = as_table(data.get("solution", {}), "solution")
    check_keys(solution, _SOLUTION_KEYS, "[solution]")
    texts = {k: expression_text(solution, k, "solution") for k in ("u", "f", "a", "c")}
    if texts["u"] is None and texts["f"] is None:
        raise ProblemError("[solution] needs f (the source) or u (an exact solution, from which "
                           "f = -div(a grad u) + c u)")

    def parsed(key, default=None):
        text = texts[key]
        return parse_expression(text, dim, name=f"solution.{key}") if text is not None else default

    return _Solution(texts, parsed("u"), parsed("f"), parsed("a", sympy.S.One),
                     parsed("c", sympy.S.Zero))


def _normalized_spec(name, description, domain, sol: _Solution, bd: BoundarySpec, solver) -> dict:
    """The problem file as plain data with the normalised domain (what :func:`problem_to_toml`
    writes back)."""
    spec: dict = {"name": name}
    if description:
        spec["description"] = description
    spec["domain"] = domain
    spec["solution"] = {k: v for k, v in sol.texts.items() if v is not None}
    spec["boundary"] = {"type": bd.kind} if bd.kind is not None else {}
    if bd.g_text is not None:
        spec["boundary"]["g"] = bd.g_text
    if bd.h_text is not None:
        spec["boundary"]["h"] = bd.h_text
    if "alpha" in bd.top:
        spec["boundary"]["alpha"] = expression_text(bd.top, "alpha", "boundary")
    if bd.sides:
        spec["boundary"]["neumann_sides"] = list(bd.sides)
    for pname, table in bd.part_tables.items():
        spec["boundary"][pname] = {k: (table[k] if k == "type" else expression_text(table, k, pname))
                                   for k in PART_KEYS if k in table}
    if solver:
        spec["solver"] = dict(solver)
    return spec


def _source(sol: _Solution, dim: int, x_in: np.ndarray):
    """``f``: as given, or derived from ``u`` (and checked against the given one)."""
    u, f_given = sol.u, sol.f_given
    if u is None:
        return f_given
    f_u = source_term(u, dim, a=sol.a, c=sol.c, points=x_in)  # 0 for a harmonic u sympy cannot cancel
    if f_given is not None and not expressions_agree(f_given, f_u, dim, points=x_in):
        what = "-laplacian(u)" if not sol.general else "-div(a grad u) + c u"
        raise ProblemError(f"solution.f '{sol.texts['f']:.60}' is not {what} = {str(f_u):.80} "
                           "for solution.u; fix one of them, or give only u")
    return f_given if f_given is not None else f_u


def _check_finite(problem: PoissonProblem, sol: _Solution, x_in: np.ndarray) -> None:
    """Everything compiles, and ``f`` and ``u`` are finite inside the domain."""
    f_what = "solution.f" if sol.f_given is not None else ("f = -laplacian(u)" if not sol.general
                                                           else "f = -div(a grad u) + c u")
    with np.errstate(all="ignore"):
        for what, values in ((f_what, problem.f_numpy(x_in)),
                             ("solution.u", problem.u_numpy(x_in) if sol.u is not None else None)):
            if values is not None and not np.all(np.isfinite(values)):
                i = int(np.argmax(~np.isfinite(values)))
                raise ProblemError(f"{what} is not finite at {x_in[i].tolist()} inside the "
                                   "domain; fix the expression")


def _part_points(shape, present) -> dict:
    """Per present part, points on the boundary nearest to that part (for the data checks)."""
    part_x = {}
    for k in range(shape.n_parts):
        if present[k]:
            xk = shape.part_points(k, 64)
            xk = xk[shape.classify(xk) == 0]
            part_x[k] = xk[shape.part_distances(xk).argmin(axis=1) == k]
    return part_x


def _check_boundary_data(problem: PoissonProblem, part_x: dict) -> None:
    """Per condition, at its parts' points: alpha >= 0, and data given with ``u`` agree with it."""
    conditions = problem.conditions
    by_cond: dict = {}
    for k, xk in part_x.items():
        by_cond.setdefault(id(conditions[k]), (conditions[k], []))[1].append(xk)
    for cond, xs_list in by_cond.values():
        xb = np.concatenate(xs_list)
        if not len(xb):
            continue
        nb = problem.shape.normal(xb)
        if cond.alpha is not None:
            _check_alpha(cond, xb)
        if problem.u is None:
            continue
        _check_against_u(problem, cond, xb, nb)
        _check_derived_boundary_data(problem, cond, xb, nb)


def _check_alpha(cond, xb) -> None:
    with np.errstate(all="ignore"):
        av = cond.alpha_numpy(xb)
    bad = ~(np.isfinite(av) & (av >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ProblemError(f"{cond.where[1:-1]}.alpha '{cond.texts.get('alpha', '')}' is "
                           f"{av[i]:.6g} at {xb[i].tolist()}; the Robin coefficient must be "
                           ">= 0 and finite on its parts: fix alpha")


def _check_against_u(problem, cond, xb, nb) -> None:
    """Boundary data written in the file agree with those of the exact solution."""
    label = cond.where[1:-1]
    general = problem.has_coefficient or problem.has_reaction
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

