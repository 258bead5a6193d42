"""Gram matrices (neural tangent kernels) of the two-layer homotopy network (METHOD.md 4-5).

The network of the theory, with ``xbar = (x, 1)`` and ``phi = ReLU``::

    f(x; a, W) = m**-0.5 * sum_k a_k * sigma_s(w_k . xbar),   a_k ~ N(0, 1),  w_k ~ N(0, I_{d+1})
    sigma_s(z) = (1 - s) z + s relu(z),                       sigma_s'(z) = (1 - s) + s 1[z > 0]

Its Gram matrix ``J J^T`` (``J`` the Jacobian of the outputs with respect to all parameters)
converges, as the width ``m`` grows, to ``H_s = K^a_s + K^w_s`` with (``u = w . xbar``,
``v = w . xbar'``, ``w ~ N(0, I)``)::

    K^a_s(x, x') = E[sigma_s(u) sigma_s(v)]
    K^w_s(x, x') = E[sigma_s'(u) sigma_s'(v)] (xbar . xbar')

Expanding ``sigma_s`` and using ``E[u relu(v)] = E[relu(u) v] = K0 / 2`` and
``P(u > 0) = 1/2`` (both from the symmetry ``w -> -w``) gives, for both kernels,

    K_s = s**2 K_1 + (1 - s) K_0

with ``K_0 = xbar . xbar'`` and the arc-cosine kernels ``K_1`` below. This module gives the
closed form, a Monte Carlo estimate of the same expectations, the finite-width (empirical)
Gram matrix of any scalar-output torch model, and the smallest-eigenvalue study of Theorem 3.1.

Example::

    >>> import numpy as np
    >>> from hrta_pde.ntk import gram_closed_form, paper_grid, smallest_eigenvalue
    >>> K = gram_closed_form(paper_grid(1), s=1.0)
    >>> round(smallest_eigenvalue(K["H"]), 6)
    0.000804
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch

from hrta_pde.activation import check_s, sigma_s, sigma_s_prime
from hrta_pde.networks import HomotopyNet

__all__ = [
    "augment",
    "gram_closed_form",
    "gram_monte_carlo",
    "empirical_gram",
    "empirical_gram_module",
    "smallest_eigenvalue",
    "paper_grid",
    "two_layer_net",
    "min_eigenvalue_table",
    "plot_min_eigenvalue",
]

# --------------------------------------------------------------------------- input checking
def _check_points(X) -> np.ndarray:
    """``X`` as a finite float64 array of shape ``(n, d)``, ``n, d >= 1``."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"X={X!r} ({type(X).__name__}) is not a numeric array: "
                         "pass an (n, d) array of points") from None
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X has shape {arr.shape}: expected a 2-D (n points, d coordinates) "
                         "array with n, d >= 1 (use X[:, None] for 1-D points)")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"X has {int(bad.sum())} non-finite entries (first X[{i}, {j}]={arr[i, j]}): "
                         "all coordinates must be finite")
    return arr


def _check_points_torch(X) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"X is a {type(X).__name__}, not a torch.Tensor: "
                         "convert it with torch.as_tensor(X, dtype=...)")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X has shape {tuple(X.shape)}: expected a 2-D (n points, d coordinates) "
                         "tensor with n, d >= 1")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"X has {int((~torch.isfinite(X)).sum())} non-finite entries: "
                         "all coordinates must be finite")
    return X


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} ({type(value).__name__}) must be a positive integer")
    return int(value)


# --------------------------------------------------------------------------- kernels
def augment(X) -> np.ndarray:
    """Append a column of ones: ``xbar = (x, 1)``, shape ``(n, d) -> (n, d + 1)``.

    Example::

        >>> augment([[0.5], [2.0]])
        array([[0.5, 1. ],
               [2. , 1. ]])
    """
    X = _check_points(X)
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def _relu_prime(z: np.ndarray) -> np.ndarray:
    return z > 0.0


def gram_closed_form(X, s) -> dict[str, np.ndarray]:
    """Infinite-width Gram matrices ``{"Ka", "Kw", "H"}`` of the two-layer network, float64 ``(n, n)``.

    With ``K0 = xbar . xbar'`` and ``theta = arccos(clip(K0 / (|xbar| |xbar'|), -1, 1))``::

        Kw_1 = K0 (pi - theta) / (2 pi)                                   E[1[u>0] 1[v>0]] K0
        Ka_1 = |xbar| |xbar'| (sin theta + (pi - theta) cos theta) / (2 pi)   E[relu(u) relu(v)]
        Ka_s = s**2 Ka_1 + (1 - s) K0,   Kw_s = s**2 Kw_1 + (1 - s) K0,   H = Ka_s + Kw_s

    ``s = 0`` gives ``Ka = Kw = K0`` exactly (a linear network); ``s = 1`` the ReLU kernels.

    Example::

        >>> K = gram_closed_form([[0.0], [1.0]], s=0.0)
        >>> K["H"]
        array([[2., 2.],
               [2., 4.]])
    """
    Xb = augment(X)
    s = check_s(s)
    K0 = Xb @ Xb.T
    norms = np.sqrt(np.einsum("ij,ij->i", Xb, Xb))  # >= 1 because of the appended 1
    outer = np.outer(norms, norms)
    cos = np.clip(K0 / outer, -1.0, 1.0)
    np.fill_diagonal(cos, 1.0)  # theta(x, x) = 0 exactly, not arccos(1 - eps) ~ 1e-8
    theta = np.arccos(cos)
    Kw1 = K0 * (np.pi - theta) / (2.0 * np.pi)
    Ka1 = outer * (np.sin(theta) + (np.pi - theta) * cos) / (2.0 * np.pi)
    Ka = s * s * Ka1 + (1.0 - s) * K0
    Kw = s * s * Kw1 + (1.0 - s) * K0
    # symmetrise against rounding so that eigvalsh and PSD checks see an exactly symmetric matrix
    Ka, Kw = 0.5 * (Ka + Ka.T), 0.5 * (Kw + Kw.T)
    return {"Ka": Ka, "Kw": Kw, "H": Ka + Kw}


def gram_monte_carlo(X, s, n_features: int, *, seed: int = 0, chunk: int = 16384,
                     return_stderr: bool = False) -> dict[str, np.ndarray]:
    """Monte Carlo estimate of the Gram matrices from ``n_features`` random ``w_k ~ N(0, I_{d+1})``.

    With ``u_k = w_k . xbar`` and ``v_k = w_k . xbar'`` (and ``E[a**2] = 1`` factored out)::

        Ka = mean_k sigma_s(u_k) sigma_s(v_k)
        Kw = mean_k sigma_s'(u_k) sigma_s'(v_k) * (xbar . xbar')
        H  = Ka + Kw

    Features are drawn ``chunk`` at a time (``numpy.random.default_rng(seed)``), so memory is
    ``O(n * chunk)`` whatever ``n_features`` is; the draws (hence the estimate) depend on ``chunk``.
    With ``return_stderr=True`` the dict also holds ``"Ka_se"``, ``"Kw_se"``, ``"H_se"``: the
    entrywise standard error of each mean, estimated from the same samples.

    Example::

        >>> K = gram_monte_carlo([[0.0], [1.0]], s=1.0, n_features=200_000)
        >>> bool(abs(K["H"] - gram_closed_form([[0.0], [1.0]], 1.0)["H"]).max() < 0.02)
        True
    """
    Xb = augment(X)
    s = check_s(s)
    n_features = _check_positive_int(n_features, "n_features")
    chunk = _check_positive_int(chunk, "chunk")
    n, dim = Xb.shape
    rng = np.random.default_rng(seed)
    K0 = Xb @ Xb.T
    sum_a = np.zeros((n, n))
    sum_d = np.zeros((n, n))
    if return_stderr:
        sq_a = np.zeros((n, n))   # sum_k (S_ik S_jk)^2
        sq_d = np.zeros((n, n))   # sum_k (D_ik D_jk)^2
        cross = np.zeros((n, n))  # sum_k S_ik D_ik S_jk D_jk
    done = 0
    while done < n_features:
        c = min(chunk, n_features - done)
        U = Xb @ rng.standard_normal((dim, c))  # (n, c): column k is w_k . xbar_i
        S = sigma_s(U, s, _relu)
        D = sigma_s_prime(U, s, _relu_prime)
        sum_a += S @ S.T
        sum_d += D @ D.T
        if return_stderr:
            S2, D2, SD = S * S, D * D, S * D
            sq_a += S2 @ S2.T
            sq_d += D2 @ D2.T
            cross += SD @ SD.T
        done += c
    N = float(n_features)
    Ka = sum_a / N
    Kw = sum_d / N * K0
    out = {"Ka": Ka, "Kw": Kw, "H": Ka + Kw}
    if return_stderr:
        def stderr(mean, mean_sq):
            var = np.maximum(mean_sq - mean * mean, 0.0) * (N / max(N - 1.0, 1.0))
            return np.sqrt(var / N)

        # per feature, p^H_ij = S_i S_j + D_i D_j K0_ij, so E[(p^H)^2] expands into the three sums
        out["Ka_se"] = stderr(Ka, sq_a / N)
        out["Kw_se"] = stderr(Kw, sq_d / N * K0 * K0)
        out["H_se"] = stderr(Ka + Kw, (sq_a + 2.0 * cross * K0 + sq_d * K0 * K0) / N)
    return out


# --------------------------------------------------------------------------- finite width
def empirical_gram(f: Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor],
                   params: Mapping[str, torch.Tensor], X: torch.Tensor, *,
                   rowwise: bool = True) -> torch.Tensor:
    """Finite-width Gram matrix (empirical NTK) ``J J^T`` of a scalar-output model, ``(n, n)``.

    ``J[i, :] = d f(x_i) / d theta`` with all tensors of ``params`` flattened and concatenated;
    ``f(params, X)`` must return shape ``(n,)`` or ``(n, 1)``. The result is detached, in the
    parameters' dtype; memory is ``O(n * number of parameters)``.

    ``rowwise=True`` (default) assumes output ``i`` depends on row ``X[i]`` only (true for MLPs
    and any point-wise model, not for batch normalisation) and takes per-point gradients with
    ``torch.func.vmap(torch.func.grad(...))``: cost ``O(n)`` forward/backward passes of one point.
    ``rowwise=False`` uses ``torch.func.jacrev`` on the whole batch, exact for any ``f`` but
    ``O(n^2)`` (each of the ``n`` vector-Jacobian products runs through all ``n`` points).

    Example (a linear model ``f = X @ w``, whose Gram matrix is ``X X^T``)::

        >>> import torch
        >>> X = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
        >>> empirical_gram(lambda p, X: X @ p["w"], {"w": torch.zeros(2, dtype=torch.float64)}, X)
        tensor([[ 5., 11.],
                [11., 25.]], dtype=torch.float64)
    """
    X = _check_points_torch(X)
    if not isinstance(params, Mapping) or not params:
        raise ValueError(f"params={params!r} must be a non-empty dict of name -> torch.Tensor")
    params = {name: p.detach() for name, p in params.items()}
    n = X.shape[0]
    with torch.no_grad():  # one cheap forward pass, to report a wrong output shape clearly
        shape = tuple(f(params, X).shape)
    if shape not in ((n,), (n, 1)):
        raise ValueError(f"the model returned shape {shape} for {n} points: "
                         f"a scalar-output model must return ({n},) or ({n}, 1)")

    if rowwise:
        def one_point(p, x):
            return f(p, x[None]).reshape(())

        jac = torch.func.vmap(torch.func.grad(one_point), in_dims=(None, 0))(params, X)
    else:
        jac = torch.func.jacrev(lambda p: f(p, X).reshape(n))(params)
    # both give name -> (n, *param.shape)
    J = torch.cat([jac[name].reshape(n, -1) for name in params], dim=1)
    return (J @ J.T).detach()


def empirical_gram_module(net: torch.nn.Module, X: torch.Tensor, *, rowwise: bool = True) -> torch.Tensor:
    """:func:`empirical_gram` of a ``torch.nn.Module`` over its trainable ``named_parameters()``.

    Uses ``torch.func.functional_call``; buffers (e.g. ``s``) keep their current values.

    Example::

        >>> net = two_layer_net(d=1, width=4, s=1.0, seed=0)
        >>> X = torch.linspace(0, 1, 3, dtype=torch.float64)[:, None]
        >>> empirical_gram_module(net, X).shape
        torch.Size([3, 3])
    """
    if not isinstance(net, torch.nn.Module):
        raise ValueError(f"net is a {type(net).__name__}, not a torch.nn.Module: "
                         "use empirical_gram(f, params, X) for a function")
    params = {name: p for name, p in net.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError(f"{type(net).__name__} has no trainable parameters: nothing to differentiate")

    def f(p, X):
        return torch.func.functional_call(net, p, (X,))

    return empirical_gram(f, params, X, rowwise=rowwise)


def two_layer_net(d: int, width: int, s: float, *, seed: int = 0,
                  dtype: torch.dtype = torch.float64) -> HomotopyNet:
    """The two-layer network of the theory, ``f(x) = m**-0.5 * sum_k a_k sigma_s(w_k . xbar)``.

    A :class:`~hrta_pde.networks.HomotopyNet` with ``phi = ReLU`` and one hidden layer of
    ``width``: ``hidden[0].weight`` is ``w`` (``(m, d + 1)``, the last column acting on the
    appended 1, i.e. the bias) and ``a`` (``(1, m)``), drawn i.i.d. ``N(0, 1)`` (``w`` first)
    from ``torch.Generator().manual_seed(seed)``; both are trainable. Output shape ``(n, 1)``.

    Example::

        >>> net = two_layer_net(d=1, width=1000, s=0.5, seed=0)
        >>> net(torch.zeros(2, 1, dtype=torch.float64)).shape
        torch.Size([2, 1])
    """
    d = _check_positive_int(d, "d")
    width = _check_positive_int(width, "width")
    net = HomotopyNet(d, [width], "relu", check_s(s), generator=torch.Generator(), dtype=dtype)
    # drawn again, w before a (HomotopyNet draws a first): the weights of the published studies
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        net.hidden[0].weight.copy_(torch.randn(width, d + 1, generator=gen, dtype=dtype))
        net.a.copy_(torch.randn(1, width, generator=gen, dtype=dtype))
    return net


# --------------------------------------------------------------------------- Theorem 3.1 study
def smallest_eigenvalue(K) -> float:
    """Smallest eigenvalue of a symmetric matrix (numpy or torch), in float64 via ``eigvalsh``.

    ``K`` is symmetrised, ``(K + K^T) / 2``, first (it removes rounding asymmetry).

    Example::

        >>> smallest_eigenvalue(np.array([[2.0, 1.0], [1.0, 2.0]]))
        1.0
    """
    if isinstance(K, torch.Tensor):
        K = K.detach().cpu().numpy()
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"K has shape {K.shape}: expected a non-empty square matrix")
    if not np.isfinite(K).all():
        raise ValueError(f"K has {int((~np.isfinite(K)).sum())} non-finite entries")
    return float(np.linalg.eigvalsh(0.5 * (K + K.T))[0])


def paper_grid(d: int) -> np.ndarray:
    """The paper's point sets: ``d = 1``: ``linspace(0, 1, 100)`` as ``(100, 1)``;
    ``d = 3``: the ``5 x 5 x 5`` tensor grid of ``linspace(0, 1, 5)`` as ``(125, 3)`` (``ij`` order).

    Example::

        >>> paper_grid(3).shape
        (125, 3)
    """
    if d == 1 and not isinstance(d, bool):
        return np.linspace(0.0, 1.0, 100)[:, None]
    if d == 3:
        g = np.linspace(0.0, 1.0, 5)
        return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    raise ValueError(f"d={d!r}: the paper's point sets exist only for d = 1 (100 points) and d = 3 (125 points)")


def min_eigenvalue_table(X, s_values, *, widths=(), seed: int = 0,
                         dtype: torch.dtype = torch.float64) -> list[dict]:
    """Smallest Gram eigenvalue against ``s``: closed form and, per width, a finite network.

    Returns one row per ``s``: ``{"s": s, "lambda_min_closed": ..., "lambda_min_m{m}": ...}``,
    the last for each ``m`` in ``widths``: the empirical Gram matrix of a fresh
    :func:`two_layer_net` of width ``m`` (seed ``seed``, so the same weights for every ``s``).

    Example::

        >>> rows = min_eigenvalue_table(paper_grid(1), [0.5, 1.0], widths=(200,))
        >>> sorted(rows[0])
        ['lambda_min_closed', 'lambda_min_m200', 's']
    """
    X = _check_points(X)
    s_list = [check_s(s) for s in np.atleast_1d(np.asarray(s_values, dtype=object))]
    widths = [_check_positive_int(m, "width") for m in widths]
    Xt = torch.as_tensor(X, dtype=dtype)
    table = []
    for s in s_list:
        row = {"s": s, "lambda_min_closed": smallest_eigenvalue(gram_closed_form(X, s)["H"])}
        for m in widths:
            net = two_layer_net(X.shape[1], m, s, seed=seed, dtype=dtype)
            row[f"lambda_min_m{m}"] = smallest_eigenvalue(empirical_gram_module(net, Xt))
        table.append(row)
    return table


def plot_min_eigenvalue(table, path) -> None:
    """Plot each ``lambda_min_*`` column of :func:`min_eigenvalue_table` against ``s`` (log y).

    Non-positive values (e.g. ``s = 0``, where ``H_0 = 2 K0`` has rank ``d + 1``) cannot be shown
    on a log scale and are left out. Writes a PNG to ``path``.
    """
    # Figure without pyplot: renders with the Agg canvas and touches no global backend state
    from matplotlib.figure import Figure

    if not table:
        raise ValueError("table is empty: nothing to plot")
    s = np.array([row["s"] for row in table], dtype=float)
    columns = [k for k in table[0] if k != "s"]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for col in columns:
        y = np.array([row[col] for row in table], dtype=float)
        y[~(y > 0)] = np.nan
        label = "infinite width (closed form)" if col == "lambda_min_closed" else \
            f"width m = {col.removeprefix('lambda_min_m')}"
        ax.plot(s, y, marker="o", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("homotopy parameter s")
    ax.set_ylabel("smallest eigenvalue of the Gram matrix")
    ax.set_title("Smallest Gram eigenvalue vs homotopy parameter s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
