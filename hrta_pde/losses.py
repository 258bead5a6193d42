"""Loss functions for ``-Laplace u = f``: one small function per mathematical object.

Each loss takes the network and the sampled points and returns named terms (a dict of scalar
tensors) whose sum is minimised. Integrals are Monte Carlo means times the measure, so
``|Omega| * mean(...)`` approximates ``int_Omega ...`` independently of the number of points.

* Deep Ritz energy (METHOD.md section 7), *not* squared::

      E(u) = |Omega| mean(0.5 |grad u|^2 - f u)                    (interior)
           + beta |dOmega| mean_{boundary}( 1_D (u - g)^2 )          (Dirichlet penalty)
           - |dOmega| mean_{boundary}( 1_N h u )                     (Neumann data)

* Sobolev (H1 supervised): ``mean(|u - u*|^2) + mean(|grad u - grad u*|^2)``.
* Strong-form PINN: ``mean((-Laplace u - f)^2) + beta (mean_D (u - g)^2 + mean_N (du/dn - h)^2)``.
* Plain L2 supervised: ``mean((u - u*)^2)``.

For a pure-Neumann problem (``u`` determined up to a constant) the Ritz and PINN losses add
``gamma * mean(u)^2``: the solution with zero mean is selected.
"""
from __future__ import annotations

from typing import Callable

import torch

from hrta_pde.engd import GramTerm

LOSSES = ("ritz", "sobolev", "pinn", "l2")


def gradient(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``grad u`` at ``x`` (n, d), differentiable again (``create_graph=True``)."""
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    return g


def laplacian(grad_u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``Laplace u = sum_i d(grad_u[:, i]) / dx_i`` at ``x`` (n,), differentiable again."""
    lap = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(x.shape[1]):
        (gi,) = torch.autograd.grad(grad_u[:, i].sum(), x, create_graph=True)
        lap = lap + gi[:, i]
    return lap


def ritz_interior(u, grad_u, f, measure: float) -> torch.Tensor:
    """``|Omega| mean(0.5 |grad u|^2 - f u)``: the energy density integrated over the domain."""
    return measure * (0.5 * (grad_u**2).sum(dim=1) - f * u).mean()


def dirichlet_penalty(u_b, g, dirichlet_mask, boundary_measure: float) -> torch.Tensor:
    """``|dOmega| mean(1_D (u - g)^2)`` ~ ``int_{Gamma_D} (u - g)^2``."""
    return boundary_measure * (dirichlet_mask * (u_b - g) ** 2).mean()


def neumann_work(u_b, h, neumann_mask, boundary_measure: float) -> torch.Tensor:
    """``-|dOmega| mean(1_N h u)`` ~ ``-int_{Gamma_N} h u`` (the Neumann term of the energy)."""
    return -boundary_measure * (neumann_mask * h * u_b).mean()


def mean_penalty(u) -> torch.Tensor:
    """``mean(u)^2``: fixes the free constant of a pure-Neumann problem (zero mean)."""
    return u.mean() ** 2


class LossContext:
    """The fixed inputs of a loss: points, data at the points, measures and weights.

    Built once by the solver (data are evaluated once, not per iteration).
    """

    def __init__(self, problem, x_in: torch.Tensor, boundary, *, beta: float, gamma: float = 1.0):
        self.problem = problem
        self.x = x_in.detach().requires_grad_(True)
        self.f = problem.f_torch(x_in).detach()
        self.b = boundary
        self.xb = boundary.x.detach().requires_grad_(True)
        self.dmask = boundary.dirichlet.to(x_in.dtype)
        self.nmask = 1.0 - self.dmask
        self.beta, self.gamma = float(beta), float(gamma)
        self.measure, self.bmeasure = float(problem.measure), float(problem.boundary_measure)
        self.pure_neumann = bool(problem.pure_neumann)
        self.has_dirichlet = bool(self.dmask.any())
        self.has_neumann = bool(self.nmask.any())
        if problem.has_exact:
            self.u_star = problem.u_torch(x_in).detach()
            self.grad_star = problem.grad_u_torch(x_in).detach()


def ritz_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """Deep Ritz energy terms (see the module docstring); the sum is the loss."""
    u = net(c.x)[:, 0]
    terms = {"energy": ritz_interior(u, gradient(u, c.x), c.f, c.measure)}
    ub = net(c.xb)[:, 0] if (c.has_dirichlet or c.has_neumann) else None
    if c.has_dirichlet:
        terms["dirichlet"] = c.beta * dirichlet_penalty(ub, c.b.g, c.dmask, c.bmeasure)
    if c.has_neumann:
        terms["neumann"] = neumann_work(ub, c.b.h, c.nmask, c.bmeasure)
    if c.pure_neumann:
        terms["mean"] = c.gamma * mean_penalty(u)
    return terms


def sobolev_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """``mean(|u - u*|^2)`` and ``mean(|grad u - grad u*|^2)`` at the interior points."""
    u = net(c.x)[:, 0]
    g = gradient(u, c.x)
    return {"value": ((u - c.u_star) ** 2).mean(), "gradient": ((g - c.grad_star) ** 2).sum(dim=1).mean()}


def pinn_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """Strong-form residual ``mean((-Laplace u - f)^2)`` plus weighted boundary residuals."""
    u = net(c.x)[:, 0]
    lap = laplacian(gradient(u, c.x), c.x)
    terms = {"residual": ((-lap - c.f) ** 2).mean()}
    if c.has_dirichlet or c.has_neumann:
        ub = net(c.xb)[:, 0]
        n_d = c.dmask.sum().clamp(min=1)
        if c.has_dirichlet:
            terms["dirichlet"] = c.beta * (c.dmask * (ub - c.b.g) ** 2).sum() / n_d
        if c.has_neumann:
            dudn = (gradient(ub, c.xb) * c.b.normal).sum(dim=1)
            terms["neumann"] = c.beta * (c.nmask * (dudn - c.b.h) ** 2).sum() / c.nmask.sum().clamp(min=1)
    if c.pure_neumann:
        terms["mean"] = c.gamma * mean_penalty(u)
    return terms


def l2_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """Plain supervised ``mean((u - u*)^2)`` at the interior points."""
    u = net(c.x)[:, 0]
    return {"value": ((u - c.u_star) ** 2).mean()}


# -- the function-space Hessian of each loss, as data (for the energy natural gradient) ------------
# Each list of terms gives the bilinear form whose pull-back is the Gram matrix of hrta_pde.engd:
# sum_k sum_i w_ki (L_k u)(x_i)^2 is the quadratic part of the loss written as (1/2) u^T H u, so
# the weights are twice the loss's factors (the Ritz energy already carries its 1/2).
def _mean_term(c: LossContext) -> list[GramTerm]:
    return [GramTerm("mean", c.x, 2.0 * c.gamma, kind="mean")] if c.pure_neumann else []


def _boundary_terms(c: LossContext, dirichlet_weight: torch.Tensor, neumann: bool) -> list[GramTerm]:
    terms = []
    if c.has_dirichlet:
        terms.append(GramTerm("dirichlet", c.xb, dirichlet_weight, value=torch.ones_like(c.dmask)))
    if neumann and c.has_neumann:
        terms.append(GramTerm("neumann", c.xb, 2.0 * c.beta * c.nmask / c.nmask.sum().clamp(min=1),
                              grad=c.b.normal))
    return terms


def ritz_gram(c: LossContext) -> list[GramTerm]:
    """``int |grad u|^2`` (weights ``|Omega| / n``), the penalty trace and the mean row."""
    n = c.x.shape[0]
    terms = [GramTerm("energy", c.x, torch.full((n,), c.measure / n, dtype=c.x.dtype), kind="gradient")]
    nb = c.xb.shape[0]
    terms += _boundary_terms(c, 2.0 * c.beta * c.bmeasure * c.dmask / nb, neumann=False)
    return terms + _mean_term(c)


def sobolev_gram(c: LossContext) -> list[GramTerm]:
    """Values and gradients at the interior points, weights ``2 / n``."""
    n = c.x.shape[0]
    w = torch.full((n,), 2.0 / n, dtype=c.x.dtype)
    return [GramTerm("value", c.x, w, value=torch.ones(n, dtype=c.x.dtype)),
            GramTerm("gradient", c.x, w, kind="gradient")]


def pinn_gram(c: LossContext) -> list[GramTerm]:
    """``-Laplace u`` at the interior points, the trace and the normal derivative at the boundary."""
    n = c.x.shape[0]
    terms = [GramTerm("residual", c.x, torch.full((n,), 2.0 / n, dtype=c.x.dtype),
                      lap=-torch.ones(n, dtype=c.x.dtype))]
    terms += _boundary_terms(c, 2.0 * c.beta * c.dmask / c.dmask.sum().clamp(min=1), neumann=True)
    return terms + _mean_term(c)


def l2_gram(c: LossContext) -> list[GramTerm]:
    """Values at the interior points, weights ``2 / n``."""
    n = c.x.shape[0]
    return [GramTerm("value", c.x, torch.full((n,), 2.0 / n, dtype=c.x.dtype), value=torch.ones(n, dtype=c.x.dtype))]


GRAM_FORMS = {"ritz": ritz_gram, "sobolev": sobolev_gram, "pinn": pinn_gram, "l2": l2_gram}

LOSS_FUNCTIONS = {"ritz": ritz_loss, "sobolev": sobolev_loss, "pinn": pinn_loss, "l2": l2_loss}


def check_loss(name: str, problem, phi: str) -> str:
    """Validate a loss choice against the problem and activation; return the canonical name."""
    key = str(name).strip().lower()
    if key not in LOSS_FUNCTIONS:
        raise ValueError(f"unknown loss {name!r}: use one of {', '.join(LOSSES)}")
    if key in ("sobolev", "l2") and not problem.has_exact:
        raise ValueError(f"the {key} loss needs an exact solution: add u = \"...\" under [solution] "
                         "in the problem file, or use --loss ritz or pinn")
    if key == "pinn" and str(phi).lower() in ("relu", "relu1"):
        raise ValueError("the pinn loss needs second derivatives, which phi = relu does not have: "
                         "use --phi relu2 or relu3 (or tanh), or --loss ritz")
    return key
