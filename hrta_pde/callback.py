"""HRTA as a DeepXDE callback: add it to an existing ``model.train`` call in one line.

    model.compile("adam", lr=1e-3)
    model.train(iterations=schedule.total_iterations, callbacks=[HRTACallback(schedule)])

At the start of each stage the callback sets ``s`` on every homotopy activation of
``model.net``, the learning rate of ``model.opt``, and (if the schedule says so) clears Adam's
state. It reads the training loss of every step (without an extra forward pass) to evaluate
plateau rules, to keep a :class:`~hrta_pde.history.History`, and to stop on a non-finite loss
with the parameters of the last finite one restored (DeepXDE alone stops silently on NaN).
When the last stage ends early the callback stops ``model.train``.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch

from hrta_pde._backend import import_deepxde
from hrta_pde.history import History
from hrta_pde.networks import set_s
from hrta_pde.schedule import PlateauDetector, Schedule
from hrta_pde.train import NonFiniteLossWarning

dde = import_deepxde()


class HRTACallback(dde.callbacks.Callback):
    """Switch ``s`` and the learning rate at the schedule's stage boundaries inside ``model.train``.

    Iterations are counted from the ``train`` call (``model.train_state.step`` at
    ``on_train_begin``). Attributes after training: ``history``, ``status`` (``"completed"``,
    ``"nonfinite"``, ``"running"``), ``message``.
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
        self.record_every = int(record_every)
        self.history = History()
        self.status = "running"
        self.message = ""

    # -- stage bookkeeping -------------------------------------------------------------------
    def _enter_stage(self, index: int) -> None:
        self.stage = index
        self.stage_iteration = 0
        st = self.schedule.stages[index]
        set_s(self.model.net, st.s)
        for group in self.model.opt.param_groups:
            group["lr"] = self.schedule.stage_lr(index)
        if index > 0:
            self.history.switches.append(self.iteration + 1)
            if self.schedule.reset_optimizer:
                self.model.opt.state.clear()
        self.detector = PlateauDetector(st.plateau) if st.plateau is not None else None

    def on_train_begin(self):
        if isinstance(self.model.opt, torch.optim.LBFGS):
            raise ValueError(
                "HRTACallback switches s between steps of model.train, and DeepXDE's L-BFGS runs many "
                "iterations inside one step: for L-BFGS stages use hrta_pde.train_model(model, "
                "parse_schedule('1:5000,1:1000@lbfgs')), which runs adam, lbfgs and engd stages on this model")
        if self.model.opt is None or not isinstance(self.model.opt, torch.optim.Adam):
            raise ValueError("HRTACallback needs a model compiled with 'adam' (DeepXDE PyTorch backend); "
                             "for other optimizers use hrta_pde.train_model(model, schedule)")
        self.params = [p for p in self.model.net.parameters() if p.requires_grad]
        self.snapshots = [[p.detach().clone() for p in self.params] for _ in range(2)]
        self.iteration = 0
        self.t0 = time.perf_counter()
        self._last_losses = None
        self._pending_switch = False
        self._enter_stage(0)
        data = self.model.data
        self._orig_losses_train = data.losses_train
        weights = self.model.loss_weights

        def capture(*args, **kwargs):  # called once per training step by DeepXDE's closure
            out = self._orig_losses_train(*args, **kwargs)
            if not self.params[0].requires_grad:
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
            self._enter_stage(self.stage + 1)
        slot = self.snapshots[self.iteration % 2]
        with torch.no_grad():
            torch._foreach_copy_(slot, [p.detach() for p in self.params])

    def on_batch_end(self):
        self.iteration += 1
        self.stage_iteration += 1
        st = self.schedule.stages[self.stage]
        values = self._last_losses.tolist() if self._last_losses is not None else [math.nan]
        loss = float(np.sum(values))
        if not math.isfinite(loss):
            # The loss of this step belongs to the parameters it started from; the last finite
            # parameters are those of the step before (kept in the other snapshot slot).
            with torch.no_grad():
                for p, q in zip(self.params, self.snapshots[(self.iteration - 2) % 2]):
                    p.copy_(q)
            self._record(loss, values, st, force=True)
            self.status = "nonfinite"
            self.message = (f"the loss became {loss} at iteration {self.iteration} (stage {self.stage + 1}, "
                            f"s={st.s:g}); training stopped and the parameters were restored to "
                            f"iteration {self.iteration - 1}, the last with a finite loss")
            warnings.warn(self.message, NonFiniteLossWarning, stacklevel=2)
            self.model.stop_training = True
            return
        ended = self.stage_iteration >= st.iterations or (
            self.detector is not None and self.detector.update(loss))
        self._record(loss, values, st, force=ended)
        if ended:
            if self.stage + 1 < len(self.schedule.stages):
                self._pending_switch = True
            else:
                self.status = "completed"
                self.model.stop_training = True

    def _record(self, loss, values, st, force=False):
        if not self.history.term_names:
            self.history.term_names = tuple(f"loss_{i}" for i in range(len(values)))
        if force or self.iteration % self.record_every == 0:
            self.history.append(self.iteration, self.stage + 1, st.s, self.schedule.stage_lr(self.stage),
                                loss, values, time.perf_counter() - self.t0)
