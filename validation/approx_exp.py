"""Experiment ``approx``: the paper's function-approximation study and its Table 1.

Every (dimension, width, depth, seed) trains the four methods of
:func:`validation.training.paper_methods` from one initial network on one grid. Output:

* ``runs.csv``: one row per setting, seed and method (final training loss ``R_S``, test
  relative L2 error on 2000 random points, seconds, iterations, stage switches, status);
* ``summary.csv``: median, min and max over seeds per setting, method and metric;
* ``table1.md``: tables shaped like the paper's Table 1 (rows: width x depth; columns:
  methods; cells: ``median [min, max]``), one for the training loss and one for the test error,
  per dimension;
* ``loss_d{d}_w{width}_L{depth}.png``: median loss curve per method with the min-max band;
* ``histories/*.csv.gz``: the recorded loss histories.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from validation import common as C
from validation.training import POINTS, TARGETS, make_config, paper_methods, run_method

PROFILES = {
    "quick": {"dims": [1], "sizes": {1: [(200, 1)]}, "seeds": 2, "total": 1000, "first": 300,
              "cap": 500, "window": 50, "threshold": 0.01, "record_every": 10, "workers": 1},
    # Depth 3 (three hidden layers) at width 1000 is left out everywhere, and depth 3 at width 400
    # for d = 3, to keep the full profile near one hour on two cores (a 16000-step run of a
    # 3-hidden-layer width-1000 network takes ~13 minutes on one core in float64).
    "full": {"dims": [1, 3], "sizes": {1: [(200, 1), (400, 1), (1000, 1), (200, 3), (400, 3)],
                                      3: [(200, 1), (400, 1), (1000, 1), (200, 3)]},
             "seeds": 5, "total": 16000, "first": 3000, "cap": 8000, "window": 500, "threshold": 0.01,
             "record_every": 20, "workers": 2},
}

#: Measured milliseconds per Adam step on one core (float64), to order tasks longest first and
#: to estimate running times.
MS_PER_STEP = {(200, 1): 0.9, (400, 1): 0.9, (1000, 1): 1.2, (200, 3): 3.2, (400, 3): 9.0, (1000, 3): 50.0}


def settings(profile: dict) -> list[tuple[int, int, int]]:
    return [(d, w, L) for d in profile["dims"] for (w, L) in profile["sizes"][d]]


def estimate_seconds(profile: dict, workers: int) -> float:
    n_methods = 4
    core = sum(MS_PER_STEP.get((w, L), 10.0) * 1e-3 * profile["total"] * n_methods * profile["seeds"]
               for (_, w, L) in settings(profile))
    return core / max(1, workers)


def task_fn(task: dict) -> dict:
    """One (setting, seed, method): runs in a worker process."""
    methods = {m.name: m for m in paper_methods(task["total"], task["first"], task["cap"], task["window"],
                                                task["threshold"])}
    cfg = make_config(task["dim"], task["width"], task["depth"], task["seed"], task["lr"])
    res = run_method(cfg, methods[task["method"]], task["record_every"])
    return {**{k: task[k] for k in ("dim", "width", "depth", "seed")}, **res}


def history_path(out: Path, r: dict) -> Path:
    return out / "histories" / f"d{r['dim']}_w{r['width']}_L{r['depth']}_seed{r['seed']}_{r['method']}.csv.gz"


def run(profile_name: str, out: Path, *, seeds: int | None = None, workers: int | None = None,
        resume: bool = False, tables_only: bool = False, lr: float = 1e-3, log=print) -> dict:
    """Train (or, with ``tables_only``, only tabulate the completed runs in ``out``) and write
    the tables and figures. With ``resume`` the completed runs of an earlier call are kept."""
    prof = dict(PROFILES[profile_name])
    if seeds is not None:
        prof["seeds"] = seeds
    workers = workers or prof["workers"]
    methods = paper_methods(prof["total"], prof["first"], prof["cap"], prof["window"], prof["threshold"])
    (out / "histories").mkdir(parents=True, exist_ok=True)
    manifest = C.Manifest(out, "approx", profile_name, {
        **{k: v for k, v in prof.items() if k != "sizes"},
        "sizes": {str(d): [f"{w}x{L}" for (w, L) in prof["sizes"][d]] for d in prof["dims"]},
        "targets": {str(d): TARGETS[d] for d in prof["dims"]}, "points": {str(d): POINTS[d] for d in prof["dims"]},
        "lr": lr, "lr_schedule": "constant (no late learning-rate decrease)", "dtype": "float64",
        "workers": workers, "test_points": 2000, "init": "N(0,1) weights, NTK scaling (HomotopyNet)",
        "methods": [{"name": m.name, "label": m.label, "schedule": m.describe()} for m in methods],
        "estimated_seconds": round(estimate_seconds(prof, workers))})
    tasks = []
    for (d, w, L) in settings(prof):
        for seed in range(prof["seeds"]):
            for m in methods:
                tasks.append({"dim": d, "width": w, "depth": L, "seed": seed, "method": m.name, "lr": lr,
                              **{k: prof[k] for k in ("total", "first", "cap", "window", "threshold",
                                                      "record_every")}})
    # seed-major (all settings of seed 0 first, longest first within a seed): an interrupted run
    # leaves complete seeds across all settings, which --tables-only can tabulate
    tasks.sort(key=lambda t: (t["seed"], -MS_PER_STEP.get((t["width"], t["depth"]), 10.0)))
    done_rows = _load_done(out) if (resume or tables_only) else {}
    todo = [] if tables_only else [t for t in tasks if _key(t) not in done_rows]
    log(f"approx ({profile_name}): {len(tasks)} runs ({sum(_key(t) in done_rows for t in tasks)} already done), "
        f"{workers} worker(s), estimated {estimate_seconds(prof, workers) / 60:.1f} min")

    def on_result(task, r):
        hist = r.pop("history")
        C.write_curve(history_path(out, r), ["iteration", "stage", "s", "loss", "time"],
                      zip(*[hist[c] for c in ("iteration", "stage", "s", "loss", "time")]))
        done_rows[_key(r)] = _row(r)
        C.write_csv(out / "runs.csv", sorted(done_rows.values(), key=_key), RUN_COLUMNS)

    C.run_tasks(task_fn, todo, workers, on_result=on_result, log=log)
    rows = [done_rows[_key(t)] for t in tasks if _key(t) in done_rows]
    rows.sort(key=_key)
    C.write_csv(out / "runs.csv", rows, RUN_COLUMNS)
    summary = summarize(rows, methods, prof)
    C.write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
    complete = len(rows) == len(tasks)
    C.write_text(out / "table1.md", table1_markdown(summary, methods, prof, complete))
    figures = plot_curves(out, rows, methods, prof)
    bad = [r for r in rows if r["status"] != "completed"]
    manifest.finish("completed" if complete else "partial", figures=[f.name for f in figures],
                    failed_runs=len(bad), runs_done=len(rows), runs_planned=len(tasks))
    log((out / "table1.md").read_text())
    return {"rows": rows, "summary": summary, "figures": figures}


RUN_COLUMNS = ["dim", "width", "depth", "method", "seed", "final_train_loss", "test_rel_l2", "seconds",
               "iterations", "switches", "status", "message"]
SUMMARY_COLUMNS = ["dim", "width", "depth", "method", "metric", "n", "median", "min", "max"]


def _key(r: dict) -> tuple:
    return (int(r["dim"]), int(r["width"]), int(r["depth"]), int(r["seed"]), str(r["method"]))


def _row(r: dict) -> dict:
    return {k: r[k] for k in RUN_COLUMNS}


def _load_done(out: Path) -> dict:
    path = out / "runs.csv"
    if not path.exists():
        return {}
    done = {}
    for r in C.read_csv(path):
        if r["status"] == "completed" and history_path(out, r).exists():
            for k in ("dim", "width", "depth", "seed", "iterations"):
                r[k] = int(r[k])
            for k in ("final_train_loss", "test_rel_l2", "seconds"):
                r[k] = float(r[k])
            r["switches"] = [int(s) for s in r["switches"].split()] if r["switches"] else []
            done[_key(r)] = r
    return done


def summarize(rows: list[dict], methods, prof) -> list[dict]:
    out = []
    for (d, w, L) in settings(prof):
        for m in methods:
            mine = [r for r in rows if (int(r["dim"]), int(r["width"]), int(r["depth"]), r["method"]) == (d, w, L, m.name)]
            for metric in ("final_train_loss", "test_rel_l2", "seconds"):
                med, lo, hi, n = C.med_min_max(float(r[metric]) for r in mine)
                out.append({"dim": d, "width": w, "depth": L, "method": m.name, "metric": metric, "n": n,
                            "median": med, "min": lo, "max": hi})
    return out


def lookup(summary: list[dict], d, w, L, method, metric) -> dict | None:
    for s in summary:
        if (int(s["dim"]), int(s["width"]), int(s["depth"]), s["method"], s["metric"]) == (d, w, L, method, metric):
            return s
    return None


def table1_markdown(summary: list[dict], methods, prof, complete: bool = True) -> str:
    parts = []
    names = {"final_train_loss": "final training loss R_S = 1/(2n) sum (f - f*)^2",
             "test_rel_l2": "test relative L2 error (2000 random points)"}
    for d in prof["dims"]:
        for metric, title in names.items():
            header = ["width x hidden layers"] + [m.label for m in methods]
            rows = []
            for (w, L) in prof["sizes"][d]:
                rows.append([f"{w} x {L}"] + [C.summary_cell(lookup(summary, d, w, L, m.name, metric)) for m in methods])
            parts.append(f"#### d = {d}, target {TARGETS[d]}, {POINTS[d]} grid points: {title}\n\n"
                         f"median [min, max] over {prof['seeds']} seeds, {prof['total']} Adam steps each"
                         + ("" if complete else " (PARTIAL results: some cells have fewer seeds, see n in "
                            "summary.csv)") + "\n\n"
                         + C.markdown_table(header, rows))
    return "\n\n".join(parts)


def plot_curves(out: Path, rows: list[dict], methods, prof) -> list[Path]:
    paths = []
    grid = np.arange(prof["record_every"], prof["total"] + 1, prof["record_every"])
    for (d, w, L) in settings(prof):
        fig, axes = C.figure()
        ax = axes[0, 0]
        for m in methods:
            mine = [r for r in rows if (int(r["dim"]), int(r["width"]), int(r["depth"]), r["method"]) == (d, w, L, m.name)]
            curves, switches = [], []
            for r in mine:
                h = C.read_curve(history_path(out, r))
                by_it = dict(zip(h["iteration"].astype(int), h["loss"]))
                curves.append([by_it.get(int(i), math.nan) for i in grid])
                switches += r["switches"] if isinstance(r["switches"], list) else \
                    [int(s) for s in str(r["switches"]).split()]
            if not curves:
                continue
            line = C.band_plot(ax, grid, np.array(curves), m.label)
            for sw in sorted(set(switches)):
                ax.axvline(sw, color=line.get_color(), ls=":", lw=0.8, alpha=0.6)
        ax.set_xlabel("Adam iteration")
        ax.set_ylabel("training loss R_S (log scale)")
        ax.set_title(f"d={d}: {TARGETS[d]}, width {w}, {L} hidden layer{'s' if L > 1 else ''}\n"
                     "median over seeds, shaded: min-max; dotted: stage switches", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(C.save_figure(fig, out / f"loss_d{d}_w{w}_L{L}.png"))
    return paths


__all__ = ["PROFILES", "run", "task_fn", "estimate_seconds"]
