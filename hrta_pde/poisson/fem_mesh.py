"""The meshes of the FEM reference: a conforming simplex mesh of the exact shape
(:func:`hrta_pde.poisson.mesh.mesh_shape`) and, where the boundary is curved, the quadratic
(isoparametric) mesh whose boundary-edge midpoints lie on the boundary.

The midpoint nodes of boundary edges are moved onto the boundary by bisection with the shape's
exact membership along the outward normal, which makes the boundary elements quadratic (skfem's
``MeshTri2``/``MeshTet2``) and keeps P2's third order in L2. Straight-sided domains (polygons,
boxes) keep the affine P2 mesh.
"""
from __future__ import annotations

import math

import numpy as np

from hrta_pde.poisson.fem_solution import FEMError, import_skfem, one_line
from hrta_pde.poisson.mesh import mesh_shape
from hrta_pde.poisson.quadrature import _triangle_distance

__all__ = ["build_mesh"]


#: Times the triangles near a singular point are refined (:func:`_graded`), and how near.
GRADING_LEVELS = 8
GRADING_RATIO = 1.0


def _graded(mesh1, singular):
    """``mesh1`` (``MeshTri``) refined towards the ``singular`` points: ``GRADING_LEVELS`` times, the
    triangles closer to a point (:func:`hrta_pde.poisson.quadrature._triangle_distance`, 0 for one
    that contains it) than ``GRADING_RATIO`` times their longest edge are refined (skfem's
    conforming red-green-blue refinement: edges are split at their
    midpoints, so lines of the mesh, such as the interfaces of a coefficient, stay lines of it).
    With ``u ~ r^lam`` at a point, P2 on a uniform mesh converges in L2 like ``h^(2 lam)`` only."""
    pts = np.asarray(singular, dtype=np.float64).reshape(-1, 2)
    if not len(pts):
        return mesh1
    for _ in range(GRADING_LEVELS):
        a, b, c = (mesh1.p[:, mesh1.t[k]].T for k in range(3))
        size = np.max([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1)], axis=0)
        dist = np.min([_triangle_distance(a, b, c, q) for q in pts], axis=0)
        marked = np.nonzero(dist < GRADING_RATIO * size)[0]
        if not len(marked):
            break
        mesh1 = mesh1.refined(marked)
    return mesh1


def _tensor_axis(lo, hi, h, cuts):
    """Grid lines from ``lo`` to ``hi`` about ``h`` apart that include every value of ``cuts``: the
    uniform lines, less those within ``h/4`` of a cut, plus the cuts."""
    n = max(1, math.ceil((hi - lo) / h - 1e-9))
    uniform = np.linspace(lo, hi, n + 1)
    cuts = np.array([c for c in cuts if lo + 1e-12 < c < hi - 1e-12], dtype=np.float64)
    if len(cuts):
        uniform = uniform[np.min(np.abs(uniform[:, None] - cuts[None, :]), axis=1) >= h / 4]
        uniform = np.union1d(uniform, [lo, hi])
    return np.union1d(uniform, cuts)


def build_mesh(shape, h, dim, singular=(), lines=None):
    """(skfem mesh, P2 element, straight vertex mesh, curved?) for the domain at mesh size h;
    in 2-D graded towards the ``singular`` points (k, 2) (:func:`_graded`). ``lines``: for a 2-D
    box, ``(xs, ys)`` coordinates of interfaces along the axes; the mesh is then a tensor grid
    whose lines include them (a coefficient that jumps inside a triangle costs P2 its order: on
    the hexagonal mesh of :func:`hrta_pde.poisson.mesh.mesh_shape` it converged like ``h``)."""
    fem = import_skfem()
    if dim == 2 and lines is not None and type(shape).__name__ == "Box":
        axes = [_tensor_axis(float(shape.lo[i]), float(shape.hi[i]), h, lines[i]) for i in range(2)]
        mesh1 = _graded(fem.MeshTri.init_tensor(*axes), singular)
        return mesh1, fem.ElementTriP2(), mesh1, False
    try:
        mm = mesh_shape(shape, h)
    except ValueError as err:  # MeshError
        raise FEMError(f"cannot mesh the domain for the FEM reference: {one_line(err)}") from None
    p = np.ascontiguousarray(np.asarray(mm.points, dtype=np.float64)[:, :dim].T)
    t = np.ascontiguousarray(np.asarray(mm.cells[0].data, dtype=np.int64).T)
    if dim == 1:
        mesh1 = fem.MeshLine(p, t)
        return mesh1, fem.ElementLineP2(), mesh1, False
    if dim == 2:
        mesh1 = _graded(fem.MeshTri(p, t), singular)
        mesh2_cls, elem = fem.MeshTri2, fem.ElementTriP2()
        edges = mesh1.facets[:, mesh1.boundary_facets()]
        edge_ids = mesh1.boundary_facets()
        which = "facet_dofs"
    else:
        mesh1 = fem.MeshTet(p, t)
        mesh2_cls, elem = fem.MeshTet2, fem.ElementTetP2()
        edge_ids = mesh1.boundary_edges()
        edges = mesh1.edges[:, edge_ids]
        which = "edge_dofs"
    mesh2 = _curved_mesh(shape, mesh1, mesh2_cls, edges, edge_ids, which, dim)
    if mesh2 is None:
        return mesh1, elem, mesh1, False
    return mesh2, elem, mesh1, True


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


def _curved_mesh(shape, mesh1, mesh2_cls, edges, edge_ids, which, dim):
    """A quadratic mesh with boundary-edge midpoints on the boundary, or None if all straight."""
    if edges.shape[1] == 0:
        return None
    p = mesh1.p
    mid = 0.5 * (p[:, edges[0]] + p[:, edges[1]])  # (d, m)
    length = np.linalg.norm(p[:, edges[1]] - p[:, edges[0]], axis=0)
    on = shape.on_boundary(mid.T)
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
        return shape.inside((m0 + s * n).T)

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
    elem = mesh2_cls.elem()
    numbering = import_skfem().Dofs(mesh1, elem)
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

