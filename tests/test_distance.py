"""Exact Dirichlet data on every domain: the distance function phi and the extension g_ext."""
import numpy as np
import pytest
import torch

from hrta_pde.poisson.distance import HardDirichlet, r_equivalence
from hrta_pde.poisson.catalog import builtin_problem
from hrta_pde.poisson.spec import problem_from_dict
from hrta_pde.poisson.distance import hard_bc_obstacle, hard_dirichlet

T = torch.float64
SQUARE = {"type": "rectangle", "xmin": [0.0, 0.0], "xmax": [1.0, 1.0]}


def gen(seed):
    return torch.Generator().manual_seed(seed)


def four_holes(boundary):
    dom = {"type": "rectangle", "name": "outer", "xmin": [-1.0, -1.0], "xmax": [1.0, 1.0]}
    for i, (cx, cy) in enumerate([(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5)]):
        dom = {"type": "difference", "a": dom,
               "b": {"type": "disk", "name": f"hole{i + 1}", "center": [cx, cy], "radius": 0.2}}
    return problem_from_dict({"domain": dom, "solution": {"f": "1"}, "boundary": boundary})


def lshape(boundary=None):
    return problem_from_dict({"domain": {"type": "lshape"}, "solution": {"f": "1"},
                              "boundary": boundary or {"type": "dirichlet", "g": "x*y"}})


def check_phi(p, tr, n=2000):
    b = p.sample_boundary(n, generator=gen(1), dtype=T)
    x = p.sample_interior(n, generator=gen(2), dtype=T)
    phi_b, phi_in = tr.phi(b.x), tr.phi(x)
    assert phi_b[b.dirichlet].abs().max() <= 1e-12
    assert (phi_in > 0).all() and phi_in.max() <= 1.01  # scaled to 1 on 4096 Sobol points
    return b, phi_b


def test_r_equivalence_by_hand():
    a, b, c = (torch.tensor([v], dtype=T) for v in (2.0, 3.0, 6.0))
    phi, w = r_equivalence([a, b, c])
    assert float(phi) == pytest.approx(1 / (1 / 2 + 1 / 3 + 1 / 6))  # = 1
    assert [float(v) for v in w] == pytest.approx([1 / 2, 1 / 3, 1 / 6])


def test_lshape_phi_vanishes_on_the_boundary_and_is_normalised():
    p = lshape()
    tr = hard_dirichlet(p)
    assert isinstance(tr, HardDirichlet) and tr.kind == "adf"
    b, _ = check_phi(p, tr)
    # first order and normalised: |grad phi| = 1 (times the scale) on the outer edges, away from
    # corners (the two inner edges share the corner function r^(2/3) sin(2 theta/3), not normalised)
    corners = np.array([[-1, -1], [0, -1], [0, 0], [1, 0], [1, 1], [-1, 1]], float)
    xn = b.x.numpy()
    inner = ((np.abs(xn[:, 0]) < 1e-12) & (xn[:, 1] < 0)) | ((np.abs(xn[:, 1]) < 1e-12) & (xn[:, 0] > 0))
    far = (np.min(np.linalg.norm(xn[:, None] - corners[None], axis=2), axis=1) > 0.05) & ~inner
    xb = (b.x[far] - 1e-6 * b.normal[far]).clone().requires_grad_(True)  # just inside
    (g,) = torch.autograd.grad(tr.phi(xb).sum(), xb)
    np.testing.assert_allclose(g.norm(dim=1).numpy() / tr.scale, 1.0, rtol=1e-4)
    xb = b.x.clone().requires_grad_(True)  # on the boundary: finite derivatives
    (g,) = torch.autograd.grad(tr.phi(xb).sum(), xb)
    assert torch.isfinite(g).all()
    # u = g_ext + phi N equals g on the boundary for any network output
    out = torch.randn(len(b.x), 1, dtype=T, generator=gen(3))
    np.testing.assert_allclose(tr(b.x, out)[:, 0].numpy(), (b.x[:, 0] * b.x[:, 1]).numpy(), atol=1e-12)


def test_four_holes_different_data_per_part_and_a_neumann_hole():
    p = four_holes({"outer": {"type": "dirichlet", "g": "1"},
                    "hole1": {"type": "dirichlet", "g": "0"}, "hole2": {"type": "dirichlet", "g": "0"},
                    "hole3": {"type": "dirichlet", "g": "x + y"}, "hole4": {"type": "neumann", "h": "0"}})
    assert "outer.x_min" in p.part_names and "hole4" in p.part_names
    tr = hard_dirichlet(p)
    b, phi_b = check_phi(p, tr)
    assert (phi_b[b.neumann] > 1e-6).all()  # phi vanishes on the Dirichlet parts only
    x = b.x.numpy()
    expect = np.where(np.abs(x).max(axis=1) > 0.999, 1.0,
                      np.where(np.linalg.norm(x - [-0.5, 0.5], axis=1) < 0.2 + 1e-9, x.sum(axis=1), 0.0))
    out = torch.randn(len(x), 1, dtype=T, generator=gen(4))
    u = tr(b.x, out)[:, 0]
    np.testing.assert_allclose(u[b.dirichlet].numpy(), expect[b.dirichlet.numpy()], atol=1e-12)
    # the extension is the transfinite blend: between 0 and 1 where the data are 0 and 1
    xi = p.sample_interior(500, generator=gen(5), dtype=T)
    far3 = torch.linalg.norm(xi - torch.tensor([-0.5, 0.5], dtype=T), dim=1) > 0.5
    ge = tr.g_ext(xi[far3])
    assert float(ge.min()) > -1e-12 and float(ge.max()) < 1 + 1e-12


def test_annulus_with_dirichlet_outside_only_and_works_under_vmap_and_jacrev():
    p = problem_from_dict({"domain": {"type": "difference", "a": {"type": "disk", "radius": 1.0},
                                      "b": {"type": "disk", "radius": 0.5}},
                           "solution": {"f": "1"},
                           "boundary": {"a": {"type": "dirichlet", "g": "x"}, "b": {"type": "robin",
                                                                                   "alpha": "1", "h": "0"}}})
    tr = hard_dirichlet(p)
    b, phi_b = check_phi(p, tr)
    assert (phi_b[b.robin] > 0.1).all()
    x = p.sample_interior(7, generator=gen(6), dtype=T)
    out = torch.randn(7, 1, dtype=T, generator=gen(7))
    batched = torch.func.vmap(lambda xi, oi: tr(xi[None], oi[None])[0])(x, out)
    torch.testing.assert_close(batched, tr(x, out), rtol=1e-14, atol=1e-14)
    jac = torch.func.vmap(torch.func.jacrev(tr.phi))(x)  # single points (d,)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(tr.phi(xr).sum(), xr)
    torch.testing.assert_close(jac, g, rtol=1e-12, atol=1e-14)
    jg = torch.func.vmap(torch.func.jacrev(tr.g_ext))(x)
    torch.testing.assert_close(jg, torch.tensor([[1.0, 0.0]] * 7, dtype=T), rtol=0, atol=1e-14)


def test_box_and_ball_keep_their_product_formulas():
    tr = hard_dirichlet(builtin_problem("poisson_2d_sin"))
    assert tr.kind == "box"
    x = torch.tensor([[0.5, 0.5], [0.25, 0.5]], dtype=T)
    torch.testing.assert_close(tr.phi(x), torch.tensor([1.0, 0.75], dtype=T), rtol=0, atol=1e-15)


def test_refusals():
    # a side swallowed in part by another operand of a union
    p = problem_from_dict({"domain": {"type": "union", "a": SQUARE, "b": {
        "type": "rectangle", "xmin": [0.5, 0.5], "xmax": [1.5, 1.5]}}, "solution": {"f": "1"},
        "boundary": {"type": "dirichlet", "g": "0"}})
    assert "only partly on the boundary" in hard_bc_obstacle(p)
    # a 3-D box face plane through the domain (a box hole)
    p = problem_from_dict({"domain": {"type": "difference", "a": {"type": "box", "xmin": [0, 0, 0],
                                                                  "xmax": [1, 1, 1]},
                                      "b": {"type": "box", "xmin": [0.4] * 3, "xmax": [0.6] * 3}},
                           "solution": {"f": "1"}, "boundary": {"type": "dirichlet", "g": "0"}})
    assert "cuts through the domain" in hard_bc_obstacle(p)
    # no Dirichlet part; a written g equal to u inside
    assert "needs a Dirichlet part" in hard_bc_obstacle(builtin_problem("poisson_neumann_square"))
    with pytest.raises(ValueError, match="equals u inside"):
        hard_dirichlet(problem_from_dict({"domain": {"type": "lshape"},
                                          "solution": {"u": "x*y"},
                                          "boundary": {"g": "x*y"}}))


def test_corners_between_pieces_are_finite():
    # where two pieces vanish the R-equivalence was 0/0: phi is 0 and g_ext the data there
    phi, w = r_equivalence([torch.tensor([0.0, 0.0, 0.5], dtype=T), torch.tensor([0.0, 1.0, 0.5], dtype=T)])
    torch.testing.assert_close(phi, torch.tensor([0.0, 0.0, 0.25], dtype=T), rtol=0, atol=1e-15)
    torch.testing.assert_close(w[0], torch.tensor([0.5, 1.0, 0.5], dtype=T), rtol=0, atol=1e-15)
    tr = hard_dirichlet(four_holes({"outer": {"type": "dirichlet", "g": "1 + x"},
                                    "hole1": {"type": "dirichlet", "g": "0"}, "hole2": {"type": "neumann", "h": "0"},
                                    "hole3": {"type": "dirichlet", "g": "0"}, "hole4": {"type": "dirichlet", "g": "0"}}))
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=T)
    torch.testing.assert_close(tr.phi(corners), torch.zeros(4, dtype=T), rtol=0, atol=1e-15)
    torch.testing.assert_close(tr.g_ext(corners), 1 + corners[:, 0], rtol=0, atol=1e-15)


def _from_u(domain, u, boundary=None):
    return problem_from_dict({"domain": domain, "solution": {"u": u},
                              "boundary": boundary or {"type": "dirichlet"}})


def _derivatives(fn, x):
    """Value, gradient and Laplacian per point (``fn`` on single points, as under ``vmap``)."""
    f = torch.func
    return fn(x), f.vmap(f.jacrev(fn))(x), f.vmap(f.hessian(fn))(x).diagonal(dim1=1, dim2=2).sum(-1)


BOX3 = {"type": "box", "xmin": [0.0, -1.0, 0.5], "xmax": [1.0, 1.0, 2.0]}


@pytest.mark.parametrize("domain, u, boundary, form", [
    (BOX3, "sin(2*x)*exp(y)*z^2 + x^2*y^2", None, "coons"),
    (BOX3, "sin(2*x)*exp(y)*z^2 + x^2*y^2",  # two Dirichlet faces of y, one of z, none of x
     {"type": "dirichlet", "x_min": {"type": "neumann"}, "x_max": {"type": "neumann"},
      "z_max": {"type": "neumann"}}, "coons"),
    ({"type": "interval", "xmin": -1.0, "xmax": 2.0}, "exp(x) + sin(3*x)", None, "coons"),
    ({"type": "disk", "center": [0.5, -0.5], "radius": 1.5}, "exp(x)*cos(3*y) + x^5*y", None, "laurent"),
    ({"type": "ball", "center": [0.0, 0.0, 0.0], "radius": 1.0}, "exp(x + y)*z + z^4", None, "ball"),
    ({"type": "lshape"}, "exp(x)*sin(2*y) + x*y", None, "piece"),
    ({"type": "difference", "a": {"type": "disk", "center": [0, 0], "radius": 1.0},
      "b": {"type": "disk", "center": [0.2, 0], "radius": 0.3}}, "exp(x)*y + x^3", None, "piece"),
])
def test_data_from_u_are_taken_on_the_dirichlet_parts_only(domain, u, boundary, form):
    p = _from_u(domain, u, boundary)
    assert hard_bc_obstacle(p) is None
    tr = hard_dirichlet(p)
    assert tr._groups[0][1].form == form
    b = p.sample_boundary(1000, generator=gen(1), sampler="random", dtype=T)
    xd = b.x[b.dirichlet]
    torch.testing.assert_close(tr(xd, torch.randn(len(xd), 1, generator=gen(3), dtype=T))[:, 0], p.u_torch(xd),
                               rtol=0, atol=1e-12)
    x = p.sample_interior(500, generator=gen(2), sampler="random", dtype=T)
    g, grad, lap = _derivatives(tr.g_ext, x)
    # not the solution inside (the data are extended from the boundary, not evaluated there) ...
    assert float((g - p.u_torch(x)).abs().max()) > 1e-3
    # ... and smooth enough for the strong form: finite derivatives up to the Laplacian everywhere,
    # the disk's and ball's centre included
    assert torch.isfinite(grad).all() and torch.isfinite(lap).all()
    if form in ("ball", "laurent"):
        _, gc, lc = _derivatives(tr.g_ext, torch.as_tensor(p.shape.center, dtype=T)[None])
        assert torch.isfinite(gc).all() and torch.isfinite(lc).all()
    assert tr.smooth is (form != "piece" or "difference" in domain["type"])


def test_coons_reproduces_data_linear_in_each_variable_and_sums_of_one_variable():
    # the Boolean sum is exact for f = A(x) + B(y) + C(z) + (multilinear terms): such data come back
    # as u itself (which is then what the boundary values determine), anything else does not
    x = _from_u(BOX3, "x").sample_interior(300, generator=gen(4), sampler="random", dtype=T)
    for u, exact in [("exp(x) + y^3 - cos(z) + x*y*z", True), ("x^2*y^2*z^2", False)]:
        p = _from_u(BOX3, u)
        err = float((hard_dirichlet(p).g_ext(x) - p.u_torch(x)).abs().max())
        assert (err < 1e-12) is exact, (u, err)


def test_data_from_u_that_are_not_finite_at_the_closest_points_are_refused():
    # an obtuse triangle: points near (3, 1) have their foot point on the line y = 0 at x > 1,
    # outside the edge and outside the domain, where this u is not finite
    p = _from_u({"type": "polygon", "vertices": [[0, 0], [1, 0], [3, 1]]}, "log(y - (x - 1)/2 + 0.1)")
    reason = hard_bc_obstacle(p)
    assert "not finite" in reason and "write g" in reason


@pytest.mark.parametrize("problem", [
    _from_u(BOX3, "sin(2*x)*exp(y)*z^2 + x^2*y^2"),  # the 26-term extension from u
    lshape({"type": "dirichlet", "g": "x*y", "edge2": {"type": "neumann", "h": "0"}}),  # six-piece ADF
])
def test_cached_transform_equals_the_direct_one_to_second_derivatives(problem):
    tr = hard_dirichlet(problem)
    x = problem.sample_interior(300, generator=gen(5), sampler="random", dtype=T)
    out_fn = lambda xx: torch.sin(xx.sum(dim=1, keepdim=True)) + xx[:, :1] ** 2  # a stand-in network

    def fields(use_cache):
        xr = x.clone().requires_grad_(True)
        u = tr(xr, out_fn(xr))[:, 0] if use_cache else (tr.g_ext(xr) + tr.phi(xr) * out_fn(xr)[:, 0])
        (g,) = torch.autograd.grad(u.sum(), xr, create_graph=True)
        lap = sum(torch.autograd.grad(g[:, j].sum(), xr, retain_graph=True)[0][:, j] for j in range(x.shape[1]))
        return u, g, lap

    for _ in range(2):  # the first call fills the cache, the second uses it
        for a, b in zip(fields(True), fields(False)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert len(tr._frozen) == 1
    with torch.no_grad():  # no derivatives asked: evaluated directly, nothing cached
        torch.testing.assert_close(tr(x + 0, out_fn(x)), tr.g_ext(x)[:, None] + tr.phi(x)[:, None] * out_fn(x))
    assert len(tr._frozen) == 1


def test_reentrant_corner_function_is_harmonic_and_vanishes_on_both_edges():
    from hrta_pde.poisson.distance import Corner

    tr = hard_dirichlet(lshape({"type": "dirichlet", "g": "0"}))
    corners = {id(p): p for p in tr._groups[0][0] if isinstance(p, Corner)}
    # both inner edges: one harmonic corner function; its gradient is unbounded at the vertex, so the
    # transform is not "smooth" (PINN keeps the penalty there by default)
    assert len(corners) == 1 and not tr.smooth
    (c,) = corners.values()
    assert c.omega == pytest.approx(1.5 * np.pi, rel=1e-14) and np.allclose(c.v, [0.0, 0.0])
    t = torch.linspace(0.01, 1.0, 50, dtype=T)
    edges = torch.cat([torch.stack([t, 0 * t], 1), torch.stack([0 * t, -t], 1)])  # the two inner edges
    assert float(c(edges).abs().max()) < 1e-15
    p = lshape({"type": "dirichlet", "g": "0"})
    x = p.sample_interior(400, generator=gen(6), sampler="random", dtype=T)
    v, _, lap = _derivatives(c, x)
    assert (v > 0).all()
    assert float(lap.abs().max()) < 1e-11 * float(v.abs().max()) + 1e-11
    # in polar coordinates around the vertex: r^(2/3) sin(2 theta / 3), theta from the edge y = 0, x > 0
    r, th = x.norm(dim=1), torch.remainder(torch.atan2(x[:, 1], x[:, 0]), 2 * np.pi)
    torch.testing.assert_close(v, r ** (2 / 3) * torch.sin(2 * th / 3), rtol=1e-13, atol=1e-14)
    check_phi(p, tr)
    # different data on the two edges: the trimmed segments stay
    other = hard_dirichlet(lshape({"type": "dirichlet", "g": "0", "edge2": {"type": "dirichlet", "g": "x"}}))
    assert not any(isinstance(q, Corner) for grp, _ in other._groups for q in grp) and not other.smooth


def test_review_cases_off_centre_hole_rotated_corner_collinear_neumann_and_singular_ends():
    from hrta_pde.poisson.distance import Corner

    # a disk minus an off-centre hole, data from u: the outer circle's centre is in the domain, so
    # its extension is the radial blend (the plain projection jumps at the centre)
    p = _from_u({"type": "difference", "a": {"type": "disk", "center": [0, 0], "radius": 1.0},
                 "b": {"type": "disk", "center": [0.5, 0], "radius": 0.2}}, "exp(x)*y + x^3 + 1")
    tr = hard_dirichlet(p)
    assert [grp[1].form for grp in tr._groups] == ["laurent", "laurent"] and not tr.smooth  # PINN: penalty
    near = torch.tensor([[1e-4, 0.0], [-1e-4, 0.0]], dtype=T)
    assert float((tr.g_ext(near)[0] - tr.g_ext(near)[1]).abs()) < 1e-3  # it jumped by 1.0
    # an L-shape rotated by 30 degrees: the corner function vanishes on both inner edges
    c, s_ = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rot = [[c * a - s_ * b, s_ * a + c * b] for a, b in [[-1, -1], [0, -1], [0, 0], [1, 0], [1, 1], [-1, 1]]]
    q = problem_from_dict({"domain": {"type": "polygon", "vertices": rot}, "solution": {"f": "1"},
                           "boundary": {"type": "dirichlet", "g": "0"}})
    trq = hard_dirichlet(q)
    assert any(isinstance(pc, Corner) for pc in trq._groups[0][0])
    check_phi(q, trq)
    # a corner whose ray runs along a collinear Neumann edge: no corner function (phi would vanish there)
    poly = [[-1, -1], [0, -1], [0, 0], [1, 0], [1, 0.5], [2, 0.5], [2, 0], [3, 0], [3, 1], [-1, 1]]
    r = problem_from_dict({"domain": {"type": "polygon", "vertices": poly}, "solution": {"f": "1"},
                           "boundary": {"type": "dirichlet", "g": "0", "edge6": {"type": "neumann", "h": "0"}}})
    trr = hard_dirichlet(r)
    xn = torch.as_tensor(r.shape.part_points(6, 32), dtype=T)
    assert float(trr.phi(xn).min()) > 1e-3
    # u singular at the re-entrant corner (catalog L-shape): finite derivatives of the extension
    lsh = builtin_problem("poisson_lshape")
    x = lsh.sample_interior(300, generator=gen(7), sampler="random", dtype=T)
    _, grad, lap = _derivatives(hard_dirichlet(lsh).g_ext, x)
    assert torch.isfinite(grad).all() and torch.isfinite(lap).all()


def _harmonic_case(domain, u):
    p = _from_u(domain, u)
    tr = hard_dirichlet(p)
    x = p.sample_interior(400, generator=gen(8), sampler="random", dtype=T)
    b = p.sample_boundary(1000, generator=gen(9), sampler="random", dtype=T)
    return p, tr, x, b.x[b.dirichlet]


OFF_CENTRE_TWO_HOLES = {"type": "difference",
                        "a": {"type": "difference", "a": {"type": "disk", "center": [0, 0], "radius": 1.0},
                              "b": {"type": "disk", "center": [0.5, 0], "radius": 0.2}},
                        "b": {"type": "disk", "center": [-0.4, 0.3], "radius": 0.25}}


@pytest.mark.parametrize("domain", [OFF_CENTRE_TWO_HOLES, {"type": "disk", "center": [0.3, -0.2], "radius": 1.2}])
def test_circle_data_are_extended_harmonically_where_a_centre_lies_in_the_domain(domain):
    # a harmonic u (a polynomial part and, with holes, a log and a pole at each hole's centre) is
    # its own harmonic extension: the fit from the boundary values alone gives u back inside
    harmonic = "x^3 - 3*x*y^2 + exp(x)*cos(y)"
    if domain["type"] == "difference":
        harmonic += " + log((x - 0.5)^2 + y^2) + (x + 0.4)/((x + 0.4)^2 + (y - 0.3)^2)"
    p, tr, x, xd = _harmonic_case(domain, harmonic)
    assert all(grp[1].form == "laurent" and grp[1].resolved for grp in tr._groups)
    torch.testing.assert_close(tr.g_ext(x), p.u_torch(x), rtol=0, atol=1e-9)
    # non-harmonic data: g on the circles to round-off, a harmonic polynomial (plus round-off) inside
    p, tr, x, xd = _harmonic_case(domain, "exp(x)*y^2 + sin(3*x*y)")
    torch.testing.assert_close(tr.g_ext(xd), p.u_torch(xd), rtol=0, atol=1e-12)
    _, _, lap = _derivatives(tr.g_ext, x)
    assert float(lap.abs().max()) < 1e-7
    assert float((tr.g_ext(x) - p.u_torch(x)).abs().max()) > 1e-3  # not the solution inside


def test_unresolved_circle_data_keep_exact_boundary_values():
    from hrta_pde.poisson.distance import _harmonic_extension

    # |x|^3 is not smooth on the circle: 256 Fourier terms do not resolve it, the correction
    # rho^4 (g - H) keeps the boundary values exact and the derivatives finite at the centre
    g = lambda y: y[..., 0].abs() ** 3 + y[..., 1]
    ext = _harmonic_extension(g, [0.0, 0.0], 1.0)
    assert ext.form == "harmonic" and not ext.resolved
    th = torch.linspace(0, 2 * np.pi, 777, dtype=T)
    on = torch.stack([torch.cos(th), torch.sin(th)], 1)
    torch.testing.assert_close(ext(on), g(on), rtol=0, atol=1e-12)
    _, gc, lc = _derivatives(ext, torch.zeros(1, 2, dtype=T))
    assert torch.isfinite(gc).all() and torch.isfinite(lc).all()
    # smooth data: resolved, and the series alone is the Poisson integral (here: x y exactly)
    exact = _harmonic_extension(lambda y: y[..., 0] * y[..., 1] + 2.0, [0.0, 0.0], 1.0)
    assert exact.resolved
    x = torch.rand(50, 2, generator=gen(3), dtype=T) - 0.5
    torch.testing.assert_close(exact.series(x), x[:, 0] * x[:, 1] + 2.0, rtol=0, atol=1e-13)


def test_many_circles_keep_the_radial_traces_in_bounded_time():
    import time

    from hrta_pde.poisson.distance import LAURENT_MAX_CIRCLES

    dom = {"type": "disk", "center": [0.0, 0.0], "radius": 1.0}
    for i in range(LAURENT_MAX_CIRCLES):  # LAURENT_MAX_CIRCLES holes: with the outer circle one too many
        t = 2 * np.pi * i / LAURENT_MAX_CIRCLES
        dom = {"type": "difference", "a": dom,
               "b": {"type": "disk", "center": [0.6 * np.cos(t), 0.6 * np.sin(t)], "radius": 0.1}}
    start = time.perf_counter()
    tr = hard_dirichlet(_from_u(dom, "exp(x)*y + x^3"))
    assert time.perf_counter() - start < 60
    assert [grp[1].form for grp in tr._groups] == ["harmonic"] + ["piece"] * LAURENT_MAX_CIRCLES and not tr.smooth
