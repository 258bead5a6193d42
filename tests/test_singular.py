"""Corner singularities: the exponents, the network inputs Re w and Im w, their cutoff where the
domain wraps around a corner, the Gauss rule graded towards them, and the L-shape solved exactly."""
import math

import numpy as np
import pytest
import torch

from hrta_pde.engd import field_derivatives, point_features
from hrta_pde.errors import SettingError
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.quadrature import boundary_rule, interior_rule
from hrta_pde.poisson.singular import CornerFeature, corner_exponent, corner_features
from hrta_pde.poisson.solve import SolveConfig, load_run, plan_solve, solve
from hrta_pde.poisson.spec import problem_from_dict


def polygon(vertices, boundary=None, **solution):
    return problem_from_dict({"domain": {"type": "polygon", "vertices": vertices},
                              "solution": solution or {"f": "1"},
                              "boundary": boundary or {"type": "dirichlet", "g": "0"}})


def points_of(problem, n=2000, seed=0):
    return problem.sample_interior(n, generator=torch.Generator().manual_seed(seed), sampler="sobol",
                                   dtype=torch.float64)


def laplacian(fn, x):
    _, _, hess = field_derivatives(fn, x)
    return hess.diagonal(dim1=1, dim2=2).sum(-1)


def test_exponents_of_the_corner_kinds():
    assert corner_exponent(1.5 * math.pi, True, True) == pytest.approx(2 / 3, abs=1e-15)
    assert corner_exponent(1.5 * math.pi, False, False) == pytest.approx(2 / 3, abs=1e-15)
    assert corner_exponent(math.pi, True, False) == pytest.approx(0.5, abs=1e-15)  # D meets N on a line
    assert corner_exponent(math.pi / 2, False, True) == pytest.approx(1.0, abs=1e-15)  # smooth: no feature


def test_lshape_im_w_is_the_catalog_solution_and_both_inputs_are_harmonic():
    problem = builtin_problem("poisson_lshape")
    feats = corner_features(problem)
    assert len(feats) == 2 and all(f.cutoff is None for f in feats)
    assert np.allclose(feats[0].v, [0, 0]) and feats[0].lam == pytest.approx(2 / 3, abs=1e-14)
    x = points_of(problem)
    assert torch.allclose(feats[1](x), problem.u_torch(x).reshape(-1), rtol=0, atol=1e-14)
    for f in feats:
        assert laplacian(f, x).abs().max() < 1e-9
    re, im = feats[0](x), feats[1](x)
    r = x.norm(dim=1)
    assert torch.allclose(re**2 + im**2, r ** (4 / 3), rtol=1e-12, atol=0)


def test_convex_polygons_and_other_domains_have_no_features():
    assert corner_features(polygon([[0, 0], [1, 0], [1, 1], [0, 1]])) == []
    assert corner_features(builtin_problem("poisson_2d_sin")) == []
    assert corner_features(builtin_problem("poisson_disk")) == []


def test_dirichlet_meeting_neumann_on_a_straight_edge_gives_lam_one_half():
    # the bottom side is split at (0.5, 0): u = 0 left of it, du/dn = 0 right of it
    problem = polygon([[0, 0], [0.5, 0], [1, 0], [1, 1], [0, 1]],
                      boundary={"type": "dirichlet", "g": "0", "edge1": {"type": "neumann", "h": "0"}})
    feats = corner_features(problem)
    assert len(feats) == 2 and feats[0].lam == pytest.approx(0.5, abs=1e-14)
    assert np.allclose(feats[0].v, [0.5, 0.0])
    # theta runs from the Neumann edge (theta = 0, right) to the Dirichlet edge (theta = pi, left):
    # Re w = r^(1/2) cos(theta/2) vanishes on the Dirichlet edge and has du/dn = 0 on the Neumann one
    left = torch.tensor([[0.25, 0.0], [0.1, 0.0]], dtype=torch.float64)
    right = torch.tensor([[0.75, 0.0], [0.9, 0.0]], dtype=torch.float64)
    assert feats[0](left).abs().max() < 1e-15
    _, g, _ = field_derivatives(feats[0], right)
    assert g[:, 1].abs().max() < 1e-14


def test_a_domain_that_wraps_around_the_corner_gets_a_cutoff_and_stays_continuous():
    # a U shape: the exterior bisector of the notch's corner (2, 1) runs up-left through the notch
    # [1, 2] x [1, 3] and enters the left arm at x = 1, where theta would jump by 2 pi
    problem = polygon([[0, 0], [4, 0], [4, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]])
    corner = torch.tensor([2.0, 1.0], dtype=torch.float64)
    feats = [f for f in corner_features(problem) if np.allclose(f.v, corner.numpy())]
    assert len(feats) == 2 and all(f.cutoff == pytest.approx(1.0, abs=1e-12) for f in feats)
    x = points_of(problem, 4000)
    dist = (x - corner).norm(dim=1)
    t = torch.linspace(0.0, 2.5, 2501, dtype=torch.float64)[1:, None]
    b = -torch.as_tensor(feats[0].b)
    ray = corner + t * b
    inside = torch.as_tensor(problem.shape.classify(ray.numpy()) == -1)
    assert inside.any()
    side = 1e-7 * torch.stack([-b[1], b[0]])
    for f in feats:
        v = f(x)
        assert torch.isfinite(v).all() and v[dist >= 1.0].abs().max() == 0
        assert (f(ray + side) - f(ray - side)).abs()[inside].max() < 1e-12
    near = dist <= 0.5  # inside half the cutoff radius: |w|^2 = r^(2 lam), uncut
    w2 = feats[0](x[near]) ** 2 + feats[1](x[near]) ** 2
    assert near.any() and torch.allclose(w2, dist[near] ** (2 * feats[0].lam), rtol=1e-12, atol=0)
    # the same feature without the cutoff jumps across the ray inside the domain
    uncut = CornerFeature(feats[0].v, feats[0].start, feats[0].omega, feats[0].lam, 0, None)  # Re w
    assert (uncut(ray + side) - uncut(ray - side)).abs()[inside].max() > 0.1


def test_graded_gauss_rule_integrates_the_singular_energy():
    problem = builtin_problem("poisson_lshape")
    u = corner_features(problem)[1]  # harmonic, so int |grad u|^2 = int_boundary u du/dn
    xb, nrm, _, wb = boundary_rule(problem.shape, 4000)
    xb = torch.as_tensor(xb)
    _, gb, _ = field_derivatives(u, xb)
    exact = float((torch.as_tensor(wb) * u(xb) * (gb * torch.as_tensor(nrm)).sum(1)).sum())

    def energy(singular):
        x, w = interior_rule(problem.shape, 2500, singular=singular)
        _, g, _ = field_derivatives(u, torch.as_tensor(x))
        return float((torch.as_tensor(w) * (g * g).sum(1)).sum())

    assert abs(energy(()) - exact) > 1e-4 * exact
    assert abs(energy(problem._singular_points()) - exact) < 1e-5 * exact  # 8e-4 -> 1.5e-6


def test_settings_turn_the_inputs_on_where_they_apply_and_refuse_them_elsewhere():
    lshape = builtin_problem("poisson_lshape")
    assert plan_solve(lshape, SolveConfig(loss="pinn")).config.singular_inputs
    assert not plan_solve(lshape, SolveConfig(loss="pinn", singular_inputs=False)).config.singular_inputs
    assert not plan_solve(builtin_problem("poisson_2d_sin"), SolveConfig(loss="pinn")).config.singular_inputs
    with pytest.raises(SettingError, match="no point where u is singular"):
        plan_solve(builtin_problem("poisson_2d_sin"), SolveConfig(loss="pinn", singular_inputs=True))
    with pytest.raises(SettingError, match="singular inputs need"):
        plan_solve(lshape, SolveConfig.from_dict({"loss": "ritz", "net": "paper", "singular_inputs": True,
                                                  "schedule": "1:1"}))
    assert not plan_solve(lshape, SolveConfig.from_dict({"loss": "ritz", "net": "paper",
                                                         "schedule": "1:1"})).config.singular_inputs


def test_forward_laplacian_with_singular_inputs_equals_autograd():
    from hrta_pde.poisson.solve import Setup

    problem = builtin_problem("poisson_lshape")
    plan = plan_solve(problem, SolveConfig.from_dict(dict(loss="pinn", width=10, points=50, device="cpu")))
    net = Setup(problem, plan.config).net
    assert net.linears[0].in_features == 4
    feats = point_features(net)
    params = {n: p.detach() for n, p in net.named_parameters()}
    x = points_of(problem, 20, seed=3)
    u, g, lap = torch.func.vmap(feats, in_dims=(None, 0))(params, x)
    xr = x.clone().requires_grad_(True)
    ua = net(xr)[:, 0]
    (ga,) = torch.autograd.grad(ua.sum(), xr, create_graph=True)
    lapa = sum(torch.autograd.grad(ga[:, i].sum(), xr, retain_graph=True)[0][:, i] for i in range(2))
    assert torch.allclose(u, ua, rtol=0, atol=1e-12) and torch.allclose(g, ga, rtol=0, atol=1e-11)
    assert torch.allclose(lap, lapa, rtol=1e-10, atol=1e-9)


def test_pinn_on_the_lshape_finds_its_singular_solution_and_the_run_reads_back(tmp_path):
    problem = builtin_problem("poisson_lshape")
    cfg = SolveConfig.from_dict(dict(schedule="1:40@engd", test_points=2000, device="cpu"))
    res = solve(problem, cfg, checkpoint_dir=tmp_path)
    assert res.config.singular_inputs
    assert res.metrics["rel_l2"] < 1e-5  # without the inputs: 1e-2 and worse (benchmarks/README.md)
    from hrta_pde.poisson.runfolder import write_run

    write_run(res, problem, tmp_path)
    _, saved_cfg, net, _ = load_run(tmp_path)
    assert saved_cfg.singular_inputs and net.linears[0].in_features == 4
    x = points_of(problem, 20)
    assert torch.equal(net(x), res.net(x))


# ----------------------------------------------------------------------------------------------
# points where straight interfaces of a cross or meet a side
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [10.0, 100.0])
def test_checkerboard_exponent_is_kelloggs(ratio):
    from hrta_pde.poisson.singular import sector_modes

    modes = sector_modes([math.pi / 2] * 4, [ratio, 1, ratio, 1])
    # Kellogg (1975): the checkerboard's exponent is (4/pi) arctan(1/sqrt(R))
    # (the root is where trace(T) only touches 2: found to ~1e-10)
    assert [m[0] for m in modes] == pytest.approx([4 / math.pi * math.atan(1 / math.sqrt(ratio))], abs=1e-9)
    assert sector_modes([1.5 * math.pi], [3.0], ("D", "D"))[0][0] == pytest.approx(2 / 3, abs=1e-12)
    assert sector_modes([math.pi / 2] * 4, [2.0] * 4) == []  # no jump: nothing singular below 1
    assert sector_modes([math.pi / 2, math.pi / 2], [1.0, ratio], ("N", "N")) == []  # across a straight side


def test_jump_robin_cross_point_feature_is_continuous_with_continuous_flux_and_harmonic():
    from hrta_pde.poisson.singular import interface_cross_features

    problem = builtin_problem("poisson_jump_robin")
    feats = interface_cross_features(problem)
    lam = 4 / math.pi * math.atan(1 / math.sqrt(10))
    centre = [f for f in feats if np.allclose(f.v, [0.5, 0.5])]
    assert [f.lam for f in centre] == pytest.approx([lam, 2 - lam], abs=1e-9)  # the modes below 2
    assert all(f.cutoff == pytest.approx(0.5) for f in centre)
    # where the interfaces meet the Robin sides: the r log r inputs
    assert sorted(tuple(f.v) for f in feats if type(f).__name__ == "LogSectorFeature") == \
        [(0.0, 0.5), (0.5, 0.0), (0.5, 1.0), (1.0, 0.5)]
    for f in centre:
        _check_sector_feature(problem, f)


def _check_sector_feature(problem, f):
    s = torch.linspace(0.05, 0.3, 6, dtype=torch.float64)
    for j, (ray, normal) in enumerate([((0.5 + 0 * s, 0.5 + s), (1.0, 0.0)), ((0.5 + 0 * s, 0.5 - s), (1.0, 0.0)),
                                       ((0.5 + s, 0.5 + 0 * s), (0.0, 1.0)), ((0.5 - s, 0.5 + 0 * s), (0.0, 1.0))]):
        x = torch.stack(ray, dim=1)
        level = 0 if normal[0] else 1  # psi_0 = x - 1/2, psi_1 = y - 1/2: normals point to psi > 0
        n = torch.tensor(normal, dtype=torch.float64)
        _, gp, _ = field_derivatives(lambda y: f(y, (level, 1)), x)
        _, gm, _ = field_derivatives(lambda y: f(y, (level, -1)), x)
        ap = torch.as_tensor(problem.a_numpy((x + 1e-9 * n).numpy()))
        am = torch.as_tensor(problem.a_numpy((x - 1e-9 * n).numpy()))
        assert (ap != am).all()
        flux = ap * (gp @ n) - am * (gm @ n)
        assert flux.abs().max() < 1e-10 * (ap * (gp @ n)).abs().max()
        h = 1e-8 * n
        assert (f(x + h) - f(x - h)).abs().max() < 1e-6 * f(x).abs().max()
    x = points_of(problem, 3000)
    r = (x - 0.5).norm(dim=1)
    lap = laplacian(f, x)
    assert lap[r < 0.25].abs().max() < 1e-9 and f(x)[r >= 0.5].abs().max() == 0


def test_slanted_or_curved_interfaces_and_other_domains_get_no_cross_features():
    from hrta_pde.poisson.singular import interface_cross_features

    box = {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]}

    def problem(a, domain=box):
        return problem_from_dict({"domain": domain, "solution": {"a": a, "f": "1"},
                                  "boundary": {"type": "dirichlet", "g": "0"}})

    assert interface_cross_features(problem("where(x^2 + y^2 < 0.25, 1, 10)")) == []  # curved
    assert interface_cross_features(problem("where(x < 0.5, 1, 10)")) == []  # meets the sides: lam = 1
    assert interface_cross_features(problem("where((x - y)*(x + y - 1) < 0, 1, 10)")) == []  # one quadratic level
    # two slanted lines crossing at the centre, a checkerboard of their four sectors
    slanted = interface_cross_features(problem("where(x < y, where(x + y < 1, 1, 10), where(x + y < 1, 10, 1))"))
    assert len(slanted) == 2 and np.allclose(slanted[0].v, [0.5, 0.5])
    assert slanted[0].lam == pytest.approx(4 / math.pi * math.atan(1 / math.sqrt(10)), abs=1e-9)


def test_fem_reference_on_a_box_takes_a_mesh_along_the_interfaces_and_keeps_p2s_rate():
    from hrta_pde.poisson.fem import fem_errors, solve_fem

    # a = 1 | 5 across x = 1/3 (no multiple of the mesh size): u continuous, a du/dx continuous
    p = problem_from_dict({"domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]},
                           "solution": {"a": "where(x < 1/3, 1, 5)",
                                        "u": "where(x < 1/3, x, 1/3 + (x - 1/3)/5 - (x - 1/3)^2) * sin(pi*y)"},
                           "boundary": {"type": "dirichlet"}})
    errs = [fem_errors(solve_fem(p, h), p.u_numpy)["l2_rel"] for h in (0.1, 0.05)]
    assert math.log2(errs[0] / errs[1]) > 2.7 and errs[1] < 1e-4


def _autograd_fields(net, x):
    xr = x.clone().requires_grad_(True)
    ua = net(xr)[:, 0]
    (ga,) = torch.autograd.grad(ua.sum(), xr, create_graph=True)
    lapa = sum(torch.autograd.grad(ga[:, i].sum(), xr, retain_graph=True)[0][:, i] for i in range(x.shape[1]))
    return ua, ga, lapa


def test_forward_laplacian_with_sector_inputs_equals_autograd_also_one_sided():
    from hrta_pde.poisson.interfaces import interface_points
    from hrta_pde.poisson.solve import Setup

    problem = builtin_problem("poisson_jump_robin")
    plan = plan_solve(problem, SolveConfig.from_dict(dict(loss="pinn", width=10, points=50, device="cpu")))
    assert plan.config.singular_inputs and plan.config.interface_inputs
    setup = Setup(problem, plan.config)
    net, inputs = setup.net, setup.inputs
    assert net.linears[0].in_features == 2 + 2 + 2 + 4  # x, |psi_0|, |psi_1|, two modes, four r log r
    feats = point_features(net)
    params = {n: p.detach() for n, p in net.named_parameters()}
    x = points_of(problem, 20, seed=3)
    u, g, lap = torch.func.vmap(feats, in_dims=(None, 0))(params, x)
    ua, ga, lapa = _autograd_fields(net, x)
    assert torch.allclose(u, ua, rtol=0, atol=1e-12) and torch.allclose(g, ga, rtol=0, atol=1e-10)
    assert torch.allclose(lap, lapa, rtol=1e-9, atol=1e-8)
    batch = interface_points(problem, inputs, 30, generator=torch.Generator().manual_seed(1))[0]
    for side in (1, -1):
        with inputs.one_sided(batch.j, side):
            u1, g1, _ = torch.func.vmap(feats, in_dims=(None, 0))(params, batch.x)
            ua1, ga1, _ = _autograd_fields(net, batch.x)
            # the one-sided values are the limits from that side
            ub = net(batch.x + 1e-9 * side * batch.normal)[:, 0]
        assert torch.allclose(u1, ua1, atol=1e-12) and torch.allclose(g1, ga1, atol=1e-10)
        assert torch.allclose(u1, ub, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sector_feature_sides_on_rays_near_theta_zero_and_on_the_boundary(dtype):
    """Points on a ray take the sector of the side asked for, in float32 too; points just below the
    start ray (theta near 2 pi) and points on the domain's side get their own sector's value."""
    from hrta_pde.poisson.singular import interface_cross_features

    box = {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]}
    # a slanted line from the left side to the top side, Dirichlet: the crossing with the top side
    problem = problem_from_dict({"domain": box, "solution": {"a": "where(y - x - 0.5 > 0, 1, 100)", "f": "1"},
                                 "boundary": {"type": "dirichlet", "g": "0"}})
    feats = interface_cross_features(problem)
    top = [f for f in feats if np.allclose(f.v, [0.5, 1.0])]
    assert top and top[0].lam < 1
    f = top[0]
    side_pts = torch.tensor([[0.45, 1.0], [0.3, 1.0], [0.7, 1.0], [0.9, 1.0]], dtype=dtype)
    assert f(side_pts).abs().max() < 1e-6  # u = 0 on a Dirichlet side: mu = 0 on both boundary rays
    inner = side_pts - torch.tensor([0.0, 1e-6], dtype=dtype)
    assert torch.allclose(f(side_pts), f(inner), atol=1e-5)
    # the jump_robin crossing: just below theta = 0 (y = 1/2 - tiny, x > 1/2) and on the ray itself
    jr = interface_cross_features(builtin_problem("poisson_jump_robin"))[0]
    s = torch.linspace(0.05, 0.3, 5, dtype=torch.float64)
    on = torch.stack([0.5 + s, 0.5 + 0 * s], dim=1)
    below = on - torch.tensor([0.0, 5e-17], dtype=torch.float64)
    assert torch.allclose(jr(below, (1, 1)), jr(on + torch.tensor([0.0, 1e-12], dtype=torch.float64)), atol=1e-9)
    assert torch.allclose(jr(below, (1, -1)), jr(on - torch.tensor([0.0, 1e-12], dtype=torch.float64)), atol=1e-9)
    xs = on.to(dtype).requires_grad_(True)
    grads = []
    for side in (1, -1):
        (g,) = torch.autograd.grad(jr(xs, (1, side)).sum(), xs)
        grads.append(g[:, 1])
    a_up, a_down = 1.0, 10.0  # right of x = 1/2: a = 1 above y = 1/2, 10 below
    flux = a_up * grads[0] - a_down * grads[1]
    assert flux.abs().max() < (1e-9 if dtype == torch.float64 else 1e-3) * grads[0].abs().max()


def test_an_interface_through_a_corner_gives_the_corners_sector_modes_instead():
    from hrta_pde.poisson.singular import sector_modes, singular_features

    p = problem_from_dict({"domain": {"type": "lshape"}, "solution": {"a": "where(x < 0, 1, 10)", "f": "1"},
                           "boundary": {"type": "dirichlet", "g": "0"}})
    feats = singular_features(p)
    assert feats and all(type(f).__name__ == "SectorFeature" and np.allclose(f.v, [0, 0]) for f in feats)
    # the re-entrant corner's 3 pi / 2 split by x = 0 into pi / 2 (a = 10, from the edge y = 0, x > 0)
    # and pi (a = 1), Dirichlet on both edges
    expected = [m[0] for m in sector_modes([math.pi / 2, math.pi], [10.0, 1.0], ("D", "D"), lam_max=2 - 1e-9)]
    assert [f.lam for f in feats] == pytest.approx([x for x in expected if abs(x - round(x)) > 1e-6], abs=1e-9)
    assert feats[0].lam == pytest.approx(0.8632223481741272, abs=1e-9) and feats[0].lam != pytest.approx(2 / 3)


def test_exact_dirichlet_data_give_way_where_a_singular_point_lies_on_a_dirichlet_part():
    """phi vanishes like the distance to a Dirichlet side, u like r^lam: N = u / phi ~ r^(lam - 1) is
    unbounded, so the automatic choice is the penalty there (both losses); the L-shape's corner,
    where phi is the corner function and the network has its corner inputs, keeps the exact data."""
    def dirichlet(domain, a):
        return problem_from_dict({"domain": domain, "solution": {"a": a, "f": "1"},
                                  "boundary": {"type": "dirichlet", "g": "0"}})

    box = dirichlet({"type": "rectangle", "xmin": [-1, -2], "xmax": [3, 1]},
                    "where(y - 0.3*x - 0.1 < 0, where(x + 0.7*y - 0.2 < 0, 1, 10), where(x + 0.7*y - 0.2 < 0, 10, 1))")
    assert any(f.lam < 1 and np.allclose(f.v, [1.6, -2]) for f in interface_cross_features_of(box))  # on a side
    for loss in ("pinn", "ritz"):
        assert plan_solve(box, SolveConfig(loss=loss)).config.hard_bc is False
        off = SolveConfig(loss=loss, singular_inputs=False, log_corner_inputs=False)  # f = 1, u = 0: r^2 log r too
        assert plan_solve(box, off).config.hard_bc is True
    # a plus-shaped polygon whose re-entrant corner (1, 1) an interface passes: no corner input there,
    # so its corner function would leave N ~ r^(lam - 2/3)
    plus = [[1, -3], [1, -1], [3, -1], [3, 1], [1, 1], [1, 3], [-1, 3], [-1, 1], [-3, 1], [-3, -1], [-1, -1], [-1, -3]]
    p = dirichlet({"type": "polygon", "vertices": plus}, "where(x + y - 2 < 0, 1, 10)")
    assert plan_solve(p, SolveConfig(loss="pinn")).config.hard_bc is False
    lshape = dirichlet({"type": "lshape"}, "1")
    assert plan_solve(lshape, SolveConfig(loss="pinn", log_corner_inputs=False)).config.hard_bc is True
    assert plan_solve(lshape, SolveConfig(loss="pinn")).config.hard_bc is False  # the r^2 log r inputs


def interface_cross_features_of(problem):
    from hrta_pde.poisson.singular import interface_cross_features

    return interface_cross_features(problem)


def test_a_coefficient_that_kinks_without_jumping_gives_no_modes():
    from hrta_pde.poisson.singular import interface_cross_features

    p = problem_from_dict({"domain": {"type": "rectangle", "xmin": [-1, -2], "xmax": [3, 1]},
                           "solution": {"a": "where(y - 0.7*x - 0.1 < 0, 9 + 5*x, 9 + 5*x + 30*(y - 0.7*x - 0.1))",
                                        "f": "1"},
                           "boundary": {"type": "dirichlet", "g": "0"}})
    assert interface_cross_features(p) == []


# ----------------------------------------------------------------------------------------------
# r log r where an interface meets a side whose data excite the lam = 1 mode
# ----------------------------------------------------------------------------------------------
def _one_interface(boundary, **solution):
    return problem_from_dict({"domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]},
                              "solution": {"a": "where(x < 0.5, 1, 10)", **(solution or {"f": "1"})},
                              "boundary": boundary})


def test_log_feature_is_harmonic_with_continuous_value_and_flux_and_constant_boundary_flux():
    from hrta_pde.poisson.singular import LogSectorFeature

    p = _one_interface({"type": "robin", "alpha": "1", "h": "0"})
    feats = singular_features_of(p)
    assert [type(f).__name__ for f in feats] == ["LogSectorFeature"] * 2
    f = next(f for f in feats if np.allclose(f.v, [0.5, 0.0]))
    assert isinstance(f, LogSectorFeature) and f.lam == 1.0
    x = points_of(p, 3000)
    r = (x - torch.tensor([0.5, 0.0], dtype=torch.float64)).norm(dim=1)
    off = (x[:, 0] - 0.5).abs() > 1e-6
    assert laplacian(f, x)[(r < f.cutoff / 2) & off].abs().max() < 1e-9
    y = torch.tensor([0.01, 0.05, 0.2], dtype=torch.float64)
    ray = torch.stack([0.5 + 0 * y, y], dim=1)
    n = torch.tensor([1.0, 0.0], dtype=torch.float64)
    _, gm, _ = field_derivatives(lambda z: f(z, (0, -1)), ray)
    _, gp, _ = field_derivatives(lambda z: f(z, (0, 1)), ray)
    assert torch.allclose(1.0 * (gm @ n), 10.0 * (gp @ n), rtol=1e-12, atol=1e-12)  # a du/dn continuous
    assert torch.allclose(f(ray - 1e-9 * n), f(ray + 1e-9 * n), atol=1e-8)
    for side in (-1, 1):  # a du/dn on the side y = 0 is the same at every distance from the point
        pts = torch.tensor([[0.5 + side * t, 0.0] for t in (1e-4, 1e-3, 1e-2, 0.1)], dtype=torch.float64)
        _, g, _ = field_derivatives(f, pts)
        a = torch.as_tensor(p.a_numpy(pts.numpy()))
        flux = -a * g[:, 1]
        assert torch.allclose(flux, flux[:1].expand(4), rtol=1e-10, atol=1e-12)
    _, g0, _ = field_derivatives(f, torch.tensor([[0.5 - 1e-5, 1e-5], [0.5 - 1e-3, 1e-3]], dtype=torch.float64))
    assert g0[0].norm() - g0[1].norm() > 1.0  # the gradient grows like log r


def test_log_feature_only_where_the_data_can_excite_it():
    # u = 0 on the sides: g has no slope at (0.5, 0) and (0.5, 1): no r log r, no feature
    assert singular_features_of(_one_interface({"type": "dirichlet", "g": "0"})) == []
    assert len(singular_features_of(_one_interface({"type": "dirichlet", "g": "x"}))) == 2
    assert singular_features_of(_one_interface({"type": "neumann", "h": "0"}, f="0", c="1")) == []
    assert len(singular_features_of(_one_interface({"type": "neumann", "h": "1"}, f="0", c="1"))) == 2
    assert len(singular_features_of(_one_interface({"type": "robin", "alpha": "1", "h": "0"}))) == 2
    # data that a kinked, piecewise smooth u takes (its g has slopes, its flux a du/dn jumps along the
    # side): no r log r, so no input (and the exact Dirichlet data stay)
    kinked = "where(x < 0.5, x, 0.5 + (x - 0.5)/4)*(1 + y)"
    for bc, extra in (({"type": "dirichlet"}, {}), ({"type": "neumann"}, {"c": "1"})):
        p = problem_from_dict({"domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]},
                               "solution": {"a": "where(x < 0.5, 1, 4)", "u": kinked + " + 1", **extra},
                               "boundary": bc})
        assert singular_features_of(p) == []
    p = problem_from_dict({"domain": {"type": "rectangle", "xmin": [0, 0], "xmax": [1, 1]},
                           "solution": {"a": "where(x < 0.5, 1, 4)", "u": kinked}, "boundary": {"type": "dirichlet"}})
    assert plan_solve(p, SolveConfig(loss="pinn")).config.hard_bc is True


def singular_features_of(problem):
    from hrta_pde.poisson.singular import singular_features

    return singular_features(problem)


def test_problems_show_lists_the_singular_points():
    from hrta_pde.poisson.catalog import describe_parts

    text = describe_parts(builtin_problem("poisson_jump_robin"))
    assert "#   (0.5, 0.5): u ~ r^0.39" in text and "#   (0.5, 0): u ~ r log r" in text
    assert "#   (0, 0): u ~ r^0.6667" in describe_parts(builtin_problem("poisson_lshape"))
    assert "singular" not in describe_parts(builtin_problem("poisson_2d_sin"))
    assert "#   (0, 0): u ~ r^2 log r" in describe_parts(builtin_problem("poisson_torsion"))


def test_too_many_singular_points_give_no_inputs_or_one_line_when_asked_for():
    import time

    from hrta_pde.poisson.catalog import describe_parts
    from hrta_pde.poisson.singular import MAX_SINGULAR_FEATURES

    n = MAX_SINGULAR_FEATURES  # a star with n re-entrant corners: 2 n inputs
    ang = np.linspace(0, 2 * math.pi, 2 * n, endpoint=False)
    r = np.where(np.arange(2 * n) % 2 == 0, 1.0, 0.5)
    star = polygon(np.stack([r * np.cos(ang), r * np.sin(ang)], axis=1).tolist())
    t = time.perf_counter()
    assert not plan_solve(star, SolveConfig(loss="pinn")).config.singular_inputs
    with pytest.raises(SettingError) as err:
        plan_solve(star, SolveConfig(loss="pinn", singular_inputs=True))
    assert "32 singular corners, more inputs than the 32" in str(err.value) and "\n" not in str(err.value)
    assert "the network gets none" in describe_parts(star)
    assert time.perf_counter() - t < 30


# ----------------------------------------------------------------------------------------------
# right-angled Dirichlet corners: r^2 log r
# ----------------------------------------------------------------------------------------------
def square(solution=None, boundary=None):
    return problem_from_dict({"domain": {"type": "box", "xmin": [0.0, 0.0], "xmax": [1.0, 1.0]},
                              "solution": solution or {"f": "1"},
                              "boundary": boundary or {"type": "dirichlet", "g": "0"}})


def test_log_corner_feature_is_im_z2_log_z_harmonic_and_gives_the_torsion_singularity():
    """At the corner (0, 0) of the unit square: the feature is ``Im(z^2 log(z / R))``, harmonic,
    0 on the edge ``theta = 0``, and ``-y^2/2 - (F + 2 log(R) x y) / pi`` solves ``-Laplace w = 1``
    with ``w = 0`` on both edges: the term that ``f = 1``, ``u = 0`` give ``u``."""
    from hrta_pde.poisson.singular import log_corner_features

    feats = log_corner_features(square())
    assert len(feats) == 4
    f = next(c for c in feats if np.allclose(c.v, [0.0, 0.0]))
    x = points_of(square(), 500)
    z = x[:, 0].numpy() + 1j * x[:, 1].numpy()
    R = math.sqrt(2.0)
    np.testing.assert_allclose(f(x).numpy(), np.imag(z**2 * np.log(z / R)), rtol=0, atol=1e-14)
    np.testing.assert_allclose(laplacian(f, x).numpy(), 0.0, atol=1e-10)

    def w(p):
        return -p[..., 1] ** 2 / 2 - (f(p) + 2 * math.log(R) * p[..., 0] * p[..., 1]) / math.pi

    np.testing.assert_allclose(-laplacian(w, x).numpy(), 1.0, atol=1e-10)
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    for edge in (torch.stack([t, 0 * t], 1), torch.stack([0 * t, t], 1)):
        np.testing.assert_allclose(w(edge).numpy(), 0.0, atol=1e-15)


def test_log_corners_only_where_no_smooth_u_takes_the_data():
    """``m = f + a (g0'' + g1'') + grad a . grad u - c g`` at the vertex: the torsion square and data
    ``g = x^2`` with ``f = 0`` have it, exact smooth solutions (also with ``a``, ``c``) and a
    harmonic ``g`` do not; a Neumann side takes the corner out; so do other domains."""
    from hrta_pde.poisson.singular import log_corner_features

    assert len(log_corner_features(square({"f": "0"}, {"type": "dirichlet", "g": "x^2"}))) == 4
    assert log_corner_features(square({"f": "0"}, {"type": "dirichlet", "g": "x^2 - y^2"})) == []
    assert log_corner_features(square({"u": "exp(x) * cos(3*y) + x*y^2", "a": "2 + x", "c": "1 + y"},
                                      {"type": "dirichlet"})) == []
    assert log_corner_features(square({"f": "0"})) == []
    mixed = square(boundary={"type": "dirichlet", "g": "0", "x_min": {"type": "neumann", "h": "0"}})
    assert sorted(map(tuple, (c.v.tolist() for c in log_corner_features(mixed)))) == [(1.0, 0.0), (1.0, 1.0)]
    for name in ("poisson_2d_sin", "poisson_lshape", "poisson_mixed_square", "poisson_jump_robin", "poisson_disk"):
        assert log_corner_features(builtin_problem(name)) == [], name
    lshape = polygon([[0, 0], [1, 0], [1, 1], [-1, 1], [-1, -1], [0, -1]])
    assert len(log_corner_features(lshape)) == 5  # the convex corners; the re-entrant one has r^(2/3)


def test_log_corner_inputs_take_the_penalty_for_pinn_and_stay_out_of_the_exact_data():
    """PINN on the torsion square: the inputs with the penalty (``g + phi N`` cannot carry the
    term); Ritz keeps the exact data and goes without them; asked where there are none: one line;
    a run folder written before the setting existed reads back without them."""
    pinn = plan_solve(square(), SolveConfig(loss="pinn")).config
    assert pinn.log_corner_inputs and not pinn.hard_bc and not pinn.singular_inputs
    ritz = plan_solve(square(), SolveConfig(loss="ritz")).config
    assert ritz.hard_bc and not ritz.log_corner_inputs
    assert not plan_solve(square(), SolveConfig(loss="pinn", hard_bc=True)).config.log_corner_inputs
    assert not plan_solve(square(), SolveConfig(loss="pinn", log_corner_inputs=False)).config.log_corner_inputs
    with pytest.raises(SettingError) as err:
        plan_solve(builtin_problem("poisson_2d_sin"), SolveConfig(log_corner_inputs=True))
    assert "no right-angled corner" in str(err.value) and "\n" not in str(err.value)
    from hrta_pde.poisson.settings import saved_config

    assert saved_config({"loss": "pinn"}).log_corner_inputs is False


def test_pinn_on_the_torsion_square_with_the_log_corner_inputs_against_fem():
    """``-Laplace u = 1``, ``u = 0`` on the unit square: with the inputs PINN gets below 1e-4 of the
    FEM reference in 30 steps (without them it stalls near 1e-3: benchmarks/README.md)."""
    from hrta_pde.poisson.fem import fem_reference

    problem = square()
    cfg = SolveConfig.from_dict(dict(schedule="1:30@engd", test_points=2000, device="cpu"))
    res = solve(problem, cfg, reference=fem_reference(problem))
    assert res.config.log_corner_inputs and res.metrics["rel_l2"] < 1e-4


def test_log_corners_for_steep_or_singular_data_and_in_bounded_time():
    """Steep smooth exact solutions give no input (everything is taken at the vertex); an exact
    ``u`` that has the term itself (its data are singular at the vertex) gives one there; a polygon
    of 400 vertices without a right angle is searched in well under a second."""
    import time

    from hrta_pde.poisson.singular import log_corner_features

    for u in ("exp(3000*(x-1))*cos(y)", "sin(1000*x)*cos(1000*y) + x"):
        assert log_corner_features(square({"u": u}, {"type": "dirichlet"})) == [], u
    singular = square({"u": "x*y*log(x^2+y^2) + (x^2-y^2)*atan2(y,x) + exp(x)*y"}, {"type": "dirichlet"})
    assert [c.v.tolist() for c in log_corner_features(singular)] == [[0.0, 0.0]]
    th = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    many = polygon(np.c_[np.cos(th), np.sin(th)].tolist())
    t = time.perf_counter()
    assert log_corner_features(many) == []
    assert time.perf_counter() - t < 2.0


def test_no_log_corner_inputs_in_3d():
    """The edges of a 3-D box have the term too, but its inputs with the penalty did worse than the
    exact data there (benchmarks/README.md): a 3-D box gets none, and asking is refused in one line."""
    from hrta_pde.poisson.singular import log_corner_features

    cube = problem_from_dict({"domain": {"type": "box", "xmin": [0.0] * 3, "xmax": [1.0] * 3},
                              "solution": {"f": "1"}, "boundary": {"type": "dirichlet", "g": "0"}})
    assert log_corner_features(cube) == []
    with pytest.raises(SettingError, match="no right-angled corner"):
        plan_solve(cube, SolveConfig(log_corner_inputs=True))


def test_log_corner_inputs_asked_for_take_the_penalty_and_refuse_the_exact_data():
    ritz = plan_solve(square(), SolveConfig(loss="ritz", log_corner_inputs=True)).config
    assert ritz.log_corner_inputs and not ritz.hard_bc
    with pytest.raises(SettingError) as err:
        plan_solve(square(), SolveConfig(loss="pinn", hard_bc=True, log_corner_inputs=True))
    assert "log_corner_inputs with hard_bc" in str(err.value) and "\n" not in str(err.value)
