"""The multi-stage HRTA driver (Algorithm 1 of the paper, METHOD.md section 2).

For each stage ``p``: set every homotopy activation to ``s_p``, set the learning rate, and run the
stage's optimizer (Adam, L-BFGS or the energy natural gradient,
:class:`~hrta_pde.stages.StageOptimizers`) from the parameters reached at the end of stage
``p - 1``; what a switch, a step and a non-finite loss do is :class:`~hrta_pde.stages.StageMachine`.
This module computes the loss and calls the optimizer: a plain PyTorch loop -- one forward, one
backward, one ``step`` and one host synchronisation per Adam iteration -- so it costs about what a
hand-written loop costs.

Two entry points:

* :func:`train` -- any ``torch.nn.Module`` and a ``loss_fn()`` returning named loss terms.
* :func:`train_model` -- an existing ``dde.Model`` (its data, loss and loss weights).

A non-finite loss stops training: the parameters are restored to the last ones whose loss was
finite, the history so far is kept, and the result says at which stage and iteration it happened.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch

from hrta_pde.engd import EngdError, EngdOptions, ResidualJacobian, check_memory
from hrta_pde.history import History
from hrta_pde.schedule import Schedule
from hrta_pde.stages import Position, StageMachine, StageOptimizers, check_record_every

LossTerms = Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | torch.Tensor


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

    The stage switches, the records and the stop on a non-finite loss are those of
    :class:`~hrta_pde.stages.StageMachine`.

    Example::

        net = HomotopyNet(1, [1000], "relu", s=0.5)
        x = torch.linspace(0, 1, 100)[:, None]; y = torch.sin(2 * torch.pi * x)
        result = train(net, lambda: {"data": 0.5 * ((net(x) - y) ** 2).mean()},
                       parse_schedule("0.5:3000,1:13000"))
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule={schedule!r} is not a Schedule: build one with "
                        "Schedule([...]) or parse_schedule('0.5:3000,1:13000')")
    check_record_every(record_every)
    params = [p for p in (net.parameters() if parameters is None else parameters) if p.requires_grad]
    opts = optimizer if isinstance(optimizer, StageOptimizers) else StageOptimizers(
        params, schedule, adam=optimizer, jacobian=jacobian, engd=engd)
    if "engd" in schedule.optimizers and hasattr(opts.jacobian, "bytes_needed"):
        check_memory(opts.jacobian, params[0].dtype, opts.engd, params[0].device)
    machine = StageMachine(net, schedule, opts, params, history=history, position=position,
                           record_every=record_every)
    pos = machine.position
    bar = _progress_bar(schedule, pos, description) if progress else None
    result = TrainResult(machine.history, opts.adam, pos, optimizers=opts)
    try:
        while not machine.finished:
            machine.enter()
            if _run_stage(machine, params, loss_fn, hooks or Hooks(), bar):
                break
            machine.next_stage()
        return result
    finally:
        result.status, result.message = machine.status, machine.message
        now = time.perf_counter() - machine.t0
        result.seconds = now
        pos.elapsed += now
        if bar is not None:
            bar.close()


def _run_stage(machine: StageMachine, params, loss_fn, hooks: Hooks, bar) -> bool:
    """Run the current stage to its end; True if the run stopped inside it."""
    stage, pos = machine.stage, machine.position

    def total_fn():
        return _total(_split_terms(loss_fn())[1])

    while machine.in_stage:
        machine.save_parameters()
        names, terms = _split_terms(loss_fn())
        total = _total(terms)
        for p in params:
            p.grad = None
        total.backward()
        numbers = _numbers(total, terms)
        if not machine.check(numbers, names, stacklevel=3):  # the warning points at train's caller
            return True
        step_size, converged = machine.optimizers.step(stage.optimizer, numbers[0], total_fn)
        ended = machine.advance(numbers, step_size, converged)
        if bar is not None and (pos.iteration % 50 == 0 or ended or not machine.in_stage
                                or stage.optimizer != "adam"):
            bar.n = pos.iteration
            bar.set_postfix_str(f"stage {pos.stage + 1}/{len(machine.schedule.stages)} s={stage.s:g} "
                                f"{stage.optimizer} loss={numbers[0]:.3e}", refresh=True)
        # a stage that ended early has no iterations left (advance): the loop ends after the hooks
        if hooks.after_step is not None and pos.iteration % hooks.every == 0 and hooks.after_step(pos):
            machine.stop(f"stopped at iteration {pos.iteration} (stage {pos.stage + 1})")
            return True
    return False


def _progress_bar(schedule: Schedule, pos: Position, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=schedule.total_iterations, initial=pos.iteration, desc=description or "train",
                disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True)


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
