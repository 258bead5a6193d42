"""Supervised function approximation: the paper's own experiments (METHOD.md sections 4 and 6).

HRTA and a baseline schedule train the same initial network on the same points with the loss
``R_S = 1/(2n) sum_i (f(x_i) - f*(x_i))^2``; the relative L2 error is measured on an independent
random test set.

Example::

    cfg = ApproxConfig(target="sin(2*pi*x)", width=200, hrta="0.5:300,1:700", baseline="1:1000")
    report = run_approx(cfg, out="runs/demo")
    report["runs"]["hrta"]["test_rel_l2"]
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from hrta_pde._backend import resolve_device, resolve_dtype
from hrta_pde.poisson.expressions import parse_expression, to_torch
from hrta_pde.networks import HomotopyNet
from hrta_pde.schedule import PlateauRule, Schedule, parse_schedule
from hrta_pde.train import TrainResult, train


@dataclass
class ApproxConfig:
    """Everything that defines an ``approx`` run (the defaults are the paper's 1-D setting)."""

    target: str = "sin(2*pi*x)"
    dim: int = 1
    box: list = field(default_factory=lambda: [[0.0, 1.0]])  # [lo, hi] per axis (one pair: all axes)
    points: int = 100
    sampler: str = "grid"  # "grid" (uniform, endpoints included) or "random"
    test_points: int = 2000
    width: int = 1000
    depth: int = 1  # hidden layers
    phi: str = "relu"
    hrta: str = "0.5:3000,1:13000"
    baseline: str = "1:16000"
    lr: float = 1e-3
    reset_optimizer: bool = False
    plateau_window: int = 500
    plateau_threshold: float = 0.01
    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"
    record_every: int = 10
    checkpoint_every: int = 1000  # iterations between checkpoints (and one on SIGINT/SIGTERM)

    def validate(self) -> None:
        """Check every field once; raise ``ValueError`` naming the bad value and the fix."""
        from hrta_pde.fields import check_fields
        from hrta_pde.limits import MAX_DEPTH

        check_fields(self)  # the types: the annotations above are the table
        for name in ("dim", "points", "test_points", "width", "depth", "record_every", "checkpoint_every"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer")
        if self.depth > MAX_DEPTH:
            raise ValueError(f"depth={self.depth} is above the limit of {MAX_DEPTH} hidden layers: lower --depth")
        if not 0 <= self.seed <= 2**62:
            raise ValueError(f"seed={self.seed} must be an integer from 0 to 2^62")
        if self.dim > 10:
            raise ValueError(f"dim={self.dim} is too large: 1 <= dim <= 10")
        if self.sampler not in ("grid", "random"):
            raise ValueError(f"sampler={self.sampler!r} is unknown: use 'grid' or 'random'")
        self.bounds()
        if self.sampler == "grid":
            grid_side(self.points, self.dim)
        resolve_dtype(self.dtype)
        parse_expression(self.target, self.dim, name="target")
        self.schedules()

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
        rule = PlateauRule(self.plateau_window, self.plateau_threshold)
        return (parse_schedule(self.hrta, self.lr, rule, self.reset_optimizer),
                parse_schedule(self.baseline, self.lr, rule, self.reset_optimizer))


def grid_side(n: int, dim: int) -> int:
    """``k`` with ``k**dim == n`` (a tensor grid), or a ``ValueError`` proposing valid sizes."""
    k = max(1, round(n ** (1.0 / dim)))
    for cand in (k - 1, k, k + 1):
        if cand >= 1 and cand**dim == n:
            return cand
    raise ValueError(f"points={n} is not a {dim}-dimensional grid size k^{dim}: use e.g. "
                     f"{k**dim} or {(k + 1)**dim}, or --sampler random")


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
    names = {f.name for f in fields(ApproxConfig)}
    if not isinstance(data, dict) or set(data) - names:
        raise CheckpointError(f"{path} is damaged or not an approx configuration; start a new run")
    cfg = ApproxConfig(**data)
    cfg.validate()
    return cfg


def run_approx(cfg: ApproxConfig, out: str | Path | None = None, *, progress: bool = False,
               log=print, resume: bool = False) -> dict:
    """Train HRTA and the baseline from the same start; write a run folder if ``out`` is given.

    Returns the metrics dict (also written as ``metrics.json``). With ``out``, each method saves a
    checkpoint every ``cfg.checkpoint_every`` iterations and when it ends; SIGINT or SIGTERM stops
    the run with ``"status": "interrupted"``, and ``resume=True`` (same ``out``) continues it, to
    the same result as an uninterrupted run.
    """
    from hrta_pde.io.checkpoint import set_rng_state
    from hrta_pde.limits import check_approx_size
    from hrta_pde.io.runs import clean_stale_tmp, make_run_dir, summary, write_json
    from hrta_pde.signals import catch_interrupts

    cfg.validate()
    device, dtype = resolve_device(cfg.device), resolve_dtype(cfg.dtype)
    check_approx_size(cfg, device)
    run_dir = make_run_dir(out, "approx") if out is not None else None
    if run_dir is not None:
        clean_stale_tmp(run_dir)
        write_json(run_dir / "config.json", asdict(cfg))  # first: what --resume rebuilds the run from
    target = to_torch(parse_expression(cfg.target, cfg.dim, name="target"), cfg.dim)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_train = sample_points(cfg, cfg.points, cfg.sampler, gen, dtype).to(device)
    x_test = sample_points(cfg, cfg.test_points, "random", torch.Generator().manual_seed(cfg.seed + 10**6),
                           dtype).to(device)
    y_train, y_test = target(x_train)[:, None], target(x_test)[:, None]
    init = HomotopyNet(cfg.dim, [cfg.width] * cfg.depth, cfg.phi, s=1.0, generator=gen, dtype=dtype).to(device)
    schedules = dict(zip(("hrta", "baseline"), cfg.schedules()))
    report = {"config": asdict(cfg), "device": str(device), "runs": {}}
    results: dict[str, TrainResult] = {}
    with catch_interrupts() as interrupted:
        for label, schedule in schedules.items():
            net = copy.deepcopy(init)

            def loss_fn(net=net):
                return {"data": 0.5 * ((net(x_train) - y_train) ** 2).mean()}

            ck = None
            if resume and run_dir is not None and _checkpoint_path(run_dir, label).is_file():
                ck = _load_approx_checkpoint(run_dir, label)
            if ck is None and interrupted:
                return _approx_stopped(report, run_dir, label)
            result = _train_or_restore(net, loss_fn, schedule, cfg, ck, run_dir, label, interrupted,
                                       progress, set_rng_state)
            if result.status == "stopped":
                return _approx_stopped(report, run_dir, label)
            results[label] = result
            with torch.no_grad():
                train_loss = float(loss_fn()["data"])
                test_err = relative_l2(net(x_test), y_test)
            report["runs"][label] = {
                "schedule": schedule.to_dict(), "status": result.status, "message": result.message,
                "iterations": result.position.iteration, "final_train_loss": train_loss,
                "test_rel_l2": test_err, "seconds": result.position.elapsed,  # training time, over resumes
                "stage_switches": result.history.switches,
            }
            if run_dir is not None:
                result.history.to_csv(run_dir / f"history_{label}.csv")
                torch.save({"state_dict": net.state_dict(), "config": asdict(cfg)}, run_dir / f"model_{label}.pt")
            if result.status != "completed":
                log(f"{label}: {result.message}")
    report["status"] = "completed"
    if run_dir is not None:
        from hrta_pde.poisson.plotting import plot_loss_histories

        write_json(run_dir / "metrics.json", report)
        plot_loss_histories({k: r.history for k, r in results.items()}, run_dir / "loss.png",
                            title=f"Approximating {cfg.target} (width {cfg.width}, depth {cfg.depth})")
        report["run_dir"] = str(run_dir)
    log(format_table(report))
    if run_dir is not None:
        log(summary(run_dir))
    return report


def _load_approx_checkpoint(run_dir: Path, label: str) -> dict:
    from hrta_pde.io.checkpoint import FORMAT, CheckpointError, check_entries, check_parts, read_plain

    path = _checkpoint_path(run_dir, label)
    data = read_plain(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a hrta_pde checkpoint of this version; start a new run")
    check_entries(data, APPROX_KEYS, path)
    check_parts(data, path)
    return data


def _train_or_restore(net, loss_fn, schedule, cfg, ck, run_dir, label, interrupted, progress,
                      set_rng_state) -> TrainResult:
    """Train ``net`` (from checkpoint ``ck`` if given), checkpointing into ``run_dir``.

    A checkpoint of a finished method restores its result without training.
    """
    from hrta_pde.io.checkpoint import load_net_state, rng_state, save_checkpoint
    from hrta_pde.history import History
    from hrta_pde.train import Hooks, Position, make_adam

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
        if stop or pos.iteration % cfg.checkpoint_every == 0:
            checkpoint(pos)
        return stop

    result = train(net, loss_fn, schedule, optimizer=optimizer, history=history, position=position,
                   record_every=cfg.record_every, progress=progress, description=label,
                   hooks=Hooks(after_step=after_step, every=1))
    if result.status != "stopped":
        checkpoint(result.position, result.status, result.message, done=True)
    return result


def _approx_stopped(report: dict, run_dir, label: str) -> dict:
    """The report of a run stopped by a signal (checkpoints saved for ``resume``)."""
    message = f"approx interrupted while training {label}"
    if run_dir is not None:
        message += f"; resume with: hrta-pde approx --resume {run_dir}"
    report.update(status="interrupted", message=message, run_dir=str(run_dir) if run_dir is not None else None)
    return report


def format_table(report: dict) -> str:
    rows = [f"{'method':<10} {'iterations':>10} {'train loss':>12} {'test rel L2':>12} {'time [s]':>9}"]
    for label, r in report["runs"].items():
        rows.append(f"{label:<10} {r['iterations']:>10d} {r['final_train_loss']:>12.3e} "
                    f"{r['test_rel_l2']:>12.3e} {r['seconds']:>9.1f}")
    return "\n".join(rows)
