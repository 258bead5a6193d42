"""hrta_pde.poisson.mesh: conforming meshes of the exact shapes."""
import math

import meshio
import numpy as np
import pytest

from hrta_pde import import_deepxde
from hrta_pde.poisson.geometry import Ball, Box, Csg, Polygon, to_deepxde
from hrta_pde.poisson.mesh import MeshError, cell_measures, mesh_shape


# DeepXDE's own Triangle/Polygon.inside call np.cross on 2-D vectors (deprecated in NumPy 2).
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")


def union(a, b):
    return Csg("union", a, b)


def intersection(a, b):
    return Csg("intersection", a, b)


def difference(a, b):
    return Csg("difference", a, b)


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
    geom = Box([-1], [2])
    mesh = mesh_shape(geom, 0.1)
    assert mesh.cells[0].type == "line"
    assert len(mesh.cells[0].data) == 30
    assert _check_valid(mesh, geom) == pytest.approx(3.0, rel=1e-14)
    assert cell_measures(mesh).max() <= 0.1 + 1e-12


def test_interval_union_with_gap():
    geom = union(Box([0], [1]), Box([2], [2.5]))
    mesh = mesh_shape(geom, 0.1)
    assert _check_valid(mesh, geom) == pytest.approx(1.5, rel=1e-14)
    assert not np.any((mesh.points > 1) & (mesh.points < 2))


@pytest.mark.parametrize(
    "geom, area",
    [
        (Box([0, 0], [1, 1]), 1.0),
        (Polygon(L_SHAPE), 3.0),
        (Polygon(L_SHAPE[::-1]), 3.0),  # clockwise input: stored counterclockwise
        (Polygon([[0, 0], [1, 0], [0, 1]]), 0.5),
        (difference(Box([-1, -1], [1, 1]), Box([-0.5, -0.5], [0.5, 0.5])), 3.0),
    ],
    ids=["unit-square", "L-shape", "L-shape-cw", "triangle", "square-with-square-hole"],
)
def test_polygonal_domains_exact_area(geom, area):
    mesh = mesh_shape(geom, 0.05)
    assert mesh.cells[0].type == "triangle"
    assert _check_valid(mesh, geom) == pytest.approx(area, rel=1e-13)
    # every polygon corner is a mesh vertex
    corners = {
        "Box": lambda g: [g.lo, g.hi, [g.lo[0], g.hi[1]], [g.hi[0], g.lo[1]]],
        "Polygon": lambda g: list(g.vertices),
    }.get(type(geom).__name__, lambda g: [])(geom)
    for c in corners:
        assert np.min(np.linalg.norm(mesh.points - np.asarray(c, float), axis=1)) == 0.0


def test_l_shape_leaves_the_missing_quadrant_empty():
    geom = Polygon(L_SHAPE)
    mesh = mesh_shape(geom, 0.05)
    c = mesh.points[mesh.cells[0].data].mean(axis=1)
    assert not np.any((c[:, 0] > 0) & (c[:, 1] > 0))


def test_disk_area_converges_and_boundary_on_circle():
    geom = Ball([0, 0], 1)
    errors = []
    for h in (0.05, 0.025):
        mesh = mesh_shape(geom, h)
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
    geom = difference(Ball([0, 0], 1), Ball([0, 0], 0.25))
    mesh = mesh_shape(geom, 0.05)
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
        (union(Box([0, 0], [1, 1]), Ball([1, 0.5], 0.5)), 1 + math.pi / 8, 2e-3),
        (intersection(Box([0, 0], [1, 1]), Ball([1, 0.5], 0.5)), math.pi / 8, 5e-3),
        (union(Ball([0, 0], 1), Ball([1, 0], 0.7)), math.pi * (1 + 0.49) - _lens(1, 0.7, 1), 1e-3),
        (intersection(Ball([0, 0], 1), Ball([1, 0], 0.7)), _lens(1, 0.7, 1), 2e-3),
        (difference(Ball([0, 0], 1), Polygon([[0, 0], [0.5, 0], [0, 0.5]])), math.pi - 0.125, 1e-3),
        (union(difference(Box([-1, -1], [1, 1]), Ball([0, 0], 0.5)), Ball([0, 0], 0.25)),
         4 - math.pi * (0.25 - 0.0625), 1e-3),
    ],
    ids=["square-union-disk", "square-and-disk", "disk-union-disk", "lens", "disk-minus-triangle",
         "nested-csg"],
)
def test_curved_and_csg_domains(geom, area, rel):
    mesh = mesh_shape(geom, 0.05)
    measured = _check_valid(mesh, geom)
    assert measured == pytest.approx(area, rel=rel)
    b = mesh.points[np.unique(_boundary_edges(mesh))]
    # on the boundary of one of the primitives, and of the domain
    on = np.zeros(len(b), dtype=bool)
    for leaf in geom.leaves():
        on |= leaf.on_boundary(b)
    assert np.all(on), "a boundary vertex off the domain boundary"
    # (a crossing found tangentially is located to ~sqrt(machine epsilon) only)
    assert np.mean(geom.on_boundary(b)) > 0.95
    # the DeepXDE geometry of the same domain (an independent implementation) agrees
    dg = to_deepxde(geom)
    assert np.all(dg.inside(pts_inside(mesh)))


def pts_inside(mesh):
    return mesh.points[mesh.cells[0].data].mean(axis=1)


def test_cuboid_and_hypercube_exact_volume():
    for geom, vol in ((Box([0, 0, 0], [1, 2, 1]), 2.0),
                      (Box([-1, -1, -1], [1, 1, 1]), 8.0)):
        mesh = mesh_shape(geom, 0.2)
        assert mesh.cells[0].type == "tetra"
        assert _check_valid(mesh, geom) == pytest.approx(vol, rel=1e-13)
        assert len(_boundary_faces(mesh)) > 0


def test_ball_volume():
    geom = Ball([0, 0, 0], 1)
    mesh = mesh_shape(geom, 0.1)
    vol = _check_valid(mesh, geom)
    assert vol == pytest.approx(4 / 3 * math.pi, rel=1e-2)  # measured -0.41 %
    r = np.linalg.norm(mesh.points[np.unique(_boundary_faces(mesh))], axis=1)
    assert np.max(np.abs(r - 1)) < 1e-12


def test_cell_measures_of_padded_points_is_unsigned():
    mesh = mesh_shape(Polygon(L_SHAPE), 0.1)
    padded = meshio.Mesh(np.hstack([mesh.points, np.zeros((len(mesh.points), 1))]), mesh.cells)
    np.testing.assert_allclose(cell_measures(padded), cell_measures(mesh), rtol=1e-12)


# -------------------------------------------------------------------------------- errors
def _one_line(err):
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("geom", [Box([0] * 4, [1] * 4), Ball([0] * 4, 1)])
def test_four_dimensions_point_to_csv(geom):
    with pytest.raises(MeshError) as err:
        mesh_shape(geom, 0.1)
    text = _one_line(err)
    assert "4-dimensional" in text and "CSV" in text and ".csv" in text


@pytest.mark.parametrize("h", [0, -0.1, float("nan"), float("inf"), "abc", None])
def test_bad_h(h):
    with pytest.raises(MeshError) as err:
        mesh_shape(Ball([0, 0], 1), h)
    assert "h=" in _one_line(err)


def test_unknown_geometry_types():
    with pytest.raises(MeshError) as err:
        mesh_shape(import_deepxde().geometry.Rectangle([0, 0], [1, 1]), 0.1)
    text = _one_line(err)
    assert "Rectangle" in text and "problem.shape" in text and "balls" in text
    with pytest.raises(MeshError) as err:
        mesh_shape(difference(Box([0, 0, 0], [1, 1, 1]), Ball([0, 0, 0], 0.5)), 0.1)
    assert "Csg in 3-D" in _one_line(err)
    with pytest.raises(MeshError) as err:
        mesh_shape("a square", 0.1)
    assert "str" in _one_line(err)


def test_a_shape_is_meshed_once_per_size(monkeypatch):
    """The plot and every export of one run mesh the domain once: a second mesh_shape at the same h
    reuses the first mesh (as a copy), another h or another shape meshes again."""
    import hrta_pde.poisson.mesh as M

    calls = []
    real = M._mesh_2d
    monkeypatch.setattr(M, "_mesh_2d", lambda shape, h: calls.append(h) or real(shape, h))
    disk = Ball([0.0, 0.0], 1.0)
    first, again = mesh_shape(disk, 0.3), mesh_shape(disk, 0.3)
    assert calls == [0.3]
    assert np.array_equal(first.points, again.points) and np.array_equal(first.cells[0].data, again.cells[0].data)
    again.points[0, 0] = 5.0  # a caller's change stays in its copy
    assert mesh_shape(disk, 0.3).points[0, 0] == first.points[0, 0] != 5.0
    mesh_shape(disk, 0.2)
    mesh_shape(Ball([0.0, 0.0], 1.0), 0.3)
    assert calls == [0.3, 0.2, 0.3]
