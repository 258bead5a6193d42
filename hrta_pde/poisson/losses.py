"""Loss functions for ``-div(a grad u) + c u = f``: one small function per mathematical object.

Each loss takes the network and the sampled points and returns named terms (a dict of scalar
tensors) whose sum is minimised. Integrals are Monte Carlo means times the measure, so
``|Omega| * mean(...)`` approximates ``int_Omega ...`` independently of the number of points.

* Deep Ritz energy (METHOD.md section 7), *not* squared::

      E(u) = |Omega| mean(0.5 a |grad u|^2 + 0.5 c u^2 - f u)      (interior)
           + beta |dOmega| mean_{boundary}( 1_D (u - g)^2 )          (Dirichlet penalty)
           - |dOmega| mean_{boundary}( (1_N + 1_R) h u )             (flux data)
           + |dOmega| mean_{boundary}( 0.5 1_R alpha u^2 )           (Robin term)

* Sobolev (H1 supervised): ``mean(|u - u*|^2) + mean(|grad u - grad u*|^2)``.
* Strong-form PINN: ``mean((-a Laplace u - grad a . grad u + c u - f)^2) + beta (mean_D (u - g)^2
  + mean_N (a du/dn - h)^2 + mean_R (a du/dn + alpha u - h)^2)``; where ``a`` jumps across
  interfaces, ``+ beta mean_I (a+ du+/dn - a- du-/dn)^2`` at points of the interfaces (the flux
  condition, which the pointwise residual does not see; :mod:`hrta_pde.poisson.interfaces`).
* Plain L2 supervised: ``mean((u - u*)^2)``.

With ``a = 1``, ``c = 0`` and no Robin parts every loss computes exactly the numbers of the
plain Poisson formulas (the coefficient terms are skipped, not multiplied by 1 or 0).

The per-point data sit on :class:`LossContext` as plain tensors: ``x`` (n, d), ``f``, ``a``,
``creact`` (n,), ``grad_a`` (n, d) at the interior points; the boundary sample ``b`` carries
``x``, ``normal``, ``g``, ``h``, ``a``, ``alpha`` (nb,) and the bool masks ``dirichlet``,
``neumann``, ``robin`` (exactly one true per point).

For a pure-Neumann problem (``u`` determined up to a constant) the Ritz and PINN losses add
``gamma * mean(u)^2``: the solution with zero mean is selected.

With quadrature weights (the sampler ``gauss``: ``LossContext(weights=...)`` and
``boundary.weight``) every ``|Omega| mean(q)`` above is ``sum_i w_i q_i`` and every mean is the
weighted mean ``sum_i w_i q_i / sum_i w_i`` (on boundary parts: over the part's points); without
weights the formulas are the Monte Carlo means, computed as before.
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


def integral(q: torch.Tensor, w: torch.Tensor | None, measure: float) -> torch.Tensor:
    """``int q``: ``sum(w q)`` with quadrature weights ``w``, else ``measure * mean(q)``."""
    return measure * q.mean() if w is None else (w * q).sum()


def average(q: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """The mean of ``q`` over the points, weighted by ``w`` when given."""
    return q.mean() if w is None else (w * q).sum() / w.sum()


def part_sum(q: torch.Tensor, mask: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """``sum(mask q)``, or ``sum(w mask q)`` with weights: the numerator of a mean over one kind of
    boundary point (divide by :func:`part_size`)."""
    return (mask * q).sum() if w is None else (w * mask * q).sum()


def part_size(mask: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """How many points ``mask`` selects (at least 1), or their total weight (at least ``tiny``)."""
    if w is None:
        return mask.sum().clamp(min=1)
    return (w * mask).sum().clamp(min=torch.finfo(w.dtype).tiny)


def ritz_interior(u, grad_u, f, measure: float, a=None, creact=None, w=None) -> torch.Tensor:
    """``|Omega| mean(0.5 a |grad u|^2 + 0.5 c u^2 - f u)``: the energy density integrated over
    the domain (``a = None``: 1, ``creact = None``: 0, the terms are then left out; ``w``:
    quadrature weights, see :func:`integral`)."""
    dens = (grad_u**2).sum(dim=1)
    if a is not None:
        dens = a * dens
    dens = 0.5 * dens
    if creact is not None:
        dens = dens + 0.5 * creact * u**2
    return integral(dens - f * u, w, measure)


def robin_energy(u_b, alpha, robin_mask, boundary_measure: float, w=None) -> torch.Tensor:
    """``|dOmega| mean(0.5 1_R alpha u^2)`` ~ ``1/2 int_{Gamma_R} alpha u^2``."""
    return integral(0.5 * robin_mask * alpha * u_b**2, w, boundary_measure)


def operator_residual(u, grad_u, lap_u, f, a=None, grad_a=None, creact=None) -> torch.Tensor:
    """``-a Laplace u - grad a . grad u + c u - f`` (``-Laplace u - f`` when a = 1, c = 0)."""
    if a is None:
        r = -lap_u
    else:
        r = -a * lap_u - (grad_a * grad_u).sum(dim=1)
    if creact is not None:
        r = r + creact * u
    return r - f


def dirichlet_penalty(u_b, g, dirichlet_mask, boundary_measure: float, w=None) -> torch.Tensor:
    """``|dOmega| mean(1_D (u - g)^2)`` ~ ``int_{Gamma_D} (u - g)^2``."""
    return integral(dirichlet_mask * (u_b - g) ** 2, w, boundary_measure)


def neumann_work(u_b, h, neumann_mask, boundary_measure: float, w=None) -> torch.Tensor:
    """``-|dOmega| mean(1_N h u)`` ~ ``-int_{Gamma_N} h u`` (the Neumann term of the energy)."""
    return -integral(neumann_mask * h * u_b, w, boundary_measure)


def mean_penalty(u, w=None) -> torch.Tensor:
    """``mean(u)^2``: fixes the free constant of a pure-Neumann problem (zero mean)."""
    return average(u, w) ** 2


class LossContext:
    """The fixed inputs of a loss: points, data at the points, measures and weights.

    Built once by the solver (data are evaluated once, not per iteration).
    """

    def __init__(self, problem, x_in: torch.Tensor, boundary, *, beta: float, gamma: float = 1.0,
                 weights: torch.Tensor | None = None, interfaces=()):
        self.problem = problem
        # points on the interfaces where a jumps (poisson.interfaces.InterfaceBatch): the PINN's
        # flux condition
        self.interfaces = list(interfaces)
        self.interface_count = sum(len(b.x) for b in self.interfaces)
        # quadrature weights of the interior and boundary points (None: Monte Carlo means)
        self.w = None if weights is None else weights.detach()
        self.wb = getattr(boundary, "weight", None)
        if (self.w is None) != (self.wb is None):
            raise ValueError("quadrature weights are needed for both the interior points (weights=) "
                             "and the boundary points (boundary.weight), or for neither")
        self.x = x_in.detach().requires_grad_(True)
        self.f = problem.f_torch(x_in).detach()
        self.b = boundary
        self.xb = boundary.x.detach().requires_grad_(True)
        dt, n, nb = x_in.dtype, x_in.shape[0], boundary.x.shape[0]
        dirichlet = boundary.dirichlet
        robin = getattr(boundary, "robin", None)
        robin = torch.zeros_like(dirichlet) if robin is None else robin
        neumann = getattr(boundary, "neumann", None)
        neumann = (~dirichlet & ~robin) if neumann is None else neumann
        # the boundary sample carries every field (a duck-typed batch gets the defaults)
        for name, value in (("robin", robin), ("neumann", neumann)):
            if getattr(boundary, name, None) is None:
                setattr(boundary, name, value)
        if getattr(boundary, "alpha", None) is None:
            boundary.alpha = torch.zeros(nb, dtype=dt, device=x_in.device)
        if getattr(boundary, "a", None) is None:
            boundary.a = torch.ones(nb, dtype=dt, device=x_in.device)
        self.dmask = dirichlet.to(dt)
        self.nmask = neumann.to(dt)
        self.rmask = robin.to(dt)
        self.beta, self.gamma = float(beta), float(gamma)
        self.measure, self.bmeasure = float(problem.measure), float(problem.boundary_measure)
        self.pure_neumann = bool(problem.pure_neumann)
        self.has_dirichlet = bool(self.dmask.any())
        self.has_neumann = bool(self.nmask.any())
        self.has_robin = bool(self.rmask.any())
        # coefficients of -div(a grad u) + c u = f at the interior points (plain tensors)
        self.has_coefficient = bool(getattr(problem, "has_coefficient", False))
        self.has_reaction = bool(getattr(problem, "has_reaction", False))
        if self.has_coefficient:
            self.a = problem.a_torch(x_in).detach()
            self.grad_a = problem.grad_a_torch(x_in).detach()
        else:
            self.a = torch.ones(n, dtype=dt, device=x_in.device)
            self.grad_a = torch.zeros_like(x_in).detach()
        if self.has_reaction:
            self.creact = problem.c_torch(x_in).detach()
        else:
            self.creact = torch.zeros(n, dtype=dt, device=x_in.device)
        if problem.has_exact:
            self.u_star = problem.u_torch(x_in).detach()
            self.grad_star = problem.grad_u_torch(x_in).detach()


def ritz_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """Deep Ritz energy terms (see the module docstring); the sum is the loss."""
    u = net(c.x)[:, 0]
    terms = {"energy": ritz_interior(u, gradient(u, c.x), c.f, c.measure,
                                     c.a if c.has_coefficient else None,
                                     c.creact if c.has_reaction else None, c.w)}
    ub = net(c.xb)[:, 0] if (c.has_dirichlet or c.has_neumann or c.has_robin) else None
    if c.has_dirichlet:
        terms["dirichlet"] = c.beta * dirichlet_penalty(ub, c.b.g, c.dmask, c.bmeasure, c.wb)
    if c.has_neumann or c.has_robin:
        flux = c.nmask + c.rmask if c.has_robin else c.nmask
        terms["neumann"] = neumann_work(ub, c.b.h, flux, c.bmeasure, c.wb)
    if c.has_robin:
        terms["robin"] = robin_energy(ub, c.b.alpha, c.rmask, c.bmeasure, c.wb)
    if c.pure_neumann:
        terms["mean"] = c.gamma * mean_penalty(u, c.w)
    return terms


def sobolev_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """``mean(|u - u*|^2)`` and ``mean(|grad u - grad u*|^2)`` at the interior points."""
    u = net(c.x)[:, 0]
    g = gradient(u, c.x)
    return {"value": average((u - c.u_star) ** 2, c.w),
            "gradient": average(((g - c.grad_star) ** 2).sum(dim=1), c.w)}


def pinn_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """Strong-form residual ``mean((-a Laplace u - grad a . grad u + c u - f)^2)`` plus weighted
    boundary residuals (Dirichlet ``u - g``, Neumann ``a du/dn - h``, Robin
    ``a du/dn + alpha u - h``)."""
    u = net(c.x)[:, 0]
    grad_u = gradient(u, c.x)
    lap = laplacian(grad_u, c.x)
    if c.has_coefficient or c.has_reaction:
        res = operator_residual(u, grad_u, lap, c.f, c.a if c.has_coefficient else None,
                                c.grad_a if c.has_coefficient else None,
                                c.creact if c.has_reaction else None)
        terms = {"residual": average(res**2, c.w)}
    else:
        terms = {"residual": average((-lap - c.f) ** 2, c.w)}
    if c.has_dirichlet or c.has_neumann or c.has_robin:
        ub = net(c.xb)[:, 0]
        if c.has_dirichlet:
            terms["dirichlet"] = c.beta * part_sum((ub - c.b.g) ** 2, c.dmask, c.wb) / part_size(c.dmask, c.wb)
        if c.has_neumann or c.has_robin:
            dudn = (gradient(ub, c.xb) * c.b.normal).sum(dim=1)
            if c.has_coefficient:
                dudn = c.b.a * dudn
        if c.has_neumann:
            terms["neumann"] = c.beta * part_sum((dudn - c.b.h) ** 2, c.nmask, c.wb) / part_size(c.nmask, c.wb)
        if c.has_robin:
            r = dudn + c.b.alpha * ub - c.b.h
            terms["robin"] = c.beta * part_sum(r**2, c.rmask, c.wb) / part_size(c.rmask, c.wb)
    if c.interfaces:
        from hrta_pde.poisson.interfaces import flux_jump

        jumps = torch.cat([flux_jump(net, b) for b in c.interfaces])
        terms["interface"] = c.beta * (jumps**2).mean()
    if c.pure_neumann:
        terms["mean"] = c.gamma * mean_penalty(u, c.w)
    return terms


def l2_loss(net: Callable, c: LossContext) -> dict[str, torch.Tensor]:
    """Plain supervised ``mean((u - u*)^2)`` at the interior points."""
    u = net(c.x)[:, 0]
    return {"value": average((u - c.u_star) ** 2, c.w)}


# -- the function-space Hessian of each loss, as data (for the energy natural gradient) ------------
# Each list of terms gives the bilinear form whose pull-back is the Gram matrix of hrta_pde.engd:
# sum_k sum_i w_ki (L_k u)(x_i)^2 is the quadratic part of the loss written as (1/2) u^T H u, so
# the weights are twice the loss's factors (the Ritz energy already carries its 1/2).
def _mean_term(c: LossContext) -> list[GramTerm]:
    if not c.pure_neumann:
        return []
    value = None if c.w is None else c.w / c.w.sum()  # the weighted mean's row
    return [GramTerm("mean", c.x, 2.0 * c.gamma, kind="mean", value=value)]


def _averaging(c: LossContext, factor: float) -> torch.Tensor:
    """``factor`` times the interior weights of a mean: ``factor / n``, or ``factor w / sum(w)``."""
    n = c.x.shape[0]
    if c.w is None:
        return torch.full((n,), factor / n, dtype=c.x.dtype, device=c.x.device)
    return factor * c.w / c.w.sum()


def _part_averaging(c: LossContext, factor: float, mask: torch.Tensor) -> torch.Tensor:
    """``factor`` times the weights of a mean over one kind of boundary point (``mask``)."""
    return factor * (mask if c.wb is None else c.wb * mask) / part_size(mask, c.wb)


def _boundary_terms(c: LossContext, dirichlet_weight: torch.Tensor, fluxes: bool) -> list[GramTerm]:
    """The Dirichlet trace rows, and with ``fluxes`` the PINN's Neumann ``a du/dn`` and Robin
    ``a du/dn + alpha u`` rows."""
    terms = []
    if c.has_dirichlet:
        terms.append(GramTerm("dirichlet", c.xb, dirichlet_weight, value=torch.ones_like(c.dmask)))
    flux = c.b.a[:, None] * c.b.normal if c.has_coefficient else c.b.normal
    if fluxes and c.has_neumann:
        terms.append(GramTerm("neumann", c.xb, _part_averaging(c, 2.0 * c.beta, c.nmask), grad=flux))
    if fluxes and c.has_robin:
        terms.append(GramTerm("robin", c.xb, _part_averaging(c, 2.0 * c.beta, c.rmask), grad=flux,
                              value=c.b.alpha))
    return terms


def ritz_gram(c: LossContext) -> list[GramTerm]:
    """``int a |grad u|^2 + int c u^2 + int_R alpha u^2`` (weights ``|Omega| / n``, ``|dOmega| / nb``,
    or the quadrature weights), the penalty trace and the mean row."""
    n, nb = c.x.shape[0], c.xb.shape[0]
    w = torch.full((n,), c.measure / n, dtype=c.x.dtype, device=c.x.device) if c.w is None else c.w
    wb = c.bmeasure / nb if c.wb is None else c.wb
    terms = [GramTerm("energy", c.x, w * c.a if c.has_coefficient else w, kind="gradient")]
    if c.has_reaction:
        terms.append(GramTerm("reaction", c.x, w * c.creact, value=torch.ones(n, dtype=c.x.dtype, device=c.x.device)))
    if c.has_robin:
        terms.append(GramTerm("robin", c.xb, wb * c.rmask * c.b.alpha,
                              value=torch.ones(nb, dtype=c.x.dtype, device=c.x.device)))
    dirichlet = (2.0 * c.beta * c.bmeasure * c.dmask / nb if c.wb is None
                 else 2.0 * c.beta * c.wb * c.dmask)
    terms += _boundary_terms(c, dirichlet, fluxes=False)
    return terms + _mean_term(c)


def sobolev_gram(c: LossContext) -> list[GramTerm]:
    """Values and gradients at the interior points, weights ``2 / n`` (or ``2 w / sum(w)``)."""
    n = c.x.shape[0]
    w = _averaging(c, 2.0)
    return [GramTerm("value", c.x, w, value=torch.ones(n, dtype=c.x.dtype, device=c.x.device)),
            GramTerm("gradient", c.x, w, kind="gradient")]


def pinn_gram(c: LossContext) -> list[GramTerm]:
    """``-a Laplace u - grad a . grad u + c u`` at the interior points, the trace, and the Neumann
    and Robin boundary operators."""
    n = c.x.shape[0]
    if c.has_coefficient or c.has_reaction:
        residual = GramTerm("residual", c.x, _averaging(c, 2.0), lap=-c.a, grad=-c.grad_a, value=c.creact)
    else:
        residual = GramTerm("residual", c.x, _averaging(c, 2.0), lap=-torch.ones(n, dtype=c.x.dtype, device=c.x.device))
    terms = [residual]
    terms += _boundary_terms(c, _part_averaging(c, 2.0 * c.beta, c.dmask), fluxes=True)
    for b in c.interfaces:  # a+ du+/dn - a- du-/dn, the two sides of interface b.j
        weight = torch.full((len(b.x),), 2.0 * c.beta / c.interface_count, dtype=b.x.dtype, device=b.x.device)
        terms.append(GramTerm(f"interface{b.j}", b.x, weight, kind="jump", side=b.j,
                              grad=b.a_plus[:, None] * b.normal, other=-b.a_minus[:, None] * b.normal))
    return terms + _mean_term(c)


def l2_gram(c: LossContext) -> list[GramTerm]:
    """Values at the interior points, weights ``2 / n`` (or ``2 w / sum(w)``)."""
    n = c.x.shape[0]
    return [GramTerm("value", c.x, _averaging(c, 2.0), value=torch.ones(n, dtype=c.x.dtype, device=c.x.device))]


GRAM_FORMS = {"ritz": ritz_gram, "sobolev": sobolev_gram, "pinn": pinn_gram, "l2": l2_gram}

LOSS_FUNCTIONS = {"ritz": ritz_loss, "sobolev": sobolev_loss, "pinn": pinn_loss, "l2": l2_loss}


def loss_name(name: str) -> str:
    """The canonical name of a loss (``" Ritz"`` is ``"ritz"``), or a ``ValueError`` listing them."""
    key = str(name).strip().lower()
    if key not in LOSS_FUNCTIONS:
        raise ValueError(f"unknown loss {name!r}: use one of {', '.join(LOSSES)}")
    return key


def check_loss(name: str, problem, phi: str) -> str:
    """Validate a loss choice against the problem and activation; return the canonical name."""
    from hrta_pde.errors import SettingError

    key = loss_name(name)
    if key in ("sobolev", "l2") and not problem.has_exact:
        raise SettingError(f"the {key} loss needs an exact solution: add u = \"...\" under [solution] "
                           "in the problem file, or use {loss:=}ritz or pinn")
    if key == "pinn" and str(phi).lower() in ("relu", "relu1"):
        raise SettingError("the pinn loss needs second derivatives, which phi = relu does not have: "
                           "use {phi:=}relu2 or relu3 (or tanh), or {loss:=}ritz")
    return key
