"""hrta_pde.poisson.fem: P2 finite-element reference solutions of Dirichlet Poisson problems."""
import math
import types

import numpy as np
import pytest
import torch

pytest.importorskip("skfem")

from hrta_pde.poisson import fem as F  # noqa: E402
from hrta_pde.poisson.expressions import gradient, laplacian, parse_expression, to_numpy  # noqa: E402
from hrta_pde.poisson.fem import FEMError, FEMUnsupported, fem_errors, fem_reference, solve_fem  # noqa: E402
from hrta_pde.poisson.geometry import Ball, Box, Csg, Polygon  # noqa: E402

# The L-shape (-1,1)^2 minus the quadrant [0,1]x[0,1] (re-entrant corner at 0).
L_SHAPE = [[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1]]
# r^(2/3) sin(2 theta/3), theta in [0, 3 pi/2] measured from the edge x = 0, y > 0, so u = 0 on
# both re-entrant edges. theta = atan2(x - y, -x - y) + 3 pi/4 has its branch cut along the
# direction (1, 1), inside the removed quadrant. (atan2(-y, -x) + pi would put the cut on the
# boundary edge y = 0, x > 0, where it evaluates to theta = 0 instead of the limit 2 pi from
# inside: g = u is then wrong on that edge and no solver converges to u.)
L_U = "(x^2+y^2)^(1/3)*sin(2*(atan2(x-y, -x-y) + 3*pi/4)/3)"


def problem(shape, u=None, f=None, g=None, kind="dirichlet"):
    """A stand-in with the attributes of hrta_pde.poisson.problem.PoissonProblem that fem uses."""
    dim = shape.dim
    u = parse_expression(u, dim, name="u") if u is not None else None
    f = parse_expression(f, dim, name="f") if f is not None else -laplacian(u, dim)
    g = parse_expression(g, dim, name="g") if g is not None else u
    ns = types.SimpleNamespace(dim=dim, shape=shape, f=f, u=u, g=g, boundary_kind=kind,
                               has_exact=u is not None, measure=None)
    ns.f_numpy = to_numpy(f, dim)
    if u is not None:
        ns.u_numpy = to_numpy(u, dim)
        parts = [to_numpy(c, dim) for c in gradient(u, dim)]
        ns.grad_u_numpy = lambda X: np.stack([c(X) for c in parts], axis=1)
    return ns


def errors(p, hs, key="l2"):
    out = []
    for h in hs:
        e = fem_errors(solve_fem(p, h), p.u_numpy, p.grad_u_numpy)
        out.append(e[key])
    return np.array(out)


def slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


# ---------------------------------------------------------------------------------- rates
def test_unit_square_p2_rates():
    p = problem(Box([0, 0], [1, 1]), "sin(pi*x)*sin(pi*y)")
    hs = np.array([1 / 8, 1 / 16, 1 / 32])
    sols = [solve_fem(p, h) for h in hs]
    errs = [fem_errors(s, p.u_numpy, p.grad_u_numpy) for s in sols]
    l2 = np.array([e["l2"] for e in errs])
    h1 = np.array([e["h1"] for e in errs])
    # measured: L2 rate 3.12, H1-seminorm rate 2.07 (errors 4.2e-4 .. 5.5e-6 in L2)
    assert 2.6 <= slope(hs, l2) <= 3.4
    assert 1.7 <= slope(hs, h1) <= 2.3
    assert l2[-1] < 1e-5
    assert [s.n_dofs for s in sols] == sorted(s.n_dofs for s in sols)
    assert not sols[0].curved  # straight-sided domain: affine P2 mesh
    assert sols[0].h == 1 / 8 and len(sols[0].x) == sols[0].n_dofs == sols[0].basis.N


def test_lshape_corner_singularity_limits_the_rate():
    p = problem(Polygon(L_SHAPE), L_U, f="0")
    hs = np.array([1 / 8, 1 / 16, 1 / 32])
    l2 = errors(p, hs)
    # measured: 1.22e-3, 4.05e-4, 2.12e-4 -> rate 1.26, H1 0.61 (theory: 4/3 and 2/3)
    assert 1.0 <= slope(hs, l2) <= 2.2
    assert l2[-1] < 1e-3
    assert np.all(np.diff(l2) < 0)


def test_interval_1d():
    p = problem(Box([0], [1]), "sin(3*x)")
    hs = np.array([1 / 4, 1 / 8, 1 / 16])
    l2 = errors(p, hs)
    # measured: rate 3.0
    assert 2.6 <= slope(hs, l2) <= 3.4


# ------------------------------------------------------------------------ curved boundaries
def test_disk_curved_boundary_keeps_third_order():
    # g = 0 on the circle is *not* the trace of a function that P2 on the polygonal mesh
    # matches: straight boundary elements would give O(h^2) (measured 9e-4 at h = 0.05);
    # the quadratic boundary elements keep O(h^3).
    p = problem(Ball([0, 0], 1), "(1-x^2-y^2)*exp(x)", g="0")
    hs = np.array([0.2, 0.1, 0.05])
    sols = [solve_fem(p, h) for h in hs]
    assert all(s.curved for s in sols)
    l2 = np.array([fem_errors(s, p.u_numpy)["l2_rel"] for s in sols])
    # measured: 6.3e-4, 7.9e-5, 1.0e-5 -> rate 2.96
    assert np.all(np.diff(l2) < 0)
    assert slope(hs, l2) > 2.5
    assert l2[-1] < 5e-5
    # every boundary P2 node is on the circle
    s = sols[0]
    D = s.basis.get_dofs().flatten()
    r = np.linalg.norm(s.basis.doflocs[:, D], axis=0)
    assert np.max(np.abs(r - 1)) < 1e-12


def test_disk_with_hole_converges():
    p = problem(Csg("difference", Ball([0, 0], 1), Ball([0.2, 0.1], 0.3)), "sin(2*x)*cos(y)")
    hs = np.array([0.2, 0.1, 0.05])
    l2 = errors(p, hs)
    h1 = errors(p, hs, "h1")
    # measured: L2 3.0e-4, 3.9e-5, 4.7e-6 (rate 3.0); H1 rate 2.0
    assert np.all(np.diff(l2) < 0) and np.all(np.diff(h1) < 0)
    assert slope(hs, l2) > 2.5


# ----------------------------------------------------------------------------------- 3-D
def test_cube_3d():
    p = problem(Box([0, 0, 0], [1, 1, 1]), "sin(pi*x)*sin(pi*y)*sin(pi*z)")
    e4, e8 = (fem_errors(solve_fem(p, h), p.u_numpy)["l2_rel"] for h in (1 / 4, 1 / 8))
    # measured: 1.6e-2 at h = 1/4, 2.0e-3 at h = 1/8 (4913 unknowns)
    assert e8 < 1e-2
    assert e8 < e4 / 5


def test_ball_3d_curved():
    p = problem(Ball([0, 0, 0], 1), "(1-x^2-y^2-z^2)*exp(x)", g="0")
    sols = [solve_fem(p, h) for h in (0.5, 0.25)]
    assert all(s.curved for s in sols)
    e = [fem_errors(s, p.u_numpy)["l2_rel"] for s in sols]
    # measured: 1.65e-2, 2.3e-3
    assert e[1] < e[0] / 4 and e[1] < 5e-3


# ---------------------------------------------------------------------- point evaluation
def test_u_and_grad_at_points():
    p = problem(Ball([0, 0], 1), "(1-x^2-y^2)*exp(x) + x*y", g=None)
    s = solve_fem(p, 0.05)
    rng = np.random.default_rng(3)
    r, a = np.sqrt(rng.random(5000)), 2 * np.pi * rng.random(5000)
    X = np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    on = np.stack([np.cos(a[:500]), np.sin(a[:500])], axis=1)  # on the circle: curved elements
    pts = np.concatenate([X, on])
    ue, ge = p.u_numpy(pts), p.grad_u_numpy(pts)

    u64 = s.u(torch.tensor(pts, dtype=torch.float64))
    g64 = s.grad(torch.tensor(pts, dtype=torch.float64))
    assert u64.dtype == torch.float64 and u64.shape == (len(pts),)
    assert g64.dtype == torch.float64 and g64.shape == (len(pts), 2)
    # measured: 9e-6 and 5e-4
    assert np.linalg.norm(u64.numpy() - ue) / np.linalg.norm(ue) < 1e-4
    assert np.linalg.norm(g64.numpy() - ge) / np.linalg.norm(ge) < 1e-3
    # on the curve: the P2 interpolant of g along the quadratic boundary (measured 3e-6)
    assert np.max(np.abs(u64.numpy()[-500:] - ue[-500:])) < 2e-5

    u32 = s.u(torch.tensor(pts, dtype=torch.float32))
    assert u32.dtype == torch.float32
    np.testing.assert_allclose(u32.numpy(), u64.numpy(), atol=1e-5)
    un = s.u(pts)  # numpy in, numpy out
    assert isinstance(un, np.ndarray) and un.dtype == np.float64
    np.testing.assert_array_equal(un, u64.numpy())
    # a point just outside the mesh gets the nearest element's polynomial, not garbage
    out = np.array([[1.0 + 1e-4, 0.0], [0.0, -1.0 - 1e-4]])
    np.testing.assert_allclose(s.u(out), p.u_numpy(out), atol=1e-4)
    with pytest.raises(FEMError, match=r"\(n, 2\)"):
        s.u(np.zeros((3, 3)))


def test_point_evaluation_matches_nodal_values_3d():
    p = problem(Box([0, 0, 0], [1, 1, 1]), "x*y + z^2 - x*z")  # quadratic: P2 is exact
    s = solve_fem(p, 1 / 3)
    X = np.random.default_rng(0).random((2000, 3))
    np.testing.assert_allclose(s.u(X), p.u_numpy(X), atol=1e-10)
    np.testing.assert_allclose(s.grad(X), p.grad_u_numpy(X), atol=1e-9)
    np.testing.assert_allclose(s.u(s.basis.doflocs.T), s.x, atol=1e-12)


# -------------------------------------------------------------------------- fem_reference
def test_fem_reference_stops_at_tol():
    p = problem(Box([0, 0], [1, 1]), "sin(pi*x)*sin(pi*y)")
    ref = fem_reference(p, tol=1e-3)
    # measured: h = sqrt(2)/16 -> sqrt(2)/32 changes by 3.5e-4 < 1e-3: one refinement
    assert ref.stop_reason == "tol" and ref.converged
    assert len(ref.history) == 2
    assert math.isnan(ref.history[0]["rel_change"])
    assert ref.estimated_rel_error == ref.history[-1]["rel_change"] < 1e-3
    assert ref.h == pytest.approx(math.sqrt(2) / 32)
    true = fem_errors(ref, p.u_numpy)["l2_rel"]
    assert true < ref.estimated_rel_error  # the estimate is conservative (measured 10x)

    tight = fem_reference(p)  # default tol 1e-4: two refinements (3.5e-4, then 3.3e-5)
    assert tight.stop_reason == "tol" and len(tight.history) == 3
    assert tight.estimated_rel_error < 1e-4
    assert tight.history[-1]["n_dofs"] == tight.n_dofs > ref.n_dofs


def test_fem_reference_budget_and_dof_cap(monkeypatch):
    p = problem(Box([0, 0], [1, 1]), "sin(pi*x)*sin(pi*y)")
    none = fem_reference(p, max_refinements=0)
    assert math.isnan(none.estimated_rel_error) and not none.converged
    assert none.stop_reason == "max_refinements"
    one = fem_reference(p, tol=1e-12, max_refinements=1, h0=0.25)
    assert one.stop_reason == "max_refinements" and not one.converged
    assert one.h == 0.125 and one.estimated_rel_error > 1e-12
    monkeypatch.setitem(F.DOF_CAP, 2, 1000)
    capped = fem_reference(p, tol=1e-12, h0=0.25)  # 0.125 has ~300 dofs, 0.0625 would be ~1200
    assert capped.stop_reason == "dof_cap" and capped.h == 0.125
    with pytest.raises(FEMError, match="tol"):
        fem_reference(p, tol=0)


def test_fem_reference_singular_source_without_exact_solution():
    # f = 1, g = 0 on the L-shape: no closed form; measured changes 4.4e-3, 2.2e-3.
    p = problem(Polygon(L_SHAPE), f="1", g="0")
    ref = fem_reference(p, tol=1e-3, max_refinements=2)
    assert ref.history[-1]["rel_change"] == ref.estimated_rel_error < 5e-3
    v = ref.u(np.array([[-0.5, -0.5], [0.5, -0.5]]))
    assert np.all(v > 0) and np.all(v < 0.3)


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kind", ["neumann", "mixed"])
def test_non_dirichlet_problems_are_refused(kind):
    p = problem(Box([0, 0], [1, 1]), "cos(pi*x)*cos(pi*y)", kind=kind)
    for call in (lambda: solve_fem(p, 0.25), lambda: fem_reference(p)):
        with pytest.raises(FEMUnsupported, match="supports Dirichlet problems only") as err:
            call()
        assert "\n" not in str(err.value) and kind in str(err.value) and err.value.reason == "boundary"
        assert "--" not in str(err.value)  # describes the problem, names no command-line flag


def test_bad_dimension_and_mesh_size():
    p4 = problem(Box([0] * 4, [1] * 4), "x1*x2")
    with pytest.raises(FEMUnsupported, match="1-, 2- and 3-D"):
        solve_fem(p4, 0.5)
    p = problem(Box([0, 0], [1, 1]), "x*y")
    for h in (0, -1, float("nan")):
        with pytest.raises(FEMError, match="mesh size"):
            solve_fem(p, h)
    assert issubclass(FEMError, ValueError)


# ------------------------------------------------------------------- with the real problems
problem_mod = pytest.importorskip("hrta_pde.poisson.catalog")


@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")  # DeepXDE
def test_builtin_lshape_problem():
    p = problem_mod.builtin_problem("poisson_lshape")
    hs = np.array([1 / 8, 1 / 16, 1 / 32])
    l2 = errors(p, hs)
    # measured: 1.5e-3, 4.2e-4, 1.6e-4 -> rate 1.62 (singular corner; H1 rate 0.76)
    assert 1.0 <= slope(hs, l2) <= 2.2
    assert l2[-1] < 1e-3
    ref = fem_reference(p, max_refinements=2)
    # measured: successive changes 1.4e-3, 4.1e-4; true relative error 3.9e-4
    assert ref.estimated_rel_error < 2e-3
    X = np.asarray(p.geometry.random_points(2000, random="Hammersley"), dtype=np.float64)
    assert np.linalg.norm(ref.u(X) - p.u_numpy(X)) / np.linalg.norm(p.u_numpy(X)) < 2e-3


def test_builtin_neumann_problem_is_refused():
    p = problem_mod.builtin_problem("poisson_neumann_square")
    with pytest.raises(FEMError, match="'poisson_neumann_square' has neumann"):
        fem_reference(p)
