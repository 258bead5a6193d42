"""The energy natural gradient: forward Laplacian, Gram matrices, exact Newton steps, resume."""
import math

import pytest
import torch

import hrta_pde as H
from hrta_pde.engd import (EngdError, EngdOptions, GramJacobian, GramTerm, check_memory,
                           natural_direction, point_features)
from hrta_pde.poisson.losses import GRAM_FORMS, LOSS_FUNCTIONS, LossContext
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.solve import SolveConfig, solve
from hrta_pde.io.checkpoint import load_checkpoint



def autograd_features(net, x):
    x = x.clone().requires_grad_(True)
    u = net(x)[:, 0]
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = sum(torch.autograd.grad(g[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(x.shape[1]))
    return u, g, lap


def params_of(net):
    return {n: p.detach() for n, p in net.named_parameters()}


@pytest.mark.parametrize("phi", ["tanh", "relu3", "sin", "relu2"])
@pytest.mark.parametrize("per_layer", [False, True])
def test_forward_laplacian_equals_autograd(phi, per_layer):
    torch.manual_seed(0)
    net = H.homotopy_fnn([3, 12, 9, 1], phi, s=0.7, per_layer=per_layer).double()
    feats = point_features(net)
    assert feats.__qualname__.startswith("_mlp_forward_laplacian")  # the fast path, not torch.func
    x = torch.rand(40, 3, dtype=torch.float64) * 2 - 1
    u, g, lap = torch.func.vmap(feats, in_dims=(None, 0))(params_of(net), x)
    ua, ga, lapa = autograd_features(net, x)
    assert torch.allclose(u, ua, rtol=0, atol=1e-12)
    assert torch.allclose(g, ga, rtol=0, atol=1e-12)
    assert torch.allclose(lap, lapa, rtol=0, atol=1e-12)


def test_generic_features_with_an_output_transform_equal_autograd():
    torch.manual_seed(1)
    net = H.homotopy_fnn([2, 10, 10, 1], "tanh").double()
    net.apply_output_transform(lambda x, out: torch.sin(x[:, :1]) + x[:, :1] * x[:, 1:] * out)
    feats = point_features(net)
    assert not feats.__qualname__.startswith("_mlp_forward_laplacian")
    x = torch.rand(30, 2, dtype=torch.float64)
    u, g, lap = torch.func.vmap(feats, in_dims=(None, 0))(params_of(net), x)
    ua, ga, lapa = autograd_features(net, x)
    assert torch.allclose(u, ua, atol=1e-12) and torch.allclose(g, ga, atol=1e-12)
    assert torch.allclose(lap, lapa, atol=1e-12)


def test_gram_matrix_equals_autograd_jacobian_column_by_column():
    torch.manual_seed(2)
    net = H.homotopy_fnn([2, 8, 8, 1], "tanh").double()
    x, xb = torch.rand(15, 2, dtype=torch.float64), torch.rand(7, 2, dtype=torch.float64)
    w1, w2, w3 = torch.rand(15, dtype=torch.float64), torch.rand(7, dtype=torch.float64), torch.rand(15, dtype=torch.float64)
    cv, cg, cl = torch.randn(15, dtype=torch.float64), torch.randn(15, 2, dtype=torch.float64), torch.randn(15, dtype=torch.float64)
    normal = torch.randn(7, 2, dtype=torch.float64)
    terms = [GramTerm("pde", x, w1, value=cv, grad=cg, lap=cl),
             GramTerm("flux", xb, w2, grad=normal),
             GramTerm("grad", x, w3, kind="gradient"),
             GramTerm("mean", x, 0.7, kind="mean")]
    jw = GramJacobian(net, terms)()
    ps = list(net.parameters())
    u, g, lap = autograd_features(net, x)
    ub, gb, _ = autograd_features(net, xb)
    rows = [w1.sqrt() * (cv * u + (cg * g).sum(1) + cl * lap), w2.sqrt() * (normal * gb).sum(1),
            (w3.sqrt()[:, None] * g).reshape(-1), math.sqrt(0.7) * u.mean()[None]]
    ref = []
    for r in torch.cat(rows):
        grads = torch.autograd.grad(r, ps, retain_graph=True, allow_unused=True)
        ref.append(torch.cat([(gr if gr is not None else torch.zeros_like(p)).reshape(-1) for gr, p in zip(grads, ps)]))
    ref = torch.stack(ref)
    assert jw.shape == ref.shape
    assert torch.allclose(jw, ref, rtol=0, atol=1e-12)
    assert torch.allclose(jw.T @ jw, ref.T @ ref, rtol=0, atol=1e-11)


@pytest.mark.parametrize("r,p", [(6, 20), (30, 8)])
def test_natural_direction_is_the_pseudo_inverse_and_never_nan(r, p):
    torch.manual_seed(3)
    jw = torch.randn(r, 3, dtype=torch.float64) @ torch.randn(3, p, dtype=torch.float64)  # rank 3
    g = torch.randn(p, dtype=torch.float64)
    d = natural_direction(jw, g)
    G = jw.T @ jw
    assert torch.allclose(d, torch.linalg.pinv(G, hermitian=True, rtol=1e-10) @ g, atol=1e-8)
    mu = 0.3
    dm = natural_direction(jw, g, damping=mu)
    lam, v = torch.linalg.eigh(G)
    keep = lam > 1e-10 * lam.max()
    ref = v[:, keep] @ ((v[:, keep].T @ g) / (lam[keep] + mu))
    assert torch.allclose(dm, ref, atol=1e-10)
    zero = natural_direction(torch.zeros(r, p, dtype=torch.float64), g)
    assert torch.equal(zero, torch.zeros(p, dtype=torch.float64))


def linear_model_context(loss, problem_name=None, gauss=False, interfaces=False):
    """A network linear in its trainable parameters (frozen random features, trained last layer);
    with ``gauss`` on Gauss points with quadrature weights; with ``interfaces`` the network takes
    the interface inputs of the problem and the context the points on its interfaces."""
    from hrta_pde.poisson.interfaces import InterfaceInputs, interface_levels, interface_points

    problem = builtin_problem(problem_name or ("poisson_mixed_square" if loss == "pinn" else "poisson_2d_sin"))
    torch.manual_seed(4)
    inputs = InterfaceInputs(interface_levels(problem), problem.dim) if interfaces else None
    net = H.homotopy_fnn([problem.dim + (inputs.extra if inputs else 0), 8, 1], "tanh").double()
    for p in net.linears[0].parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        net.linears[0].weight.mul_(3.0)
        net.linears[0].bias.uniform_(-2, 2)
    gen = torch.Generator().manual_seed(0)
    if inputs is not None:
        net.apply_feature_transform(inputs)
        batches = interface_points(problem, inputs, 40, generator=torch.Generator().manual_seed(5))
        kw = dict(generator=torch.Generator().manual_seed(0), sampler="sobol", dtype=torch.float64, device="cpu")
        return net, LossContext(problem, problem.sample_interior(200, **kw), problem.sample_boundary(80, **kw),
                                beta=10.0, interfaces=batches)
    if gauss:
        # 400 points: cells on the interfaces of poisson_jump_robin (the rule then is the plain one)
        x, w, boundary = problem.quadrature(400 if problem.has_coefficient else 200, 80, dtype=torch.float64)
        return net, LossContext(problem, x, boundary, beta=10.0, weights=w)
    kw = dict(generator=gen, sampler="sobol", dtype=torch.float64, device="cpu")
    ctx = LossContext(problem, problem.sample_interior(200, **kw), problem.sample_boundary(80, **kw), beta=10.0)
    return net, ctx


@pytest.mark.parametrize("loss,problem_name,gauss", [
    ("ritz", None, False), ("sobolev", None, False), ("pinn", None, False), ("l2", None, False),
    ("ritz", "poisson_jump_robin", False), ("pinn", "poisson_jump_robin", False),
    ("ritz", "poisson_reaction_holes", False), ("pinn", "poisson_reaction_holes", False),
    # quadrature weights: a box, a polygon, Robin parts, a pure Neumann problem (weighted mean row)
    ("ritz", None, True), ("sobolev", None, True), ("pinn", None, True), ("l2", None, True),
    ("ritz", "poisson_lshape", True), ("pinn", "poisson_jump_robin", True), ("pinn", "poisson_3d_layers", True),
    ("ritz", "poisson_neumann_square", True), ("pinn", "poisson_neumann_square", True),
    # interface inputs, and the PINN's flux condition on the interfaces (its jump rows)
    ("pinn", "poisson_jump_robin", "interfaces"), ("pinn", "poisson_interface", "interfaces"),
    ("ritz", "poisson_interface", "interfaces")])
def test_gram_form_is_the_hessian_and_one_step_lands_on_the_minimiser(loss, problem_name, gauss):
    if gauss == "interfaces":
        net, ctx = linear_model_context(loss, problem_name, interfaces=True)
        assert ctx.interfaces or loss != "pinn"
    else:
        net, ctx = linear_model_context(loss, problem_name, gauss)
    params = [p for p in net.parameters() if p.requires_grad]
    fn = LOSS_FUNCTIONS[loss]
    theta0 = torch.cat([p.detach().reshape(-1) for p in params])
    jac = GramJacobian(net, GRAM_FORMS[loss](ctx))
    jw = jac()
    G = jw.T @ jw
    hess = torch.autograd.functional.hessian(
        lambda th: _loss_with_last_layer(net, fn, ctx, th), theta0)
    assert torch.allclose(G, hess, rtol=1e-10, atol=1e-10 * hess.abs().max())
    # one ENGD step with eta = 1 is Newton's step on the quadratic: it lands on the minimiser
    sched = H.parse_schedule("1:1@engd")
    H.train(net, lambda: fn(net, ctx), sched, parameters=params, jacobian=jac)
    theta1 = torch.cat([p.detach().reshape(-1) for p in params])
    g0 = torch.autograd.functional.jacobian(lambda th: _loss_with_last_layer(net, fn, ctx, th), theta0)
    expected = theta0 - torch.linalg.lstsq(hess, g0).solution
    # to 1e-10, or to the forward error of two solves of systems with condition number cond(H),
    # 100 cond(H) eps, when larger (the L2 Gram of these 8 tanh features has cond 1e6: any two
    # solvers differ by ~1e-10 there; with the interfaces of poisson_jump_robin, cond 3.4e4, the
    # difference measured 2 to 8 cond eps over repeated runs and passed 20 cond eps once in CI)
    eig = torch.linalg.eigvalsh(hess)
    tol = max(1e-10, 100 * float(eig.max() / eig.min()) * torch.finfo(torch.float64).eps)
    assert torch.allclose(theta1, expected, rtol=0, atol=tol * expected.abs().max())
    grad1 = torch.autograd.functional.jacobian(lambda th: _loss_with_last_layer(net, fn, ctx, th), theta1)
    assert grad1.abs().max() < 1e-9 * g0.abs().max()


def _loss_with_last_layer(net, fn, ctx, theta):
    """The loss as a function of the last layer's (weight, bias) flattened into theta."""
    first = dict(net.linears[0].named_parameters())
    params = {"linears.0.weight": first["weight"], "linears.0.bias": first["bias"],
              "linears.1.weight": theta[:-1].reshape(1, -1), "linears.1.bias": theta[-1:]}
    buffers = dict(net.named_buffers())

    def call(x):
        return torch.func.functional_call(net, (params, buffers), (x,))

    return sum(fn(call, ctx).values())


def test_schedule_with_optimizers_parses_and_round_trips():
    sched = H.parse_schedule("0.5:100,1:50:0.5@lbfgs,1:<=20@engd", lr=2e-3)
    assert [st.optimizer for st in sched.stages] == ["adam", "lbfgs", "engd"]
    assert sched.stage_lr(1) == 0.5 and sched.stage_lr(0) == 2e-3
    assert H.parse_schedule("1:5@lbfgs").stage_lr(0) == 1.0
    assert sched.optimizers == ("adam", "lbfgs", "engd")
    assert H.Schedule.from_dict(sched.to_dict()) == sched
    with pytest.raises(H.ScheduleError, match="optimizer 'sgd' is unknown"):
        H.parse_schedule("1:10@sgd")


def test_engd_refuses_a_jacobian_that_does_not_fit_in_memory():
    class Huge:
        rows, size = 10**7, 10**6

        def bytes_needed(self, itemsize):
            return itemsize * self.rows * self.size

    with pytest.raises(EngdError, match=r"10000000 rows x 1000000 parameters.*fewer points \(points, boundary_points\)") as err:
        check_memory(Huge(), torch.float64, EngdOptions())
    assert "fewer points (--points, --boundary-points) or a smaller network (--width, --depth)" in err.value.with_flags()


def test_engd_without_gram_terms_is_refused_before_training():
    net = H.homotopy_fnn([1, 4, 1], "tanh").double()
    with pytest.raises(EngdError, match="declares no Gram matrix"):
        H.train(net, lambda: net(torch.zeros(1, 1, dtype=torch.float64)).sum(), H.parse_schedule("1:3@engd"))


def test_pinn_engd_reaches_high_accuracy_on_the_1d_problem():
    res = solve(builtin_problem("poisson_1d"),
                SolveConfig.from_dict(dict(loss="pinn", schedule="1:40@engd", phi="tanh", width=16, depth=1,
                                           points=200, boundary_points=2, device="cpu", test_points=2000)))
    assert res.metrics["rel_l2"] < 1e-6, res.metrics
    assert set(res.history.column("optimizer")) == {"engd"}


def test_mixed_optimizer_schedule_resumes_bit_for_bit(tmp_path):
    problem = builtin_problem("poisson_1d")
    cfg = SolveConfig.from_dict(dict(loss="pinn", schedule="0.5:15,1:12@lbfgs,1.2:6@engd", phi="tanh", width=10,
                                     depth=2, points=120, boundary_points=2, test_points=500, eval_every=5,
                                     checkpoint_every=4, device="cpu"))
    full = solve(problem, cfg)
    assert full.history.switches == [16, 28]
    for stop in (20, 30):  # inside the L-BFGS stage, inside the ENGD stage
        run = tmp_path / f"part{stop}"
        run.mkdir()
        part = solve(problem, cfg, checkpoint_dir=run, stop_at=stop)
        assert part.metrics["status"] == "interrupted"
        rest = solve(problem, cfg, checkpoint_dir=run, resume=load_checkpoint(run))
        for a, b in zip(full.net.state_dict().values(), rest.net.state_dict().values()):
            assert torch.equal(a, b)
        assert rest.history.column("loss") == full.history.column("loss")
        assert rest.history.column("optimizer") == full.history.column("optimizer")


def test_forward_laplacian_through_a_dirichlet_lift_equals_autograd():
    from hrta_pde.poisson.distance import hard_dirichlet

    problem = builtin_problem("poisson_disk")
    torch.manual_seed(5)
    net = H.homotopy_fnn([2, 10, 10, 1], "tanh").double()
    net.apply_output_transform(hard_dirichlet(problem) if _has_g(problem) else
                               _lift_like(problem))
    feats = point_features(net)
    assert feats.__qualname__.startswith("_lifted")
    x = problem.sample_interior(25, generator=torch.Generator().manual_seed(0), sampler="random",
                                dtype=torch.float64, device="cpu")
    u, g, lap = torch.func.vmap(feats, in_dims=(None, 0))(params_of(net), x)
    ua, ga, lapa = autograd_features(net, x)
    assert torch.allclose(u, ua, atol=1e-12) and torch.allclose(g, ga, atol=1e-12)
    assert torch.allclose(lap, lapa, atol=1e-11)
    # the Gram Jacobian passes the transform's features at its points, computed once, as aux
    aux = feats.lift_features(x)
    u2, g2, lap2 = torch.func.vmap(feats, in_dims=(None, 0, 0))(params_of(net), x, aux)
    assert torch.allclose(u2, ua, atol=1e-12) and torch.allclose(g2, ga, atol=1e-12)
    assert torch.allclose(lap2, lapa, atol=1e-11)


def _has_g(problem):
    return "g" in problem.spec.get("boundary", {})


class _Lift:
    """An output transform g_ext + phi N that exposes its parts (as distance.HardDirichlet does)."""

    def g_ext(self, x):
        return torch.sin(x[..., 0]) * x[..., 1]

    def phi(self, x):
        return 1.0 - (x**2).sum(dim=-1)

    def __call__(self, x, out):
        return self.g_ext(x)[..., None] + self.phi(x)[..., None] * out


def _lift_like(problem):
    return _Lift()


@pytest.mark.parametrize("phi", ["relu3", "tanh"])
def test_domain_init_starts_with_unit_scale_layers_and_a_non_vanishing_output(phi):
    from hrta_pde.poisson.solve import INIT_PREACTIVATION_STD, Setup

    problem = builtin_problem("poisson_lshape")
    cfg = SolveConfig.from_dict(dict(loss="ritz", phi=phi, width=64, depth=3, points=500, boundary_points=100,
                                     device="cpu", init="domain", singular_inputs=False))  # the layers see x
    setup = Setup(problem, cfg)
    net, x = setup.net, setup.x
    h = x
    for layer in net.linears[:-1]:
        z = layer(h)
        assert float(z.std(dim=0).mean()) == pytest.approx(INIT_PREACTIVATION_STD, rel=1e-10)
        h = net.activation(z)
    out = net(x)[:, 0]
    assert float(out.std()) > 1e-2  # Glorot + zero biases: 1e-11..1e-14 for relu3 at depth 3
    glorot = Setup(problem, cfg.replace(init="glorot")).net(x)[:, 0]
    if phi == "relu3":
        assert float(glorot.std()) < 1e-6  # the collapse this init fixes


def test_engd_stage_ends_at_the_first_step_that_lowers_the_loss_by_less_than_rtol():
    """With ``engd_rtol`` the run is the same as without it up to the first step whose relative
    decrease is at most rtol, and ends there; the default for least squares is 1e-3, Ritz off."""
    base = dict(loss="pinn", schedule="1:40@engd", phi="tanh", width=16, depth=1, points=200, boundary_points=2,
                device="cpu", test_points=500, record_every=1)
    problem = builtin_problem("poisson_1d")
    full = solve(problem, SolveConfig.from_dict({**base, "engd_rtol": 0.0})).history.column("loss")
    rtol = 1e-2
    part = solve(problem, SolveConfig.from_dict({**base, "engd_rtol": rtol})).history.column("loss")
    # row i holds the loss the (i+1)-th step starts from
    first = next(i for i in range(len(full) - 1) if full[i] - full[i + 1] <= rtol * abs(full[i]))
    assert len(part) == first + 1 < len(full) and part == full[:len(part)]
    assert SolveConfig().engd.rtol == 1e-3 and SolveConfig.from_dict({"loss": "ritz"}).engd.rtol == 0.0
    with pytest.raises(EngdError, match="rtol"):
        EngdOptions(rtol=1.0)


def test_supervised_losses_cut_the_spectrum_at_45_eps_and_the_others_at_rows_times_eps():
    """Sobolev and L2 drop eigenvalues below ``45 eps lambda_max`` (PINN and Ritz: ``R eps``): a
    direction of relative eigenvalue 1e-13 is kept by the first and dropped by the second."""
    eps64, eps32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps
    for loss in ("sobolev", "l2"):
        assert SolveConfig.from_dict({"loss": loss}).engd.rcond == 45 * eps64
        assert SolveConfig.from_dict({"loss": loss, "dtype": "float32"}).engd.rcond == pytest.approx(45 * eps32)
    for loss in ("pinn", "ritz"):
        assert SolveConfig.from_dict({"loss": loss}).engd.rcond is None
    r, p = 3000, 4
    q, _ = torch.linalg.qr(torch.randn(r, p, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    s = torch.tensor([1.0, 1e-2, 1e-4, 10 ** -6.5], dtype=torch.float64)  # eigenvalues s^2: 1 .. 1e-13
    jw = q * s
    g = jw.T @ torch.ones(r, dtype=torch.float64)
    exact = torch.linalg.solve(jw.T @ jw, g)
    kept = natural_direction(jw, g, rcond=SolveConfig.from_dict({"loss": "sobolev"}).engd.rcond)
    torch.testing.assert_close(kept, exact, rtol=1e-6, atol=0)
    dropped = natural_direction(jw, g)  # R eps = 6.7e-13 > 1e-13
    assert float(dropped[3].abs()) < 1e-6 * float(exact[3].abs())
