"""The multi-stage HRTA driver (Algorithm 1 of the paper, METHOD.md section 2).

For each stage ``p``: set every homotopy activation to ``s_p``, set the learning rate, and run
Adam from the parameters reached at the end of stage ``p - 1`` (optionally with a fresh Adam
state). The loop is a plain PyTorch loop -- one forward, one backward, one ``step`` and one
host synchronisation per iteration -- so it costs about what a hand-written loop costs.

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

    @property
    def ok(self) -> bool:
        return self.status == "completed"


@dataclass
class Hooks:
    """Optional hooks. ``after_step(position) -> bool``: True stops the run (e.g. on SIGINT),
    leaving it resumable; ``every``: call ``after_step`` every this many iterations."""

    after_step: Callable[[Position], bool] | None = None
    every: int = 1
    extra: dict = field(default_factory=dict)


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


def train(net: torch.nn.Module, loss_fn: Callable[[], LossTerms], schedule: Schedule, *,
          parameters=None, optimizer: torch.optim.Optimizer | None = None,
          history: History | None = None, position: Position | None = None,
          record_every: int = 1, progress: bool = False, hooks: Hooks | None = None,
          description: str = "") -> TrainResult:
    """Run the stages of ``schedule`` on ``net``.

    Args:
        net: the network; every :class:`~hrta_pde.activation.HomotopyActivation` in it gets the
            stage's ``s``.
        loss_fn: ``loss_fn() -> {name: scalar tensor}`` (or a tensor / list of terms); the
            training loss is the sum of the terms.
        schedule: the stages.
        parameters: what Adam trains (default ``net.parameters()``).
        optimizer: continue with this optimizer (its state is kept); default a new Adam.
        history, position: continue a run (from a checkpoint) instead of starting one.
        record_every: write a history row every this many iterations (and at stage ends).
        progress: show a tqdm bar (stage, s, loss).
        hooks: see :class:`Hooks`.

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
    if optimizer is None:
        optimizer = make_adam(params, schedule.stage_lr(min(pos.stage, len(schedule.stages) - 1)))
    hooks = hooks or Hooks()
    snapshot = [p.detach().clone() for p in params]
    t_start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=schedule.total_iterations, initial=pos.iteration, desc=description or "train",
                   disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True)
    result = TrainResult(history if history is not None else History(), optimizer, pos)
    hist = result.history
    try:
        while pos.stage < len(schedule.stages):
            stage = schedule.stages[pos.stage]
            lr = schedule.stage_lr(pos.stage)
            set_s(net, stage.s)
            for group in optimizer.param_groups:
                group["lr"] = lr
            detector = PlateauDetector(stage.plateau) if stage.plateau is not None else None
            if pos.stage_iteration == 0:
                if pos.stage > 0:
                    hist.switches.append(pos.iteration + 1)
                    if schedule.reset_optimizer:
                        optimizer.state.clear()
            elif detector is not None and pos.plateau is not None:
                detector.load_state_dict(pos.plateau)
            ended_early = False
            while pos.stage_iteration < stage.iterations:
                names, terms = _split_terms(loss_fn())
                total = _total(terms)
                optimizer.zero_grad(set_to_none=True)
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
                    hist.append(iteration, pos.stage + 1, stage.s, lr, loss, numbers[1:],
                                pos.elapsed + time.perf_counter() - t_start)
                    result.status = "nonfinite"
                    kept = (f"the parameters were restored to those of iteration {iteration - 1}, the last "
                            "with a finite loss" if iteration > 1 else
                            "the initial parameters were kept (no finite loss was reached)")
                    result.message = (
                        f"the loss became {loss} at iteration {iteration} (stage {pos.stage + 1}, "
                        f"s={stage.s:g}, lr={lr:g}); training stopped and {kept}: "
                        "lower the learning rate or check the problem data")
                    warnings.warn(result.message, NonFiniteLossWarning, stacklevel=2)
                    return result
                with torch.no_grad():
                    torch._foreach_copy_(snapshot, params)
                optimizer.step()
                pos.iteration = iteration
                pos.stage_iteration += 1
                if detector is not None and detector.update(loss):
                    ended_early = True
                last = ended_early or pos.stage_iteration == stage.iterations
                if iteration % record_every == 0 or last:
                    hist.append(iteration, pos.stage + 1, stage.s, lr, loss, numbers[1:],
                                pos.elapsed + time.perf_counter() - t_start)
                if bar is not None and (iteration % 50 == 0 or last):
                    bar.n = iteration
                    bar.set_postfix_str(f"stage {pos.stage + 1}/{len(schedule.stages)} s={stage.s:g} "
                                        f"loss={loss:.3e}", refresh=True)
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


def train_model(model, schedule: Schedule, **kwargs) -> TrainResult:
    """Run ``schedule`` on an existing ``dde.Model`` (compiled with Adam, or not compiled yet).

    The model's own optimizer is replaced by the driver's Adam, which stays in ``model.opt``
    afterwards so a later ``model.train`` continues from its state. ``model.train_state.step``
    advances by the iterations run. DeepXDE's ``LossHistory`` is not touched: the returned
    :class:`~hrta_pde.history.History` is the record.
    """
    if model.opt_name is None:
        model.compile("adam", lr=schedule.lr)
    elif str(model.opt_name).lower() != "adam":
        raise ValueError(f"model was compiled with optimizer {model.opt_name!r}; HRTA stages use Adam: "
                         "compile with 'adam' or leave the model uncompiled")
    params = list(model.net.parameters()) + list(model.external_trainable_variables)
    optimizer = kwargs.pop("optimizer", None) or make_adam(params, schedule.stage_lr(0))
    start = kwargs["position"].iteration if kwargs.get("position") is not None else 0
    result = train(model.net, model_loss_fn(model), schedule, parameters=params,
                   optimizer=optimizer, **kwargs)
    model.opt = result.optimizer
    done = result.position.iteration - start
    model.train_state.step += done
    model.train_state.iteration += done
    return result
