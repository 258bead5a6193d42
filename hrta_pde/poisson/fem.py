"""Finite-element reference solutions of Poisson problems ``-div(a grad u) + c u = f``.

The operator's coefficients ``a`` and ``c`` (piecewise ones included) enter the stiffness and mass
forms at the quadrature points; boundary data per part: Dirichlet ``u = g`` on the degrees of
freedom of the Dirichlet facets, Neumann ``a du/dn = h`` as the load ``int h v``, Robin
``a du/dn + alpha u = h`` as ``int alpha u v`` in the matrix and ``int h v`` in the load, over the
boundary facets of each part (a facet's part: the one nearest to its centroid).

For problems without a closed-form solution the error of a neural solver is measured against a
P2 finite-element solution computed with scikit-fem (an optional dependency:
``pip install scikit-fem``):

* :func:`solve_fem` meshes the exact shape ``problem.shape`` with
  :func:`hrta_pde.poisson.mesh.mesh_shape` at mesh size ``h`` (1-D lines, 2-D triangles, 3-D tetrahedra), assembles the stiffness matrix and the load
  ``(f, v)`` with quadrature of order 6 (order 4 in 3-D), puts the Dirichlet data ``g`` on every
  boundary degree of freedom (vertices *and* the edge-midpoint nodes of P2) and solves.
  Curved boundaries: the mesh's boundary vertices lie on the boundary curve/surface; the
  midpoint nodes of boundary edges are moved onto it too (by bisection with the shape's exact
  ``inside`` along the outward normal; :mod:`hrta_pde.poisson.fem_mesh`), which makes the
  boundary elements quadratic (isoparametric, skfem's ``MeshTri2``/``MeshTet2``) and keeps P2's third order in L2.
  Straight-sided domains (polygons, boxes) keep the affine P2 mesh.
* :func:`fem_reference` refines ``h`` by halves until two successive solutions agree to a
  relative L2 difference ``tol`` at a fixed set of sample points, or the refinement budget / a
  cap on the number of unknowns is reached; the last difference is kept in
  :attr:`FEMSolution.estimated_rel_error`. It overestimates the finer solution's error: with
  P2's third order that error is about 1/7 of the difference for a smooth solution.
* :meth:`FEMSolution.u` and :meth:`FEMSolution.grad` evaluate the solution and its gradient at
  arbitrary points (:mod:`hrta_pde.poisson.fem_solution`); a point outside the mesh gets the
  polynomial of the nearest element, so points far outside the domain get an extrapolated
  value: pass points of the domain.
* :func:`fem_errors` integrates the L2 and H1-seminorm errors against an exact solution.

Problems in 1-D, 2-D and 3-D with a Dirichlet or Robin part or ``c != 0`` are supported (a pure
Neumann problem with ``c = 0`` determines ``u`` only up to a constant and is refused with
:class:`FEMUnsupported`, as are other dimensions); anything else raises :class:`FEMError` with a
one-line message. Solutions are reference data: ``u``/``grad`` do not
propagate autograd gradients.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from hrta_pde.poisson.fem_mesh import build_mesh
from hrta_pde.poisson.fem_solution import FEMError, FEMSolution, FEMUnsupported, import_skfem, one_line, value
from hrta_pde.poisson.geometry import Box

__all__ = [
    "FEMError",
    "FEMUnsupported",
    "FEMSolution",
    "solve_fem",
    "fem_reference",
    "fem_errors",
    "DOF_CAP",
]

# Largest number of unknowns fem_reference refines to (a direct sparse solve stays a few seconds in
# 1-D and 2-D; in 3-D the unit cube's 32^3 P2 level, 274625 unknowns, took 24 s on one core, and
# the 16^3 level's estimate of poisson_3d_layers, 4.8e-3, became 6.9e-4).
DOF_CAP = {1: 200_000, 2: 300_000, 3: 300_000}
# Default initial mesh size: bounding-box diameter / this.
_H0_DIVISOR = {1: 32, 2: 16, 3: 6}
_N_SAMPLES = 4000
# The fix named when the system or its solution leaves float64 (a = 1e300, a = 1e-300).
_OUT_OF_RANGE = ("the coefficients a, c or the data are too large or too small for float64; rescale the "
                 "problem (multiply a and c, or f and the boundary data, by a common factor)")


# ----------------------------------------------------------------------------------------------
# problem data
# ----------------------------------------------------------------------------------------------
def _general(problem) -> bool:
    """Whether the problem carries per-part boundary conditions (a PoissonProblem)."""
    return bool(getattr(problem, "conditions", ())) and hasattr(problem, "part_of")


def _check_problem(problem) -> int:
    """The dimension of a problem that has a FEM reference; :class:`FEMUnsupported` if it has none."""
    kind = getattr(problem, "boundary_kind", "dirichlet")
    name = getattr(problem, "name", None)
    which = f"problem {name!r}" if name else "this problem"
    if _general(problem) and getattr(problem, "pure_neumann", False):
        raise FEMUnsupported(f"no FEM reference: {which} has neumann conditions on the whole boundary "
                             "and c = 0, so u is unique only up to a constant: compare against its "
                             "exact solution u instead, or give a part a dirichlet or robin condition",
                             "pure_neumann")
    if kind != "dirichlet" and not _general(problem):
        raise FEMUnsupported(
            f"the FEM reference supports Dirichlet problems only; {which} has {kind} boundary "
            "conditions: compare against its exact solution u instead", "boundary")
    dim = getattr(problem, "dim", None)
    if dim is None:
        dim = getattr(problem.shape, "dim", None)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise FEMError(f"problem dimension {dim!r} is not an integer")
    dim = int(dim)
    if not 1 <= dim <= 3:
        raise FEMUnsupported(
            f"the FEM reference meshes 1-, 2- and 3-D domains only; this problem is {dim}-D: "
            "give an exact solution u instead", "dimension")
    return dim


def _as_numpy_fn(expr, dim, what) -> Callable[[np.ndarray], np.ndarray]:
    from hrta_pde.poisson.expressions import to_numpy

    try:
        return to_numpy(expr, dim)
    except ValueError as err:
        raise FEMError(f"cannot evaluate {what} for the FEM reference: {one_line(err)}") from None


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
# solve
# ----------------------------------------------------------------------------------------------
def _linear_solve(A, b, dim):
    """Solve the SPD system: sparse LU (minimum-degree ordering) in 1-D/2-D, Jacobi-CG in 3-D.

    (Measured on 2 cores: 2-D P2 with 300k unknowns, LU 4 s vs CG 35 s; 3-D P2 with 30k
    unknowns, LU 12-37 s vs CG under 1 s.)
    """
    import warnings

    import scipy.sparse.linalg as spl

    A = A.tocsr()
    with warnings.catch_warnings():  # a singular matrix shows as a non-finite solution, refused below
        warnings.simplefilter("ignore")
        x = spl.spsolve(A.tocsc(), b, permc_spec="MMD_AT_PLUS_A") if dim < 3 else _jacobi_cg(A, b, rtol=1e-11)
    if not np.all(np.isfinite(x)):
        raise FEMError(f"the finite element system has no finite solution: {_OUT_OF_RANGE}")
    return x


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


def _singular(problem, dim):
    """The points where ``u`` is singular (2-D; the mesh is graded towards them), or none; with
    the right-angled corners where ``u ~ r^2 log r`` (the torsion square: estimated error 3.4e-5
    with 11185 unknowns graded, 6.9e-5 with 9629 not)."""
    find = getattr(problem, "_singular_points", None)
    if dim != 2 or find is None:
        return ()
    points = find()
    from hrta_pde.poisson.singular import log_corner_features

    logs = [f.v for f in log_corner_features(problem, list(points))]
    return np.concatenate([np.asarray(points, dtype=np.float64).reshape(-1, 2), np.array(logs).reshape(-1, 2)]) if logs else points


def _axis_lines(problem, dim):
    """``(xs, ys)`` of a 2-D box problem whose interfaces of ``a`` are all lines ``x = c`` or
    ``y = c`` (the mesh is then a tensor grid along them), else None."""
    if dim != 2 or type(problem.shape).__name__ != "Box" or not hasattr(problem, "a_numpy"):
        return None
    from hrta_pde.poisson.singular import _linear_levels

    levels = _linear_levels(problem)
    if not levels:
        return None
    lines = ([], [])
    for _, g, c in levels:
        axis = int(np.argmax(np.abs(g)))
        if abs(g[1 - axis]) > 1e-14 * abs(g[axis]):
            return None  # a slanted interface: the general mesh
        lines[axis].append(-c / g[axis])
    return lines


def solve_fem(problem, h: float) -> FEMSolution:
    """P2 finite-element solution of the Dirichlet problem on a mesh of size ``h``.

    ``problem`` needs ``dim``, ``shape`` (:mod:`hrta_pde.poisson.geometry`), ``boundary_kind ==
    "dirichlet"``, ``f`` (or ``f_numpy``) and the Dirichlet data ``g`` (``None``: the exact ``u`` if given, else 0).
    Raises :class:`FEMError` for other boundary conditions, d > 3, a bad ``h`` or non-finite
    data.
    """
    dim = _check_problem(problem)
    skfem = import_skfem()
    f_fn = _source(problem, dim)
    if _general(problem) and (problem.boundary_kind != "dirichlet" or problem.has_coefficient
                              or problem.has_reaction or len({id(c) for c in problem.conditions}) > 1):
        return _solve_general(problem, h, dim, f_fn)
    g_fn = _dirichlet_data(problem, dim)
    mesh, elem, mesh1, curved = build_mesh(problem.shape, h, dim, _singular(problem, dim), _axis_lines(problem, dim))
    basis = skfem.Basis(mesh, elem, intorder=6 if dim < 3 else 4)

    @skfem.BilinearForm
    def laplace(u, v, w):
        return sum(u.grad[i] * v.grad[i] for i in range(dim))

    # f at the quadrature points, evaluated once (the form is called with w.x of that shape).
    xq = value(basis.global_coordinates())  # (d, nel, nq)
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
    skfem = import_skfem()
    mesh, elem, mesh1, curved = build_mesh(problem.shape, h, dim, _singular(problem, dim), _axis_lines(problem, dim))
    order = 6 if dim < 3 else 4
    basis = skfem.Basis(mesh, elem, intorder=order)
    xq = value(basis.global_coordinates())  # (d, nel, nq)
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
        xf = value(fb.global_coordinates())  # (d, nf, nq)
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
def _sample_points(shape, n=_N_SAMPLES, seed=0):
    """n fixed points strictly inside the domain (uniform in its bounding box, rejection sampled)."""
    lo, hi = shape.lo, shape.hi
    rng = np.random.default_rng(seed)
    pts = []
    count = 0
    for _ in range(64):
        c = lo + (hi - lo) * rng.random((4 * n, shape.dim))
        keep = shape.classify(c) == -1
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
        lo, hi = problem.shape.lo, problem.shape.hi
        h0 = float(np.linalg.norm(hi - lo)) / _H0_DIVISOR[dim]
        if dim == 3 and _general(problem) and isinstance(problem.shape, Box):
            # structured box mesh: h = extent / n with n doubling at each refinement, so that
            # planes at simple fractions (coefficient jumps such as z = 1/2) stay mesh faces
            extent = float(np.max(hi - lo))
            h0 = extent / math.ceil(extent / h0 - 1e-9)
    samples = _sample_points(problem.shape)

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
        if math.isnan(est) or not np.all(np.isfinite(new_vals)):  # norms of values near 1e300 overflow
            raise FEMError("the finite element solution overflows float64 (|u| up to "
                           f"{float(np.nanmax(np.abs(new_vals))):.1e}): {_OUT_OF_RANGE}")
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
    skfem = import_skfem()
    basis = skfem.Basis(sol.mesh, sol.basis.elem, intorder=intorder)
    uh = basis.interpolate(sol.x)
    xq = value(basis.global_coordinates())
    d = xq.shape[0]
    pts = xq.reshape(d, -1).T
    dx = basis.dx
    ue = np.asarray(u_exact(pts), dtype=np.float64).reshape(dx.shape)
    out = {
        "l2": math.sqrt(float(np.sum((value(uh) - ue) ** 2 * dx))),
        "l2_rel": math.sqrt(float(np.sum((value(uh) - ue) ** 2 * dx) / np.sum(ue ** 2 * dx))),
    }
    if grad_exact is not None:
        ge = np.asarray(grad_exact(pts), dtype=np.float64).T.reshape(uh.grad.shape)
        e2 = float(np.sum(np.sum((uh.grad - ge) ** 2, axis=0) * dx))
        out["h1"] = math.sqrt(e2)
        out["h1_rel"] = math.sqrt(e2 / float(np.sum(np.sum(ge ** 2, axis=0) * dx)))
    return out

