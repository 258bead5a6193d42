"""Export a trained solution: a mesh file for ParaView (meshio) or, for d > 3, a CSV of points.

Point data: ``u`` (prediction), ``grad_u``; with an exact solution also ``u_exact``, ``error``
(``u - u_exact``) and ``grad_u_exact``; and ``f``. Field data (VTU): the errors and the loss.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hrta_pde.io.meshfiles import MeshError, write_mesh, write_points_csv
from hrta_pde.poisson.mesh import mesh_shape
from hrta_pde.poisson.metrics import net_values

MESH_SUFFIXES = (".vtu", ".xdmf", ".xmf", ".vtk", ".msh", ".mesh", ".med", ".ply", ".stl", ".off", ".obj")


def check_resolution(h) -> None:
    if h is not None and not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise MeshError(f"resolution h={h!r} must be a positive number (a mesh size)")


def check_export_targets(targets, problem, h=None) -> None:
    """Refuse bad export targets before any training (one line naming the file and the fix)."""
    check_resolution(h)
    for target in targets:
        suffix = Path(target).suffix.lower()
        if suffix == ".csv":
            continue
        if suffix not in MESH_SUFFIXES:
            raise MeshError(f"cannot export to {target!r}: unknown suffix {suffix or '(none)'}; "
                            "use .vtu (ParaView), .xdmf, .vtk or .csv")
        if problem.dim > 3:
            raise MeshError(f"cannot export {target!r}: no mesh for a {problem.dim}-dimensional domain "
                            "(meshes stop at 3-D); export point values with a .csv file instead")
        parent = Path(target).parent
        if str(parent) not in ("", ".") and not parent.is_dir():
            raise MeshError(f"cannot export to {target!r}: folder {str(parent)!r} does not exist")
    if any(Path(t).suffix.lower() in MESH_SUFFIXES for t in targets):
        # the mesh now, not after the training: an h too small or too large for this domain is
        # refused before any work (the mesh is kept for the export)
        mesh_shape(problem.shape, default_resolution(problem) if h is None else h, keep=True)


def default_resolution(problem) -> float:
    """Mesh size: the bounding box diagonal / 40 (2-D), / 15 (3-D), / 400 (1-D)."""
    diameter = float(np.linalg.norm(problem.shape.hi - problem.shape.lo))
    return diameter / {1: 400, 2: 40, 3: 15}.get(problem.dim, 10)


def point_fields(net, problem, points: np.ndarray) -> dict[str, np.ndarray]:
    """Prediction, gradient and (if known) exact values at ``points`` (n, d)."""
    p = next(net.parameters())
    xd = torch.as_tensor(points, dtype=p.dtype, device=p.device)
    u, g = net_values(net, xd)
    out = {"u": u.cpu().numpy(), "grad_u": g.cpu().numpy()}
    if problem.has_exact:
        ue = problem.u_torch(xd).detach().cpu().numpy()
        out["u_exact"] = ue
        out["error"] = out["u"] - ue
        out["grad_u_exact"] = problem.grad_u_torch(xd).detach().cpu().numpy()
    out["f"] = problem.f_torch(xd).detach().cpu().numpy()
    return out


def export_solution(net, problem, target, *, h: float | None = None, metrics: dict | None = None,
                    config=None, run_dir: Path | None = None, n_csv: int = 10000) -> Path:
    """Write ``net``'s solution of ``problem`` to ``target`` (format from the suffix).

    A bare file name (no folder) is written into ``run_dir`` when one is given.
    """
    target = Path(target)
    if run_dir is not None and str(target.parent) in ("", "."):
        target = Path(run_dir) / target.name
    check_export_targets([str(target)], problem, h)
    metrics = metrics or {}
    if target.suffix.lower() == ".csv":
        gen = torch.Generator().manual_seed(12345)
        p = next(net.parameters())
        x = problem.sample_interior(n_csv, generator=gen, sampler="random", dtype=p.dtype,
                                    device=p.device).detach().cpu().numpy()
        return write_points_csv(x, target, point_fields(net, problem, x))
    check_resolution(h)
    h = default_resolution(problem) if h is None else h
    mesh = mesh_shape(problem.shape, h)
    fields = point_fields(net, problem, np.asarray(mesh.points[:, :problem.dim], dtype=float))
    field_data = None
    if target.suffix.lower() == ".vtu":
        field_data = {k: np.array([float(v)]) for k, v in metrics.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
    return write_mesh(mesh, target, fields, field_data=field_data or None)
