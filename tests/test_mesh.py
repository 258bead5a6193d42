"""hrta_pde.poisson.mesh: conforming meshes of DeepXDE geometries and writing them for ParaView."""
import math
import os
import sys
import types

import meshio
import numpy as np
import pytest

from hrta_pde import import_deepxde
from hrta_pde.poisson.mesh import MeshError, cell_measures, mesh_geometry, write_mesh, write_points_csv

dde = import_deepxde()
G = dde.geometry

# DeepXDE's own Triangle/Polygon.inside call np.cross on 2-D vectors (deprecated in NumPy 2).
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")

L_SHAPE = [[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1]]


def _lens(r1, r2, d):
    """Area of the intersection of two disks with radii r1, r2 and centres d apart."""
    a1 = r1 * r1 * math.acos((d * d + r1 * r1 - r2 * r2) / (2 * d * r1))
    a2 = r2 * r2 * math.acos((d * d + r2 * r2 - r1 * r1) / (2 * d * r2))
    k = 0.5 * math.sqrt((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))
    return a1 + a2 - k


def _edges(cells):
    k = cells.shape[1]
    e = np.concatenate([cells[:, [i, (i + 1) % k]] for i in range(k)])
    return np.sort(e, axis=1)


def _boundary_edges(mesh):
    codes, counts = np.unique(_edges(mesh.cells[0].data), axis=0, return_counts=True)
    assert counts.max() <= 2, "an edge shared by more than two triangles"
    return codes[counts == 1]


def _boundary_faces(mesh):
    c = mesh.cells[0].data
    f = np.sort(np.concatenate([c[:, [0, 1, 2]], c[:, [0, 1, 3]], c[:, [0, 2, 3]],
                                c[:, [1, 2, 3]]]), axis=1)
    codes, counts = np.unique(f, axis=0, return_counts=True)
    assert counts.max() <= 2, "a face shared by more than two tetrahedra"
    return codes[counts == 1]


def _check_valid(mesh, geom):
    """Positive (counterclockwise / right-handed) cells, no duplicate or unused points, every
    cell centroid inside the domain; returns the total measure."""
    pts, cells = mesh.points, mesh.cells[0].data
    assert len(mesh.cells) == 1
    assert pts.shape[1] == geom.dim
    assert len(np.unique(pts, axis=0)) == len(pts), "duplicate points"
    assert np.array_equal(np.unique(cells), np.arange(len(pts))), "unused points"
    meas = cell_measures(mesh)
    assert meas.shape == (len(cells),)
    assert meas.min() > 0, "a cell with non-positive measure (wrong orientation or degenerate)"
    centroids = pts[cells].mean(axis=1)
    assert np.all(geom.inside(centroids)), "a cell centroid outside the domain"
    return float(meas.sum())


# -------------------------------------------------------------------------------- measures
def test_interval_exact_length():
    geom = G.Interval(-1, 2)
    mesh = mesh_geometry(geom, 0.1)
    assert mesh.cells[0].type == "line"
    assert len(mesh.cells[0].data) == 30
    assert _check_valid(mesh, geom) == pytest.approx(3.0, rel=1e-14)
    assert cell_measures(mesh).max() <= 0.1 + 1e-12


def test_interval_union_with_gap():
    geom = G.Interval(0, 1) | G.Interval(2, 2.5)
    mesh = mesh_geometry(geom, 0.1)
    assert _check_valid(mesh, geom) == pytest.approx(1.5, rel=1e-14)
    assert not np.any((mesh.points > 1) & (mesh.points < 2))


@pytest.mark.parametrize(
    "geom, area",
    [
        (G.Rectangle([0, 0], [1, 1]), 1.0),
        (G.Polygon(L_SHAPE), 3.0),
        (G.Polygon(L_SHAPE[::-1]), 3.0),  # clockwise input: DeepXDE reorders it
        (G.Triangle([0, 0], [1, 0], [0, 1]), 0.5),
        (G.Rectangle([-1, -1], [1, 1]) - G.Rectangle([-0.5, -0.5], [0.5, 0.5]), 3.0),
    ],
    ids=["unit-square", "L-shape", "L-shape-cw", "triangle", "square-with-square-hole"],
)
def test_polygonal_domains_exact_area(geom, area):
    mesh = mesh_geometry(geom, 0.05)
    assert mesh.cells[0].type == "triangle"
    assert _check_valid(mesh, geom) == pytest.approx(area, rel=1e-13)
    # every polygon corner is a mesh vertex
    corners = {
        "Rectangle": lambda g: [g.xmin, g.xmax],
        "Polygon": lambda g: list(g.vertices),
        "Triangle": lambda g: [g.x1, g.x2, g.x3],
    }.get(type(geom).__name__, lambda g: [])(geom)
    for c in corners:
        assert np.min(np.linalg.norm(mesh.points - np.asarray(c, float), axis=1)) == 0.0


def test_l_shape_leaves_the_missing_quadrant_empty():
    geom = G.Polygon(L_SHAPE)
    mesh = mesh_geometry(geom, 0.05)
    c = mesh.points[mesh.cells[0].data].mean(axis=1)
    assert not np.any((c[:, 0] > 0) & (c[:, 1] > 0))


def test_disk_area_converges_and_boundary_on_circle():
    geom = G.Disk([0, 0], 1)
    errors = []
    for h in (0.05, 0.025):
        mesh = mesh_geometry(geom, h)
        area = _check_valid(mesh, geom)
        errors.append(abs(area - math.pi) / math.pi)
        b = np.unique(_boundary_edges(mesh))
        r = np.linalg.norm(mesh.points[b], axis=1)
        assert np.max(np.abs(r - 1)) < 1e-12
        # boundary vertices at spacing <= h along the circle
        e = _boundary_edges(mesh)
        assert np.linalg.norm(mesh.points[e[:, 0]] - mesh.points[e[:, 1]], axis=1).max() <= h
    assert errors[0] < 2e-3  # measured 4.1e-4 at h=0.05
    assert errors[1] < errors[0] / 3  # O(h^2): 1.0e-4 at h=0.025


def test_disk_with_hole():
    geom = G.Disk([0, 0], 1) - G.Disk([0, 0], 0.25)
    mesh = mesh_geometry(geom, 0.05)
    area = _check_valid(mesh, geom)
    assert area == pytest.approx(math.pi * (1 - 0.25**2), rel=1e-3)
    c = mesh.points[mesh.cells[0].data].mean(axis=1)
    assert np.linalg.norm(c, axis=1).min() > 0.25  # nothing in the hole
    r = np.linalg.norm(mesh.points[np.unique(_boundary_edges(mesh))], axis=1)
    on_inner, on_outer = np.abs(r - 0.25) < 1e-12, np.abs(r - 1) < 1e-12
    assert np.all(on_inner | on_outer) and on_inner.sum() >= 30


@pytest.mark.parametrize(
    "geom, area, rel",
    [
        # tangent at (1, 0) and (1, 1): the disk touches the square's top and bottom edges
        (G.Rectangle([0, 0], [1, 1]) | G.Disk([1, 0.5], 0.5), 1 + math.pi / 8, 2e-3),
        (G.Rectangle([0, 0], [1, 1]) & G.Disk([1, 0.5], 0.5), math.pi / 8, 5e-3),
        (G.Disk([0, 0], 1) | G.Disk([1, 0], 0.7), math.pi * (1 + 0.49) - _lens(1, 0.7, 1), 1e-3),
        (G.Disk([0, 0], 1) & G.Disk([1, 0], 0.7), _lens(1, 0.7, 1), 2e-3),
        (G.Ellipse([0, 0], 2, 1, 0.3), 2 * math.pi, 1e-3),
        ((G.Rectangle([-1, -1], [1, 1]) - G.Disk([0, 0], 0.5)) | G.Disk([0, 0], 0.25),
         4 - math.pi * (0.25 - 0.0625), 1e-3),
    ],
    ids=["square-union-disk", "square-and-disk", "disk-union-disk", "lens", "ellipse",
         "nested-csg"],
)
def test_curved_and_csg_domains(geom, area, rel):
    mesh = mesh_geometry(geom, 0.05)
    measured = _check_valid(mesh, geom)
    assert measured == pytest.approx(area, rel=rel)
    b = mesh.points[np.unique(_boundary_edges(mesh))]
    # On the boundary of one of the primitives (DeepXDE's CSG on_boundary says False where two
    # primitive boundaries meet, e.g. at the tangent points of square-union-disk).
    on = np.zeros(len(b), dtype=bool)
    for leaf in _leaves(geom):
        on |= leaf.on_boundary(b)
    assert np.all(on), "a boundary vertex off the domain boundary"
    assert np.mean(geom.on_boundary(b)) > 0.95


def _leaves(geom):
    if hasattr(geom, "geom1"):
        return _leaves(geom.geom1) + _leaves(geom.geom2)
    return [geom]


def test_cuboid_and_hypercube_exact_volume():
    for geom, vol in ((G.Cuboid([0, 0, 0], [1, 2, 1]), 2.0),
                      (G.Hypercube([-1, -1, -1], [1, 1, 1]), 8.0)):
        mesh = mesh_geometry(geom, 0.2)
        assert mesh.cells[0].type == "tetra"
        assert _check_valid(mesh, geom) == pytest.approx(vol, rel=1e-13)
        assert len(_boundary_faces(mesh)) > 0


def test_ball_volume():
    geom = G.Sphere([0, 0, 0], 1)
    mesh = mesh_geometry(geom, 0.1)
    vol = _check_valid(mesh, geom)
    assert vol == pytest.approx(4 / 3 * math.pi, rel=1e-2)  # measured -0.41 %
    r = np.linalg.norm(mesh.points[np.unique(_boundary_faces(mesh))], axis=1)
    assert np.max(np.abs(r - 1)) < 1e-12


def test_cell_measures_of_padded_points_is_unsigned():
    mesh = mesh_geometry(G.Polygon(L_SHAPE), 0.1)
    padded = meshio.Mesh(np.hstack([mesh.points, np.zeros((len(mesh.points), 1))]), mesh.cells)
    np.testing.assert_allclose(cell_measures(padded), cell_measures(mesh), rtol=1e-12)


# -------------------------------------------------------------------------------- errors
def _one_line(err):
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("geom", [G.Hypercube([0] * 4, [1] * 4), G.Hypersphere([0] * 4, 1)])
def test_four_dimensions_point_to_csv(geom):
    with pytest.raises(MeshError) as err:
        mesh_geometry(geom, 0.1)
    text = _one_line(err)
    assert "4-dimensional" in text and "CSV" in text and ".csv" in text


@pytest.mark.parametrize("h", [0, -0.1, float("nan"), float("inf"), "abc", None])
def test_bad_h(h):
    with pytest.raises(MeshError) as err:
        mesh_geometry(G.Disk([0, 0], 1), h)
    assert "h=" in _one_line(err)


def test_unknown_geometry_types():
    with pytest.raises(MeshError) as err:
        mesh_geometry(G.PointCloud(np.random.rand(10, 2)), 0.1)
    text = _one_line(err)
    assert "PointCloud" in text and "Rectangle" in text and "Sphere" in text
    with pytest.raises(MeshError) as err:
        mesh_geometry(G.Cuboid([0, 0, 0], [1, 1, 1]) - G.Sphere([0, 0, 0], 0.5), 0.1)
    assert "CSGDifference" in _one_line(err)
    with pytest.raises(MeshError) as err:
        mesh_geometry("a square", 0.1)
    assert "str" in _one_line(err)


# -------------------------------------------------------------------------------- writing
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
    [(G.Interval(0, 1), 0.1), (G.Disk([0, 0], 1) - G.Disk([0, 0], 0.25), 0.1),
     (G.Sphere([0, 0, 0], 1), 0.3)],
    ids=["1d", "2d", "3d"],
)
def test_write_read_back_exact(tmp_path, suffix, geom, h, meshio_reads_inline_xdmf):
    mesh = mesh_geometry(geom, h)
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
    mesh = mesh_geometry(G.Rectangle([0, 0], [1, 1]), 0.25)
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

    mesh = mesh_geometry(G.Polygon(L_SHAPE), 0.1)
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
    mesh = mesh_geometry(G.Interval(0, 1), 0.5)
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
        mesh = mesh_geometry(G.Interval(0, 1), 0.5)
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
