"""Networks with homotopy activations, usable as DeepXDE networks inside ``dde.Model``.

* :class:`HomotopyNet` -- the paper's network (METHOD.md section 4). With one hidden layer,
  ``f(x) = m**-0.5 * sum_k a_k sigma_s(w_k . (x, 1))``, all weights ``N(0, 1)``, both layers
  trained. More hidden layers use the same NTK scaling: ``z_{l+1} = W_l sigma_s(z_l) / sqrt(n_l) + b_l``.
* :func:`homotopy_fnn` -- a plain ``dde.nn.FNN`` whose activation is a :class:`HomotopyActivation`
  (one shared module, or one per layer, registered so that ``s`` is in ``state_dict``).
* :func:`homotopy_activations` / :func:`set_s` -- find the activation modules of any network and
  change ``s`` (what a training stage does).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from hrta_pde._backend import import_deepxde
from hrta_pde.activation import HomotopyActivation

dde = import_deepxde()


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise ValueError(f"{name}={value!r} must be a positive integer")
    value = int(value)
    if value <= 0:
        raise ValueError(f"{name}={value} must be a positive integer")
    return value


class HomotopyNet(dde.nn.NN):
    """The paper's network: ``N(0, 1)`` weights, NTK scaling, homotopy activation.

    Args:
        input_dim: ``d``.
        widths: hidden widths, e.g. ``[1000]`` for the two-layer network of the theory.
        phi, s: the homotopy activation ``sigma_s`` (shared by all hidden layers).
        output_dim: number of outputs (1 for the paper's scalar networks).
        generator: optional ``torch.Generator`` for a reproducible initialisation.

    Parameters: ``hidden.0.weight`` has shape ``(m_1, d + 1)`` (the last column multiplies the
    constant 1 of ``xbar``, i.e. it is the bias); deeper layers have ``weight``/``bias``; the
    output layer ``a`` has no bias, as in the paper.
    """

    def __init__(self, input_dim: int, widths: Sequence[int], phi: str | Callable = "relu",
                 s: float = 1.0, output_dim: int = 1, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__()
        self.input_dim = _positive_int(input_dim, "input_dim")
        if isinstance(widths, int):
            widths = [widths]
        if len(widths) == 0:
            raise ValueError("widths=[] : give at least one hidden width, e.g. [1000]")
        self.widths = [_positive_int(w, "width") for w in widths]
        self.output_dim = _positive_int(output_dim, "output_dim")
        dtype = dtype or torch.get_default_dtype()
        self.activation = HomotopyActivation(phi, s)
        self.hidden = torch.nn.ModuleList()
        fan_in = self.input_dim + 1
        for j, width in enumerate(self.widths):
            layer = torch.nn.Module()
            if j == 0:
                layer.weight = torch.nn.Parameter(torch.empty(width, fan_in, dtype=dtype))
            else:
                layer.weight = torch.nn.Parameter(torch.empty(width, fan_in, dtype=dtype))
                layer.bias = torch.nn.Parameter(torch.empty(width, dtype=dtype))
            self.hidden.append(layer)
            fan_in = width
        self.a = torch.nn.Parameter(torch.empty(self.output_dim, fan_in, dtype=dtype))
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every weight and bias from ``N(0, 1)`` (the paper's initialisation)."""
        for p in self.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype, device="cpu"))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self._input_transform is not None:
            x = self._input_transform(x)
        first = self.hidden[0].weight
        h = self.activation(x @ first[:, :-1].T + first[:, -1])
        for layer in self.hidden[1:]:
            h = self.activation(h @ layer.weight.T / math.sqrt(layer.weight.shape[1]) + layer.bias)
        out = h @ self.a.T / math.sqrt(self.a.shape[1])
        if self._output_transform is not None:
            out = self._output_transform(inputs, out)
        return out


def homotopy_fnn(layer_sizes: Sequence[int], phi: str | Callable = "relu", s: float = 1.0,
                 initializer: str = "Glorot normal", per_layer: bool = False):
    """A ``dde.nn.FNN`` with the homotopy activation.

    ``per_layer=True`` gives each hidden layer its own :class:`HomotopyActivation` (so stages may
    set different ``s`` per layer); they are registered as submodules ``activation_0, ...``, which
    DeepXDE does not do for an activation list, so their ``s`` is saved in ``state_dict``.
    """
    if per_layer:
        acts = [HomotopyActivation(phi, s) for _ in range(len(layer_sizes) - 2)]
        net = dde.nn.FNN(list(layer_sizes), acts + [None], initializer)
        register_activation_list(net)
        return net
    return dde.nn.FNN(list(layer_sizes), HomotopyActivation(phi, s), initializer)


def register_activation_list(net: torch.nn.Module) -> torch.nn.Module:
    """Register the modules of a per-layer activation list (``net.activation = [...]``).

    DeepXDE's FNN keeps such a list as a plain Python list, so the modules' buffers (``s``)
    would be missing from ``state_dict`` and would not follow ``.to()``. This adds them as
    submodules ``activation_0, activation_1, ...`` (the list keeps the same objects).
    """
    acts = getattr(net, "activation", None)
    if isinstance(acts, (list, tuple)):
        for j, act in enumerate(acts):
            if isinstance(act, torch.nn.Module) and not hasattr(net, f"activation_{j}"):
                net.add_module(f"activation_{j}", act)
    return net


def homotopy_activations(net: torch.nn.Module) -> list[HomotopyActivation]:
    """All :class:`HomotopyActivation` modules of ``net`` (each once), registering list members."""
    for module in list(net.modules()):
        register_activation_list(module)
    found, seen = [], set()
    for module in net.modules():
        if isinstance(module, HomotopyActivation) and id(module) not in seen:
            seen.add(id(module))
            found.append(module)
    return found


def set_s(net: torch.nn.Module, s: float) -> int:
    """Set ``s`` of every homotopy activation in ``net``; return how many were set.

    Raises ``ValueError`` if the network has no homotopy activation (HRTA would then silently do
    nothing).
    """
    acts = homotopy_activations(net)
    if not acts:
        raise ValueError(
            f"{type(net).__name__} has no HomotopyActivation: build it with "
            "hrta_pde.homotopy_fnn(...) or pass activation=HomotopyActivation(...) to dde.nn.FNN"
        )
    for act in acts:
        act.set_s(s)
    return len(acts)
