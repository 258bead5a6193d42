"""Gram matrices of the two-layer homotopy network (hrta_pde.ntk, METHOD.md sections 4-5).

The closed form is checked against three independent computations of the defining expectations
(Monte Carlo within its standard error, angular quadrature to ~1e-10, and the exact per-sample
identity under antithetic sampling); the empirical Gram matrix against a hand-written Jacobian and
its m^{-1/2} convergence to H_s; the smallest eigenvalue against the claim of Theorem 3.1.
"""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from hrta_pde.activation import HomotopyActivation
from hrta_pde.ntk import (
    augment,
    empirical_gram,
    empirical_gram_module,
    gram_closed_form,
    gram_monte_carlo,
    min_eigenvalue_table,
    paper_grid,
    plot_min_eigenvalue,
    smallest_eigenvalue,
    two_layer_net,
)

S_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0)


def sigma(z, s):
    return (1 - s) * z + s * np.maximum(z, 0)


def dsigma(z, s):
    return (1 - s) + s * (z > 0)


def points(d, n=8, seed=1):
    # include a point at the origin (xbar = e_{d+1}) and one far away, beside random ones
    X = np.random.default_rng(seed).uniform(-1, 1, (n, d))
    X[0] = 0.0
    X[1] = 3.0
    return X


# ---------------------------------------------------------------------- closed form vs definitions
def test_augment_appends_ones():
    np.testing.assert_array_equal(augment([[0.5, 2.0], [-1.0, 0.0]]),
                                  [[0.5, 2.0, 1.0], [-1.0, 0.0, 1.0]])


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("s", S_VALUES)
def test_closed_form_matches_monte_carlo_within_5_standard_errors(d, s):
    X = points(d)
    cf = gram_closed_form(X, s)
    mc = gram_monte_carlo(X, s, 1_000_000, seed=d, return_stderr=True)
    for key in ("Ka", "Kw", "H"):
        err = np.abs(mc[key] - cf[key])
        # s = 0: Kw = K0 with no randomness (se = 0), so only rounding remains
        bound = 5.0 * mc[key + "_se"] + 1e-12 * np.abs(cf[key]).max()
        assert np.all(err <= bound), (key, np.max(err / np.maximum(bound, 1e-300)))
    # the bound is tight enough to mean something: at most ~1% of the kernel's scale
    assert mc["H_se"].max() < 0.01 * np.abs(cf["H"]).max()


def test_monte_carlo_standard_error_matches_spread_over_seeds():
    X = points(2, n=5)
    runs = [gram_monte_carlo(X, 1.5, 5_000, seed=k, return_stderr=True) for k in range(80)]
    for key in ("Ka", "Kw", "H"):
        spread = np.std([r[key] for r in runs], axis=0, ddof=1)
        se = np.mean([r[key + "_se"] for r in runs], axis=0)
        ratio = spread / se
        # 80 samples: the sample std is within ~+-25% of the true one at ~3 sigma
        assert 0.7 < ratio.min() and ratio.max() < 1.35, (key, ratio.min(), ratio.max())


def test_monte_carlo_does_not_depend_on_features_being_split_into_chunks_beyond_sampling():
    X = points(1, n=4)
    a = gram_monte_carlo(X, 0.5, 10_001, seed=3, chunk=10_001)
    b = gram_monte_carlo(X, 0.5, 10_001, seed=3, chunk=10_001 * 4)
    np.testing.assert_array_equal(a["H"], b["H"])  # one chunk either way: identical draws
    c = gram_monte_carlo(X, 0.5, 10_001, seed=3, chunk=97)  # many chunks, incl. a ragged last one
    se = gram_monte_carlo(X, 0.5, 10_001, seed=3, return_stderr=True)["H_se"]
    assert np.all(np.abs(c["H"] - gram_closed_form(X, 0.5)["H"]) <= 5 * se)


def _angular_expectation(g, xb, yb, degree):
    """E[g(w.xb, w.yb)], w ~ N(0, I), for g positively homogeneous of the given degree.

    Only the projection z of w on span(xb, yb) matters; z = r (cos phi, sin phi) with phi uniform
    and E[r^2] = 2, so E[g] = E[r^degree] * mean_phi g(...). Integrated piecewise between the
    kinks of relu (where w.xb = 0 or w.yb = 0), so quad is accurate to ~1e-12.
    """
    r1, r2 = np.linalg.norm(xb), np.linalg.norm(yb)
    cross = np.linalg.norm(np.outer(xb, yb) - np.outer(yb, xb)) / math.sqrt(2)
    theta = math.atan2(cross, float(xb @ yb))  # independent of the arccos in the closed form

    def integrand(phi):
        return g(r1 * math.cos(phi), r2 * math.cos(phi - theta))

    kinks = sorted({(k * math.pi / 2 + shift) % (2 * math.pi)
                    for k in (1, 3) for shift in (0.0, theta)} | {0.0, 2 * math.pi})
    total = sum(quad(integrand, lo, hi, epsabs=1e-13, epsrel=1e-13)[0]
                for lo, hi in zip(kinks[:-1], kinks[1:]) if hi > lo)
    radial = {0: 1.0, 2: 2.0}[degree]
    return radial * total / (2 * math.pi)


def package_activation(s):
    """``(u, v) -> ([sigma_s(u), sigma_s(v)], [sigma_s'(u), sigma_s'(v)])`` of the package's
    HomotopyActivation, the derivative by autograd (what training differentiates)."""
    act = HomotopyActivation("relu", s)

    def values_and_slopes(u, v):
        z = torch.tensor([u, v], dtype=torch.float64, requires_grad=True)
        out = act(z)
        (slope,) = torch.autograd.grad(out.sum(), z)
        return out.detach().numpy(), slope.numpy()

    return values_and_slopes


@pytest.mark.parametrize("s", [0.0, 0.3, 1.0, 1.7, 2.0])
def test_closed_form_matches_angular_quadrature_of_the_definition(s):
    # E[sigma_s(u) sigma_s(v)] and E[sigma_s'(u) sigma_s'(v)] K0 computed directly for each s,
    # with the package's activation, so this also verifies K_s = s^2 K_1 + (1 - s) K_0 (which the
    # closed form uses) and that the closed form is the kernel of the activation the networks use
    X = points(3, n=5)
    Xb = augment(X)
    cf = gram_closed_form(X, s)
    act = package_activation(s)
    for i in range(len(X)):
        for j in range(i, len(X)):
            ka = _angular_expectation(lambda u, v: np.prod(act(u, v)[0]), Xb[i], Xb[j], 2)
            kw = _angular_expectation(lambda u, v: np.prod(act(u, v)[1]), Xb[i], Xb[j], 0)
            kw *= Xb[i] @ Xb[j]
            assert cf["Ka"][i, j] == pytest.approx(ka, rel=1e-9, abs=1e-10)
            assert cf["Kw"][i, j] == pytest.approx(kw, rel=1e-9, abs=1e-10)


def test_identity_holds_sample_by_sample_for_antithetic_features():
    # With w and -w both drawn, u relu(v) + (-u) relu(-v) = u v and 1[u>0] + 1[-u>0] = 1 (a.e.),
    # so the empirical means obey K_s = s^2 K_1 + (1 - s) K_0 exactly, for any finite sample.
    Xb = augment(points(3))
    W = np.random.default_rng(0).standard_normal((4, 20_000))
    U = Xb @ np.hstack([W, -W])
    K0 = Xb @ Xb.T

    def mc(s):
        S, D = sigma(U, s), dsigma(U, s)
        return S @ S.T / U.shape[1], D @ D.T / U.shape[1] * K0

    K0_hat = U @ U.T / U.shape[1]  # the sampled linear kernel: E[u v] = K0 only on average
    Ka1, Kw1 = mc(1.0)
    Ka0, Kw0 = mc(0.0)
    np.testing.assert_allclose(Ka0, K0_hat, rtol=1e-12)
    np.testing.assert_allclose(Kw0, K0, rtol=1e-12)  # sigma_0' = 1: no randomness at all
    for s in (0.25, 0.5, 1.5, 2.0):
        Ka, Kw = mc(s)
        np.testing.assert_allclose(Ka, s**2 * Ka1 + (1 - s) * K0_hat, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(Kw, s**2 * Kw1 + (1 - s) * K0, rtol=1e-10, atol=1e-12)
    # without antithetic pairs the identity holds only up to sampling error
    Ka_plain = (lambda S: S @ S.T / 20_000)(sigma(Xb @ W, 0.5))
    assert np.abs(Ka_plain - (0.25 * (lambda S: S @ S.T / 20_000)(sigma(Xb @ W, 1.0))
                              + 0.5 * (Xb @ W) @ (Xb @ W).T / 20_000)).max() > 1e-6


def test_s0_is_the_linear_kernel_and_H_is_symmetric_psd():
    for X in (points(1), points(3), paper_grid(1), paper_grid(3)):
        Xb = augment(X)
        K0 = Xb @ Xb.T
        K = gram_closed_form(X, 0.0)
        np.testing.assert_array_equal(K["Ka"], K0)
        np.testing.assert_array_equal(K["Kw"], K0)
        np.testing.assert_array_equal(K["H"], 2 * K0)
        for s in (0.0, 0.5, 1.0, 1.5, 2.0):
            K = gram_closed_form(X, s)
            for key in ("Ka", "Kw", "H"):
                np.testing.assert_array_equal(K[key], K[key].T)
                lam = np.linalg.eigvalsh(K[key])
                assert lam[0] >= -1e-12 * lam[-1], (s, key, lam[0])
            np.testing.assert_array_equal(K["H"], K["Ka"] + K["Kw"])


def test_closed_form_at_s1_is_the_relu_arccos_kernel_for_known_angles():
    # x = 0 gives xbar = (0, 1); x = 1 gives (1, 1): theta = pi/4, |xbar| = 1 and sqrt(2)
    K = gram_closed_form([[0.0], [1.0]], 1.0)
    t = math.pi / 4
    assert K["Kw"][0, 1] == pytest.approx(1.0 * (math.pi - t) / (2 * math.pi), rel=1e-14)
    ka = math.sqrt(2) * (math.sin(t) + (math.pi - t) * math.cos(t)) / (2 * math.pi)
    assert K["Ka"][0, 1] == pytest.approx(ka, rel=1e-14)
    assert K["Ka"][1, 1] == pytest.approx(2.0 / 2, rel=1e-14)  # E[relu(u)^2] = |xbar|^2 / 2
    assert K["Kw"][1, 1] == pytest.approx(2.0 / 2, rel=1e-14)


# ---------------------------------------------------------------------- finite width
def _hand_gram(W, a, X, s):
    """J J^T from the analytic Jacobian: df/da_k = sigma(w_k.xbar)/sqrt(m),
    df/dw_k = a_k sigma'(w_k.xbar) xbar / sqrt(m)."""
    Xb = augment(X)
    m = len(a)
    Z = Xb @ W.T  # (n, m)
    Ja = sigma(Z, s) / math.sqrt(m)
    Jw = (a * dsigma(Z, s))[:, :, None] * Xb[:, None, :] / math.sqrt(m)  # (n, m, d+1)
    J = np.hstack([Ja, Jw.reshape(len(X), -1)])
    return J @ J.T


@pytest.mark.parametrize("s", [0.0, 0.7, 1.0, 1.8])
def test_empirical_gram_matches_hand_computed_jacobian(s):
    X = np.random.default_rng(5).uniform(-1, 1, (4, 2))
    net = two_layer_net(d=2, width=3, s=s, seed=11)
    W, a = net.hidden[0].weight.detach().numpy(), net.a[0].detach().numpy()
    expected = _hand_gram(W, a, X, s)
    Xt = torch.as_tensor(X)
    np.testing.assert_allclose(empirical_gram_module(net, Xt).numpy(), expected, rtol=1e-12, atol=1e-14)

    # the functional form, with the bias split off and an (n, 1) output
    def f(p, X):
        z = X @ p["W"].T + p["b"]
        return (((1 - s) * z + s * torch.relu(z)) @ p["a"] / math.sqrt(3))[:, None]

    params = {"W": torch.as_tensor(W[:, :2]).clone(), "b": torch.as_tensor(W[:, 2]).clone(),
              "a": torch.as_tensor(a).clone()}
    np.testing.assert_allclose(empirical_gram(f, params, Xt).numpy(), expected, rtol=1e-12, atol=1e-14)
    # the whole-batch jacrev path (valid for models that are not row-wise) agrees
    np.testing.assert_allclose(empirical_gram(f, params, Xt, rowwise=False).numpy(), expected,
                               rtol=1e-12, atol=1e-14)


def test_two_layer_net_output_formula():
    net = two_layer_net(d=3, width=5, s=1.3, seed=2)
    X = np.random.default_rng(0).uniform(-1, 1, (6, 3))
    W, a = net.hidden[0].weight.detach().numpy(), net.a[0].detach().numpy()
    expected = sigma(augment(X) @ W.T, 1.3) @ a / math.sqrt(5)
    np.testing.assert_allclose(net(torch.as_tensor(X)).detach().numpy()[:, 0], expected, rtol=1e-13)
    # the weights are N(0, 1) draws of the seed's generator, w first
    gen = torch.Generator().manual_seed(2)
    assert torch.equal(net.hidden[0].weight, torch.randn(5, 4, generator=gen, dtype=torch.float64))
    assert torch.equal(net.a[0], torch.randn(5, generator=gen, dtype=torch.float64))


def test_empirical_gram_converges_to_H_like_inverse_sqrt_width():
    X = points(3)
    Xt = torch.as_tensor(X)
    widths = np.array([500, 4000, 32000])
    for s in (0.5, 1.5):
        H = gram_closed_form(X, s)["H"]
        errors = np.array([[np.linalg.norm(empirical_gram_module(two_layer_net(3, m, s, seed=k), Xt).numpy() - H)
                            / np.linalg.norm(H) for k in range(3)] for m in widths])
        slope = np.polyfit(np.log(widths), np.log(errors).mean(axis=1), 1)[0]
        assert -0.8 <= slope <= -0.3, (s, slope, errors.mean(axis=1))
        assert np.all(np.diff(errors.mean(axis=1)) < 0), errors.mean(axis=1)
        assert errors[-1].max() < 0.05, errors[-1]


def test_empirical_gram_rejects_non_scalar_outputs():
    X = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"returned shape \(3, 2\)"):
        empirical_gram(lambda p, X: X * p["c"], {"c": torch.ones((), dtype=torch.float64)}, X)


# ---------------------------------------------------------------------- Theorem 3.1
def test_paper_grids():
    g1, g3 = paper_grid(1), paper_grid(3)
    assert g1.shape == (100, 1) and g3.shape == (125, 3)
    np.testing.assert_array_equal(g1[:, 0], np.linspace(0, 1, 100))
    assert {tuple(r) for r in g3} == {(i / 4, j / 4, k / 4) for i in range(5) for j in range(5) for k in range(5)}
    with pytest.raises(ValueError, match="d=2"):
        paper_grid(2)


@pytest.mark.parametrize("d", [1, 3])
def test_smallest_eigenvalue_of_H_increases_with_s(d):
    X = paper_grid(d)
    K0 = 2 * augment(X) @ augment(X).T  # H_0 = 2 K0
    H1 = gram_closed_form(X, 1.0)["H"]
    lam1 = smallest_eigenvalue(H1)
    assert lam1 > 0
    # s = 0: H_0 = 2 K0 has rank d + 1 < n, so it is singular
    assert abs(smallest_eigenvalue(K0)) < 1e-10 * np.abs(K0).max()

    s_grid = np.linspace(0.25, 2.0, 36)
    lam = np.array([smallest_eigenvalue(gram_closed_form(X, s)["H"]) for s in s_grid])
    # numerical finding (Theorem 3.1's claim): strictly increasing over [0.25, 2]
    assert np.all(np.diff(lam) > 0)
    # exact: H_s = s^2 H_1 + (1 - s) 2 K0 with K0 PSD, so lambda_min(H_s) >= s^2 lambda_1 for
    # s <= 1 and <= s^2 lambda_1 for s >= 1; and H_s / s^2 = H_1 + (1/s^2 - 1/s) 2 K0 decreases in
    # the Loewner order on (0, 2], so lambda_min(H_s) / s^2 is non-increasing.
    ratio = lam / (s_grid**2 * lam1)
    tol = 1e-9
    assert np.all(ratio[s_grid <= 1] >= 1 - tol) and np.all(ratio[s_grid >= 1] <= 1 + tol)
    assert np.all(np.diff(ratio) <= tol)
    # numerical finding: the minimising eigenvector is almost orthogonal to range(K0), so
    # lambda_min(H_s) = s^2 lambda_min(H_1) to within 1e-4 relative (1e-7 in 1-D, 4e-5 in 3-D)
    np.testing.assert_allclose(ratio, 1.0, rtol=1e-4)


def test_min_eigenvalue_table_and_plot(tmp_path):
    X = paper_grid(1)
    table = min_eigenvalue_table(X, [0.5, 1.0, 1.5], widths=(50, 400), seed=0)
    assert [row["s"] for row in table] == [0.5, 1.0, 1.5]
    for row in table:
        assert set(row) == {"s", "lambda_min_closed", "lambda_min_m50", "lambda_min_m400"}
        assert row["lambda_min_closed"] == smallest_eigenvalue(gram_closed_form(X, row["s"])["H"])
        net = two_layer_net(1, 400, row["s"], seed=0)
        assert row["lambda_min_m400"] == pytest.approx(
            smallest_eigenvalue(empirical_gram_module(net, torch.as_tensor(X))), rel=1e-10)
    path = tmp_path / "lambda_min.png"
    plot_min_eigenvalue(table, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_smallest_eigenvalue_of_known_matrices():
    assert smallest_eigenvalue(np.array([[2.0, 1.0], [1.0, 2.0]])) == pytest.approx(1.0, rel=1e-15)
    assert smallest_eigenvalue(torch.diag(torch.tensor([3.0, -0.5, 7.0]))) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        smallest_eigenvalue(np.zeros((2, 3)))


# ---------------------------------------------------------------------- input validation
@pytest.mark.parametrize("s, match", [(-0.1, "s=-0.1"), (2.5, "s=2.5"), (float("nan"), "s=nan"),
                                      ("0.5", "string"), (None, "s=None")])
def test_bad_s_is_rejected_with_its_value(s, match):
    with pytest.raises(ValueError, match=match):
        gram_closed_form(points(1), s)


@pytest.mark.parametrize("X, match", [(np.zeros(4), r"shape \(4,\)"), (np.zeros((0, 2)), r"shape \(0, 2\)"),
                                      ([[0.0, np.inf]], r"X\[0, 1\]=inf")])
def test_bad_points_are_rejected_with_their_shape_or_value(X, match):
    with pytest.raises(ValueError, match=match):
        gram_closed_form(X, 1.0)


def test_bad_monte_carlo_and_width_arguments():
    with pytest.raises(ValueError, match="n_features=0"):
        gram_monte_carlo(points(1), 1.0, 0)
    with pytest.raises(ValueError, match="width=2.5"):
        min_eigenvalue_table(points(1), [1.0], widths=(2.5,))
    with pytest.raises(ValueError, match="not a torch.Tensor"):
        empirical_gram_module(two_layer_net(1, 3, 1.0), np.zeros((2, 1)))
