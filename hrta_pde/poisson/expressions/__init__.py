"""User math expressions: safe parsing into sympy, calculus on them, compilation to numpy and torch.

Expressions come from the command line and from TOML problem files, e.g. the target
``f(x) = sin(2*pi*x)`` of a function-approximation run, or the data ``u``, ``f``, ``g``,
``h`` of a Poisson problem ``-laplacian(u) = f``.  They are *never* evaluated as Python:
the text is parsed with :func:`ast.parse` and the syntax tree is converted node by node
into sympy objects, accepting only

* numbers (``2``, ``0.5``, ``1e-3``), the constants ``pi``, ``e`` / ``E``;
* the coordinates ``x1 .. xd`` and the aliases ``x, y, z`` for ``x1, x2, x3``;
* ``+ - * / **``, ``^`` (a power, as in ``r^(2/3)``), unary ``-``/``+``, parentheses;
* the functions ``sin cos tan exp log sqrt sinh cosh tanh asin acos atan atan2 abs sign
  min max`` called with positional arguments;
* the piecewise form ``where(cond, then, else)``: ``cond`` is a comparison (``< <= > >=``,
  chained as in ``0 < x < 1``) or several joined by ``and`` / ``or`` / ``not``; it becomes a
  sympy ``Piecewise`` (derivatives are taken piece by piece) and ``torch.where`` / ``numpy``
  selection when compiled, e.g. a coefficient that jumps across ``x = 0``:
  ``where(x < 0, 1, 10)``.

The parts: :mod:`.language` (the text to sympy, the grammar above), :mod:`.limits` (what bounds
the cost of an untrusted expression, each refusal naming its limit), :mod:`.calculus` (gradient,
Laplacian, the source ``f = -div(a grad u) + c u`` of a solution, whether two expressions agree)
and :mod:`.compilation` (to numpy and to differentiable torch functions).

Example::

    >>> u = parse_expression("sin(pi*x)*sin(pi*y)", 2, name="u")
    >>> laplacian(u, 2)
    -2*pi**2*sin(pi*x1)*sin(pi*x2)
    >>> to_numpy(u, 2)(np.array([[0.5, 0.5]]))
    array([1.])
"""
from __future__ import annotations

from .calculus import expressions_agree, gradient, laplacian, source_term
from .compilation import to_numpy, to_torch
from .language import MAX_DIM, ExpressionError, coordinate_symbols, free_dimension, parse_expression
from .limits import LAPLACIAN_SECONDS, MAX_NESTING, MAX_SYNTAX_DEPTH

__all__ = [
    "ExpressionError",
    "coordinate_symbols",
    "parse_expression",
    "to_numpy",
    "to_torch",
    "gradient",
    "laplacian",
    "source_term",
    "free_dimension",
    "expressions_agree",
    "MAX_DIM",
    "MAX_NESTING",
    "MAX_SYNTAX_DEPTH",
    "LAPLACIAN_SECONDS",
]
