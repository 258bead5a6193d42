"""The stage machine: what happens at a stage switch, at each step and on a non-finite loss.

Algorithm 1 of the paper (METHOD.md section 2) runs the stages ``p = 1, 2, ...`` of a
:class:`~hrta_pde.schedule.Schedule` one after the other from the parameters the previous stage
reached. At the start of a stage the machine sets ``s_p`` on every homotopy activation, prepares
the stage's optimizer (:class:`StageOptimizers`: Adam kept or reset, L-BFGS fresh, ENGD
stateless), starts the stage's plateau rule and records the switch. After each step it counts
the iteration, evaluates the plateau rule and writes a :class:`~hrta_pde.history.History` row
(stage, ``s``, optimizer, step size, time). A non-finite loss stops the run with the last
parameters whose loss was finite put back.

Both ways of training use it: the driver :func:`hrta_pde.train.train` (which computes the loss
and calls the optimizer itself) and the DeepXDE callback :class:`hrta_pde.callback.HRTACallback`
(which sees the loss of a step of ``model.train``). Per iteration the caller does::

    machine.save_parameters()                  # before the loss of this iteration is known
    ...                                        # the loss [total, *terms] of the parameters
    if not machine.check(numbers, names):      # non-finite: restored, recorded, status set
        stop
    ...                                        # the optimizer's update
    ended_early = machine.advance(numbers, step_size, converged)

and, around the iterations of one stage, ``machine.enter()`` / ``machine.next_stage()``.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from hrta_pde.engd import EngdError, EngdOptions, engd_update
from hrta_pde.history import History
from hrta_pde.networks import set_s
from hrta_pde.schedule import PlateauDetector, Schedule, Stage


class NonFiniteLossWarning(RuntimeWarning):
    """Training stopped on a NaN or infinite loss (the message says where)."""


@dataclass
class Position:
    """Where a run is in its schedule (plain data, saved in checkpoints)."""

    stage: int = 0              # 0-based index of the current stage
    stage_iteration: int = 0    # iterations done in the current stage (its length once it ended early)
    iteration: int = 0          # iterations done in total
    plateau: dict | None = None  # PlateauDetector state of the current stage (when resuming)
    elapsed: float = 0.0        # seconds of training before this call
    detector: object = field(default=None, repr=False, compare=False)  # the live detector

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "detector"}
        if self.detector is not None:  # serialised only when asked (a checkpoint), not per iteration
            state["plateau"] = self.detector.state_dict()
        return state


def make_adam(parameters, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(list(parameters), lr=lr)


def make_lbfgs(parameters, lr: float = 1.0) -> torch.optim.LBFGS:
    """One L-BFGS iteration per ``step`` (the state carries the curvature pairs between steps)."""
    # max_eval bounds the function evaluations of one step: its default (5/4 max_iter = 1) starves
    # the line search, and L-BFGS then stalls
    return torch.optim.LBFGS(list(parameters), lr=lr, max_iter=1, max_eval=25, history_size=50,
                             line_search_fn="strong_wolfe", tolerance_grad=1e-15, tolerance_change=1e-15)


class StageOptimizers:
    """The optimizers of a run, one per kind, and what a stage switch does to them.

    Adam is kept across Adam stages (its moments cleared at a switch when the schedule says
    ``reset_optimizer``); L-BFGS starts fresh at each L-BFGS stage (its curvature pairs belong to
    the previous ``s``); ENGD has no state (a step is a linear solve and a line search), so it
    needs ``jacobian() -> W^(1/2) J`` (see :mod:`hrta_pde.engd`) and its options.
    """

    def __init__(self, params, schedule: Schedule, adam: torch.optim.Optimizer | None = None,
                 jacobian: Callable[[], torch.Tensor] | None = None, engd: EngdOptions | None = None):
        self.params, self.schedule = params, schedule
        self.adam = adam if adam is not None else make_adam(params, schedule.stage_lr(0))
        self.lbfgs: torch.optim.LBFGS | None = None
        self.jacobian, self.engd = jacobian, engd or EngdOptions()
        if "engd" in schedule.optimizers and jacobian is None:
            raise EngdError("the schedule has an engd stage but the loss declares no Gram matrix: pass "
                            "jacobian= (hrta_pde.engd.GramJacobian of the loss's Gram terms), or use adam/lbfgs")

    def enter(self, index: int, fresh: bool) -> None:
        """Prepare stage ``index``; ``fresh``: the stage starts now (not resumed inside it)."""
        st, lr = self.schedule.stages[index], self.schedule.stage_lr(index)
        if st.optimizer == "adam":
            for group in self.adam.param_groups:
                group["lr"] = lr
            if fresh and index > 0 and self.schedule.reset_optimizer:
                self.adam.state.clear()
        elif st.optimizer == "lbfgs" and (fresh or self.lbfgs is None):
            self.lbfgs = make_lbfgs(self.params, lr)

    def step(self, optimizer: str, loss: float, total_fn: Callable[[], torch.Tensor]) -> tuple[float, bool]:
        """One update from the gradients in ``p.grad`` (of loss ``loss``); ``(step size, converged)``.

        ``total_fn()`` is the training loss at the current parameters, a scalar tensor (L-BFGS
        and ENGD evaluate it in their line searches).
        """
        if optimizer == "adam":
            self.adam.step()
            return self.adam.param_groups[0]["lr"], False
        if optimizer == "lbfgs":
            return self._lbfgs_step(loss, total_fn)
        step, value = engd_update(self.params, self.jacobian, lambda: float(total_fn().detach()), loss, self.engd)
        stalled = self.engd.rtol > 0 and math.isfinite(value) and loss - value <= self.engd.rtol * abs(loss)
        return step, step == 0.0 or math.isnan(step) or stalled

    def _lbfgs_step(self, loss: float, total_fn) -> tuple[float, bool]:
        opt, first = self.lbfgs, [True]

        def closure():
            if first[0]:  # the loss and gradients at the current parameters are already there
                first[0] = False
                return torch.tensor(loss)
            opt.zero_grad(set_to_none=True)
            total = total_fn()
            total.backward()
            return total

        state = opt.state[opt._params[0]]
        before = state.get("n_iter", 0)
        opt.step(closure)
        return float(state.get("t", 0.0)), state.get("n_iter", 0) == before

    def state_dict(self) -> dict:
        return {"adam": self.adam.state_dict(),
                "lbfgs": self.lbfgs.state_dict() if self.lbfgs is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.adam.load_state_dict(state["adam"])
        if state.get("lbfgs") is not None:
            self.lbfgs = make_lbfgs(self.params)
            self.lbfgs.load_state_dict(state["lbfgs"])


class LastParameters:
    """Copies of the parameters at the start of the last two iterations.

    The loss of iteration ``i`` is that of the parameters iteration ``i`` starts from; when it
    is not finite, the last parameters with a finite loss are those iteration ``i - 1`` started
    from: the copy before the latest. At the first iteration both copies hold the parameters the
    run started from.
    """

    def __init__(self, params: list[torch.Tensor]):
        self.params = params
        self.copies = [[p.detach().clone() for p in params] for _ in range(2)]
        self.saves = 0

    def save(self) -> None:
        """Copy the current parameters (call it at the start of an iteration)."""
        with torch.no_grad():
            torch._foreach_copy_(self.copies[self.saves % 2], [p.detach() for p in self.params])
        self.saves += 1

    def restore_previous(self) -> None:
        """Put back the parameters of the copy before the latest."""
        with torch.no_grad():
            for p, q in zip(self.params, self.copies[self.saves % 2]):
                p.copy_(q)


def check_record_every(record_every) -> int:
    if record_every <= 0:
        raise ValueError(f"record_every={record_every} must be a positive integer")
    return record_every


class StageMachine:
    """One run of a schedule: the current stage, its switches, steps and stop.

    Args:
        net: the network whose homotopy activations get each stage's ``s``.
        schedule: the stages.
        optimizers: the run's optimizers (:meth:`StageOptimizers.enter` prepares each stage's).
        params: the trained parameters (copied each iteration, to undo a non-finite loss).
        history, position: continue a run (from a checkpoint) instead of starting one.
        record_every: a :class:`History` row every this many iterations, and at each stage end.

    ``status`` is ``"running"`` until the schedule is done (``"completed"``), a loss was not
    finite (``"nonfinite"``) or :meth:`stop` was called (``"stopped"``); ``message`` says where.
    """

    def __init__(self, net: torch.nn.Module, schedule: Schedule, optimizers: StageOptimizers,
                 params: list[torch.Tensor], *, history: History | None = None,
                 position: Position | None = None, record_every: int = 1):
        self.net, self.schedule, self.optimizers = net, schedule, optimizers
        self.history = history if history is not None else History()
        self.position = position or Position()
        self.record_every = check_record_every(record_every)
        self.last_parameters = LastParameters(params)
        self.detector: PlateauDetector | None = None
        self.step_size = math.nan
        self.message = ""
        self._stopped: str | None = None
        self.t0 = time.perf_counter()

    # -- where the run is ---------------------------------------------------------------------
    @property
    def status(self) -> str:
        if self._stopped is not None:
            return self._stopped
        return "completed" if self.finished else "running"

    @property
    def finished(self) -> bool:
        """All stages are done."""
        return self.position.stage >= len(self.schedule.stages)

    @property
    def stage(self) -> Stage:
        return self.schedule.stages[self.position.stage]

    @property
    def in_stage(self) -> bool:
        """The current stage has iterations left (before any plateau)."""
        return self.position.stage_iteration < self.stage.iterations

    def seconds(self) -> float:
        """Seconds of training of the run, earlier calls (``position.elapsed``) included."""
        return self.position.elapsed + time.perf_counter() - self.t0

    # -- stage switches -----------------------------------------------------------------------
    def enter(self) -> None:
        """Start the current stage, or continue inside it (resumed from a checkpoint).

        Sets ``s`` on the network, prepares the optimizer and the plateau rule (its state when
        resuming) and, at a fresh stage after the first, records the switch.
        """
        pos, st = self.position, self.stage
        set_s(self.net, st.s)
        fresh = pos.stage_iteration == 0
        self.optimizers.enter(pos.stage, fresh)
        self.step_size = self.schedule.stage_lr(pos.stage)
        self.detector = PlateauDetector(st.plateau) if st.plateau is not None else None
        if fresh:
            if pos.stage > 0:
                self.history.switches.append(pos.iteration + 1)
        elif self.detector is not None and pos.plateau is not None:
            self.detector.load_state_dict(pos.plateau)

    def next_stage(self) -> None:
        """The current stage is over: move to the next one (:meth:`enter` starts it)."""
        pos = self.position
        pos.stage += 1
        pos.stage_iteration = 0
        pos.plateau = pos.detector = None

    # -- iterations ---------------------------------------------------------------------------
    def save_parameters(self) -> None:
        """Call at the start of each iteration, before its loss is known."""
        self.last_parameters.save()

    def check(self, numbers: list[float], names: tuple[str, ...], stacklevel: int = 2) -> bool:
        """Is the loss ``numbers = [total, *terms]`` of the next iteration finite?

        If not: the parameters go back to the last ones with a finite loss, the row is recorded,
        ``status`` becomes ``"nonfinite"`` and a :class:`NonFiniteLossWarning` says where
        (``stacklevel`` as for ``warnings.warn``, counted from the caller).
        """
        hist = self.history
        if not hist.term_names and not hist.rows:
            hist.term_names = names
        loss = numbers[0]
        if math.isfinite(loss):
            return True
        self.last_parameters.restore_previous()
        pos, st = self.position, self.stage
        iteration = pos.iteration + 1
        self._record(iteration, numbers)
        kept = (f"the parameters were restored to those of iteration {iteration - 1}, the last "
                "with a finite loss" if iteration > 1 else
                "the initial parameters were kept (no finite loss was reached)")
        self.message = (f"the loss became {loss} at iteration {iteration} (stage {pos.stage + 1}, "
                        f"s={st.s:g}, {st.optimizer}, step {self.step_size:g}); training stopped and {kept}: "
                        "lower the learning rate or check the problem data")
        self._stopped = "nonfinite"
        warnings.warn(self.message, NonFiniteLossWarning, stacklevel=stacklevel + 1)
        return False

    def advance(self, numbers: list[float], step_size: float, converged: bool = False) -> bool:
        """Count the iteration whose loss was ``numbers`` and whose update had ``step_size``.

        Returns True when the stage ends early: the optimizer ``converged`` or the plateau rule
        fired; the stage then counts as done (``in_stage`` is False, and a run saved from here
        resumes in the next stage). The row is recorded every ``record_every`` iterations and at
        the stage's end.
        """
        pos = self.position
        self.step_size = step_size
        pos.iteration += 1
        pos.stage_iteration += 1
        ended = converged or (self.detector is not None and self.detector.update(numbers[0]))
        if pos.iteration % self.record_every == 0 or ended or not self.in_stage:
            self._record(pos.iteration, numbers)
        if ended:
            pos.stage_iteration = self.stage.iterations
        pos.detector = self.detector
        return ended

    def stop(self, message: str) -> None:
        """Stop the run here, resumable (e.g. on SIGINT)."""
        self._stopped, self.message = "stopped", message

    def _record(self, iteration: int, numbers: list[float]) -> None:
        pos, st = self.position, self.stage
        self.history.append(iteration, pos.stage + 1, st.s, self.step_size, numbers[0], numbers[1:],
                            self.seconds(), st.optimizer)
