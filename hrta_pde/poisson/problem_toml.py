"""A problem as the TOML text of a problem file (:func:`problem_to_toml`), read back by
:func:`hrta_pde.poisson.catalog.load_problem` into the same problem."""
from __future__ import annotations

import json
import math
import re

from hrta_pde.poisson.errors import ProblemError

__all__ = ["problem_to_toml"]


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


def problem_to_toml(problem, solver: dict | None = None) -> str:
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
