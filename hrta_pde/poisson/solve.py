"""Solve a Poisson problem with HRTA: the plan of one run, its setup and the training loop.

The library is quiet: :func:`solve` returns a :class:`SolveResult` and writes nothing but the
checkpoints into ``checkpoint_dir`` when one is given (they are part of training: resuming reads
them); the run folder's other files are :func:`hrta_pde.poisson.runfolder.write_run`'s, and
printing is the caller's (the command line).

Example::

    from hrta_pde.poisson.catalog import builtin_problem
    from hrta_pde.poisson.solve import SolveConfig, solve
    result = solve(builtin_problem("poisson_2d_sin"), SolveConfig(loss="sobolev"))
    result.metrics["rel_l2"]
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hrta_pde._backend import resolve_device
from hrta_pde.engd import GramJacobian
from hrta_pde.history import History
from hrta_pde.networks import HomotopyNet, homotopy_fnn
from hrta_pde.errors import SettingError, literal
from hrta_pde.options import NetworkOptions
from hrta_pde.poisson.losses import GRAM_FORMS, LOSS_FUNCTIONS, LossContext, check_loss
from hrta_pde.poisson.metrics import evaluate
from hrta_pde.poisson.settings import (AUTO_GAUSS_LOSSES, AUTO_GAUSS_MAX_DIM, DEFAULT_BETA, DEFAULT_POINTS_OTHER,
                                      GAUSS_POINTS_MAX, GAUSS_POINTS_MIN, GAUSS_POINTS_PER_PARAMETER, SolveConfig,
                                      saved_config)
from hrta_pde.schedule import Schedule
from hrta_pde.stages import Position, StageOptimizers
from hrta_pde.train import Hooks, TrainResult, train


@dataclass(frozen=True)
class Plan:
    """One solve, decided before it starts: ``config`` with the default schedule and ``hard_bc``
    filled in (what the run folder records), the parsed ``schedule`` and the exact Dirichlet
    transform (None without ``hard_bc``). Made by :func:`plan_solve`."""

    config: SolveConfig
    schedule: Schedule
    hard_transform: object | None


def decide_sampling(problem, cfg: SolveConfig) -> SolveConfig:
    """``cfg`` with ``sampler="auto"`` and ``points=None`` decided for ``problem``: Gauss points for
    the losses of ``AUTO_GAUSS_LOSSES`` in up to ``AUTO_GAUSS_MAX_DIM`` dimensions where the domain
    has a rule and the points (given or default) are at least ``GAUSS_POINTS_PER_PARAMETER`` per
    network parameter, Sobol points otherwise; Gauss: ``GAUSS_POINTS_PER_PARAMETER`` points per network
    parameter, at least ``GAUSS_POINTS_MIN`` and at most ``GAUSS_POINTS_MAX``; else
    ``DEFAULT_POINTS_OTHER``. A given ``gauss`` is checked against the domain
    (:func:`hrta_pde.poisson.quadrature.gauss_obstacle`)."""
    from hrta_pde.limits import mlp_parameters
    from hrta_pde.poisson.quadrature import gauss_obstacle

    sampler, net = cfg.sampling.sampler, cfg.network
    per_parameter = GAUSS_POINTS_PER_PARAMETER * mlp_parameters(problem.dim, net.width, net.depth)
    if sampler in ("auto", "gauss"):
        obstacle = gauss_obstacle(problem.shape)
        if obstacle is not None and sampler == "gauss":
            raise SettingError(literal(obstacle) + "; use {sampler:=}sobol")
        has_rule = obstacle is None
        if sampler == "auto":
            wanted = cfg.loss in AUTO_GAUSS_LOSSES and problem.dim <= AUTO_GAUSS_MAX_DIM
            given = cfg.sampling.points
            enough = given is None or given >= min(GAUSS_POINTS_MAX, per_parameter)  # else the rule is fitted
            sampler = "gauss" if has_rule and wanted and enough else "sobol"
    points = cfg.sampling.points
    if points is None and sampler == "gauss":
        points = min(GAUSS_POINTS_MAX, max(GAUSS_POINTS_MIN, per_parameter))
    elif points is None:
        points = DEFAULT_POINTS_OTHER
    if (sampler, points) == (cfg.sampling.sampler, cfg.sampling.points):
        return cfg
    return cfg.replace(sampler=sampler, points=points)


def plan_solve(problem, cfg: SolveConfig) -> Plan:
    """Check ``cfg`` against ``problem`` (the loss, ``hard_bc``) and parse its schedule, once.

    The command line makes the plan before it creates the run folder, so that a refused setting
    leaves nothing behind; :func:`solve` makes it when given a :class:`SolveConfig`.
    """
    from hrta_pde.poisson.distance import DistanceError, hard_dirichlet

    check_loss(cfg.loss, problem, cfg.network.phi)
    cfg = decide_sampling(problem, cfg)
    schedule = cfg.training.schedule(cfg.schedule_text)
    hard_bc, transform = cfg.hard_bc, None
    inputs = network_inputs(problem, cfg)  # refuses settings that cannot work (see there)
    automatic = cfg.loss == "pinn" or (cfg.loss == "ritz" and cfg.sampling.sampler == "gauss")
    if hard_bc is None and automatic:  # on where it applies: PINN, and Ritz on Gauss points
        try:
            transform = hard_dirichlet(problem)
        except DistanceError as err:
            if err.reason is None:
                raise
        # the residual needs Laplace phi, unbounded at the corners of an ADF; the corner function
        # (gradient like r^(lam - 1)) is fine when the network has the singular inputs: L-shape,
        # -Laplace u = 1, PINN 8.7e-5 with it against 1.2e-2 with the penalty (benchmarks/README.md)
        covered = transform is not None and _corners_covered(transform, inputs)
        smooth = transform is not None and (transform.smooth or (transform.smooth_but_corners and covered))
        if cfg.loss == "pinn" and not smooth:
            transform = None
        if (cfg.loss == "pinn" or cfg.log_corner_inputs) and _log_corners(inputs):
            transform = None  # g + phi N cannot carry r^2 log r: the torsion square 1.0e-5 with the penalty, 6.5e-4 without
        if transform is not None and inputs is not None and not _features_fit(transform, inputs):
            transform = None  # N = u / phi would be unbounded at a singular point on a Dirichlet part
        hard_bc = transform is not None
    elif hard_bc:
        if cfg.log_corner_inputs:
            raise SettingError("log_corner_inputs with hard_bc: u = g + phi N cannot carry the r^2 log r term "
                               "at the corners; set {no_hard_bc:|hard_bc=false} (the penalty) or omit "
                               "{log_corner_inputs}")
        transform = hard_dirichlet_transform(problem)  # refuses a problem where it cannot apply
    hard_bc = bool(hard_bc)
    if hard_bc and cfg.log_corner_inputs is None and _log_corners(inputs):
        inputs = _without_log_corners(inputs)  # under u = g + phi N they cannot give the term
    check = cfg.energy_check
    if check and cfg.loss != "ritz":
        raise SettingError(f"energy_check guards the ritz loss (its energy measures the error); the {cfg.loss} "
                           "loss has none: omit {energy_check}")
    if check is None:
        check = cfg.loss == "ritz" and set(schedule.optimizers) == {"engd"}
    config = copy.copy(cfg)  # cfg is checked already: fill in the decided values, not check again
    object.__setattr__(config, "schedule", cfg.schedule_text)
    object.__setattr__(config, "hard_bc", hard_bc)
    object.__setattr__(config, "interface_inputs", inputs is not None and bool(inputs.levels))
    object.__setattr__(config, "singular_inputs", inputs is not None and len(_log_corners(inputs)) < len(inputs.corners))
    object.__setattr__(config, "log_corner_inputs", bool(_log_corners(inputs)))
    object.__setattr__(config, "energy_check", bool(check))
    return Plan(config, schedule, transform)


def _log_corners(inputs) -> list:
    from hrta_pde.poisson.singular import LogCornerFeature

    return [] if inputs is None else [c for c in inputs.corners if isinstance(c, LogCornerFeature)]


def _without_log_corners(inputs):
    """``inputs`` without its :class:`LogCornerFeature` s (None if nothing is left)."""
    from hrta_pde.poisson.interfaces import InterfaceInputs

    kept = [c for c in inputs.corners if c not in _log_corners(inputs)]
    return InterfaceInputs(inputs.levels, inputs.dim, kept) if inputs.levels or kept else None


def _corner_inputs_at(inputs) -> list:
    from hrta_pde.poisson.singular import CornerFeature

    return [] if inputs is None else [c.v for c in inputs.corners if isinstance(c, CornerFeature)]


def _corners_covered(transform, inputs) -> bool:
    """Whether the network has corner inputs at every vertex where ``transform``'s ``phi`` uses the
    corner function (then ``u / phi`` is smooth in the inputs there)."""
    at = _corner_inputs_at(inputs)
    return all(any(np.allclose(v, q, rtol=0, atol=1e-9) for q in at) for v in transform.corner_vertices)


def _features_fit(transform, inputs) -> bool:
    """Whether every singular input on a Dirichlet part (``phi = 0`` there) sits at a corner function of
    ``phi`` with corner inputs: elsewhere ``phi`` vanishes like the distance to the part while ``u``
    does like ``r^lam``, so ``N = u / phi ~ r^(lam - 1)`` would be unbounded."""
    from hrta_pde.poisson.singular import CornerFeature, LogCornerFeature

    for c in inputs.corners:
        if isinstance(c, LogCornerFeature):
            continue  # plan_solve decides them: PINN takes the penalty, Ritz drops them
        p = torch.as_tensor(np.asarray(c.v, dtype=np.float64)[None, :])
        if float(transform.phi(p).abs().max()) > 1e-9:
            continue  # not on a Dirichlet part
        if not (isinstance(c, CornerFeature)
                and any(np.allclose(c.v, v, rtol=0, atol=1e-9) for v in transform.corner_vertices)):
            return False
    return True


def build_network(cfg: NetworkOptions, dim: int, generator: torch.Generator, dtype, device, points=None,
                  inputs=None):
    """The solver's network: a ``dde.nn.FNN`` or the paper's ``HomotopyNet``, with ``s = 1``.

    With the interior ``points`` given and ``cfg.init`` ``"domain"`` (or ``"auto"`` with a smooth
    ``phi``: tanh, sin), the FNN is then initialised for the domain (:func:`domain_init`).
    ``inputs``: an input transform adding ``inputs.extra`` inputs (FNN only), e.g.
    :class:`hrta_pde.poisson.interfaces.InterfaceInputs`; the init sees the transformed points.
    """
    if cfg.net == "paper":
        if inputs is not None:
            raise SettingError("interface inputs need {net:=}fnn (the paper's network takes x only); "
                               "or set {no_interface_inputs:|interface_inputs=false}")
        net = HomotopyNet(dim, [cfg.width] * cfg.depth, cfg.phi, s=1.0, generator=generator, dtype=dtype)
    else:
        extra = 0 if inputs is None else inputs.extra
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            net = homotopy_fnn([dim + extra] + [cfg.width] * cfg.depth + [1], cfg.phi, 1.0)
        net = net.to(dtype)
        relu_power = str(cfg.phi).strip().lower().replace("^", "") in ("relu", "relu1", "relu2", "relu3")
        if points is not None and (cfg.init == "domain" or (cfg.init == "auto" and not relu_power)):
            h = points.detach().to("cpu", dtype)
            domain_init(net, h if inputs is None else inputs(h), generator)
        if inputs is not None:
            net.apply_feature_transform(inputs)
    return net.to(device)


def network_inputs(problem, cfg: SolveConfig, refuse: bool = True):
    """The input transform of ``cfg.interface_inputs`` and ``cfg.singular_inputs`` for ``problem``: an
    :class:`InterfaceInputs` with ``|psi|`` of the interfaces where ``a`` jumps and the features of
    :func:`hrta_pde.poisson.singular.singular_features`, then (``cfg.log_corner_inputs``) those of
    :func:`hrta_pde.poisson.singular.log_corner_features`, or None (none applies, or the settings
    are off; None, auto: each on wherever it applies and the network is an FNN). With
    ``refuse`` (when a solve is planned) a :class:`SettingError` names what cannot work: inputs
    asked for where there are none or with the paper's network, and the PINN loss on a jumping
    ``a`` without the interface inputs (its flux condition is taken on the interfaces)."""
    from hrta_pde.poisson.interfaces import InterfaceInputs
    from hrta_pde.poisson.singular import MAX_SINGULAR_FEATURES, SingularError, log_corner_features, singular_features

    levels = _interface_levels_for(problem, cfg, refuse)
    wanted, fnn = cfg.singular_inputs, cfg.network.net == "fnn"
    try:
        corners = singular_features(problem) if wanted is not False else []
    except SingularError as err:  # auto: none (the plain network); asked for: refused
        if refuse and wanted:
            raise SettingError(literal(str(err)) + ": set {no_singular_inputs:|singular_inputs=false}") from None
        corners = []
    if refuse and wanted and not corners:
        raise SettingError("singular_inputs: this problem has no point where u is singular (a polygon corner "
                           "with lam < 1: re-entrant, or Dirichlet meeting Neumann/Robin above 90 degrees; a "
                           "point where straight interfaces of a cross or meet a side): omit {singular_inputs}")
    if corners and not fnn:
        if refuse and wanted:
            raise SettingError("singular inputs need {net:=}fnn (the paper's network takes x only); "
                               "or set {no_singular_inputs:|singular_inputs=false}")
        corners = []
    logs, log_wanted = [], cfg.log_corner_inputs
    if log_wanted is not False:
        try:
            taken = [f.v for f in singular_features(problem)]
        except SingularError:
            taken = []
        logs = log_corner_features(problem, taken)
        if refuse and log_wanted and not logs:
            raise SettingError("log_corner_inputs: this problem has no right-angled corner between two Dirichlet "
                               "edges (2-D boxes and polygons) whose data excite r^2 log r (f + a (g0'' + g1'') "
                               "+ grad a . grad u - c g != 0 at the vertex), or more than "
                               f"{MAX_SINGULAR_FEATURES} of them: omit {{log_corner_inputs}}")
        if logs and not fnn:
            if refuse and log_wanted:
                raise SettingError("log corner inputs need {net:=}fnn (the paper's network takes x only); "
                                   "or set {no_log_corner_inputs:|log_corner_inputs=false}")
            logs = []
        if len(corners) + len(logs) > MAX_SINGULAR_FEATURES:
            if refuse and log_wanted:
                raise SettingError(f"log_corner_inputs: with the other singular inputs the network would take "
                                   f"{len(corners) + len(logs)}, more than {MAX_SINGULAR_FEATURES}: set "
                                   "{no_log_corner_inputs:|log_corner_inputs=false}")
            logs = []
    corners = corners + logs
    if not levels and not corners:
        return None
    return InterfaceInputs(levels, problem.dim, corners)


def _interface_levels_for(problem, cfg: SolveConfig, refuse: bool) -> list:
    """The interface levels the network takes as inputs under ``cfg.interface_inputs`` ([]: none),
    with the refusals of :func:`network_inputs`."""
    from hrta_pde.poisson.interfaces import InterfaceError, interface_levels, shown

    wanted, pinn = cfg.interface_inputs, refuse and cfg.loss == "pinn"
    try:
        levels = interface_levels(problem)
    except InterfaceError as err:
        if refuse and (wanted or (pinn and wanted is None)):
            raise SettingError(literal(str(err)) + (" or {loss:=}ritz with {no_interface_inputs:|interface_inputs=false}"
                                                    if pinn else " or set {no_interface_inputs:|interface_inputs=false}")) from None
        return []
    if not levels:
        if refuse and wanted:
            raise SettingError("interface_inputs: the coefficient a of this problem has no interface in the "
                               "domain (no where(...) or sign(...) that changes inside): omit {interface_inputs}")
        return []
    if wanted is False or cfg.network.net != "fnn":
        if pinn:
            raise SettingError(f"the pinn loss on a coefficient a that jumps across {literal(shown(levels[0], problem.dim))}"
                               " = 0 needs interface inputs (u kinks there, and the flux condition is taken on "
                               "the interface): set {interface_inputs:|interface_inputs=true} and {net:=}fnn, or {loss:=}ritz")
        if refuse and wanted:
            raise SettingError("interface inputs need {net:=}fnn (the paper's network takes x only); "
                               "or set {no_interface_inputs:|interface_inputs=false}")
        return []
    return list(levels)


#: Standard deviation, over the training points, of every hidden pre-activation after domain_init.
INIT_PREACTIVATION_STD = 1.2


@torch.no_grad()
def domain_init(net, x: torch.Tensor, generator: torch.Generator, std: float = INIT_PREACTIVATION_STD):
    """Initialise a ``dde.nn.FNN`` for the points ``x`` of its domain (a data-dependent init).

    First layer: directions ``w_k ~ N(0, I)`` and biases ``b_k = -w_k . c_k`` with ``c_k`` one of
    the points, so that every unit's transition (tanh) or kink (ReLU^k) crosses the domain; deeper
    layers keep their Glorot weights. Each hidden layer is then rescaled so that its pre-activations
    have standard deviation ``std`` over the points (as in LSUV, Mishkin and Matas 2016). Glorot
    weights with zero biases put every first-layer hyperplane through the origin, and with
    ``phi = ReLU^3`` three layers shrank the output to 1e-11..1e-14 (a constant network that no
    optimizer moves); with this init no layer starts vanishing or saturated, and the energy natural
    gradient converges from the first steps (benchmarks/README.md).
    """
    linears = net.linears
    first = linears[0]
    w = torch.randn(first.weight.shape, generator=generator, dtype=torch.float64).to(first.weight.dtype)
    idx = torch.randint(0, x.shape[0], (first.weight.shape[0],), generator=generator)
    first.weight.copy_(w)
    first.bias.copy_(-(w * x[idx].to(w.dtype)).sum(dim=1))
    h = x.to(first.weight.dtype)
    acts = net.activation if isinstance(net.activation, (list, tuple)) else [net.activation] * (len(linears) - 1)
    for layer, act in zip(linears[:-1], acts):
        z = layer(h)
        spread = z.std(dim=0).mean()
        if float(spread) > 0:
            layer.weight.mul_(std / spread)
            layer.bias.mul_(std / spread)
        h = act(layer(h))


def hard_dirichlet_transform(problem):
    """:func:`hrta_pde.poisson.distance.hard_dirichlet`, refused as a setting: a
    :class:`SettingError` naming ``hard_bc`` when it cannot apply (see
    :func:`hrta_pde.poisson.distance.hard_bc_obstacle`)."""
    from hrta_pde.poisson.distance import DistanceError, hard_dirichlet

    try:
        return hard_dirichlet(problem)
    except DistanceError as err:
        if err.reason is None:
            raise
        raise SettingError(literal(err.reason) + ": drop {hard_bc} (the boundary penalty works everywhere)") from None


class _CachedReference:
    """A reference solution whose values at the test points are computed once (a finite element
    solution is located and evaluated point by point, which costs more than a training step)."""

    def __init__(self, reference, x: torch.Tensor):
        self.reference, self.x = reference, x
        self._u, self._grad = reference.u(x), reference.grad(x)

    def u(self, x):
        return self._u if x is self.x else self.reference.u(x)

    def grad(self, x):
        return self._grad if x is self.x else self.reference.grad(x)

    def __getattr__(self, name):
        return getattr(self.reference, name)


@dataclass
class SolveResult:
    """A finished (or stopped) solve: the trained network, the training result, the metrics and
    the settings as run (:attr:`Plan.config`); ``seconds`` is this call's training time."""

    net: torch.nn.Module
    train: TrainResult
    metrics: dict
    config: SolveConfig
    seconds: float

    @property
    def history(self) -> History:
        return self.train.history


class Setup:
    """Everything a solve needs that does not change while training: points, data, network.

    Several losses can share one (``compare``): the same initial network and points.
    """

    def __init__(self, problem, cfg: SolveConfig, points: dict | None = None):
        cfg = decide_sampling(problem, cfg)
        self.problem, self.cfg, self.loss = problem, cfg, cfg.loss
        self.device, self.dtype = resolve_device(cfg.run.device), cfg.run.torch_dtype
        gen = torch.Generator().manual_seed(cfg.run.seed)
        self.weights = None
        if cfg.sampling.sampler == "gauss":
            self.x, self.weights, self.boundary = problem.quadrature(
                cfg.sampling.points, cfg.sampling.boundary_points, dtype=self.dtype, device=self.device)
        else:
            kw = dict(generator=gen, sampler=cfg.sampling.sampler, dtype=self.dtype, device=self.device)
            self.x = problem.sample_interior(cfg.sampling.points, **kw)
            self.boundary = problem.sample_boundary(cfg.sampling.boundary_points, **kw)
        if points is not None:  # resume: the very points of the interrupted run
            self.x = points["x"].to(self.device, self.dtype)
            if points.get("weights") is not None:
                weights = points["weights"]
                if not isinstance(weights, torch.Tensor) or weights.shape != (len(self.x),):
                    from hrta_pde.io.checkpoint import CheckpointError

                    raise CheckpointError("the checkpoint's quadrature weights do not match its points: it is "
                                          "damaged; start a new run")
                self.weights = weights.to(self.device, self.dtype)
            for name, value in points["boundary"].items():
                setattr(self.boundary, name, value.to(self.device))
        test_gen = torch.Generator().manual_seed(cfg.run.seed + 7919)
        self.x_test = problem.sample_interior(cfg.sampling.test_points, generator=test_gen, sampler="random",
                                              dtype=self.dtype, device=self.device)
        self.inputs = network_inputs(problem, cfg, refuse=False)
        self.net = build_network(cfg.network, problem.dim, gen, self.dtype, self.device, points=self.x,
                                 inputs=self.inputs)
        beta = DEFAULT_BETA[self.loss] if cfg.beta is None else cfg.beta
        self.interfaces = []
        if self.inputs is not None:  # the PINN's flux condition; the same points on every run of a seed
            from hrta_pde.poisson.interfaces import interface_points

            self.interfaces = interface_points(problem, self.inputs, cfg.sampling.boundary_points,
                                               generator=torch.Generator().manual_seed(cfg.run.seed + 104729),
                                               dtype=self.dtype, device=self.device)
        self.context = LossContext(problem, self.x, self.boundary, beta=beta, weights=self.weights,
                                   interfaces=self.interfaces)

    def points_state(self) -> dict:
        """The points and every field of the boundary sample (resume uses the very same data)."""
        b = self.boundary
        fields = [f.name for f in dataclasses.fields(b)]
        return {"x": self.x.detach().cpu(), "weights": None if self.weights is None else self.weights.detach().cpu(),
                "boundary": {k: getattr(b, k).detach().cpu() for k in fields if getattr(b, k) is not None}}


def _restore(resume: dict, net, optimizers) -> tuple[History, Position]:
    """Load a checkpoint's network, optimizer, history, position and random states."""
    from hrta_pde.io.checkpoint import set_rng_state

    net.load_state_dict(resume["net"])
    state = resume["optimizer"]
    optimizers.load_state_dict(state if "adam" in state else {"adam": state})  # older checkpoints: Adam only
    set_rng_state(resume["rng"])
    return History.from_state_dict(resume["history"]), Position(**resume["position"])


def solve(problem, cfg: SolveConfig | Plan, *, checkpoint_dir=None, progress: bool = False,
          setup: Setup | None = None, reference=None, resume: dict | None = None,
          stop_at: int | None = None) -> SolveResult:
    """Train ``cfg.loss`` on ``problem`` with the HRTA schedule; measure errors on the test set.

    ``cfg``: the settings, or the :class:`Plan` made of them by :func:`plan_solve`. With
    ``checkpoint_dir`` a checkpoint is saved there every ``checkpoint_every`` iterations, at the
    end, and on SIGINT/SIGTERM (then the run stops with status ``"interrupted"`` and continues with
    ``resume=load_checkpoint(checkpoint_dir)``). ``setup`` lets several losses share the same
    initial network and points (``compare``). ``stop_at`` stops after that many iterations as if
    interrupted (for tests). ``reference``: a finite element solution to measure against.
    """
    from hrta_pde.io.checkpoint import catch_sigint, rng_state, save_checkpoint

    plan = cfg if isinstance(cfg, Plan) else plan_solve(problem, cfg)
    cfg, schedule = plan.config, plan.schedule
    setup = setup or Setup(problem, cfg, points=resume.get("points") if resume else None)
    net = copy.deepcopy(setup.net)
    if plan.hard_transform is not None:
        net.apply_output_transform(plan.hard_transform)
    context = setup.context
    check = None
    if cfg.energy_check:  # the Ritz energy on a second rule: ends the run before it fits its points
        from hrta_pde.poisson.energy_check import EnergyCheck, check_points

        rules = [LossContext(problem, xc, bc, beta=context.beta, weights=wc)
                 for xc, wc, bc in check_points(problem, cfg, setup.dtype, setup.device, cfg.run.seed, setup.x)]
        check = EnergyCheck(rules[0], runaway=rules[1] if len(rules) > 1 else None)
        if resume is not None and resume.get("energy_check") is not None:
            check.load_state_dict(resume["energy_check"])
    ended = {}
    last_stage = len(schedule.stages) - 1
    jacobian = None
    if "engd" in schedule.optimizers:
        terms = [t for t in GRAM_FORMS[cfg.loss](context)
                 if not (cfg.hard_bc and t.name == "dirichlet")]  # u = g there whatever the parameters
        jacobian = GramJacobian(net, terms)
    optimizers = StageOptimizers(list(net.parameters()), schedule, jacobian=jacobian, engd=cfg.engd)
    history, position = History(), Position()
    if resume is not None:
        history, position = _restore(resume, net, optimizers)
    loss_fn = LOSS_FUNCTIONS[cfg.loss]
    can_measure = problem.has_exact or reference is not None
    if reference is not None:
        reference = _CachedReference(reference, setup.x_test)  # evaluated every eval_every iterations

    def checkpoint(pos: Position) -> None:
        if checkpoint_dir is not None:
            save_checkpoint(Path(checkpoint_dir) / "checkpoint.pt", {
                "net": net.state_dict(), "optimizer": optimizers.state_dict(), "position": pos.state_dict(),
                "history": history.state_dict(), "rng": rng_state(), "config": cfg.to_dict(),
                "problem": problem.spec, "points": setup.points_state(),
                "energy_check": None if check is None else check.state_dict()})

    with catch_sigint() as interrupted:
        def after_step(pos: Position) -> bool:
            if can_measure and pos.iteration % cfg.eval_every == 0:
                history.evaluations.append({"iteration": pos.iteration,
                                            **evaluate(net, setup.x_test, problem, reference=reference)})
            if check is not None and pos.stage == last_stage and check.update(net, pos.iteration):
                check.restore(net)  # only in the last stage: s is the stage's, as are the parameters kept
                ended["check"] = check.ended = pos.iteration
            stop = bool(ended) or bool(interrupted) or (stop_at is not None and pos.iteration >= stop_at)
            if stop or pos.iteration % cfg.training.checkpoint_every == 0:
                checkpoint(pos)
            return stop

        t0 = time.perf_counter()
        if check is not None and check.ended is not None:  # resumed after the check had ended it
            ended["check"] = check.ended
            result = TrainResult(history, None, position, optimizers=optimizers)
        else:
            result = train(net, lambda: loss_fn(net, context), schedule, optimizer=optimizers,
                           history=history, position=position, record_every=cfg.training.record_every,
                           progress=progress, hooks=Hooks(after_step=after_step, every=1), description=cfg.loss)
        seconds = time.perf_counter() - t0
    restored = bool(ended)
    if check is not None and not ended and result.status == "completed" and check.since > 0:
        restored = check.restore(net)  # the schedule ended after the best check energy: keep that
    if ended:
        result.status = "completed"
        why = ("the energy on the Sobol check points rose" if check.ran_away else
               f"the energy on the check points had not fallen for {check.patience} steps")
        result.message = (f"stopped at iteration {ended['check']}: {why}; kept the parameters of iteration "
                          f"{check.kept_iteration}")
    elif result.status == "stopped":
        result.status = "interrupted"
        result.message = f"interrupted at iteration {result.position.iteration} (stage {result.position.stage + 1})"
    else:
        if restored:
            kept = (f"kept the parameters of iteration {check.kept_iteration}, where the energy on the check "
                    "points was lowest")
            result.message = f"{result.message}; {kept}" if result.message else kept
        checkpoint(result.position)
    final_loss = history.final_finite_loss()
    if restored:  # the loss of the parameters kept, not of the last step
        final_loss = float(sum(t.detach() for t in loss_fn(net, context).values()))
    metrics = {"loss": cfg.loss, "status": result.status, "message": result.message,
               "iterations": result.position.iteration, "seconds": result.position.elapsed,
               "final_loss": final_loss, "stage_switches": history.switches}
    if check is not None:
        metrics["best_iteration"] = check.kept_iteration
    if can_measure:
        final = evaluate(net, setup.x_test, problem, reference=reference)
        metrics.update(final)
        if not history.evaluations or history.evaluations[-1]["iteration"] != result.position.iteration:
            history.evaluations.append({"iteration": result.position.iteration, **final})
        elif restored:  # the parameters kept are those of the best check energy, not the last step's
            history.evaluations[-1] = {"iteration": result.position.iteration, **final}
    return SolveResult(net, result, metrics, cfg, seconds)


@dataclass
class SavedRun:
    """A run folder read back: its problem, settings, network (trained state) and checkpoint."""

    problem: object
    config: SolveConfig
    net: torch.nn.Module
    checkpoint: dict


def open_run(run_dir, *, command: str | None = None, device: str | None = None) -> SavedRun:
    """Read the checkpoint of ``run_dir`` and rebuild its problem, settings and network (on the CPU).

    ``device`` replaces the saved device (it does not change what a run computes); ``command``
    names what was asked in the messages of a folder that is not a run folder. The one reader of
    a run folder: resuming and exporting both start here.
    """
    from hrta_pde.io.checkpoint import load_checkpoint, load_net_state
    from hrta_pde.poisson.spec import problem_from_dict

    ck = load_checkpoint(run_dir, command=command)
    problem = problem_from_dict(ck["problem"], source=str(run_dir))
    cfg = saved_config({**ck["config"], **({"device": device} if device is not None else {})})
    net = build_network(cfg.network, problem.dim, torch.Generator().manual_seed(cfg.run.seed),
                        cfg.run.torch_dtype, torch.device("cpu"), inputs=network_inputs(problem, cfg, refuse=False))
    load_net_state(net, ck["net"], Path(run_dir) / "checkpoint.pt")
    return SavedRun(problem, cfg, net, ck)


def load_run(run_dir, command: str = "export") -> tuple:
    """``(problem, config, net, checkpoint)`` of a run folder, the network in its trained state
    (with its exact Dirichlet transform), on the CPU."""
    run = open_run(run_dir, command=command)
    cfg = run.config
    if cfg.run.device == "auto":
        cfg = cfg.replace(device="cpu")
    if cfg.hard_bc:
        run.net.apply_output_transform(hard_dirichlet_transform(run.problem))
    return run.problem, cfg, run.net, run.checkpoint
