"""The multi-stage HRTA driver (Algorithm 1 of the paper, METHOD.md section 2).

For each stage ``p``: set every homotopy activation to ``s_p``, set the learning rate, and run the
stage's optimizer (Adam, L-BFGS or the energy natural gradient, :class:`StageOptimizers`) from the
parameters reached at the end of stage ``p - 1``. The loop is a plain PyTorch loop -- one forward,
one backward, one ``step`` and one host synchronisation per Adam iteration -- so it costs about what
a hand-written loop costs.

Two entry points:

* :func:`train` -- any ``torch.nn.Module`` and a ``loss_fn()`` returning named loss terms.
* :func:`train_model` -- an existing ``dde.Model`` (its data, loss and loss weights).

A non-finite loss stops training: the parameters are restored to the last ones whose loss was
finite, the history so far is kept, and the result says at which stage and iteration it happened.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from hrta_pde.engd import EngdError, EngdOptions, ResidualJacobian, check_memory, engd_update
from hrta_pde.history import History
from hrta_pde.networks import set_s
from hrta_pde.schedule import PlateauDetector, Schedule

LossTerms = Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor


class NonFiniteLossWarning(RuntimeWarning):
    """Training stopped on a NaN or infinite loss (the message says where)."""


@dataclass
class Position:
    """Where a run is in its schedule (plain data, saved in checkpoints)."""

    stage: int = 0              # 0-based index of the current stage
    stage_iteration: int = 0    # iterations done in the current stage
    iteration: int = 0          # iterations done in total
    plateau: dict | None = None  # PlateauDetector state of the current stage (when resuming)
    elapsed: float = 0.0        # seconds of training before this call
    detector: object = field(default=None, repr=False, compare=False)  # the live detector

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "detector"}
        if self.detector is not None:  # serialised only when asked (a checkpoint), not per iteration
            state["plateau"] = self.detector.state_dict()
        return state


@dataclass
class TrainResult:
    """What :func:`train` returns. ``status`` is ``"completed"``, ``"nonfinite"`` or ``"stopped"``."""

    history: History
    optimizer: torch.optim.Optimizer
    position: Position
    status: str = "completed"
    message: str = ""
    seconds: float = 0.0
    optimizers: "StageOptimizers | None" = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"


@dataclass
class Hooks:
    """Optional hooks. ``after_step(position) -> bool``: True stops the run (e.g. on SIGINT),
    leaving it resumable; ``every``: call ``after_step`` every this many iterations."""

    after_step: Callable[[Position], bool] | None = None
    every: int = 1


def _split_terms(out: LossTerms) -> tuple[tuple[str, ...], list[torch.Tensor]]:
    if isinstance(out, Mapping):
        return tuple(out), list(out.values())
    if isinstance(out, torch.Tensor):
        if out.ndim == 0:
            return ("loss",), [out]
        flat = out.reshape(-1)
        return tuple(f"loss_{i}" for i in range(flat.numel())), list(flat.unbind())
    out = list(out)
    return tuple(f"loss_{i}" for i in range(len(out))), out


def _total(terms: list[torch.Tensor]) -> torch.Tensor:
    total = terms[0].reshape(())
    for term in terms[1:]:
        total = total + term.reshape(())
    return total


def _numbers(total: torch.Tensor, terms: list[torch.Tensor]) -> list[float]:
    """``[total, *terms]`` as Python floats, with one device synchronisation."""
    with torch.no_grad():
        if len(terms) == 1:
            value = total.item()
            return [value, value]
        return torch.stack([total.reshape(())] + [t.reshape(()) for t in terms]).tolist()


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

    def step(self, optimizer: str, loss: float, loss_fn: Callable[[], LossTerms]) -> tuple[float, bool]:
        """One update from the gradients in ``p.grad`` (of loss ``loss``); ``(step size, converged)``."""
        if optimizer == "adam":
            self.adam.step()
            return self.adam.param_groups[0]["lr"], False
        if optimizer == "lbfgs":
            return self._lbfgs_step(loss, loss_fn)
        step, _ = engd_update(self.params, self.jacobian, lambda: _value(loss_fn), loss, self.engd)
        return step, step == 0.0 or math.isnan(step)

    def _lbfgs_step(self, loss: float, loss_fn) -> tuple[float, bool]:
        opt, first = self.lbfgs, [True]

        def closure():
            if first[0]:  # the loss and gradients at the current parameters are already there
                first[0] = False
                return torch.tensor(loss)
            opt.zero_grad(set_to_none=True)
            total = _total(_split_terms(loss_fn())[1])
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


def _value(loss_fn) -> float:
    return float(_total(_split_terms(loss_fn())[1]).detach())


def train(net: torch.nn.Module, loss_fn: Callable[[], LossTerms], schedule: Schedule, *,
          parameters=None, optimizer: torch.optim.Optimizer | StageOptimizers | None = None,
          history: History | None = None, position: Position | None = None,
          record_every: int = 1, progress: bool = False, hooks: Hooks | None = None,
          description: str = "", jacobian: Callable[[], torch.Tensor] | None = None,
          engd: EngdOptions | None = None) -> TrainResult:
    """Run the stages of ``schedule`` on ``net``.

    Args:
        net: the network; every :class:`~hrta_pde.activation.HomotopyActivation` in it gets the
            stage's ``s``.
        loss_fn: ``loss_fn() -> {name: scalar tensor}`` (or a tensor / list of terms); the
            training loss is the sum of the terms.
        schedule: the stages, each with its optimizer (``adam``, ``lbfgs``, ``engd``).
        parameters: what is trained (default ``net.parameters()``).
        optimizer: continue with this Adam (its state is kept) or these :class:`StageOptimizers`.
        history, position: continue a run (from a checkpoint) instead of starting one.
        record_every: write a history row every this many iterations (and at stage ends).
        progress: show a tqdm bar (stage, s, loss).
        hooks: see :class:`Hooks`.
        jacobian, engd: for ``engd`` stages, ``jacobian() -> W^(1/2) J`` of the loss's Gram terms
            (:class:`~hrta_pde.engd.GramJacobian`) and the step options.

    Example::

        net = HomotopyNet(1, [1000], "relu", s=0.5)
        x = torch.linspace(0, 1, 100)[:, None]; y = torch.sin(2 * torch.pi * x)
        result = train(net, lambda: {"data": 0.5 * ((net(x) - y) ** 2).mean()},
                       parse_schedule("0.5:3000,1:13000"))
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule={schedule!r} is not a Schedule: build one with "
                        "Schedule([...]) or parse_schedule('0.5:3000,1:13000')")
    if record_every <= 0:
        raise ValueError(f"record_every={record_every} must be a positive integer")
    params = [p for p in (net.parameters() if parameters is None else parameters) if p.requires_grad]
    pos = position or Position()
    opts = optimizer if isinstance(optimizer, StageOptimizers) else StageOptimizers(
        params, schedule, adam=optimizer, jacobian=jacobian, engd=engd)
    if "engd" in schedule.optimizers and hasattr(opts.jacobian, "bytes_needed"):
        check_memory(opts.jacobian, params[0].dtype, opts.engd, params[0].device)
    hooks = hooks or Hooks()
    snapshot = [p.detach().clone() for p in params]
    t_start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=schedule.total_iterations, initial=pos.iteration, desc=description or "train",
                   disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True)
    result = TrainResult(history if history is not None else History(), opts.adam, pos, optimizers=opts)
    hist = result.history
    try:
        while pos.stage < len(schedule.stages):
            stage = schedule.stages[pos.stage]
            set_s(net, stage.s)
            fresh = pos.stage_iteration == 0
            opts.enter(pos.stage, fresh)
            step_size = schedule.stage_lr(pos.stage)
            detector = PlateauDetector(stage.plateau) if stage.plateau is not None else None
            if fresh:
                if pos.stage > 0:
                    hist.switches.append(pos.iteration + 1)
            elif detector is not None and pos.plateau is not None:
                detector.load_state_dict(pos.plateau)
            ended_early = False
            while pos.stage_iteration < stage.iterations:
                names, terms = _split_terms(loss_fn())
                total = _total(terms)
                for p in params:
                    p.grad = None
                total.backward()
                numbers = _numbers(total, terms)
                loss = numbers[0]
                iteration = pos.iteration + 1
                if not hist.term_names and not hist.rows:
                    hist.term_names = names
                if not math.isfinite(loss):
                    with torch.no_grad():
                        for p, q in zip(params, snapshot):
                            p.copy_(q)
                    hist.append(iteration, pos.stage + 1, stage.s, step_size, loss, numbers[1:],
                                pos.elapsed + time.perf_counter() - t_start, stage.optimizer)
                    result.status = "nonfinite"
                    kept = (f"the parameters were restored to those of iteration {iteration - 1}, the last "
                            "with a finite loss" if iteration > 1 else
                            "the initial parameters were kept (no finite loss was reached)")
                    result.message = (
                        f"the loss became {loss} at iteration {iteration} (stage {pos.stage + 1}, "
                        f"s={stage.s:g}, {stage.optimizer}, step {step_size:g}); training stopped and {kept}: "
                        "lower the learning rate or check the problem data")
                    warnings.warn(result.message, NonFiniteLossWarning, stacklevel=2)
                    return result
                with torch.no_grad():
                    torch._foreach_copy_(snapshot, params)
                step_size, converged = opts.step(stage.optimizer, loss, loss_fn)
                pos.iteration = iteration
                pos.stage_iteration += 1
                if converged or (detector is not None and detector.update(loss)):
                    ended_early = True
                last = ended_early or pos.stage_iteration == stage.iterations
                if iteration % record_every == 0 or last:
                    hist.append(iteration, pos.stage + 1, stage.s, step_size, loss, numbers[1:],
                                pos.elapsed + time.perf_counter() - t_start, stage.optimizer)
                if bar is not None and (iteration % 50 == 0 or last or stage.optimizer != "adam"):
                    bar.n = iteration
                    bar.set_postfix_str(f"stage {pos.stage + 1}/{len(schedule.stages)} s={stage.s:g} "
                                        f"{stage.optimizer} loss={loss:.3e}", refresh=True)
                if ended_early:
                    break
                pos.detector = detector
                if hooks.after_step is not None and iteration % hooks.every == 0:
                    if hooks.after_step(pos):
                        result.status = "stopped"
                        result.message = f"stopped at iteration {iteration} (stage {pos.stage + 1})"
                        return result
            pos.stage += 1
            pos.stage_iteration = 0
            pos.plateau = pos.detector = None
        return result
    finally:
        now = time.perf_counter() - t_start
        result.seconds = now
        pos.elapsed += now
        if bar is not None:
            bar.close()


def model_loss_fn(model) -> Callable[[], torch.Tensor]:
    """The training loss terms of a compiled ``dde.Model`` (loss weights applied), as a closure.

    The training points are converted to tensors once, on the device of the network.
    """
    if model.outputs_losses_train is None:
        raise ValueError("the dde.Model is not compiled: call model.compile('adam', lr=...) "
                         "(or let hrta_pde.train_model do it) before training")
    device = next(model.net.parameters()).device
    batch = model.data.train_next_batch(model.batch_size)
    model.train_state.set_data_train(*batch)
    ts = model.train_state

    def to_tensor(value):
        if value is None:
            return None
        if isinstance(value, (tuple, list)):
            return tuple(to_tensor(v) for v in value)
        return torch.as_tensor(value, device=device)

    x, y, aux = to_tensor(ts.X_train), to_tensor(ts.y_train), to_tensor(ts.train_aux_vars)

    def loss_fn():
        return model.outputs_losses_train(x, y, aux)[1]

    return loss_fn


def model_residuals(model) -> Callable[[], list]:
    """The residuals of a compiled ``dde.Model`` on ``dde.data.PDE`` data: ``[(weight, r_k), ...]``.

    DeepXDE's loss is ``sum_k w_k mean(r_k^2)`` (mean squared errors, its default): ``r_k`` are the
    PDE residuals at the collocation points and each boundary condition's errors.
    """
    data = model.data
    if not hasattr(data, "pde") or not hasattr(data, "bcs"):
        raise EngdError(f"engd on a dde.Model needs PDE data (dde.data.PDE or TimePDE); "
                        f"{type(data).__name__} has no residuals: use adam or lbfgs stages")
    device = next(model.net.parameters()).device
    x = torch.as_tensor(model.train_state.X_train, device=device)  # the points model_loss_fn chose
    weights = model.loss_weights

    def residuals():
        captured = []

        def capture(target, error):
            captured.append(error.reshape(-1))
            return torch.mean(error**2)

        inputs = x.detach().requires_grad_(True)
        outputs = model.net(inputs)
        data.losses(None, outputs, capture, inputs, model)
        w = weights if weights is not None else [1.0] * len(captured)
        return list(zip(w, captured))

    return residuals


def train_model(model, schedule: Schedule, **kwargs) -> TrainResult:
    """Run ``schedule`` on an existing ``dde.Model`` (compiled with Adam or L-BFGS, or not compiled).

    Every optimizer works: Adam stages use the driver's Adam, which stays in ``model.opt``
    afterwards so a later ``model.train`` continues from its state; L-BFGS stages use
    ``torch.optim.LBFGS``; ENGD stages take the Gauss-Newton matrix of DeepXDE's mean-squared
    residuals (:func:`model_residuals`), its Jacobian built by reverse mode one residual at a time.
    ``model.train_state.step`` advances by the iterations run. DeepXDE's ``LossHistory`` is not
    touched: the returned :class:`~hrta_pde.history.History` is the record.
    """
    if model.opt_name is None:
        model.compile("adam", lr=schedule.lr)
    elif str(model.opt_name).lower() not in ("adam", "l-bfgs", "l-bfgs-b"):
        raise ValueError(f"model was compiled with optimizer {model.opt_name!r}; the driver runs adam, "
                         "lbfgs and engd stages itself: compile with 'adam' or 'L-BFGS', or leave the model "
                         "uncompiled")
    params = list(model.net.parameters()) + list(model.external_trainable_variables)
    optimizer = kwargs.pop("optimizer", None)
    loss_fn = model_loss_fn(model)
    if optimizer is None:
        jacobian = None
        if "engd" in schedule.optimizers:
            jacobian = ResidualJacobian(model_residuals(model), params)
        optimizer = StageOptimizers(params, schedule, jacobian=jacobian, engd=kwargs.pop("engd", None))
    start = kwargs["position"].iteration if kwargs.get("position") is not None else 0
    result = train(model.net, loss_fn, schedule, parameters=params,
                   optimizer=optimizer, **kwargs)
    model.opt = result.optimizer
    done = result.position.iteration - start
    model.train_state.step += done
    model.train_state.iteration += done
    return result
