"""The settings of a Poisson solve: :class:`SolveConfig`, its defaults, and the keys of a
problem file's ``[solver]`` table (one list: the flat form of :class:`SolveConfig`).

Example::

    SolveConfig(loss="ritz", network=NetworkOptions(width=32, depth=2))
    SolveConfig.from_dict({"loss": "ritz", "width": 32, "depth": 2})   # the same, flat
    SolveConfig.from_dict({"width": 0})     # ValueError: width=0 must be a positive integer
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hrta_pde.engd import EngdOptions
from hrta_pde.fields import check_fields
from hrta_pde.options import (Config, NetworkOptions, RunOptions, SamplingOptions, TrainingOptions, check_choice,
                              check_positive)
from hrta_pde.poisson.losses import loss_name

#: Default schedules: one stage of the energy natural gradient at s = 1 for every loss (it ends
#: early when no step lowers the loss). Measured on 2 shared CPU cores (benchmarks/README.md,
#: "Accuracy per second"): with the defaults below (width 64) PINN reached relative L2 2.5e-8 on
#: poisson_2d_sin in 31 steps and 5.8e-7 on poisson_disk, where the old Adam defaults stalled at
#: 1e-3..1e-4 after minutes; an Adam warm-up before ENGD made it worse (1.6e-3). HRTA with Adam did not beat
#: one stage (validation/REPORT.md section 4; benchmarks/results/sobolev_schedule_check.md). Pass
#: a schedule, e.g. "0.5:20@engd,1:180@engd" or "1:6000" (Adam), to train otherwise.
DEFAULT_SCHEDULE = {"sobolev": "1:200@engd", "l2": "1:200@engd", "ritz": "1:200@engd", "pinn": "1:200@engd"}

#: An engd stage of a least-squares loss ends once a step lowers the loss by less than 1e-3 of it:
#: the error had stopped falling by then (poisson_2d_sin, poisson_disk, poisson_annulus; benchmarks/
#: README.md). The Ritz energy is not near 0 at its minimum, so its stages run until no step lowers it.
DEFAULT_ENGD_RTOL = {"sobolev": 1e-3, "l2": 1e-3, "ritz": 0.0, "pinn": 1e-3}

#: The eigenvalue cut-off of the engd solve, as a multiple of the dtype's eps, where it is not the
#: default ``R * eps`` (``R`` the rows of the Jacobian; :class:`hrta_pde.engd.EngdOptions`). For the
#: supervised losses ``45 eps`` (1.0e-14 in float64; ``R * eps`` is 6.7e-13 for Sobolev at 1000
#: points, whose values and gradients give 3000 rows) keeps more of the spectrum. Sobolev:
#: poisson_2d_sin 1.8e-8 .. 3.8e-8 over seeds 0-4 against 2.5e-7 .. 1.3e-6, poisson_disk 8.3e-8
#: against 4.0e-7, poisson_annulus 6.3e-7 against 9.0e-7, poisson_3d_cube 1.6e-4 against 5.4e-5
#: (neither converged in 200 steps); L2: poisson_2d_sin 1.1e-6 .. 1.7e-6 over seeds 0-2 against
#: 4.7e-6 .. 5.5e-6, poisson_disk 5.9e-7 against 2.5e-6 (benchmarks/README.md, "The cut-off of
#: the supervised solves"). PINN was worse with it on the cube (1.6e-5 against 8.7e-7) and the
#: annulus (seed 1: 4.5e-6 against 1.7e-6), and keeps ``R * eps``.
DEFAULT_ENGD_RCOND_EPS = {"sobolev": 45.0, "l2": 45.0}

#: ``sampler="auto"``: Gauss quadrature for the Ritz loss in 1-D and 2-D where the domain has a rule
#: (intervals, rectangles, polygons, disks, concentric annuli), Sobol points otherwise. The Ritz
#: energy is not a least-squares loss: on Sobol points the energy natural gradient found networks
#: whose discrete energy lay below the exact minimum (poisson_2d_sin: relative L2 2.5e-2); on
#: 50 x 50 Gauss points with the exact Dirichlet data it reached 1.9e-7 .. 2.9e-7 in 5-10 s over 5
#: seeds (benchmarks/README.md, "Gauss quadrature"); on the disk with a hole 2.6e-6 in 8 s against
#: 4.0e-1 on Sobol points. In 3-D the rule affordable here (15 points per axis) was fitted too
#: (poisson_3d_layers: 0.49 against 0.14 on Sobol points). PINN stayed better on Sobol points
#: (2.5e-8 against 8.8e-8 on Gauss points).
AUTO_GAUSS_LOSSES = ("ritz",)
AUTO_GAUSS_MAX_DIM = 2

#: ``points=None``: interior training points. Sobol: 1000. Gauss: at least 2500 and 8 per network
#: parameter, so that the network cannot fit the energy between the points: on poisson_2d_sin the
#: Ritz energy fell below the exact minimum with 35 x 35 points for one layer of 64 (257 parameters;
#: relative L2 0.54 after 200 steps) and with 50 x 50 for two layers of 32 (1185 parameters: 0.53);
#: 40 x 40 and 50 x 50 (one layer) and 100 x 100 (two layers) did not (1.5e-7 .. 2.9e-7).
DEFAULT_POINTS_OTHER = 1000
GAUSS_POINTS_MIN = 2500
GAUSS_POINTS_PER_PARAMETER = 8
GAUSS_POINTS_MAX = 100_000  # a network too large for the rule is then refused by its size, not by the points

#: Default boundary weights: the Ritz penalty multiplies an integral over the boundary, the PINN
#: weight a mean of squared boundary residuals.
DEFAULT_BETA = {"ritz": 100.0, "pinn": 100.0, "sobolev": 0.0, "l2": 0.0}


@dataclass(frozen=True)
class SolveConfig(Config):
    """Solver settings, checked when made; their flat form (:meth:`Config.keys`) is the
    ``[solver]`` table of a problem file.

    ``network`` default: an FNN of one hidden layer of 64 tanh neurons. ``init="domain"`` for tanh
    and sin, glorot for ReLU^k (with Adam, 3x64 ReLU^3 PINN ended at 6.4e-1 with the domain init
    against 1.25e-4 with glorot on poisson_2d_sin, seed 0: benchmarks/README.md).
    ``sampling``: ``points=None`` and ``sampler="auto"`` are decided by the problem and loss
    (``AUTO_GAUSS_LOSSES``, ``GAUSS_POINTS_PER_PARAMETER``, ``DEFAULT_POINTS_OTHER``) when a solve
    is planned.
    ``schedule``: stage text, None for ``DEFAULT_SCHEDULE[loss]``; ``beta``: boundary weight, None
    for ``DEFAULT_BETA[loss]``; ``hard_bc``: impose Dirichlet data exactly, ``u = g + phi * N``; None:
    on wherever it applies for the Ritz loss on Gauss points, and for the PINN loss unless the
    distance function has a trimmed segment (an edge whose line cuts the domain: its Laplacian is
    unbounded at its ends) or a re-entrant corner's function without the singular inputs (PINN on the
    L-shape with a smooth ``u`` reached 2.9e-3 with it against 2.1e-7 with the penalty; with the
    singular inputs and ``f = 1``, 8.7e-5 with it against 1.2e-2, benchmarks/README.md), or blends
    data from ``u`` at corners; off otherwise (the Ritz loss
    on Sobol points was seen to overfit the quadrature: 1-D, 400 points). ``engd_damping``: mu of
    ``(G + mu I)^+ grad`` for the line search (0: the pseudo-inverse); ``engd_method``:
    ``"linesearch"`` (grid of step sizes) or ``"lm"`` (Levenberg-Marquardt); ``engd_rtol``: an
    engd stage ends after a step that lowers the loss by less than this fraction of it (None:
    ``DEFAULT_ENGD_RTOL[loss]``). ``interface_inputs``: give the network ``|psi(x)|`` for each
    interface ``psi = 0`` across which ``a`` jumps (:mod:`hrta_pde.poisson.interfaces`), so that
    ``u`` can kink there; None: wherever ``a`` has such an interface in the domain (FNN only).
    ``singular_inputs``: give the network inputs for the points where ``u`` is singular
    (:mod:`hrta_pde.poisson.singular`): ``Re w`` and ``Im w``, ``w = (r e^(i theta))^lam``, at each
    polygon corner with ``lam < 1``, the modes ``r^lam mu(theta)`` (``lam < 2``) where straight
    interfaces of ``a`` cross or meet the boundary, and ``r log r`` where one meets a side whose data
    excite it; None: wherever there are such points (FNN only). ``log_corner_inputs``: give the
    network ``r^2 (log r sin 2 theta + theta cos 2 theta)`` at each right-angled corner between two
    Dirichlet edges of a 2-D box or polygon whose data no smooth ``u`` takes there (``f = 1`` with ``u = 0``: the torsion problem), where
    ``u`` has that term. They need the Dirichlet data by the penalty (``u = g + phi N`` cannot carry
    the term; with ``hard_bc`` true they are refused). None: wherever they apply, unless the
    exact data are chosen automatically for the Ritz loss on Gauss points (the penalty there:
    3.4e-2 against 4.1e-5 on the torsion square), which then goes without them; the PINN loss takes
    the penalty for them (the torsion square 1.0e-5 against 6.5e-4 with the exact data, the
    L-shape with ``f = 1`` 6.3e-6 against 7.5e-4, benchmarks/README.md).
    ``energy_check``: for the Ritz loss, evaluate the energy on a second rule after every step, keep
    the parameters where it was lowest and end the run when it has not fallen for
    ``energy_check.PATIENCE`` steps (:mod:`hrta_pde.poisson.energy_check`); None: on for Ritz when
    every stage is engd.
    """

    KEY_NAME = "solver key"

    loss: str = "pinn"
    schedule: str | None = None
    training: TrainingOptions = TrainingOptions()
    network: NetworkOptions = NetworkOptions()
    sampling: SamplingOptions = SamplingOptions(points=None, sampler="auto")
    beta: float | None = None
    hard_bc: bool | None = None
    interface_inputs: bool | None = None
    singular_inputs: bool | None = None
    log_corner_inputs: bool | None = None
    energy_check: bool | None = None
    eval_every: int = 10
    run: RunOptions = RunOptions()
    engd_damping: float = 0.0
    engd_method: str = "linesearch"
    engd_rtol: float | None = None

    def __post_init__(self):
        check_fields(self)  # the types: the annotations above (and the groups') are the table
        object.__setattr__(self, "loss", loss_name(self.loss))
        check_choice("sampler", self.sampling.sampler, ("auto", "random", "uniform", "sobol", "gauss"))
        check_positive(self, ("eval_every",))
        if self.beta is not None and not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta={self.beta!r} must be a number >= 0")
        if self.schedule is not None and not self.schedule.strip():
            raise ValueError("schedule='' is empty: give stages such as '0.5:3000,1:13000' (or omit it)")
        rtol = self.engd_rtol if self.engd_rtol is not None else DEFAULT_ENGD_RTOL[self.loss]
        k = DEFAULT_ENGD_RCOND_EPS.get(self.loss)
        rcond = None if k is None else k * float(torch.finfo(self.run.torch_dtype).eps)
        object.__setattr__(self, "engd", EngdOptions(damping=self.engd_damping, method=self.engd_method, rtol=rtol,
                                                     rcond=rcond))

    @property
    def schedule_text(self) -> str:
        """The schedule run: the one given, else the default of the loss."""
        return self.schedule if self.schedule is not None else DEFAULT_SCHEDULE[self.loss]


#: The keys of a ``[solver]`` table: the settings of :class:`SolveConfig`, flat.
SOLVER_KEYS = SolveConfig.keys()

#: Settings added after run folders existed, and what those folders' runs did (off).
_LATER_SETTINGS = {"interface_inputs": False, "energy_check": False, "singular_inputs": False,
                   "log_corner_inputs": False}


def saved_config(flat: dict) -> SolveConfig:
    """The :class:`SolveConfig` of a saved run or comparison (its flat settings), with the settings
    added since it was written taken as off, as they were for that run."""
    return SolveConfig.from_dict({**_LATER_SETTINGS, **flat})


