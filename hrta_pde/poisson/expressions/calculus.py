"""The sympy side: derivatives of parsed expressions, the source of a solution, and agreement.

Derivatives are pointwise (``d|x|/dx = sign(x)``, Dirac deltas dropped) and simplified only by
bounded rational rewrites (:func:`_cheap_simplify`), never by a slow ``sympy.simplify``; the
Laplacian runs under a deadline (``LAPLACIAN_SECONDS``).

Example::

    >>> u = parse_expression("sin(pi*x)*sin(pi*y)", 2, name="u")
    >>> source_term(u, 2)
    2*pi**2*sin(pi*x1)*sin(pi*x2)
"""
from __future__ import annotations

import numpy as np
import sympy

from .compilation import _check_points, to_numpy
from .language import ExpressionError, _canonical, _check_dim, _shown, coordinate_symbols
from .limits import LAPLACIAN_SECONDS, _deadline, _Timeout


def _drop_delta(expr: sympy.Expr) -> sympy.Expr:
    """Set ``DiracDelta`` terms (derivatives of sign/Heaviside) to 0: pointwise derivatives."""
    if not expr.has(sympy.DiracDelta):
        return expr
    return expr.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)


def gradient(expr, dim: int) -> list[sympy.Expr]:
    """The gradient ``[d expr / d x1, ..., d expr / d x{dim}]``.

    Derivatives are pointwise (``d|x|/dx = sign(x)``, ``d sign(x)/dx = 0``).
    Example: ``gradient(parse_expression("x^2*y", 2), 2)`` is ``[2*x1*x2, x1**2]``.
    """
    dim = _check_dim(dim)
    expr = _canonical(expr, dim)
    return [_drop_delta(sympy.diff(expr, s)) for s in coordinate_symbols(dim)]


def _small_int_powers(expr: sympy.Expr, limit: int = 32) -> bool:
    """True if every integer power in ``expr`` is at most ``limit`` (so cancel() is cheap)."""
    for p in expr.atoms(sympy.Pow):
        if p.exp.is_Integer and abs(int(p.exp)) > limit and not p.base.is_Symbol:
            return False
    return True


def _cheap_simplify(expr: sympy.Expr, max_ops: int = 400) -> sympy.Expr:
    """The shortest of ``expr``, ``together(expr)``, ``cancel(together(expr))``.

    Full ``sympy.simplify`` can take minutes on the Laplacian of a modest expression, so
    only these bounded rational rewrites are used.
    """
    ops = sympy.count_ops(expr)
    if ops > max_ops or not _small_int_powers(expr):
        return expr
    best, best_ops = expr, ops
    try:
        together = sympy.together(expr)
        candidates = [together, sympy.cancel(together)]
    except (sympy.PolynomialError, RecursionError, ValueError, TypeError):
        candidates = []
    for c in candidates:
        c_ops = sympy.count_ops(c)
        if c_ops < best_ops:
            best, best_ops = c, c_ops
    return best


def laplacian(expr, dim: int) -> sympy.Expr:
    """The Laplacian ``sum_i d^2 expr / d x_i^2`` (not its negative).

    Lightly simplified (``together``/``cancel``, never a slow ``simplify``).
    Example: ``laplacian(parse_expression("sin(pi*x)*sin(pi*y)", 2), 2)`` is
    ``-2*pi**2*sin(pi*x1)*sin(pi*x2)``.
    """
    dim = _check_dim(dim)
    expr = _canonical(expr, dim)
    try:
        with _deadline(LAPLACIAN_SECONDS):  # a guard beyond MAX_NESTING (e.g. huge products)
            total = sympy.Add(*[_drop_delta(sympy.diff(expr, s, 2)) for s in coordinate_symbols(dim)])
            return _cheap_simplify(total)
    except _Timeout:
        raise ExpressionError(f"the Laplacian of '{_shown(str(expr))}' took more than "
                              f"{LAPLACIAN_SECONDS:g} s (the limit); simplify the expression, or give "
                              "f instead of deriving it from u") from None


def source_term(u, dim: int, *, a=1, c=0, points: np.ndarray | None = None) -> sympy.Expr:
    """The source ``f = -div(a grad u) + c u`` of the solution ``u`` (``-laplacian(u)`` if a = 1, c = 0).

    ``a`` and ``c`` are expressions (or numbers) like ``u``. A result that sympy does not reduce
    to 0, but whose terms ``d/dx_i (a du/dx_i)`` and ``-c u`` cancel to rounding error at every
    one of ``points`` (shape ``(n, dim)``, where given), is returned as 0: a harmonic ``u`` whose
    Laplacian the cheap simplification cannot cancel.
    Example: ``source_term(parse_expression("x^2*y", 2), 2, a=parse_expression("1 + x", 2), c=2)``
    is ``2*x2*(x1**2 - 2*x1 - 1)``.
    """
    dim = _check_dim(dim)
    u = _canonical(u, dim, "u")
    xs = coordinate_symbols(dim)
    if a == 1 and c == 0:
        terms = [gradient(du, dim)[i] for i, du in enumerate(gradient(u, dim))]
        f = -laplacian(u, dim)
    else:
        a, c = _canonical(a, dim, "a"), _canonical(c, dim, "c")
        terms = [_drop_delta(sympy.diff(a * du, xs[i])) for i, du in enumerate(gradient(u, dim))]
        if c != 0:
            terms.append(-c * u)
        f = _cheap_simplify(-sympy.Add(*terms))
    if points is not None and f != 0:
        if _numerically_zero(terms, dim, np.asarray(points, dtype=np.float64)):
            return sympy.S.Zero
    return f


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


def _symbolically_zero(diff: sympy.Expr) -> bool:
    """True if ``diff`` is proved to be 0 quickly; False means "not proved"."""
    if diff == 0:
        return True
    ops = sympy.count_ops(diff)
    if ops > 400:
        return False
    if _cheap_simplify(diff) == 0:
        return True
    if ops > 40:
        return False
    try:
        with _deadline(2.0) as armed:
            if not armed:
                return False
            return sympy.simplify(diff) == 0
    except _Timeout:
        return False
    except (RecursionError, sympy.PolynomialError, ValueError, TypeError):
        return False


def expressions_agree(a, b, dim: int, *, points: np.ndarray | None = None,
                      rtol: float = 1e-8, atol: float = 1e-10) -> bool:
    """Whether ``a`` and ``b`` are the same function of ``x1 .. x{dim}``.

    First a quick symbolic check (``a - b`` reduced to 0 by cancel, or by ``sympy.simplify``
    for small expressions under a 2 s deadline); otherwise a numerical comparison at
    ``points`` (shape ``(n, dim)``; default: 200 seeded random points in ``[-1, 1]^dim``):
    ``|a - b| <= atol + rtol * max(|a|, |b|)`` at every point where both are finite.  Points
    where either is not finite (singularities, such as the origin for ``r^(2/3)``) are
    skipped; if fewer than half of the points remain, the answer is False.

    Example: check a user's Poisson source against the exact solution,
    ``expressions_agree(f, -laplacian(u, 2), 2)``.
    """
    dim = _check_dim(dim)
    a = _canonical(a, dim, "first expression")
    b = _canonical(b, dim, "second expression")
    if _symbolically_zero(a - b):
        return True
    if points is None:
        points = np.random.default_rng(20240531).uniform(-1.0, 1.0, size=(200, dim))
    points = np.asarray(points, dtype=np.float64)
    _check_points(points, dim, points.shape)
    with np.errstate(all="ignore"):
        va = to_numpy(a, dim)(points)
        vb = to_numpy(b, dim)(points)
        finite = np.isfinite(va) & np.isfinite(vb)
        if finite.sum() * 2 < len(points) or not finite.any():
            return False
        va, vb = va[finite], vb[finite]
        scale = np.maximum(np.abs(va), np.abs(vb))
        return bool(np.all(np.abs(va - vb) <= atol + rtol * scale))
