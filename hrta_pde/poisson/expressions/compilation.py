"""Compilation of sympy expressions to numpy and torch functions of points ``X (n, dim)``.

Constant sub-expressions are folded to floats first (:func:`_fold_constants`), so every function
call left has a tensor argument at run time; the torch version is differentiable by autograd
and keeps the dtype and device of ``X``.

Example::

    >>> to_numpy(parse_expression("x^2 + y^2", 2), 2)(np.array([[1., 2.]]))
    array([5.])
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import sympy
import torch

from .language import ExpressionError, _canonical, _check_dim, _shown, coordinate_symbols
from .limits import _numeric_value


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


def _elementwise_fold(binary):
    """The n-ary version ``f(a, b, c) = binary(binary(a, b), c)`` of a binary tensor function."""
    def fold(*args):
        args = _tensor_args(args)
        out = args[0]
        for a in args[1:]:
            out = binary(out, a)
        return out
    return fold


_torch_min = _elementwise_fold(torch.minimum)  # sympy's Min and Max take any number of arguments
_torch_max = _elementwise_fold(torch.maximum)


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

