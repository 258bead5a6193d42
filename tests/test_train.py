"""The multi-stage driver and the DeepXDE callback."""
import copy
import math

import numpy as np
import pytest
import torch

import hrta_pde as H
from hrta_pde.schedule import PlateauDetector, PlateauRule
from hrta_pde.train import Hooks

dde = H.import_deepxde()


def small_problem(seed=0, width=16):
    g = torch.Generator().manual_seed(seed)
    net = H.HomotopyNet(1, [width], "relu", s=1.0, generator=g, dtype=torch.float64)
    x = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    y = torch.sin(2 * torch.pi * x)
    return net, (lambda: {"data": 0.5 * ((net(x) - y) ** 2).mean()}), x, y


def bare_loop(net, x, y, stages, lr=1e-2, reset=False):
    """An independent hand-written HRTA loop: set s, keep (or renew) Adam, n steps per stage."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for s, n in stages:
        net.activation.s.fill_(s)
        if reset:
            opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(n):
            loss = 0.5 * ((net(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


@pytest.mark.parametrize("reset", [False, True])
def test_driver_equals_hand_written_loop_exactly(reset):
    net, loss_fn, x, y = small_problem()
    ref = copy.deepcopy(net)
    sched = H.Schedule([H.Stage(0.5, 25), H.Stage(1.5, 15), H.Stage(1.0, 10)], lr=1e-2,
                       reset_optimizer=reset)
    result = H.train(net, loss_fn, sched)
    ref_losses = bare_loop(ref, x, y, [(0.5, 25), (1.5, 15), (1.0, 10)], reset=reset)
    assert result.history.column("loss") == ref_losses  # bit for bit
    for p, q in zip(net.parameters(), ref.parameters()):
        assert torch.equal(p, q)


def test_stage_switches_at_exact_iterations():
    net, loss_fn, *_ = small_problem()
    sched = H.parse_schedule("0.5:7,1.5:5:0.002,1:3", lr=0.01)
    result = H.train(net, loss_fn, sched)
    hist = result.history
    assert hist.column("iteration") == list(range(1, 16))
    assert hist.column("stage") == [1] * 7 + [2] * 5 + [3] * 3
    assert hist.column("s") == [0.5] * 7 + [1.5] * 5 + [1.0] * 3
    assert hist.column("lr") == [0.01] * 7 + [0.002] * 5 + [0.01] * 3
    assert hist.switches == [8, 13]
    assert float(net.activation.s) == 1.0 and result.status == "completed"
    assert result.position.iteration == 15


def test_record_every_keeps_stage_ends():
    net, loss_fn, *_ = small_problem()
    result = H.train(net, loss_fn, H.parse_schedule("0.5:7,1:6"), record_every=5)
    assert result.history.column("iteration") == [5, 7, 10, 13]


def test_plateau_stage_switches_where_the_rule_says():
    p = torch.nn.Parameter(torch.tensor(3.0, dtype=torch.float64))
    net = torch.nn.Module()
    net.p = p
    net.act = H.HomotopyActivation("relu", 1.0)
    rule = PlateauRule(window=20, threshold=0.01)
    sched = H.Schedule([H.Stage(0.5, 2000, plateau=rule), H.Stage(1.0, 10)], lr=0.05)
    result = H.train(net, lambda: {"q": (net.p - 1) ** 2 + 1.0}, sched)
    losses = result.history.column("loss")
    det = PlateauDetector(rule)
    expected = next(t for t, loss in enumerate(losses, start=1) if det.update(loss))
    assert result.history.switches == [expected + 1]
    assert 40 <= expected < 2000
    assert result.position.iteration == expected + 10


def test_nonfinite_loss_stops_and_restores_last_finite_parameters():
    net, loss_fn, x, y = small_problem()
    ref = copy.deepcopy(net)
    calls = {"n": 0}

    def poisoned():
        calls["n"] += 1
        out = loss_fn()
        if calls["n"] == 9:  # iteration 9 (stage 2) gives NaN
            out["data"] = out["data"] * math.nan
        return out

    with pytest.warns(RuntimeWarning, match="iteration 9"):
        result = H.train(net, poisoned, H.parse_schedule("0.5:5,1:10", lr=1e-2))
    assert result.status == "nonfinite"
    assert "stage 2" in result.message and "iteration 9" in result.message
    assert len(result.history) == 9 and math.isnan(result.history.rows[-1][4])
    # parameters are those that iteration 8 started from (after 7 updates)
    bare_loop(ref, x, y, [(0.5, 5), (1.0, 2)])
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_a_stop_where_a_stage_ends_early_resumes_into_the_next_stage():
    """The hooks run at the iteration where the plateau ends a stage (an interrupt there stops the
    run; 1500 one-step engd stages that had converged once ignored Ctrl-C to the end), and a run
    resumed from there starts the next stage: the same losses as without the stop."""
    net, loss_fn, *_ = small_problem()
    net2 = copy.deepcopy(net)
    sched = H.parse_schedule("0.5:10,1:<=200,1.5:10", lr=1e-2, plateau=PlateauRule(5, 0.05))
    full = H.train(net, loss_fn, sched)
    stages = full.history.column("stage")
    end = max(i for i, st in zip(full.history.column("iteration"), stages) if st == 2)
    assert end < 10 + 200  # the plateau ended stage 2 early

    x = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    y = torch.sin(2 * torch.pi * x)

    def loss2():
        return {"data": 0.5 * ((net2(x) - y) ** 2).mean()}

    seen = []
    part = H.train(net2, loss2, sched, hooks=Hooks(after_step=lambda pos: seen.append(pos.iteration) or pos.iteration >= end))
    assert part.status == "stopped" and part.position.iteration == end and seen == list(range(1, end + 1))
    rest = H.train(net2, loss2, sched, optimizer=part.optimizer, history=part.history, position=part.position)
    assert rest.history.column("loss") == full.history.column("loss")
    assert rest.history.switches == full.history.switches
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


def test_resume_from_position_equals_uninterrupted_run():
    net, loss_fn, *_ = small_problem()
    net2 = copy.deepcopy(net)
    sched = H.parse_schedule("0.5:10,1:<=200,1.5:10", lr=1e-2, plateau=PlateauRule(5, 0.05))
    full = H.train(net, loss_fn, sched)

    _, loss_fn2, *_ = small_problem()
    x = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    y = torch.sin(2 * torch.pi * x)

    def loss2():
        return {"data": 0.5 * ((net2(x) - y) ** 2).mean()}

    stop_at = 14
    part = H.train(net2, loss2, sched, hooks=Hooks(after_step=lambda pos: pos.iteration >= stop_at))
    assert part.status == "stopped" and part.position.iteration == stop_at
    rest = H.train(net2, loss2, sched, optimizer=part.optimizer, history=part.history,
                   position=part.position)
    assert rest.history.column("loss") == full.history.column("loss")
    assert rest.history.switches == full.history.switches
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


@pytest.fixture
def dde_float64():
    """DeepXDE in float64 for this test only (its dtype is process-wide state)."""
    dde.config.set_default_float("float64")
    yield
    dde.config.set_default_float("float32")
    torch.set_default_dtype(torch.float32)


def poisson_model(seed=0, phi="relu3"):
    torch.manual_seed(seed)
    geom = dde.geometry.Interval(-1, 1)

    def pde(x, u):
        return -dde.grad.hessian(u, x) - np.pi**2 * torch.sin(np.pi * x)

    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda x, on: on)
    data = dde.data.PDE(geom, pde, bc, 16, 2, train_distribution="uniform")
    net = H.homotopy_fnn([1, 16, 1], phi, 0.5)
    return dde.Model(data, net)


def test_train_model_runs_stages_on_a_dde_model():
    model = poisson_model()
    sched = H.parse_schedule("0.5:30,1:30", lr=5e-3)
    result = H.train_model(model, sched)
    hist = result.history
    assert hist.term_names == ("loss_0", "loss_1")  # PDE residual, boundary condition
    assert hist.switches == [31] and hist.column("s")[-1] == 1.0
    assert hist.column("loss")[-1] < hist.column("loss")[0]
    assert model.opt is result.optimizer and model.train_state.step == 60
    np.testing.assert_allclose(hist.column("loss"),
                               np.sum([hist.column("loss_0"), hist.column("loss_1")], axis=0), rtol=1e-6)  # float32


def test_callback_matches_driver_on_the_same_model(dde_float64):
    m1, m2 = poisson_model(1), poisson_model(1)
    m2.net.load_state_dict(m1.net.state_dict())
    sched = H.parse_schedule("0.5:12,1.5:9", lr=5e-3)
    r1 = H.train_model(m1, sched)
    m2.compile("adam", lr=5e-3)
    cb = H.HRTACallback(sched)
    m2.train(iterations=sched.total_iterations, callbacks=[cb], display_every=1000, verbose=0)
    assert cb.status == "completed" and cb.history.switches == [13]
    assert cb.history.column("s") == [0.5] * 12 + [1.5] * 9
    np.testing.assert_allclose(cb.history.column("loss"), r1.history.column("loss"), rtol=1e-10)
    for a, b in zip(m1.net.parameters(), m2.net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_callback_stops_on_nan_and_restores(dde_float64):
    model = poisson_model(2)
    model.compile("adam", lr=5e-3)
    original = model.data.losses_train
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        if next(model.net.parameters()).requires_grad:  # a training step, not DeepXDE's _test
            calls["n"] += 1
            if calls["n"] == 6:
                out = [o * math.nan for o in out]
        return out

    model.data.losses_train = poisoned
    ref = poisson_model(2)
    ref.net.load_state_dict(model.net.state_dict())
    ref.compile("adam", lr=5e-3)
    cb = H.HRTACallback(H.parse_schedule("0.5:4,1:20", lr=5e-3))
    with pytest.warns(RuntimeWarning, match="iteration 6"):
        model.train(iterations=24, callbacks=[cb], display_every=1000, verbose=0)
    assert cb.status == "nonfinite" and model.train_state.step == 6
    cb_ref = H.HRTACallback(H.parse_schedule("0.5:4,1:20", lr=5e-3))
    ref.train(iterations=4, callbacks=[cb_ref], display_every=1000, verbose=0)
    # iteration 6 started from the parameters after 5 updates; its loss was NaN, so the last
    # parameters with a finite loss are those after 4 updates (the end of stage 1).
    for a, b in zip(model.net.parameters(), ref.net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_train_model_runs_adam_lbfgs_and_engd_stages_on_a_dde_model(dde_float64):
    model = poisson_model(3, phi="tanh")
    sched = H.parse_schedule("0.5:40,1:15@lbfgs,1:6@engd", lr=5e-3)
    result = H.train_model(model, sched)
    hist = result.history
    assert hist.column("optimizer") == ["adam"] * 40 + ["lbfgs"] * 15 + ["engd"] * (len(hist) - 55)
    losses = hist.column("loss")
    assert losses[54] < 0.7 * losses[40]  # L-BFGS continues from where Adam stopped
    assert all(b <= a for a, b in zip(losses[55:], losses[56:]))  # ENGD's line search never goes up
    assert losses[-1] < losses[55]
    assert model.train_state.step == len(hist)


def test_residual_jacobian_is_the_gauss_newton_matrix_of_the_dde_loss(dde_float64):
    from hrta_pde.engd import ResidualJacobian
    from hrta_pde.train import model_loss_fn, model_residuals

    model = poisson_model(4, phi="tanh")
    model.compile("adam", lr=1e-3, loss_weights=[1.0, 3.0])
    loss_fn = model_loss_fn(model)
    for p in model.net.linears[0].parameters():  # linear in the trained (last) layer: GN = Hessian
        p.requires_grad_(False)
    last = list(model.net.linears[1].parameters())
    jw = ResidualJacobian(model_residuals(model), last)()
    theta = torch.cat([p.detach().reshape(-1) for p in last])
    hess = torch.zeros(theta.numel(), theta.numel(), dtype=torch.float64)
    # the Hessian by autograd: the loss is quadratic in the last layer
    terms = loss_fn()
    total_loss = sum(t.reshape(()) for t in terms)
    (g,) = torch.autograd.grad(total_loss, [last[0]], create_graph=True)
    (gb,) = torch.autograd.grad(total_loss, [last[1]], create_graph=True)
    grad = torch.cat([g.reshape(-1), gb.reshape(-1)])
    for i in range(grad.numel()):
        row = torch.autograd.grad(grad[i], last, retain_graph=True, allow_unused=True)
        hess[i] = torch.cat([(r if r is not None else torch.zeros_like(p)).reshape(-1) for r, p in zip(row, last)])
    torch.testing.assert_close(jw.T @ jw, hess, rtol=1e-10, atol=1e-10)


def test_callback_with_lbfgs_says_what_to_use_instead(dde_float64):
    model = poisson_model(5)
    model.compile("L-BFGS")
    with pytest.raises(ValueError, match=r"hrta_pde.train_model\(model"):
        model.train(iterations=10, callbacks=[H.HRTACallback(H.parse_schedule("1:10"))], verbose=0)
    with pytest.raises(ValueError, match="train_model"):
        H.HRTACallback(H.parse_schedule("1:10,1:5@engd"))


def test_callback_and_driver_switch_and_record_alike(dde_float64):
    # one stage machine behind both: the same plateau switch, the same recorded iterations
    m1, m2 = poisson_model(6), poisson_model(6)
    m2.net.load_state_dict(m1.net.state_dict())
    sched = H.parse_schedule("0.5:<=80,1.5:9", lr=5e-3, plateau=PlateauRule(4, 0.2), reset_optimizer=True)
    r1 = H.train_model(m1, sched, record_every=3)
    m2.compile("adam", lr=5e-3)
    cb = H.HRTACallback(sched, record_every=3)
    m2.train(iterations=sched.total_iterations, callbacks=[cb], display_every=1000, verbose=0)
    h1, h2 = r1.history, cb.history
    assert 8 < h1.switches[0] < 81  # the plateau rule ended stage 1 early
    assert h2.switches == h1.switches and cb.status == r1.status == "completed"
    assert h2.column("iteration") == h1.column("iteration")
    assert h2.column("iteration")[-1] == h1.switches[0] - 1 + 9
    assert h2.column("s") == h1.column("s") and h2.column("lr") == h1.column("lr")
    np.testing.assert_allclose(h2.column("loss"), h1.column("loss"), rtol=1e-10)
