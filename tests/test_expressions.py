"""Tests of hrta_pde.poisson.expressions: safe parsing, numpy/torch compilation, calculus."""
import builtins
import time

import numpy as np
import pytest
import sympy
import torch

from hrta_pde.poisson.expressions import (
    MAX_NESTING,
    MAX_SYNTAX_DEPTH,
    ExpressionError,
    coordinate_symbols,
    expressions_agree,
    free_dimension,
    gradient,
    laplacian,
    parse_expression,
    source_term,
    to_numpy,
    to_torch,
)

RNG = np.random.default_rng(7)
L_SHAPE_U = "(x^2+y^2)^(1/3)*sin(2*(atan2(-y,-x)+pi)/3)"


def points(n, dim, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=(n, dim))


def l_shape_points(n=400, r_min=0.05):
    """Points of (-1,1)^2 minus [0,1)x(-1,0], at distance >= r_min from the corner (0,0)."""
    p = points(4 * n, 2)
    in_removed = (p[:, 0] >= 0) & (p[:, 1] <= 0)
    keep = ~in_removed & (np.hypot(p[:, 0], p[:, 1]) >= r_min)
    return p[keep][:n]


# ----------------------------------------------------------------------------- symbols

def test_coordinate_symbols():
    syms = coordinate_symbols(3)
    assert [s.name for s in syms] == ["x1", "x2", "x3"]
    assert all(s.is_real for s in syms)
    assert syms == tuple(sympy.Symbol(f"x{i}", real=True) for i in (1, 2, 3))
    assert len(coordinate_symbols(10)) == 10
    for bad in (0, 11, -1, 2.0, True, "2"):
        with pytest.raises(ExpressionError):
            coordinate_symbols(bad)


# ----------------------------------------------------------------------------- parsing values

def test_sin_matches_numpy():
    f = to_numpy(parse_expression("sin(2*pi*x)", 1), 1)
    X = points(50, 1)
    np.testing.assert_allclose(f(X), np.sin(2 * np.pi * X[:, 0]), rtol=0, atol=1e-14)


def test_caret_is_power_and_2d_values():
    e1 = parse_expression("x^2 + y^2", 2)
    e2 = parse_expression("x**2 + y**2", 2)
    x1, x2 = coordinate_symbols(2)
    assert e1 == e2 == x1**2 + x2**2
    X = points(30, 2)
    np.testing.assert_allclose(to_numpy(e1, 2)(X), X[:, 0] ** 2 + X[:, 1] ** 2, rtol=1e-15)
    # users write r^(2/3): the exponent stays the exact rational 2/3
    e3 = parse_expression("(x^2+y^2)^(2/3)", 2)
    assert e3 == (x1**2 + x2**2) ** sympy.Rational(2, 3)


def test_aliases():
    x1, x2, x3 = coordinate_symbols(3)
    assert parse_expression("x + y + z", 3) == x1 + x2 + x3
    assert parse_expression("x*x1", 1) == x1**2
    assert parse_expression("x", 7) == x1  # x is x1 in any dimension
    assert parse_expression("y - x2", 2) == 0
    X = points(20, 3)
    np.testing.assert_allclose(to_numpy(parse_expression("x - 2*y + 3*z", 3), 3)(X),
                               X[:, 0] - 2 * X[:, 1] + 3 * X[:, 2], rtol=1e-14)


def test_ten_dimensions():
    text = " + ".join(f"{i}*x{i}^2" for i in range(1, 11))
    f = to_numpy(parse_expression(text, 10), 10)
    X = points(40, 10)
    expected = sum(i * X[:, i - 1] ** 2 for i in range(1, 11))
    np.testing.assert_allclose(f(X), expected, rtol=1e-14)
    assert free_dimension(parse_expression(text, 10)) == 10


def test_constants_and_numbers():
    assert parse_expression("pi", 1) == sympy.pi
    assert parse_expression("e", 1) == sympy.E
    assert parse_expression("E", 1) == sympy.E
    assert parse_expression("1/2", 1) == sympy.Rational(1, 2)  # exact
    assert parse_expression("3", 1) == sympy.Integer(3)
    assert isinstance(parse_expression("2.5", 1), sympy.Float)
    assert float(parse_expression("1.5e-3", 1)) == 1.5e-3
    assert float(parse_expression("2E3", 1)) == 2000.0
    assert parse_expression("-(-x)", 1) == parse_expression("+x", 1)
    assert parse_expression("  \n sin( x )\n", 1) == sympy.sin(coordinate_symbols(1)[0])
    x1, x2 = coordinate_symbols(2)
    assert parse_expression("abs(x) + sign(y) + min(x, y, 1) + max(x, 0)", 2) == (
        sympy.Abs(x1) + sympy.sign(x2) + sympy.Min(x1, x2, 1) + sympy.Max(x1, 0))


def test_all_functions_evaluate():
    text = ("sin(x) + cos(y) + tan(x/2) + exp(y) + log(2+x) + sqrt(2+y) + sinh(x) + cosh(y)"
            " + tanh(x) + asin(x/2) + acos(y/2) + atan(x) + atan2(y, x) + abs(x) + sign(y)"
            " + min(x, y) + max(x, y, 0.25)")
    x, y = points(60, 2).T
    expected = (np.sin(x) + np.cos(y) + np.tan(x / 2) + np.exp(y) + np.log(2 + x)
                + np.sqrt(2 + y) + np.sinh(x) + np.cosh(y) + np.tanh(x) + np.arcsin(x / 2)
                + np.arccos(y / 2) + np.arctan(x) + np.arctan2(y, x) + np.abs(x) + np.sign(y)
                + np.minimum(x, y) + np.maximum(np.maximum(x, y), 0.25))
    expr = parse_expression(text, 2)
    X = np.stack([x, y], axis=1)
    np.testing.assert_allclose(to_numpy(expr, 2)(X), expected, rtol=1e-13)
    got = to_torch(expr, 2)(torch.tensor(X))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-13)


# ----------------------------------------------------------------------------- errors

ERROR_CASES = [
    # (text, dim, fragments expected in the message)
    ("sin(2*pi*x", 1, ["could not parse u 'sin(2*pi*x'", "parentheses"]),
    ("2x", 1, ["could not parse", "2*x"]),
    ("x +* y", 2, ["could not parse"]),
    ("q*x", 1, ["unknown symbol 'q'", "allowed: x, x1"]),
    ("r^(2/3)", 2, ["unknown symbol 'r'", "sqrt(x^2 + y^2)"]),
    ("foo(x)", 1, ["unknown function 'foo'", "allowed: sin, cos"]),
    ("Sin(x)", 1, ["unknown function 'Sin'", "did you mean sin"]),
    ("atan2(x)", 2, ["atan2", "takes 2 arguments"]),
    ("sin(x, y)", 2, ["sin", "takes 1 argument"]),
    ("min(x)", 1, ["min", "at least 2"]),
    ("sin(x=1)", 1, ["keyword"]),
    ("x3", 2, ["uses x3, but the problem is 2-dimensional (allowed: x, y, x1, x2)"]),
    ("y", 1, ["uses y, but the problem is 1-dimensional (allowed: x, x1)"]),
    ("z + x", 2, ["uses z, but the problem is 2-dimensional"]),
    ("x11", 10, ["uses x11, but the problem is 10-dimensional"]),
    ("x0", 2, ["unknown symbol 'x0'"]),
    ("1/0", 1, ["not finite"]),
    ("x/0", 1, ["not finite"]),
    ("log(0)", 1, ["not finite"]),
    ("log(-1)", 1, ["not real"]),
    ("sqrt(-1)*x", 1, ["not real"]),
    ("asin(2)*x", 1, ["asin(2)", "not a real number"]),
    ("1e999*x", 1, ["too large"]),
    ("9^9^9", 1, ["far outside the range"]),
    ("x.real", 1, ["unsupported syntax", "attribute"]),
    ("x[0]", 1, ["unsupported syntax", "indexing"]),
    ("lambda: 1", 1, ["unsupported syntax", "lambda"]),
    ("'abc'", 1, ["unsupported syntax", "string"]),
    ("x < 1", 1, ["unsupported syntax", "comparison"]),
    ("x % 2", 1, ["unsupported syntax", "'%'"]),
    ("x if x else 1", 1, ["unsupported syntax"]),
    ("[x for x in (1,)]", 1, ["unsupported syntax", "comprehension"]),
    ("True", 1, ["unsupported syntax"]),
    ("1j", 1, ["unsupported syntax", "complex"]),
    ("sin", 1, ["unknown symbol 'sin'", "call it as sin(...)"]),
    ("-" * 5000 + "x", 1, ["u '"]),
]


@pytest.mark.parametrize("text,dim,fragments", ERROR_CASES, ids=[c[0][:20] for c in ERROR_CASES])
def test_error_messages(text, dim, fragments):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, dim, name="u")
    message = str(info.value)
    assert "\n" not in message
    assert "u '" in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("value,fragment", [("", "empty"), ("   ", "empty"), (3, "string"),
                                            (None, "string"), (b"x", "string")])
def test_empty_and_non_string(value, fragment):
    with pytest.raises(ExpressionError, match=fragment) as info:
        parse_expression(value, 1, name="f")
    assert "\n" not in str(info.value) and str(info.value).startswith("f ")


def test_expression_error_is_value_error():
    assert issubclass(ExpressionError, ValueError)


def test_multiline_text_gives_one_line_message():
    with pytest.raises(ExpressionError) as info:
        parse_expression("sin(x)\n+ q", 1)
    assert "\n" not in str(info.value) and "'q'" in str(info.value)


# ----------------------------------------------------------------------------- security

def test_code_is_never_run(tmp_path, monkeypatch):
    marker = tmp_path / "pwned_x"
    payloads = [
        f"__import__('os').system('touch {marker}')",
        f"open('{marker}', 'w')",
        f"exec(\"open('{marker}', 'w')\")",
        f"eval(\"open('{marker}', 'w')\")",
        f"(lambda: open('{marker}', 'w'))()",
        "[c for c in ().__class__.__base__.__subclasses__()]",
        "x.__class__.__init__.__globals__",
        f"sin.__call__(open('{marker}', 'w'))",
    ]

    def forbidden(*args, **kwargs):
        raise AssertionError("parse_expression must not evaluate Python")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sympy, "sympify", forbidden)
    for payload in payloads:
        with pytest.raises(ExpressionError) as info:
            parse_expression(payload, 1)
        assert "\n" not in str(info.value)
    assert not marker.exists()
    # ordinary expressions parse with eval/exec/sympify unavailable
    assert parse_expression("sin(2*pi*x)^2 + 1/2", 1) is not None


# ----------------------------------------------------------------------------- calculus

def test_laplacian_of_sine_product():
    x1, x2 = coordinate_symbols(2)
    u = parse_expression("sin(pi*x)*sin(pi*y)", 2)
    lap = laplacian(u, 2)
    expected = -2 * sympy.pi**2 * sympy.sin(sympy.pi * x1) * sympy.sin(sympy.pi * x2)
    assert sympy.simplify(lap - expected) == 0
    f = parse_expression("2*pi^2*sin(pi*x)*sin(pi*y)", 2)
    assert sympy.simplify(lap + f) == 0  # -laplacian(u) = f
    X = points(100, 2)
    np.testing.assert_allclose(
        to_numpy(lap, 2)(X),
        -2 * np.pi**2 * np.sin(np.pi * X[:, 0]) * np.sin(np.pi * X[:, 1]), rtol=1e-12, atol=1e-12)


def test_laplacian_of_l_shape_singular_solution_vanishes():
    u = parse_expression(L_SHAPE_U, 2, name="u")
    X = l_shape_points()
    assert len(X) > 200
    lap_values = to_numpy(laplacian(u, 2), 2)(X)
    np.testing.assert_allclose(lap_values, 0.0, atol=1e-9)
    # the first and second derivatives themselves are O(1) or larger there
    scale = np.abs(to_numpy(sympy.diff(u, coordinate_symbols(2)[0], 2), 2)(X)).max()
    assert scale > 1.0
    # u vanishes on the re-entrant edge x = 0, y < 0 and is positive inside
    u_np = to_numpy(u, 2)
    edge = np.stack([np.zeros(20), -np.linspace(0.05, 1, 20)], axis=1)
    np.testing.assert_allclose(u_np(edge), 0.0, atol=1e-14)
    assert np.all(u_np(X) > 0)
    # r^(2/3) behaviour: u(t*p) = t^(2/3) u(p)
    np.testing.assert_allclose(u_np(0.5 * X), 0.5 ** (2 / 3) * u_np(X), rtol=1e-12)
    assert expressions_agree(laplacian(u, 2), 0, 2, points=X)


def test_source_term_of_div_a_grad_u_plus_c_u_against_hand_derivation():
    x, y = coordinate_symbols(2)
    u, a = parse_expression("x^2*y", 2), parse_expression("1 + x", 2)
    # a grad u = ((1 + x) 2xy, (1 + x) x^2); its divergence is 2y + 4xy + 0
    expected = -(2 * y + 4 * x * y) + 2 * x**2 * y
    assert sympy.expand(source_term(u, 2, a=a, c=2) - expected) == 0
    assert sympy.expand(source_term("x^2*y", 2, a="1 + x", c="2") - expected) == 0  # strings parse
    # a = 1, c = 0 is the Poisson source -laplacian(u) = -2y
    assert sympy.expand(source_term(u, 2) + 2 * y) == 0
    # in 1-D with a constant reaction: u = sin(pi x), -u'' + 3u = (pi^2 + 3) sin(pi x)
    f = source_term(parse_expression("sin(pi*x)", 1), 1, c=3)
    assert sympy.simplify(f - (sympy.pi**2 + 3) * sympy.sin(sympy.pi * coordinate_symbols(1)[0])) == 0


def test_source_term_of_harmonic_u_is_zero_only_where_points_show_it():
    # u = x^2 - y^2 in disguise: the cheap rewrites do not know sin^2 + cos^2 = 1
    u = parse_expression("x^2*sin(y)^2 + x^2*cos(y)^2 - y^2", 2, name="u")
    X = points(200, 2)
    assert source_term(u, 2) != 0 and source_term(u, 2, a=2) != 0
    assert source_term(u, 2, points=X) == 0
    assert source_term(u, 2, a=2, points=X) == 0
    # a u that is not harmonic keeps its source whatever the points
    w = parse_expression("x^2 + y^2", 2)
    assert source_term(w, 2, points=X) == -4


def test_gradient_values():
    x1, x2 = coordinate_symbols(2)
    assert gradient(parse_expression("x^2*y", 2), 2) == [2 * x1 * x2, x1**2]
    assert gradient(parse_expression("3", 2), 2) == [0, 0]
    assert gradient("x^3", 1) == [3 * x1**2]  # strings are parsed


def test_nonsmooth_derivatives_are_pointwise():
    u = parse_expression("abs(x)*max(x, y) + sign(y)", 2)
    grad = gradient(u, 2)
    lap = laplacian(u, 2)
    assert not any(g.has(sympy.DiracDelta) for g in grad) and not lap.has(sympy.DiracDelta)
    X = points(50, 2)
    x, y = X.T
    np.testing.assert_allclose(to_numpy(grad[1], 2)(X), np.abs(x) * (y > x), atol=1e-15)
    np.testing.assert_allclose(to_numpy(lap, 2)(X), 2 * np.sign(x) * (x > y), atol=1e-15)
    np.testing.assert_allclose(to_torch(lap, 2)(torch.tensor(X)).numpy(),
                               2 * np.sign(x) * (x > y), atol=1e-15)


def test_symbols_with_other_assumptions_are_canonicalized():
    plain = sympy.Symbol("x1")  # not real: would otherwise be a different symbol
    x1 = coordinate_symbols(1)[0]
    assert gradient(plain**2, 1) == [2 * x1]
    assert to_numpy(plain**2, 1)(np.array([[3.0]]))[0] == 9.0
    with pytest.raises(ExpressionError, match="'t'"):
        to_numpy(sympy.Symbol("t") * plain, 1)
    with pytest.raises(ExpressionError, match="x2"):
        gradient(coordinate_symbols(2)[1], 1)


def test_free_dimension():
    assert free_dimension(parse_expression("3 + pi", 4)) == 0
    assert free_dimension(parse_expression("x", 4)) == 1
    assert free_dimension(parse_expression("x + z", 4)) == 3
    assert free_dimension(parse_expression("x4*y", 4)) == 4
    assert free_dimension(parse_expression("y - x2 + x", 4)) == 1  # y - x2 cancels


# ----------------------------------------------------------------------------- torch

TORCH_TEXT = "sin(pi*x)*exp(y) + (x^2+y^2+1)^(1/3)*atan2(y, x+2) + abs(x)*y^3 + sqrt(2)*cosh(x*y)"


def test_torch_autograd_gradient_matches_symbolic_gradient():
    expr = parse_expression(TORCH_TEXT, 2)
    X = torch.tensor(points(64, 2), dtype=torch.float64, requires_grad=True)
    values = to_torch(expr, 2)(X)
    (grad,) = torch.autograd.grad(values.sum(), X)
    expected = np.stack([to_numpy(g, 2)(X.detach().numpy()) for g in gradient(expr, 2)], axis=1)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(values.detach().numpy(), to_numpy(expr, 2)(X.detach().numpy()),
                               rtol=1e-13, atol=1e-13)


def test_torch_rational_power_and_second_derivative():
    # x^(2/3) on tensors, and the autograd Laplacian equals the symbolic one
    u = parse_expression(L_SHAPE_U, 2)
    X = torch.tensor(l_shape_points(100), requires_grad=True)
    values = to_torch(u, 2)(X)
    (g,) = torch.autograd.grad(values.sum(), X, create_graph=True)
    lap = sum(torch.autograd.grad(g[:, i].sum(), X, retain_graph=True)[0][:, i] for i in range(2))
    np.testing.assert_allclose(lap.detach().numpy(), 0.0, atol=1e-9)
    np.testing.assert_allclose(values.detach().numpy(), to_numpy(u, 2)(X.detach().numpy()),
                               rtol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_keeps_dtype(dtype):
    expr = parse_expression(TORCH_TEXT, 2)
    X_np = points(20, 2)
    out = to_torch(expr, 2)(torch.tensor(X_np, dtype=dtype))
    assert out.dtype == dtype and out.shape == (20,)
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(out.double().numpy(), to_numpy(expr, 2)(X_np), rtol=tol, atol=tol)
    const = to_torch(parse_expression("3", 2), 2)(torch.zeros(5, 2, dtype=dtype))
    assert const.dtype == dtype


def test_constants_broadcast():
    X = points(7, 3)
    for text, value in [("3", 3.0), ("pi/2", np.pi / 2), ("sqrt(2) + sin(1)", 2**0.5 + np.sin(1))]:
        expr = parse_expression(text, 3)
        np.testing.assert_allclose(to_numpy(expr, 3)(X), np.full(7, value), rtol=1e-15)
        out = to_torch(expr, 3)(torch.tensor(X))
        assert out.shape == (7,)
        np.testing.assert_allclose(out.numpy(), np.full(7, value), rtol=1e-15)
    # a constant stays differentiable (zero gradient) when X requires grad
    Xt = torch.tensor(X, requires_grad=True)
    (grad,) = torch.autograd.grad(to_torch(parse_expression("3", 3), 3)(Xt).sum(), Xt)
    assert torch.all(grad == 0)
    # an expression of x1 only, in 3D
    np.testing.assert_allclose(to_numpy(parse_expression("x^2", 3), 3)(X), X[:, 0] ** 2)


def test_torch_output_does_not_alias_input():
    X = torch.tensor(points(5, 2))
    out = to_torch(parse_expression("y", 2), 2)(X)
    out += 1.0
    assert not torch.equal(out, X[:, 1])


def test_bad_point_shapes():
    f_np = to_numpy(parse_expression("x + y", 2), 2)
    f_t = to_torch(parse_expression("x + y", 2), 2)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        f_np(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        f_t(torch.zeros(4))
    with pytest.raises(TypeError):
        f_t(np.zeros((4, 2)))


# ----------------------------------------------------------------------------- agreement

def test_expressions_agree_true_cases():
    u = parse_expression("sin(pi*x)*sin(pi*y)", 2)
    f = parse_expression("2*pi^2*sin(pi*x)*sin(pi*y)", 2)
    assert expressions_agree(f, -laplacian(u, 2), 2)
    assert expressions_agree(parse_expression("sin(x)^2 + cos(x)^2", 1), 1, 1)
    assert expressions_agree("(x+1)^2", "x^2 + 2*x + 1", 1)
    # needs the numerical comparison: too large for the symbolic shortcut
    w = parse_expression("exp(x*y)*tanh(x - y^2)/(1 + x^2)", 2)
    x1, x2 = coordinate_symbols(2)
    raw = sympy.diff(w, x1, 2) + sympy.diff(w, x2, 2)
    assert expressions_agree(laplacian(w, 2), raw, 2)
    # given points; a singular point (the origin) is skipped
    X = np.vstack([np.zeros((1, 2)), l_shape_points(50)])
    assert expressions_agree(laplacian(parse_expression(L_SHAPE_U, 2), 2), 0, 2, points=X)


def test_expressions_agree_false_cases():
    u = parse_expression("sin(pi*x)*sin(pi*y)", 2)
    f_wrong_sign = parse_expression("-2*pi^2*sin(pi*x)*sin(pi*y)", 2)
    f_wrong_factor = parse_expression("pi^2*sin(pi*x)*sin(pi*y)", 2)
    assert not expressions_agree(f_wrong_sign, -laplacian(u, 2), 2)
    assert not expressions_agree(f_wrong_factor, -laplacian(u, 2), 2)
    assert not expressions_agree("x", "x + 1e-6", 1)
    assert not expressions_agree("sin(x)", "cos(x)", 1)
    assert not expressions_agree("x", "abs(x)", 1)
    assert expressions_agree("x", "abs(x)", 1, points=np.linspace(0, 1, 11)[:, None])
    # nowhere comparable (log of a negative number everywhere): not agreeing
    assert not expressions_agree("log(-1 - x^2)", "log(-1 - x^2)+1", 1)
    # tolerances
    assert expressions_agree("x", "x*(1 + 1e-12)", 1)
    assert not expressions_agree("x", "x*(1 + 1e-6)", 1, rtol=1e-8)


# ----------------------------------------------------------------------------- bounded cost

# Each must be refused (or accepted) within seconds, naming the limit (issue 11: each used to hang
# for minutes or end in a RecursionError).
BOUNDED_CASES = [
    ("(10^400)^(10^400)*x", "more than 400 digits, the limit"),
    ("sin(exp(exp(exp(5))))*x", "not finite in double precision"),
    ("sin(" * 100 + "x" + ")" * 100, f"nests more than {MAX_NESTING} function calls and powers"),
    ("sin(" * 150 + "x" + ")" * 150, f"nests more than {MAX_NESTING} function calls and powers"),
    ("^".join(["x"] * 40), f"nests more than {MAX_NESTING} function calls and powers"),
    ("-" * 300 + "x", f"more than {MAX_SYNTAX_DEPTH} levels, the limit"),
]


@pytest.mark.parametrize("text,fragment", BOUNDED_CASES, ids=["power", "sin_exp", "sin100", "sin150",
                                                               "tower40", "minus300"])
def test_costly_expressions_are_refused_quickly_naming_the_limit(text, fragment):
    t0 = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, 2, name="u")
    assert time.perf_counter() - t0 < 10  # minutes before the limits
    message = str(info.value)
    assert message.startswith("u '") and fragment in message and "\n" not in message, message


def test_expressions_at_the_limits_are_accepted():
    nested = "sin(" * MAX_NESTING + "x" + ")" * MAX_NESTING
    assert parse_expression(nested, 1).count(sympy.sin) == MAX_NESTING
    assert parse_expression("10^400*x", 1) == sympy.Integer(10) ** 400 * coordinate_symbols(1)[0]
    # a large but finite constant is folded to the same float as before
    value = to_numpy(parse_expression("sin(exp(600))*x", 1), 1)(np.array([[1.0]]))[0]
    assert value == pytest.approx(float(sympy.N(sympy.sin(sympy.exp(600)), 30)), rel=1e-14)


def test_free_dimension_parses_strings_instead_of_evaluating_them(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ExpressionError):
        free_dimension(f"__import__('os').system('touch {marker}')")
    assert not marker.exists()
    assert free_dimension("x3 + y") == 3
    with pytest.raises(ExpressionError, match="sympy expression or a string"):
        free_dimension(object())
