"""The general operator -div(a grad u) + c u = f, boundary data per part, Robin conditions.

Numbers are checked against closed forms computed by hand (or sympy) here, not by the code under
test.
"""
import math

import numpy as np
import pytest
import sympy
import torch

from hrta_pde.cli import main
from hrta_pde.poisson.expressions import ExpressionError, gradient, parse_expression, to_numpy, to_torch
from hrta_pde.poisson.losses import LossContext, pinn_loss, ritz_loss
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.spec import problem_from_dict

T = torch.float64
SQUARE = {"type": "rectangle", "xmin": [0.0, 0.0], "xmax": [1.0, 1.0]}
HOLED = {"type": "difference",
         "a": {"type": "rectangle", "name": "outer", "xmin": [0.0, 0.0], "xmax": [1.0, 1.0]},
         "b": {"type": "disk", "name": "hole", "center": [0.5, 0.5], "radius": 0.2}}


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- where(...)

def test_where_is_a_piecewise_with_torch_and_numpy_evaluation():
    e = parse_expression("where(x < 0, 1, 10) + where(0.2 < y <= 0.5 and not x > 0.3, x^2, 0.5)", 2)
    assert e.has(sympy.Piecewise)
    X = np.array([[-1.0, 0.3], [0.5, 0.3], [0.1, 0.4], [0.1, 0.9], [0.2, 0.2]])
    expect = np.array([1 + 1.0, 10 + 0.5, 10 + 0.01, 10 + 0.5, 10 + 0.5])  # by hand
    np.testing.assert_allclose(to_numpy(e, 2)(X), expect, rtol=0, atol=1e-15)
    xt = torch.tensor(X, dtype=T, requires_grad=True)
    out = to_torch(e, 2)(xt)
    assert out.dtype == T
    np.testing.assert_allclose(out.detach().numpy(), expect, rtol=0, atol=1e-15)
    (g,) = torch.autograd.grad(out.sum(), xt)  # d/dx of the x^2 piece only where it applies
    np.testing.assert_allclose(g[:, 0].numpy(), [-2, 0, 0.2, 0, 0], atol=1e-15)
    # the piecewise derivative from sympy agrees
    np.testing.assert_allclose(to_numpy(gradient(e, 2)[0], 2)(X), [-2, 0, 0.2, 0, 0], atol=1e-15)
    # float32 in, float32 out; constants keep the input dtype
    assert to_torch(parse_expression("where(x < 0, 0.1, 10)", 1), 1)(
        torch.tensor([[-1.0]], dtype=torch.float32)).dtype == torch.float32


@pytest.mark.parametrize("text, msg", [("where(x == 0, 1, 2)", "'=='"),
                                       ("where(x, 1, 2)", "not a comparison"),
                                       ("x < 1", "comparison"),
                                       ("where(x < 1, 2)", "3 arguments")])
def test_where_errors_are_one_line(text, msg):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text, 1, name="a")
    assert msg in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the operator

def test_exact_u_derives_f_of_the_general_operator():
    p = problem_from_dict({"domain": SQUARE, "solution": {
        "u": "sin(pi*x)*sin(pi*y)", "a": "1 + x^2", "c": "3"}})
    x, y = np.random.default_rng(0).uniform(0.05, 0.95, size=(2, 50))
    s, cx, cy = np.sin(np.pi * x) * np.sin(np.pi * y), np.cos(np.pi * x), np.sin(np.pi * y)
    # -div(a grad u) = -(a' u_x + a lap u), a' = 2x, u_x = pi cos(pi x) sin(pi y), lap u = -2 pi^2 u
    f = -(2 * x * np.pi * cx * cy + (1 + x**2) * (-2 * np.pi**2 * s)) + 3 * s
    np.testing.assert_allclose(p.f_numpy(np.column_stack([x, y])), f, rtol=1e-12, atol=1e-12)
    assert p.has_coefficient and p.has_reaction
    # a wrong f is still refused, and so is a plain -laplacian(u) that ignores a and c
    with pytest.raises(ProblemError, match=r"not -div\(a grad u\) \+ c u"):
        problem_from_dict({"domain": SQUARE, "solution": {
            "u": "sin(pi*x)*sin(pi*y)", "f": "2*pi^2*sin(pi*x)*sin(pi*y)", "a": "1 + x^2", "c": "3"}})


def test_piecewise_coefficient_with_flux_continuous_solution():
    # -(a u')' = 0 with a = 1 (x < 1/2), 10 (x > 1/2): u = x, then 1/2 + (x - 1/2)/10, flux a u' = 1
    p = problem_from_dict({"domain": {"type": "interval", "xmin": 0.0, "xmax": 1.0}, "solution": {
        "u": "where(x < 0.5, x, 0.5 + (x - 0.5)/10)", "a": "where(x < 0.5, 1, 10)"}})
    X = np.linspace(0.01, 0.99, 40)[:, None]
    np.testing.assert_allclose(p.f_numpy(X), 0.0, atol=1e-14)
    xt = torch.tensor(X, dtype=T)
    np.testing.assert_array_equal(p.a_torch(xt).numpy(), np.where(X[:, 0] < 0.5, 1.0, 10.0))
    np.testing.assert_array_equal(p.grad_a_torch(xt).numpy(), 0.0)


@pytest.mark.parametrize("sol, msg", [({"f": "1", "a": "x - 0.5"}, "solution.a 'x - 0.5' is"),
                                      ({"f": "1", "a": "0"}, "a > 0"),
                                      ({"f": "1", "c": "-1"}, "c >= 0"),
                                      ({"f": "1", "c": "where(y > 0.9, -2, 1)"}, "solution.c")])
def test_bad_coefficients_are_refused_in_one_line(sol, msg):
    with pytest.raises(ProblemError) as info:
        problem_from_dict({"domain": SQUARE, "solution": sol, "boundary": {"g": "0"}}, source="p.toml")
    text = str(info.value)
    assert msg in text and "\n" not in text and text.startswith("p.toml: ")


# ----------------------------------------------------------------------------- boundary parts

def holed(extra=None, **boundary):
    data = {"domain": HOLED, "solution": {"u": "x^2 + y", "a": "1 + x", "c": "2"},
            "boundary": boundary or {"outer": {"type": "dirichlet"},
                                     "hole": {"type": "robin", "alpha": "3"}}}
    data.update(extra or {})
    return problem_from_dict(data, source="holed.toml")


def test_part_names_and_per_part_data_from_the_exact_solution():
    p = holed()
    assert p.part_names == ("outer.x_min", "outer.x_max", "outer.y_min", "outer.y_max", "hole", "outer")
    assert p.boundary_kind == "mixed"
    b = p.sample_boundary(2000, generator=gen(3), dtype=T)
    x = b.x.numpy()
    on_hole = np.isclose(np.linalg.norm(x - 0.5, axis=1), 0.2, atol=1e-12)
    assert on_hole.mean() == pytest.approx(2 * math.pi * 0.2 / (4 + 2 * math.pi * 0.2), abs=0.03)
    np.testing.assert_array_equal(b.robin.numpy(), on_hole)
    np.testing.assert_array_equal(b.dirichlet.numpy(), ~on_hole)
    assert not b.neumann.any()
    assert ((b.dirichlet.int() + b.neumann.int() + b.robin.int()) == 1).all()
    # Dirichlet: g = u; Robin: h = a du/dn + alpha u with n = -(x - c)/r (out of the domain)
    xs, ys = x[:, 0], x[:, 1]
    u = xs**2 + ys
    np.testing.assert_allclose(b.g.numpy()[~on_hole], u[~on_hole], atol=1e-14)
    n = -(x - 0.5) / 0.2
    dudn = 2 * xs * n[:, 0] + n[:, 1]
    h = (1 + xs) * dudn + 3 * u
    np.testing.assert_allclose(b.h.numpy()[on_hole], h[on_hole], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.alpha.numpy(), np.where(on_hole, 3.0, 0.0))
    np.testing.assert_allclose(b.a.numpy(), 1 + xs, rtol=1e-15)


def test_box_sides_get_their_own_data_and_written_data_is_checked():
    p = problem_from_dict({"domain": SQUARE, "solution": {"f": "0"}, "boundary": {
        "x_min": {"type": "dirichlet", "g": "1"}, "x_max": {"type": "dirichlet", "g": "0"},
        "y_min": {"type": "neumann", "h": "0"}, "x2_max": {"type": "robin", "alpha": "2", "h": "x"}}})
    b = p.sample_boundary(800, generator=gen(4), dtype=T)
    x = b.x.numpy()
    left, right, top = np.isclose(x[:, 0], 0), np.isclose(x[:, 0], 1), np.isclose(x[:, 1], 1)
    np.testing.assert_array_equal(b.g.numpy(), np.where(left, 1.0, 0.0))
    np.testing.assert_array_equal(b.robin.numpy(), top & ~left & ~right)
    np.testing.assert_allclose(b.h.numpy()[top], x[top, 0], atol=1e-15)
    assert p.boundary_kind == "mixed"
    with pytest.raises(ProblemError, match=r"boundary.hole.h 'x' differs from a du/dn \+ alpha u"):
        holed(hole={"type": "robin", "alpha": "3", "h": "x"}, outer={"type": "dirichlet"})


@pytest.mark.parametrize("boundary, msg", [
    ({"outer": {"type": "dirichlet"}, "hol": {"type": "neumann"}}, "unknown boundary part 'hol'"),
    ({"outer": {"type": "dirichlet", "x_min": {"type": "neumann"}}, "hole": {"type": "dirichlet"}},
     "'outer.x_min' gets two conditions"),
    ({"outer": {"type": "dirichlet"}, "outer.x1_min": {"type": "neumann"}, "hole": {"type": "dirichlet"}},
     "'outer.x_min' gets two conditions"),
    ({"outer": {"type": "dirichlet"}}, "boundary part 'hole' has no condition"),
    ({"outer": {"type": "dirichlet"}, "hole": {"type": "robin"}}, "needs alpha"),
    ({"outer": {"type": "dirichlet", "h": "1"}, "hole": {"type": "dirichlet"}}, "takes only g"),
    ({"outer": {"type": "dirichlet"}, "hole": {"type": "robin", "alpha": "-1"}}, "must be >= 0"),
])
def test_bad_boundary_parts_get_one_line_and_exit_code_2(boundary, msg, tmp_path, capsys):
    import tomllib

    from hrta_pde.poisson.problem_toml import _toml_table

    lines = []
    _toml_table({"domain": HOLED, "solution": {"u": "x^2 + y"}, "boundary": boundary}, None, lines)
    path = tmp_path / "bad.toml"
    path.write_text("\n".join(lines) + "\n")
    assert tomllib.loads(path.read_text())["boundary"] == boundary
    assert main(["problems", "--show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_problems_show_prints_the_part_names(tmp_path, capsys):
    assert main(["problems", "--show", "poisson_lshape"]) == 0
    out = capsys.readouterr().out
    assert all(f"#   edge{i}: dirichlet" in out for i in range(6))
    p = holed()
    path = tmp_path / "h.toml"
    path.write_text(p.to_toml())
    assert main(["problems", "--show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "#   hole: robin" in out and "#   outer.y_max (also outer.x2_max): dirichlet" in out
    assert problem_from_dict(__import__("tomllib").loads(out)).spec == p.spec  # still a problem file


def test_polygon_edges_follow_the_file_order_even_clockwise():
    verts = [[0, 0], [0, 1], [1, 1], [1, 0]]  # clockwise: edge0 is the side x = 0
    p = problem_from_dict({"domain": {"type": "polygon", "vertices": verts}, "solution": {"f": "1"},
                           "boundary": {"edge0": {"type": "dirichlet", "g": "7"},
                                        "type": "dirichlet", "g": "0"}})
    b = p.sample_boundary(400, generator=gen(5), dtype=T)
    x = b.x.numpy()
    np.testing.assert_array_equal(b.g.numpy(), np.where(np.isclose(x[:, 0], 0), 7.0, 0.0))


def test_neumann_with_reaction_is_not_pure_neumann_and_needs_no_compatibility():
    base = {"domain": SQUARE, "solution": {"f": "1"}, "boundary": {"type": "neumann", "h": "0"}}
    with pytest.raises(ProblemError, match="incompatible"):
        problem_from_dict(base)
    p = problem_from_dict({**base, "solution": {"f": "1", "c": "1"}})
    assert not p.pure_neumann and p.boundary_kind == "neumann"


# ----------------------------------------------------------------------------- losses by hand

def _line_problem():
    # -((1 + x) u')' + 2 u = 1 on (0, 1); u(0) = 0, (1 + x) u' + 3 u = 5 at x = 1
    return problem_from_dict({"domain": {"type": "interval", "xmin": 0.0, "xmax": 1.0},
                              "solution": {"f": "1", "a": "1 + x", "c": "2"},
                              "boundary": {"x_min": {"type": "dirichlet", "g": "0"},
                                           "x_max": {"type": "robin", "alpha": "3", "h": "5"}}})


X = torch.tensor([[0.25], [0.5], [0.75]], dtype=T)


def test_ritz_loss_of_the_general_operator_by_hand():
    p = _line_problem()
    b = p.sample_boundary(2, sampler="uniform", dtype=T)
    ctx = LossContext(p, X, b, beta=10.0)
    assert ctx.a.tolist() == [1.25, 1.5, 1.75] and ctx.creact.tolist() == [2.0] * 3
    assert ctx.grad_a.tolist() == [[1.0]] * 3
    terms = ritz_loss(lambda x: x**2, ctx)  # u = x^2, u' = 2x
    xs = [0.25, 0.5, 0.75]
    energy = sum(0.5 * (1 + x) * (2 * x) ** 2 + 0.5 * 2 * x**4 - x**2 for x in xs) / 3
    assert float(terms["energy"]) == pytest.approx(energy, rel=1e-14)
    # |dOmega| = 2 end points: Robin 2 * (0.5 * 3 * 1^2) / 2, flux -2 * (5 * 1) / 2, penalty 0
    assert float(terms["robin"]) == pytest.approx(1.5, rel=1e-14)
    assert float(terms["neumann"]) == pytest.approx(-5.0, rel=1e-14)
    assert float(terms["dirichlet"]) == 0.0


def test_pinn_loss_of_the_general_operator_by_hand():
    p = _line_problem()
    b = p.sample_boundary(2, sampler="uniform", dtype=T)
    terms = pinn_loss(lambda x: x**3 + 1, LossContext(p, X, b, beta=10.0))  # u' = 3x^2, u'' = 6x
    xs = [0.25, 0.5, 0.75]
    res = [-(1 + x) * 6 * x - 1.0 * 3 * x**2 + 2 * (x**3 + 1) - 1 for x in xs]
    assert float(terms["residual"]) == pytest.approx(sum(r * r for r in res) / 3, rel=1e-14)
    assert float(terms["dirichlet"]) == pytest.approx(10.0 * 1.0, rel=1e-14)  # u(0) - 0 = 1
    # at x = 1, n = +1: a u' + alpha u - h = 2*3 + 3*2 - 5 = 7
    assert float(terms["robin"]) == pytest.approx(10.0 * 49.0, rel=1e-14)
    assert "neumann" not in terms


def test_plain_poisson_losses_are_unchanged_bit_for_bit():
    p = builtin_problem("poisson_mixed_square")
    x = p.sample_interior(64, generator=gen(1), dtype=T)
    b = p.sample_boundary(64, generator=gen(2), dtype=T)
    ctx = LossContext(p, x, b, beta=7.0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(T)
    xr, xb = x.detach().requires_grad_(True), b.x.detach().requires_grad_(True)
    u = net(xr)[:, 0]
    (gu,) = torch.autograd.grad(u.sum(), xr, create_graph=True)
    ub = net(xb)[:, 0]
    dmask = b.dirichlet.to(T)
    nmask = 1.0 - dmask
    f = p.f_torch(x)
    old_ritz = {"energy": p.measure * (0.5 * (gu**2).sum(dim=1) - f * u).mean(),
                "dirichlet": 7.0 * p.boundary_measure * (dmask * (ub - b.g) ** 2).mean(),
                "neumann": -p.boundary_measure * (nmask * b.h * ub).mean()}
    new = ritz_loss(net, ctx)
    assert set(new) == set(old_ritz)
    for k in old_ritz:
        assert torch.equal(new[k], old_ritz[k]), k
    lap = sum(torch.autograd.grad(gu[:, i].sum(), xr, create_graph=True)[0][:, i] for i in range(2))
    (gb,) = torch.autograd.grad(ub.sum(), xb, create_graph=True)
    dudn = (gb * b.normal).sum(dim=1)
    old_pinn = {"residual": ((-lap - f) ** 2).mean(),
                "dirichlet": 7.0 * (dmask * (ub - b.g) ** 2).sum() / dmask.sum(),
                "neumann": 7.0 * (nmask * (dudn - b.h) ** 2).sum() / nmask.sum()}
    new = pinn_loss(net, ctx)
    assert set(new) == set(old_pinn)
    for k in old_pinn:
        assert torch.equal(new[k], old_pinn[k]), k


def test_ritz_energy_metric_of_the_general_operator_against_sympy():
    from hrta_pde.poisson.metrics import evaluate

    p = problem_from_dict({"domain": {"type": "interval", "xmin": 0.0, "xmax": 1.0},
                           "solution": {"u": "sin(pi*x)", "a": "1 + x", "c": "2"}})
    s = sympy.Symbol("s")
    u = sympy.sin(sympy.pi * s)
    # with u = 0 at both ends, int f u = int a u'^2 + c u^2, so E(u*) = -1/2 int (a u'^2 + c u^2)
    exact = float(-sympy.integrate((1 + s) * sympy.diff(u, s) ** 2 + 2 * u**2, (s, 0, 1)) / 2)
    x = ((torch.arange(20000, dtype=T) + 0.5) / 20000)[:, None]  # midpoint rule
    net = torch.nn.Linear(1, 1).to(T)
    m = evaluate(net, x, p)
    assert m["ritz_energy_exact"] == pytest.approx(exact, rel=1e-7)


def test_square_with_four_holes_has_exact_measures_and_five_parts():
    p = builtin_problem("poisson_square_holes")
    assert p.measure_exact and p.measure == pytest.approx(4 - 4 * math.pi * 0.2**2, rel=1e-14)
    assert p.boundary_measure == pytest.approx(8 + 4 * 2 * math.pi * 0.2, rel=1e-14)
    assert set(p.part_names) >= {"outer", "hole1", "hole2", "hole3", "hole4"}
    b = p.sample_boundary(1000, generator=gen(9), dtype=T)
    outer = b.x.abs().max(dim=1).values > 1 - 1e-12
    assert (b.g[outer] == 1).all() and (b.g[~outer] == 0).all() and b.dirichlet.all()
