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
