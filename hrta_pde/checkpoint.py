"""Checkpoints that resume exactly, written atomically, and Ctrl-C that saves one.

A checkpoint holds the network (with ``s``), the optimizer state, the position in the schedule
(stage, iteration inside it, plateau-rule state), the history, the training points and the
random number generator states. It is written to a temporary file in the same folder and then
renamed over the previous one (``os.replace`` is atomic on POSIX), so a crash during a write
leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"
FORMAT = "hrta_pde-checkpoint-1"


class CheckpointError(ValueError):
    """A run folder without a usable checkpoint, or one that does not match the problem."""


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous checkpoint is untouched
        raise
    return path


def load_checkpoint(run_dir: str | os.PathLike) -> dict:
    """Read ``RUN_DIR/checkpoint.pt``; a clear :class:`CheckpointError` if it is not a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume {str(run_dir)!r}: no such folder; give the run folder that "
                              "an interrupted 'hrta-pde solve' printed")
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"--resume {str(run_dir)!r}: not a run folder (no {CHECKPOINT}); give the "
                              "folder that an interrupted 'hrta-pde solve' printed")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a damaged or foreign file: say which
        raise CheckpointError(f"{path} cannot be read ({type(err).__name__}); it is damaged or not "
                              "a hrta_pde checkpoint") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hrta_pde checkpoint (format {data.get('format') if isinstance(data, dict) else '?'})")
    return data


class InterruptFlag:
    """Set by SIGINT while training; the training loop checks it after each iteration."""

    def __init__(self):
        self.raised = False

    def __bool__(self) -> bool:
        return self.raised


@contextmanager
def catch_sigint():
    """Within the block, Ctrl-C (SIGINT) sets a flag instead of raising ``KeyboardInterrupt``.

    A second Ctrl-C raises ``KeyboardInterrupt`` as usual. Outside the main thread this is a no-op.
    """
    flag = InterruptFlag()
    try:
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if flag.raised:
                raise KeyboardInterrupt
            flag.raised = True

        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
