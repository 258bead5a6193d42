"""hrta_pde.io.meshfiles: writing meshes and point clouds for ParaView, atomically."""
import os
import sys
import types

import meshio
import numpy as np
import pytest

from hrta_pde.io.meshfiles import MeshError, write_mesh, write_points_csv
from hrta_pde.poisson.geometry import Ball, Box, Csg, Polygon
from hrta_pde.poisson.mesh import mesh_shape

L_SHAPE = [[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1]]


def _one_line(err):
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture()
def meshio_reads_inline_xdmf(monkeypatch):
    """meshio's XDMF reader imports h5py even for inline XML data, which never touches it."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "h5py", types.ModuleType("h5py"))


@pytest.mark.parametrize("suffix", [".vtu", ".xdmf"])
@pytest.mark.parametrize(
    "geom, h",
    [(Box([0], [1]), 0.1), (Csg("difference", Ball([0, 0], 1), Ball([0, 0], 0.25)), 0.1),
     (Ball([0, 0, 0], 1), 0.3)],
    ids=["1d", "2d", "3d"],
)
def test_write_read_back_exact(tmp_path, suffix, geom, h, meshio_reads_inline_xdmf):
    mesh = mesh_shape(geom, h)
    x = mesh.points
    n, d = x.shape
    data = {
        "u": np.sin(x[:, 0]) * x[:, -1],
        "grad": np.column_stack([np.cos(x[:, 0]) * x[:, -1]] + [np.sin(x[:, 0])] * (d - 1)),
        "index": np.arange(n),
    }
    path = write_mesh(mesh, tmp_path / f"solution{suffix}", data)
    assert path == tmp_path / f"solution{suffix}" and path.is_file()
    assert sorted(os.listdir(tmp_path)) == [f"solution{suffix}"]  # no temp or companion file
    back = meshio.read(path)
    assert back.points.shape == (n, 3)
    assert np.array_equal(back.points[:, :d], x) and not back.points[:, d:].any()
    assert back.cells[0].type == mesh.cells[0].type
    assert np.array_equal(back.cells[0].data, mesh.cells[0].data)
    for name, values in data.items():
        assert np.array_equal(back.point_data[name].reshape(values.shape), values), name


def test_vtu_field_data_and_overwrite(tmp_path):
    mesh = mesh_shape(Box([0, 0], [1, 1]), 0.25)
    u = mesh.points[:, 0] ** 2
    path = tmp_path / "out.vtu"
    write_mesh(mesh, path, {"u": u})
    write_mesh(mesh, path, {"u": 2 * u}, field_data={"time": 0.5, "step": np.array([3, 4])})
    back = meshio.read(path)
    assert np.array_equal(back.point_data["u"], 2 * u)
    assert np.array_equal(back.field_data["time"], [0.5])
    assert np.array_equal(back.field_data["step"], [3, 4])
    assert os.listdir(tmp_path) == ["out.vtu"]


def test_vtu_read_by_vtk(tmp_path):
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    mesh = mesh_shape(Polygon(L_SHAPE), 0.1)
    x = mesh.points
    u = np.sin(x[:, 0]) * x[:, 1]
    path = write_mesh(mesh, tmp_path / "l.vtu", {"u": u})
    reader = vtk.vtkXMLUnstructuredGridReader()
    reader.SetFileName(str(path))
    reader.Update()
    grid = reader.GetOutput()
    assert grid.GetNumberOfCells() == len(mesh.cells[0].data)
    pts = vtk_to_numpy(grid.GetPoints().GetData())
    assert np.array_equal(pts[:, :2], x)
    assert np.array_equal(vtk_to_numpy(grid.GetPointData().GetArray("u")), u)


def test_write_errors(tmp_path):
    mesh = mesh_shape(Box([0], [1]), 0.5)
    u = {"u": np.zeros(len(mesh.points))}
    with pytest.raises(MeshError) as err:
        write_mesh(mesh, tmp_path / "out.foo", u)
    text = _one_line(err)
    assert ".foo" in text and ".vtu" in text and ".xdmf" in text and ".vtk" in text
    with pytest.raises(MeshError) as err:
        write_mesh(mesh, tmp_path / "out", u)
    assert ".vtu" in _one_line(err)
    with pytest.raises(MeshError) as err:
        write_mesh(mesh, tmp_path / "missing" / "out.vtu", u)
    assert "does not exist" in _one_line(err)
    (tmp_path / "file").write_text("")
    with pytest.raises(MeshError) as err:
        write_mesh(mesh, tmp_path / "file" / "out.vtu", u)
    assert "not a folder" in _one_line(err)
    with pytest.raises(MeshError) as err:
        write_mesh(mesh, tmp_path / "out.vtu", {"u": np.zeros(len(mesh.points) + 1)})
    assert "mesh.points" in _one_line(err)
    with pytest.raises(MeshError) as err:
        write_mesh(mesh, tmp_path / "out.xdmf", u, field_data={"time": 1.0})
    assert ".vtu" in _one_line(err)
    assert sorted(os.listdir(tmp_path)) == ["file"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_write_into_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        mesh = mesh_shape(Box([0], [1]), 0.5)
        with pytest.raises(MeshError) as err:
            write_mesh(mesh, folder / "out.vtu", {})
        assert "not writable" in _one_line(err)
        with pytest.raises(MeshError):
            write_points_csv(mesh.points, folder / "out.csv", {})
    finally:
        folder.chmod(0o755)


def test_points_csv_for_4d(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((50, 4))
    u = np.sin(x).sum(axis=1) / 3
    grad = np.cos(x)
    path = write_points_csv(x, tmp_path / "u.csv", {"u": u, "grad": grad})
    lines = path.read_text().splitlines()
    assert lines[0] == "x1,x2,x3,x4,u,grad_1,grad_2,grad_3,grad_4"
    assert len(lines) == 51
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    assert np.array_equal(table, np.hstack([x, u[:, None], grad]))
    assert os.listdir(tmp_path) == ["u.csv"]
    with pytest.raises(MeshError) as err:
        write_points_csv(x, tmp_path / "v.csv", {"u": u[:-1]})
    _one_line(err)
