"""A guard for the Ritz loss against fitting its quadrature: the energy on a second, independent rule.

The Ritz energy measures the error itself: for the minimiser ``u*``,
``E(u) - E(u*) = 1/2 ||u - u*||_a^2`` (the energy norm; Dirichlet data exact), so while the
true energy falls the error falls. The loss is the *discrete* energy on the training points, and a
network can fit between them: its discrete energy falls below the exact minimum while the true
energy, and the error, rise (``poisson_3d_layers`` on 20^3 Gauss points: 4.1e-3 at step 60, then
4.9e-2 at step 200; benchmarks/README.md). :class:`EnergyCheck` evaluates the same energy on other
points after every step (a Gauss rule with about twice the points on other cells, or Sobol points
of another seed, twice as many), keeps the parameters where that energy was lowest, and ends the run
after ``patience`` steps without a new low, with those parameters.
"""
from __future__ import annotations

import copy

import torch

#: Steps without a new low of the check energy after which the run ends (with the best parameters).
PATIENCE = 10
#: A new low must be lower than the best by this fraction of |best|. The energy gap is quadratic in
#: the error (a relative error 1e-5 moves the energy by about 1e-10 of itself), so any decrease counts.
MIN_DECREASE = 0.0


class EnergyCheck:
    """The check energy of ``net`` on ``context`` (a :class:`LossContext` on the check points),
    its lowest value, the step and parameters where it was reached, and the steps since.

    ``update(net, iteration)`` returns True when the run should end; ``restore(net)`` loads the
    best parameters. ``state_dict`` / ``load_state_dict`` keep it across a resume.
    """

    def __init__(self, context, patience: int = PATIENCE):
        from hrta_pde.poisson.losses import ritz_loss

        self.context, self.patience = context, int(patience)
        self._energy = ritz_loss
        self.best = None
        self.best_iteration = None
        self.best_state = None
        self.since = 0

    def value(self, net) -> float:
        """The energy of ``net`` on the check points (the Ritz loss's terms there, summed)."""
        return float(sum(t.detach() for t in self._energy(net, self.context).values()))

    def update(self, net, iteration: int) -> bool:
        e = self.value(net)
        if e != e:  # NaN: not a new low; the training loop stops on a non-finite loss itself
            self.since += 1
        elif self.best is None or e < self.best - MIN_DECREASE * max(abs(self.best), 1e-300):
            self.best, self.best_iteration, self.since = e, int(iteration), 0
            self.best_state = copy.deepcopy({k: v.detach().clone() for k, v in net.state_dict().items()})
        else:
            self.since += 1
        return self.since >= self.patience

    def restore(self, net) -> bool:
        """Load the best parameters into ``net``; False when there are none yet."""
        if self.best_state is None:
            return False
        with torch.no_grad():
            net.load_state_dict(self.best_state)
        return True

    def state_dict(self) -> dict:
        return {"best": self.best, "best_iteration": self.best_iteration, "since": self.since,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_iteration = state["best"], state["best_iteration"]
        self.since, self.best_state = int(state["since"]), state["best_state"]


def check_points(problem, cfg, dtype, device, seed: int):
    """``(x, weights, boundary)`` of the check rule for a run on ``cfg``'s training points: a Gauss
    rule with twice the interior and boundary points (other cells) on Gauss training points, else
    twice as many Sobol points of another seed (weights None)."""
    n, nb = 2 * cfg.sampling.points, 2 * cfg.sampling.boundary_points
    if cfg.sampling.sampler == "gauss":
        return problem.quadrature(n, nb, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(seed + 611953)
    kw = dict(generator=gen, sampler="sobol", dtype=dtype, device=device)
    return problem.sample_interior(n, **kw), None, problem.sample_boundary(nb, **kw)
