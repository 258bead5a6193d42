"""The command line's error boundary: every failure becomes one line and an exit status.

``2``: the input was wrong (a bad value, file or setting: every ``ValueError`` of the package, and
a DeepXDE backend other than PyTorch); ``1``: the run failed (disk full, out of memory, an input
too deeply nested for the interpreter, or a bug). With ``--debug`` or ``HRTA_PDE_DEBUG=1`` the
traceback is shown instead, for bug reports.
"""
from __future__ import annotations

import errno
import os

USAGE, RUNTIME = 2, 1
_MAX_MESSAGE = 400


def debug_requested(argv) -> bool:
    """``--debug`` anywhere on the command line, or ``HRTA_PDE_DEBUG`` set to anything but 0."""
    return "--debug" in (argv or ()) or os.environ.get("HRTA_PDE_DEBUG", "") not in ("", "0")


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    text = lines[0].strip() if lines else ""
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."


def _os_message(err: OSError) -> str:
    where = f" {err.filename}" if err.filename else ""
    reason = err.strerror or _first_line(err) or type(err).__name__
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write{where}: {reason}; free some space or choose another folder with --out"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where}: {reason}; choose another folder with --out"
    return f"input/output error{' on' + where if where else ''}: {reason}"


def classify(err: BaseException) -> tuple[int, str]:
    """``(exit status, one-line message)`` for an exception that reached the command line."""
    import torch

    from hrta_pde._backend import BackendError

    if isinstance(err, (ValueError, BackendError)):
        return USAGE, _first_line(err) or type(err).__name__
    if isinstance(err, RecursionError):
        return RUNTIME, ("an input is nested too deeply for the interpreter (RecursionError); "
                         "simplify the expression")
    if isinstance(err, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return RUNTIME, ("out of memory while running; lower --width, --points or --test-points "
                         f"({type(err).__name__})")
    if isinstance(err, OSError):
        return RUNTIME, _os_message(err)
    return RUNTIME, (f"internal error: {type(err).__name__}: {_first_line(err)}; rerun with --debug "
                     "for the traceback and report it")
