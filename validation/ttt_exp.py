"""Experiment ``time-to-target``: how many Adam steps and seconds each method needs to reach
the training loss that the Adam baseline has at its end (same seed, same initial network).

Setting: d = 1, sin(2 pi x), 100 grid points, one hidden layer (width 1000 in ``full``, 200 in
``quick``), the methods of ``approx``. Histories are recorded at every iteration and written as
``curves/seed{k}_{method}.csv.gz`` with columns

    updates  -- number of Adam updates done (0 .. N)
    loss     -- training loss R_S of the parameters after that many updates
    seconds  -- training wall-clock time when those parameters were reached

(``loss`` at ``updates = k < N`` is the history's loss at iteration ``k + 1``, which is computed
from the parameters after ``k`` updates; ``loss`` at ``N`` is the final evaluation.)
The target of seed k is Adam's loss at ``updates = N``. A method *reaches* it at the first
``updates`` with ``loss <= target``; "not reached" if it never does. Medians over seeds count a
seed that never reaches the target as +inf.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from validation import common as C
from validation.training import POINTS, TARGETS, make_config, paper_methods, run_method

PROFILES = {
    "quick": {"width": 200, "seeds": 2, "total": 1000, "first": 300, "cap": 500, "window": 50,
              "threshold": 0.01, "workers": 1},
    "full": {"width": 1000, "seeds": 5, "total": 16000, "first": 3000, "cap": 8000, "window": 500,
             "threshold": 0.01, "workers": 2},
}
DIM, DEPTH = 1, 1


def _methods(prof):
    return paper_methods(prof["total"], prof["first"], prof["cap"], prof["window"], prof["threshold"])


def task_fn(task: dict) -> dict:
    methods = {m.name: m for m in paper_methods(task["total"], task["first"], task["cap"], task["window"],
                                                task["threshold"])}
    cfg = make_config(DIM, task["width"], DEPTH, task["seed"], task["lr"])
    res = run_method(cfg, methods[task["method"]], record_every=1)
    return {"seed": task["seed"], **res}


def curve_from_result(r: dict) -> dict[str, np.ndarray]:
    """``updates, loss, seconds`` (see the module docstring) from a result with a full history."""
    h = r["history"]
    it = np.asarray(h["iteration"], dtype=int)
    n = int(r["iterations"])
    if not np.array_equal(it, np.arange(1, n + 1)):
        raise ValueError("time-to-target needs a history recorded at every iteration")
    loss = np.append(np.asarray(h["loss"], dtype=float), r["final_train_loss"])
    seconds = np.append(0.0, np.asarray(h["time"], dtype=float))
    return {"updates": np.arange(0, n + 1), "loss": loss, "seconds": seconds}


def first_reach(curve: dict[str, np.ndarray], target: float) -> tuple[float, float]:
    """``(updates, seconds)`` at the first loss <= target, or ``(inf, inf)``."""
    hit = np.flatnonzero(curve["loss"] <= target)
    if hit.size == 0:
        return math.inf, math.inf
    i = int(hit[0])
    return float(curve["updates"][i]), float(curve["seconds"][i])


def run(profile_name: str, out: Path, *, seeds: int | None = None, workers: int | None = None,
        lr: float = 1e-3, log=print) -> dict:
    prof = dict(PROFILES[profile_name])
    if seeds is not None:
        prof["seeds"] = seeds
    workers = workers or prof["workers"]
    methods = _methods(prof)
    (out / "curves").mkdir(parents=True, exist_ok=True)
    manifest = C.Manifest(out, "time-to-target", profile_name, {
        **prof, "workers": workers, "dim": DIM, "depth": DEPTH, "target": TARGETS[DIM], "points": POINTS[DIM],
        "lr": lr, "record_every": 1,
        "methods": [{"name": m.name, "label": m.label, "schedule": m.describe()} for m in methods]})
    tasks = [{"seed": k, "method": m.name, "width": prof["width"], "lr": lr,
              **{key: prof[key] for key in ("total", "first", "cap", "window", "threshold")}}
             for k in range(prof["seeds"]) for m in methods]

    def on_result(task, r):
        curve = curve_from_result(r)
        C.write_curve(out / "curves" / f"seed{r['seed']}_{r['method']}.csv.gz", ["updates", "loss", "seconds"],
                      zip(curve["updates"].tolist(), curve["loss"].tolist(), curve["seconds"].tolist()))
        r.pop("history")

    results = C.run_tasks(task_fn, tasks, workers, on_result=on_result, log=log)
    rows = []
    for k in range(prof["seeds"]):
        mine = {r["method"]: r for r in results if r["seed"] == k}
        target = mine["adam"]["final_train_loss"]
        for m in methods:
            curve = read_curve(out, k, m.name)
            steps, secs = first_reach(curve, target)
            r = mine[m.name]
            rows.append({"seed": k, "method": m.name, "target_loss": target, "reached": math.isfinite(steps),
                         "steps": steps, "seconds": secs, "final_train_loss": r["final_train_loss"],
                         "total_steps": r["iterations"], "total_seconds": r["seconds"],
                         "switches": r["switches"], "status": r["status"]})
    C.write_csv(out / "time_to_target.csv", rows, ROW_COLUMNS)
    summary = summarize(rows, methods)
    C.write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
    C.write_text(out / "time_to_target.md", markdown(summary, prof))
    fig = plot(out, rows, methods, prof)
    manifest.finish(figures=[fig.name])
    log((out / "time_to_target.md").read_text())
    return {"rows": rows, "summary": summary, "figures": [fig]}


ROW_COLUMNS = ["seed", "method", "target_loss", "reached", "steps", "seconds", "final_train_loss",
               "total_steps", "total_seconds", "switches", "status"]
SUMMARY_COLUMNS = ["method", "label", "seeds", "reached", "median_steps", "median_seconds",
                   "median_step_ratio_vs_adam", "median_final_train_loss"]


def read_curve(out: Path, seed: int, method: str) -> dict[str, np.ndarray]:
    return C.read_curve(out / "curves" / f"seed{seed}_{method}.csv.gz")


def summarize(rows: list[dict], methods) -> list[dict]:
    out = []
    adam = {r["seed"]: r for r in rows if r["method"] == "adam"}
    for m in methods:
        mine = [r for r in rows if r["method"] == m.name]
        ratios = [r["steps"] / max(adam[r["seed"]]["steps"], 1.0) for r in mine]
        out.append({"method": m.name, "label": m.label, "seeds": len(mine),
                    "reached": sum(bool(r["reached"]) for r in mine),
                    "median_steps": float(np.median([r["steps"] for r in mine])),
                    "median_seconds": float(np.median([r["seconds"] for r in mine])),
                    "median_step_ratio_vs_adam": float(np.median(ratios)),
                    "median_final_train_loss": float(np.median([r["final_train_loss"] for r in mine]))})
    return out


def _num(x: float, digits: int = 0) -> str:
    if math.isinf(x):
        return "not reached"
    return f"{x:.{digits}f}"


def markdown(summary: list[dict], prof) -> str:
    header = ["method", "reached (seeds)", "median steps", "median seconds", "median steps / Adam's",
              "median final loss"]
    rows = [[s["label"], f"{s['reached']}/{s['seeds']}", _num(s["median_steps"]), _num(s["median_seconds"], 2),
             _num(s["median_step_ratio_vs_adam"], 3), C.fmt(s["median_final_train_loss"])] for s in summary]
    return (f"#### Time to reach Adam's final training loss (d = 1, {TARGETS[DIM]}, width {prof['width']}, "
            f"1 hidden layer, {prof['total']} steps, {prof['seeds']} seeds)\n\n" + C.markdown_table(header, rows))


def plot(out: Path, rows: list[dict], methods, prof) -> Path:
    fig, axes = C.figure(1, 2)
    targets = sorted({r["target_loss"] for r in rows})
    for m in methods:
        curves = [read_curve(out, k, m.name) for k in range(prof["seeds"])]
        n = min(len(c["loss"]) for c in curves)
        losses = np.array([c["loss"][:n] for c in curves])
        C.band_plot(axes[0, 0], curves[0]["updates"][:n], losses, m.label)
        secs = np.array([c["seconds"][:n] for c in curves])
        axes[0, 1].plot(np.median(secs, axis=0), np.median(losses, axis=0), lw=1.2, label=m.label)
    for ax in axes[0]:
        ax.axhline(float(np.median(targets)), color="k", ls="--", lw=0.8, label="Adam's final loss (median)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.set_ylabel("training loss R_S")
        ax.legend(fontsize=7)
    axes[0, 0].set_xlabel("Adam updates")
    axes[0, 1].set_xlabel("seconds (median over seeds)")
    fig.suptitle(f"Time to target: d=1, width {prof['width']}, {prof['seeds']} seeds", fontsize=10)
    return C.save_figure(fig, out / "time_to_target.png")
