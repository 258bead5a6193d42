"""A P2 finite-element solution (:class:`FEMSolution`) and its evaluation at arbitrary points.

:meth:`FEMSolution.u` and :meth:`FEMSolution.grad` evaluate the solution and its gradient (exact
P2 shape-function derivatives, no projection). A point outside the mesh -- e.g. in the O(h^3)
sliver between a quadratic boundary element and the true curved boundary, or rounding noise on a
straight one -- is evaluated with the polynomial of the *nearest element* (the candidate whose
smallest barycentric coordinate is largest), i.e. the P2 field is extended smoothly, not clamped.
Also :class:`FEMError`, the one error of the FEM reference, and :class:`FEMUnsupported`, its kind
for problems that have no FEM reference here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FEMError", "FEMUnsupported", "FEMSolution"]


class FEMError(ValueError):
    """A finite-element reference cannot be computed; the message is one line and says why."""


class FEMUnsupported(FEMError):
    """The problem has no FEM reference here (its boundary conditions or its dimension): compare
    against an exact solution instead. ``reason`` is ``"pure_neumann"``, ``"boundary"`` or
    ``"dimension"``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


# Points evaluated per chunk in FEMSolution.u/grad (bounds the memory of the element search).
_CHUNK = 8192


def import_skfem():
    """The scikit-fem module (an optional dependency)."""
    try:
        import skfem
    except ImportError:
        raise FEMError(
            "the FEM reference needs scikit-fem: pip install scikit-fem (or hrta_pde[fem])"
        ) from None
    return skfem


def one_line(text) -> str:
    return " ".join(str(text).split())


def value(field):
    """The values of a skfem DiscreteField (``.value`` is deprecated since skfem 10)."""
    return np.asarray(field.get(0)) if hasattr(field, "get") else field.value


@dataclass
class FEMSolution:
    """A P2 finite-element solution on the mesh of size ``h``.

    ``x`` is the coefficient vector of ``basis`` (a skfem ``CellBasis`` on ``mesh``).
    ``estimated_rel_error`` is the relative L2 difference to the previous refinement level when
    the solution comes from :func:`fem_reference` (``nan`` otherwise); ``history`` lists every
    level as ``{"h", "n_dofs", "rel_change"}``; ``stop_reason`` is ``"tol"``,
    ``"max_refinements"`` or ``"dof_cap"``; ``curved`` says whether the boundary elements are
    quadratic.
    """

    h: float
    n_dofs: int
    basis: Any
    x: np.ndarray
    mesh: Any
    curved: bool = False
    estimated_rel_error: float = math.nan
    converged: bool | None = None
    stop_reason: str | None = None
    history: list = field(default_factory=list)
    _vertex_mesh: Any = field(default=None, repr=False)
    _locator: Any = field(default=None, init=False, repr=False)

    # -------------------------------------------------------------------------------- points
    def u(self, x):
        """Values at points ``x`` of shape (n, d) -> (n,), same dtype/device as ``x``.

        ``x`` may be a torch tensor or a numpy array (the result has the same kind).
        """
        return self._eval(x, grad=False)

    def grad(self, x):
        """Gradient at points ``x`` of shape (n, d) -> (n, d), same dtype/device as ``x``."""
        return self._eval(x, grad=True)

    def _eval(self, x, grad):
        is_torch = hasattr(x, "detach")
        X = x.detach().cpu().numpy() if is_torch else np.asarray(x)
        in_dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float64)
        d = self.mesh.p.shape[0]
        if X.ndim == 1 and d == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != d:
            raise FEMError(f"points have shape {tuple(X.shape)}: pass an (n, {d}) array")
        X = X.astype(np.float64)
        out = np.empty((len(X), d) if grad else len(X))
        for s in range(0, len(X), _CHUNK):
            out[s:s + _CHUNK] = self._eval_chunk(X[s:s + _CHUNK], grad)
        if is_torch:
            import torch

            dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
            return torch.as_tensor(out, dtype=dtype, device=x.device)
        return out.astype(in_dtype, copy=False)

    def _eval_chunk(self, X, grad):
        if len(X) == 0:
            return np.empty((0, X.shape[1]) if grad else 0)
        cells, ref = self._locate(X)
        basis = self.basis
        pts = ref[:, :, None]
        dofs = basis.element_dofs[:, cells]  # (Nbfun, n)
        coef = self.x[dofs]
        out = 0.0
        for k in range(basis.Nbfun):
            phi = basis.elem.gbasis(basis.mapping, pts, k, tind=cells)[0]
            if grad:
                out = out + phi.grad[:, :, 0] * coef[k]
            else:
                out = out + value(phi)[:, 0] * coef[k]
        return out.T if grad else out

    def _locate(self, X):
        """Element index and reference coordinates of every point (nearest element outside)."""
        if self._locator is None:
            self._locator = _Locator(self._vertex_mesh if self._vertex_mesh is not None
                                     else self.mesh)
        cells, ref = self._locator(X)
        if self.curved:
            ref = _newton_invF(self.basis.mapping, X.T, ref, cells)
        return cells, ref


class _Locator:
    """Finds the simplex containing each point (or the nearest one) on an affine mesh."""

    def __init__(self, mesh1):
        from scipy.spatial import cKDTree

        p, t = mesh1.p, mesh1.t
        self.d = p.shape[0]
        self.nel = t.shape[1]
        self.b = p[:, t[0]]  # (d, nel)
        A = np.stack([p[:, t[i + 1]] - self.b for i in range(self.d)], axis=1)  # (d, d, nel)
        self.invA = np.linalg.inv(np.moveaxis(A, 2, 0))  # (nel, d, d)
        self.tree = cKDTree(p[:, t].mean(axis=1).T)

    def _candidates(self, X, k):
        k = min(k, self.nel)
        _, ix = self.tree.query(X, k)
        ix = ix.reshape(len(X), k)
        diff = X[:, None, :] - self.b.T[ix]  # (n, k, d)
        ref = np.einsum("nkij,nkj->nki", self.invA[ix], diff)
        lam_min = np.minimum(ref.min(axis=2), 1.0 - ref.sum(axis=2))
        best = np.argmax(lam_min, axis=1)
        rows = np.arange(len(X))
        return ix[rows, best], ref[rows, best], lam_min[rows, best]

    def __call__(self, X):
        cells, ref, score = self._candidates(X, 8)
        for k in (32, 128):
            miss = np.nonzero(score < -1e-10)[0]
            if len(miss) == 0 or k // 4 >= self.nel:
                break
            c, r, s = self._candidates(X[miss], k)
            better = s > score[miss]
            idx = miss[better]
            cells[idx], ref[idx], score[idx] = c[better], r[better], s[better]
        return cells, ref.T  # (n,), (d, n)


def _newton_invF(mapping, X, ref, cells, iters=20):
    """Reference coordinates on a quadratic (isoparametric) mesh, from the affine guess.

    Unlike skfem's invF this does not clip to [0, 1], so points just outside the curved
    element get the smooth extension of its polynomial. Points where Newton does not settle
    (far outside the element) keep the affine coordinates.
    """
    x = X[:, :, None]
    R = ref[:, :, None].copy()
    with np.errstate(all="ignore"):
        for _ in range(iters):
            F = mapping.F(R, tind=cells)
            invDF = mapping.invDF(R, tind=cells)
            dR = np.einsum("ijkl,jkl->ikl", invDF, x - F)
            R = R + dR
            if np.max(np.abs(dR)) < 1e-13:
                break
    good = np.all(np.isfinite(R[:, :, 0]), axis=0) & np.all(np.abs(dR[:, :, 0]) < 1e-8, axis=0)
    return np.where(good, R[:, :, 0], ref)

