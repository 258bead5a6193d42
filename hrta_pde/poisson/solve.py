"""Solve a Poisson problem with HRTA, and compare losses over seeds.

Example::

    from hrta_pde.poisson.catalog import builtin_problem
    from hrta_pde.poisson.solve import SolveConfig, solve
    result = solve(builtin_problem("poisson_2d_sin"), SolveConfig(loss="sobolev"))
    result.metrics["rel_l2"]
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from hrta_pde._backend import resolve_device, resolve_dtype
from hrta_pde.activation import get_phi
from hrta_pde.history import History
from hrta_pde.engd import EngdOptions, GramJacobian
from hrta_pde.poisson.distance import hard_bc_applicable, hard_dirichlet
from hrta_pde.poisson.losses import GRAM_FORMS, LOSS_FUNCTIONS, LossContext, check_loss
from hrta_pde.poisson.metrics import evaluate
from hrta_pde.networks import HomotopyNet, homotopy_fnn
from hrta_pde.schedule import PlateauRule, Schedule, parse_schedule
from hrta_pde.train import Hooks, Position, StageOptimizers, TrainResult, train

#: Default schedules: one stage of the energy natural gradient at s = 1 for every loss (it ends
#: early when no step lowers the loss). Measured on 2 shared CPU cores (benchmarks/README.md,
#: "Accuracy per second"): with the defaults below (width 64) PINN reached relative L2 2.5e-8 on
#: poisson_2d_sin in 31 steps and 5.8e-7 on poisson_disk, where the old Adam defaults stalled at
#: 1e-3..1e-4 after minutes; an Adam warm-up before ENGD made it worse (1.6e-3). HRTA with Adam did not beat
#: one stage (validation/REPORT.md section 4; benchmarks/results/sobolev_schedule_check.md). Pass
#: a schedule, e.g. "0.5:20@engd,1:180@engd" or "1:6000" (Adam), to train otherwise.
DEFAULT_SCHEDULE = {"sobolev": "1:200@engd", "l2": "1:200@engd", "ritz": "1:200@engd", "pinn": "1:200@engd"}

#: Default boundary weights: the Ritz penalty multiplies an integral over the boundary, the PINN
#: weight a mean of squared boundary residuals.
DEFAULT_BETA = {"ritz": 100.0, "pinn": 100.0, "sobolev": 0.0, "l2": 0.0}

#: Largest seed: torch takes 64-bit seeds, and the test points use ``seed + 7919``.
MAX_SEED = 2**62


@dataclass
class SolveConfig:
    """Solver settings (a ``[solver]`` table of a problem file may set any of them)."""

    loss: str = "pinn"
    schedule: str | None = None  # None: DEFAULT_SCHEDULE[loss]
    lr: float = 1e-3
    reset_optimizer: bool = False
    plateau_window: int = 500
    plateau_threshold: float = 0.01
    net: str = "fnn"        # "fnn": dde.nn.FNN (Glorot normal); "paper": HomotopyNet (N(0,1), NTK scaling)
    # "domain": domain_init of the FNN on the training points; "glorot": DeepXDE's; "auto": domain
    # for tanh and sin, glorot for ReLU^k (with Adam, 3x64 ReLU^3 PINN ended at 6.4e-1 with the
    # domain init against 1.25e-4 with glorot on poisson_2d_sin, seed 0: benchmarks/README.md)
    init: str = "auto"
    width: int = 64
    depth: int = 1
    phi: str = "tanh"
    points: int = 1000
    boundary_points: int = 200
    sampler: str = "sobol"  # low-discrepancy points: the Ritz energy needs an accurate quadrature
    beta: float | None = None  # boundary weight (default: DEFAULT_BETA[loss])
    test_points: int = 10000
    eval_every: int = 10
    checkpoint_every: int = 1000
    # Impose Dirichlet data exactly, u = g + phi * N (intervals, boxes, balls). None: on for the PINN
    # loss wherever it applies, off otherwise (with the Ritz loss and few points it was seen to
    # overfit the quadrature: 1-D, 400 points).
    hard_bc: bool | None = None
    record_every: int = 10
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"
    engd_damping: float = 0.0  # linesearch: mu of (G + mu I)^+ grad (0: the pseudo-inverse)
    engd_method: str = "linesearch"  # "linesearch" (grid of step sizes) or "lm" (Levenberg-Marquardt)

    def validate(self) -> None:
        from hrta_pde.fields import check_fields
        from hrta_pde.limits import MAX_DEPTH

        check_fields(self)  # the types: the annotations above are the table
        for name in ("width", "depth", "points", "boundary_points", "test_points", "eval_every",
                     "record_every", "plateau_window", "checkpoint_every"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if self.depth > MAX_DEPTH:
            raise ValueError(f"depth={self.depth} is above the limit of {MAX_DEPTH} hidden layers: "
                             "lower --depth")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed={self.seed} must be an integer from 0 to 2^62 (torch seeds are "
                             "64-bit and compare adds the seed index)")
        if self.net not in ("fnn", "paper"):
            raise ValueError(f"net={self.net!r} is unknown: use 'fnn' or 'paper'")
        if self.init not in ("auto", "domain", "glorot"):
            raise ValueError(f"init={self.init!r} is unknown: use 'auto', 'domain' or 'glorot'")
        if self.sampler not in ("random", "uniform", "sobol"):
            raise ValueError(f"sampler={self.sampler!r} is unknown: use random, uniform or sobol")
        if self.beta is not None and not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta={self.beta!r} must be a number >= 0")
        get_phi(self.phi)
        resolve_dtype(self.dtype)
        self.engd_options()
        self.make_schedule()

    def engd_options(self) -> EngdOptions:
        return EngdOptions(damping=self.engd_damping, method=self.engd_method)

    def resolved_schedule(self) -> str:
        """The schedule text: the one given, else the default of the loss."""
        if self.schedule is not None:
            return self.schedule
        return DEFAULT_SCHEDULE.get(str(self.loss).strip().lower(), DEFAULT_SCHEDULE["pinn"])

    def make_schedule(self) -> Schedule:
        return parse_schedule(self.resolved_schedule(), self.lr, PlateauRule(self.plateau_window, self.plateau_threshold),
                              self.reset_optimizer)

    @classmethod
    def from_dict(cls, data: dict, base: "SolveConfig | None" = None) -> "SolveConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown solver key(s) {sorted(unknown)}; allowed: {', '.join(sorted(names))}")
        from hrta_pde.fields import check_value, field_types

        types = field_types(cls)
        cfg = copy.deepcopy(base) if base is not None else cls()
        for k, v in data.items():
            setattr(cfg, k, check_value(k, v, types[k]))
        return cfg


def build_network(cfg: SolveConfig, dim: int, generator: torch.Generator, dtype, device, points=None):
    """The solver's network: a ``dde.nn.FNN`` or the paper's ``HomotopyNet``, with ``s = 1``.

    With the interior ``points`` given and ``cfg.init`` ``"domain"`` (or ``"auto"`` with a smooth
    ``phi``: tanh, sin), the FNN is then initialised for the domain (:func:`domain_init`).
    """
    if cfg.net == "paper":
        net = HomotopyNet(dim, [cfg.width] * cfg.depth, cfg.phi, s=1.0, generator=generator, dtype=dtype)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            net = homotopy_fnn([dim] + [cfg.width] * cfg.depth + [1], cfg.phi, 1.0)
        net = net.to(dtype)
        relu_power = str(cfg.phi).strip().lower().replace("^", "") in ("relu", "relu1", "relu2", "relu3")
        if points is not None and (cfg.init == "domain" or (cfg.init == "auto" and not relu_power)):
            domain_init(net, points.detach().to("cpu", dtype), generator)
    return net.to(device)


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
    net: torch.nn.Module
    train: TrainResult
    metrics: dict
    config: SolveConfig
    seconds: float
    run_dir: Path | None = None
    extras: dict = field(default_factory=dict)

    @property
    def history(self) -> History:
        return self.train.history


class Setup:
    """Everything a solve needs that does not change while training: points, data, network."""

    def __init__(self, problem, cfg: SolveConfig, points: dict | None = None):
        cfg.validate()
        self.loss = check_loss(cfg.loss, problem, cfg.phi)
        self.problem, self.cfg = problem, cfg
        self.device, self.dtype = resolve_device(cfg.device), resolve_dtype(cfg.dtype)
        gen = torch.Generator().manual_seed(cfg.seed)
        kw = dict(generator=gen, sampler=cfg.sampler, dtype=self.dtype, device=self.device)
        self.x = problem.sample_interior(cfg.points, **kw)
        self.boundary = problem.sample_boundary(cfg.boundary_points, **kw)
        if points is not None:  # resume: the very points of the interrupted run
            self.x = points["x"].to(self.device, self.dtype)
            for name, value in points["boundary"].items():
                setattr(self.boundary, name, value.to(self.device))
        test_gen = torch.Generator().manual_seed(cfg.seed + 7919)
        self.x_test = problem.sample_interior(cfg.test_points, generator=test_gen, sampler="random",
                                              dtype=self.dtype, device=self.device)
        self.net = build_network(cfg, problem.dim, gen, self.dtype, self.device, points=self.x)
        beta = DEFAULT_BETA[self.loss] if cfg.beta is None else cfg.beta
        self.context = LossContext(problem, self.x, self.boundary, beta=beta)

    def points_state(self) -> dict:
        b = self.boundary
        return {"x": self.x.detach().cpu(), "boundary": {k: getattr(b, k).detach().cpu() for k in
                                                         ("x", "normal", "dirichlet", "g", "h")}}


def solve(problem, cfg: SolveConfig, *, out=None, progress: bool = False, setup: Setup | None = None,
          log=print, reference=None, resume: dict | None = None, stop_at: int | None = None) -> SolveResult:
    """Train ``cfg.loss`` on ``problem`` with the HRTA schedule; measure errors on the test set.

    With ``out`` a run folder is written (see :func:`write_run`) and a checkpoint is saved every
    ``cfg.checkpoint_every`` iterations, at the end, and on Ctrl-C (then the run stops with status
    ``"interrupted"`` and can be continued with ``resume=load_checkpoint(run_dir)``). ``setup``
    lets several losses share the same initial network and points (``compare``). ``stop_at``
    stops after that many iterations as if interrupted (for tests).
    """
    from hrta_pde.io.checkpoint import catch_sigint, save_checkpoint, set_rng_state
    from hrta_pde.poisson.problem_toml import problem_to_toml
    from hrta_pde.io.runs import make_run_dir

    setup = setup or Setup(problem, cfg, points=resume.get("points") if resume else None)
    loss_name = check_loss(cfg.loss, problem, cfg.phi)
    cfg = copy.copy(cfg)
    cfg.schedule = cfg.resolved_schedule()  # the run folder records the settings actually run
    if cfg.hard_bc is None:
        cfg.hard_bc = loss_name == "pinn" and hard_bc_applicable(problem)
    hard_transform = hard_dirichlet(problem) if cfg.hard_bc else None  # checks it applies
    schedule = cfg.make_schedule()
    run_dir = make_run_dir(out, "solve") if out is not None else None
    if run_dir is not None:
        (run_dir / "problem.toml").write_text(problem_to_toml(problem, solver=asdict(cfg)))
    net = copy.deepcopy(setup.net)
    if hard_transform is not None:
        net.apply_output_transform(hard_transform)
    context = setup.context
    jacobian = None
    if "engd" in schedule.optimizers:
        terms = [t for t in GRAM_FORMS[loss_name](context)
                 if not (cfg.hard_bc and t.name == "dirichlet")]  # u = g there whatever the parameters
        jacobian = GramJacobian(net, terms)
    optimizers = StageOptimizers(list(net.parameters()), schedule, jacobian=jacobian, engd=cfg.engd_options())
    history, position = History(), Position()
    if resume is not None:
        net.load_state_dict(resume["net"])
        state = resume["optimizer"]
        optimizers.load_state_dict(state if "adam" in state else {"adam": state})  # older checkpoints: Adam only
        history = History.from_state_dict(resume["history"])
        position = Position(**resume["position"])
        set_rng_state(resume["rng"])
    loss_fn = LOSS_FUNCTIONS[loss_name]
    can_measure = problem.has_exact or reference is not None
    if reference is not None:
        reference = _CachedReference(reference, setup.x_test)  # evaluated every eval_every iterations

    def checkpoint(pos: Position) -> None:
        if run_dir is not None:
            save_checkpoint(run_dir / "checkpoint.pt", {
                "net": net.state_dict(), "optimizer": optimizers.state_dict(), "position": pos.state_dict(),
                "history": history.state_dict(), "rng": _rng(), "config": asdict(cfg),
                "problem": problem.spec, "points": setup.points_state()})

    with catch_sigint() as interrupted:
        def after_step(pos: Position) -> bool:
            if can_measure and pos.iteration % cfg.eval_every == 0:
                history.evaluations.append({"iteration": pos.iteration,
                                            **evaluate(net, setup.x_test, problem, reference=reference)})
            stop = bool(interrupted) or (stop_at is not None and pos.iteration >= stop_at)
            if stop or pos.iteration % cfg.checkpoint_every == 0:
                checkpoint(pos)
            return stop

        t0 = time.perf_counter()
        result = train(net, lambda: loss_fn(net, context), schedule, optimizer=optimizers,
                       history=history, position=position, record_every=cfg.record_every,
                       progress=progress, hooks=Hooks(after_step=after_step, every=1), description=loss_name)
        seconds = time.perf_counter() - t0
    if result.status == "stopped":
        result.status = "interrupted"
        result.message = (f"interrupted at iteration {result.position.iteration} (stage {result.position.stage + 1})"
                          + (f"; resume with: hrta-pde solve --resume {run_dir}" if run_dir is not None else ""))
    else:
        checkpoint(result.position)
    metrics = {"loss": loss_name, "status": result.status, "message": result.message,
               "iterations": result.position.iteration, "seconds": result.position.elapsed,
               "final_loss": history.final_finite_loss(), "stage_switches": history.switches}
    if can_measure:
        final = evaluate(net, setup.x_test, problem, reference=reference)
        metrics.update(final)
        if not history.evaluations or history.evaluations[-1]["iteration"] != result.position.iteration:
            history.evaluations.append({"iteration": result.position.iteration, **final})
    res = SolveResult(net, result, metrics, cfg, seconds)
    if result.status != "completed":
        log(f"hrta-pde: {result.message}")
    if run_dir is not None:
        res.run_dir = write_run(res, problem, run_dir)
    return res


def _rng():
    from hrta_pde.io.checkpoint import rng_state

    return rng_state()


def write_run(res: SolveResult, problem, out) -> Path:
    """Write the run folder: problem.toml (reproduces the run), history, metrics, model, plots."""
    from hrta_pde.poisson.plotting import plot_error_history, plot_loss_histories, plot_solution
    from hrta_pde.io.runs import make_run_dir, write_json

    run_dir = make_run_dir(out, "solve")
    res.history.to_csv(run_dir / "history.csv")
    res.history.evaluations_to_csv(run_dir / "errors.csv")
    write_json(run_dir / "metrics.json", {"problem": problem.name, "config": asdict(res.config),
                                          "metrics": res.metrics})
    torch.save({"state_dict": res.net.state_dict(), "config": asdict(res.config)}, run_dir / "model.pt")
    plot_loss_histories({res.config.loss: res.history}, run_dir / "loss.png",
                        title=f"{problem.name}: {res.config.loss} loss", terms=True)
    plot_solution(res.net, problem, run_dir / "solution.png",
                  title=f"{problem.name}: {res.config.loss} loss, {res.metrics['iterations']} iterations")
    if res.history.evaluations:
        ev = res.history.evaluations
        plot_error_history({"relative L2": (np.array([e["iteration"] for e in ev]), np.array([e["rel_l2"] for e in ev])),
                            "relative H1 seminorm": (np.array([e["iteration"] for e in ev]),
                                                     np.array([e["rel_h1_semi"] for e in ev]))},
                           run_dir / "errors.png", ylabel="relative error",
                           title=f"{problem.name}: error against iteration ({res.config.loss})")
    return run_dir


def format_metrics(metrics: dict) -> str:
    keys = [("rel_l2", "relative L2"), ("rel_h1_semi", "relative H1 seminorm"), ("max_error", "max error"),
            ("l2", "L2 error"), ("ritz_energy", "Ritz energy E(u)"), ("ritz_energy_exact", "exact energy E(u*)"),
            ("final_loss", "final training loss"), ("iterations", "iterations"), ("seconds", "time [s]")]
    lines = [f"{'metric':<24} {'value':>14}"]
    for k, label in keys:
        if k in metrics:
            v = metrics[k]
            lines.append(f"{label:<24} {v:>14d}" if isinstance(v, int) else f"{label:<24} {v:>14.4e}")
    return "\n".join(lines)


COMPARE_STATE = "compare_state.json"


def compare(problem, losses: list[str], seeds: int, cfg: SolveConfig, *, out=None, progress=False,
            log=print, reference=None, resume: bool = False, reference_choice: str = "auto") -> dict:
    """Train each loss from the same initial network and points, for ``seeds`` seeds.

    Returns ``{"rows": [...per loss and seed...], "summary": {loss: {metric: (median, min, max)}}}``
    and writes ``compare.csv``, ``summary.json`` and ``errors.png`` when ``out`` is given, and one
    solve run folder per loss and seed under ``runs/`` (each can be exported).

    SIGINT or SIGTERM stops the comparison as a whole: the run being trained saves its checkpoint,
    the rows done so far are kept in ``compare_state.json``, and the result has ``"status":
    "interrupted"``. ``resume=True`` (with the same ``out``) continues where it stopped; the rows
    equal those of an uninterrupted comparison. ``reference_choice`` is recorded for the command line.
    """
    from hrta_pde.io.runs import clean_stale_tmp, make_run_dir, write_json
    from hrta_pde.signals import catch_interrupts

    if seeds <= 0:
        raise ValueError(f"seeds={seeds} must be a positive integer")
    names = [check_loss(name, problem, cfg.phi) for name in losses]
    if not names:
        raise ValueError("no losses given: use e.g. --losses ritz,sobolev,pinn")
    run_dir = make_run_dir(out, "compare") if out is not None else None
    done: dict[str, dict] = {}
    if run_dir is not None:
        from hrta_pde.poisson.problem_toml import problem_to_toml

        clean_stale_tmp(run_dir)
        if resume:
            done = {d["key"]: d for d in _read_compare_state(run_dir)["done"]}
        (run_dir / "problem.toml").write_text(problem_to_toml(problem, solver=asdict(cfg)))
    state = {"problem": problem.spec, "config": asdict(cfg), "losses": names, "seeds": seeds,
             "reference": reference_choice, "done": list(done.values())}

    def save_state():
        if run_dir is not None:
            write_json(run_dir / COMPARE_STATE, state)

    rows, curves = [], {name: [] for name in names}
    with catch_interrupts() as interrupted:
        for k in range(seeds):
            base = copy.deepcopy(cfg)
            base.seed = cfg.seed + k
            setup = None
            for name in names:
                key = f"{name}_seed{base.seed}"
                if key not in done:
                    if interrupted:  # received between two runs
                        return _compare_stopped(state, save_state, rows, run_dir, key)
                    setup = setup or Setup(problem, base)
                    entry = _compare_one(problem, base, name, setup, run_dir, resume=resume, progress=progress,
                                         log=log, reference=reference)
                    if entry is None:
                        return _compare_stopped(state, save_state, rows, run_dir, key)
                    done[key] = entry
                    state["done"].append(entry)
                    save_state()
                rows.append(done[key]["row"])
                curves[name].append(tuple(done[key]["curve"]))
    summary = {}
    for name in names:
        mine = [r for r in rows if r["loss"] == name]
        summary[name] = {m: {"median": statistics.median(r[m] for r in mine), "min": min(r[m] for r in mine),
                             "max": max(r[m] for r in mine)}
                         for m in ("rel_l2", "rel_h1_semi", "max_error", "seconds")}
    report = {"problem": problem.name, "seeds": seeds, "rows": rows, "summary": summary, "status": "completed"}
    log(format_compare(report))
    if run_dir is not None:
        from hrta_pde.poisson.plotting import plot_error_history
        from hrta_pde.history import _write_csv

        _write_csv(run_dir / "compare.csv", list(rows[0]), [list(r.values()) for r in rows])
        write_json(run_dir / "summary.json", report)
        med = {}
        for name, cs in curves.items():
            it = np.asarray(cs[0][0])
            errs = np.array([c[1] for c in cs if len(c[1]) == len(it)])
            med[f"{name} (median of {len(errs)})"] = (it, np.median(errs, axis=0))
        plot_error_history(med, run_dir / "errors.png",
                           title=f"{problem.name}: relative L2 error against iteration")
        report["run_dir"] = str(run_dir)
    return report


def _compare_one(problem, base: SolveConfig, name: str, setup: Setup, run_dir, *, resume, progress, log,
                 reference) -> dict | None:
    """Train loss ``name`` of one seed of a comparison (in its run folder under ``runs/``, resuming
    its checkpoint if asked); its row and error curve, or None if a signal stopped it."""
    from hrta_pde.io.checkpoint import load_checkpoint

    key = f"{name}_seed{base.seed}"
    c = copy.deepcopy(base)
    c.loss = name
    sub = run_dir / "runs" / key if run_dir is not None else None
    ck = load_checkpoint(sub) if resume and sub is not None and (sub / "checkpoint.pt").is_file() else None
    # solve() says 'resume with: hrta-pde solve --resume <sub-run>' when stopped; the comparison
    # prints its own resume line instead
    quiet_log = lambda message: None if "resume with:" in str(message) else log(message)  # noqa: E731
    res = solve(problem, c, setup=setup, progress=progress, log=quiet_log, reference=reference, out=sub, resume=ck)
    if res.metrics["status"] == "interrupted":
        return None
    row = {"loss": name, "seed": c.seed, **{m: res.metrics.get(m) for m in
           ("rel_l2", "rel_h1_semi", "max_error", "seconds", "iterations", "status")}}
    if run_dir is not None:
        res.history.to_csv(run_dir / f"history_{name}_seed{c.seed}.csv")
        res.history.evaluations_to_csv(run_dir / f"errors_{name}_seed{c.seed}.csv")
    log(f"seed {c.seed} {name:<8} rel L2 {row['rel_l2']:.3e}  rel H1 {row['rel_h1_semi']:.3e}  "
        f"{row['seconds']:.1f} s")
    ev = res.history.evaluations
    return {"key": key, "row": row, "curve": [[e["iteration"] for e in ev], [e["rel_l2"] for e in ev]]}


def _compare_stopped(state: dict, save_state, rows: list, run_dir, key: str) -> dict:
    """The report of a comparison stopped by a signal (its state saved for ``resume``)."""
    save_state()
    message = f"comparison interrupted at {key} ({len(state['done'])} of {len(state['losses']) * state['seeds']} runs done)"
    if run_dir is not None:
        message += f"; resume with: hrta-pde compare --resume {run_dir}"
    return {"status": "interrupted", "message": message, "rows": rows,
            "run_dir": str(run_dir) if run_dir is not None else None}


def _read_compare_state(run_dir) -> dict:
    from hrta_pde.io.checkpoint import CheckpointError
    from hrta_pde.io.runs import read_json

    path = Path(run_dir) / COMPARE_STATE
    if not Path(run_dir).is_dir() or not path.is_file():
        raise CheckpointError(f"compare --resume {str(run_dir)!r}: not a comparison folder (no {COMPARE_STATE}); "
                              "give the folder that an interrupted 'hrta-pde compare' printed")
    state = read_json(path, COMPARE_STATE)
    keys = {"problem": dict, "config": dict, "losses": list, "seeds": int, "reference": str, "done": list}
    if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in keys.items()):
        raise CheckpointError(f"{path} is damaged (it needs {', '.join(keys)}); start a new comparison")
    return state


def load_compare_state(run_dir) -> tuple:
    """``(problem, config, losses, seeds, reference choice)`` of an interrupted comparison."""
    from hrta_pde.poisson.spec import problem_from_dict

    state = _read_compare_state(run_dir)
    problem = problem_from_dict(state["problem"], source=str(run_dir))
    cfg = SolveConfig.from_dict(state["config"])
    cfg.validate()
    return problem, cfg, state["losses"], state["seeds"], state["reference"]


def format_compare(report: dict) -> str:
    lines = [f"{'loss':<9} {'rel L2 median':>14} {'[min, max]':>22} {'rel H1 median':>14} "
             f"{'max err median':>15} {'time [s]':>9}"]
    for name, s in report["summary"].items():
        r = s["rel_l2"]
        lines.append(f"{name:<9} {r['median']:>14.3e} [{r['min']:.2e}, {r['max']:.2e}] "
                     f"{s['rel_h1_semi']['median']:>14.3e} {s['max_error']['median']:>15.3e} "
                     f"{s['seconds']['median']:>9.1f}")
    return "\n".join(lines)


def load_run(run_dir, command: str = "export") -> tuple:
    """``(problem, config, net, checkpoint)`` of a run folder, the network in its trained state."""
    from hrta_pde.io.checkpoint import load_checkpoint
    from hrta_pde.poisson.spec import problem_from_dict

    from hrta_pde.io.checkpoint import load_net_state

    ck = load_checkpoint(run_dir, command=command)
    problem = problem_from_dict(ck["problem"], source=str(run_dir))
    cfg = SolveConfig.from_dict(ck["config"])
    cfg.validate()
    cfg.device = "cpu" if cfg.device == "auto" else cfg.device
    dtype = resolve_dtype(cfg.dtype)
    net = build_network(cfg, problem.dim, torch.Generator().manual_seed(cfg.seed), dtype, torch.device("cpu"))
    load_net_state(net, ck["net"], Path(run_dir) / "checkpoint.pt")
    if cfg.hard_bc:
        net.apply_output_transform(hard_dirichlet(problem))
    return problem, cfg, net, ck
