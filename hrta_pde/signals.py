"""SIGINT and SIGTERM while training: set a flag, let the loop checkpoint and stop.

A batch scheduler sends SIGTERM some time before it kills a job; Ctrl-C sends SIGINT. Both are
handled alike: the first one sets a flag that the training loop checks after each iteration (it
then saves a checkpoint and stops), a second one raises ``KeyboardInterrupt`` as usual.

Contexts nest and share one flag: ``compare`` wraps the ``solve`` calls it makes, so a signal
received during any of them stops the comparison as a whole. :func:`received` tells the command
line which signal it was, for the exit status ``128 + signal number`` (130 for SIGINT, 143 for
SIGTERM).
"""
from __future__ import annotations

import signal
from contextlib import contextmanager

HANDLED = (signal.SIGINT, signal.SIGTERM)

_active: list["InterruptFlag"] = []  # the flags of the open contexts, outermost first
_last: int | None = None  # the last signal handled in this process


class InterruptFlag:
    """True once SIGINT or SIGTERM was received in the block; ``signum`` says which."""

    def __init__(self):
        self.signum: int | None = None

    @property
    def raised(self) -> bool:
        return self.signum is not None

    def __bool__(self) -> bool:
        return self.raised


def received() -> int | None:
    """The number of the last signal handled (None if none was)."""
    return _last


def exit_status(default: int = 130) -> int:
    """``128 + signal number`` of the last signal handled (``default`` if none was)."""
    return 128 + _last if _last is not None else default


def reset() -> None:
    """Forget the last signal (the start of a command, or a test)."""
    global _last
    _last = None


@contextmanager
def catch_interrupts():
    """Within the block, SIGINT and SIGTERM set a flag instead of stopping the process.

    Nested blocks share the outermost block's flag. Outside the main thread this is a no-op
    (the flag is never set).
    """
    if _active:  # an enclosing block handles the signals already
        yield _active[0]
        return
    flag = InterruptFlag()

    def handler(signum, frame):
        global _last
        if flag.raised:
            raise KeyboardInterrupt
        flag.signum = _last = signum

    try:
        previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    except ValueError:  # not the main thread: signals cannot be handled here
        yield flag
        return
    _active.append(flag)
    try:
        yield flag
    finally:
        _active.remove(flag)
        for sig, old in previous.items():
            signal.signal(sig, old)
