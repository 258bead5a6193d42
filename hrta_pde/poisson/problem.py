"""A Poisson problem ``-div(a grad u) + c u = f`` as an object: :class:`PoissonProblem`, the
conditions on the parts of its boundary (:class:`BoundaryCondition`) and batches of boundary points
with their data (:class:`BoundaryBatch`).

A problem is data: a domain (an exact shape of :mod:`hrta_pde.poisson.geometry`), a source ``f``
(or an exact solution ``u`` from which ``f`` is derived), the coefficients ``a`` and ``c``, and a
condition per boundary part: Dirichlet ``u = g``, Neumann ``a du/dn = h`` or Robin
``a du/dn + alpha u = h``.  Problems are built from a problem file's data by
:func:`hrta_pde.poisson.spec.problem_from_dict`, or read with
:func:`hrta_pde.poisson.catalog.load_problem` / :func:`~hrta_pde.poisson.catalog.builtin_problem`.

Example::

    >>> p = builtin_problem("poisson_2d_sin")
    >>> x = p.sample_interior(1000, generator=torch.Generator().manual_seed(0))
    >>> b = p.sample_boundary(400, generator=torch.Generator().manual_seed(1))
    >>> p.measure, p.boundary_measure
    (1.0, 4.0)

Sampling uses the shape: every primitive is sampled exactly in float64, with exact outward
normals, and a CSG domain by rejection from its parts, weighted by their measures
(:mod:`hrta_pde.poisson.sampling`).  The DeepXDE geometry (:attr:`PoissonProblem.geometry`) is
built only when asked for.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy
import torch

from hrta_pde.poisson.domain_spec import build_shape
from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.expressions import gradient, to_numpy, to_torch
from hrta_pde.poisson.geometry import Box, boundary_parts, present_parts, to_deepxde
from hrta_pde.poisson.geometry.parts import side_index
from hrta_pde.poisson.problem_toml import problem_to_toml
from hrta_pde.poisson.sampling import (MC_SEED, NP_DTYPES, Source, box_grid, cell_grid, check_count,
                                       check_dtype, check_sampler)

__all__ = ["BoundaryBatch", "BoundaryCondition", "PoissonProblem", "COMPATIBILITY_TOLERANCE"]

# A pure Neumann problem is refused if |int f + int h| > this fraction of int |f| + int |h|.
COMPATIBILITY_TOLERANCE = 1e-2


class BoundaryCondition:
    """The condition on some boundary parts: ``kind`` dirichlet (``u = g``), neumann
    (``a du/dn = h``) or robin (``a du/dn + alpha u = h``).

    ``g``, ``alpha``: sympy expressions (None where they do not apply). The flux data are
    ``h(x, n) = h_vec(x) . n + h_scalar(x)``: ``h_vec = None`` and ``h_scalar = h`` for data
    written in the file; derived from the exact solution, ``h_vec = a grad u`` and
    ``h_scalar = alpha u`` (robin) or None (neumann). ``written`` lists the keys given in the
    file; ``where`` names the table for messages.
    """

    def __init__(self, kind, dim, *, g=None, h_vec=None, h_scalar=None, alpha=None, written=(),
                 where="[boundary]", texts=None):
        self.kind, self.dim = kind, dim
        self.g, self.h_vec, self.h_scalar, self.alpha = g, h_vec, h_scalar, alpha
        self.written, self.where, self.texts = tuple(written), where, dict(texts or {})

    def __repr__(self):
        return f"BoundaryCondition({self.kind!r}, where={self.where!r})"

    @functools.cached_property
    def _fns(self) -> dict:
        d, c = self.dim, {}
        if self.g is not None:
            c.update(g_t=to_torch(self.g, d), g_n=to_numpy(self.g, d))
        if self.alpha is not None:
            c.update(alpha_t=to_torch(self.alpha, d), alpha_n=to_numpy(self.alpha, d))
        if self.h_vec is not None:
            c.update(hv_t=[to_torch(e, d) for e in self.h_vec], hv_n=[to_numpy(e, d) for e in self.h_vec])
        if self.h_scalar is not None:
            c.update(hs_t=to_torch(self.h_scalar, d), hs_n=to_numpy(self.h_scalar, d))
        return c

    def g_numpy(self, x):
        return self._fns["g_n"](x)

    def g_torch(self, x):
        return self._fns["g_t"](x)

    def alpha_numpy(self, x):
        return self._fns["alpha_n"](x) if self.alpha is not None else np.zeros(len(x))

    def alpha_torch(self, x):
        return self._fns["alpha_t"](x)

    def h_numpy(self, x, normal):
        f = self._fns
        out = None
        if "hv_n" in f:
            out = np.einsum("ij,ij->i", np.stack([p(x) for p in f["hv_n"]], axis=1), normal)
        if "hs_n" in f:
            out = f["hs_n"](x) if out is None else out + f["hs_n"](x)
        return np.zeros(len(x)) if out is None else out

    def h_torch(self, x, normal):
        f = self._fns
        out = None
        if "hv_t" in f:
            out = (torch.stack([p(x) for p in f["hv_t"]], dim=1) * normal).sum(dim=1)
        if "hs_t" in f:
            out = f["hs_t"](x) if out is None else out + f["hs_t"](x)
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) if out is None else out



@dataclass
class BoundaryBatch:
    """Boundary points with their outward normals and boundary data.

    Exactly one of ``dirichlet[i]`` (``u = g``), ``neumann[i]`` (``a du/dn = h``) and
    ``robin[i]`` (``a du/dn + alpha u = h``) is True at ``x[i]``; ``g`` is 0 where not
    Dirichlet, ``h`` 0 on Dirichlet points, ``alpha`` 0 where not Robin; ``a`` is the diffusion
    coefficient at the points; ``part`` the index of the boundary part (see
    :class:`BoundaryParts`). Built without the newer fields (``neumann``, ``robin``, ``alpha``,
    ``a``), they default to: Neumann wherever not Dirichlet, no Robin points, ``a = 1``.
    """

    x: torch.Tensor          # (n, d) points on the boundary
    normal: torch.Tensor     # (n, d) outward unit normals
    dirichlet: torch.Tensor  # (n,) bool
    g: torch.Tensor          # (n,) Dirichlet value (0 where not Dirichlet)
    h: torch.Tensor          # (n,) flux data: a du/dn (Neumann) or a du/dn + alpha u (Robin)
    neumann: torch.Tensor | None = None  # (n,) bool
    robin: torch.Tensor | None = None    # (n,) bool
    alpha: torch.Tensor | None = None    # (n,) Robin coefficient (0 where not Robin)
    a: torch.Tensor | None = None        # (n,) diffusion coefficient at the points
    part: torch.Tensor | None = None     # (n,) int64 boundary part index
    weight: torch.Tensor | None = None   # (n,) quadrature weights (None: |dOmega| / n each)

    def __post_init__(self):
        if self.robin is None:
            self.robin = torch.zeros_like(self.dirichlet)
        if self.neumann is None:
            self.neumann = ~self.dirichlet & ~self.robin
        if self.alpha is None:
            self.alpha = torch.zeros_like(self.g)
        if self.a is None:
            self.a = torch.ones_like(self.g)


@dataclass(eq=False)
class PoissonProblem:
    """``-Laplace u = f`` in ``Omega``, with ``u = g`` and/or ``du/dn = h`` on ``dOmega``.

    ``h`` is a sympy expression when the user gave it (a scalar function whose boundary values
    are ``du/dn``), or the tuple ``grad u`` when it is derived from the exact solution, in which
    case ``h(x) = grad u(x) . n(x)`` needs the normal (:meth:`h_torch`).  ``measure`` and
    ``boundary_measure`` are ``|Omega|`` and ``|dOmega|`` (for d = 1 the boundary measure counts
    the end points); ``measure_exact`` is False where they are quasi-Monte Carlo estimates.
    ``solver`` holds the optional ``[solver]`` table of the problem file, unchecked.
    A pure Neumann problem determines ``u`` only up to a constant; the solver fixes its mean.
    Build problems with :func:`problem_from_dict`, :func:`load_problem` or
    :func:`builtin_problem`.
    """

    name: str
    dim: int
    spec: dict
    u: sympy.Expr | None
    f: sympy.Expr
    g: sympy.Expr | None
    h: sympy.Expr | tuple | None
    measure: float
    boundary_measure: float
    boundary_kind: str
    neumann_sides: tuple[str, ...] = ()
    measure_exact: bool = True
    solver: dict = field(default_factory=dict)
    description: str = ""
    shape: Any = field(default=None, repr=False)
    a: sympy.Expr = sympy.S.One    # diffusion coefficient of -div(a grad u) + c u = f
    c: sympy.Expr = sympy.S.Zero   # reaction coefficient
    parts: Any = field(default=None, repr=False)       # BoundaryParts
    conditions: tuple = field(default=(), repr=False)  # BoundaryCondition per atomic part

    def __post_init__(self):
        if self.shape is None:
            self.shape = build_shape(self.spec["domain"], "domain", 0)
        if self.parts is None:
            self.parts = boundary_parts(self.spec["domain"], self.shape)
            self.parts.present = present_parts(self.shape)
        if not self.conditions:  # from the legacy fields
            n = self.shape.n_parts
            dc = BoundaryCondition("dirichlet", self.dim, g=self.g) if self.g is not None else None
            nc = None
            if self.h is not None:
                nc = BoundaryCondition("neumann", self.dim,
                                       h_vec=self.h if isinstance(self.h, tuple) else None,
                                       h_scalar=None if isinstance(self.h, tuple) else self.h)
            if self.boundary_kind == "neumann":
                conds = [nc] * n
            else:
                conds = [dc] * n
                for side in self.neumann_sides:
                    conds[side_index(side)] = nc
            self.conditions = tuple(conds)

    # -- properties
    @property
    def has_exact(self) -> bool:
        """Whether an exact solution ``u`` is known."""
        return self.u is not None

    @property
    def pure_neumann(self) -> bool:
        """Whether ``a du/dn = h`` holds on the whole boundary and ``c = 0`` (u is unique only
        up to a constant)."""
        return self.boundary_kind == "neumann" and self.c == 0

    @property
    def has_coefficient(self) -> bool:
        """Whether the diffusion coefficient ``a`` is not the constant 1."""
        return self.a != 1

    @property
    def has_reaction(self) -> bool:
        """Whether the reaction coefficient ``c`` is not 0."""
        return self.c != 0

    @property
    def has_robin(self) -> bool:
        return any(cd is not None and cd.kind == "robin" for cd in self.conditions)

    @property
    def part_names(self) -> tuple:
        """The names of the boundary parts (see :class:`BoundaryParts`)."""
        return tuple(self.parts.listing())

    def part_of(self, x: np.ndarray) -> np.ndarray:
        """Index of the boundary part nearest to each point (parts with a condition only)."""
        d = self.shape.part_distances(np.asarray(x, dtype=np.float64))
        missing = [k for k, cd in enumerate(self.conditions) if cd is None]
        if missing:
            d[:, missing] = np.inf
        return d.argmin(axis=1)

    def a_numpy(self, x: np.ndarray) -> np.ndarray:
        if self.a == 1:
            return np.ones(len(x))
        return self._compiled["a_n"](x)

    def c_numpy(self, x: np.ndarray) -> np.ndarray:
        if self.c == 0:
            return np.zeros(len(x))
        return self._compiled["c_n"](x)

    def a_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The diffusion coefficient at ``x`` (n, d) -> (n,)."""
        if self.a == 1:
            return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        return self._compiled["a_t"](x)

    def grad_a_torch(self, x: torch.Tensor) -> torch.Tensor:
        """``grad a`` at ``x`` (n, d) -> (n, d) (piecewise: pointwise derivative)."""
        if self.a == 1:
            return torch.zeros_like(x)
        return torch.stack([p(x) for p in self._compiled["da_t"]], dim=1)

    def c_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The reaction coefficient at ``x`` (n, d) -> (n,)."""
        if self.c == 0:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return self._compiled["c_t"](x)

    @property
    def h_from_u(self) -> bool:
        """Whether the Neumann data are ``grad u . n`` of the exact solution."""
        return isinstance(self.h, tuple)

    # -- compiled functions (built on first use)
    @functools.cached_property
    def _compiled(self) -> dict:
        d = self.dim
        c = {"f_t": to_torch(self.f, d), "f_n": to_numpy(self.f, d)}
        if self.u is not None:
            grad = gradient(self.u, d)
            c.update(u_t=to_torch(self.u, d), u_n=to_numpy(self.u, d),
                     du_t=[to_torch(e, d) for e in grad], du_n=[to_numpy(e, d) for e in grad])
        if self.g is not None:
            c.update(g_t=to_torch(self.g, d), g_n=to_numpy(self.g, d))
        if isinstance(self.h, tuple):
            c.update(h_t=[to_torch(e, d) for e in self.h], h_n=[to_numpy(e, d) for e in self.h])
        elif self.h is not None:
            c.update(h_t=to_torch(self.h, d), h_n=to_numpy(self.h, d))
        if self.a != 1:
            c.update(a_t=to_torch(self.a, d), a_n=to_numpy(self.a, d),
                     da_t=[to_torch(e, d) for e in gradient(self.a, d)])
        if self.c != 0:
            c.update(c_t=to_torch(self.c, d), c_n=to_numpy(self.c, d))
        return c

    def _need(self, key: str, what: str):
        fn = self._compiled.get(key)
        if fn is None:
            raise ProblemError(f"problem {self.name!r} has no {what}")
        return fn

    def f_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The source ``f`` at points ``x`` (n, d) -> (n,), differentiable."""
        return self._compiled["f_t"](x)

    def f_numpy(self, x: np.ndarray) -> np.ndarray:
        return self._compiled["f_n"](x)

    def u_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The exact solution at ``x`` (n, d) -> (n,); ProblemError if none is known."""
        return self._need("u_t", "exact solution: give [solution] u")(x)

    def u_numpy(self, x: np.ndarray) -> np.ndarray:
        return self._need("u_n", "exact solution: give [solution] u")(x)

    def grad_u_torch(self, x: torch.Tensor) -> torch.Tensor:
        """``grad u`` of the exact solution at ``x`` (n, d) -> (n, d)."""
        parts = self._need("du_t", "exact solution: give [solution] u")
        return torch.stack([p(x) for p in parts], dim=1)

    def grad_u_numpy(self, x: np.ndarray) -> np.ndarray:
        parts = self._need("du_n", "exact solution: give [solution] u")
        return np.stack([p(x) for p in parts], axis=1)

    def g_torch(self, x: torch.Tensor) -> torch.Tensor:
        """Dirichlet data ``g`` at boundary points ``x`` (n, d) -> (n,)."""
        return self._need("g_t", "Dirichlet data g")(x)

    def g_numpy(self, x: np.ndarray) -> np.ndarray:
        return self._need("g_n", "Dirichlet data g")(x)

    def h_torch(self, x: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Neumann data ``du/dn`` at boundary points ``x`` with outward normals ``normal``.

        ``h(x)`` if h was given, else ``grad u(x) . normal``.
        """
        fn = self._need("h_t", "Neumann data h")
        if isinstance(fn, list):
            return (torch.stack([p(x) for p in fn], dim=1) * normal).sum(dim=1)
        return fn(x)

    def h_numpy(self, x: np.ndarray, normal: np.ndarray) -> np.ndarray:
        fn = self._need("h_n", "Neumann data h")
        if isinstance(fn, list):
            return np.einsum("ij,ij->i", np.stack([p(x) for p in fn], axis=1), normal)
        return fn(x)

    # -- sampling
    def _uniform_interior(self, n: int) -> np.ndarray:
        shape = self.shape
        if isinstance(shape, Box):
            return box_grid(shape.lo, shape.hi, n)
        return cell_grid(shape.lo, shape.hi, self.measure, n)

    def sample_interior(self, n: int, *, generator: torch.Generator | None = None,
                        sampler: str = "random", dtype: torch.dtype | None = None,
                        device=None) -> torch.Tensor:
        """``n`` points strictly inside the domain, uniformly distributed, as an (n, d) tensor.

        ``sampler``: ``"random"`` (i.i.d. from ``generator``; None: torch's global generator),
        ``"sobol"`` (scrambled Sobol, seeded from ``generator``) or ``"uniform"`` (a
        deterministic grid: DeepXDE's ``uniform_points(n, boundary=False)`` for boxes, a
        cell-centred grid elsewhere; about, not exactly, ``n`` points).  numpy's global
        random state is never used.  The points are strictly inside even after rounding to
        ``dtype`` (default: torch's default dtype).
        """
        n, sampler, dtype = check_count(n), check_sampler(sampler), check_dtype(dtype)
        np_dtype = NP_DTYPES[dtype]
        shape = self.shape
        if n == 0:
            x = np.empty((0, self.dim))
        elif sampler == "uniform":
            x = self._uniform_interior(n).astype(np_dtype).astype(np.float64)
            x = x[shape.classify(x) == -1]
        else:
            src, parts, have = Source(sampler, generator), [], 0
            for _ in range(1000):
                x = shape.interior(n - have + 8, src).astype(np_dtype).astype(np.float64)
                x = x[shape.classify(x) == -1]
                parts.append(x)
                have += len(x)
                if have >= n:
                    break
            else:  # a domain of positive measure is hit, unless float64 cannot resolve it (1e308 wide)
                raise ProblemError(f"could not sample the interior of problem {self.name!r}: no random point of its "
                                   f"bounding box {shape.lo.tolist()}..{shape.hi.tolist()} fell inside; give the "
                                   "domain coordinates of moderate size (rescale x), and a domain that is not "
                                   "empty or thinner than float64 resolves")
            x = np.concatenate(parts)[:n]
        return torch.as_tensor(x, dtype=dtype, device=device)

    def sample_boundary(self, n: int, *, generator: torch.Generator | None = None,
                        sampler: str = "random", dtype: torch.dtype | None = None,
                        device=None) -> BoundaryBatch:
        """``n`` boundary points, uniform w.r.t. the boundary measure, with normals and data.

        Boxes pick a face with probability proportional to its area; CSG domains sample their
        parts in proportion to the parts' boundary measures and keep the points on the
        result's boundary.  Normals are exact.  ``sampler="uniform"`` gives deterministic
        points about ``|dOmega| / n`` apart (about, not exactly, ``n`` of them).
        """
        n, sampler, dtype = check_count(n), check_sampler(sampler), check_dtype(dtype)
        shape = self.shape
        if n == 0:
            x, nrm, face = np.empty((0, self.dim)), np.empty((0, self.dim)), np.empty(0, np.int64)
        elif sampler == "uniform":
            x, nrm, face = shape.uniform_boundary(self.boundary_measure / n)
        else:
            x, nrm, face = shape.boundary(n, Source(sampler, generator))
        return self._boundary_batch(x, nrm, dtype, device)

    def quadrature(self, n: int, n_boundary: int, *, dtype: torch.dtype | None = None, device=None):
        """Gauss points with weights (:mod:`hrta_pde.poisson.quadrature`): ``(x, w, boundary)``, about
        ``n`` interior points ``x`` (n, d) with weights ``w`` (n,) summing to :attr:`measure` (more on a
        box whose cells an interface of ``a`` cuts: those are refined), and
        about ``n_boundary`` boundary points with their data and ``boundary.weight`` summing to
        :attr:`boundary_measure`. A :class:`ProblemError` for a domain without a rule."""
        from hrta_pde.poisson.quadrature import boundary_rule, interior_rule

        n, n_boundary, dtype = check_count(n), check_count(n_boundary, "n_boundary"), check_dtype(dtype)
        x, w = interior_rule(self.shape, max(1, n), self._jump_levels(), self._singular_points())
        xb, nrm, _, wb = boundary_rule(self.shape, max(1, n_boundary))
        batch = self._boundary_batch(xb, nrm, dtype, device)
        batch.weight = torch.as_tensor(wb, dtype=dtype, device=device)
        return (torch.as_tensor(x, dtype=dtype, device=device), torch.as_tensor(w, dtype=dtype, device=device),
                batch)

    def _singular_points(self) -> np.ndarray:
        """The points where ``u`` is singular (:func:`hrta_pde.poisson.singular.singular_points`),
        (k, d); the Gauss rule is graded towards them."""
        from hrta_pde.poisson.singular import singular_points

        return singular_points(self)

    def _jump_levels(self) -> list:
        """numpy level functions of the interfaces where ``a`` jumps (the Gauss rule refines the
        cells they cut); none for a smooth ``a`` or levels the interface inputs refuse."""
        from hrta_pde.poisson.interfaces import InterfaceError, interface_levels

        try:
            return [to_numpy(p, self.dim) for p in interface_levels(self)]
        except InterfaceError:
            return []

    def _boundary_batch(self, x: np.ndarray, nrm: np.ndarray, dtype, device) -> BoundaryBatch:
        """The boundary data of each point ``x`` (outward normal ``nrm``) by its boundary part."""
        part = self.part_of(x) if len(x) else np.empty(0, np.int64)
        m = len(x)
        dirichlet, neumann, robin = (np.zeros(m, dtype=bool) for _ in range(3))
        g, h, alpha = np.zeros(m), np.zeros(m), np.zeros(m)
        groups: dict = {}
        for k, cond in enumerate(self.conditions):
            if cond is not None:
                groups.setdefault(id(cond), (cond, []))[1].append(k)
        for cond, ks in groups.values():
            sel = np.isin(part, ks)
            if not sel.any():
                continue
            if cond.kind == "dirichlet":
                dirichlet |= sel
                g[sel] = cond.g_numpy(x[sel])
            else:
                (neumann if cond.kind == "neumann" else robin)[sel] = True
                h[sel] = cond.h_numpy(x[sel], nrm[sel])
                if cond.kind == "robin":
                    alpha[sel] = cond.alpha_numpy(x[sel])
        a = self.a_numpy(x) if m else np.zeros(0)

        def t(v):
            return torch.as_tensor(v, dtype=dtype, device=device)

        def b(v):
            return torch.as_tensor(v, device=device)

        return BoundaryBatch(x=t(x), normal=t(nrm), dirichlet=b(dirichlet), g=t(g), h=t(h),
                             neumann=b(neumann), robin=b(robin), alpha=t(alpha), a=t(a),
                             part=torch.as_tensor(part, dtype=torch.int64, device=device))

    # -- checks
    def check_compatibility(self) -> float:
        """For a pure Neumann problem, the relative defect of ``int f + int h = 0``.

        ``-Laplace u = f`` with ``du/dn = h`` has a solution only if
        ``int_Omega f + int_dOmega h = 0`` (divergence theorem).  Returns
        ``|int f + int h| / (int |f| + int |h|)``, by quasi-Monte Carlo with 2^16 points in the
        domain and on its boundary, and raises :class:`ProblemError` if it exceeds 1e-2.  Other
        problems have Dirichlet data somewhere, so any ``f`` is compatible: returns 0.0.
        """
        if not self.pure_neumann:
            return 0.0
        n = 2**16
        gen = torch.Generator().manual_seed(MC_SEED)
        x = self.sample_interior(n, generator=gen, sampler="sobol", dtype=torch.float64).numpy()
        fv = self.f_numpy(x)
        sampler = "uniform" if self.dim == 1 else "sobol"  # d = 1: the end points, evenly
        b = self.sample_boundary(n, generator=gen, sampler=sampler, dtype=torch.float64)
        hv = b.h.numpy()
        int_f, abs_f = self.measure * fv.mean(), self.measure * np.abs(fv).mean()
        int_h, abs_h = self.boundary_measure * hv.mean(), self.boundary_measure * np.abs(hv).mean()
        defect = float(abs(int_f + int_h) / (abs_f + abs_h + 1e-300))
        if not np.isfinite(defect) or defect > COMPATIBILITY_TOLERANCE:
            raise ProblemError(
                f"pure Neumann problem {self.name!r} is incompatible: int f + int h = "
                f"{int_f:.6g} + {int_h:.6g} != 0 (relative defect {defect:.3g} > "
                f"{COMPATIBILITY_TOLERANCE}); a solution needs int_Omega f + int_dOmega h = 0: "
                "fix solution.f or boundary.h")
        return defect

    def to_toml(self) -> str:
        """The problem as TOML text (see :func:`problem_to_toml`)."""
        return problem_to_toml(self)

    @functools.cached_property
    def geometry(self):
        """The DeepXDE geometry of the domain (float64 parameters), built on first use: for DeepXDE
        users; sampling, meshing, the FEM reference and plots use the exact :attr:`shape`."""
        return to_deepxde(self.shape)
