"""Train the paper's supervised setting (METHOD.md sections 4 and 6) with several schedules
from one initial network; shared by the ``approx`` and ``time-to-target`` experiments.

The data, the test points and the initial network are built exactly as
:func:`hrta_pde.approx.run_approx` builds them (same ``ApproxConfig``, same generator calls), so
a method here and the same schedule given to ``run_approx`` give the same run.

Methods are data: a :class:`Method` is a name, a label and either a fixed schedule string or a
plateau-triggered switch (see :class:`PlateauSwitch`).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch

from hrta_pde.approx import ApproxConfig, relative_l2, sample_points
from hrta_pde.poisson.expressions import parse_expression, to_torch
from hrta_pde.networks import HomotopyNet
from hrta_pde.schedule import PlateauRule, Schedule, Stage, parse_schedule
from hrta_pde.train import train

#: Targets of the approximation experiments. The paper's were stripped from its text: d = 1 uses
#: sin(2 pi x) (the package default); d = 3 uses a sum of sines, which is non-zero on most of the
#: 5^3 grid (a product of sin(pi x_i) would vanish on 98 of its 125 points, all on the boundary).
TARGETS = {1: "sin(2*pi*x)", 3: "sin(pi*x1) + sin(pi*x2) + sin(pi*x3)"}
#: Grid sizes of the paper: 100 points on [0, 1], 5^3 = 125 points on [0, 1]^3.
POINTS = {1: 100, 3: 125}


@dataclass(frozen=True)
class PlateauSwitch:
    """Two stages with an equal total budget: ``s_first`` until the loss plateaus (rule
    ``PlateauRule(window, threshold)`` of ``hrta_pde.schedule``, at most ``cap`` iterations),
    then ``s_second`` for the rest of ``total`` iterations. The total is always ``total``."""

    s_first: float
    s_second: float
    cap: int
    total: int
    window: int
    threshold: float = 0.01

    def describe(self) -> str:
        return (f"s={self.s_first:g} until plateau (window {self.window}, relative decrease < "
                f"{self.threshold:g}, at most {self.cap}), then s={self.s_second:g} up to {self.total} in total")


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    schedule: str | None = None          # "S:N,S:N" (fixed stages)
    plateau: PlateauSwitch | None = None

    def describe(self) -> str:
        return self.schedule if self.schedule is not None else self.plateau.describe()


def paper_methods(total: int, first: int, cap: int, window: int, threshold: float = 0.01) -> list[Method]:
    """Adam (s = 1 throughout), HRTA homotopy 0.5 -> 1, HRTA relaxation 1 -> 1.5, and the
    plateau-triggered 0.5 -> 1, all with ``total`` Adam iterations."""
    rest = total - first
    return [
        Method("adam", "Adam (s=1)", f"1:{total}"),
        Method("hrta_0.5", "HRTA 0.5->1", f"0.5:{first},1:{rest}"),
        Method("hrta_1.5", "HRTA 1->1.5", f"1:{first},1.5:{rest}"),
        Method("hrta_plateau", "HRTA 0.5->1 (plateau)",
               plateau=PlateauSwitch(0.5, 1.0, cap, total, window, threshold)),
    ]


def make_config(dim: int, width: int, depth: int, seed: int, lr: float = 1e-3,
                dtype: str = "float64") -> ApproxConfig:
    return ApproxConfig.from_dict(dict(target=TARGETS[dim], dim=dim, box=[[0.0, 1.0]], points=POINTS[dim],
                                       sampler="grid", test_points=2000, width=width, depth=depth, phi="relu",
                                       lr=lr, seed=seed, dtype=dtype, device="cpu"))


def build(cfg: ApproxConfig):
    """``(x_train, y_train, x_test, y_test, init_net)`` exactly as ``run_approx`` builds them."""
    dtype, seed, pts, net = cfg.run.torch_dtype, cfg.run.seed, cfg.sampling, cfg.network
    target = to_torch(parse_expression(cfg.target, cfg.dim, name="target"), cfg.dim)
    gen = torch.Generator().manual_seed(seed)
    x_train = sample_points(cfg, pts.points, pts.sampler, gen, dtype)
    x_test = sample_points(cfg, pts.test_points, "random", torch.Generator().manual_seed(seed + 10**6), dtype)
    init = HomotopyNet(cfg.dim, net.hidden, net.phi, s=1.0, generator=gen, dtype=dtype)
    return x_train, target(x_train)[:, None], x_test, target(x_test)[:, None], init


def run_method(cfg: ApproxConfig, method: Method, record_every: int, data=None) -> dict:
    """Train ``method`` from the initial network of ``cfg``; return metrics and the history."""
    x, y, x_test, y_test, init = data if data is not None else build(cfg)
    net = copy.deepcopy(init)

    def loss_fn():
        return {"data": 0.5 * ((net(x) - y) ** 2).mean()}

    t0 = time.perf_counter()
    if method.schedule is not None:
        result = train(net, loss_fn, parse_schedule(method.schedule, cfg.training.lr), record_every=record_every)
    else:
        p = method.plateau
        rule = PlateauRule(p.window, p.threshold)
        result = train(net, loss_fn, Schedule([Stage(p.s_first, p.cap, None, rule)], lr=cfg.training.lr),
                       record_every=record_every)
        n1 = result.position.iteration
        if result.ok and n1 < p.total:
            # continue the same run (optimizer state, history, clock) in the second stage
            pos = result.position
            pos.stage, pos.stage_iteration, pos.plateau = 1, 0, None
            schedule = Schedule([Stage(p.s_first, n1), Stage(p.s_second, p.total - n1)], lr=cfg.training.lr)
            result = train(net, loss_fn, schedule, optimizer=result.optimizer, history=result.history,
                           position=pos, record_every=record_every)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = float(loss_fn()["data"])
        test = relative_l2(net(x_test), y_test)
    h = result.history
    return {"method": method.name, "status": result.status, "message": result.message,
            "iterations": result.position.iteration, "final_train_loss": final, "test_rel_l2": test,
            "seconds": seconds, "switches": list(h.switches),
            "history": {c: h.column(c) for c in ("iteration", "stage", "s", "loss", "time")}}
