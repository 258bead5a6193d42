"""Experiment ``gd``: HRTA under full-batch gradient descent, the setting of Theorem 3.1.

The theorem is about gradient flow: the smallest eigenvalue of ``H_s`` sets the slowest rate, and
it grows like s^2 (``theorem``). The paper's experiments, and ``approx``, use Adam, which divides
each step by a running estimate of the gradient's size. This experiment removes Adam: plain
gradient descent (``torch.optim.SGD`` without momentum, on all training points) on the
function-approximation problem of ``approx`` (same targets, grids, network and initial network
per seed), d = 1 and d = 3, one hidden layer.

Learning rates. GD on ``R = 1/(2n) |f - f*|^2`` is stable (in the kernel regime) when
``eta < 2 n / lambda_max`` of the Gram matrix ``J J^T``. Two protocols:

* the paper's, one rate for every method: ``eta = n / max_s lambda_max(H_s)`` from the closed form
  on the training grid (``hrta_pde.ntk``), over every s the methods use -- half the limit of the
  stiffest stage. Methods ``gd`` (s = 1), ``hrta_0.5`` (s = 0.5 then 1), ``hrta_1.5`` (1 then 1.5).
* each stage at ``BEST_FRACTION`` of its own limit, ``eta = BEST_FRACTION * 2 n / lambda_max(J J^T)``
  with the empirical Gram matrix of the initial network at that stage's s: ``gd_best`` (s = 1) and
  ``hrta_1.5_best`` (1 then 1.5). A larger s also scales the slow directions of the kernel, which
  acts like a larger learning rate; this protocol asks whether HRTA still helps when the baseline
  already runs as fast as it stably can.

All methods take the same number of steps. Output: ``runs.csv``, ``kernel.csv`` (lambda_min,
lambda_max and their ratio of the closed form per s), ``summary.csv``, ``gd.md``, curves (loss every
10 steps) and one figure per dimension.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np

from validation import common as C
from validation.training import POINTS, TARGETS

PROFILES = {
    "quick": {"dims": [1], "width": 200, "seeds": 2, "first": 300, "total": 1000, "workers": 1},
    "full": {"dims": [1, 3], "width": 1000, "seeds": 5, "first": 3000, "total": 16000, "workers": 2},
}
RECORD_EVERY = 10
LABELS = {"gd": "GD (s=1)", "hrta_0.5": "HRTA 0.5->1", "hrta_1.5": "HRTA 1->1.5",
          "gd_best": "GD (s=1), best lr", "hrta_1.5_best": "HRTA 1->1.5, best lr"}
#: the learning-rate protocol of each method: "common" (one rate) or "best" (per stage, see above)
PROTOCOL = {"gd": "common", "hrta_0.5": "common", "hrta_1.5": "common", "gd_best": "best", "hrta_1.5_best": "best"}
#: the baseline each method is compared with (same protocol)
BASELINE = {"hrta_0.5": "gd", "hrta_1.5": "gd", "hrta_1.5_best": "gd_best"}
BEST_FRACTION = 0.75
S_USED = (0.5, 1.0, 1.5)


def schedules(first: int, total: int) -> dict[str, str]:
    rest = total - first
    return {"gd": f"1:{total}", "hrta_0.5": f"0.5:{first},1:{rest}", "hrta_1.5": f"1:{first},1.5:{rest}",
            "gd_best": f"1:{total}", "hrta_1.5_best": f"1:{first},1.5:{rest}"}


def kernel_table(dim: int) -> list[dict]:
    """``lambda_min``, ``lambda_max`` and ``lambda_min / lambda_max`` of the closed-form H_s on the
    training grid of ``dim``, for s = 0.5, 1, 1.5."""
    from hrta_pde.ntk import gram_closed_form, paper_grid

    X = paper_grid(dim)
    rows = []
    for s in S_USED:
        lam = np.linalg.eigvalsh(gram_closed_form(X, s)["H"])
        rows.append({"d": dim, "s": s, "points": len(X), "lambda_min": float(lam[0]), "lambda_max": float(lam[-1]),
                     "ratio_min_max": float(lam[0] / lam[-1])})
    return rows


def learning_rates(dim: int, kernel: list[dict] | None = None) -> dict[str, float]:
    """``{"common": n / max_s lambda_max(H_s)}`` from the closed form (see the module docstring);
    ``kernel``: the rows of :func:`kernel_table` for ``dim``, if already computed."""
    rows = kernel if kernel is not None else kernel_table(dim)
    return {"common": rows[0]["points"] / max(r["lambda_max"] for r in rows)}


def best_schedule(schedule: str, net, x) -> str:
    """``schedule`` with each stage's learning rate set to ``BEST_FRACTION * 2 n / lambda_max`` of the
    empirical Gram matrix ``J J^T`` of ``net`` at that stage's s (``net`` is left at its s)."""
    from hrta_pde.networks import homotopy_activations, set_s
    from hrta_pde.ntk import empirical_gram_module
    from hrta_pde.schedule import parse_schedule

    s0 = float(homotopy_activations(net)[0].s)
    stages = []
    for st in parse_schedule(schedule).stages:
        set_s(net, st.s)
        lam = float(np.linalg.eigvalsh(empirical_gram_module(net, x).detach().cpu().numpy())[-1])
        stages.append(f"{st.s:g}:{st.iterations}:{BEST_FRACTION * 2 * x.shape[0] / lam:.6g}")
    set_s(net, s0)
    return ",".join(stages)


def task_fn(task: dict) -> dict:
    import torch

    from hrta_pde.schedule import parse_schedule
    from hrta_pde.train import train
    from validation.training import build, make_config

    cfg = make_config(task["dim"], task["width"], 1, task["seed"], lr=task["lr"])
    x, y, x_test, y_test, init = build(cfg)
    net = copy.deepcopy(init)

    def loss_fn():
        return {"data": 0.5 * ((net(x) - y) ** 2).mean()}

    schedule = task["schedule"]
    if task["protocol"] == "best":
        schedule = best_schedule(schedule, net, x)
    sched = parse_schedule(schedule, task["lr"])
    optimizer = torch.optim.SGD(net.parameters(), lr=sched.stage_lr(0))  # plain full-batch gradient descent
    t0 = time.perf_counter()
    result = train(net, loss_fn, sched, optimizer=optimizer, record_every=RECORD_EVERY)
    seconds = time.perf_counter() - t0
    from hrta_pde.approx import relative_l2

    with torch.no_grad():
        final = float(loss_fn()["data"])
        test = relative_l2(net(x_test), y_test)
    h = result.history
    return {**{k: task[k] for k in ("dim", "seed", "method")}, "schedule": schedule,
            "lr": [sched.stage_lr(i) for i in range(len(sched.stages))], "status": result.status,
            "iterations": result.position.iteration, "final_train_loss": final, "test_rel_l2": test,
            "seconds": seconds, "switches": list(h.switches),
            "history": {"iteration": h.column("iteration"), "loss": h.column("loss")}}


def first_reach(updates: np.ndarray, loss: np.ndarray, target: float) -> float:
    """Updates (on the recorded grid, every ``RECORD_EVERY``) at the first loss <= target; inf if never."""
    hit = np.flatnonzero(loss <= target)
    return float(updates[hit[0]]) if hit.size else math.inf


def run(profile_name: str, out: Path, *, seeds: int | None = None, workers: int | None = None, log=print) -> dict:
    prof = dict(PROFILES[profile_name])
    if seeds is not None:
        prof["seeds"] = seeds
    workers = workers or prof["workers"]
    scheds = schedules(prof["first"], prof["total"])
    kernels = {d: kernel_table(d) for d in prof["dims"]}
    rates = {d: learning_rates(d, kernels[d]) for d in prof["dims"]}
    kernel = [r for d in prof["dims"] for r in kernels[d]]
    (out / "curves").mkdir(parents=True, exist_ok=True)
    manifest = C.Manifest(out, "gd", profile_name, {
        **prof, "workers": workers, "schedules": scheds, "labels": LABELS, "targets": {d: TARGETS[d] for d in prof["dims"]},
        "points": {d: POINTS[d] for d in prof["dims"]}, "learning_rates": rates, "record_every": RECORD_EVERY,
        "optimizer": "torch.optim.SGD(lr), no momentum, full batch", "network": "HomotopyNet, 1 hidden layer, phi = relu",
        "protocol": PROTOCOL, "baseline": BASELINE, "best_fraction": BEST_FRACTION,
        "dtype": "float64"})
    tasks = [{"dim": d, "seed": k, "method": m, "schedule": sched, "width": prof["width"],
              "lr": rates[d]["common"], "protocol": PROTOCOL[m]}
             for d in prof["dims"] for k in range(prof["seeds"]) for m, sched in scheds.items()]
    tasks.sort(key=lambda t: -t["dim"])  # d = 3 (125 points) first

    def on_result(task, r):
        # the loss recorded at iteration i is that of the parameters after i - 1 updates; the final
        # evaluation is after all of them
        h = r.pop("history")
        updates = [i - 1 for i in h["iteration"]] + [r["iterations"]]
        C.write_curve(out / "curves" / f"d{r['dim']}_seed{r['seed']}_{r['method']}.csv.gz", ["updates", "loss"],
                      zip(updates, list(h["loss"]) + [r["final_train_loss"]]))

    rows = C.run_tasks(task_fn, tasks, workers, on_result=on_result, log=log)
    for r in rows:  # steps to reach the final loss of the same protocol's baseline, same seed
        base_m = BASELINE.get(r["method"], r["method"])
        base = next(b for b in rows if (b["dim"], b["seed"], b["method"]) == (r["dim"], r["seed"], base_m))
        c = read_curve(out, r["dim"], r["seed"], r["method"])
        r["target_loss"] = base["final_train_loss"]
        r["steps_to_target"] = first_reach(c["updates"], c["loss"], base["final_train_loss"])
    rows.sort(key=lambda r: (r["dim"], r["method"], r["seed"]))
    C.write_csv(out / "runs.csv", rows, RUN_COLUMNS)
    C.write_csv(out / "kernel.csv", kernel, ["d", "s", "points", "lambda_min", "lambda_max", "ratio_min_max"])
    summary = summarize(rows, prof)
    C.write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
    C.write_text(out / "gd.md", markdown(summary, kernel, prof, rates))
    figures = [plot(out, rows, prof, d) for d in prof["dims"]]
    manifest.finish(figures=[p.name for p in figures], failed_runs=sum(r["status"] != "completed" for r in rows))
    log((out / "gd.md").read_text())
    return {"rows": rows, "summary": summary, "kernel": kernel, "figures": figures}


RUN_COLUMNS = ["dim", "method", "seed", "schedule", "lr", "status", "iterations", "final_train_loss", "test_rel_l2",
               "seconds", "switches", "target_loss", "steps_to_target"]
SUMMARY_COLUMNS = ["dim", "method", "label", "protocol", "lr", "seeds", "median_final_train_loss",
                   "min_final_train_loss", "max_final_train_loss", "baseline", "lower_than_baseline",
                   "median_test_rel_l2", "reached", "median_steps_to_target"]


def read_curve(out: Path, dim: int, seed: int, method: str) -> dict[str, np.ndarray]:
    return C.read_curve(out / "curves" / f"d{dim}_seed{seed}_{method}.csv.gz")


def summarize(rows: list[dict], prof: dict) -> list[dict]:
    out = []
    for d in prof["dims"]:
        for m in LABELS:
            mine = [r for r in rows if r["dim"] == d and r["method"] == m]
            base_m = BASELINE.get(m, m)
            base = {r["seed"]: r["final_train_loss"] for r in rows if r["dim"] == d and r["method"] == base_m}
            med, lo, hi, _ = C.med_min_max(r["final_train_loss"] for r in mine)
            stage_lrs = [float(np.median([r["lr"][i] for r in mine])) for i in range(len(mine[0]["lr"]))]
            out.append({"dim": d, "method": m, "label": LABELS[m], "protocol": PROTOCOL[m],
                        "lr": " / ".join(f"{v:.4g}" for v in stage_lrs),
                        "seeds": len(mine),
                        "median_final_train_loss": med, "min_final_train_loss": lo, "max_final_train_loss": hi,
                        "baseline": base_m if m in BASELINE else "",
                        "lower_than_baseline": sum(r["final_train_loss"] < base[r["seed"]] for r in mine)
                        if m in BASELINE else "",
                        "median_test_rel_l2": float(np.median([r["test_rel_l2"] for r in mine])),
                        "reached": sum(math.isfinite(r["steps_to_target"]) for r in mine),
                        "median_steps_to_target": float(np.median([r["steps_to_target"] for r in mine]))})
    return out


def _steps(x: float) -> str:
    return "not reached" if math.isinf(x) else f"{x:.0f}"


def markdown(summary: list[dict], kernel: list[dict], prof: dict, rates: dict) -> str:
    parts = ["#### Closed-form Gram matrix H_s on the training grid\n\n" + C.markdown_table(
        ["d", "s", "lambda_min", "lambda_max", "lambda_min / lambda_max"],
        [[r["d"], f"{r['s']:g}", f"{r['lambda_min']:.4e}", f"{r['lambda_max']:.4e}", f"{r['ratio_min_max']:.3e}"]
         for r in kernel])]
    for d in prof["dims"]:
        mine = [s for s in summary if s["dim"] == d]
        parts.append(
            f"#### d = {d}, {TARGETS[d]}, {POINTS[d]} grid points, width {prof['width']}, gradient descent, "
            f"{prof['total']} steps, {prof['seeds']} seeds (common lr {rates[d]['common']:.4g}; best lr: "
            f"{BEST_FRACTION:g} of each stage's stability limit, per seed)\n\n" + C.markdown_table(
                ["method", "lr per stage (median over seeds)", "final training loss: median [min, max]",
                 "baseline", "lower than the baseline, same seed", "median test relative L2",
                 "reached the baseline's final loss", "median steps to it"],
                [[s["label"], s["lr"],
                  f"{C.fmt(s['median_final_train_loss'])} [{C.fmt(s['min_final_train_loss'])}, "
                  f"{C.fmt(s['max_final_train_loss'])}]",
                  LABELS.get(s["baseline"], "-"),
                  f"{s['lower_than_baseline']}/{s['seeds']}" if s["baseline"] else "-",
                  C.fmt(s["median_test_rel_l2"]),
                  f"{s['reached']}/{s['seeds']}", _steps(s["median_steps_to_target"])] for s in mine]))
    return "\n\n".join(parts)


def plot(out: Path, rows: list[dict], prof: dict, dim: int) -> Path:
    fig, axes = C.figure(1, 1)
    ax = axes[0, 0]
    for m, label in LABELS.items():
        curves = [read_curve(out, dim, k, m) for k in range(prof["seeds"])]
        n = min(len(c["loss"]) for c in curves)
        C.band_plot(ax, curves[0]["updates"][:n], np.array([c["loss"][:n] for c in curves]), label)
    ax.set_xlabel("gradient-descent steps")
    ax.set_ylabel("training loss R_S")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"Gradient descent, d={dim}, width {prof['width']}, {prof['seeds']} seeds (median, min-max)",
                 fontsize=9)
    return C.save_figure(fig, out / f"gd_d{dim}.png")
