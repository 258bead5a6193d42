"""The limits that bound the cost of any expression, and the bounded evaluation of constants.

A problem file is untrusted input: it must be accepted or refused within seconds whatever it
holds. The parser (:mod:`.language`) refuses syntax trees nested too deeply
(:func:`_check_nesting`), exact numbers with too many digits, and constants that are not finite
reals in double precision (:func:`_check_finite_real`, which evaluates every constant
sub-expression with :func:`_numeric_value`, screened by a bounded mpmath evaluation). The
calculus guards the Laplacian and ``sympy.simplify`` with a wall-clock :func:`_deadline`.

Nothing here knows the expression language: a check that refuses calls ``fail(message)``, the
parser's factory of :class:`~hrta_pde.poisson.expressions.ExpressionError`.
"""
from __future__ import annotations

import ast
import contextlib
import math
import signal
import threading
from typing import Callable

import mpmath
import sympy

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


def _check_nesting(tree: ast.AST, fail: Callable[[str], Exception]) -> None:
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


def _check_finite_real(expr: sympy.Expr, fail: Callable[[str], Exception]) -> None:
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

