"""Each loss against a hand computation, and the metrics against exact integrals."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hrta_pde.poisson.losses import (LossContext, check_loss, gradient, laplacian, l2_loss, pinn_loss,
                             ritz_loss, sobolev_loss)
from hrta_pde.poisson.metrics import error_metrics, net_values

T = torch.float64


def fake_problem(f, u=None, grad=None, measure=1.0, bmeasure=2.0, pure_neumann=False):
    return SimpleNamespace(
        f_torch=lambda x: f(x), u_torch=(lambda x: u(x)) if u else None,
        grad_u_torch=(lambda x: grad(x)) if grad else None, measure=measure,
        boundary_measure=bmeasure, pure_neumann=pure_neumann, has_exact=u is not None, name="fake")


def boundary(x, g, h=None, dirichlet=None, normal=None):
    n = x.shape[0]
    return SimpleNamespace(
        x=x, g=g, h=torch.zeros(n, dtype=T) if h is None else h,
        dirichlet=torch.ones(n, dtype=torch.bool) if dirichlet is None else dirichlet,
        normal=torch.ones_like(x) if normal is None else normal)


def square(x):  # u(x) = x^2 as a "network"
    return x**2


X = torch.tensor([[0.25], [0.5], [0.75]], dtype=T)


def test_ritz_terms_by_hand():
    prob = fake_problem(lambda x: torch.ones(x.shape[0], dtype=T))
    xb = torch.tensor([[0.0], [1.0]], dtype=T)
    ctx = LossContext(prob, X, boundary(xb, torch.zeros(2, dtype=T)), beta=10.0)
    terms = ritz_loss(square, ctx)
    # 0.5 |2x|^2 - 1 * x^2 = x^2 ; mean over 0.25, 0.5, 0.75
    assert float(terms["energy"]) == pytest.approx((0.0625 + 0.25 + 0.5625) / 3, rel=1e-15)
    # beta |dOmega| mean((u - g)^2) = 10 * 2 * (0 + 1) / 2
    assert float(terms["dirichlet"]) == pytest.approx(10.0, rel=1e-15)
    assert set(terms) == {"energy", "dirichlet"}  # energy is not squared: it can be negative


def test_ritz_neumann_and_mixed_by_hand():
    prob = fake_problem(lambda x: torch.zeros(x.shape[0], dtype=T), bmeasure=2.0)
    xb = torch.tensor([[0.0], [1.0]], dtype=T)
    mask = torch.tensor([True, False])
    b = boundary(xb, torch.tensor([1.0, 0.0], dtype=T), h=torch.tensor([0.0, 3.0], dtype=T), dirichlet=mask)
    terms = ritz_loss(square, LossContext(prob, X, b, beta=4.0))
    assert float(terms["dirichlet"]) == pytest.approx(4.0 * 2.0 * ((0 - 1) ** 2 + 0) / 2)
    assert float(terms["neumann"]) == pytest.approx(-2.0 * (3.0 * 1.0) / 2)  # -|dO| mean(1_N h u)


def test_ritz_energy_of_exact_solution_converges_to_exact_energy():
    # u = sin(pi x) on (0, 1), f = pi^2 sin(pi x): E(u) = pi^2/4 - pi^2/2 = -pi^2/4
    n = 20000
    x = ((torch.arange(n, dtype=T) + 0.5) / n)[:, None]  # midpoint rule
    prob = fake_problem(lambda x: math.pi**2 * torch.sin(math.pi * x[:, 0]))
    ctx = LossContext(prob, x, boundary(torch.tensor([[0.0], [1.0]], dtype=T), torch.zeros(2, dtype=T)), beta=1.0)
    terms = ritz_loss(lambda z: torch.sin(math.pi * z), ctx)
    assert float(terms["energy"]) == pytest.approx(-math.pi**2 / 4, rel=1e-8)
    assert float(terms["dirichlet"]) == pytest.approx(0.0, abs=1e-30)


def test_sobolev_and_l2_by_hand():
    prob = fake_problem(lambda x: 0 * x[:, 0], u=lambda x: x[:, 0], grad=lambda x: torch.ones_like(x))
    b = boundary(torch.tensor([[0.0]], dtype=T), torch.zeros(1, dtype=T))
    ctx = LossContext(prob, X, b, beta=0.0)
    terms = sobolev_loss(square, ctx)
    x = X[:, 0].numpy()
    assert float(terms["value"]) == pytest.approx(np.mean((x**2 - x) ** 2), rel=1e-14)
    assert float(terms["gradient"]) == pytest.approx(np.mean((2 * x - 1) ** 2), rel=1e-14)
    assert float(l2_loss(square, ctx)["value"]) == pytest.approx(np.mean((x**2 - x) ** 2), rel=1e-14)


def test_pinn_by_hand():
    # u = x^3: -u'' = -6x. With f = -6x the residual vanishes; with f = 0 it is mean(36 x^2).
    cube = lambda z: z**3  # noqa: E731
    xb = torch.tensor([[0.0], [1.0]], dtype=T)
    b = boundary(xb, torch.tensor([0.0, 2.0], dtype=T))
    ok = LossContext(fake_problem(lambda x: -6 * x[:, 0]), X, b, beta=3.0)
    terms = pinn_loss(cube, ok)
    assert float(terms["residual"]) == pytest.approx(0.0, abs=1e-25)
    assert float(terms["dirichlet"]) == pytest.approx(3.0 * (0 + 1) / 2)
    zero = LossContext(fake_problem(lambda x: 0 * x[:, 0]), X, b, beta=3.0)
    assert float(pinn_loss(cube, zero)["residual"]) == pytest.approx(np.mean(36 * X[:, 0].numpy() ** 2))


def test_pinn_neumann_residual_uses_normal_derivative():
    xb = torch.tensor([[0.0], [1.0]], dtype=T)
    normal = torch.tensor([[-1.0], [1.0]], dtype=T)
    b = boundary(xb, torch.zeros(2, dtype=T), h=torch.tensor([0.0, 2.0], dtype=T),
                 dirichlet=torch.tensor([False, False]), normal=normal)
    ctx = LossContext(fake_problem(lambda x: -2 + 0 * x[:, 0], pure_neumann=True), X, b, beta=1.0)
    terms = pinn_loss(square, ctx)  # u = x^2: du/dn = 0 at 0 and 2 at 1: matches h
    assert float(terms["neumann"]) == pytest.approx(0.0, abs=1e-28)
    assert float(terms["residual"]) == pytest.approx(0.0, abs=1e-28)
    assert float(terms["mean"]) == pytest.approx(np.mean(X[:, 0].numpy() ** 2) ** 2)


def test_laplacian_matches_closed_form_in_3d():
    x = torch.rand(50, 3, dtype=T, requires_grad=True)
    u = torch.sin(x[:, 0]) * x[:, 1] ** 2 * torch.exp(x[:, 2])
    lap = laplacian(gradient(u, x), x)
    xs = x.detach()
    exact = (-torch.sin(xs[:, 0]) * xs[:, 1] ** 2 + 2 * torch.sin(xs[:, 0]) + torch.sin(xs[:, 0]) * xs[:, 1] ** 2) \
        * torch.exp(xs[:, 2])
    torch.testing.assert_close(lap.detach(), exact, rtol=1e-12, atol=1e-12)


def test_loss_refusals():
    prob = SimpleNamespace(has_exact=False)
    with pytest.raises(ValueError, match="second derivatives"):
        check_loss("pinn", SimpleNamespace(has_exact=True), "relu")
    with pytest.raises(ValueError, match="exact solution"):
        check_loss("sobolev", prob, "relu3")
    with pytest.raises(ValueError, match="ritz, sobolev, pinn, l2"):
        check_loss("energy", prob, "relu3")
    assert check_loss("PINN", SimpleNamespace(has_exact=True), "relu2") == "pinn"


def test_metrics_against_exact_integrals():
    # u* = sin(pi x) on (0, 1); u = 1.1 u*: every relative error is exactly 0.1.
    n = 4000
    x = ((torch.arange(n, dtype=T) + 0.5) / n)
    us, gs = torch.sin(math.pi * x), math.pi * torch.cos(math.pi * x)[:, None]
    m = error_metrics(1.1 * us, 1.1 * gs, us, gs, measure=1.0)
    assert m["rel_l2"] == pytest.approx(0.1, rel=1e-12)
    assert m["rel_h1_semi"] == pytest.approx(0.1, rel=1e-12)
    assert m["max_error"] == pytest.approx(0.1, rel=1e-6)
    assert m["l2"] == pytest.approx(0.1 * math.sqrt(0.5), rel=1e-6)          # sqrt(int (0.1 sin)^2)
    assert m["h1_semi"] == pytest.approx(0.1 * math.pi * math.sqrt(0.5), rel=1e-6)


class _Quadratic(torch.nn.Module):
    """u(x) = w x1^2 + 3 x2, recording the mode it was called in."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0, dtype=T))
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return (self.w * x[:, 0] ** 2 + 3 * x[:, 1])[:, None]


def test_net_values_against_the_closed_form_gradient():
    net, x = _Quadratic(), torch.tensor([[1.0, 2.0], [-3.0, 0.5]], dtype=T)
    with torch.no_grad():  # the gradient is taken even where the caller switched autograd off
        u, g = net_values(net, x)
    assert torch.equal(u, torch.tensor([8.0, 19.5], dtype=T))
    assert torch.equal(g, torch.tensor([[4.0, 3.0], [-12.0, 3.0]], dtype=T))  # (2 w x1, 3)
    assert not u.requires_grad and not g.requires_grad and not x.requires_grad
    u2, none = net_values(net, x, gradient=False)
    assert torch.equal(u2, u) and none is None
    assert net.modes == [False, False] and net.training  # eval mode while evaluated, restored after


def test_metrics_scale_with_measure_not_point_count():
    # On (0, 2): ||0.1||_{L2} = 0.1 sqrt(2), whatever the number of points.
    for n in (100, 1000):
        x = torch.rand(n, dtype=T) * 2
        us = 1 + x
        m = error_metrics(us + 0.1, torch.ones(n, 1, dtype=T), us, torch.ones(n, 1, dtype=T), measure=2.0)
        assert m["l2"] == pytest.approx(0.1 * math.sqrt(2), rel=1e-12)


def test_metrics_remove_mean_for_pure_neumann():
    x = torch.rand(500, dtype=T)
    us = torch.cos(math.pi * x)
    g = -math.pi * torch.sin(math.pi * x)[:, None]
    m = error_metrics(us + 5.0, g, us, g, measure=1.0, remove_mean=True)
    assert m["rel_l2"] < 1e-14 and m["max_error"] < 1e-14
