"""Select DeepXDE's PyTorch backend and keep the torch device under our control.

DeepXDE reads ``DDE_BACKEND`` once, when it is first imported, and (with a GPU visible) makes
CUDA the process-wide default torch device as a side effect. hrta_pde sets the backend before
that import, refuses a different backend that is already active, and undoes the device side
effect: the device is always chosen explicitly with :func:`resolve_device`.
"""
from __future__ import annotations

import os
import sys

import torch


class BackendError(RuntimeError):
    """DeepXDE is running with a backend other than PyTorch."""


def import_deepxde():
    """Import deepxde with the PyTorch backend and return the module.

    Raises :class:`BackendError` if deepxde was already imported with another backend, or if
    ``DDE_BACKEND`` names another backend.
    """
    requested = os.environ.get("DDE_BACKEND")
    if "deepxde" not in sys.modules:
        if requested not in (None, "", "pytorch"):
            raise BackendError(
                f"DDE_BACKEND={requested!r}, but hrta_pde needs DeepXDE's PyTorch backend: "
                "unset DDE_BACKEND or set DDE_BACKEND=pytorch"
            )
        os.environ["DDE_BACKEND"] = "pytorch"
        device_before = torch.get_default_device()
        dtype_before = torch.get_default_dtype()
        import io
        import contextlib

        sink = io.StringIO()  # deepxde prints "Using backend: ..." on import
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            import deepxde  # noqa: F401
        # Undo deepxde's import-time choice of device and dtype. Without a device context torch's
        # default is the CPU; set_default_device(None) removes the context deepxde may have
        # installed (a context, even for "cpu", intercepts every torch call and costs time).
        if device_before.type == "cpu":
            torch.set_default_device(None)
        else:
            torch.set_default_device(device_before)
        torch.set_default_dtype(dtype_before)
    import deepxde

    active = deepxde.backend.backend_name
    if active != "pytorch":
        raise BackendError(
            f"deepxde is already imported with backend {active!r}, but hrta_pde needs 'pytorch': "
            "set DDE_BACKEND=pytorch before anything imports deepxde"
        )
    return deepxde


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a :class:`torch.device`.

    ``"auto"`` is CUDA when a GPU is visible, else the CPU. Asking for CUDA without a GPU is an
    error that says so.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            from hrta_pde.errors import SettingError, literal

            raise SettingError(literal(f"device={spec!r} but no CUDA GPU is visible: use ") + "{device:=}cpu or auto")
        return torch.device(text)
    raise ValueError(f"unknown device {spec!r}: use 'auto', 'cpu' or 'cuda'")


def resolve_dtype(spec: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or a torch dtype) to a torch floating dtype."""
    if isinstance(spec, torch.dtype):
        if spec not in (torch.float32, torch.float64):
            raise ValueError(f"dtype={spec} is not supported: use float32 or float64")
        return spec
    table = {"float32": torch.float32, "float64": torch.float64, "single": torch.float32,
             "double": torch.float64}
    try:
        return table[str(spec).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {spec!r}: use 'float32' or 'float64'") from None
