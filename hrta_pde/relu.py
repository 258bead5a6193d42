"""Exact conversion of a ``phi = ReLU`` homotopy network to a plain ReLU network (Remark 1).

    sigma_s(z) = ReLU(z) - (1 - s) ReLU(-z)

so a hidden layer ``sigma_s(W h + b)`` followed by ``V`` equals the ReLU layer with weights
``[W; -W]``, biases ``[b; -b]`` followed by ``[V, -(1 - s) V]``. Each hidden layer doubles in
width; the result is a ``dde.nn.FNN`` with activation ``"relu"``. The conversion builds a new
network in memory and writes no file (save the result with ``torch.save`` like any module).

Example::

    relu_net = to_relu_fnn(trained_net)      # outputs agree to rounding
"""
from __future__ import annotations

import math

import torch

from hrta_pde._backend import import_deepxde
from hrta_pde.activation import HomotopyActivation
from hrta_pde.networks import HomotopyNet, register_activation_list

dde = import_deepxde()


def _layers_of(net) -> tuple[list[torch.Tensor], list[torch.Tensor], list[float]]:
    """``(weights, biases, s per hidden layer)`` of an affine-sigma_s-affine... network."""
    if isinstance(net, HomotopyNet):
        act = net.activation
        _check_relu(act)
        first = net.hidden[0].weight
        weights, biases = [first[:, :-1]], [first[:, -1]]
        for layer in net.hidden[1:]:
            weights.append(layer.weight / math.sqrt(layer.weight.shape[1]))
            biases.append(layer.bias)
        weights.append(net.a / math.sqrt(net.a.shape[1]))
        biases.append(torch.zeros(net.a.shape[0], dtype=net.a.dtype, device=net.a.device))
        return weights, biases, [float(act.s)] * len(net.hidden)
    if isinstance(net, dde.nn.FNN):
        register_activation_list(net)
        n_hidden = len(net.linears) - 1
        acts = net.activation if isinstance(net.activation, list) else [net.activation] * n_hidden
        for act in acts[:n_hidden]:
            _check_relu(act)
        weights = [lin.weight for lin in net.linears]
        biases = [lin.bias for lin in net.linears]
        return weights, biases, [float(act.s) for act in acts[:n_hidden]]
    raise TypeError(f"cannot convert {type(net).__name__}: to_relu_fnn takes a HomotopyNet or a "
                    "dde.nn.FNN whose activation is a HomotopyActivation with phi='relu'")


def _check_relu(act) -> None:
    if not isinstance(act, HomotopyActivation) or act.phi_name != "relu":
        raise ValueError(f"activation {act!r} is not a HomotopyActivation with phi='relu': "
                         "Remark 1 (exact ReLU network) holds only for phi = ReLU")


@torch.no_grad()
def to_relu_fnn(net) -> "dde.nn.FNN":
    """Return a ReLU ``dde.nn.FNN`` of doubled hidden widths computing exactly ``net``.

    Input and output transforms of ``net`` are carried over. The new network has ``net``'s dtype
    and device; ``net`` is not changed.
    """
    weights, biases, s_list = _layers_of(net)
    new_w, new_b = [], []
    carry = None  # factor (1 - s) of the previous layer: input columns [V, -(1 - s) V]
    for j, (w, b) in enumerate(zip(weights, biases)):
        if carry is not None:
            w = torch.cat([w, -carry * w], dim=1)
        if j < len(s_list):
            new_w.append(torch.cat([w, -w], dim=0))
            new_b.append(torch.cat([b, -b], dim=0))
            carry = 1.0 - s_list[j]
        else:
            new_w.append(w)
            new_b.append(b)
    sizes = [new_w[0].shape[1]] + [w.shape[0] for w in new_w]
    relu_net = dde.nn.FNN(sizes, "relu", "zeros")
    relu_net.to(device=weights[0].device, dtype=weights[0].dtype)
    for lin, w, b in zip(relu_net.linears, new_w, new_b):
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    relu_net._input_transform = net._input_transform
    relu_net._output_transform = net._output_transform
    return relu_net
