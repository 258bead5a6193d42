"""Mesh files for ParaView and friends, and point clouds as CSV, written atomically.

:func:`write_mesh` writes a :class:`meshio.Mesh` plus point data in any format meshio knows,
chosen by the file suffix (``.vtu`` for ParaView). ``.xdmf``/``.xmf`` is written here, with the
data inline (one self-contained file, no ``.h5`` companion, no h5py needed).
:func:`write_points_csv` writes points and values as CSV (for domains of dimension > 3, which
have no mesh). Both check the target first and write under a temporary name
(:func:`hrta_pde.io.atomic.atomic_write`), so a reader never sees half a file.
"""
from __future__ import annotations

import os
import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import meshio
import numpy as np

from hrta_pde.io.atomic import atomic_write

__all__ = ["MeshError", "write_mesh", "write_points_csv", "COMMON_SUFFIXES"]


class MeshError(ValueError):
    """A mesh cannot be built or written; the message is one line and says what to do."""


COMMON_SUFFIXES = ".vtu (ParaView), .xdmf, .vtk"
_XDMF = (".xdmf", ".xmf")
# Formats that want x, y, z points (meshio would pad them itself, with a console warning; XDMF
# has no "X" geometry). Other formats get the points as they are.
_PAD_TO_3D = {"vtu", "vtk", "vtk42", "vtk51", "xdmf", "gmsh", "gmsh22", "nastran", "avsucd",
              "off", "mdpa", "stl", "permas", "tetgen"}
_VECTORS_3D = {"vtk", "vtk42", "vtk51", "gmsh", "gmsh22"}  # 2-vectors get a zero third component
_PREFERRED = {".msh": "gmsh"}  # meshio lists ansys first for .msh; gmsh is the common one
_MULTI_FILE = {"tetgen"}  # writes companion files named after the target: no temp name


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _check_target(path) -> pathlib.Path:
    path = pathlib.Path(os.fspath(path)).expanduser()
    folder = path.parent
    if path.is_dir():
        raise _cannot(path, f"it is a folder; give a file name such as {path / 'solution.vtu'}")
    if not folder.exists():
        raise _cannot(path, f"folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise _cannot(path, f"{folder} is not a folder; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _cannot(path, f"folder {folder} is not writable; choose another output folder")
    return path


def _cannot(path, why):
    return MeshError(f"cannot write {path}: {why}")


def _as_array(name, value, n, what):
    if not isinstance(name, str) or not name:
        raise MeshError(f"{what} names must be non-empty strings, got {name!r}")
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iuf":
        raise MeshError(f"{what} {name!r} has dtype {arr.dtype}: pass real numbers")
    if n is not None and (arr.ndim not in (1, 2) or arr.shape[0] != n):
        raise MeshError(
            f"{what} {name!r} has shape {arr.shape} but the mesh has {n} points: pass shape "
            f"({n},) or ({n}, k), values at mesh.points"
        )
    return np.ascontiguousarray(arr)


def _atomic(path, write, direct=False):
    """Run ``write(target)`` on a temporary name in the same folder, then rename it to path."""
    if direct:
        try:
            write(path)
        except OSError as err:
            why = _one_line(err.strerror or err)
            raise _cannot(path, f"{why}; choose another output folder") from None
        return path
    try:
        return atomic_write(path, write)
    except OSError as err:
        why = _one_line(err.strerror or err)
        raise _cannot(path, f"{why}; choose another output folder") from None


def write_mesh(mesh: meshio.Mesh, path, point_data: Mapping[str, np.ndarray],
               field_data: Mapping | None = None) -> pathlib.Path:
    """Write ``mesh`` with ``point_data`` (name -> (n,) or (n, k) array) to ``path``.

    The format comes from the suffix: ``.vtu`` (ParaView's native format), ``.xdmf``/``.xmf``
    (written here with the data inline: one self-contained file that ParaView opens; meshio's
    reader still wants h5py installed, although it does not use it for inline data), ``.vtk``,
    ``.msh`` (Gmsh) or anything else meshio writes. 1-D and 2-D points get zero columns for formats
    that need x, y, z (VTK, XDMF, Gmsh, ...); legacy ``.vtk`` and Gmsh also pad 2-component
    vectors to 3 components.
    ``field_data`` (name -> number or numeric array, e.g. ``{"time": 0.5}``) goes into a
    ``<FieldData>`` block, ``.vtu`` only. The file is written under a temporary name in the same
    folder and renamed, so a reader never sees half a file. Returns the path written.
    """
    path = pathlib.Path(os.fspath(path)).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raise MeshError(
            f"{path}: a .csv file holds no cells; use write_points_csv, or {COMMON_SUFFIXES}"
        )
    if suffix in _XDMF:
        fmt = "xdmf"
    elif suffix in _PREFERRED:
        fmt = _PREFERRED[suffix]
    else:
        formats = meshio.extension_to_filetypes.get(suffix)
        if not formats:
            raise MeshError(
                f"unknown mesh file suffix {suffix or '(none)'!r} in {path}: use {COMMON_SUFFIXES} "
                "or another suffix meshio writes"
            )
        fmt = formats[0]
    path = _check_target(path)

    points = np.asarray(mesh.points, dtype=np.float64)
    n = len(points)
    pdata = {k: _as_array(k, v, n, "point data") for k, v in (point_data or {}).items()}
    fdata = {}
    for k, v in (field_data or {}).items():
        fdata[k] = np.atleast_1d(_as_array(k, v, None, "field data"))
        if fdata[k].ndim > 2:
            raise MeshError(
                f"field data {k!r} has shape {fdata[k].shape}: pass a number or a 1-D/2-D array"
            )
    if fdata and fmt != "vtu":
        raise MeshError(
            f"{path}: field_data is stored in .vtu files only; write .vtu, or pass field_data=None"
        )
    if fmt in _PAD_TO_3D and points.shape[1] < 3:
        points = np.hstack([points, np.zeros((n, 3 - points.shape[1]))])
    if fmt in _VECTORS_3D:
        pdata = {k: np.hstack([v, np.zeros((n, 1), v.dtype)]) if v.ndim == 2 and v.shape[1] == 2
                 else v for k, v in pdata.items()}
    cells = [(b.type, np.asarray(b.data)) for b in mesh.cells]

    if fmt == "xdmf":
        return _atomic(path, lambda target: _write_xdmf(target, points, cells, pdata))

    out = meshio.Mesh(points, cells, point_data=pdata)

    def write(target):
        try:
            meshio.write(target, out, file_format=fmt)
        except (meshio.WriteError, ValueError, KeyError, TypeError) as err:
            why = _one_line(err)
            raise MeshError(f"meshio cannot write {path} as {fmt}: {why}; try .vtu") from None
        if fdata:
            _add_vtu_field_data(target, fdata)

    return _atomic(path, write, direct=fmt in _MULTI_FILE)


def _add_vtu_field_data(target, fdata):
    """Insert a <FieldData> block (meshio 5.3 does not write one) into a VTU file."""
    block = ET.Element("FieldData")
    for name, arr in fdata.items():
        vtype = {"f": "Float64", "i": "Int64", "u": "UInt64"}[arr.dtype.kind]
        da = ET.SubElement(block, "DataArray", type=vtype, Name=name,
                           NumberOfTuples=str(arr.shape[0]), format="ascii")
        if arr.ndim == 2:
            da.set("NumberOfComponents", str(arr.shape[1]))
        da.text = " ".join(map(repr if arr.dtype.kind == "f" else str, arr.reshape(-1).tolist()))
    data = pathlib.Path(target).read_bytes()
    tag = b"<UnstructuredGrid>"
    at = data.find(tag)
    if at < 0:
        raise MeshError(f"{target}: no <UnstructuredGrid> in meshio's VTU output for field_data")
    at += len(tag)
    pathlib.Path(target).write_bytes(data[:at] + ET.tostring(block) + data[at:])


def _xdmf_item(parent, arr):
    from meshio.xdmf.common import numpy_to_xdmf_dtype

    if arr.dtype.name not in numpy_to_xdmf_dtype:
        arr = arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64)
    dt, prec = numpy_to_xdmf_dtype[arr.dtype.name]
    item = ET.SubElement(parent, "DataItem", DataType=dt, Dimensions=" ".join(map(str, arr.shape)),
                         Format="XML", Precision=prec)
    # repr() of a Python float is the shortest text that reads back to the same float64 (and a
    # float32 value widened to float64 reads back to the same float32).
    fmt = repr if arr.dtype.kind == "f" else str
    flat = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(-1, 1)
    item.text = "\n" + "\n".join(" ".join(map(fmt, row)) for row in flat.tolist()) + "\n"


def _write_xdmf(target, points, cells, pdata):
    from meshio.xdmf.common import attribute_type, meshio_to_xdmf_type

    if len(cells) != 1:
        raise MeshError(f"{target}: XDMF here takes one cell type, not {len(cells)}; write .vtu")
    ctype, cdata = cells[0]
    if ctype not in meshio_to_xdmf_type:
        raise MeshError(f"XDMF has no {ctype!r} cells; write .vtu")
    root = ET.Element("Xdmf", Version="3.0")
    grid = ET.SubElement(ET.SubElement(root, "Domain"), "Grid", Name="Grid")
    _xdmf_item(ET.SubElement(grid, "Geometry", GeometryType="XYZ"[: points.shape[1]]), points)
    topo = ET.SubElement(grid, "Topology", TopologyType=meshio_to_xdmf_type[ctype][0],
                         NumberOfElements=str(len(cdata)), NodesPerElement=str(cdata.shape[1]))
    _xdmf_item(topo, cdata)
    for name, arr in pdata.items():
        att = ET.SubElement(grid, "Attribute", Name=name, AttributeType=attribute_type(arr),
                            Center="Node")
        _xdmf_item(att, arr)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)


def write_points_csv(points: np.ndarray, path, columns: Mapping[str, np.ndarray]) -> pathlib.Path:
    """Write point coordinates and values as CSV: header ``x1,...,xd,<columns>``.

    For domains with no mesh (dimension > 3) or any point cloud. A column of shape (n, k) becomes
    ``name_1, ..., name_k``. Values are written as the shortest text that reads back to the
    same float64. Written atomically like :func:`write_mesh`. Returns the path written.
    """
    path = _check_target(path)
    pts = _as_array("points", points, None, "points")
    if pts.ndim == 1:
        pts = pts[:, None]
    if pts.ndim != 2:
        raise MeshError(f"points has shape {pts.shape}: pass an (n, d) array")
    n, d = pts.shape
    header = [f"x{i + 1}" for i in range(d)]
    blocks = [pts.astype(np.float64)]
    for name, value in columns.items():
        if any(ch in name for ch in ',"\n\r'):
            raise MeshError(f"column name {name!r} has a comma, quote or newline: rename it")
        arr = _as_array(name, value, n, "column")
        if arr.ndim == 1 or arr.shape[1] == 1:
            header.append(name)
            blocks.append(arr.reshape(n, 1).astype(np.float64))
        else:
            header += [f"{name}_{j + 1}" for j in range(arr.shape[1])]
            blocks.append(arr.astype(np.float64))
    if len(set(header)) != len(header):
        raise MeshError(f"CSV columns repeat a name ({', '.join(header)}): rename the columns")
    table = np.hstack(blocks)

    def write(target):
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(",".join(header) + "\n")
            for row in table.tolist():
                f.write(",".join(map(repr, row)) + "\n")

    return _atomic(path, write)
