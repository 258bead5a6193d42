"""``hrta-pde``: the command line, a thin shell over the Python API.

Every sub-command validates its input first; a bad value prints one line
``hrta-pde: error: ...`` and exits with status 2, a failed run (disk full, ...) with status 1,
without a traceback (``--debug`` or ``HRTA_PDE_DEBUG=1`` shows it: :mod:`hrta_pde.cli.errors`).
SIGINT and SIGTERM save a checkpoint and exit with 130 and 143. Library errors that name a
setting (:class:`hrta_pde.options.SettingError`) are printed with the setting's flag.

``parser`` builds the flags, ``commands`` runs each sub-command; ``python -m hrta_pde.cli`` runs
:func:`main`.
"""
from __future__ import annotations

import sys

from hrta_pde.cli.commands import (_cmd_approx, _cmd_compare, _cmd_export, _cmd_ntk, _cmd_problems,
                                   _cmd_solve)
from hrta_pde.cli.parser import build_parser

COMMANDS = {"approx": _cmd_approx, "solve": _cmd_solve, "compare": _cmd_compare,
            "export": _cmd_export, "ntk": _cmd_ntk, "problems": _cmd_problems}


def _interruptible(command: str):
    """For the training commands, SIGINT/SIGTERM set the stop flag from the start of the command:
    one received while setting up (imports, points, a FEM reference) stops training at its first
    iteration, with a checkpoint, instead of killing the process without one."""
    import contextlib

    from hrta_pde.signals import catch_interrupts

    return catch_interrupts() if command in ("solve", "compare", "approx") else contextlib.nullcontext()


def main(argv=None) -> int:
    from hrta_pde import signals
    from hrta_pde.cli.errors import classify, debug_requested

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = debug_requested(argv) or getattr(args, "debug", False)
    signals.reset()
    try:
        import warnings

        import numpy as np
        import torch

        import hrta_pde  # noqa: F401  (selects the backend; raises BackendError if another is active)
        from hrta_pde.stages import NonFiniteLossWarning

        warnings.filterwarnings("ignore", category=NonFiniteLossWarning)  # the commands print it

        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        # The commands check values for finiteness themselves and say where; numpy's own
        # RuntimeWarnings (log(0), ...) would print before that one line.
        with np.errstate(all="ignore"), _interruptible(args.command):
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM: stop now, without a checkpoint
        print("hrta-pde: interrupted", file=sys.stderr)
        return signals.exit_status()
    except Exception as err:  # the error boundary: one line, exit 2 (input) or 1 (run)
        if debug:
            raise
        code, message = classify(err)
        from hrta_pde.errors import SettingError

        if isinstance(err, SettingError):  # the library names settings, the command line its flags
            message = classify(ValueError(err.with_flags()))[1]
        print(f"hrta-pde: error: {message}", file=sys.stderr)
        return code
