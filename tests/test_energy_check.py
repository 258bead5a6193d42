"""The Ritz loss's energy check: the best parameters are kept, the run ends after the patience, the
state survives a resume, and a run that fits its quadrature is ended before it does."""
import pytest
import torch

import hrta_pde as H
from hrta_pde.errors import SettingError
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.energy_check import EnergyCheck
from hrta_pde.poisson.solve import SolveConfig, plan_solve, solve


class Scripted(EnergyCheck):
    """An energy check whose energies (and runaway energies) are given in advance."""

    def __init__(self, values, patience, runaway=None):
        super().__init__(context="check", patience=patience, runaway=None if runaway is None else "sobol")
        self.values, self.watched = list(values), list(runaway or [])

    def value(self, net, context=None):
        return (self.watched if context == "sobol" else self.values).pop(0)


def test_keeps_the_lowest_energy_s_parameters_and_ends_after_the_patience():
    net = H.homotopy_fnn([1, 3, 1], "tanh").double()
    check = Scripted([5.0, 3.0, 4.0, 2.0, 2.5, 2.0, 2.1, float("nan")], patience=3)
    states = []
    ends = []
    for it in range(1, 9):
        with torch.no_grad():
            net.linears[0].bias.fill_(float(it))
        states.append(net.linears[0].bias.clone())
        ends.append(check.update(net, it))
    # lows at 1, 2, 4; then 2.5, 2.0 (not lower), 2.1, NaN: the third step without a new low ends it
    assert ends == [False] * 6 + [True, True]
    assert check.best == 2.0 and check.best_iteration == 4
    assert check.restore(net)
    assert torch.equal(net.linears[0].bias, states[3])
    again = EnergyCheck(context=None)
    again.load_state_dict(check.state_dict())
    assert again.best_iteration == 4 and again.since == check.since
    assert not EnergyCheck(context=None).restore(net)


def test_a_runaway_on_the_sobol_points_keeps_the_best_parameters_of_before_it():
    net = H.homotopy_fnn([1, 3, 1], "tanh").double()
    # the check rule's energy keeps falling (it is fitted too); the Sobol energy is lowest at step 3,
    # rises by 0.5 % at step 4 (within RUNAWAY = 1 %) and by 2 % at step 5: the run ends there
    check = Scripted([5.0, 4.0, 3.0, 2.0, 1.0], patience=10, runaway=[-1.0, -1.1, -1.2, -1.194, -1.17])
    states, ends = [], []
    for it in range(1, 6):
        with torch.no_grad():
            net.linears[0].bias.fill_(float(it))
        states.append(net.linears[0].bias.clone())
        ends.append(check.update(net, it))
    assert ends == [False, False, False, False, True] and check.ran_away
    assert check.best_iteration == 5 and check.kept_iteration == 3
    assert check.restore(net) and torch.equal(net.linears[0].bias, states[2])
    again = EnergyCheck(context=None)
    again.load_state_dict(check.state_dict())
    assert again.kept_iteration == 3


def test_a_ritz_run_that_fits_its_quadrature_ends_at_the_best_check_energy():
    # 40 Gauss points for a network of 97 parameters: unchecked, the error rose to 4.4 by step 150
    problem = builtin_problem("poisson_1d")
    cfg = dict(loss="ritz", sampler="gauss", points=40, width=32, schedule="1:150@engd", hard_bc=True,
               test_points=2000, device="cpu")
    res = solve(problem, SolveConfig.from_dict(cfg))
    assert res.config.energy_check
    assert res.metrics["status"] == "completed" and "kept the parameters of iteration" in res.metrics["message"]
    assert res.metrics["best_iteration"] < res.metrics["iterations"] < 60
    assert res.metrics["rel_l2"] < 1e-4
    assert res.history.evaluations[-1]["rel_l2"] == res.metrics["rel_l2"]


def test_energy_check_is_for_ritz_and_is_off_with_adam():
    problem = builtin_problem("poisson_1d")
    with pytest.raises(SettingError, match="energy_check guards the ritz loss"):
        plan_solve(problem, SolveConfig(loss="pinn", energy_check=True))
    assert plan_solve(problem, SolveConfig(loss="ritz")).config.energy_check
    assert not plan_solve(problem, SolveConfig(loss="ritz", schedule="1:100")).config.energy_check
    assert not plan_solve(problem, SolveConfig(loss="pinn")).config.energy_check


def test_the_check_acts_in_the_last_stage_only_and_a_finished_run_resumes_to_itself(tmp_path):
    from hrta_pde.io.checkpoint import load_checkpoint

    problem = builtin_problem("poisson_1d")
    cfg = SolveConfig.from_dict(dict(loss="ritz", sampler="gauss", points=40, width=32, hard_bc=True,
                                     schedule="0.7:12@engd,1:150@engd", test_points=500, device="cpu"))
    res = solve(problem, cfg, checkpoint_dir=tmp_path)
    assert res.config.energy_check and res.metrics["stage_switches"]  # the first stage ran to its end
    assert 12 < res.metrics["best_iteration"] < res.metrics["iterations"] < 150
    assert all(float(m.s) == 1.0 for m in H.homotopy_activations(res.net))
    again = solve(problem, cfg, checkpoint_dir=tmp_path, resume=load_checkpoint(tmp_path))
    assert again.metrics["iterations"] == res.metrics["iterations"]
    assert again.metrics["message"] == res.metrics["message"]
    for a, b in zip(res.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)


def test_a_run_that_ends_on_its_schedule_keeps_the_best_check_energy():
    from hrta_pde.poisson.losses import LOSS_FUNCTIONS
    from hrta_pde.poisson.solve import Setup

    problem = builtin_problem("poisson_1d")
    cfg = SolveConfig.from_dict(dict(loss="ritz", sampler="gauss", points=40, width=32, hard_bc=True,
                                     schedule="1:26@engd", test_points=500, device="cpu"))
    res = solve(problem, cfg)
    # measured: the check energy was lowest at step 22, the schedule ended at 26
    assert res.metrics["best_iteration"] < res.metrics["iterations"] == 26
    assert "kept the parameters of iteration" in res.metrics["message"]
    context = Setup(problem, res.config).context  # the same Gauss points: the loss of what was kept
    loss = float(sum(t.detach() for t in LOSS_FUNCTIONS["ritz"](res.net, context).values()))
    assert res.metrics["final_loss"] == pytest.approx(loss, rel=1e-12)
    assert res.metrics["final_loss"] != res.history.final_finite_loss()


@pytest.mark.parametrize("name,points", [("poisson_3d_layers", 2568), ("poisson_2d_sin", 25), ("poisson_3d_layers", 100)])
def test_the_gauss_check_rule_is_not_the_training_rule(name, points):
    from hrta_pde.poisson.energy_check import check_points

    problem = builtin_problem(name)
    cfg = SolveConfig.from_dict(dict(loss="ritz", sampler="gauss", points=points, device="cpu"))
    x, _, _ = problem.quadrature(points, cfg.sampling.boundary_points, dtype=torch.float64)
    rules = check_points(problem, cfg, torch.float64, "cpu", 0, x)
    assert len(rules) == 2 and rules[1][1] is None  # the Gauss rule and the Sobol points
    xc = rules[0][0]
    assert xc.shape != x.shape or not torch.equal(xc, x)
    assert float(rules[0][1].sum()) == pytest.approx(problem.measure, rel=1e-12)
