"""The homotopy activation: values, derivatives, the buffer s, and DeepXDE networks."""
import math

import numpy as np
import pytest
import torch

import hrta_pde as H
from hrta_pde.activation import HomotopyActivation, check_s

dde = H.import_deepxde()

Z = torch.linspace(-2.5, 2.5, 41, dtype=torch.float64)
Z = Z[Z.abs() > 1e-3]  # keep away from the ReLU kink for derivative checks


def exact(phi, s, z):
    """Closed forms of sigma_s and its first two derivatives, written out by hand."""
    pos = (z > 0).astype(float)
    if phi == "relu":
        f, d1, d2 = np.maximum(z, 0), pos, 0 * z
    elif phi == "relu2":
        f, d1, d2 = np.maximum(z, 0) ** 2, 2 * np.maximum(z, 0), 2 * pos
    elif phi == "relu3":
        f, d1, d2 = np.maximum(z, 0) ** 3, 3 * np.maximum(z, 0) ** 2, 6 * np.maximum(z, 0)
    elif phi == "tanh":
        f, d1 = np.tanh(z), 1 - np.tanh(z) ** 2
        d2 = -2 * np.tanh(z) * d1
    elif phi == "sin":
        f, d1, d2 = np.sin(z), np.cos(z), -np.sin(z)
    return (1 - s) * z + s * f, (1 - s) + s * d1, s * d2


@pytest.mark.parametrize("phi", ["relu", "relu2", "relu3", "tanh", "sin"])
@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 1.5, 2.0])
def test_values_and_derivatives_match_closed_forms(phi, s):
    act = HomotopyActivation(phi, s).double()
    z = Z.clone().requires_grad_(True)
    y = act(z)
    (d1,) = torch.autograd.grad(y.sum(), z, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), z)
    f, g1, g2 = exact(phi, s, Z.numpy())
    np.testing.assert_allclose(y.detach().numpy(), f, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(d1.detach().numpy(), g1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(d2.numpy(), g2, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("phi", ["relu2", "relu3", "tanh", "sin"])
def test_derivatives_match_finite_differences(phi):
    act = HomotopyActivation(phi, 1.3).double()
    h = 1e-6
    z = Z.clone().requires_grad_(True)
    (d1,) = torch.autograd.grad(act(z).sum(), z)
    fd = (act(Z + h) - act(Z - h)) / (2 * h)
    np.testing.assert_allclose(d1.numpy(), fd.numpy(), rtol=1e-7, atol=1e-8)


def test_relu_homotopy_special_cases():
    z = torch.tensor([-3.0, -0.5, 0.0, 2.0], dtype=torch.float64)
    assert torch.equal(HomotopyActivation("relu", 0.0).double()(z), z)  # identity
    assert torch.equal(HomotopyActivation("relu", 1.0).double()(z), torch.relu(z))
    assert torch.equal(HomotopyActivation("relu", 2.0).double()(z), z.abs())  # sigma_2 = |z|
    leaky = torch.nn.functional.leaky_relu(z, negative_slope=1 - 0.3)
    torch.testing.assert_close(HomotopyActivation("relu", 0.3).double()(z), leaky, rtol=0, atol=1e-15)


def test_callable_phi():
    act = HomotopyActivation(lambda z: z**2, 0.25).double()
    assert float(act(torch.tensor(2.0, dtype=torch.float64))) == pytest.approx(0.75 * 2 + 0.25 * 4)


def test_s_is_a_buffer_saved_and_moved():
    act = HomotopyActivation("relu", 0.5)
    assert "s" in act.state_dict() and float(act.state_dict()["s"]) == 0.5
    act.float()
    assert act.s.dtype == torch.float64 and float(act.s) == 0.5  # s stays exact in float64
    other = HomotopyActivation("relu", 1.0)
    other.load_state_dict(act.state_dict())
    assert float(other.s) == 0.5
    act.set_s(1.5)
    assert float(act.s) == 1.5 and act.s.dtype == torch.float64


@pytest.mark.parametrize("bad", [-0.1, 2.0001, math.nan, math.inf, "abc", None])
def test_s_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match="s="):
        check_s(bad)
    with pytest.raises(ValueError):
        HomotopyActivation("relu", bad)


def test_unknown_phi_names_choices():
    with pytest.raises(ValueError, match="relu, relu2, relu3, tanh, sin"):
        HomotopyActivation("swish", 1.0)


def test_fnn_accepts_module_and_registers_s():
    net = dde.nn.FNN([2, 8, 8, 1], HomotopyActivation("relu", 0.5), "Glorot normal")
    assert "activation.s" in net.state_dict()
    x = torch.rand(5, 2)
    assert net(x).shape == (5, 1)
    H.set_s(net, 1.5)
    assert float(net.state_dict()["activation.s"]) == 1.5


def test_per_layer_activation_list_is_registered():
    acts = [HomotopyActivation("relu2", 0.5), HomotopyActivation("relu2", 0.5)]
    net = dde.nn.FNN([2, 6, 6, 1], acts + [None], "Glorot normal")
    assert not any(k.endswith(".s") or k == "s" for k in net.state_dict())  # DeepXDE's pitfall
    assert H.set_s(net, 1.25) == 2  # finds and registers them
    keys = [k for k in net.state_dict() if k.endswith("s") and k.startswith("activation_")]
    assert sorted(keys) == ["activation_0.s", "activation_1.s"]
    net2 = H.homotopy_fnn([2, 6, 6, 1], "relu2", 0.75, per_layer=True)
    assert float(net2.state_dict()["activation_1.s"]) == 0.75
    net2.double()
    assert net2.activation[0].s.dtype == torch.float64  # list members follow .to()


def test_pfnn_accepts_the_activation():
    net = dde.nn.PFNN([2, [6, 6], [6, 6], 2], HomotopyActivation("tanh", 0.5), "Glorot normal")
    assert "activation.s" in net.state_dict()
    x = torch.rand(4, 2)
    y0 = net(x)
    H.set_s(net, 1.0)
    assert not torch.allclose(y0, net(x))  # s really acts


def test_set_s_without_homotopy_activation_is_an_error():
    net = dde.nn.FNN([1, 4, 1], "tanh", "Glorot normal")
    with pytest.raises(ValueError, match="no HomotopyActivation"):
        H.set_s(net, 0.5)
