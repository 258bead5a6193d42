"""Interfaces of a jumping coefficient: their level functions, the network's |psi| inputs, points on
the interfaces, the PINN's flux condition and its Gram rows, and a kinked exact solution."""
import pytest
import sympy
import torch

import hrta_pde as H
from hrta_pde.engd import GramJacobian, GramTerm, _generic_features, point_features
from hrta_pde.errors import SettingError
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.interfaces import (InterfaceBatch, InterfaceInputs, flux_jump, interface_levels,
                                         interface_points)
from hrta_pde.poisson.solve import SolveConfig, load_run, plan_solve, solve
from hrta_pde.poisson.expressions import coordinate_symbols
from hrta_pde.poisson.spec import problem_from_dict

X, Y, Z = coordinate_symbols(3)

#: a = 1 left of x = 1/2 and 4 right of it; u continuous with a du/dx continuous (1 = 4 * 1/4): a kink.
KINK = {"name": "kink", "domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]},
        "solution": {"a": "where(x < 0.5, 1, 4)",
                     "u": "where(x < 0.5, x, 0.5 + (x - 0.5)/4 - 2.5*(x - 0.5)**2) * sin(pi*y)"},
        "boundary": {"type": "dirichlet"}}


def square(a: str, **solution) -> object:
    return problem_from_dict({"domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]},
                              "solution": {"a": a, "f": "1", **solution}, "boundary": {"type": "dirichlet", "g": "0"}})


def test_levels_are_read_off_where_and_sign_once_each_and_only_inside_the_domain():
    assert interface_levels(builtin_problem("poisson_jump_robin")) == (X - 0.5, Y - 0.5)
    assert interface_levels(builtin_problem("poisson_3d_layers")) == (Z - 0.5,)
    assert interface_levels(square("1 + x^2")) == ()
    assert interface_levels(square("where(x < 5, 1, 2)")) == ()  # the interface x = 5 misses the domain
    assert len(interface_levels(square("where(2*x < 1, 1, where(x > 0.5, 3, 2))"))) == 1  # 2x - 1 ~ x - 0.5
    assert interface_levels(square("2 + sign(x - y)")) == (X - Y,)
    circle = interface_levels(square("where(x^2 + y^2 < 0.25, 1, 10)"))
    assert len(circle) == 1 and sympy.expand(circle[0] - (X**2 + Y**2 - 0.25)) == 0


def test_levels_do_not_depend_on_the_global_random_state_and_are_put_in_a_smooth_form():
    small = square("where((x - 0.3)^2 + (y - 0.6)^2 < 0.0004, 1, 5)")  # a small inclusion
    found = set()
    for seed in range(4):
        torch.manual_seed(seed)
        found.add(interface_levels(problem_from_dict(small.spec)))
    assert len(found) == 1
    assert interface_levels(square("where((x - 0.5)^3 < 0, 1, 4)")) == (X - sympy.Rational(1, 2),)
    (disk,) = interface_levels(square("where(sqrt(x^2 + y^2) < 0.5, 1, 4)"))
    assert sympy.expand(disk - (X**2 + Y**2 - 0.25)) == 0  # no cone at the centre


def test_levels_that_cannot_be_inputs_are_refused_in_one_line():
    kinked = square("where(abs(x - 0.5) < 0.25, 1, 4)")
    with pytest.raises(SettingError, match=r"abs\(x - 0.5\) - 0.25 = 0, which is not smooth.*0.25 < x < 0.75"):
        plan_solve(kinked, SolveConfig(loss="pinn"))
    assert not plan_solve(kinked, SolveConfig(loss="ritz")).config.interface_inputs  # ritz goes without
    stripes = " + ".join(f"where(x < {k / 40}, 1, 0)" for k in range(1, 40))
    with pytest.raises(SettingError, match="39 interfaces in the domain, more than the 32"):
        plan_solve(square(f"1 + {stripes}"), SolveConfig(loss="pinn"))
    with pytest.raises(SettingError, match=r"jumps across x\^2 \+ y\^2 - 0.25 = 0 needs interface inputs"):
        plan_solve(builtin_problem("poisson_interface"), SolveConfig(loss="pinn", interface_inputs=False))


def test_inputs_and_their_forward_laplacian_equal_autograd():
    inputs = InterfaceInputs((X - 0.5, X**2 + Y**2 - 0.3), 2)
    x = torch.rand(25, 2, dtype=torch.float64)
    h = inputs(x)
    assert torch.allclose(h[:, 2], (x[:, 0] - 0.5).abs(), atol=0)
    assert torch.allclose(h[:, 3], (x[:, 0] ** 2 + x[:, 1] ** 2 - 0.3).abs(), atol=1e-15)
    torch.manual_seed(0)
    net = H.homotopy_fnn([4, 9, 7, 1], "tanh").double()
    net.apply_feature_transform(inputs)
    fast = point_features(net)
    assert fast.__qualname__.startswith("_mlp_forward_laplacian")
    params = {n: p.detach() for n, p in net.named_parameters()}
    slow = _generic_features(net, {}, True)
    a = torch.func.vmap(fast, in_dims=(None, 0))(params, x)
    b = torch.func.vmap(slow, in_dims=(None, 0))(params, x)
    for u, v in zip(a, b):
        assert torch.allclose(u, v, rtol=0, atol=1e-12)


def test_one_sided_inputs_continue_each_side_across_the_interface():
    inputs = InterfaceInputs((X - 0.5,), 2)
    x = torch.tensor([[0.2, 0.3], [0.7, 0.1]], dtype=torch.float64)
    with inputs.one_sided(0, 1):
        assert torch.allclose(inputs(x)[:, 2], x[:, 0] - 0.5)
    with inputs.one_sided(0, -1):
        assert torch.allclose(inputs(x)[:, 2], 0.5 - x[:, 0])
    assert inputs.side is None and torch.allclose(inputs(x)[:, 2], (x[:, 0] - 0.5).abs())
    with pytest.raises(ValueError, match="side"):
        inputs.one_sided(0, 2)


def test_interface_points_cover_each_level_set_inside_the_domain_with_a_on_either_side():
    # the interface x = 1/2 of this a stops at y = 1/2: above it a is 10 on both sides, and the
    # flux condition (continuity of du/dn there) is taken there too
    problem = square("where(x < 0.5, where(y < 0.5, 1, 10), where(y < 0.5, 10, 10))")
    inputs = InterfaceInputs(interface_levels(problem), 2)
    batches = interface_points(problem, inputs, 64, generator=torch.Generator().manual_seed(1))
    by_level = {inputs.levels[b.j]: b for b in batches}
    assert set(by_level) == {X - 0.5, Y - 0.5}
    vertical = by_level[X - 0.5]
    assert len(vertical.x) == 64
    assert torch.allclose(vertical.x[:, 0], torch.full((64,), 0.5, dtype=torch.float64), atol=1e-12)
    assert bool((vertical.x[:, 1] < 0.5).any()) and bool((vertical.x[:, 1] > 0.5).any())
    assert torch.equal(vertical.normal, torch.tensor([[1.0, 0.0]] * 64, dtype=torch.float64))
    below = vertical.x[:, 1] < 0.5
    assert torch.equal(vertical.a_plus, torch.full((64,), 10.0, dtype=torch.float64))
    assert torch.equal(vertical.a_minus, torch.where(below, 1.0, 10.0).to(torch.float64))
    horizontal = by_level[Y - 0.5]
    assert bool(((horizontal.x[:, 1] - 0.5).abs() < 1e-12).all())
    # a circle: Newton's steps land on it
    disk = square("where(x^2 + y^2 < 0.36, 1, 3)")
    inputs = InterfaceInputs(interface_levels(disk), 2)
    (b,) = interface_points(disk, inputs, 50, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(b.x.norm(dim=1), torch.full((50,), 0.6, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(b.normal, b.x / 0.6, atol=1e-12)
    assert torch.equal(b.a_plus, torch.full((50,), 3.0, dtype=torch.float64))


class _Abs(torch.nn.Module):
    """u = N(x, q) with N = 2 q + x2 (no parameters but one scale): u = 2 |x1 - 1/2| + x2."""

    def __init__(self, inputs):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
        self._input_transform = inputs

    def forward(self, x):
        h = self._input_transform(x)
        return (self.scale * h[:, 2] + h[:, 1])[:, None]


def test_flux_jump_takes_each_side_s_derivative():
    inputs = InterfaceInputs((X - 0.5,), 2)
    net = _Abs(inputs)
    x = torch.tensor([[0.5, 0.2], [0.5, 0.9]], dtype=torch.float64)
    normal = torch.tensor([[1.0, 0.0]] * 2, dtype=torch.float64)
    batch = InterfaceBatch(0, x, normal, torch.tensor([3.0, 3.0], dtype=torch.float64),
                           torch.tensor([1.0, 1.0], dtype=torch.float64))
    # du+/dn = 2, du-/dn = -2: a+ 2 - a- (-2) = 3 * 2 + 2 = 8
    assert torch.allclose(flux_jump(net, batch), torch.tensor([8.0, 8.0], dtype=torch.float64))


def test_gram_rows_of_the_flux_condition_equal_autograd():
    torch.manual_seed(3)
    inputs = InterfaceInputs((X - 0.5,), 2)
    net = H.homotopy_fnn([3, 6, 5, 1], "tanh").double()
    net.apply_feature_transform(inputs)
    y = torch.rand(9, dtype=torch.float64)
    x = torch.stack([torch.full_like(y, 0.5), y], dim=1)
    normal = torch.tensor([[1.0, 0.0]] * 9, dtype=torch.float64)
    a_plus, a_minus = torch.full((9,), 4.0, dtype=torch.float64), torch.ones(9, dtype=torch.float64)
    weight = torch.rand(9, dtype=torch.float64)
    term = GramTerm("interface0", x, weight, kind="jump", side=0, grad=a_plus[:, None] * normal,
                    other=-a_minus[:, None] * normal)
    jw = GramJacobian(net, [term])()
    r = flux_jump(net, InterfaceBatch(0, x, normal, a_plus, a_minus))
    params = list(net.parameters())
    for i in range(9):
        grads = torch.autograd.grad(r[i], params, retain_graph=True, allow_unused=True)
        row = weight[i].sqrt() * torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                                            for g, p in zip(grads, params)])
        assert torch.allclose(jw[i], row, rtol=0, atol=1e-12)


def test_pinn_and_ritz_reach_a_kinked_exact_solution():
    problem = problem_from_dict(KINK)
    base = dict(schedule="1:30@engd", test_points=2000, device="cpu", seed=0)
    pinn = solve(problem, SolveConfig.from_dict({**base, "loss": "pinn", "points": 600, "boundary_points": 120}))
    assert pinn.config.interface_inputs
    assert pinn.metrics["rel_l2"] < 1e-4
    ritz = solve(problem, SolveConfig.from_dict({**base, "loss": "ritz"}))
    smooth = solve(problem, SolveConfig.from_dict({**base, "loss": "ritz", "interface_inputs": False}))
    assert ritz.metrics["rel_l2"] < 1e-4 < smooth.metrics["rel_l2"]


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(SettingError, match="interface inputs"):
        plan_solve(builtin_problem("poisson_jump_robin"), SolveConfig(loss="pinn", interface_inputs=False))
    with pytest.raises(SettingError, match="no interface"):
        plan_solve(builtin_problem("poisson_2d_sin"), SolveConfig(loss="pinn", interface_inputs=True))
    with pytest.raises(SettingError, match="fnn"):
        plan_solve(builtin_problem("poisson_jump_robin"), SolveConfig.from_dict(
            {"loss": "ritz", "net": "paper", "interface_inputs": True, "schedule": "1:1"}))
    one_d = problem_from_dict({"domain": {"type": "interval", "xmin": 0, "xmax": 1},
                               "solution": {"a": "where(x < 0.3, 1, 2)", "f": "1"},
                               "boundary": {"type": "dirichlet", "g": "0"}})
    inputs = InterfaceInputs(interface_levels(one_d), 1)
    (b,) = interface_points(one_d, inputs, 50, generator=torch.Generator().manual_seed(0))
    assert b.x.shape == (1, 1) and float(b.x[0, 0]) == pytest.approx(0.3, abs=1e-14)


def test_a_run_with_interface_inputs_is_read_back_with_them(tmp_path):
    problem = problem_from_dict(KINK)
    cfg = SolveConfig.from_dict(dict(loss="ritz", schedule="1:3@engd", width=8, test_points=300, device="cpu"))
    res = solve(problem, cfg, checkpoint_dir=tmp_path)
    from hrta_pde.poisson.runfolder import write_run

    write_run(res, problem, tmp_path)
    _, saved_cfg, net, _ = load_run(tmp_path)
    assert saved_cfg.interface_inputs and net.linears[0].in_features == 3
    x = torch.rand(20, 2, dtype=torch.float64)
    assert torch.equal(net(x), res.net(x))


def test_forward_laplacian_with_interface_inputs_and_exact_dirichlet_data_equals_autograd():
    from hrta_pde.poisson.solve import Setup

    problem = problem_from_dict(KINK)
    plan = plan_solve(problem, SolveConfig.from_dict(dict(loss="pinn", width=10, points=50, device="cpu")))
    assert plan.config.interface_inputs and plan.hard_transform is not None
    net = Setup(problem, plan.config).net
    net.apply_output_transform(plan.hard_transform)
    feats = point_features(net)
    params = {n: p.detach() for n, p in net.named_parameters()}
    x = torch.rand(20, 2, dtype=torch.float64)
    u, g, lap = torch.func.vmap(feats, in_dims=(None, 0))(params, x)
    xr = x.clone().requires_grad_(True)
    ua = net(xr)[:, 0]
    (ga,) = torch.autograd.grad(ua.sum(), xr, create_graph=True)
    lapa = sum(torch.autograd.grad(ga[:, i].sum(), xr, retain_graph=True)[0][:, i] for i in range(2))
    assert torch.allclose(u, ua, rtol=0, atol=1e-12) and torch.allclose(g, ga, rtol=0, atol=1e-12)
    assert torch.allclose(lap, lapa, rtol=0, atol=1e-10)
