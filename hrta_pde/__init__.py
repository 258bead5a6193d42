"""hrta_pde: the Homotopy Relaxation Training Algorithm for DeepXDE (PyTorch backend).

Importing this package selects DeepXDE's PyTorch backend (before deepxde is imported) and leaves
the torch default device alone: pick the device with :func:`resolve_device`.
"""
from hrta_pde._backend import BackendError, import_deepxde, resolve_device, resolve_dtype

try:
    import_deepxde()  # select the PyTorch backend before anything else imports deepxde
except BackendError as _err:
    import os as _os
    import sys as _sys

    if _os.path.basename(_sys.argv[0]) in ("hrta-pde", "cli.py"):  # the command line: one line, exit 2
        print(f"hrta-pde: error: {_err}", file=_sys.stderr)
        raise SystemExit(2) from None
    raise

from hrta_pde.activation import HomotopyActivation  # noqa: E402
from hrta_pde.callback import HRTACallback  # noqa: E402
from hrta_pde.history import History  # noqa: E402
from hrta_pde.networks import HomotopyNet, homotopy_activations, homotopy_fnn, set_s  # noqa: E402
from hrta_pde.relu import to_relu_fnn  # noqa: E402
from hrta_pde.schedule import PlateauRule, Schedule, ScheduleError, Stage, parse_schedule  # noqa: E402
from hrta_pde.stages import Position  # noqa: E402
from hrta_pde.train import TrainResult, train, train_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BackendError", "HRTACallback", "History", "HomotopyActivation", "HomotopyNet", "PlateauRule",
    "Position", "Schedule", "ScheduleError", "Stage", "TrainResult", "homotopy_activations",
    "homotopy_fnn", "import_deepxde", "parse_schedule", "resolve_device", "resolve_dtype",
    "set_s", "to_relu_fnn", "train", "train_model",
]
