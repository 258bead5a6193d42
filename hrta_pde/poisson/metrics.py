"""Error metrics against an exact (or reference) solution on an independent test set.

With ``e = u - u*`` and test points ``x_j`` uniform in ``Omega`` (Monte Carlo: ``int_Omega v ~
|Omega| mean_j v(x_j)``)::

    relative L2          ||e||_{L2} / ||u*||_{L2}           = sqrt(sum e^2 / sum u*^2)
    relative H1 seminorm |e|_{H1} / |u*|_{H1}               = sqrt(sum |grad e|^2 / sum |grad u*|^2)
    L2 error             ||e||_{L2}                         = sqrt(|Omega| mean e^2)
    max error            max_j |e(x_j)|
    Ritz energy          E(u) = |Omega| mean(0.5 a |grad u|^2 + 0.5 c u^2 - f u)   and E(u*)
                         on the same points (interior part; a = 1, c = 0 for -Laplace u = f)

The ratios do not depend on the number of test points (up to Monte Carlo error), and the absolute
ones are scaled by the domain's measure. For a pure-Neumann problem ``u`` and ``u*`` are compared
after removing their means (``u`` is defined up to a constant).
"""
from __future__ import annotations

import math

import torch


def _ratio(num: torch.Tensor, den: torch.Tensor) -> float:
    num, den = float(num), float(den)
    return math.sqrt(num / den) if den > 0 else math.sqrt(num)


def error_metrics(u: torch.Tensor, grad_u: torch.Tensor, u_star: torch.Tensor,
                  grad_star: torch.Tensor, *, measure: float, f: torch.Tensor | None = None,
                  remove_mean: bool = False, a: torch.Tensor | None = None,
                  creact: torch.Tensor | None = None) -> dict[str, float]:
    """The metrics of the module docstring from values at the test points.

    ``u, u_star``: (n,); ``grad_u, grad_star``: (n, d); ``f``: (n,) to add the Ritz energies;
    ``a``, ``creact`` (n,): the coefficients of ``-div(a grad u) + c u = f``, whose interior energy
    ``0.5 a |grad u|^2 + 0.5 c u^2 - f u`` is then used (None: a = 1, c = 0).
    """
    u, u_star = u.detach().reshape(-1), u_star.detach().reshape(-1)
    if remove_mean:
        u, u_star = u - u.mean(), u_star - u_star.mean()
    e, ge = u - u_star, grad_u.detach() - grad_star.detach()
    out = {
        "rel_l2": _ratio((e**2).sum(), (u_star**2).sum()),
        "rel_h1_semi": _ratio((ge**2).sum(), (grad_star**2).sum()),
        "l2": math.sqrt(float(measure * (e**2).mean())),
        "h1_semi": math.sqrt(float(measure * (ge**2).sum(dim=1).mean())),
        "max_error": float(e.abs().max()),
    }
    if f is not None:
        f = f.detach().reshape(-1)
        if a is None and creact is None:
            out["ritz_energy"] = float(measure * (0.5 * (grad_u.detach() ** 2).sum(dim=1) - f * u).mean())
            out["ritz_energy_exact"] = float(measure * (0.5 * (grad_star.detach() ** 2).sum(dim=1)
                                                        - f * u_star).mean())
        else:
            a = torch.ones_like(f) if a is None else a.detach().reshape(-1)
            creact = torch.zeros_like(f) if creact is None else creact.detach().reshape(-1)

            def energy(v, gv):
                return float(measure * (0.5 * a * (gv.detach() ** 2).sum(dim=1)
                                        + 0.5 * creact * v**2 - f * v).mean())

            out["ritz_energy"] = energy(u, grad_u)
            out["ritz_energy_exact"] = energy(u_star, grad_star)
    return out


def net_values(net, x: torch.Tensor, *, gradient: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The prediction ``u = net(x)[:, 0]`` (n,) and its gradient ``grad u`` (n, d) at the points ``x``.

    Evaluated in eval mode (the mode is restored after), by autograd even where the caller runs
    under ``torch.no_grad``; both results are detached. With ``gradient=False`` no graph is built
    and the gradient is None (for plots of the values alone).
    Example: for a network of ``x -> x1^2``, ``net_values(net, torch.tensor([[3.0]]))`` is
    ``(tensor([9.]), tensor([[6.]]))``.
    """
    was_training = net.training
    net.eval()
    try:
        if not gradient:
            with torch.no_grad():
                return net(x)[:, 0].detach(), None
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            u = net(xr)[:, 0]
            (g,) = torch.autograd.grad(u.sum(), xr)
    finally:
        net.train(was_training)
    return u.detach(), g.detach()


def evaluate(net, x: torch.Tensor, problem, *, reference=None) -> dict[str, float]:
    """Metrics of ``net`` at the test points ``x`` against the problem's exact solution.

    ``reference`` (optional) is an object with ``u(x)`` and ``grad(x)`` (torch, (n,) and (n, d))
    used instead of the exact solution, e.g. a finite element solution.
    """
    u, g = net_values(net, x)
    if reference is not None:
        u_star, g_star = reference.u(x), reference.grad(x)
    elif problem.has_exact:
        u_star, g_star = problem.u_torch(x), problem.grad_u_torch(x)
    else:
        raise ValueError(f"problem {problem.name!r} has no exact solution: add u under [solution] "
                         "to measure errors (or use a reference solution)")
    coef = {}
    if getattr(problem, "has_coefficient", False):
        coef["a"] = problem.a_torch(x)
    if getattr(problem, "has_reaction", False):
        coef["creact"] = problem.c_torch(x)
    return error_metrics(u, g, u_star, g_star, measure=problem.measure, f=problem.f_torch(x),
                         remove_mean=problem.pure_neumann, **coef)
