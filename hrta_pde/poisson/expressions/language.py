"""The safe expression language: user text to a sympy expression, never evaluated as Python.

The text is parsed with :func:`ast.parse` and the syntax tree is converted node by node by
:class:`_Converter`, which accepts only the numbers, constants, coordinates, operators and
functions listed in the package docstring (:mod:`hrta_pde.poisson.expressions`). Every refusal
is one :class:`ExpressionError` naming the expression and the fix; the cost limits are in
:mod:`.limits`.

Example::

    >>> parse_expression("x^2 + y^2", 2)
    x1**2 + x2**2
"""
from __future__ import annotations

import ast
import math
import re
from typing import Callable

import numpy as np
import sympy

from .limits import (
    _MAX_INTEGER_DIGITS,
    _MAX_POWER_DIGITS,
    _check_finite_real,
    _check_nesting,
    _digits,
    _log10_abs,
    _short,
)

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
