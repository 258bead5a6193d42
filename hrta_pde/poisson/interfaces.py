"""Interfaces where the diffusion coefficient jumps, and network inputs that let ``u`` kink there.

Where ``a`` jumps across a surface ``Gamma = {psi = 0}``, the solution of ``-div(a grad u) + c u = f``
is continuous but its normal derivative jumps (``a+ du+/dn = a- du-/dn``): a kink, which a network
of smooth units can only round off. With ``|psi(x)|`` as extra inputs,

    u(x) = N(x, |psi_1(x)|, ..., |psi_m(x)|),

``u`` is still continuous, and ``N`` can put a kink on each interface exactly (the cusp-capturing
network of Tseng, Lin, Hu and Lai, J. Comput. Phys. 2023). The energy (Ritz) loss needs nothing
else: its minimiser satisfies the flux condition weakly. The strong form (PINN) gets the flux
condition as a residual on points of the interfaces (:func:`interface_points`,
:func:`flux_jump`).

:func:`interface_levels` reads the interfaces off ``a`` as written: each comparison in a
``where(...)`` condition (``psi = lhs - rhs``) and each ``sign(...)`` argument, once (``psi`` and a
constant multiple of it are one interface), kept where ``psi`` changes sign at fixed sample points
of the domain. ``|psi|`` must kink on the interface only: ``sqrt(E) - c`` is rewritten ``E - c^2``,
a polynomial loses its repeated factors (``(x - 1/2)^3`` has no gradient on its zero set), and a
level in ``abs``, ``min`` or ``max`` is refused (:class:`InterfaceError`).
"""
from __future__ import annotations

import numpy as np
import sympy
import torch

from hrta_pde.poisson.expressions import to_numpy, to_torch

#: At most this many interfaces become inputs (a coefficient on a grid of blocks has one per line).
MAX_INTERFACES = 32
#: Points (Sobol, a fixed seed) on which a level must change sign to be an interface of the domain.
LEVEL_SAMPLES = 4096
_LEVEL_SEED = 20261202


class InterfaceError(ValueError):
    """An interface of ``a`` that the interface inputs cannot take; the message names the fix."""


def shown(level: sympy.Expr, dim: int) -> str:
    """A level function as the user writes expressions (``x, y, z`` up to 3-D, ``^`` for powers)."""
    text = str(level).replace("**", "^")
    for name in ("Abs", "Min", "Max"):
        text = text.replace(f"{name}(", f"{name.lower()}(")
    if dim <= 3:
        for k in range(dim, 0, -1):
            text = text.replace(f"x{k}", "xyz"[k - 1])
    return text


def _smooth_form(p: sympy.Expr, symbols) -> sympy.Expr:
    """``p`` with the same zero set in a form without a critical point on it, where one is known:
    ``sqrt(E) - c`` (c > 0) becomes ``E - c^2``; a polynomial loses repeated factors
    (``(x - 1/2)^3`` becomes ``x - 1/2``)."""
    terms = sympy.Add.make_args(p)
    roots = [t for t in terms if isinstance(t, sympy.Pow) and t.exp == sympy.Rational(1, 2)]
    if len(roots) == 1:
        rest = sympy.Add(*[t for t in terms if t is not roots[0]])
        if rest.is_number and rest < 0:
            p = roots[0].base - rest**2
    try:
        rational = sympy.nsimplify(p, rational=True)
        if rational.is_polynomial(*symbols):
            reduced = sympy.sqf_part(rational, *symbols)
            if sympy.Poly(reduced, *symbols).total_degree() < sympy.Poly(rational, *symbols).total_degree():
                p = reduced
    except (sympy.PolynomialError, TypeError, ValueError):
        pass
    return sympy.expand(p)


_KINKED = (sympy.Abs, sympy.Min, sympy.Max, sympy.sign, sympy.Piecewise, sympy.floor, sympy.ceiling)


def interface_levels(problem) -> tuple:
    """The level functions ``psi`` (sympy) of the interfaces where ``problem.a`` may jump, each
    changing sign somewhere among :data:`LEVEL_SAMPLES` fixed Sobol points of the domain; ``()``
    for a smooth ``a``. The same problem always gives the same levels, in the same order.

    Raises :class:`InterfaceError` for a level that is not smooth (``abs``, ``min``, ``max`` in a
    condition: ``|psi|`` would kink where ``a`` does not) and for more than :data:`MAX_INTERFACES`.
    """
    cached = getattr(problem, "_interface_levels", None)
    if cached is not None:
        return cached
    a, dim = problem.a, problem.dim
    levels: tuple = ()
    if isinstance(a, sympy.Expr) and not a.is_number:
        levels = _levels(problem, a, dim)
    try:
        object.__setattr__(problem, "_interface_levels", levels)
    except (AttributeError, TypeError):  # pragma: no cover - a problem that takes no attributes
        pass
    return levels


def _levels(problem, a, dim) -> tuple:
    from hrta_pde.poisson.expressions import coordinate_symbols

    symbols = coordinate_symbols(dim)
    candidates = []
    for pw in a.atoms(sympy.Piecewise):
        for _, cond in pw.args:
            if isinstance(cond, sympy.logic.boolalg.BooleanAtom):
                continue
            candidates += [r.lhs - r.rhs for r in cond.atoms(sympy.core.relational.Relational)]
    candidates += [s.args[0] for s in a.atoms(sympy.sign)]
    x = problem.sample_interior(LEVEL_SAMPLES, generator=torch.Generator().manual_seed(_LEVEL_SEED),
                                sampler="sobol", dtype=torch.float64).numpy()
    levels, values = [], []
    for p in sorted({sympy.expand(c) for c in candidates}, key=sympy.default_sort_key):
        if p.is_number:
            continue
        if p.has(*_KINKED):
            raise InterfaceError(f"the coefficient a jumps across {shown(p, dim)} = 0, which is not smooth "
                                 "(abs, min, max or where inside a condition): write the condition with "
                                 "plain comparisons, e.g. 0.25 < x < 0.75 for abs(x - 0.5) < 0.25,")
        p = _smooth_form(p, symbols)
        v = to_numpy(p, dim)(x)
        v = np.broadcast_to(np.asarray(v, dtype=np.float64), (len(x),))
        if not ((v > 0).any() and (v < 0).any()):
            continue
        if any(_proportional(v, w) for w in values):
            continue
        levels.append(p)
        values.append(v)
    if len(levels) > MAX_INTERFACES:
        raise InterfaceError(f"the coefficient a has {len(levels)} interfaces in the domain, more than the "
                             f"{MAX_INTERFACES} the interface inputs take: use fewer pieces,")
    return tuple(levels)


def _proportional(v: np.ndarray, w: np.ndarray) -> bool:
    """Whether ``v = k w`` at every sample point for one constant ``k`` (the same surface)."""
    scale = max(float(np.abs(v).max()), float(np.abs(w).max()), 1e-300)
    ok = np.abs(w) > 1e-6 * scale
    if not ok.any():
        return False
    k = v[ok] / w[ok]
    return bool(np.allclose(k, k[0], rtol=1e-9, atol=0)) and np.allclose(v, k[0] * w, rtol=0, atol=1e-9 * scale)


class InterfaceInputs:
    """The input transform ``x -> [x, |psi_1(x)|, ..., |psi_m(x)|, c_1(x), ..., c_k(x)]`` of a network
    (set with ``dde.nn.FNN.apply_feature_transform``); the network's first layer takes
    ``dim + m + k`` inputs. ``corners``: parameter-free features ``c_j: (n, d) -> (n,)`` appended
    after the levels, such as the corner singularities of :mod:`hrta_pde.poisson.singular`.

    :meth:`point_features` gives the transform's value, Jacobian and Laplacian at one point, for
    the forward Laplacian of :mod:`hrta_pde.engd` (``Laplace |psi| = sign(psi) Laplace psi`` off the
    interface). ``side = (j, s)`` (see :meth:`one_sided`) replaces ``|psi_j|`` by ``s psi_j``: the
    network's values on the side ``s psi_j > 0`` continued up to the interface.
    """

    def __init__(self, levels, dim: int, corners=()):
        self.levels, self.dim, self.corners = tuple(levels), int(dim), tuple(corners)
        self._fns = [to_torch(p, self.dim) for p in self.levels]
        self.side = None

    @property
    def extra(self) -> int:
        """How many inputs the transform adds."""
        return len(self.levels) + len(self.corners)

    def __repr__(self):
        return f"InterfaceInputs({', '.join([str(p) for p in self.levels] + [repr(c) for c in self.corners])})"

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """``psi_j(x)`` at ``x`` (n, d) -> (n, m)."""
        cols = []
        for f in self._fns:
            v = f(x)
            cols.append(v.expand(x.shape[0]) if v.dim() == 0 else v)
        return torch.stack(cols, dim=1)

    def _signs(self, p: torch.Tensor) -> torch.Tensor:
        s = torch.where(p >= 0, torch.ones_like(p), -torch.ones_like(p))
        if self.side is not None:
            j, side = self.side
            s = s.clone()
            s[..., j] = float(side)
        return s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cols = [x]
        if self.levels:
            p = self.psi(x)
            cols.append(self._signs(p).detach() * p)
        if self.corners:
            cols.append(torch.stack([self._corner(c)(x) for c in self.corners], dim=1))
        return torch.cat(cols, dim=1)

    def _corner(self, c):
        """Feature ``c`` as a function of ``x``, from the side set by :meth:`one_sided` where it
        takes one (:class:`hrta_pde.poisson.singular.SectorFeature`)."""
        if getattr(c, "one_sided", False) and self.side is not None:
            side = self.side
            return lambda x: c(x, side)
        return c

    def point_features(self, x: torch.Tensor) -> tuple:
        """``(h, dh/dx, Laplace h)`` of ``h = [x, |psi(x)|, c(x)]`` at one point ``x`` (d,):
        shapes (d + m + k,), (d + m + k, d), (d + m + k,)."""
        from hrta_pde.engd import _scalar_features

        d = x.shape[0]
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        hs, gs, ls = [x], [eye], [torch.zeros(d, dtype=x.dtype, device=x.device)]
        if self.levels:
            values, grads, laps = zip(*(_scalar_features(f)(x) for f in self._fns))
            p = torch.stack(values)
            s = self._signs(p).detach()
            hs.append(s * p)
            gs.append(s[:, None] * torch.stack(grads))
            ls.append(s * torch.stack(laps))
        if self.corners:
            values, grads, laps = zip(*(_scalar_features(self._corner(c))(x) for c in self.corners))
            hs.append(torch.stack(values))
            gs.append(torch.stack(grads))
            ls.append(torch.stack(laps))
        return torch.cat(hs), torch.cat(gs), torch.cat(ls)

    class _Side:
        def __init__(self, owner, side):
            self.owner, self.side, self.before = owner, side, None

        def __enter__(self):
            self.before, self.owner.side = self.owner.side, self.side
            return self.owner

        def __exit__(self, *exc):
            self.owner.side = self.before

    def one_sided(self, j: int, side: int):
        """A context in which the transform takes interface ``j`` from the side ``side`` (+1: where
        ``psi_j > 0``, -1: where ``psi_j < 0``): ``with inputs.one_sided(0, +1): u = net(x)``."""
        if not 0 <= j < len(self.levels) or side not in (1, -1):
            raise ValueError(f"one_sided({j}, {side}): j in 0..{len(self.levels) - 1}, side +1 or -1")
        return self._Side(self, (j, side))


class InterfaceBatch:
    """Points on interface ``j``: ``x`` (n, d), the unit normal ``normal`` (n, d)
    pointing to ``psi_j > 0``, and the coefficient on either side, ``a_plus`` and ``a_minus`` (n,);
    ``inputs``: the :class:`InterfaceInputs` they were made for (used by :func:`flux_jump` when the
    network given is a plain function)."""

    def __init__(self, j: int, x, normal, a_plus, a_minus, inputs=None):
        self.j, self.x, self.normal, self.a_plus, self.a_minus = j, x, normal, a_plus, a_minus
        self.inputs = inputs

    def to(self, device=None, dtype=None):
        return InterfaceBatch(self.j, *(t.to(device=device, dtype=dtype)
                                        for t in (self.x, self.normal, self.a_plus, self.a_minus)), self.inputs)


def interface_points(problem, inputs: InterfaceInputs, n: int, *, generator=None, dtype=torch.float64,
                     device=None, newton_steps: int = 30) -> list:
    """About ``n`` points on each interface of ``inputs``, as :class:`InterfaceBatch` es: Sobol
    points of the domain moved onto ``psi_j = 0`` by Newton steps along ``grad psi_j``, kept where
    they converged (``|psi_j| <= 1e-10 |grad psi_j|`` times the domain's size) and lie strictly inside
    the domain. They cover the whole level set, also where ``a`` does not jump (a grid of blocks has
    interfaces that stop): the flux is continuous there too, and the input ``|psi_j|`` would let
    ``u`` kink there without the condition. An interface that no point reaches is left out."""
    scale = float(np.linalg.norm(problem.shape.hi - problem.shape.lo))
    out = []
    for j, f in enumerate(inputs._fns):
        x = problem.sample_interior(4 * n, generator=generator, sampler="sobol", dtype=torch.float64)
        for _ in range(newton_steps):
            xr = x.clone().requires_grad_(True)
            v = f(xr)
            (g,) = torch.autograd.grad(v.sum(), xr)
            norm2 = (g * g).sum(dim=1).clamp(min=1e-300)
            x = (x - (v.detach() / norm2)[:, None] * g).detach()
            x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        xr = x.clone().requires_grad_(True)
        v = f(xr)
        (g,) = torch.autograd.grad(v.sum(), xr)
        gn = g.norm(dim=1)
        ok = torch.isfinite(v) & (gn > 0) & (v.detach().abs() <= 1e-10 * gn * scale)
        x, g, gn = x[ok], g[ok], gn[ok]
        if len(x):
            inside = problem.shape.classify(x.numpy()) == -1
            keep = torch.as_tensor(inside, dtype=torch.bool)
            x, g, gn = x[keep], g[keep], gn[keep]
        if not len(x):
            continue
        normal = g / gn[:, None]
        eps = 1e-7 * scale
        a_plus = problem.a_torch(x + eps * normal)
        a_minus = problem.a_torch(x - eps * normal)
        if problem.dim == 1:  # the interface is a point: one row, not n copies of it
            x, normal, a_plus, a_minus = x[:1], normal[:1], a_plus[:1], a_minus[:1]
        x, normal, a_plus, a_minus = x[:n], normal[:n], a_plus[:n], a_minus[:n]
        out.append(InterfaceBatch(j, x, normal, a_plus, a_minus, inputs).to(device=device, dtype=dtype))
    return out


def flux_jump(net, batch: InterfaceBatch) -> torch.Tensor:
    """``a+ du+/dn - a- du-/dn`` at the points of ``batch``: the flux condition's residual, with the
    one-sided values of a network whose input transform is :class:`InterfaceInputs` (the network's
    own, else the batch's: a function of the network, like ``torch.func.functional_call``'s)."""
    from hrta_pde.poisson.losses import gradient

    inputs = getattr(net, "_input_transform", None) or batch.inputs
    if inputs is None:
        raise ValueError("flux_jump needs a network with interface inputs (InterfaceInputs)")
    sides = []
    for side, a in ((1, batch.a_plus), (-1, batch.a_minus)):
        x = batch.x.detach().requires_grad_(True)
        with inputs.one_sided(batch.j, side):
            g = gradient(net(x)[:, 0], x)
        sides.append(a * (g * batch.normal).sum(dim=1))
    return sides[0] - sides[1]
