"""The homotopy activation ``sigma_s(z) = (1 - s) z + s phi(z)`` (METHOD.md section 1).

``s = 0`` is the identity, ``s = 1`` the target activation ``phi``; ``0 < s < 1`` is the
homotopy part and ``1 < s <= 2`` the (over-)relaxation part. ``s`` lives in a buffer, so it is
saved in ``state_dict``, follows ``.to(device/dtype)`` and can change between training stages
without rebuilding the network.

Example::

    >>> import torch
    >>> from hrta_pde.activation import HomotopyActivation
    >>> act = HomotopyActivation("relu", s=0.5)
    >>> act(torch.tensor([-2.0, 3.0]))
    tensor([-1.,  3.])
"""
from __future__ import annotations

import math
from typing import Callable

import torch

#: Names accepted for ``phi``. ``relu2``/``relu3`` are ``ReLU(z)**k`` (smooth for PDE losses).
PHI_NAMES = ("relu", "relu2", "relu3", "tanh", "sin")


def relu_power(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``phi(z) = max(z, 0)**k``: ``k - 1`` continuous derivatives, for Ritz/Sobolev/PINN losses."""
    if k == 1:
        return torch.relu

    def phi(z: torch.Tensor) -> torch.Tensor:
        return torch.relu(z) ** k

    phi.__name__ = f"relu{k}"
    return phi


def get_phi(phi: str | Callable) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Return ``(name, function)`` for a ``phi`` given by name or as a callable."""
    if callable(phi):
        return getattr(phi, "__name__", type(phi).__name__), phi
    if not isinstance(phi, str):
        raise ValueError(f"phi={phi!r} ({type(phi).__name__}) is not a name or a callable: "
                         f"use one of {', '.join(PHI_NAMES)} or a function of a tensor")
    name = phi.strip().lower().replace("^", "")
    table = {"relu": torch.relu, "relu1": torch.relu, "relu2": relu_power(2),
             "relu3": relu_power(3), "tanh": torch.tanh, "sin": torch.sin}
    if name not in table:
        raise ValueError(f"unknown activation phi={phi!r}: use one of {', '.join(PHI_NAMES)}")
    return ("relu" if name == "relu1" else name), table[name]


def check_s(s) -> float:
    """Validate a homotopy parameter: a finite real number (not a string or bool) with ``0 <= s <= 2``."""
    if isinstance(s, (str, bytes, bool)):
        kind = "bool" if isinstance(s, bool) else "string"
        raise ValueError(f"s={s!r} is a {kind}: the homotopy parameter must be a number in [0, 2]")
    try:
        value = float(s)
    except (TypeError, ValueError):
        raise ValueError(f"s={s!r} ({type(s).__name__}) is not a number: "
                         "the homotopy parameter must be in [0, 2]") from None
    if not math.isfinite(value) or not 0.0 <= value <= 2.0:
        raise ValueError(f"s={value!r} is out of range: the homotopy parameter must satisfy 0 <= s <= 2")
    return value


def sigma_s(z, s, phi: Callable):
    """``sigma_s(z) = (1 - s) z + s phi(z)``, for torch tensors or numpy arrays (``phi`` to match)."""
    return (1.0 - s) * z + s * phi(z)


def sigma_s_prime(z, s, phi_prime: Callable):
    """``sigma_s'(z) = (1 - s) + s phi'(z)``; for ``phi = ReLU``, ``phi'(z) = 1[z > 0]``."""
    return (1.0 - s) + s * phi_prime(z)


class HomotopyActivation(torch.nn.Module):
    """``sigma_s(z) = (1 - s) * z + s * phi(z)``, with ``s`` a buffer.

    Args:
        phi: ``"relu"``, ``"relu2"``, ``"relu3"``, ``"tanh"``, ``"sin"`` or any callable on tensors.
        s: initial homotopy parameter, ``0 <= s <= 2``.

    Derivatives come from autograd through ``phi``; for ``phi = ReLU``,
    ``sigma_s'(z) = (1 - s) + s * 1[z > 0]`` (a leaky ReLU with slope ``1 - s`` for ``z < 0``,
    :func:`sigma_s_prime`).
    """

    def __init__(self, phi: str | Callable = "relu", s: float = 1.0):
        super().__init__()
        self.phi_name, self.phi = get_phi(phi)
        # float64 whatever the network's dtype: s = 0.3 stays 0.3 after .double() (see _apply).
        self.register_buffer("s", torch.tensor(check_s(s), dtype=torch.float64))

    def set_s(self, s: float) -> None:
        """Change ``s`` in place (keeps the buffer's device and dtype)."""
        self.s.fill_(check_s(s))

    def _apply(self, fn, recurse=True):
        exact = self.s.detach().to("cpu", torch.float64)
        out = super()._apply(fn, recurse)
        self.s = exact.to(self.s.device)  # follow the device, keep float64
        return out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return sigma_s(z, self.s.to(dtype=z.dtype), self.phi)

    def extra_repr(self) -> str:
        return f"phi={self.phi_name}, s={float(self.s):g}"
