"""Finite-element reference solutions of Poisson problems ``-div(a grad u) + c u = f``.

The operator's coefficients ``a`` and ``c`` (piecewise ones included) enter the stiffness and mass
forms at the quadrature points; boundary data per part: Dirichlet ``u = g`` on the degrees of
freedom of the Dirichlet facets, Neumann ``a du/dn = h`` as the load ``int h v``, Robin
``a du/dn + alpha u = h`` as ``int alpha u v`` in the matrix and ``int h v`` in the load, over the
boundary facets of each part (a facet's part: the one nearest to its centroid).

For problems without a closed-form solution the error of a neural solver is measured against a
P2 finite-element solution computed with scikit-fem (an optional dependency:
``pip install scikit-fem``):

* :func:`solve_fem` meshes the domain with :func:`hrta_pde.poisson.mesh.mesh_geometry` at mesh size
  ``h`` (1-D lines, 2-D triangles, 3-D tetrahedra), assembles the stiffness matrix and the load
  ``(f, v)`` with quadrature of order 6 (order 4 in 3-D), puts the Dirichlet data ``g`` on every
  boundary degree of freedom (vertices *and* the edge-midpoint nodes of P2) and solves.
  Curved boundaries: the mesh's boundary vertices lie on the boundary curve/surface; the
  midpoint nodes of boundary edges are moved onto it too (by bisection with the geometry's
  ``inside`` along the outward normal), which makes the boundary elements quadratic
  (isoparametric, skfem's ``MeshTri2``/``MeshTet2``) and keeps P2's third order in L2.
  Straight-sided domains (polygons, boxes) keep the affine P2 mesh.
* :func:`fem_reference` refines ``h`` by halves until two successive solutions agree to a
  relative L2 difference ``tol`` at a fixed set of sample points, or the refinement budget / a
  cap on the number of unknowns is reached; the last difference is kept in
  :attr:`FEMSolution.estimated_rel_error`. It overestimates the finer solution's error: with
  P2's third order that error is about 1/7 of the difference for a smooth solution.
* :meth:`FEMSolution.u` and :meth:`FEMSolution.grad` evaluate the solution and its gradient
  (exact P2 shape-function derivatives, no projection) at arbitrary points.
  A point outside the mesh -- e.g. in the O(h^3) sliver between a quadratic boundary element
  and the true curved boundary, or rounding noise on a straight one -- is evaluated with the
  polynomial of the *nearest element* (the candidate whose smallest barycentric coordinate is
  largest), i.e. the P2 field is extended smoothly, not clamped. Points far outside the
  domain therefore get an extrapolated value: pass points of the domain.
* :func:`fem_errors` integrates the L2 and H1-seminorm errors against an exact solution.

Problems in 1-D, 2-D and 3-D with a Dirichlet or Robin part or ``c != 0`` are supported (a pure
Neumann problem with ``c = 0`` determines ``u`` only up to a constant and is refused); anything
else raises :class:`FEMError` with a one-line message. Solutions are reference data: ``u``/``grad`` do not
propagate autograd gradients.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = [
    "FEMError",
    "FEMSolution",
    "solve_fem",
    "fem_reference",
    "fem_errors",
    "DOF_CAP",
]


class FEMError(ValueError):
    """A finite-element reference cannot be computed; the message is one line and says why."""


# Largest number of unknowns fem_reference refines to (a direct sparse solve stays a few seconds).
DOF_CAP = {1: 200_000, 2: 300_000, 3: 150_000}
# Default initial mesh size: bounding-box diameter / this.
_H0_DIVISOR = {1: 32, 2: 16, 3: 6}
# Points evaluated per chunk in FEMSolution.u/grad (bounds the memory of the element search).
_CHUNK = 8192
_N_SAMPLES = 4000


def _skfem():
    try:
        import skfem
    except ImportError:
        raise FEMError(
            "--reference fem needs scikit-fem: pip install scikit-fem (or hrta_pde[fem])"
        ) from None
    return skfem


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _value(field):
    """The values of a skfem DiscreteField (``.value`` is deprecated since skfem 10)."""
    return np.asarray(field.get(0)) if hasattr(field, "get") else field.value


# ----------------------------------------------------------------------------------------------
# problem data
# ----------------------------------------------------------------------------------------------
def _general(problem) -> bool:
    """Whether the problem carries per-part boundary conditions (a PoissonProblem)."""
    return bool(getattr(problem, "conditions", ())) and hasattr(problem, "part_of")


def _check_problem(problem) -> int:
    kind = getattr(problem, "boundary_kind", "dirichlet")
    if _general(problem) and getattr(problem, "pure_neumann", False):
        name = getattr(problem, "name", None)
        which = f"problem {name!r}" if name else "this problem"
        raise FEMError(f"--reference fem: {which} has neumann conditions on the whole boundary and "
                       "c = 0, so u is unique only up to a constant: compare against its exact "
                       "solution u instead, or give a part a dirichlet or robin condition")
    if kind != "dirichlet" and not _general(problem):
        name = getattr(problem, "name", None)
        which = f"problem {name!r}" if name else "this problem"
        raise FEMError(
            f"--reference fem supports Dirichlet problems only; {which} has {kind} boundary "
            "conditions: compare against its exact solution u instead"
        )
    dim = getattr(problem, "dim", None)
    if dim is None:
        dim = getattr(problem.geometry, "dim", None)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise FEMError(f"problem dimension {dim!r} is not an integer")
    dim = int(dim)
    if not 1 <= dim <= 3:
        raise FEMError(
            f"--reference fem meshes 1-, 2- and 3-D domains only; this problem is {dim}-D: "
            "give an exact solution u instead"
        )
    return dim


def _as_numpy_fn(expr, dim, what) -> Callable[[np.ndarray], np.ndarray]:
    from hrta_pde.poisson.expressions import to_numpy

    try:
        return to_numpy(expr, dim)
    except ValueError as err:
        raise FEMError(f"cannot evaluate {what} for the FEM reference: {_one_line(err)}") from None


def _source(problem, dim):
    fn = getattr(problem, "f_numpy", None)
    if callable(fn):
        return fn
    return _as_numpy_fn(problem.f, dim, "f")


def _dirichlet_data(problem, dim):
    """g as a numpy function; g = None means g = u where u is known, else g = 0."""
    fn = getattr(problem, "g_numpy", None)
    if callable(fn) and getattr(problem, "g", None) is not None:
        return fn
    g = getattr(problem, "g", None)
    if g is None:
        if getattr(problem, "u", None) is not None:
            u_fn = getattr(problem, "u_numpy", None)
            return u_fn if callable(u_fn) else _as_numpy_fn(problem.u, dim, "u")
        return lambda X: np.zeros(len(X))
    return _as_numpy_fn(g, dim, "g")


def _evaluate(fn, X, what) -> np.ndarray:
    """fn at points X (n, d) -> (n,) float64, checked finite."""
    out = np.asarray(fn(np.ascontiguousarray(X, dtype=np.float64)), dtype=np.float64)
    out = np.broadcast_to(out.reshape(-1) if out.size == len(X) else out, (len(X),))
    if not np.all(np.isfinite(out)):
        bad = X[~np.isfinite(out)][0]
        raise FEMError(
            f"{what} is not finite at x = {np.array2string(bad, precision=6)}: "
            "the FEM reference needs finite data on the domain"
        )
    return np.array(out)


# ----------------------------------------------------------------------------------------------
# meshes
# ----------------------------------------------------------------------------------------------
def _build_mesh(geom, h, dim):
    """(skfem mesh, P2 element, straight vertex mesh, curved?) for the domain at mesh size h."""
    skfem = _skfem()
    from hrta_pde.poisson.mesh import mesh_geometry

    try:
        mm = mesh_geometry(geom, h)
    except ValueError as err:  # MeshError
        raise FEMError(f"cannot mesh the domain for the FEM reference: {_one_line(err)}") from None
    p = np.ascontiguousarray(np.asarray(mm.points, dtype=np.float64)[:, :dim].T)
    t = np.ascontiguousarray(np.asarray(mm.cells[0].data, dtype=np.int64).T)
    if dim == 1:
        mesh1 = skfem.MeshLine(p, t)
        return mesh1, skfem.ElementLineP2(), mesh1, False
    if dim == 2:
        mesh1 = skfem.MeshTri(p, t)
        mesh2_cls, elem = skfem.MeshTri2, skfem.ElementTriP2()
        edges = mesh1.facets[:, mesh1.boundary_facets()]
        edge_ids = mesh1.boundary_facets()
        which = "facet_dofs"
    else:
        mesh1 = skfem.MeshTet(p, t)
        mesh2_cls, elem = skfem.MeshTet2, skfem.ElementTetP2()
        edge_ids = mesh1.boundary_edges()
        edges = mesh1.edges[:, edge_ids]
        which = "edge_dofs"
    mesh2 = _curved_mesh(geom, mesh1, mesh2_cls, edges, edge_ids, which, dim)
    if mesh2 is None:
        return mesh1, elem, mesh1, False
    return mesh2, elem, mesh1, True


def _inside(geom, x):
    with warnings.catch_warnings():
        # DeepXDE's Polygon/Triangle.inside call np.cross on 2-D vectors (deprecated in NumPy 2).
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(geom.inside(x), dtype=bool).reshape(-1)


def _on_boundary(geom, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.asarray(geom.on_boundary(x), dtype=bool).reshape(-1)


def _outward_vertex_normals(mesh1, dim):
    """Area-weighted outward normals of the boundary facets, summed at their vertices."""
    p, fac = mesh1.p, mesh1.facets[:, mesh1.boundary_facets()]
    elem = mesh1.f2t[0, mesh1.boundary_facets()]
    if dim == 2:
        tang = p[:, fac[1]] - p[:, fac[0]]
        n = np.stack([tang[1], -tang[0]])
    else:
        n = np.cross((p[:, fac[1]] - p[:, fac[0]]).T, (p[:, fac[2]] - p[:, fac[0]]).T).T
    out = p[:, fac].mean(axis=1) - p[:, mesh1.t[:, elem]].mean(axis=1)
    n = n * np.sign(np.sum(n * out, axis=0))
    vn = np.zeros_like(p)
    for k in range(fac.shape[0]):
        np.add.at(vn.T, fac[k], n.T)
    return vn


def _curved_mesh(geom, mesh1, mesh2_cls, edges, edge_ids, which, dim):
    """A quadratic mesh with boundary-edge midpoints on the boundary, or None if all straight."""
    if edges.shape[1] == 0:
        return None
    p = mesh1.p
    mid = 0.5 * (p[:, edges[0]] + p[:, edges[1]])  # (d, m)
    length = np.linalg.norm(p[:, edges[1]] - p[:, edges[0]], axis=0)
    on = _on_boundary(geom, mid.T)
    todo = np.nonzero(~on)[0]
    if len(todo) == 0:
        return None
    vn = _outward_vertex_normals(mesh1, dim)
    n = vn[:, edges[0, todo]] + vn[:, edges[1, todo]]
    nn = np.linalg.norm(n, axis=0)
    ok = nn > 0
    todo, n = todo[ok], n[:, ok] / nn[ok]
    m0, delta = mid[:, todo], 0.5 * length[todo]

    def inside(s):
        return _inside(geom, (m0 + s * n).T)

    lo, hi = -delta, delta.copy()
    bracket = inside(lo) & ~inside(hi)
    for _ in range(52):
        s = 0.5 * (lo + hi)
        ins = inside(s)
        lo = np.where(ins, s, lo)
        hi = np.where(ins, hi, s)
    shift = np.where(bracket, 0.5 * (lo + hi), 0.0)
    shift[np.abs(shift) > 0.25 * length[todo]] = 0.0  # not this edge's piece of boundary
    scale = float(np.max(np.ptp(p, axis=1)))
    if not np.any(np.abs(shift) > 1e-12 * scale):
        return None
    # P2 node locations of the straight mesh (numbered like skfem numbers mesh2's dofs: the same
    # t gives the same edges/facets), then the boundary midpoints moved onto the boundary.
    skfem = _skfem()
    elem = mesh2_cls.elem()
    numbering = skfem.Dofs(mesh1, elem)
    element_dofs = numbering.element_dofs
    dofs = getattr(numbering, which)[0]
    ents = mesh1.facets if which == "facet_dofs" else mesh1.edges
    doflocs = np.zeros((dim, int(element_dofs.max()) + 1))
    doflocs[:, : mesh1.nvertices] = p
    doflocs[:, dofs] = 0.5 * (p[:, ents[0]] + p[:, ents[1]])
    edge_dof = dofs[edge_ids[todo]]
    doflocs[:, edge_dof] = m0 + shift * n
    # Undo moves that fold or squash an element.
    touched = np.nonzero(np.isin(element_dofs, edge_dof).any(axis=0))[0]
    det_affine = mesh1._mapping().detA
    for _ in range(4):
        bad = _folded_elements(doflocs, element_dofs, elem, touched, det_affine, dim)
        if len(bad) == 0:
            return mesh2_cls(doflocs, mesh1.t)
        undo = np.isin(edge_dof, element_dofs[:, bad])
        doflocs[:, edge_dof[undo]] = m0[:, undo]
    return None


def _folded_elements(doflocs, element_dofs, elem, tind, det_affine, dim):
    """Elements (of tind) whose quadratic map is folded or squashed at the nodes / centroid.

    The Jacobian determinant is compared with the straight element's (whose sign follows the
    vertex order, which skfem sorts): a ratio below 0.1 means the moved midpoints nearly
    collapse the element.
    """
    ref = np.concatenate([elem.doflocs, np.full((1, dim), 1.0 / (dim + 1))]).T  # (d, nq)
    J = np.zeros((dim, dim, len(tind), ref.shape[1]))
    for k in range(element_dofs.shape[0]):
        _, dphi = elem.lbasis(ref, k)  # (d, nq)
        J += doflocs[:, element_dofs[k, tind]][:, None, :, None] * dphi[None, :, None, :]
    det = np.linalg.det(np.moveaxis(J, (0, 1), (2, 3)))  # (len(tind), nq)
    return tind[np.any(det / det_affine[tind, None] < 0.1, axis=1)]


# ----------------------------------------------------------------------------------------------
# the solution
# ----------------------------------------------------------------------------------------------
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
                out = out + _value(phi)[:, 0] * coef[k]
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


# ----------------------------------------------------------------------------------------------
# solve
# ----------------------------------------------------------------------------------------------
def _linear_solve(A, b, dim):
    """Solve the SPD system: sparse LU (minimum-degree ordering) in 1-D/2-D, Jacobi-CG in 3-D.

    (Measured on 2 cores: 2-D P2 with 300k unknowns, LU 4 s vs CG 35 s; 3-D P2 with 30k
    unknowns, LU 12-37 s vs CG under 1 s.)
    """
    import scipy.sparse.linalg as spl

    A = A.tocsr()
    if dim < 3:
        return spl.spsolve(A.tocsc(), b, permc_spec="MMD_AT_PLUS_A")
    return _jacobi_cg(A, b, rtol=1e-11)


def _dot(a, b) -> float:
    # einsum, not BLAS ddot: a multithreaded OpenBLAS can spend milliseconds per call on small
    # vectors when cores are oversubscribed, and CG makes two per iteration.
    return float(np.einsum("i,i->", a, b))


def _jacobi_cg(A, b, rtol):
    """Conjugate gradients with a diagonal preconditioner, to ||r|| <= rtol ||b||."""
    inv_diag = 1.0 / A.diagonal()
    x = np.zeros_like(b)
    r = b.copy()
    z = inv_diag * r
    p = z.copy()
    rz = _dot(r, z)
    stop = rtol * math.sqrt(_dot(b, b))
    for _ in range(10 * len(b) + 100):
        if math.sqrt(_dot(r, r)) <= stop:
            return x
        Ap = A @ p
        alpha = rz / _dot(p, Ap)
        x += alpha * p
        r -= alpha * Ap
        z = inv_diag * r
        rz, rz_old = _dot(r, z), rz
        p = z + (rz / rz_old) * p
    raise FEMError(f"the FEM linear solve did not converge ({len(b)} unknowns): try a larger h")


def solve_fem(problem, h: float) -> FEMSolution:
    """P2 finite-element solution of the Dirichlet problem on a mesh of size ``h``.

    ``problem`` needs ``dim``, ``geometry`` (DeepXDE), ``boundary_kind == "dirichlet"``, ``f``
    (or ``f_numpy``) and the Dirichlet data ``g`` (``None``: the exact ``u`` if given, else 0).
    Raises :class:`FEMError` for other boundary conditions, d > 3, a bad ``h`` or non-finite
    data.
    """
    dim = _check_problem(problem)
    skfem = _skfem()
    f_fn = _source(problem, dim)
    if _general(problem) and (problem.boundary_kind != "dirichlet" or problem.has_coefficient
                              or problem.has_reaction or len({id(c) for c in problem.conditions}) > 1):
        return _solve_general(problem, h, dim, f_fn)
    g_fn = _dirichlet_data(problem, dim)
    mesh, elem, mesh1, curved = _build_mesh(problem.geometry, h, dim)
    basis = skfem.Basis(mesh, elem, intorder=6 if dim < 3 else 4)

    @skfem.BilinearForm
    def laplace(u, v, w):
        return sum(u.grad[i] * v.grad[i] for i in range(dim))

    # f at the quadrature points, evaluated once (the form is called with w.x of that shape).
    xq = _value(basis.global_coordinates())  # (d, nel, nq)
    fq = _evaluate(f_fn, xq.reshape(dim, -1).T, "f").reshape(xq.shape[1:])

    @skfem.LinearForm
    def load(v, w):
        return w["f"] * v

    A = laplace.assemble(basis)
    b = load.assemble(basis, f=fq)
    D = basis.get_dofs().flatten()
    u = np.zeros(basis.N)
    u[D] = _evaluate(g_fn, basis.doflocs[:, D].T, "g")
    I = np.setdiff1d(np.arange(basis.N), D)
    if len(I):
        rhs = b[I] - A[I][:, D] @ u[D]
        u[I] = _linear_solve(A[I][:, I], rhs, dim)
    return FEMSolution(h=float(h), n_dofs=int(basis.N), basis=basis, x=u, mesh=mesh,
                       curved=curved, _vertex_mesh=mesh1)


def _solve_general(problem, h, dim, f_fn) -> FEMSolution:
    """P2 solution of -div(a grad u) + c u = f with Dirichlet, Neumann and Robin parts."""
    skfem = _skfem()
    mesh, elem, mesh1, curved = _build_mesh(problem.geometry, h, dim)
    order = 6 if dim < 3 else 4
    basis = skfem.Basis(mesh, elem, intorder=order)
    xq = _value(basis.global_coordinates())  # (d, nel, nq)
    pts = xq.reshape(dim, -1).T
    fq = _evaluate(f_fn, pts, "f").reshape(xq.shape[1:])
    aq = _evaluate(problem.a_numpy, pts, "a").reshape(xq.shape[1:])
    cq = _evaluate(problem.c_numpy, pts, "c").reshape(xq.shape[1:])

    @skfem.BilinearForm
    def operator(u, v, w):
        return w["a"] * sum(u.grad[i] * v.grad[i] for i in range(dim)) + w["c"] * u * v

    @skfem.LinearForm
    def load(v, w):
        return w["f"] * v

    A = operator.assemble(basis, a=aq, c=cq)
    b = load.assemble(basis, f=fq)
    # boundary facets and their parts (nearest part to the facet's centroid)
    bf = mesh1.boundary_facets()
    if dim == 1:
        centroid = mesh1.p[:, mesh1.facets[0, bf]].T
    else:
        centroid = mesh1.p[:, mesh1.facets[:, bf]].mean(axis=1).T
    part = problem.part_of(centroid)
    by_cond: dict = {}
    for k, cond in enumerate(problem.conditions):
        if cond is not None:
            by_cond.setdefault(id(cond), (cond, []))[1].append(k)
    u = np.zeros(basis.N)
    D_all = []

    @skfem.BilinearForm
    def robin(u_, v, w):
        return w["alpha"] * u_ * v

    @skfem.LinearForm
    def flux(v, w):
        return w["h"] * v

    for cond, ks in by_cond.values():
        facets = bf[np.isin(part, ks)]
        if len(facets) == 0:
            continue
        if cond.kind == "dirichlet":
            D = basis.get_dofs(facets=facets).flatten()
            u[D] = _evaluate(cond.g_numpy, basis.doflocs[:, D].T, f"g of {cond.where}")
            D_all.append(D)
            continue
        fb = skfem.FacetBasis(mesh, elem, facets=facets, intorder=order)
        xf = _value(fb.global_coordinates())  # (d, nf, nq)
        fpts = xf.reshape(dim, -1).T
        nf = np.asarray(fb.normals).reshape(dim, -1).T
        hq = _evaluate(lambda X: cond.h_numpy(X, nf), fpts, f"h of {cond.where}")
        b = b + flux.assemble(fb, h=hq.reshape(xf.shape[1:]))
        if cond.kind == "robin":
            alq = _evaluate(cond.alpha_numpy, fpts, f"alpha of {cond.where}")
            A = A + robin.assemble(fb, alpha=alq.reshape(xf.shape[1:]))
    D = np.unique(np.concatenate(D_all)) if D_all else np.zeros(0, dtype=np.int64)
    I = np.setdiff1d(np.arange(basis.N), D)
    if len(I):
        rhs = b[I] - A[I][:, D] @ u[D] if len(D) else b[I]
        u[I] = _linear_solve(A[I][:, I], rhs, dim)
    return FEMSolution(h=float(h), n_dofs=int(basis.N), basis=basis, x=u, mesh=mesh,
                       curved=curved, _vertex_mesh=mesh1)


# ----------------------------------------------------------------------------------------------
# reference by refinement
# ----------------------------------------------------------------------------------------------
def _bbox(geom, dim):
    try:
        lo, hi = (np.asarray(v, dtype=np.float64).reshape(-1) for v in geom.bbox)
    except (AttributeError, TypeError, ValueError):
        raise FEMError(f"the {type(geom).__name__} geometry has no bbox: cannot pick h") from None
    if lo.shape != (dim,) or hi.shape != (dim,) or not np.all(np.isfinite(hi - lo)):
        raise FEMError(f"the geometry's bounding box {geom.bbox!r} is not a finite {dim}-D box")
    return lo, hi


def _sample_points(geom, dim, n=_N_SAMPLES, seed=0):
    """n fixed points inside the domain (uniform in its bounding box, rejection sampled)."""
    lo, hi = _bbox(geom, dim)
    rng = np.random.default_rng(seed)
    pts = []
    count = 0
    for _ in range(64):
        c = lo + (hi - lo) * rng.random((4 * n, dim))
        keep = _inside(geom, c) & ~_on_boundary(geom, c)
        pts.append(c[keep])
        count += int(keep.sum())
        if count >= n:
            break
    pts = np.concatenate(pts)[:n]
    if len(pts) == 0:
        raise FEMError("no sample points found inside the domain: is it empty?")
    return pts


def _rel_diff(a, b):
    num = float(np.linalg.norm(a - b))
    den = float(np.linalg.norm(b))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def fem_reference(problem, *, h0: float | None = None, tol: float | None = None,
                  max_refinements: int = 4) -> FEMSolution:
    """A P2 reference solution refined until successive levels agree to ``tol``.

    Starts at ``h0`` (default: bounding-box diameter / 16 in 2-D, / 6 in 3-D, / 32 in 1-D) and
    halves ``h`` (remeshing, so curved boundaries are followed more closely) until the relative
    L2 difference of two successive solutions at 4000 fixed points inside the domain is below
    ``tol`` (default 1e-4), ``max_refinements`` halvings were made, or the next level would
    exceed :data:`DOF_CAP` unknowns. Returns the finest solution with ``estimated_rel_error``
    (that last difference; ``nan`` without any refinement), ``converged``, ``stop_reason`` and
    ``history`` set.
    """
    dim = _check_problem(problem)
    tol = 1e-4 if tol is None else float(tol)
    if not (math.isfinite(tol) and tol > 0):
        raise FEMError(f"tol={tol!r} must be a finite number > 0")
    if isinstance(max_refinements, bool) or int(max_refinements) != max_refinements \
            or max_refinements < 0:
        raise FEMError(f"max_refinements={max_refinements!r} must be an integer >= 0")
    if h0 is None:
        lo, hi = _bbox(problem.geometry, dim)
        h0 = float(np.linalg.norm(hi - lo)) / _H0_DIVISOR[dim]
        if dim == 3 and _general(problem) and type(problem.shape).__name__ == "_Box":
            # structured box mesh: h = extent / n with n doubling at each refinement, so that
            # planes at simple fractions (coefficient jumps such as z = 1/2) stay mesh faces
            extent = float(np.max(hi - lo))
            h0 = extent / math.ceil(extent / h0 - 1e-9)
    samples = _sample_points(problem.geometry, dim)

    h = float(h0)
    sol = solve_fem(problem, h)
    vals = sol.u(samples)
    history = [{"h": h, "n_dofs": sol.n_dofs, "rel_change": math.nan}]
    est, reason = math.nan, "max_refinements"
    for _ in range(int(max_refinements)):
        if sol.n_dofs * 2 ** dim > DOF_CAP[dim]:
            reason = "dof_cap"
            break
        h /= 2
        new = solve_fem(problem, h)
        new_vals = new.u(samples)
        est = _rel_diff(vals, new_vals)
        history.append({"h": h, "n_dofs": new.n_dofs, "rel_change": est})
        sol, vals = new, new_vals
        if est < tol:
            reason = "tol"
            break
    sol.estimated_rel_error = est
    sol.converged = bool(est < tol)
    sol.stop_reason = reason
    sol.history = history
    return sol


# ----------------------------------------------------------------------------------------------
# errors against an exact solution
# ----------------------------------------------------------------------------------------------
def fem_errors(sol: FEMSolution, u_exact: Callable, grad_exact: Callable | None = None,
               intorder: int = 8) -> dict:
    """L2 and H1-seminorm errors of ``sol`` against numpy functions on the mesh, by quadrature.

    ``u_exact(X)`` maps (n, d) -> (n,), ``grad_exact(X)`` (n, d) -> (n, d). Returns
    ``{"l2", "l2_rel"}`` plus ``{"h1", "h1_rel"}`` (seminorm) with a gradient.
    """
    skfem = _skfem()
    basis = skfem.Basis(sol.mesh, sol.basis.elem, intorder=intorder)
    uh = basis.interpolate(sol.x)
    xq = _value(basis.global_coordinates())
    d = xq.shape[0]
    pts = xq.reshape(d, -1).T
    dx = basis.dx
    ue = np.asarray(u_exact(pts), dtype=np.float64).reshape(dx.shape)
    out = {
        "l2": math.sqrt(float(np.sum((_value(uh) - ue) ** 2 * dx))),
        "l2_rel": math.sqrt(float(np.sum((_value(uh) - ue) ** 2 * dx) / np.sum(ue ** 2 * dx))),
    }
    if grad_exact is not None:
        ge = np.asarray(grad_exact(pts), dtype=np.float64).T.reshape(uh.grad.shape)
        e2 = float(np.sum(np.sum((uh.grad - ge) ** 2, axis=0) * dx))
        out["h1"] = math.sqrt(e2)
        out["h1_rel"] = math.sqrt(e2 / float(np.sum(np.sum(ge ** 2, axis=0) * dx)))
    return out
