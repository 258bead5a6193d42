"""Sources of points in (0, 1)^k for the samplers ``random``, ``uniform`` and ``sobol``, the checks of
a sampling request, and the deterministic grids of the ``uniform`` interior sampler.

Sampling is done here, not with DeepXDE's samplers, for three reasons: DeepXDE draws from
numpy's global RNG (we draw from a ``torch.Generator`` and never touch numpy's state), it
samples in float32 by default, and its box and CSG boundary samplers are not uniform with
respect to the boundary measure.  The shapes (:mod:`hrta_pde.poisson.geometry`) turn these
numbers into points of the domain, exactly in float64.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from hrta_pde.poisson.errors import ProblemError

__all__ = ["SAMPLERS", "MC_SEED", "Source", "uniform_source", "fixed_source", "check_count",
           "check_sampler", "check_dtype", "NP_DTYPES", "box_grid", "cell_grid"]

SAMPLERS = ("random", "uniform", "sobol")
#: Fixed seed of the quasi-Monte Carlo estimates and of the check points of a problem.
MC_SEED = 20240531
_MAX_GRID_POINTS = 5_000_000


class Source:
    """Uniform numbers in (0, 1) for the samplers: ``random``, ``sobol`` or ``uniform``.

    ``random`` draws from the torch generator; ``sobol`` from scrambled Sobol engines (one per
    dimension) seeded from the generator; ``uniform`` is deterministic: the midpoints
    ``(i + 1/2)/m`` in one dimension, a fixed-seed Sobol set in more.
    """

    def __init__(self, sampler: str, generator: torch.Generator | None):
        self.sampler = sampler
        self.generator = generator
        self._engines: dict[int, torch.quasirandom.SobolEngine] = {}

    def _kw(self) -> dict:
        g = self.generator
        return {} if g is None else {"generator": g, "device": g.device}

    def _seed(self) -> int:
        return int(torch.randint(0, 2**62, (1,), **self._kw()).item())

    def draw(self, m: int, k: int) -> np.ndarray:
        if m <= 0:
            return np.empty((0, k))
        if self.sampler == "random":
            u = torch.rand((m, k), dtype=torch.float64, **self._kw()).cpu().numpy()
        elif self.sampler == "sobol":
            engine = self._engines.get(k)
            if engine is None:
                engine = torch.quasirandom.SobolEngine(k, scramble=True, seed=self._seed())
                self._engines[k] = engine
            u = engine.draw(m, dtype=torch.float64).numpy()
        elif k == 1:
            u = ((np.arange(m) + 0.5) / m)[:, None]
        else:
            u = torch.quasirandom.SobolEngine(k, scramble=True, seed=12345).draw(
                m, dtype=torch.float64).numpy()
        return np.clip(u, 1e-15, 1.0 - 1e-15)

    def split(self, m: int, w: float) -> int:
        """How many of ``m`` draws go to the first of two parts chosen with probability ``w``."""
        if self.sampler == "random":
            return int((torch.rand(m, dtype=torch.float64, **self._kw()) < w).sum().item())
        return int(round(m * w))

    def permutation(self, m: int) -> np.ndarray:
        if self.sampler == "uniform":
            return np.arange(m)
        return torch.randperm(m, **self._kw()).cpu().numpy()


def uniform_source() -> Source:
    return Source("uniform", None)


def fixed_source() -> Source:
    return Source("sobol", torch.Generator().manual_seed(MC_SEED))



def check_count(n, what="n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ProblemError(f"{what} must be a non-negative integer number of points, got {n!r}")
    return int(n)


def check_sampler(sampler) -> str:
    if sampler not in SAMPLERS:
        raise ProblemError(f"sampler {sampler!r} is unknown; use one of: {', '.join(SAMPLERS)}")
    return sampler


NP_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def check_dtype(dtype) -> torch.dtype:
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if dtype not in NP_DTYPES:
        raise ProblemError(f"dtype {dtype} is not supported for points; use torch.float32 or "
                           "torch.float64")
    return dtype


def box_grid(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """About ``n`` grid points strictly inside the box ``[lo, hi]``, as (m, d) float64.

    The grid of DeepXDE's ``uniform_points(n, boundary=False)`` at its default float32 precision
    (kept so that ``sampler="uniform"`` gives the points it always gave): in 1-D the ``n``
    points ``lo + i (hi - lo) / (n + 1)``, else ``ceil(side_i / dx)`` points per axis with
    ``dx = (volume / n)^(1/d)``, each axis ``linspace(lo_i, hi_i, k + 1, endpoint=False)[1:]``.
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if len(lo) == 1:
        axis = np.linspace(float(lo[0]), float(hi[0]), num=n + 1, endpoint=False, dtype=np.float32)
        return np.asarray(axis[1:, None], np.float64)
    side = hi - lo
    dx = (np.prod(side) / n) ** (1 / len(lo))
    axes = [np.linspace(lo[i], hi[i], num=int(np.ceil(side[i] / dx)) + 1, endpoint=False,
                        dtype=np.float32)[1:] for i in range(len(lo))]
    return np.asarray(np.array(list(itertools.product(*axes))), np.float64)


def cell_grid(lo: np.ndarray, hi: np.ndarray, measure: float, n: int) -> np.ndarray:
    """A cell-centred grid over the bounding box ``[lo, hi]`` with spacing ``(measure / n)^(1/d)``
    (about ``n`` points in a domain of that measure); refused above 5 million cells."""
    dim = len(lo)
    h = (measure / n) ** (1.0 / dim)
    counts = np.maximum(1, np.ceil((hi - lo) / h).astype(np.int64))
    if np.prod(counts.astype(float)) > _MAX_GRID_POINTS:
        raise ProblemError(f"a uniform grid of {n} points in this {dim}-D domain needs "
                           f"more than {_MAX_GRID_POINTS} grid cells; use sampler='sobol'")
    axes = [lo[i] + (np.arange(c) + 0.5) * (hi[i] - lo[i]) / c for i, c in enumerate(counts)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
