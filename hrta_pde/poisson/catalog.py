"""Problem files: reading a TOML file (:func:`load_problem`), the built-in catalog
(``hrta_pde/poisson/problems_data``, also in ``problems/``), and the boundary parts of a problem
as TOML comments (for ``hrta-pde problems --show``).

Example::

    >>> list_builtin_problems()[:3]
    ['paper_pde', 'poisson_10d', 'poisson_1d']
    >>> builtin_problem("poisson_disk").measure == math.pi
    True
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import numpy as np

from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.problem import PoissonProblem
from hrta_pde.poisson.spec import problem_from_dict

__all__ = ["load_problem", "list_builtin_problems", "builtin_problem", "builtin_problem_text",
           "resolve_problem", "describe_parts"]


def load_problem(path) -> PoissonProblem:
    """Read a problem from a TOML file (see the module docstring for the format)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a leading byte-order mark (Windows editors) is dropped
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
    lines += _singular_lines(problem)
    return "\n".join(lines)


def _singular_lines(problem) -> list:
    """Comment lines naming the points where ``u`` is singular (``hrta_pde.poisson.singular``)."""
    from hrta_pde.poisson.singular import (LogCornerFeature, LogSectorFeature, SingularError, log_corner_features,
                                           singular_features)

    try:
        feats = singular_features(problem)
    except SingularError as err:
        return [f"# {err}: the network gets none"]
    logs = log_corner_features(problem, [f.v for f in feats])
    feats = feats + logs
    seen, out = set(), []
    for f in feats:
        key = (tuple(np.round(f.v, 12)), round(f.lam, 9), type(f).__name__)
        if key in seen:
            continue
        seen.add(key)
        term = ("r log r" if isinstance(f, LogSectorFeature) else
                "r^2 log r" if isinstance(f, LogCornerFeature)
                else f"r^{f.lam:.4g}")
        out.append(f"#   ({', '.join(f'{c:.6g}' for c in f.v)}): u ~ {term}")
    if out:
        out.insert(0, "# points where u is singular (the network gets inputs for them, --singular-inputs"
                   + (", and for r^2 log r --log-corner-inputs, with the Dirichlet data by the penalty" if logs else "")
                   + "):")
    return out

