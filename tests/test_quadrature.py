"""Gauss quadrature of domains and boundaries (sampler ``gauss``): exactness on polynomials against
closed forms, points where they belong, weighted losses against hand sums, the automatic choice."""
import math

import numpy as np
import pytest
import torch

from hrta_pde.errors import SettingError
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.geometry import Ball, Box, Polygon
from hrta_pde.poisson.losses import LossContext, pinn_loss, ritz_loss, sobolev_loss
from hrta_pde.poisson.quadrature import boundary_rule, check_gauss, interior_rule
from hrta_pde.poisson.solve import SolveConfig, decide_sampling, plan_solve
from hrta_pde.poisson.spec import problem_from_dict

T = torch.float64


def _box_monomial(lo, hi, powers):
    """int over the box of prod x_i^p_i, in closed form."""
    return math.prod((b ** (p + 1) - a ** (p + 1)) / (p + 1) for a, b, p in zip(lo, hi, powers))


@pytest.mark.parametrize("lo,hi,n", [([-1.0], [2.0], 12), ([0.0, -1.0], [2.0, 0.5], 400),
                                     ([0.0, 0.0, -1.0], [1.0, 2.0, 1.0], 3000)])
def test_box_rule_integrates_degree_9_per_cell_exactly(lo, hi, n):
    box = Box(lo, hi)
    x, w = interior_rule(box, n)
    assert (box.classify(x) == -1).all() and (w > 0).all()
    assert 0.5 * n <= len(x) <= 2 * n
    assert w.sum() == pytest.approx(box.measure, rel=1e-14)
    rng = np.random.default_rng(0)
    for _ in range(5):
        powers = rng.integers(0, 10, size=len(lo))
        exact = _box_monomial(lo, hi, powers)
        assert (w * np.prod(x**powers, axis=1)).sum() == pytest.approx(exact, rel=1e-12, abs=1e-13)


def test_box_boundary_rule_integrates_each_face_and_has_exact_normals():
    box = Box([0.0, -1.0, 0.5], [1.0, 2.0, 1.0])
    x, normal, face, w = boundary_rule(box, 600)
    assert (box.classify(x) == 0).all() and (w > 0).all()
    assert np.allclose(normal, box.normal(x))
    assert w.sum() == pytest.approx(box.boundary_measure, rel=1e-14)
    # int over the boundary of x^2 y^3 z^4 equals the sum of the face integrals (closed forms)
    exact = 0.0
    for k in range(6):
        axis, upper = k // 2, k % 2 == 1
        lo, hi, powers = list(box.lo), list(box.hi), [2, 3, 4]
        value = box.hi[axis] if upper else box.lo[axis]
        factor = value ** powers[axis]
        del lo[axis], hi[axis], powers[axis]
        exact += factor * _box_monomial(lo, hi, powers)
        assert set(np.unique(face[np.isclose(x[:, axis], value) & (normal[:, axis] != 0)])) == {k}
    assert (w * x[:, 0] ** 2 * x[:, 1] ** 3 * x[:, 2] ** 4).sum() == pytest.approx(exact, rel=1e-12)
    # 1-D: the two end points with weight 1
    x1, n1, _, w1 = boundary_rule(Box([-1.0], [3.0]), 10)
    assert x1[:, 0].tolist() == [-1.0, 3.0] and n1[:, 0].tolist() == [-1.0, 1.0] and w1.tolist() == [1.0, 1.0]


def test_polygon_rule_integrates_polynomials_on_the_lshape_and_its_edges():
    lshape = builtin_problem("poisson_lshape").shape
    x, w = interior_rule(lshape, 3000)
    assert (lshape.classify(x) == -1).all() and (w > 0).all()
    assert w.sum() == pytest.approx(3.0, rel=1e-13)
    # the L-shape is [-1,1]^2 without the square [0,1]x[-1,0]
    def integral(px, py):
        full = _box_monomial([-1, -1], [1, 1], [px, py])
        return full - _box_monomial([0, -1], [1, 0], [px, py])
    for px, py in [(0, 0), (2, 0), (4, 1), (3, 2), (5, 0)]:  # total degree <= 5: the rule's degree
        assert (w * x[:, 0] ** px * x[:, 1] ** py).sum() == pytest.approx(integral(px, py), rel=1e-12, abs=1e-13)
    xb, nb, _, wb = boundary_rule(lshape, 400)
    assert (lshape.classify(xb) == 0).all() and np.allclose(nb, lshape.normal(xb))
    assert wb.sum() == pytest.approx(8.0, rel=1e-14)
    # int over the boundary of x^2: each edge in closed form, (-1,-1)(0,-1)(0,0)(1,0)(1,1)(-1,1)
    exact = 1 / 3 + 0 + 1 / 3 + 1 + 2 / 3 + 2
    assert (wb * xb[:, 0] ** 2).sum() == pytest.approx(exact, rel=1e-12)


def test_a_triangle_and_a_clockwise_polygon_get_the_same_rule_quality():
    tri = Polygon([[0.0, 0.0], [0.0, 2.0], [3.0, 0.0]])  # clockwise
    x, w = interior_rule(tri, 500)
    assert w.sum() == pytest.approx(3.0, rel=1e-13)
    # int over the triangle of x y = a^2 b^2 / 24 for legs a = 3, b = 2
    assert (w * x[:, 0] * x[:, 1]).sum() == pytest.approx(9 * 4 / 24, rel=1e-12)


def test_polar_rule_integrates_the_disk_and_the_annulus_and_their_circles():
    """int x^2 y^4 over r0 < r < r1 is pi (r1^8 - r0^8) / 64; int x^2 over a circle of radius r is pi r^3."""
    for name, r0, r1 in (("poisson_disk", 0.0, 1.0), ("poisson_annulus", 0.5, 1.0)):
        shape = builtin_problem(name).shape
        x, w = interior_rule(shape, 2500)
        assert (shape.classify(x) == -1).all() and (w > 0).all()
        assert w.sum() == pytest.approx(shape.measure, rel=1e-14)
        assert (w * x[:, 0] ** 2 * x[:, 1] ** 4).sum() == pytest.approx(math.pi * (r1**8 - r0**8) / 64, rel=1e-12)
        xb, nb, _, wb = boundary_rule(shape, 200)
        assert (shape.classify(xb) == 0).all() and np.allclose(nb, shape.normal(xb))
        assert (wb * xb[:, 0] ** 2).sum() == pytest.approx(math.pi * (r1**3 + r0**3), rel=1e-12)


@pytest.mark.parametrize("shape", [Ball([0.0, 0.0, 0.0], 1.0), Box([0.0] * 4, [1.0] * 4)])
def test_shapes_without_a_rule_are_refused_with_the_alternative(shape):
    with pytest.raises(ProblemError, match="sampler 'gauss' has no rule for .*use sampler 'sobol'"):
        check_gauss(shape)


def test_gauss_for_a_3d_ball_is_a_setting_error_naming_the_sampler():
    ball = problem_from_dict({"domain": {"type": "ball", "center": [0.0, 0.0, 0.0], "radius": 1.0},
                              "solution": {"u": "x*y*z"}})
    with pytest.raises(SettingError, match="no rule for a 3-D ball domain.*use sampler=sobol"):
        plan_solve(ball, SolveConfig(loss="ritz").replace(sampler="gauss"))


def _context(problem, n=300, nb=120):
    x, w, b = problem.quadrature(n, nb, dtype=T)
    return LossContext(problem, x, b, beta=3.0, weights=w), x, w, b


def test_weighted_losses_are_the_quadrature_sums():
    p = problem_from_dict({"domain": {"type": "rectangle", "xmin": [0.0, 0.0], "xmax": [2.0, 1.0]},
                           "solution": {"u": "sin(x)*y", "a": "1 + x", "c": "2"},
                           "boundary": {"type": "dirichlet",
                                        "x_max": {"type": "robin", "alpha": "3"},
                                        "y_min": {"type": "neumann"}}})
    ctx, x, w, b = _context(p)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).to(T)
    xr, xb = x.clone().requires_grad_(True), b.x.clone().requires_grad_(True)
    u, ub = net(xr)[:, 0], net(xb)[:, 0]
    (gu,) = torch.autograd.grad(u.sum(), xr, create_graph=True)
    a, c, f = 1 + x[:, 0], torch.full_like(w, 2.0), p.f_torch(x)
    d, n_, r = b.dirichlet.to(T), b.neumann.to(T), b.robin.to(T)
    assert d.any() and n_.any() and r.any()
    wb = b.weight
    expected = {"energy": (w * (0.5 * a * (gu**2).sum(1) + 0.5 * c * u**2 - f * u)).sum(),
                "dirichlet": 3.0 * (wb * d * (ub - b.g) ** 2).sum(),
                "neumann": -(wb * (n_ + r) * b.h * ub).sum(),
                "robin": (wb * 0.5 * r * 3.0 * ub**2).sum()}
    got = ritz_loss(net, ctx)
    assert set(got) == set(expected)
    for k in expected:
        assert float(got[k]) == pytest.approx(float(expected[k]), rel=1e-12), k
    ustar, gstar = p.u_torch(x), p.grad_u_torch(x)
    sob = sobolev_loss(net, ctx)
    assert float(sob["value"]) == pytest.approx(float((w * (u - ustar) ** 2).sum() / 2.0), rel=1e-12)
    assert float(sob["gradient"]) == pytest.approx(float((w * ((gu - gstar) ** 2).sum(1)).sum() / 2.0), rel=1e-12)
    (gb,) = torch.autograd.grad(ub.sum(), xb, create_graph=True)
    dudn = (1 + b.x[:, 0]) * (gb * b.normal).sum(1)
    pinn = pinn_loss(net, ctx)
    assert float(pinn["dirichlet"]) == pytest.approx(float(3.0 * (wb * d * (ub - b.g) ** 2).sum() / (wb * d).sum()))
    assert float(pinn["neumann"]) == pytest.approx(float(3.0 * (wb * n_ * (dudn - b.h) ** 2).sum() / (wb * n_).sum()))
    rob = dudn + 3.0 * ub - b.h
    assert float(pinn["robin"]) == pytest.approx(float(3.0 * (wb * r * rob**2).sum() / (wb * r).sum()))


def test_weights_are_needed_inside_and_on_the_boundary_together():
    p = builtin_problem("poisson_2d_sin")
    x, w, b = p.quadrature(100, 40, dtype=T)
    with pytest.raises(ValueError, match="for both the interior points"):
        LossContext(p, x, b, beta=1.0)


def test_the_exact_ritz_energy_is_the_quadrature_energy_of_the_exact_solution():
    """On Gauss points the discrete energy of u* = sin(pi x) sin(pi y) is -pi^2/4 to 1e-12."""
    p = builtin_problem("poisson_2d_sin")
    ctx, *_ = _context(p, n=2500)
    energy = ritz_loss(lambda z: p.u_torch(z)[:, None], ctx)["energy"]
    assert float(energy) == pytest.approx(-math.pi**2 / 4, rel=1e-12)


def test_auto_sampling_is_gauss_for_ritz_where_a_rule_exists():
    square, disk = builtin_problem("poisson_2d_sin"), builtin_problem("poisson_disk")
    ritz = decide_sampling(square, SolveConfig(loss="ritz"))
    assert (ritz.sampling.sampler, ritz.sampling.points) == ("gauss", 2500)
    assert plan_solve(square, SolveConfig(loss="ritz")).config.hard_bc is True
    pinn = decide_sampling(square, SolveConfig(loss="pinn"))
    assert (pinn.sampling.sampler, pinn.sampling.points) == ("sobol", 1000)
    on_disk = plan_solve(disk, SolveConfig(loss="ritz")).config  # g from u, taken on the circle
    assert (on_disk.sampling.sampler, on_disk.sampling.points, on_disk.hard_bc) == ("gauss", 2500, True)
    holes = plan_solve(builtin_problem("poisson_square_holes"), SolveConfig(loss="ritz")).config
    assert holes.sampling.sampler == "sobol"  # a square minus disks: no rule
    given = decide_sampling(square, SolveConfig(loss="ritz").replace(points=700, sampler="random"))
    assert (given.sampling.sampler, given.sampling.points) == ("random", 700)
    # auto with fewer points than 8 per parameter (257): Sobol, since the network would fit the rule
    few = decide_sampling(square, SolveConfig(loss="ritz").replace(points=2000))
    assert (few.sampling.sampler, few.sampling.points) == ("sobol", 2000)
    assert decide_sampling(square, SolveConfig(loss="ritz").replace(points=2056)).sampling.sampler == "gauss"
    # 8 Gauss points per parameter: two layers of 32 have 2*32 + 32 + 32*32 + 32 + 32 + 1 = 1185
    deeper = decide_sampling(square, SolveConfig(loss="ritz").replace(depth=2, width=32))
    assert (deeper.sampling.sampler, deeper.sampling.points) == ("gauss", 8 * 1185)
    # 3-D: Sobol unless asked (the affordable rule was fitted by the network)
    cube = builtin_problem("poisson_3d_layers")
    assert decide_sampling(cube, SolveConfig(loss="ritz")).sampling.sampler == "sobol"
    assert decide_sampling(cube, SolveConfig(loss="ritz").replace(sampler="gauss")).sampling.points == 8 * 321


def test_automatic_exact_dirichlet_data_skips_trimmed_segments_for_pinn_only():
    """PINN needs Laplace phi, unbounded at the L-shape's re-entrant corner (its corner function):
    there the automatic choice is the penalty, unless the network has the singular inputs (on by
    default there); Ritz (first derivatives) keeps the exact data."""
    lshape = problem_from_dict({"domain": {"type": "lshape"}, "solution": {"f": "1"},
                                "boundary": {"type": "dirichlet", "g": "0"}})
    no_log = SolveConfig(loss="pinn", log_corner_inputs=False)  # f = 1, u = 0: r^2 log r at the convex corners
    assert plan_solve(lshape, no_log.replace(singular_inputs=False)).config.hard_bc is False
    assert plan_solve(lshape, no_log).config.hard_bc is True
    assert plan_solve(lshape, SolveConfig(loss="pinn", hard_bc=True)).config.hard_bc is True
    ritz = plan_solve(lshape, SolveConfig(loss="ritz")).config
    assert (ritz.sampling.sampler, ritz.hard_bc) == ("gauss", True)
    # lines and circles only (the square's sides do not cut the domain): smooth, exact data for PINN
    assert plan_solve(builtin_problem("poisson_square_holes"), SolveConfig(loss="pinn")).config.hard_bc is True


def test_compare_without_losses_is_one_line_and_exit_2(capsys, tmp_path):
    from hrta_pde.cli import main

    assert main(["compare", "poisson_1d", "--losses", ",", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no losses given: use e.g. --losses ritz,sobolev,pinn" in err
    assert not (tmp_path / "c").exists()


def test_cells_cut_by_an_interface_of_a_are_refined_and_aligned_interfaces_change_nothing():
    import math
    from hrta_pde.poisson.quadrature import interior_rule

    circle = builtin_problem("poisson_interface")  # a = 1 inside r = 1/2, 10 outside, on [-1, 1]^2
    x, w, _ = circle.quadrature(2500, 200, dtype=torch.float64)
    exact = 10 * 4 - 9 * math.pi * 0.25
    xu, wu = interior_rule(circle.shape, 2500)  # the same rule without the refinement
    err_cut = abs(float((w * circle.a_torch(x)).sum()) - exact)
    err_uniform = abs(float((torch.as_tensor(wu) * circle.a_torch(torch.as_tensor(xu))).sum()) - exact)
    assert float(w.sum()) == pytest.approx(4.0, rel=1e-13) and len(x) > len(xu)
    assert err_cut < err_uniform / 4  # measured: 3.3e-3 against 2.4e-2 (three halvings)
    for name in ("poisson_jump_robin", "poisson_3d_layers"):  # interfaces on cell faces: not cut
        p = builtin_problem(name)
        n = 2500 if p.dim == 2 else 8000
        xa, wa, _ = p.quadrature(n, 200, dtype=torch.float64)
        xb, wb = interior_rule(p.shape, n, singular=p._singular_points())  # (jump_robin: graded at its cross point)
        assert torch.equal(xa, torch.as_tensor(xb)) and torch.equal(wa, torch.as_tensor(wb))
