"""Checkpoints that resume exactly, written atomically, and Ctrl-C that saves one.

A checkpoint holds the network (with ``s``), the optimizer state, the position in the schedule
(stage, iteration inside it, plateau-rule state), the history, the training points and the
random number generator states. It is written to a temporary file in the same folder and then
renamed over the previous one (``os.replace`` is atomic on POSIX), so a crash during a write
leaves the previous checkpoint intact.

Checkpoints hold only tensors and plain data (dicts, lists, numbers, strings) and are read with
``torch.load(..., weights_only=True)``: a run folder is something people share, and a pickle that
asks for anything else (a class, a function: code) is refused instead of run.
"""
from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from hrta_pde.io.atomic import atomic_write
from hrta_pde.signals import catch_interrupts

CHECKPOINT = "checkpoint.pt"
FORMAT = "hrta_pde-checkpoint-2"  # 2: plain data only (1 pickled numpy arrays)

#: What a ``solve`` checkpoint must hold, and the type of each entry.
SOLVE_KEYS = {"net": dict, "optimizer": dict, "position": dict, "history": dict, "rng": dict,
              "config": dict, "problem": dict, "points": dict}
POSITION_KEYS = {"stage": int, "stage_iteration": int, "iteration": int, "elapsed": float}
RNG_KEYS = {"torch": torch.Tensor, "numpy": dict, "python": list}
POINTS_KEYS = {"x": torch.Tensor, "boundary": dict}


class CheckpointError(ValueError):
    """A run folder without a usable checkpoint, or one that does not match the problem."""


def rng_state() -> dict:
    """The random number generator states as tensors and plain data (no numpy objects)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": list(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, **payload}, fh)
    return atomic_write(path, write, fsync=True)


def read_plain(path: str | os.PathLike):
    """``torch.load`` of tensors and plain data only; a :class:`CheckpointError` for anything else.

    ``weights_only=True`` makes the unpickler refuse every global (class or function) outside
    torch's short list of tensor types, so a file crafted to run code is refused, not run.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found is None:  # not a global: a damaged file
            raise CheckpointError(f"{path} cannot be read (UnpicklingError); it is damaged or not a "
                                  "hrta_pde checkpoint") from None
        what = f" ({found.group(1)})"
        raise CheckpointError(f"{path} needs more than tensors and plain data to load{what}; refused, as "
                              "loading it could run code: use a checkpoint written by this version of "
                              "hrta_pde") from None
    except Exception as err:  # a damaged or foreign file: say which
        raise CheckpointError(f"{path} cannot be read ({type(err).__name__}); it is damaged or not "
                              "a hrta_pde checkpoint") from None


def load_checkpoint(run_dir: str | os.PathLike, *, command: str | None = None,
                    required: dict | None = None) -> dict:
    """Read ``RUN_DIR/checkpoint.pt``; a clear :class:`CheckpointError` if it is not a run folder.

    ``command`` (the command line's ``"solve --resume"``, ``"export"``) names what was asked in
    the messages; ``required`` maps the keys the checkpoint must hold to their types (default:
    those of a ``solve`` checkpoint).
    """
    run_dir = Path(run_dir)
    asked = f"{command} {str(run_dir)!r}" if command else f"run folder {str(run_dir)!r}"
    solve_run = "a run of 'hrta-pde solve'" if command else "a solve run"
    if not run_dir.is_dir():
        raise CheckpointError(f"{asked}: no such folder; give the folder of {solve_run}")
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{asked}: not a run folder (no {CHECKPOINT}); give the folder of {solve_run}")
    data = read_plain(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not a hrta_pde checkpoint of this version (format {found!r}, "
                              f"expected {FORMAT!r}); start a new run")
    check_entries(data, SOLVE_KEYS if required is None else required, path)
    check_parts(data, path)
    return data


def check_parts(data: dict, path) -> None:
    """The nested entries that resuming reads (position, random states, points), where present."""
    for key, required in (("position", POSITION_KEYS), ("rng", RNG_KEYS), ("points", POINTS_KEYS)):
        if key in data:
            check_entries(data[key], required, path, where=key)


def check_entries(data: dict, required: dict, path, where: str = "") -> None:
    """Every key of ``required`` is in ``data``, with a value of its type (a damaged checkpoint)."""
    for key, kind in required.items():
        label = f"{where}.{key}" if where else key
        if key not in data:
            raise CheckpointError(f"{path} has no {label!r}: it is damaged or not a hrta_pde checkpoint; "
                                  "start a new run")
        value = data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise CheckpointError(f"{path}: {label!r} is a {type(value).__name__}, not a {kind.__name__}: "
                                  "the checkpoint is damaged; start a new run")


def load_net_state(net: torch.nn.Module, state: dict, path) -> None:
    """``net.load_state_dict(state)``, refusing a state of another shape with one line."""
    try:
        net.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()
        detail = " ".join(first[1:2]).strip() if len(first) > 1 else (first[0] if first else "")
        raise CheckpointError(f"{path}: the saved network does not match its settings ({detail[:160]}); "
                              "the checkpoint is damaged or was edited: start a new run") from None


def catch_sigint():
    """Within the block, SIGINT and SIGTERM set a flag: see :func:`hrta_pde.signals.catch_interrupts`."""
    return catch_interrupts()
