"""A guard for the Ritz loss against fitting its quadrature: the energy on a second, independent rule.

The Ritz energy measures the error itself: for the minimiser ``u*``,
``E(u) - E(u*) = 1/2 ||u - u*||_a^2`` (the energy norm; Dirichlet data exact), so while the
true energy falls the error falls. The loss is the *discrete* energy on the training points, and a
network can fit between them: its discrete energy falls below the exact minimum while the true
energy, and the error, rise (``poisson_2d_sin`` on 30 x 30 Gauss points: 1.7e-5 at step 100, then
5.4e-1 at step 200; benchmarks/README.md). :class:`EnergyCheck` evaluates the same energy on other
points after every step (a Gauss rule with about twice the points on other cells, or Sobol points
of another seed, twice as many), keeps the parameters where that energy was lowest, and ends the run
after ``patience`` steps without a new low, with those parameters; on Gauss training points it also
watches the energy on Sobol points for a runaway that both Gauss rules miss.
"""
from __future__ import annotations

import torch

#: Steps without a new low of the check energy after which the run ends (with the best parameters).
PATIENCE = 10
#: The runaway points' energy may rise by this fraction of its lowest value before the run ends.
RUNAWAY = 1e-2
#: A new low must be lower than the best by this fraction of |best|. The energy gap is quadratic in
#: the error (a relative error 1e-5 moves the energy by about 1e-10 of itself), so any decrease counts.
MIN_DECREASE = 0.0


class EnergyCheck:
    """The check energy of ``net`` on ``context`` (a :class:`LossContext` on the check points),
    its lowest value, the step and parameters where it was reached, and the steps since.

    ``runaway``: an optional second context (Sobol points) that sees what a rule of the same kind
    as the training rule can miss (in 3-D both Gauss rules left a layer along the faces unsampled
    and both were fitted); when its energy rises above its lowest value by ``RUNAWAY`` of it, the
    run ends with the best parameters as they were when that lowest value was reached.

    ``update(net, iteration)`` returns True when the run should end; ``restore(net)`` loads the
    parameters to keep. ``state_dict`` / ``load_state_dict`` keep it across a resume.
    """

    def __init__(self, context, patience: int = PATIENCE, runaway=None):
        from hrta_pde.poisson.losses import ritz_loss

        self.context, self.patience, self.runaway = context, int(patience), runaway
        self._energy = ritz_loss
        self.best = None
        self.best_iteration = None
        self.best_state = None
        self.since = 0
        self.watch = None           # lowest energy on the runaway points
        self.safe = None            # (iteration, state) of the best parameters when it was reached
        self.ran_away = False
        self.ended = None           # the iteration at which the check ended the run

    def value(self, net, context=None) -> float:
        """The energy of ``net`` on the check points (the Ritz loss's terms there, summed)."""
        return float(sum(t.detach() for t in self._energy(net, context or self.context).values()))

    def update(self, net, iteration: int) -> bool:
        e = self.value(net)
        if e != e:  # NaN: not a new low; the training loop stops on a non-finite loss itself
            self.since += 1
        elif self.best is None or e < self.best - MIN_DECREASE * abs(self.best):
            self.best, self.best_iteration, self.since = e, int(iteration), 0
            self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            self.since += 1
        if self.runaway is not None:
            w = self.value(net, self.runaway)
            if w == w and (self.watch is None or w < self.watch):
                self.watch, self.safe = w, (self.best_iteration, self.best_state)
            elif w != w or w > self.watch + RUNAWAY * abs(self.watch):
                self.ran_away = True
                return True
        return self.since >= self.patience

    @property
    def kept_iteration(self):
        """The iteration whose parameters :meth:`restore` loads."""
        return self.safe[0] if self.ran_away and self.safe is not None else self.best_iteration

    def restore(self, net) -> bool:
        """Load the parameters to keep into ``net``; False when there are none yet."""
        state = self.safe[1] if self.ran_away and self.safe is not None else self.best_state
        if state is None:
            return False
        with torch.no_grad():
            net.load_state_dict(state)
        return True

    def state_dict(self) -> dict:
        return {"best": self.best, "best_iteration": self.best_iteration, "since": self.since,
                "best_state": self.best_state, "watch": self.watch, "safe": self.safe,
                "ran_away": self.ran_away, "ended": self.ended}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_iteration = state["best"], state["best_iteration"]
        self.since, self.best_state = int(state["since"]), state["best_state"]
        self.watch, self.safe = state.get("watch"), state.get("safe")
        self.ran_away = bool(state.get("ran_away", False))
        self.ended = state.get("ended")


def check_points(problem, cfg, dtype, device, seed: int, train_x=None) -> list:
    """The check rules for a run on ``cfg``'s training points, each ``(x, weights, boundary)``:
    on Gauss training points a Gauss rule with about twice the interior and boundary points, on
    other cells than the training rule's (``train_x``: more points are asked for until the rule
    differs), and, for the runaway check, twice as many Sobol points of another seed (weights None);
    on other training points those Sobol points only."""
    n, nb = 2 * cfg.sampling.points, 2 * cfg.sampling.boundary_points
    gen = torch.Generator().manual_seed(seed + 611953)
    kw = dict(generator=gen, sampler="sobol", dtype=dtype, device=device)
    sobol = (problem.sample_interior(n, **kw), None, problem.sample_boundary(nb, **kw))
    if cfg.sampling.sampler != "gauss":
        return [sobol]
    for factor in (1.0, 1.5, 2.0, 3.0, 4.0):
        rule = problem.quadrature(int(factor * n), int(factor * nb), dtype=dtype, device=device)
        if train_x is None or rule[0].shape != train_x.shape or not torch.equal(rule[0], train_x.to(rule[0])):
            return [rule, sobol]
    return [sobol]  # pragma: no cover - a rule that never changes with its number of points
