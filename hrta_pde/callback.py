"""HRTA as a DeepXDE callback: add it to an existing ``model.train`` call in one line.

    model.compile("adam", lr=1e-3)
    model.train(iterations=schedule.total_iterations, callbacks=[HRTACallback(schedule)])

At the start of each stage the callback sets ``s`` on every homotopy activation of
``model.net``, the learning rate of ``model.opt``, and (if the schedule says so) clears Adam's
state. It reads the training loss of every step (without an extra forward pass) to evaluate
plateau rules, to keep a :class:`~hrta_pde.history.History`, and to stop on a non-finite loss
with the parameters of the last finite one restored (DeepXDE alone stops silently on NaN).
When the last stage ends early the callback stops ``model.train``. All of this is the driver's
:class:`~hrta_pde.stages.StageMachine`; the callback only feeds it the losses of DeepXDE's steps.
"""
from __future__ import annotations

import numpy as np
import torch

from hrta_pde._backend import import_deepxde
from hrta_pde.history import History
from hrta_pde.schedule import Schedule
from hrta_pde.stages import StageMachine, StageOptimizers, check_record_every

dde = import_deepxde()


class HRTACallback(dde.callbacks.Callback):
    """Switch ``s`` and the learning rate at the schedule's stage boundaries inside ``model.train``.

    Iterations are counted from the ``train`` call (``model.train_state.step`` at
    ``on_train_begin``). Attributes after training: ``history``, ``status`` (``"completed"``,
    ``"nonfinite"``, ``"running"``), ``message``; ``machine`` is the
    :class:`~hrta_pde.stages.StageMachine` of the last ``train`` call (``machine.position``).
    """

    def __init__(self, schedule: Schedule, record_every: int = 1):
        super().__init__()
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule={schedule!r} is not a Schedule")
        if schedule.optimizers != ("adam",):
            raise ValueError(f"HRTACallback runs inside model.train, whose optimizer is the model's own; the "
                             f"schedule asks for {', '.join(schedule.optimizers)}: run it with "
                             "hrta_pde.train_model(model, schedule) instead")
        self.schedule = schedule
        self.record_every = check_record_every(int(record_every))
        self.history = History()
        self.status = "running"
        self.message = ""
        self.machine: StageMachine | None = None

    def on_train_begin(self):
        if isinstance(self.model.opt, torch.optim.LBFGS):
            raise ValueError(
                "HRTACallback switches s between steps of model.train, and DeepXDE's L-BFGS runs many "
                "iterations inside one step: for L-BFGS stages use hrta_pde.train_model(model, "
                "parse_schedule('1:5000,1:1000@lbfgs')), which runs adam, lbfgs and engd stages on this model")
        if self.model.opt is None or not isinstance(self.model.opt, torch.optim.Adam):
            raise ValueError("HRTACallback needs a model compiled with 'adam' (DeepXDE PyTorch backend); "
                             "for other optimizers use hrta_pde.train_model(model, schedule)")
        params = [p for p in self.model.net.parameters() if p.requires_grad]
        optimizers = StageOptimizers(params, self.schedule, adam=self.model.opt)
        self.machine = StageMachine(self.model.net, self.schedule, optimizers, params,
                                    history=self.history, record_every=self.record_every)
        self._last_losses = None
        self._pending_switch = False
        self.machine.enter()
        self._capture_losses(params[0])

    def _capture_losses(self, first_param: torch.Tensor) -> None:
        """Wrap ``model.data.losses_train`` to keep the weighted loss terms of each step."""
        data = self.model.data
        self._orig_losses_train = data.losses_train
        weights = self.model.loss_weights

        def capture(*args, **kwargs):  # called once per training step by DeepXDE's closure
            out = self._orig_losses_train(*args, **kwargs)
            if not first_param.requires_grad:
                return out  # DeepXDE's evaluation (_test) of the updated parameters, not a step
            terms = out if isinstance(out, list) else [out]
            stacked = torch.stack([t.reshape(()) for t in terms]).detach()
            if weights is not None:
                stacked = stacked * torch.as_tensor(weights, dtype=stacked.dtype, device=stacked.device)
            self._last_losses = stacked
            return out

        data.losses_train = capture

    def on_train_end(self):
        self.model.data.losses_train = self._orig_losses_train
        if self.status == "running":
            self.status = "completed"

    def on_batch_begin(self):
        if self._pending_switch:
            self._pending_switch = False
            self.machine.enter()
        self.machine.save_parameters()

    def on_batch_end(self):
        machine = self.machine
        values = self._last_losses.tolist() if self._last_losses is not None else [np.nan]
        numbers = [float(np.sum(values)), *values]
        # the loss of this step is that of the parameters it started from: a non-finite one
        # puts back those of the step before
        if not machine.check(numbers, tuple(f"loss_{i}" for i in range(len(values)))):
            self.status, self.message = machine.status, machine.message
            self.model.stop_training = True
            return
        ended = machine.advance(numbers, self.schedule.stage_lr(machine.position.stage))
        if ended or not machine.in_stage:
            machine.next_stage()
            if machine.finished:
                self.status = "completed"
                self.model.stop_training = True
            else:
                self._pending_switch = True
