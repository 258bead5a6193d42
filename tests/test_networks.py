"""The paper's network and the exact ReLU network of Remark 1."""
import math

import pytest
import torch

import hrta_pde as H

dde = H.import_deepxde()


def test_two_layer_network_is_the_papers_formula():
    g = torch.Generator().manual_seed(3)
    net = H.HomotopyNet(2, [7], "relu", s=0.4, generator=g, dtype=torch.float64)
    x = torch.rand(5, 2, dtype=torch.float64)
    w = net.hidden[0].weight  # (m, d+1), last column multiplies the constant 1
    a = net.a[0]
    xbar = torch.cat([x, torch.ones(5, 1, dtype=torch.float64)], dim=1)
    z = xbar @ w.T
    sigma = (1 - 0.4) * z + 0.4 * torch.relu(z)
    expected = (sigma * a).sum(dim=1, keepdim=True) / math.sqrt(7)
    torch.testing.assert_close(net(x), expected, rtol=1e-14, atol=1e-14)


def test_initialisation_is_standard_normal():
    net = H.HomotopyNet(3, [20000], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = torch.cat([net.hidden[0].weight.flatten(), net.a.flatten()]).detach()
    assert abs(float(w.mean())) < 0.01 and abs(float(w.std()) - 1) < 0.01


def test_network_works_inside_dde_model():
    geom = dde.geometry.Interval(0, 1)
    data = dde.data.Function(geom, lambda x: x**2, 16, 16, train_distribution="uniform")
    net = H.HomotopyNet(1, [32], "relu", s=0.5)
    model = dde.Model(data, net)
    model.compile("adam", lr=1e-2)
    losshistory, _ = model.train(iterations=50, display_every=50, verbose=0)
    assert losshistory.loss_train[-1][0] < losshistory.loss_train[0][0]
    assert "activation.s" in net.state_dict()


@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 1.5, 2.0])
def test_two_layer_to_relu_is_exact(s):
    net = H.HomotopyNet(3, [50], "relu", s=s, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
    relu = H.to_relu_fnn(net)
    assert [lin.out_features for lin in relu.linears] == [100, 1]  # doubled width
    x = torch.randn(200, 3, dtype=torch.float64)
    y, y_relu = net(x), relu(x)
    assert float((y - y_relu).abs().max() / y.abs().max()) < 1e-12


@pytest.mark.parametrize("per_layer", [False, True])
def test_deep_fnn_to_relu_is_exact(per_layer):
    torch.manual_seed(0)
    net = H.homotopy_fnn([2, 16, 12, 9, 1], "relu", 0.5, per_layer=per_layer).double()
    if per_layer:  # different s per layer, also in the relaxation range
        for act, s in zip(net.activation[:3], (0.3, 1.0, 1.7)):
            act.set_s(s)
    relu = H.to_relu_fnn(net)
    assert [lin.out_features for lin in relu.linears] == [32, 24, 18, 1]
    x = torch.randn(300, 2, dtype=torch.float64)
    y = net(x)
    assert float((y - relu(x)).abs().max() / y.abs().max()) < 1e-12


def test_deep_homotopy_net_to_relu_is_exact():
    net = H.HomotopyNet(2, [20, 10], "relu", s=1.5, generator=torch.Generator().manual_seed(2),
                        dtype=torch.float64)
    relu = H.to_relu_fnn(net)
    x = torch.randn(100, 2, dtype=torch.float64)
    y = net(x)
    assert float((y - relu(x)).abs().max() / y.abs().max()) < 1e-12


def test_relu_conversion_refuses_smooth_phi():
    with pytest.raises(ValueError, match="phi = ReLU"):
        H.to_relu_fnn(H.HomotopyNet(1, [4], "relu2"))


@pytest.mark.parametrize("bad", [{"widths": []}, {"widths": [0]}, {"input_dim": 0}, {"widths": [-3]}])
def test_bad_sizes_are_rejected(bad):
    kwargs = {"input_dim": 1, "widths": [4]} | bad
    with pytest.raises(ValueError):
        H.HomotopyNet(**kwargs)
