"""Tests of hrta_pde.poisson.problem: Poisson problems, their validation, measures and sampling."""
import filecmp
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

from hrta_pde.poisson.expressions import ExpressionError, laplacian, parse_expression, to_numpy
from hrta_pde.poisson.catalog import builtin_problem, list_builtin_problems, load_problem
from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.problem import BoundaryBatch
from hrta_pde.poisson.problem_toml import problem_to_toml
from hrta_pde.poisson.spec import problem_from_dict

REPO = Path(__file__).resolve().parents[1]
CATALOG = ["paper_pde", "poisson_10d", "poisson_1d", "poisson_2d_sin", "poisson_3d_cube",
           "poisson_3d_layers", "poisson_annulus", "poisson_disk", "poisson_interface", "poisson_jump_robin",
           "poisson_lshape", "poisson_mixed_square", "poisson_neumann_square",
           "poisson_reaction_holes", "poisson_square_holes", "poisson_torsion"]
# DeepXDE's Polygon.inside, called by the tests, uses a form of np.cross deprecated in numpy 2
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
LENS = 2 * math.acos(0.5) - 0.5 * math.sqrt(3)  # area of the intersection of two unit disks 1 apart


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def disk(c, r):
    return {"type": "disk", "center": c, "radius": r}


def box(lo, hi):
    return {"type": "box", "xmin": lo, "xmax": hi}


def simple(domain, u="x*y", **boundary):
    data = {"domain": domain, "solution": {"u": u}}
    if boundary:
        data["boundary"] = boundary
    return problem_from_dict(data)


@pytest.fixture(scope="module")
def catalog():
    return {name: builtin_problem(name) for name in CATALOG}


@pytest.fixture(scope="module")
def csg():
    """CSG domains with known measures (None: not checked)."""
    cases = {
        "disk_union": ({"type": "union", "a": disk([0, 0], 1), "b": disk([1, 0], 1)},
                       2 * math.pi - LENS, 8 * math.pi / 3),
        "disk_intersection": ({"type": "intersection", "a": disk([0, 0], 1), "b": disk([1, 0], 1)},
                              LENS, 4 * math.pi / 3),
        "disk_difference": ({"type": "difference", "a": disk([0, 0], 1), "b": disk([1, 0], 1)},
                            math.pi - LENS, 2 * math.pi),
        "square_minus_corner_disk": (
            {"type": "difference", "a": box([0, 0], [1, 1]), "b": disk([1, 1], 0.5)},
            1 - math.pi / 16, 3 + math.pi / 4),
        # coincident edges: the L-shape as a difference of boxes, two squares side by side
        "box_lshape": ({"type": "difference", "a": box([-1, -1], [1, 1]), "b": box([0, -1], [1, 0])},
                       3.0, 8.0),
        "touching_squares": ({"type": "union", "a": box([0, 0], [1, 1]), "b": box([1, 0], [2, 1])},
                             2.0, 6.0),
        "ball_difference_3d": ({"type": "difference", "a": {"type": "ball", "center": [0, 0, 0],
                                                            "radius": 1},
                                "b": {"type": "ball", "center": [1, 0, 0], "radius": 1}},
                               4 / 3 * math.pi - 5 * math.pi / 12, 4 * math.pi - math.pi + math.pi),
    }
    return {k: (simple(dom), a, p) for k, (dom, a, p) in cases.items()}


# ----------------------------------------------------------------------------- derived source

def test_derived_f_known_pairs():
    x1, x2 = sympy.symbols("x1 x2", real=True)
    p = simple(box([0, 0], [1, 1]), u="sin(pi*x)*sin(pi*y)")
    assert sympy.simplify(p.f - 2 * sympy.pi**2 * sympy.sin(sympy.pi * x1) * sympy.sin(sympy.pi * x2)) == 0
    X = np.random.default_rng(0).uniform(0, 1, (50, 2))
    np.testing.assert_allclose(p.f_numpy(X), 2 * np.pi**2 * np.sin(np.pi * X[:, 0]) * np.sin(np.pi * X[:, 1]),
                               rtol=1e-13)
    q = simple(disk([0, 0], 1), u="x^2 + y^2")
    assert q.f == -4
    np.testing.assert_allclose(q.f_torch(torch.tensor(X)).numpy(), -4.0)


def test_lshape_solution_is_harmonic_and_vanishes_at_the_corner_edges(catalog):
    p = catalog["poisson_lshape"]
    assert p.f == 0
    # -laplacian(u) computed independently, evaluated away from the corner, is 0
    u = parse_expression(p.spec["solution"]["u"], 2)
    X = p.sample_interior(300, generator=gen(3), dtype=torch.float64).numpy()
    X = X[np.hypot(X[:, 0], X[:, 1]) > 0.05]
    lap = to_numpy(laplacian(u, 2), 2)(X)
    assert np.abs(lap).max() < 1e-10
    # u = 0 on the two edges at the re-entrant corner, u = r^(2/3) sin(2 theta/3) inside
    t = np.linspace(0.01, 1.0, 20)
    assert np.abs(p.u_numpy(np.column_stack([t, 0 * t]))).max() < 1e-14
    assert np.abs(p.u_numpy(np.column_stack([0 * t, -t]))).max() < 1e-14
    theta = np.mod(np.arctan2(X[:, 1], X[:, 0]), 2 * np.pi)
    np.testing.assert_allclose(p.u_numpy(X), np.hypot(X[:, 0], X[:, 1]) ** (2 / 3) * np.sin(2 * theta / 3),
                               atol=1e-14)


def test_exact_solution_functions():
    p = simple(disk([0, 0], 1), u="exp(x)*sin(y) + x^2")
    X = torch.tensor(np.random.default_rng(1).uniform(-0.5, 0.5, (40, 2)), requires_grad=True)
    u = p.u_torch(X)
    (grad,) = torch.autograd.grad(u.sum(), X)
    torch.testing.assert_close(p.grad_u_torch(X), grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.grad_u_numpy(X.detach().numpy()), grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(p.u_numpy(X.detach().numpy()), u.detach().numpy(), rtol=1e-14)
    q = problem_from_dict({"domain": disk([0, 0], 1), "solution": {"f": "1"},
                           "boundary": {"g": "0"}})
    assert not q.has_exact
    with pytest.raises(ProblemError, match="no exact solution"):
        q.u_torch(X)


# ----------------------------------------------------------------------------- validation

SQUARE = {"type": "rectangle", "xmin": [0.0, 0.0], "xmax": [1.0, 1.0]}
BAD = [
    ({"domain": SQUARE, "solutoin": {"u": "x"}}, ProblemError, "'solutoin'"),
    ({"domain": {"type": "disk", "radus": 1.0}, "solution": {"u": "x"}}, ProblemError,
     "allowed keys: type, center, radius"),
    ({"solution": {"u": "x"}}, ProblemError, "missing [domain]"),
    ({"domain": {"type": "cube"}, "solution": {"u": "x"}}, ProblemError, "use one of: interval"),
    ({"domain": box([0, 2], [1, 1]), "solution": {"u": "x"}}, ProblemError, "xmin[1] = 2.0 >= xmax[1]"),
    ({"domain": {"type": "interval", "xmin": 1, "xmax": 1}, "solution": {"u": "x"}}, ProblemError,
     "xmin[0] = 1.0 >= xmax[0]"),
    ({"domain": disk([0, 0], 0), "solution": {"u": "x"}}, ProblemError, "radius must be positive"),
    ({"domain": {"type": "ball", "center": [0, 0, 0], "radius": -1}, "solution": {"u": "x"}},
     ProblemError, "radius must be positive"),
    ({"domain": {"type": "polygon", "vertices": [[0, 0], [1, 1], [1, 0], [0, 1]]},
      "solution": {"u": "x"}}, ProblemError, "self-intersecting"),
    ({"domain": {"type": "polygon", "vertices": [[0, 0], [1, 0]]}, "solution": {"u": "x"}},
     ProblemError, "at least 3"),
    ({"domain": {"type": "polygon", "vertices": [[0, 0], [1, 0], [2, 0]]}, "solution": {"u": "x"}},
     ProblemError, "zero area"),
    ({"domain": {"type": "hypercube", "dim": 11}, "solution": {"u": "x"}}, ProblemError,
     "dim must be an integer from 1 to 10"),
    ({"domain": {"type": "hypercube", "dim": 0}, "solution": {"u": "x"}}, ProblemError,
     "dim must be an integer from 1 to 10"),
    ({"domain": SQUARE, "solution": {"u": "sin(pi*x"}}, ExpressionError, "solution.u"),
    ({"domain": {"type": "interval", "xmin": 0, "xmax": 1}, "solution": {"u": "x*y"}},
     ExpressionError, "uses y, but the problem is 1-dimensional"),
    ({"domain": SQUARE, "solution": {"f": "1", "u": "x", "g": "0"}}, ProblemError, "'g'"),
    ({"domain": SQUARE, "solution": {}}, ProblemError, "needs f"),
    ({"domain": SQUARE, "solution": {"f": "1"}}, ProblemError, "needs boundary.g"),
    ({"domain": SQUARE, "solution": {"f": "1"}, "boundary": {"type": "neumann"}}, ProblemError,
     "needs boundary.h"),
    ({"domain": disk([0, 0], 1), "solution": {"u": "x"},
      "boundary": {"type": "mixed", "neumann_sides": ["x1_max"]}}, ProblemError, "needs a box"),
    ({"domain": SQUARE, "solution": {"u": "x"},
      "boundary": {"type": "mixed", "neumann_sides": ["top"]}}, ProblemError, "unknown side 'top'"),
    ({"domain": SQUARE, "solution": {"u": "x"},
      "boundary": {"type": "mixed", "neumann_sides": ["x3_max"]}}, ProblemError, "x2_max"),
    ({"domain": SQUARE, "solution": {"u": "x^2", "f": "2"}}, ProblemError, "not -laplacian(u)"),
    ({"domain": SQUARE, "solution": {"u": "x"}, "boundary": {"type": "periodic"}}, ProblemError,
     "dirichlet, neumann, mixed, robin"),
    ({"domain": SQUARE, "solution": {"u": "x"}, "boundary": {"g": "x + 1"}}, ProblemError,
     "differs from solution.u"),
    ({"domain": SQUARE, "solution": {"u": "x"}, "boundary": {"type": "neumann", "h": "1"}},
     ProblemError, "differs from du/dn"),
    ({"domain": SQUARE, "solution": {"u": "x"}, "solver": {"lrate": 1e-3}}, ProblemError,
     "unknown key 'lrate' in [solver]"),
    ({"domain": {"type": "union", "a": disk([0, 0], 1)}, "solution": {"u": "x"}}, ProblemError,
     "needs b"),
    ({"domain": {"type": "union", "a": disk([0, 0], 1), "b": {"type": "interval", "xmin": 0, "xmax": 1}},
      "solution": {"u": "x"}}, ProblemError, "2-dimensional but part b is 1-dimensional"),
    ({"domain": {"type": "intersection", "a": disk([0, 0], 1), "b": disk([5, 0], 1)},
      "solution": {"u": "x"}}, ProblemError, "empty"),
]


@pytest.mark.parametrize("data, error, text", BAD, ids=[b[2] for b in BAD])
def test_validation_errors(data, error, text):
    with pytest.raises(error) as info:
        problem_from_dict(data, source="bad.toml")
    message = str(info.value)
    assert text in message
    assert "\n" not in message
    if error is ProblemError:
        assert message.startswith("bad.toml: ")


def test_load_problem_errors(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ProblemError, match="invalid TOML"):
        load_problem(path)
    with pytest.raises(ProblemError, match="not found"):
        load_problem(tmp_path / "missing.toml")
    with pytest.raises(ProblemError, match="available: paper_pde"):
        builtin_problem("nope")


def test_solver_table_is_passed_through(catalog):
    p = catalog["paper_pde"]
    assert p.solver == {"loss": "sobolev", "schedule": "0.5:3000,1:13000", "phi": "relu3"}
    assert catalog["poisson_2d_sin"].solver == {}


# ----------------------------------------------------------------------------- measures

def test_exact_measures(catalog):
    assert simple({"type": "interval", "xmin": -1, "xmax": 2}, u="x").measure == 3.0
    assert simple({"type": "interval", "xmin": -1, "xmax": 2}, u="x").boundary_measure == 2.0
    p = simple(box([0, 0, 0], [1, 2, 3]))
    assert (p.measure, p.boundary_measure) == (6.0, 22.0)
    p = simple(disk([1, 2], 2))
    assert p.measure == pytest.approx(4 * math.pi, rel=1e-14)
    assert p.boundary_measure == pytest.approx(4 * math.pi, rel=1e-14)
    p = simple({"type": "ball", "center": [0, 0, 0], "radius": 2})
    assert p.measure == pytest.approx(4 / 3 * math.pi * 8, rel=1e-14)
    assert p.boundary_measure == pytest.approx(4 * math.pi * 4, rel=1e-14)
    p = simple({"type": "ball", "center": [0] * 10, "radius": 1})
    assert p.measure == pytest.approx(math.pi**5 / 120, rel=1e-14)  # pi^5 / 5!
    assert p.boundary_measure == pytest.approx(2 * math.pi**5 / 24, rel=1e-14)  # 2 pi^5 / 4!
    p = simple({"type": "polygon", "vertices": [[0, 0], [3, 0], [0, 4]]})
    assert (p.measure, p.boundary_measure) == (6.0, 12.0)
    assert (catalog["poisson_lshape"].measure, catalog["poisson_lshape"].boundary_measure) == (3.0, 8.0)
    ann = catalog["poisson_annulus"]
    assert ann.measure_exact
    assert ann.measure == pytest.approx(0.75 * math.pi, rel=1e-14)
    assert ann.boundary_measure == pytest.approx(3 * math.pi, rel=1e-14)
    assert catalog["poisson_10d"].boundary_measure == 20.0
    # 1-D CSG is exact: (0, 2) minus (0.5, 1) has 2 pieces and 4 end points
    p = simple({"type": "difference", "a": {"type": "interval", "xmin": 0, "xmax": 2},
                "b": {"type": "interval", "xmin": 0.5, "xmax": 1}}, u="x")
    assert (p.measure, p.boundary_measure, p.measure_exact) == (1.5, 4.0, True)


def test_csg_measure_estimates(csg):
    for name, (p, area, perimeter) in csg.items():
        assert not p.measure_exact, name
        assert p.measure == pytest.approx(area, rel=1e-2), name
        assert p.boundary_measure == pytest.approx(perimeter, rel=1e-2), name


# ----------------------------------------------------------------------------- sampling

def all_problems(catalog, csg):
    return list(catalog.values()) + [p for p, _, _ in csg.values()]


def test_interior_samples_are_inside(catalog, csg):
    for p in all_problems(catalog, csg):
        for sampler in ("random", "sobol", "uniform"):
            x = p.sample_interior(500, generator=gen(1), sampler=sampler, dtype=torch.float64)
            assert x.dtype == torch.float64 and x.shape[1] == p.dim
            if sampler != "uniform":
                assert x.shape[0] == 500
            else:
                # a grid: about n points (DeepXDE's 10-D grid has 2^10 = 1024)
                assert 0.7 * 500 < x.shape[0] <= 1024, (p.name, x.shape)
            xn = x.numpy()
            assert p.geometry.inside(xn).all(), (p.name, sampler)
            assert (p.shape.classify(xn) == -1).all(), (p.name, sampler)
            if p.spec["domain"]["type"] in ("rectangle", "box", "hypercube", "disk", "ball"):
                # DeepXDE's polygon on_boundary is loose (relative 1e-5 on edge lengths)
                assert not p.geometry.on_boundary(xn).any(), (p.name, sampler)


def test_float32_samples_stay_strictly_inside(catalog):
    p = catalog["poisson_2d_sin"]
    x = p.sample_interior(20000, generator=gen(2), dtype=torch.float32)
    assert x.dtype == torch.float32
    assert ((x > 0) & (x < 1)).all()


def test_interior_samples_are_uniform(catalog, csg):
    # the fraction of points in a sub-region equals its share of the measure
    x = catalog["poisson_disk"].sample_interior(20000, generator=gen(4), dtype=torch.float64).numpy()
    assert np.mean(np.hypot(x[:, 0], x[:, 1]) < 0.5) == pytest.approx(0.25, abs=0.01)
    p, area, _ = csg["disk_union"]
    x = p.sample_interior(20000, generator=gen(5), dtype=torch.float64).numpy()
    in_lens = (np.hypot(x[:, 0], x[:, 1]) < 1) & (np.hypot(x[:, 0] - 1, x[:, 1]) < 1)
    assert in_lens.mean() == pytest.approx(LENS / area, abs=0.01)


def test_boundary_samples_are_on_the_boundary(catalog, csg):
    for p in all_problems(catalog, csg):
        for sampler in ("random", "sobol", "uniform"):
            b = p.sample_boundary(400, generator=gen(2), sampler=sampler, dtype=torch.float64)
            assert isinstance(b, BoundaryBatch)
            x = b.x.numpy()
            assert (p.shape.classify(x) == 0).all(), (p.name, sampler)
            assert p.geometry.on_boundary(x).all(), (p.name, sampler)


def test_box_boundary_is_distributed_by_face_area():
    p = simple(box([0, 0, 0], [1, 2, 3]))
    for sampler in ("random", "sobol"):
        x = p.sample_boundary(30000, generator=gen(6), sampler=sampler, dtype=torch.float64).x.numpy()
        areas = np.array([6.0, 6.0, 3.0, 3.0, 2.0, 2.0]) / 22.0
        lo, hi = np.zeros(3), np.array([1.0, 2.0, 3.0])
        frac = [np.mean(np.isclose(x[:, i], v)) for i in range(3) for v in (lo[i], hi[i])]
        np.testing.assert_allclose(frac, areas, atol=0.01)
        # uniform within a face: the x3_max face (z = 3) has mean (1/2, 1) and variance (1/12, 4/12)
        top = x[np.isclose(x[:, 2], 3.0)]
        np.testing.assert_allclose(top[:, :2].mean(axis=0), [0.5, 1.0], atol=0.03)
        np.testing.assert_allclose(top[:, :2].var(axis=0), [1 / 12, 4 / 12], rtol=0.05)


def test_csg_boundary_is_distributed_by_length(catalog, csg):
    x = catalog["poisson_annulus"].sample_boundary(20000, generator=gen(7), dtype=torch.float64).x.numpy()
    inner = np.isclose(np.hypot(x[:, 0], x[:, 1]), 0.5)
    assert inner.mean() == pytest.approx(1 / 3, abs=0.01)  # 2 pi (1/2) / (2 pi (3/2))
    p, _, perimeter = csg["square_minus_corner_disk"]
    x = p.sample_boundary(20000, generator=gen(8), dtype=torch.float64).x.numpy()
    on_arc = np.isclose(np.hypot(x[:, 0] - 1, x[:, 1] - 1), 0.5)
    assert on_arc.mean() == pytest.approx((math.pi / 4) / perimeter, abs=0.01)
    p, _, _ = csg["touching_squares"]
    x = p.sample_boundary(6000, generator=gen(9), dtype=torch.float64).x.numpy()
    assert not np.any(np.isclose(x[:, 0], 1.0) & (x[:, 1] > 1e-9) & (x[:, 1] < 1 - 1e-9))
    assert np.mean(np.isclose(x[:, 1], 0.0)) == pytest.approx(2 / 6, abs=0.02)


def test_normals_are_unit_and_outward(catalog, csg):
    eps = 1e-6
    for p in all_problems(catalog, csg):
        b = p.sample_boundary(400, generator=gen(10), dtype=torch.float64)
        x, n = b.x.numpy(), b.normal.numpy()
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-12)
        assert not p.geometry.inside(x + eps * n).any(), p.name
        assert p.geometry.inside(x - eps * n).all(), p.name
    x, n = (t.numpy() for t in (lambda b: (b.x, b.normal))(
        catalog["poisson_disk"].sample_boundary(100, generator=gen(11), dtype=torch.float64)))
    np.testing.assert_allclose(n, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-14)
    b = catalog["poisson_annulus"].sample_boundary(100, generator=gen(12), dtype=torch.float64)
    x, n = b.x.numpy(), b.normal.numpy()
    r = np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(n, np.where(r < 0.75, -1, 1) * x / r, atol=1e-12)


def test_neumann_data_is_the_normal_derivative():
    u = "exp(x)*sin(y) + x^2*y"
    p = problem_from_dict({"domain": disk([0.2, 0.1], 1.5), "solution": {"u": u},
                           "boundary": {"type": "neumann"}})
    assert p.pure_neumann and p.h_from_u
    b = p.sample_boundary(300, generator=gen(13), dtype=torch.float64)
    x, n = b.x.numpy(), b.normal.numpy()
    delta = 1e-5
    fd = (p.u_numpy(x + delta * n) - p.u_numpy(x - delta * n)) / (2 * delta)
    np.testing.assert_allclose(b.h.numpy(), fd, atol=1e-8)
    np.testing.assert_allclose(p.h_torch(b.x, b.normal).numpy(), fd, atol=1e-8)
    assert not b.dirichlet.any() and (b.g == 0).all()
    # an explicit h that equals du/dn = grad u . x on the unit circle is accepted
    q = problem_from_dict({"domain": disk([0, 0], 1), "solution": {"u": "x^2*y"},
                           "boundary": {"type": "neumann", "h": "3*x^2*y"}})
    b = q.sample_boundary(300, generator=gen(14), dtype=torch.float64)
    x, n = b.x.numpy(), b.normal.numpy()
    fd = (q.u_numpy(x + delta * n) - q.u_numpy(x - delta * n)) / (2 * delta)
    np.testing.assert_allclose(b.h.numpy(), fd, atol=1e-8)


def test_mixed_boundary_assigns_sides(catalog):
    p = catalog["poisson_mixed_square"]
    assert p.neumann_sides == ("x2_max",)
    b = p.sample_boundary(4000, generator=gen(15), dtype=torch.float64)
    x = b.x.numpy()
    top = np.isclose(x[:, 1], 1.0)
    np.testing.assert_array_equal(b.dirichlet.numpy(), ~top)
    assert top.mean() == pytest.approx(0.25, abs=0.02)
    np.testing.assert_allclose(b.g.numpy()[~top], p.u_numpy(x[~top]), atol=1e-15)
    np.testing.assert_allclose(b.h.numpy()[top], 0.0, atol=1e-12)  # du/dy = 0 at y = 1
    assert (b.g.numpy()[top] == 0).all()


# ----------------------------------------------------------------------------- catalog and files

def test_catalog_files_match_and_load(catalog, tmp_path):
    assert list_builtin_problems() == CATALOG
    for name in CATALOG:
        assert filecmp.cmp(REPO / "problems" / f"{name}.toml",
                           REPO / "hrta_pde" / "poisson" / "problems_data" / f"{name}.toml", shallow=False)
        p = catalog[name]
        assert p.name == name
        assert load_problem(REPO / "problems" / f"{name}.toml").spec == p.spec
        X = p.sample_interior(64, generator=gen(16), dtype=torch.float64)
        again = problem_from_dict(p.spec)
        np.testing.assert_array_equal(again.f_torch(X).numpy(), p.f_torch(X).numpy())
        assert (again.measure, again.boundary_measure, again.boundary_kind) == \
            (p.measure, p.boundary_measure, p.boundary_kind)
        text = problem_to_toml(p)
        assert tomllib.loads(text) == p.spec
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        written = load_problem(path)
        np.testing.assert_array_equal(written.f_torch(X).numpy(), p.f_torch(X).numpy())
        if p.has_exact:
            np.testing.assert_array_equal(written.u_torch(X).numpy(), p.u_torch(X).numpy())


def test_csg_spec_round_trip(csg):
    p, _, _ = csg["disk_union"]
    again = problem_from_dict(tomllib.loads(problem_to_toml(p)))
    assert again.measure == p.measure and again.boundary_measure == p.boundary_measure


def test_pure_neumann_compatibility(catalog):
    p = catalog["poisson_neumann_square"]
    assert p.pure_neumann
    assert p.check_compatibility() < 1e-6
    assert catalog["poisson_2d_sin"].check_compatibility() == 0.0
    data = {"domain": SQUARE, "solution": {"f": "2*pi^2*cos(pi*x)*cos(pi*y)"},
            "boundary": {"type": "neumann", "h": "0"}}
    assert not problem_from_dict(data).has_exact
    data["solution"]["f"] += " + 1"
    with pytest.raises(ProblemError, match="incompatible") as info:
        problem_from_dict(data)
    assert "\n" not in str(info.value)
    # f = 1 is compatible with the outflow h = -1/4 through each side of the unit square
    ok = {"domain": SQUARE, "solution": {"f": "1"}, "boundary": {"type": "neumann", "h": "-0.25"}}
    assert problem_from_dict(ok).check_compatibility() < 1e-9


# ----------------------------------------------------------------------------- reproducibility

def test_sampling_is_reproducible_and_leaves_numpy_alone(catalog, csg):
    np.random.seed(123)
    state = np.random.get_state()
    for p in (catalog["poisson_lshape"], catalog["poisson_3d_cube"], csg["disk_union"][0]):
        for sampler in ("random", "sobol"):
            a = p.sample_interior(300, generator=gen(17), sampler=sampler)
            b = p.sample_interior(300, generator=gen(17), sampler=sampler)
            c = p.sample_interior(300, generator=gen(18), sampler=sampler)
            assert torch.equal(a, b) and not torch.equal(a, c)
            ba = p.sample_boundary(300, generator=gen(17), sampler=sampler)
            bb = p.sample_boundary(300, generator=gen(17), sampler=sampler)
            assert torch.equal(ba.x, bb.x) and torch.equal(ba.normal, bb.normal)
    simple({"type": "intersection", "a": disk([0, 0], 1), "b": disk([0.5, 0], 1)})
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


def test_sampler_arguments_are_checked(catalog):
    p = catalog["poisson_2d_sin"]
    with pytest.raises(ProblemError, match="use one of: random, uniform, sobol"):
        p.sample_interior(10, generator=gen(), sampler="halton")
    with pytest.raises(ProblemError, match="non-negative integer"):
        p.sample_boundary(-1, generator=gen())
    assert p.sample_interior(0, generator=gen()).shape == (0, 2)


def test_a_problem_file_with_a_byte_order_mark_reads_as_without(tmp_path):
    from hrta_pde.poisson.catalog import builtin_problem_text, load_problem

    text = builtin_problem_text("poisson_torsion")
    (tmp_path / "plain.toml").write_text(text, encoding="utf-8")
    (tmp_path / "bom.toml").write_text(text, encoding="utf-8-sig")
    assert (tmp_path / "bom.toml").read_bytes()[:3] == b"\xef\xbb\xbf"
    a, b = load_problem(tmp_path / "plain.toml"), load_problem(tmp_path / "bom.toml")
    assert a.spec == b.spec and b.name == "poisson_torsion"


def test_mixed_neumann_sides_take_the_xyz_names_of_the_part_tables():
    spec = {"domain": {"type": "box", "xmin": [0, 0, 0], "xmax": [1, 1, 1]}, "solution": {"u": "x*y*z"}}
    a = problem_from_dict({**spec, "boundary": {"type": "mixed", "neumann_sides": ["z_max", "x_min"]}})
    b = problem_from_dict({**spec, "boundary": {"type": "mixed", "neumann_sides": ["x3_max", "x1_min"]}})
    assert a.neumann_sides == b.neumann_sides
    with pytest.raises(ProblemError, match="or x_min, x_max, y_min, y_max, z_min, z_max"):
        problem_from_dict({**spec, "boundary": {"type": "mixed", "neumann_sides": ["w_max"]}})


def test_a_domain_float64_cannot_sample_gets_one_line_with_the_fix():
    p = problem_from_dict({"domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1e308, 1]},
                           "solution": {"f": "1"}, "boundary": {"type": "dirichlet", "g": "0"}})
    with pytest.raises(ProblemError, match="rescale x") as info:
        p.sample_interior(10, generator=gen(1), dtype=torch.float64)
    assert "\n" not in str(info.value)
