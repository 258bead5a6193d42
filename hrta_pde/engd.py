"""Energy natural gradient (ENGD) and Gauss-Newton steps: Newton's method in function space.

Every loss of the solver is a quadratic functional of ``u`` (Ritz energy, Sobolev, PINN residual,
L2), so its function-space Hessian is a fixed bilinear form. A loss declares that form as data, a
list of :class:`GramTerm` s: term ``k`` has points ``x_i``, a linear operator ``L_k`` and
non-negative weights ``w_ki``, and the form is ``sum_k sum_i w_ki (L_k u)(x_i) (L_k v)(x_i)``.
Pulled back to the parameters it is the Gram matrix::

    G = sum_k J_k^T W_k J_k,       J_k[i, :] = d (L_k u_theta)(x_i) / d theta

(for a least-squares loss this is the Gauss-Newton matrix; it is the exact Hessian when ``u`` is
linear in ``theta``). One step (Mueller and Zeinhofer, ICML 2023)::

    d = (G + mu I)^+ grad L(theta),     theta <- theta - eta d,

with ``eta`` the best of the step sizes ``1, 1/2, 1/4, ...`` (a grid line search on the loss) and
``^+`` the pseudo-inverse on the range of ``G`` (eigenvalues below ``rcond * lambda_max`` are
dropped), so a singular ``G`` never gives a NaN. With ``Jw = W^(1/2) J`` of ``R`` rows and ``P``
parameters the solve uses the smaller of ``Jw Jw^T`` (``R <= P``, the Woodbury form
``d = Jw^T U [Lambda (Lambda + mu)]^-1 U^T Jw g``) and ``Jw^T Jw``.

The rows ``L_k u`` combine ``u``, ``grad u`` and ``Laplace u`` with per-point coefficients. They are
differentiated per point with ``torch.func`` (``vmap`` over points of ``jacrev`` over parameters),
with no Python loop over points; for a ``dde.nn.FNN`` ``u``, ``grad u`` and ``Laplace u`` are
propagated forward through the layers (a forward Laplacian: one pass carries value, gradient and
Laplacian; an input transform that gives its own derivatives and an output transform
``g_ext + phi N`` are taken into it), other networks go through ``torch.func`` derivatives of
their ``forward``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.func import functional_call, grad as func_grad, jacrev, jvp, vmap

from hrta_pde.activation import HomotopyActivation
from hrta_pde.errors import SettingError


class EngdError(ValueError):
    """An ENGD setting or size that cannot work; the message names the value and the fix."""


class EngdSizeError(EngdError, SettingError):
    """A Jacobian that would not fit in memory; the message names the settings to lower as
    ``{name}`` (:class:`hrta_pde.errors.SettingError`)."""


@dataclass(frozen=True)
class GramTerm:
    """One term of a loss's function-space Hessian, as data.

    ``kind="scalar"``: one row per point, ``value_i u + grad_i . grad u + lap_i Laplace u``.
    ``kind="gradient"``: ``d`` rows per point, the components of ``grad u``.
    ``kind="mean"``: a single row, the mean of ``u`` over the points (with ``value``: the
    weighted sum ``sum_i value_i u(x_i)``).
    ``kind="jump"``: one row per point, ``grad_i . grad u+ + other_i . grad u-``, with ``u+-`` the
    network's one-sided values across interface ``side`` of its input transform
    (:meth:`hrta_pde.poisson.interfaces.InterfaceInputs.one_sided`): a flux condition.
    ``weight`` (per point, or one number for ``mean``) multiplies the squared rows.
    """

    name: str
    x: torch.Tensor
    weight: torch.Tensor | float
    kind: str = "scalar"
    value: torch.Tensor | None = None
    grad: torch.Tensor | None = None
    lap: torch.Tensor | None = None
    other: torch.Tensor | None = None
    side: int | None = None

    def __post_init__(self):
        if self.kind not in ("scalar", "gradient", "mean", "jump"):
            raise EngdError(f"GramTerm kind={self.kind!r}: use 'scalar', 'gradient', 'mean' or 'jump'")
        if self.kind == "jump" and (self.grad is None or self.other is None or self.side is None):
            raise EngdError(f"GramTerm {self.name!r}: a jump term needs grad, other and side")
        if self.kind == "scalar" and self.value is None and self.grad is None and self.lap is None:
            raise EngdError(f"GramTerm {self.name!r}: a scalar term needs value, grad or lap coefficients")

    @property
    def rows(self) -> int:
        n = self.x.shape[0]
        return {"scalar": n, "gradient": n * self.x.shape[1], "mean": 1, "jump": n}[self.kind]


@dataclass(frozen=True)
class EngdOptions:
    """``method``: ``"linesearch"`` (a grid of step sizes, Mueller and Zeinhofer) or ``"lm"``
    (Levenberg-Marquardt, see :func:`engd_update`). ``damping`` is ``mu`` for the line search (0: the
    pseudo-inverse; unused by ``lm``); ``halvings``: the line search tries
    ``eta = 2^-k`` for ``k = 0..halvings``; ``rcond``: relative eigenvalue cut-off (None: ``R * eps``
    of the dtype, as ``numpy.linalg.lstsq``); ``memory_fraction``: refuse a Jacobian larger than this
    fraction of the available memory; ``rtol``: the stage ends after a step that lowers the loss
    by less than ``rtol * |loss|`` (0: only when no step lowers it; meant for least-squares losses,
    whose minimum is near 0)."""

    damping: float = 0.0
    halvings: int = 30
    rcond: float | None = None
    memory_fraction: float = 0.5
    method: str = "linesearch"
    rtol: float = 0.0

    def __post_init__(self):
        if self.method not in ("linesearch", "lm"):
            raise EngdError(f"engd method={self.method!r} is unknown: use 'linesearch' (a grid of step sizes) "
                            "or 'lm' (Levenberg-Marquardt damping)")
        if not (isinstance(self.damping, (int, float)) and math.isfinite(self.damping) and self.damping >= 0):
            raise EngdError(f"engd damping={self.damping!r} must be a number >= 0")
        if isinstance(self.halvings, bool) or not isinstance(self.halvings, int) or not 0 <= self.halvings <= 60:
            raise EngdError(f"engd halvings={self.halvings!r} must be an integer in [0, 60]")
        if not (isinstance(self.rtol, (int, float)) and not isinstance(self.rtol, bool)
                and math.isfinite(self.rtol) and 0 <= self.rtol < 1):
            raise EngdError(f"engd rtol={self.rtol!r} must be a number in [0, 1)")


# -- u, grad u, Laplace u at one point, as functions of the parameters -----------------------------
def _sigma_derivatives(act: HomotopyActivation):
    """``z -> (sigma(z), sigma'(z), sigma''(z))`` in closed form for the built-in phi, else None."""
    name = act.phi_name

    def phi_d(z):
        if name == "tanh":
            t = torch.tanh(z)
            return t, 1 - t * t, -2 * t * (1 - t * t)
        if name == "sin":
            return torch.sin(z), torch.cos(z), -torch.sin(z)
        if name in ("relu", "relu2", "relu3"):
            r = torch.relu(z)
            if name == "relu":
                return r, (z > 0).to(z.dtype), torch.zeros_like(z)
            if name == "relu2":
                return r * r, 2 * r, 2 * (z > 0).to(z.dtype)
            return r * r * r, 3 * r * r, 6 * r
        return None

    if name not in ("tanh", "sin", "relu", "relu2", "relu3"):
        return None

    def sigma(z):
        s = act.s.to(z.dtype)
        p, dp, ddp = phi_d(z)
        return (1 - s) * z + s * p, (1 - s) + s * dp, s * ddp

    return sigma


def _scalar_features(fn) -> Callable:
    """``x -> (f, grad f, Laplace f)`` at one point for ``fn: (n, d) -> (n,)`` (no parameters)."""

    def value(x):
        return fn(x[None])[0]

    gfun = func_grad(value)

    def features(x):
        eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
        _, cols = vmap(lambda v: jvp(gfun, (x,), (v,)))(eye)
        return value(x), gfun(x), torch.diagonal(cols).sum()

    return features


def field_derivatives(fn, x: torch.Tensor) -> tuple:
    """``(f, grad f, Hessian f)`` of a parameter-free ``fn: (n, d) -> (n,)`` at all the points ``x``
    (autograd, detached; zeros where ``fn`` does not depend on ``x``)."""
    n, d = x.shape
    with torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        v = fn(xr)
        if v.dim() == 0:
            v = v.expand(n)
        if not v.requires_grad:
            return v.detach().clone(), torch.zeros_like(x), torch.zeros(n, d, d, dtype=x.dtype, device=x.device)
        (g,) = torch.autograd.grad(v.sum(), xr, create_graph=True)
        rows = []
        for j in range(d):
            (h,) = torch.autograd.grad(g[:, j].sum(), xr, retain_graph=True, allow_unused=True) \
                if g.requires_grad else (None,)
            rows.append(torch.zeros_like(x) if h is None else h)
    return v.detach(), g.detach(), torch.stack(rows, dim=1).detach()


def _lifted(inner: Callable, lift) -> Callable:
    """Features of ``u = g_ext + phi N`` from those of ``N`` (product rule). ``g_ext`` and ``phi``
    do not depend on the parameters: :class:`GramJacobian` computes their features at a term's
    points once (``features.lift_features``; from the transform's own cache where it has one,
    ``lift.derivatives(x)``) and passes them as ``aux``."""
    gf, pf = _scalar_features(lift.g_ext), _scalar_features(lift.phi)

    def features(params, x, aux=None):
        n, gn, ln = inner(params, x)
        g, gg, lg, p, gp, lp = (*gf(x), *pf(x)) if aux is None else aux
        return g + p * n, gg + n * gp + p * gn, lg + n * lp + 2 * (gp * gn).sum() + p * ln

    def lift_features(x):  # (n, d) -> six batched tensors
        cached = getattr(lift, "derivatives", None)
        g, p = cached(x) if cached is not None else (field_derivatives(lift.g_ext, x), field_derivatives(lift.phi, x))
        return tuple(t for v, grad, hess in (g, p) for t in (v, grad, hess.diagonal(dim1=1, dim2=2).sum(-1)))

    features.lift_features = lift_features
    return features


def _mlp_forward_laplacian(net) -> Callable | None:
    """A forward Laplacian for a ``dde.nn.FNN`` with homotopy activations (and an optional
    output transform ``g_ext + phi N`` that exposes its two parts, like
    :class:`hrta_pde.poisson.distance.HardDirichlet`, and an optional input transform that gives
    its own value, Jacobian and Laplacian at a point, ``point_features(x)``, like
    :class:`hrta_pde.poisson.interfaces.InterfaceInputs`)."""
    linears = getattr(net, "linears", None)
    lift = getattr(net, "_output_transform", None)
    if lift is not None and not (hasattr(lift, "g_ext") and hasattr(lift, "phi")):
        return None
    inputs = getattr(net, "_input_transform", None)  # e.g. poisson.interfaces.InterfaceInputs
    if linears is None or (inputs is not None and not hasattr(inputs, "point_features")):
        return None
    if not all(isinstance(m, torch.nn.Linear) and m.bias is not None for m in linears):
        return None
    acts = net.activation if isinstance(net.activation, (list, tuple)) else [net.activation] * (len(linears) - 1)
    if len(acts) < len(linears) - 1 or not all(isinstance(a, HomotopyActivation) for a in acts[:len(linears) - 1]):
        return None
    sigmas = [_sigma_derivatives(a) for a in acts[:len(linears) - 1]]
    if any(s is None for s in sigmas):
        return None
    names = [(f"linears.{i}.weight", f"linears.{i}.bias") for i in range(len(linears))]

    def features(params, x):
        """``(u, grad u, Laplace u)`` at one point ``x`` (d,)."""
        g = l = None
        h = x
        if inputs is not None:  # the input transform's value, Jacobian and Laplacian
            h, g, l = inputs.point_features(x)
        for i, (wn, bn) in enumerate(names):
            w, b = params[wn], params[bn]
            z = w @ h + b
            gz = w if g is None else w @ g
            lz = None if l is None else w @ l
            if i == len(names) - 1:
                h, g, l = z, gz, lz
                break
            sig, d1, d2 = sigmas[i](z)
            quad = (gz * gz).sum(dim=1)
            l = d2 * quad if lz is None else d1 * lz + d2 * quad
            g = d1[:, None] * gz
            h = sig
        if l is None:
            l = torch.zeros_like(h)
        return h[0], g[0], l[0]

    if lift is not None:
        return _lifted(features, lift)
    return features


def _generic_features(net, buffers, laplacian: bool = True) -> Callable:
    """``(u, grad u, Laplace u)`` at one point through ``torch.func`` derivatives of ``forward``
    (``laplacian=False``: the Laplacian is 0, cheaper for first-order terms)."""

    def u_point(params, x):
        return functional_call(net, (params, buffers), (x[None],))[0, 0]

    gfun = func_grad(u_point, argnums=1)

    def features(params, x):
        u, g = u_point(params, x), gfun(params, x)
        if not laplacian:
            return u, g, torch.zeros_like(u)
        eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
        _, hess_cols = vmap(lambda v: jvp(lambda xx: gfun(params, xx), (x,), (v,)))(eye)
        return u, g, torch.diagonal(hess_cols).sum()

    return features


def point_features(net, need_laplacian: bool = True):
    """``features(params, x) -> (u, grad u, Laplace u)`` at one point (Laplacian 0 if not needed)."""
    fast = _mlp_forward_laplacian(net)
    if fast is not None:
        return fast
    return _generic_features(net, {k: v for k, v in net.named_buffers()}, need_laplacian)


def _trainable(net, parameters=None) -> list[tuple[str, torch.nn.Parameter]]:
    chosen = None if parameters is None else {id(p) for p in parameters}
    return [(n, p) for n, p in net.named_parameters() if p.requires_grad and (chosen is None or id(p) in chosen)]


class GramJacobian:
    """``Jw = W^(1/2) J`` of a list of :class:`GramTerm` s for ``net`` (rows R, parameters P)."""

    def __init__(self, net, terms: Sequence[GramTerm], parameters=None):
        self.net, self.terms = net, list(terms)
        if not self.terms:
            raise EngdError("the loss declares no Gram terms: engd cannot form its Gram matrix")
        self.named = _trainable(net, parameters)
        if parameters is not None and len(self.named) != len([p for p in parameters if p.requires_grad]):
            raise EngdError("engd trains the parameters of the network only; the trainable variables "
                            "outside it (e.g. DeepXDE external_trainable_variables) need adam or lbfgs")
        need_lap = any(t.kind == "scalar" and t.lap is not None for t in self.terms)
        self.features = point_features(net, need_lap)
        self._aux: dict = {}  # term index -> (points, features of g_ext and phi there)
        self.rows = sum(t.rows for t in self.terms)
        self.size = sum(p.numel() for _, p in self.named)

    def bytes_needed(self, itemsize: int) -> int:
        """Memory of ``Jw`` plus the smaller Gram matrix and its eigenvectors."""
        r, p = self.rows, self.size
        return itemsize * (r * p + 2 * min(r, p) ** 2)

    def __call__(self) -> torch.Tensor:
        params = {n: p.detach() for n, p in self.named}
        trained = set(params)
        frozen = {n: p.detach() for n, p in self.net.named_parameters() if n not in trained}
        base = self.features
        features = base if not frozen else (lambda p, x, *aux: base({**frozen, **p}, x, *aux))
        blocks = [self._term(term, params, features, self._lift_aux(i, term.x.detach()))
                  for i, term in enumerate(self.terms)]
        return torch.cat(blocks, dim=0)

    def _lift_aux(self, i: int, x: torch.Tensor):
        """The features of an output transform's ``g_ext`` and ``phi`` at term ``i``'s points,
        computed once (they do not change with the parameters), or None without a transform."""
        compute = getattr(self.features, "lift_features", None)
        if compute is None:
            return None
        hit = self._aux.get(i)
        if hit is None or hit[0].shape != x.shape or not torch.equal(hit[0], x):
            hit = (x.clone(), compute(x))
            self._aux[i] = hit
        return hit[1]

    def _term(self, term: GramTerm, params, feats_in, aux=None) -> torch.Tensor:
        x = term.x.detach()
        n, d = x.shape
        dtype = x.dtype
        if aux is None:
            feats, vm = (lambda p, xx, a: feats_in(p, xx)), None
        else:
            feats, vm = feats_in, 0

        def flat(jac: dict, lead: tuple) -> torch.Tensor:
            return torch.cat([jac[name].reshape(*lead, -1) for name, _ in self.named], dim=-1)

        chunk = max(1, min(n, (1 << 24) // max(1, self.size * max(1, d))))
        if term.kind == "gradient":
            jac = vmap(jacrev(lambda p, xx, a: feats(p, xx, a)[1]), in_dims=(None, 0, vm),
                       chunk_size=chunk)(params, x, aux)
            rows = flat(jac, (n, d))  # (n, d, P)
            w = term.weight.to(device=x.device, dtype=dtype).sqrt()[:, None, None]
            return (w * rows).reshape(n * d, -1)
        if term.kind == "mean":
            jac = vmap(jacrev(lambda p, xx, a: feats(p, xx, a)[0]), in_dims=(None, 0, vm),
                       chunk_size=chunk)(params, x, aux)
            rows = flat(jac, (n,))
            row = (rows.mean(dim=0, keepdim=True) if term.value is None
                   else (term.value.to(device=x.device, dtype=dtype)[:, None] * rows).sum(dim=0, keepdim=True))
            return math.sqrt(float(term.weight)) * row
        zeros = torch.zeros(n, dtype=dtype, device=x.device)
        cv = zeros if term.value is None else term.value.to(device=x.device, dtype=dtype)
        cg = torch.zeros_like(x) if term.grad is None else term.grad.to(device=x.device, dtype=dtype)
        cl = zeros if term.lap is None else term.lap.to(device=x.device, dtype=dtype)

        def row(p, xx, v, g, lap_c, a):
            u, gu, lu = feats(p, xx, a)
            return v * u + (g * gu).sum() + lap_c * lu

        def rows(coef_g):
            jac = vmap(jacrev(row), in_dims=(None, 0, 0, 0, 0, vm), chunk_size=chunk)(params, x, cv, coef_g, cl, aux)
            return flat(jac, (n,))

        sqrt_w = term.weight.to(device=x.device, dtype=dtype).sqrt()[:, None]
        if term.kind == "jump":  # the same rows taken on either side of the interface, summed
            inputs = getattr(self.net, "_input_transform", None)
            if inputs is None or not hasattr(inputs, "one_sided"):
                raise EngdError(f"GramTerm {term.name!r}: a jump term needs a network with interface inputs")
            with inputs.one_sided(term.side, 1):
                plus = rows(cg)
            with inputs.one_sided(term.side, -1):
                minus = rows(term.other.to(device=x.device, dtype=dtype))
            return sqrt_w * (plus + minus)
        return sqrt_w * rows(cg)


class ResidualJacobian:
    """``Jw`` of a least-squares loss ``sum_k w_k mean(r_k^2)`` whose residuals come from autograd.

    ``residuals() -> [(w_k, r_k), ...]`` (``r_k`` a vector of the current parameters); the Gram
    matrix is the Gauss-Newton matrix, rows ``sqrt(2 w_k / n_k) d r_k[i] / d theta``. For residuals
    that ``torch.func`` cannot trace (a DeepXDE ``pde`` function differentiates with
    ``torch.autograd.grad``) the rows are reverse-mode passes, one per residual: slower than
    :class:`GramJacobian`, which knows the operator.
    """

    def __init__(self, residuals: Callable[[], list], params: Sequence[torch.Tensor]):
        self.residuals, self.params = residuals, [p for p in params if p.requires_grad]
        self.rows = sum(int(r.numel()) for _, r in residuals())
        self.size = sum(p.numel() for p in self.params)

    def bytes_needed(self, itemsize: int) -> int:
        return itemsize * (self.rows * self.size + 2 * min(self.rows, self.size) ** 2)

    def __call__(self) -> torch.Tensor:
        out = []
        for w, r in self.residuals():
            r = r.reshape(-1)
            scale = math.sqrt(2.0 * float(w) / max(1, r.numel()))
            for i in range(r.numel()):
                grads = torch.autograd.grad(r[i], self.params, retain_graph=True, allow_unused=True)
                out.append(scale * torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                              for g, p in zip(grads, self.params)]))
        return torch.stack(out)


def check_memory(jacobian, dtype: torch.dtype, options: EngdOptions, device=None) -> None:
    """Refuse, before training, a Jacobian that would not fit in memory (names sizes and fixes)."""
    from hrta_pde.limits import available_bytes

    need = jacobian.bytes_needed(torch.finfo(dtype).bits // 8)
    avail = available_bytes(device)
    if avail is not None and need > options.memory_fraction * avail:
        raise EngdSizeError(
            f"engd needs a Jacobian of {jacobian.rows} rows x {jacobian.size} parameters "
            f"({need / 2**30:.1f} GiB with its Gram matrix) but {avail / 2**30:.1f} GiB of memory is "
            "available: use fewer points ({points}, {boundary_points}) or a smaller network "
            "({width}, {depth}), or an adam/lbfgs stage")


class GramSolver:
    """``mu -> (Jw^T Jw + mu I)^+ g`` from one eigendecomposition (see the module docstring).

    The smaller of ``Jw Jw^T`` (``R <= P``) and ``Jw^T Jw`` is decomposed once; every damping ``mu``
    then costs two matrix-vector products. ``mean_eigenvalue`` (``trace G / P``) sets the scale of
    a relative damping.
    """

    def __init__(self, jw: torch.Tensor, g: torch.Tensor, rcond: float | None = None):
        r, p = jw.shape
        if rcond is None:
            rcond = max(r, p) * torch.finfo(jw.dtype).eps
        small = jw @ jw.T if r <= p else jw.T @ jw
        lam, vec = torch.linalg.eigh(small)
        self.mean_eigenvalue = float(lam.clamp(min=0).sum()) / p
        keep = lam > rcond * lam.max().clamp(min=0)
        self.empty = not bool(keep.any())
        self.lam, vec = lam[keep], vec[:, keep]
        self.g = g
        if r <= p:  # G = V Lambda V^T with V = Jw^T U Lambda^(-1/2)
            self.coef, self.basis, self.wide = vec.T @ (jw @ g), (jw, vec), True
        else:
            self.coef, self.basis, self.wide = vec.T @ g, vec, False

    def direction(self, mu: float = 0.0) -> torch.Tensor:
        if self.empty:
            return torch.zeros_like(self.g)
        if self.wide:
            jw, u = self.basis
            return jw.T @ (u @ (self.coef / (self.lam * (self.lam + mu))))
        return self.basis @ (self.coef / (self.lam + mu))


def natural_direction(jw: torch.Tensor, g: torch.Tensor, damping: float = 0.0,
                      rcond: float | None = None) -> torch.Tensor:
    """``(Jw^T Jw + mu I)^+ g`` on the range of ``Jw^T Jw`` (see :class:`GramSolver`)."""
    return GramSolver(jw, g, rcond).direction(damping)


def line_search(params: list[torch.Tensor], direction: list[torch.Tensor], loss_at: Callable[[], float],
                loss0: float, halvings: int) -> tuple[float, float]:
    """Best of ``eta = 1, 1/2, 1/4, ...`` on ``theta - eta d``; returns ``(eta, loss)``.

    Stops at the first step size whose loss is worse than the best one found after a decrease
    (the loss along a Newton direction is unimodal in practice), and keeps ``theta`` (``eta = 0``)
    when no step size lowers the loss. Non-finite losses count as worse.
    """
    start = [p.detach().clone() for p in params]
    best_eta, best_loss = 0.0, loss0
    eta = 1.0

    def move(step):
        with torch.no_grad():
            for p, p0, dp in zip(params, start, direction):
                p.copy_(p0 - step * dp)

    for _ in range(halvings + 1):
        move(eta)
        value = loss_at()  # with autograd on: the loss may differentiate u in x
        if math.isfinite(value) and value < best_loss:
            best_eta, best_loss = eta, value
        elif best_eta > 0:
            break
        eta *= 0.5
    move(best_eta)
    return best_eta, best_loss


def _split(flat: torch.Tensor, params) -> list[torch.Tensor]:
    chunks, k = [], 0
    for p in params:
        chunks.append(flat[k:k + p.numel()].view_as(p))
        k += p.numel()
    return chunks


def engd_update(params: list[torch.Tensor], jacobian: Callable[[], torch.Tensor],
                loss_at: Callable[[], float], loss0: float, options: EngdOptions) -> tuple[float, float]:
    """One ENGD step from the gradients in ``p.grad``; returns ``(step size or damping, new loss)``.

    ``options.method == "linesearch"``: ``d = (G + mu I)^+ grad`` with the fixed ``mu =
    options.damping``, then the grid line search (returns ``eta``); when it accepts only a step
    shorter than :data:`SHORT_STEP`, the damped directions of :data:`LM_GRID` are searched too and
    the lowest loss is kept; ``eta = 0`` (the parameters unchanged: converged) only if none lowers it. ``"lm"``: Levenberg-Marquardt, the full step ``eta = 1`` with the damping
    ``mu = rho * trace(G) / P`` adapted in ``state["rho"]``: divided by 3 after a step that lowers
    the loss, multiplied by 4 (and the step retried, at most 12 times) after one that does not
    (returns ``rho``; 0 steps leave the parameters unchanged and return ``nan``).
    """
    g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    solver = GramSolver(jacobian(), g, options.rcond)
    if options.method == "linesearch":
        start = [p.detach().clone() for p in params]
        eta, value = line_search(params, _split(solver.direction(options.damping), params), loss_at, loss0,
                                 options.halvings)
        if eta >= SHORT_STEP:
            return eta, value
        # Only a short step (or none) lowered the loss: far from the minimiser the Gauss-Newton model
        # is poor (the loss may even curve downwards), and damped directions, which lean towards the
        # gradient, make more progress. Keep the best of them and of the undamped step.
        best = (value, eta, [p.detach().clone() for p in params])
        for rho in LM_GRID[1:]:
            with torch.no_grad():
                for p, p0 in zip(params, start):
                    p.copy_(p0)
            e, v = line_search(params, _split(solver.direction(rho * solver.mean_eigenvalue), params),
                               loss_at, loss0, options.halvings)
            if e > 0.0 and v < best[0]:
                best = (v, e, [p.detach().clone() for p in params])
        with torch.no_grad():
            for p, q in zip(params, best[2]):
                p.copy_(q)
        return best[1], best[0]
    start = [p.detach().clone() for p in params]
    best_rho, best_loss = math.nan, loss0
    for rho in LM_GRID:
        d = _split(solver.direction(rho * solver.mean_eigenvalue), params)
        with torch.no_grad():
            for p, p0, dp in zip(params, start, d):
                p.copy_(p0 - dp)
        value = loss_at()
        if math.isfinite(value) and value < best_loss:
            best_rho, best_loss = rho, value
    d = _split(solver.direction(0.0 if math.isnan(best_rho) else best_rho * solver.mean_eigenvalue), params)
    with torch.no_grad():
        for p, p0, dp in zip(params, start, d):
            p.copy_(p0 if math.isnan(best_rho) else p0 - dp)
    return best_rho, best_loss


#: Below this step size the line search also tries the damped directions of :data:`LM_GRID`.
SHORT_STEP = 2.0**-8

#: Relative dampings ``rho`` (``mu = rho * trace(G) / P``) that the ``lm`` step tries, full steps.
LM_GRID = (0.0, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1.0)


__all__ = ["EngdError", "EngdOptions", "GramJacobian", "GramTerm", "ResidualJacobian", "GramSolver", "check_memory", "engd_update",
           "line_search", "natural_direction", "point_features"]
