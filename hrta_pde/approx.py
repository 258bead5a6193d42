"""Supervised function approximation: the paper's own experiments (METHOD.md sections 4 and 6).

HRTA and a baseline schedule train the same initial network on the same points with the loss
``R_S = 1/(2n) sum_i (f(x_i) - f*(x_i))^2``; the relative L2 error is measured on an independent
random test set.

Example::

    cfg = ApproxConfig.from_dict({"target": "sin(2*pi*x)", "width": 200, "hrta": "0.5:300,1:700",
                                  "baseline": "1:1000"})
    result = run_approx(cfg)
    result.report["runs"]["hrta"]["test_rel_l2"]
    write_approx_run(result, "runs/demo")   # history, models, metrics.json, loss.png
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hrta_pde._backend import resolve_device
from hrta_pde.errors import SettingError
from hrta_pde.fields import check_fields
from hrta_pde.networks import HomotopyNet
from hrta_pde.options import (Config, NetworkOptions, RunOptions, SamplingOptions, TrainingOptions, check_choice,
                              check_positive)
from hrta_pde.poisson.expressions import parse_expression, to_torch
from hrta_pde.schedule import Schedule
from hrta_pde.train import TrainResult, train


@dataclass(frozen=True)
class ApproxConfig(Config):
    """Everything that defines an ``approx`` run (the defaults are the paper's 1-D setting), checked
    when made. The network is always the paper's two-layer ``HomotopyNet`` (``depth`` hidden
    layers); ``sampling.sampler`` is ``"grid"`` (uniform, endpoints included) or ``"random"``;
    ``box`` holds ``[lo, hi]`` per axis (one pair: all axes)."""

    OMIT = ("net", "init", "boundary_points")  # fixed: the paper's network, no boundary

    target: str = "sin(2*pi*x)"
    dim: int = 1
    box: list = field(default_factory=lambda: [[0.0, 1.0]])
    sampling: SamplingOptions = SamplingOptions(points=100, sampler="grid", test_points=2000)
    network: NetworkOptions = NetworkOptions(width=1000, phi="relu", net="paper")
    hrta: str = "0.5:3000,1:13000"
    baseline: str = "1:16000"
    training: TrainingOptions = TrainingOptions()
    run: RunOptions = RunOptions()

    def __post_init__(self):
        check_fields(self)  # the types: the annotations above (and the groups') are the table
        check_positive(self, ("dim",))
        if self.dim > 10:
            raise ValueError(f"dim={self.dim} is too large: 1 <= dim <= 10")
        check_choice("sampler", self.sampling.sampler, ("grid", "random"))
        if self.sampling.points is None:
            raise ValueError("points=None: give the number of training points, e.g. points=100")
        if self.network.net != "paper":
            raise ValueError(f"net={self.network.net!r}: approx trains the paper's network (net='paper')")
        self.bounds()
        if self.sampling.sampler == "grid":
            grid_side(self.sampling.points, self.dim)
        parse_expression(self.target, self.dim, name="target")
        object.__setattr__(self, "_schedules", (self.training.schedule(self.hrta),
                                                self.training.schedule(self.baseline)))

    def bounds(self) -> np.ndarray:
        box = np.asarray(self.box, dtype=float)
        if box.ndim != 2 or box.shape[1] != 2 or box.shape[0] not in (1, self.dim):
            raise ValueError(f"box={self.box!r} must be [lo, hi] pairs, one for all axes or one per axis")
        if box.shape[0] == 1:
            box = np.repeat(box, self.dim, axis=0)
        if not np.all(np.isfinite(box)) or np.any(box[:, 1] <= box[:, 0]):
            raise ValueError(f"box={self.box!r} is degenerate: each axis needs lo < hi")
        return box

    def schedules(self) -> tuple[Schedule, Schedule]:
        """The HRTA and the baseline :class:`Schedule` (parsed once, when the config was made)."""
        return self._schedules


def grid_side(n: int, dim: int) -> int:
    """``k`` with ``k**dim == n`` (a tensor grid), or a ``ValueError`` proposing valid sizes."""
    k = max(1, round(n ** (1.0 / dim)))
    for cand in (k - 1, k, k + 1):
        if cand >= 1 and cand**dim == n:
            return cand
    raise SettingError(f"points={n} is not a {dim}-dimensional grid size k^{dim}: use e.g. "
                       f"{k**dim} or {(k + 1)**dim}, or " "{sampler:=}random")


def sample_points(cfg: ApproxConfig, n: int, sampler: str, generator: torch.Generator,
                  dtype: torch.dtype) -> torch.Tensor:
    box = torch.as_tensor(cfg.bounds(), dtype=dtype)
    lo, hi = box[:, 0], box[:, 1]
    if sampler == "grid":
        k = grid_side(n, cfg.dim)
        axes = [torch.linspace(0.0, 1.0, k, dtype=dtype)] * cfg.dim
        unit = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, cfg.dim)
    else:
        unit = torch.rand(n, cfg.dim, generator=generator, dtype=dtype)
    return lo + (hi - lo) * unit


def relative_l2(pred: torch.Tensor, exact: torch.Tensor) -> float:
    """``||pred - exact|| / ||exact||`` (absolute error if ``exact`` is zero)."""
    num = torch.linalg.vector_norm(pred - exact)
    den = torch.linalg.vector_norm(exact)
    return float(num / den) if float(den) > 0 else float(num)


def _checkpoint_path(run_dir: Path, label: str) -> Path:
    return run_dir / f"checkpoint_{label}.pt"


#: What an approx checkpoint holds (one per method).
APPROX_KEYS = {"net": dict, "optimizer": dict, "position": dict, "history": dict, "rng": dict,
               "status": str, "message": str, "done": bool}


def load_approx_config(run_dir) -> ApproxConfig:
    """The settings of an interrupted approx run (its ``config.json``)."""
    from hrta_pde.io.checkpoint import CheckpointError
    from hrta_pde.io.runs import read_json

    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir() or not path.is_file():
        raise CheckpointError(f"approx --resume {str(run_dir)!r}: not an approx run folder (no config.json); "
                              "give the folder that an interrupted 'hrta-pde approx' printed")
    data = read_json(path, "config.json")
    if not isinstance(data, dict) or set(data) - set(ApproxConfig.keys()):
        raise CheckpointError(f"{path} is damaged or not an approx configuration; start a new run")
    return ApproxConfig.from_dict(data)


def write_approx_config(run_dir, cfg: ApproxConfig) -> Path:
    """``RUN_DIR/config.json``: what ``approx --resume`` rebuilds the run from (written first)."""
    from hrta_pde.io.runs import write_json

    return write_json(Path(run_dir) / "config.json", cfg.to_dict())


@dataclass
class ApproxResult:
    """An approx run: ``report`` (what ``metrics.json`` holds: the config, and per method its
    schedule, status, iterations, losses and errors; ``"status"`` is ``"interrupted"`` when a signal
    stopped it), and the trained network and training result of each method that finished."""

    config: ApproxConfig
    report: dict
    nets: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.report["status"]


def run_approx(cfg: ApproxConfig, checkpoint_dir: str | Path | None = None, *, progress: bool = False,
               resume: bool = False) -> ApproxResult:
    """Train HRTA and the baseline from the same start; return their :class:`ApproxResult`.

    With ``checkpoint_dir``, each method saves a checkpoint there every ``checkpoint_every``
    iterations and when it ends; SIGINT or SIGTERM stops the run with ``"status": "interrupted"``,
    and ``resume=True`` (same folder) continues it, to the same result as an uninterrupted run.
    The run folder's other files are :func:`write_approx_run`'s.
    """
    from hrta_pde.limits import check_approx_size
    from hrta_pde.signals import catch_interrupts

    device, dtype = resolve_device(cfg.run.device), cfg.run.torch_dtype
    check_approx_size(cfg, device)
    run_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    target = to_torch(parse_expression(cfg.target, cfg.dim, name="target"), cfg.dim)
    gen = torch.Generator().manual_seed(cfg.run.seed)
    x_train = sample_points(cfg, cfg.sampling.points, cfg.sampling.sampler, gen, dtype).to(device)
    x_test = sample_points(cfg, cfg.sampling.test_points, "random",
                           torch.Generator().manual_seed(cfg.run.seed + 10**6), dtype).to(device)
    y_train, y_test = target(x_train)[:, None], target(x_test)[:, None]
    net_cfg = cfg.network
    init = HomotopyNet(cfg.dim, net_cfg.hidden, net_cfg.phi, s=1.0, generator=gen, dtype=dtype).to(device)
    out = ApproxResult(cfg, {"config": cfg.to_dict(), "device": str(device), "runs": {}})
    with catch_interrupts() as interrupted:
        for label, schedule in zip(("hrta", "baseline"), cfg.schedules()):
            net = copy.deepcopy(init)

            def loss_fn(net=net):
                return {"data": 0.5 * ((net(x_train) - y_train) ** 2).mean()}

            ck = None
            if resume and run_dir is not None and _checkpoint_path(run_dir, label).is_file():
                ck = _load_approx_checkpoint(run_dir, label)
            if ck is None and interrupted:
                return _approx_stopped(out, label)
            result = _train_or_restore(net, loss_fn, schedule, cfg, ck, run_dir, label, interrupted, progress)
            if result.status == "stopped":
                return _approx_stopped(out, label)
            out.nets[label], out.results[label] = net, result
            with torch.no_grad():
                train_loss = float(loss_fn()["data"])
                test_err = relative_l2(net(x_test), y_test)
            out.report["runs"][label] = {
                "schedule": schedule.to_dict(), "status": result.status, "message": result.message,
                "iterations": result.position.iteration, "final_train_loss": train_loss,
                "test_rel_l2": test_err, "seconds": result.position.elapsed,  # training time, over resumes
                "stage_switches": result.history.switches,
            }
    out.report["status"] = "completed"
    return out


def write_approx_run(result: ApproxResult, run_dir) -> Path:
    """The run folder of an approx run: per finished method ``history_<method>.csv`` and
    ``model_<method>.pt``; when both finished, ``metrics.json`` and ``loss.png``."""
    from hrta_pde.io.runs import write_json

    run_dir, cfg = Path(run_dir), result.config
    for label, res in result.results.items():
        res.history.to_csv(run_dir / f"history_{label}.csv")
        torch.save({"state_dict": result.nets[label].state_dict(), "config": cfg.to_dict()},
                   run_dir / f"model_{label}.pt")
    if result.status == "completed":
        from hrta_pde.poisson.plotting import plot_loss_histories

        write_json(run_dir / "metrics.json", result.report)
        plot_loss_histories({k: r.history for k, r in result.results.items()}, run_dir / "loss.png",
                            title=f"Approximating {cfg.target} (width {cfg.network.width}, depth {cfg.network.depth})")
    return run_dir


def _load_approx_checkpoint(run_dir: Path, label: str) -> dict:
    from hrta_pde.io.checkpoint import FORMAT, CheckpointError, check_entries, check_parts, read_plain

    path = _checkpoint_path(run_dir, label)
    data = read_plain(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hrta_pde checkpoint of this version; start a new run")
    check_entries(data, APPROX_KEYS, path)
    check_parts(data, path)
    return data


def _train_or_restore(net, loss_fn, schedule, cfg, ck, run_dir, label, interrupted, progress) -> TrainResult:
    """Train ``net`` (from checkpoint ``ck`` if given), checkpointing into ``run_dir``.

    A checkpoint of a finished method restores its result without training.
    """
    from hrta_pde.history import History
    from hrta_pde.io.checkpoint import load_net_state, rng_state, save_checkpoint, set_rng_state
    from hrta_pde.stages import Position, make_adam
    from hrta_pde.train import Hooks

    optimizer = make_adam(net.parameters(), schedule.stage_lr(0))
    history, position = History(), Position()
    if ck is not None:
        path = _checkpoint_path(run_dir, label)
        load_net_state(net, ck["net"], path)
        optimizer.load_state_dict(ck["optimizer"])
        history = History.from_state_dict(ck["history"])
        position = Position(**ck["position"])
        set_rng_state(ck["rng"])
        if ck["done"]:
            return TrainResult(history, optimizer, position, status=ck["status"], message=ck["message"])

    def checkpoint(pos, status="running", message="", done=False):
        if run_dir is not None:
            save_checkpoint(_checkpoint_path(run_dir, label), {
                "net": net.state_dict(), "optimizer": optimizer.state_dict(), "position": pos.state_dict(),
                "history": history.state_dict(), "rng": rng_state(), "status": status, "message": message,
                "done": done})

    def after_step(pos) -> bool:
        stop = bool(interrupted)
        if stop or pos.iteration % cfg.training.checkpoint_every == 0:
            checkpoint(pos)
        return stop

    result = train(net, loss_fn, schedule, optimizer=optimizer, history=history, position=position,
                   record_every=cfg.training.record_every, progress=progress, description=label,
                   hooks=Hooks(after_step=after_step, every=1))
    if result.status != "stopped":
        checkpoint(result.position, result.status, result.message, done=True)
    return result


def _approx_stopped(out: ApproxResult, label: str) -> ApproxResult:
    """The result of a run stopped by a signal (checkpoints saved for ``resume``)."""
    out.report.update(status="interrupted", message=f"approx interrupted while training {label}")
    return out


def format_table(report: dict) -> str:
    """The methods of an approx report as a table: iterations, losses, errors, time."""
    rows = [f"{'method':<10} {'iterations':>10} {'train loss':>12} {'test rel L2':>12} {'time [s]':>9}"]
    for label, r in report["runs"].items():
        rows.append(f"{label:<10} {r['iterations']:>10d} {r['final_train_loss']:>12.3e} "
                    f"{r['test_rel_l2']:>12.3e} {r['seconds']:>9.1f}")
    return "\n".join(rows)
