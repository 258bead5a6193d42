"""Safe parsing of user math expressions into sympy, and their compilation to numpy and torch.

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

Example::

    >>> u = parse_expression("sin(pi*x)*sin(pi*y)", 2, name="u")
    >>> laplacian(u, 2)
    -2*pi**2*sin(pi*x1)*sin(pi*x2)
    >>> to_numpy(u, 2)(np.array([[0.5, 0.5]]))
    array([1.])
"""
from __future__ import annotations

import ast
import contextlib
import math
import re
import signal
import threading
from typing import Callable

import mpmath
import numpy as np
import sympy
import torch

__all__ = [
    "ExpressionError",
    "coordinate_symbols",
    "parse_expression",
    "to_numpy",
    "to_torch",
    "gradient",
    "laplacian",
    "free_dimension",
    "expressions_agree",
]

MAX_DIM = 10
_MAX_TEXT_LENGTH = 10_000
_ALIASES = {"x": 1, "y": 2, "z": 3}
_COORD_RE = re.compile(r"x([1-9][0-9]*)\Z")
_CONSTANTS = {"pi": sympy.pi, "e": sympy.E, "E": sympy.E}

# name -> (sympy callable, minimum number of arguments, maximum number (None: unbounded))
_FUNCTIONS: dict[str, tuple[Callable, int, int | None]] = {
    "sin": (sympy.sin, 1, 1),
    "cos": (sympy.cos, 1, 1),
    "tan": (sympy.tan, 1, 1),
    "exp": (sympy.exp, 1, 1),
    "log": (sympy.log, 1, 1),
    "sqrt": (sympy.sqrt, 1, 1),
    "sinh": (sympy.sinh, 1, 1),
    "cosh": (sympy.cosh, 1, 1),
    "tanh": (sympy.tanh, 1, 1),
    "asin": (sympy.asin, 1, 1),
    "acos": (sympy.acos, 1, 1),
    "atan": (sympy.atan, 1, 1),
    "atan2": (sympy.atan2, 2, 2),
    "abs": (sympy.Abs, 1, 1),
    "sign": (sympy.sign, 1, 1),
    "min": (sympy.Min, 2, None),
    "max": (sympy.Max, 2, None),
    "where": (None, 3, 3),  # where(cond, then, else): a Piecewise, converted in _Converter.call
}
_FUNCTION_LIST = ", ".join(_FUNCTIONS)
_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_OPERATOR_NAMES = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.Not: "not", ast.Invert: "~",
}
_SYNTAX_NAMES = {
    ast.Attribute: "attribute access '.'",
    ast.Subscript: "indexing '[...]'",
    ast.Compare: "a comparison outside where(...)",
    ast.BoolOp: "'and'/'or' outside where(...)",
    ast.IfExp: "'if ... else'",
    ast.Lambda: "'lambda'",
    ast.Tuple: "a tuple ','",
    ast.List: "a list '[...]'",
    ast.Dict: "a dict '{...}'",
    ast.Set: "a set '{...}'",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Starred: "'*' unpacking",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "':='",
    ast.Slice: "a slice",
}
# Limits that bound the cost of any expression (a problem file is untrusted input: it must be
# accepted or refused within seconds whatever it holds). Each refusal names its limit.
# Largest number of decimal digits of an exact number (a literal such as 10**400, or the result of
# an exact power): evaluating 9**9**9 exactly would hang, and a float64 overflows at 1e308 anyway.
_MAX_POWER_DIGITS = 400
_MAX_INTEGER_DIGITS = 1000  # a literal or exact product: still cheap, and the power limit comes first
# Most function calls and powers nested inside each other: sympy's derivatives of deeper nests
# (sin(sin(...)), x^x^...^x) grow so fast that the Laplacian of a 16-deep nest takes seconds and
# a 40-deep one hours; no PDE datum needs more than a few levels.
MAX_NESTING = 10
# Most levels of the syntax tree (parentheses, unary signs, ...): guards every recursive pass.
MAX_SYNTAX_DEPTH = 200
# Largest magnitude of a constant while it is evaluated (2**1000, about 1e301): beyond it the
# value is not a double anyway, and sin(exp(exp(exp(5)))) would need 10**64 digits of pi.
_MAX_MAGNITUDE_BITS = 1000
# Decimal digits used to evaluate constant sub-expressions (more than a double's 17).
_EVAL_DIGITS = 30
# Seconds the Laplacian of one expression may take before it is refused (main thread only).
LAPLACIAN_SECONDS = 20.0


class ExpressionError(ValueError):
    """One-line message naming the bad expression and the fix.

    Example: ``u 'q*x' uses unknown symbol 'q'; allowed: x, x1; constants: pi, e, E``.
    """


# ---------------------------------------------------------------------------- symbols

def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= MAX_DIM:
        raise ExpressionError(f"dimension must be an integer from 1 to {MAX_DIM}, got {dim!r}")
    return int(dim)


def coordinate_symbols(dim: int) -> tuple[sympy.Symbol, ...]:
    """The canonical real coordinate symbols ``(x1, ..., x_dim)``.

    Example: ``coordinate_symbols(2) == (Symbol("x1", real=True), Symbol("x2", real=True))``.
    Raises :class:`ExpressionError` unless ``1 <= dim <= 10``.
    """
    dim = _check_dim(dim)
    return tuple(sympy.Symbol(f"x{i}", real=True) for i in range(1, dim + 1))


def _allowed_names(dim: int) -> str:
    aliases = [a for a, i in _ALIASES.items() if i <= dim]
    return ", ".join(aliases + [f"x{i}" for i in range(1, dim + 1)])


# ---------------------------------------------------------------------------- parsing

def _shown(text: str) -> str:
    """The text as it appears in messages: one line, at most 200 characters."""
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


class _Converter:
    """Converts a Python expression syntax tree into sympy, allowing only arithmetic."""

    def __init__(self, text: str, dim: int, name: str):
        self.dim = dim
        self.symbols = coordinate_symbols(dim)
        self.prefix = f"{name} '{_shown(text)}'"

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(f"{self.prefix} {message}")

    def unsupported(self, what: str) -> ExpressionError:
        return self.fail(
            f"uses unsupported syntax: {what}; only numbers, {_allowed_names(self.dim)}, pi, e, "
            f"+ - * / ** ^, parentheses and the functions {_FUNCTION_LIST} are allowed "
            "(comparisons only as the condition of where(cond, then, else))"
        )

    def convert(self, node: ast.AST) -> sympy.Expr:
        if isinstance(node, ast.Expression):
            return self.convert(node.body)
        if isinstance(node, ast.Constant):
            return self.constant(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.convert(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.convert(node.operand)
            raise self.unsupported(f"operator '{_OPERATOR_NAMES.get(type(node.op), '?')}'")
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.unsupported(_SYNTAX_NAMES.get(type(node), f"'{type(node).__name__}'"))

    def constant(self, value) -> sympy.Expr:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = {str: "a string", bytes: "a string", complex: "a complex number"}.get(
                type(value), repr(value))
            raise self.unsupported(kind)
        if isinstance(value, int):
            return self.check_exact(sympy.Integer(value))
        if not math.isfinite(value):
            raise self.fail("contains a number too large for double precision; use a smaller one")
        return sympy.Float(value)

    def name(self, ident: str) -> sympy.Expr:
        if ident in _CONSTANTS:
            return _CONSTANTS[ident]
        index = _ALIASES.get(ident)
        match = _COORD_RE.match(ident)
        if match:
            index = int(match.group(1))
        if index is not None:
            if index > self.dim:
                raise self.fail(
                    f"uses {ident}, but the problem is {self.dim}-dimensional "
                    f"(allowed: {_allowed_names(self.dim)})"
                )
            return self.symbols[index - 1]
        hint = ""
        if ident in _FUNCTIONS:
            hint = f"; {ident} is a function, call it as {ident}(...)"
        elif ident == "r":
            hint = "; write the radius as sqrt(x^2 + y^2)"
        elif ident == "theta":
            hint = "; write the angle as atan2(y, x)"
        raise self.fail(
            f"uses unknown symbol '{ident}'; allowed: {_allowed_names(self.dim)}; "
            f"constants: pi, e, E{hint}"
        )

    def binop(self, node: ast.BinOp) -> sympy.Expr:
        op = type(node.op)
        if op not in _OPERATORS:
            raise self.unsupported(f"operator '{_OPERATOR_NAMES.get(op, op.__name__)}'")
        left = self.convert(node.left)
        right = self.convert(node.right)
        if op is ast.Add:
            return left + right
        if op is ast.Sub:
            return left - right
        if op is ast.Mult:
            return left * right
        if op is ast.Div:
            return left / right
        if left.is_Number and right.is_Number:
            self.check_power(left, right)
        return self.check_exact(left ** right)

    def check_exact(self, value: sympy.Expr) -> sympy.Expr:
        """Refuse exact rationals with more digits than ``_MAX_INTEGER_DIGITS``."""
        if value.is_Rational and max(_digits(value.p), _digits(value.q)) > _MAX_INTEGER_DIGITS:
            raise self.fail(f"contains an exact number of more than {_MAX_INTEGER_DIGITS} digits "
                            f"(the limit); use a smaller one")
        return value

    def check_power(self, base: sympy.Number, exponent: sympy.Number) -> None:
        """Refuse exact number powers so large that sympy would hang evaluating them.

        Works in logarithms throughout: ``float(base)`` is inf for 10**400, and the exponent
        itself may be too large for a float.
        """
        log_b = abs(_log10_abs(base))
        if log_b == 0.0 or base.is_zero:
            return
        log_digits = _log10_abs(exponent) + math.log10(log_b)  # log10 of the result's digits
        if log_digits > math.log10(_MAX_POWER_DIGITS):
            raise self.fail(
                f"contains the power {_short(base)}**{_short(exponent)}, which is far outside the "
                f"range of double precision (more than {_MAX_POWER_DIGITS} digits, the limit); "
                "use smaller numbers"
            )

    def call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.unsupported("a call of something that is not a function name")
        fname = node.func.id
        if fname not in _FUNCTIONS:
            hint = ""
            if fname.lower() in _FUNCTIONS:
                hint = f" (did you mean {fname.lower()}?)"
            elif fname == "ln":
                hint = " (did you mean log?)"
            raise self.fail(f"uses unknown function '{fname}'{hint}; allowed: {_FUNCTION_LIST}")
        if node.keywords:
            raise self.fail(f"calls {fname} with keyword arguments; pass arguments by position")
        function, lo, hi = _FUNCTIONS[fname]
        n = len(node.args)
        if fname == "where" and n == 3:
            cond = self.condition(node.args[0])
            then, other = self.convert(node.args[1]), self.convert(node.args[2])
            if cond is sympy.true:
                return then
            if cond is sympy.false:
                return other
            return sympy.Piecewise((then, cond), (other, True))
        if n < lo or (hi is not None and n > hi):
            if hi is None:
                need = f"at least {lo} arguments"
            elif lo == hi:
                need = f"{lo} argument" + ("s" if lo != 1 else "")
            else:
                need = f"{lo} to {hi} arguments"
            raise self.fail(f"calls {fname} with {n} argument{'s' if n != 1 else ''}, "
                            f"but {fname} takes {need}")
        args = [self.convert(arg) for arg in node.args]
        return function(*args)

    _COMPARE = {ast.Lt: sympy.StrictLessThan, ast.LtE: sympy.LessThan,
                ast.Gt: sympy.StrictGreaterThan, ast.GtE: sympy.GreaterThan}

    def condition(self, node: ast.AST):
        """The condition of ``where``: comparisons joined by and/or/not, as a sympy boolean."""
        if isinstance(node, ast.Compare):
            parts, left = [], self.convert(node.left)
            for op, comp in zip(node.ops, node.comparators):
                rel = self._COMPARE.get(type(op))
                if rel is None:
                    sym = {ast.Eq: "==", ast.NotEq: "!="}.get(type(op), type(op).__name__)
                    raise self.fail(f"uses the comparison '{sym}' in where(...); use < <= > >= "
                                    "(an equality of real coordinates holds on a set of measure zero)")
                right = self.convert(comp)
                parts.append(rel(left, right))
                left = right
            return sympy.And(*parts)
        if isinstance(node, ast.BoolOp):
            items = [self.condition(v) for v in node.values]
            return sympy.And(*items) if isinstance(node.op, ast.And) else sympy.Or(*items)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sympy.Not(self.condition(node.operand))
        raise self.fail("has a where(cond, then, else) whose condition is not a comparison; "
                        "write e.g. where(x < 0.5, 1, 10)")


def _digits(n: int) -> int:
    """Decimal digits of ``|n|``, from its bit length (``str`` of a huge int is itself slow)."""
    return int(abs(n).bit_length() * 0.30102999566398120) + 1


def _log10_abs(number: sympy.Number) -> float:
    """``log10 |number|`` of a sympy number without converting it to a float (it may overflow)."""
    if number.is_zero:
        return -math.inf
    if number.is_Rational:
        return _log10_int(number.p) - _log10_int(number.q)
    return float(mpmath.log10(abs(mpmath.mpf(number._as_mpf_val(53)))))


def _log10_int(n: int) -> float:
    n = abs(n)
    shift = max(0, n.bit_length() - 64)
    return math.log10(n >> shift) + shift * math.log10(2.0)


def _short(number) -> str:
    text = str(number)
    return text if len(text) <= 30 else f"(a {_digits(number.p) if number.is_Integer else len(text)}-digit number)"


class _TooLarge(Exception):
    """A constant whose magnitude leaves the bounded range while it is evaluated."""


def _mp_function(name: str):
    """The mpmath function for a sympy function class name (None: not known here)."""
    table = {"sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "exp": mpmath.exp,
             "log": mpmath.log, "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh,
             "asin": mpmath.asin, "acos": mpmath.acos, "atan": mpmath.atan, "sec": mpmath.sec,
             "csc": mpmath.csc, "cot": mpmath.cot, "asinh": mpmath.asinh, "acosh": mpmath.acosh,
             "atanh": mpmath.atanh, "Abs": abs, "atan2": lambda y, x: mpmath.atan2(y, x),
             "sign": lambda v: mpmath.sign(v), "Min": lambda *a: min(a), "Max": lambda *a: max(a)}
    return table.get(name)


def _bounded(value):
    """``value`` if it is finite and below ``2**_MAX_MAGNITUDE_BITS`` in magnitude."""
    if not mpmath.isfinite(value) or (value != 0 and mpmath.mag(value) > _MAX_MAGNITUDE_BITS):
        raise _TooLarge
    return value


def _mp_value(expr: sympy.Expr):
    """Value of a numeric sympy expression in mpmath at ``_EVAL_DIGITS`` digits, bounded in cost.

    Every intermediate value is checked against ``2**_MAX_MAGNITUDE_BITS``, so no step needs
    more than a few hundred digits (``sympy.N`` on ``sin(exp(exp(exp(5))))`` never returns). The
    magnitudes are right; the phase of a periodic function of a huge argument is not (a screen).
    """
    if expr.is_Rational:
        if max(_digits(expr.p), _digits(expr.q)) > _MAX_INTEGER_DIGITS:
            raise _TooLarge
        return _bounded(mpmath.mpf(expr.p) / expr.q)
    if expr.is_Float:
        return _bounded(mpmath.mpf(expr._as_mpf_val(mpmath.mp.prec)))
    if expr is sympy.pi:
        return +mpmath.pi
    if expr is sympy.E:
        return mpmath.e + 0
    if expr is sympy.I:
        return mpmath.mpc(0, 1)
    if expr.is_Add:
        return _bounded(mpmath.fsum(_mp_value(a) for a in expr.args))
    if expr.is_Mul:
        out = mpmath.mpf(1)
        for a in expr.args:
            out = _bounded(out * _mp_value(a))
        return out
    if expr.is_Pow:
        base, exponent = _mp_value(expr.base), _mp_value(expr.exp)
        if base == 0:
            if mpmath.re(exponent) > 0:
                return mpmath.mpf(0)
            raise _TooLarge
        if abs(exponent) * abs(float(mpmath.log(abs(base), 2))) > _MAX_MAGNITUDE_BITS:
            raise _TooLarge  # |result| above 2**1000 or below 2**-1000: decided without computing it
        return _bounded(mpmath.power(base, exponent))
    function = _mp_function(type(expr).__name__) if isinstance(expr, (sympy.Function, sympy.Min, sympy.Max)) else None
    if function is None:
        raise _TooLarge  # something this evaluator does not know: not evaluated (refused)
    return _bounded(function(*(_mp_value(a) for a in expr.args)))


def _check_nesting(tree: ast.AST, fail: Callable[[str], ExpressionError]) -> None:
    """Refuse trees deeper than ``MAX_SYNTAX_DEPTH`` or with more than ``MAX_NESTING`` nested
    calls and powers, before any recursive pass sees them (iterative: no RecursionError)."""
    stack = [(tree, 1, 0)]
    while stack:
        node, depth, nesting = stack.pop()
        if isinstance(node, ast.Call) or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)):
            nesting += 1
        if depth > MAX_SYNTAX_DEPTH:
            raise fail(f"is nested too deeply (more than {MAX_SYNTAX_DEPTH} levels, the limit); "
                       "simplify it")
        if nesting > MAX_NESTING:
            raise fail(f"nests more than {MAX_NESTING} function calls and powers inside each other "
                       f"(the limit: deeper nests cannot be differentiated in bounded time); simplify it")
        stack.extend((child, depth + 1, nesting) for child in ast.iter_child_nodes(node))


def _numeric_value(expr: sympy.Expr):
    """Complex value of a numeric sympy expression, or None if it cannot be evaluated in bounded
    time and within double precision range."""
    try:
        with mpmath.workdps(_EVAL_DIGITS):
            _mp_value(expr)  # the screen: raises unless every intermediate value is bounded
        # sympy.N is exact to the last digit (sin(exp(600)) needs the 260 digits of exp(600) that a
        # fixed precision lacks); with every magnitude below 2**1000, it needs at most ~1000 bits
        value = complex(sympy.N(expr, 17))
    except (_TooLarge, TypeError, ValueError, OverflowError, ZeroDivisionError, RecursionError):
        return None
    if not (math.isfinite(value.real) and math.isfinite(value.imag)):
        return None
    return value


def _check_finite_real(expr: sympy.Expr, fail: Callable[[str], ExpressionError]) -> None:
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise fail("is not finite (division by zero or log(0)?); fix the expression")
    if expr.has(sympy.I):
        raise fail("is not real (it contains the imaginary unit, e.g. from log or sqrt "
                   "of a negative number); fix the expression")
    # Every maximal constant sub-expression, e.g. asin(2) in asin(2)*x, must be a finite real.
    for sub in _maximal_numeric(expr):
        value = _numeric_value(sub)
        if value is None or not (math.isfinite(value.real) and math.isfinite(value.imag)):
            raise fail(f"contains the constant {sub}, which is not finite in double precision; "
                       "fix the expression")
        if abs(value.imag) > 1e-12 * max(1.0, abs(value.real)):
            raise fail(f"contains the constant {sub}, which is not a real number; "
                       "fix the expression")


def _maximal_numeric(expr: sympy.Expr):
    """Yield the largest sub-expressions that are numbers but not plain rationals."""
    if expr.is_number:
        if not expr.is_Rational:
            yield expr
        return
    for arg in expr.args:
        yield from _maximal_numeric(arg)


def parse_expression(text: str, dim: int, *, name: str = "expression") -> sympy.Expr:
    """Parse a user math expression in ``dim`` coordinates into a sympy expression.

    The coordinates are ``x1 .. x{dim}`` (aliases ``x, y, z`` for ``x1, x2, x3``), ``^`` is a
    power, and only arithmetic, ``pi``, ``e`` and whitelisted functions are allowed; the text
    is never evaluated as Python.  ``name`` (e.g. ``"f"`` or ``"u"``) appears in error messages.

    Example: ``parse_expression("x^2 + y^2", 2)`` is ``x1**2 + x2**2``, with the real symbols of
    :func:`coordinate_symbols`.  ``parse_expression("y", 1)`` raises :class:`ExpressionError`
    ``expression 'y' uses y, but the problem is 1-dimensional (allowed: x, x1)``.
    """
    dim = _check_dim(dim)
    if not isinstance(text, str):
        raise ExpressionError(
            f"{name} must be a string such as 'sin(pi*x)', got {type(text).__name__} {text!r:.80}")
    if not text.strip():
        raise ExpressionError(f"{name} is empty; give a formula such as 'sin(pi*x)'")
    if len(text) > _MAX_TEXT_LENGTH:
        raise ExpressionError(
            f"{name} '{_shown(text)}' is longer than {_MAX_TEXT_LENGTH} characters; simplify it")
    converter = _Converter(text, dim, name)
    source = " ".join(text.split()).replace("^", "**")
    shown = f"{name} '{_shown(text)}'"
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(
            f"could not parse {shown}: {exc.msg}{where}; check parentheses and operators "
            "(write 2*x, not 2x; use ^ or ** for powers)"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(
            f"could not parse {shown}: {type(exc).__name__}; simplify it") from None
    _check_nesting(tree, converter.fail)
    try:
        expr = converter.convert(tree)
        _check_finite_real(expr, converter.fail)
    except RecursionError:
        raise converter.fail("is nested too deeply; simplify it") from None
    return expr


# ---------------------------------------------------------------------------- preparation

def _canonical(expr, dim: int, what: str = "expression") -> sympy.Expr:
    """Return ``expr`` (a sympy expression, number or string) over the canonical symbols.

    Symbols named ``x1 .. x{dim}`` (with any assumptions) are replaced by the canonical real
    ones, so that differentiation and compilation see the same symbols.
    """
    dim = _check_dim(dim)
    if isinstance(expr, str):
        return parse_expression(expr, dim, name=what)
    try:
        expr = sympy.sympify(expr, strict=True)
    except (sympy.SympifyError, TypeError) as exc:
        raise ExpressionError(f"{what} must be a sympy expression or a string, got "
                              f"{type(expr).__name__}") from exc
    symbols = coordinate_symbols(dim)
    by_name = {s.name: s for s in symbols}
    mapping = {}
    for s in expr.free_symbols:
        canonical = by_name.get(s.name)
        if canonical is None:
            raise ExpressionError(
                f"{what} '{_shown(str(expr))}' uses symbol '{s}', which is not a coordinate of "
                f"the {dim}-dimensional problem (allowed: {', '.join(by_name)})")
        if s != canonical:
            mapping[s] = canonical
    return expr.xreplace(mapping) if mapping else expr


def _fold_constants(expr: sympy.Expr) -> sympy.Expr:
    """Replace constant sub-expressions such as ``sqrt(2)``, ``sin(1)``, ``pi`` by floats.

    Integers and rationals are kept (exact exponents such as ``x**(2/3)``; the code printer
    writes ``2/3``, a Python float division).  After folding, every function call in the
    expression has an argument that depends on the coordinates, i.e. a tensor at run time.
    """
    if expr.is_number:
        if expr.is_Rational:
            return expr
        value = _numeric_value(expr)
        if value is None or value.imag != 0.0:
            return expr
        return sympy.Float(value.real, 17)
    if not expr.args:
        return expr
    args = [_fold_constants(a) for a in expr.args]
    if all(a is b for a, b in zip(args, expr.args)):
        return expr
    return expr.func(*args)


def _check_compilable(expr: sympy.Expr, supported, what: str) -> None:
    if expr.has(sympy.Derivative, sympy.Integral):
        raise ExpressionError(f"cannot compile {what} '{_shown(str(expr))}': it contains an "
                              "unevaluated derivative or integral")
    names = sorted({type(f).__name__ for f in expr.atoms(sympy.Function, sympy.Min, sympy.Max)} - set(supported))
    if names:
        raise ExpressionError(f"cannot compile {what} '{_shown(str(expr))}': unsupported "
                              f"function {', '.join(names)}")
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, sympy.I):
        raise ExpressionError(f"cannot compile {what} '{_shown(str(expr))}': it is not a finite "
                              "real expression")


def _check_points(X, dim: int, shape) -> None:
    if len(shape) != 2 or shape[1] != dim:
        raise ValueError(f"points must have shape (n, {dim}), got {tuple(shape)}")


# ---------------------------------------------------------------------------- numpy

_NUMPY_FUNCTIONS = {
    "sin", "cos", "tan", "exp", "log", "sinh", "cosh", "tanh", "asin", "acos", "atan", "atan2",
    "Abs", "sign", "Min", "Max", "Heaviside", "sec", "csc", "cot", "asinh", "acosh", "atanh",
    "Piecewise",
}


def to_numpy(expr, dim: int) -> Callable[[np.ndarray], np.ndarray]:
    """Compile ``expr`` to a numpy function ``X (n, dim) -> values (n,)`` (float64).

    Built with ``sympy.lambdify(..., modules="numpy")``; constants broadcast to ``(n,)``.
    Example: ``to_numpy(parse_expression("x^2 + y^2", 2), 2)(np.array([[1., 2.]]))`` is
    ``array([5.])``.
    """
    dim = _check_dim(dim)
    expr = _canonical(expr, dim)
    _check_compilable(expr, _NUMPY_FUNCTIONS, "expression")
    folded = _fold_constants(expr)
    fn = sympy.lambdify(coordinate_symbols(dim), folded, modules="numpy")

    def evaluate(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        _check_points(X, dim, X.shape)
        out = fn(*(X[:, i] for i in range(dim)))
        return np.array(np.broadcast_to(np.asarray(out, dtype=np.float64), (X.shape[0],)))

    evaluate.expr = expr
    evaluate.__doc__ = f"numpy evaluation of {expr} at points X of shape (n, {dim})."
    return evaluate


# ---------------------------------------------------------------------------- torch

def _like(value, ref: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(float(value), dtype=ref.dtype, device=ref.device)


def _tensor_args(args):
    ref = next(a for a in args if isinstance(a, torch.Tensor))
    return [_like(a, ref) for a in args]


def _torch_min(*args):
    args = _tensor_args(args)
    out = args[0]
    for a in args[1:]:
        out = torch.minimum(out, a)
    return out


def _torch_max(*args):
    args = _tensor_args(args)
    out = args[0]
    for a in args[1:]:
        out = torch.maximum(out, a)
    return out


def _torch_atan2(y, x):
    y, x = _tensor_args((y, x))
    return torch.atan2(y, x)


def _torch_heaviside(x, h0=0.5):
    x, h0 = _tensor_args((x, h0))
    return torch.heaviside(x, h0.to(x.dtype))


def _torch_where(cond, then, other, ref):
    """``torch.where`` whose constant branches take the dtype and device of ``ref`` (x1)."""
    then, other = _like(then, ref), _like(other, ref)
    if not isinstance(cond, torch.Tensor):
        cond = torch.as_tensor(bool(cond), device=ref.device)
    return torch.where(cond, then, other)


_TORCH_NAMESPACE = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh,
    "asin": torch.asin, "acos": torch.acos, "atan": torch.atan, "atan2": _torch_atan2,
    "Abs": torch.abs, "sign": torch.sign, "Min": _torch_min, "Max": _torch_max,
    "Heaviside": _torch_heaviside, "where": _torch_where,
    "logical_and": torch.logical_and, "logical_or": torch.logical_or,
    "logical_not": torch.logical_not,
    "sec": lambda a: 1 / torch.cos(a), "csc": lambda a: 1 / torch.sin(a),
    "cot": lambda a: 1 / torch.tan(a),
    "asinh": torch.asinh, "acosh": torch.acosh, "atanh": torch.atanh,
    "pi": math.pi, "e": math.e, "E": math.e,
}


def _torch_printer():
    from sympy.printing.pycode import PythonCodePrinter

    class _TorchCodePrinter(PythonCodePrinter):
        """Python code printer that calls the names of ``_TORCH_NAMESPACE``."""

        def _print_sign(self, e):  # the base class prints a scalar-only copysign expression
            return f"sign({self._print(e.args[0])})"

        def _print_Piecewise(self, e):  # nested torch.where, the last condition is True
            out = self._print(e.args[-1].expr)
            if e.args[-1].cond is not sympy.true:
                out = "(x1 * float('nan'))"  # no piece applies: not a number, as in sympy
                out = f"where({self._print(e.args[-1].cond)}, {self._print(e.args[-1].expr)}, {out}, x1)"
            for piece in reversed(e.args[:-1]):
                out = f"where({self._print(piece.cond)}, {self._print(piece.expr)}, {out}, x1)"
            return out

        def _print_And(self, e):
            out = self._print(e.args[0])
            for a in e.args[1:]:
                out = f"logical_and({out}, {self._print(a)})"
            return out

        def _print_Or(self, e):
            out = self._print(e.args[0])
            for a in e.args[1:]:
                out = f"logical_or({out}, {self._print(a)})"
            return out

        def _print_Not(self, e):
            return f"logical_not({self._print(e.args[0])})"

    names = {k: k for k in _TORCH_NAMESPACE}
    return _TorchCodePrinter({"fully_qualified_modules": False, "inline": True,
                              "allow_unknown_functions": False, "user_functions": names})


def to_torch(expr, dim: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compile ``expr`` to a torch function ``X (n, dim) -> values (n,)``.

    The result has the dtype and device of ``X`` and is differentiable by autograd with
    respect to ``X``; numeric constants become Python floats (``x^(2/3)`` is ``x1**(2/3)``
    on tensors), so float32 inputs stay float32.  A constant expression broadcasts to
    ``(n,)`` (still connected to the graph of ``X`` when ``X.requires_grad``).
    Example: ``to_torch(parse_expression("sin(pi*x)", 1), 1)(torch.tensor([[0.5]]))`` is
    ``tensor([1.])``.
    """
    dim = _check_dim(dim)
    expr = _canonical(expr, dim)
    _check_compilable(expr, [k for k in _TORCH_NAMESPACE if k not in ("pi", "e", "E")] + ["Piecewise"],
                      "expression")
    folded = _fold_constants(expr)
    constant = float(folded) if folded.is_number else None
    fn = None
    if constant is None:
        fn = sympy.lambdify(coordinate_symbols(dim), folded, modules=[_TORCH_NAMESPACE],
                            printer=_torch_printer())
    is_symbol = folded.is_Symbol

    def evaluate(X: torch.Tensor) -> torch.Tensor:
        if not isinstance(X, torch.Tensor):
            raise TypeError(f"points must be a torch.Tensor of shape (n, {dim}), "
                            f"got {type(X).__name__}")
        _check_points(X, dim, X.shape)
        if not X.is_floating_point():
            raise TypeError(f"points must be a floating-point tensor, got {X.dtype}")
        n = X.shape[0]
        if constant is not None:
            if X.requires_grad:
                return X[:, 0] * 0.0 + constant
            return torch.full((n,), constant, dtype=X.dtype, device=X.device)
        out = fn(*(X[:, i] for i in range(dim)))
        if is_symbol:
            out = out.clone()
        if out.dtype != X.dtype:
            out = out.to(X.dtype)
        if out.shape != (n,):
            out = torch.broadcast_to(out, (n,))
        return out

    evaluate.expr = expr
    evaluate.__doc__ = f"torch evaluation of {expr} at points X of shape (n, {dim})."
    return evaluate


# ---------------------------------------------------------------------------- calculus

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


def free_dimension(expr) -> int:
    """The largest ``i`` such that ``x_i`` occurs in ``expr`` (0 for a constant).

    Example: ``free_dimension(parse_expression("x3 + y", 3)) == 3``. A string is parsed with
    :func:`parse_expression` (in ``MAX_DIM`` coordinates), never evaluated.
    """
    if isinstance(expr, str):
        expr = parse_expression(expr, MAX_DIM)
    elif isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return 0
    elif not isinstance(expr, sympy.Basic):
        raise ExpressionError(f"free_dimension needs a sympy expression or a string, got "
                              f"{type(expr).__name__}")
    best = 0
    for s in expr.free_symbols:
        match = _COORD_RE.match(s.name)
        if match:
            best = max(best, int(match.group(1)))
    return best


# ---------------------------------------------------------------------------- comparison

class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise :class:`_Timeout` in the block after ``seconds`` (SIGALRM, main thread only).

    Yields False, arming nothing, where that is impossible or a real-time timer is already
    set by someone else (e.g. pytest-timeout), so the caller can skip the slow work.
    """
    usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0.0)
    if not usable:
        yield False
        return

    def on_alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


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
