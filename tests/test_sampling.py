"""hrta_pde.poisson.sampling: the uniform grids against DeepXDE's, the checks of a request."""
import numpy as np
import pytest
import torch

from hrta_pde.poisson.errors import ProblemError
from hrta_pde.poisson.geometry import Box, to_deepxde
from hrta_pde.poisson.sampling import box_grid, cell_grid, check_count, check_dtype, check_sampler


@pytest.mark.parametrize("lo, hi, n", [([0.0], [1.0], 7), ([-1.0], [2.5], 100),
                                       ([0.0, 0.0], [1.0, 1.0], 100), ([0.0, -1.0], [2.0, 1.0], 37),
                                       ([0.0, 0.0, 0.0], [1.0, 2.0, 1.0], 500), ([0.0] * 4, [1.0] * 4, 81)])
def test_box_grid_is_deepxdes_uniform_interior_grid(lo, hi, n):
    geom = to_deepxde(Box(lo, hi))  # float64 parameters; its points at DeepXDE's default float32
    expected = np.asarray(geom.uniform_points(n, boundary=False), np.float64)
    got = box_grid(np.array(lo), np.array(hi), n)
    assert got.dtype == np.float64 and np.array_equal(got, expected)


def test_cell_grid_spacing_and_limit():
    x = cell_grid(np.array([0.0, 0.0]), np.array([2.0, 1.0]), 2.0, 200)  # spacing 0.1
    assert x.shape == (200, 2)
    np.testing.assert_allclose(np.unique(x[:, 1]), 0.05 + 0.1 * np.arange(10), rtol=0, atol=1e-15)
    with pytest.raises(ProblemError, match="sobol"):
        cell_grid(np.zeros(3), np.ones(3), 1.0, 10**8)


def test_request_checks():
    assert check_count(3) == 3 and check_sampler("sobol") == "sobol"
    assert check_dtype(torch.float32) is torch.float32
    for bad in (-1, 2.5, True):
        with pytest.raises(ProblemError, match="non-negative integer"):
            check_count(bad)
    with pytest.raises(ProblemError, match="random, uniform, sobol"):
        check_sampler("halton")
    with pytest.raises(ProblemError, match="float32 or torch.float64"):
        check_dtype(torch.int64)
