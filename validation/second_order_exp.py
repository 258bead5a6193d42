"""Experiment ``second-order``: does HRTA help a second-order optimizer? (issue 9, item 5)

Theorem 3.1 is about the conditioning of the Gram matrix; an energy natural gradient (ENGD, a
Gauss-Newton step in function space) removes that conditioning, and L-BFGS builds its own curvature
model. So the homotopy (s = 0.5 -> 1) and relaxation (s = 1 -> 1.5) stages are measured here with
``@engd`` and ``@lbfgs`` stages, each against the same optimizer at fixed s = 1 with the same
number of iterations::

    fixed     1:N@X
    hrta_0.5  0.5:N/4@X,1:3N/4@X
    hrta_1.5  1:N/4@X,1.5:3N/4@X

through ``hrta_pde.poisson.solve`` (FNN, phi = tanh, the solver's default data-dependent ``init="domain"``).
Within a (problem, loss, seed) every run starts from the same points and initial network (the
solver's ``Setup`` depends only on the seed); each row records a hash of the initial parameters and
``same_init.csv`` checks it. An ENGD stage ends early when no step size lowers the loss, so the
iterations actually run are recorded (in total and per stage) next to the planned ones.

The verdict per (optimizer, HRTA variant) counts, seed by seed over all (problem, loss, seed), the
runs whose final relative L2 error is strictly lower than the fixed-s run's (:func:`verdicts`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from validation import common as C
from validation.pde_exp import completed_rows, run_row, train_run, write_curves

PROFILES = {
    "quick": {
        "problems": [["poisson_1d", "pinn"]], "width": 16, "depth": 1, "points_1d": 60, "points": 100,
        "boundary_points": 20, "test_points": 1000, "seeds": 1, "iterations": {"engd": 8, "engd_lm": 8, "lbfgs": 40},
        "evals": 4, "workers": 1,
    },
    "full": {
        # one run is ~5-30 s on one shared core: ENGD's step costs a (rows x params) Jacobian and an
        # eigendecomposition, 60 steps; L-BFGS 200 steps with a strong-Wolfe line search (400 were
        # planned; at 25-45 s per 2-D run the 120 runs would not have fitted in 30 minutes)
        "problems": [["poisson_1d", "pinn"], ["poisson_2d_sin", "pinn"], ["poisson_disk", "pinn"],
                     ["poisson_1d", "ritz"]],
        "width": 32, "depth": 1, "points_1d": 200, "points": 400, "boundary_points": 100,
        "test_points": 5000, "seeds": 5, "iterations": {"engd": 60, "engd_lm": 60, "lbfgs": 200}, "evals": 10,
        "workers": 2,
    },
}
OPTIMIZERS = ("engd", "engd_lm", "lbfgs")
#: per optimizer key: the schedule's ``@optimizer`` and the SolveConfig options it runs with. ``engd``
#: is the solver's default ENGD (grid line search, damping 0: the pseudo-inverse); ``engd_lm`` the
#: same energy natural gradient with Levenberg-Marquardt damping (``engd_method = "lm"``), added
#: after the default stalled (accepted step sizes ~1e-7) on poisson_disk/pinn and poisson_1d/ritz
OPT_SPEC = {"engd": ("engd", {}), "engd_lm": ("engd", {"engd_method": "lm"}), "lbfgs": ("lbfgs", {})}
METHODS = ("fixed", "hrta_0.5", "hrta_1.5")
VARIANTS = ("hrta_0.5", "hrta_1.5")
LABELS = {"fixed": "s = 1", "hrta_0.5": "HRTA 0.5->1", "hrta_1.5": "HRTA 1->1.5"}
OPT_LABELS = {"engd": "ENGD", "engd_lm": "ENGD (LM)", "lbfgs": "L-BFGS"}
METRICS = ("rel_l2", "rel_h1_semi", "max_error", "final_loss", "seconds", "iterations")
#: the runs of one (problem, loss, seed) must start from the same initial network (same_init.csv)
SAME_KEYS = ("problem", "loss", "seed")
RUN_COLUMNS = ["problem", "loss", "optimizer", "method", "schedule", "seed", "rel_l2", "rel_h1_semi", "max_error",
               "final_loss", "seconds", "iterations", "planned_iterations", "stage_iterations", "switches",
               "status", "init_hash"]
_COST = {"engd": 0.25, "engd_lm": 0.25, "lbfgs": 0.04}  # rough seconds per iteration at 400 points, to order tasks


def schedules(optimizer: str, n: int) -> dict[str, str]:
    """The three schedules of one optimizer with ``n`` iterations in all (a quarter in stage 1)."""
    q = max(1, n // 4)
    optimizer = OPT_SPEC[optimizer][0]
    return {"fixed": f"1:{n}@{optimizer}",
            "hrta_0.5": f"0.5:{q}@{optimizer},1:{n - q}@{optimizer}",
            "hrta_1.5": f"1:{q}@{optimizer},1.5:{n - q}@{optimizer}"}


def make_config(task: dict):
    from hrta_pde.poisson.solve import SolveConfig

    return SolveConfig.from_dict(dict(
        loss=task["loss"], schedule=task["schedule"], net="fnn", width=task["width"], depth=task["depth"],
        phi="tanh", points=task["points"], boundary_points=task["boundary_points"], sampler="random",
        test_points=task["test_points"], eval_every=task["eval_every"], checkpoint_every=10**9, record_every=1,
        seed=task["seed"], dtype="float64", device="cpu", **OPT_SPEC[task["optimizer"]][1]))


def task_fn(task: dict) -> dict:
    res, init = train_run(task, make_config)
    stages = res.history.column("stage")
    n_stages = len(task["schedule"].split(","))
    per_stage = [sum(1 for s in stages if int(s) == k + 1) for k in range(n_stages)]  # record_every = 1
    return {**run_row(task, ("problem", "loss", "optimizer", "method", "schedule", "seed"), res, init, METRICS),
            "planned_iterations": task["planned_iterations"], "stage_iterations": per_stage}


def tasks_of(prof: dict, seeds: int | None) -> list[dict]:
    from hrta_pde.poisson.catalog import builtin_problem

    tasks = []
    for problem, loss in prof["problems"]:
        points = prof["points_1d"] if builtin_problem(problem).dim == 1 else prof["points"]
        for seed in range(seeds or prof["seeds"]):
            for opt in OPTIMIZERS:
                n = prof["iterations"][opt]
                for method, sched in schedules(opt, n).items():
                    tasks.append({"problem": problem, "loss": loss, "optimizer": opt, "method": method,
                                  "schedule": sched, "seed": seed, "planned_iterations": n,
                                  "width": prof["width"], "depth": prof["depth"], "points": points,
                                  "boundary_points": prof["boundary_points"], "test_points": prof["test_points"],
                                  "eval_every": max(1, n // prof["evals"])})
    return tasks


def _cost(t: dict) -> float:
    return t["planned_iterations"] * _COST[t["optimizer"]] * t["points"] / 400


def _key(t: dict) -> tuple:
    return (t["problem"], t["loss"], t["optimizer"], t["method"], int(t["seed"]), t["schedule"])


def run_stem(t: dict) -> str:
    return f"{t['problem']}_{t['loss']}_{t['optimizer']}_{t['method']}_seed{t['seed']}"


def _ints(text) -> list[int]:
    return [int(x) for x in str(text).split()]


def load_done(out: Path) -> dict[tuple, dict]:
    """Completed rows of an earlier call's ``runs.csv`` whose curve files exist (``--resume``)."""
    rows = ({**r, "seed": int(r["seed"]), "planned_iterations": int(r["planned_iterations"]),
             "iterations": int(r["iterations"]), "switches": _ints(r["switches"]),
             "stage_iterations": _ints(r["stage_iterations"])} for r in completed_rows(out, run_stem, METRICS))
    return {_key(row): row for row in rows}


def run(profile_name: str, out: Path, *, seeds: int | None = None, workers: int | None = None,
        resume: bool = False, log=print) -> dict:
    prof = PROFILES[profile_name]
    workers = workers or prof["workers"]
    # seed by seed (an interrupted call leaves whole seeds), longest first within a seed
    tasks = sorted(tasks_of(prof, seeds), key=lambda t: (t["seed"], -_cost(t)))
    manifest = C.Manifest(out, "second-order", profile_name, {
        **{k: v for k, v in prof.items() if k != "workers"}, "seeds": seeds or prof["seeds"],
        "seeds_override": seeds, "workers": workers, "phi": "tanh", "net": "fnn", "init": "domain",
        "sampler": "random", "dtype": "float64",
        "schedules": {opt: schedules(opt, prof["iterations"][opt]) for opt in OPTIMIZERS}})
    done, todo = C.split_done(tasks, load_done(out) if resume else {}, _key)
    log(f"second-order ({profile_name}): {len(tasks)} runs ({len(done)} already done), {workers} worker(s)")

    so_far = list(done.values())

    def on_result(task, r):
        write_curves(out, run_stem(r), r)
        so_far.append(r)  # runs.csv after every run: an interrupted call keeps its rows (--resume, --tables-only)
        C.write_csv(out / "runs.csv", so_far, RUN_COLUMNS)

    rows = (C.run_tasks(task_fn, todo, workers, on_result=on_result, log=log) if todo else []) + list(done.values())
    rows.sort(key=lambda r: (r["problem"], r["loss"], r["optimizer"], r["method"], r["seed"]))
    return finish(out, rows, prof, manifest, kept=len(done), planned=len(tasks), log=log)


def tables_only(profile_name: str, out: Path, *, seeds: int | None = None, log=print) -> dict:
    """Train nothing: tabulate the completed runs in ``out/runs.csv`` (after an interrupted call).
    Fewer runs than the profile plans give the status ``partial`` (the report labels it)."""
    prof = PROFILES[profile_name]
    planned = len(tasks_of(prof, seeds))
    rows = sorted(load_done(out).values(), key=lambda r: (r["problem"], r["loss"], r["optimizer"], r["method"],
                                                          r["seed"]))
    manifest = C.Manifest(out, "second-order", profile_name, {
        **{k: v for k, v in prof.items() if k != "workers"}, "seeds": seeds or prof["seeds"],
        "seeds_override": seeds, "phi": "tanh", "net": "fnn", "init": "domain", "sampler": "random",
        "dtype": "float64", "schedules": {opt: schedules(opt, prof["iterations"][opt]) for opt in OPTIMIZERS}})
    return finish(out, rows, prof, manifest, kept=len(rows), planned=planned,
                  status="completed" if len(rows) == planned else "partial", log=log)


def finish(out: Path, rows: list[dict], prof: dict, manifest: C.Manifest, *, kept: int = 0,
           planned: int | None = None, status: str = "completed", log=print) -> dict:
    """Write the tables, Markdown and figures of ``rows`` (also used for partial results)."""
    same, summary = C.write_run_tables(out, rows, RUN_COLUMNS, same_keys=SAME_KEYS,
                                       summary_keys=("problem", "loss", "optimizer", "method"), metrics=METRICS)
    verdict_rows = verdicts(rows)
    C.write_csv(out / "verdicts.csv", verdict_rows, VERDICT_COLUMNS)
    C.write_text(out / "second_order.md", markdown(summary, verdict_rows, rows))
    figures = plot(out, rows)
    manifest.finish(status=status, figures=[p.name for p in figures],
                    failed_runs=sum(r["status"] != "completed" for r in rows), runs_kept_from_earlier_call=kept,
                    runs_done=len(rows), runs_planned=planned if planned is not None else len(rows))
    log((out / "second_order.md").read_text())
    return {"rows": rows, "summary": summary, "verdicts": verdict_rows, "figures": figures, "same_init": same}


VERDICT_COLUMNS = ["optimizer", "method", "wins", "n", "median_ratio_rel_l2", "median_ratio_seconds",
                   "median_ratio_iterations", "verdict"]


def pairs(rows: list[dict], optimizer: str, method: str, metric: str = "rel_l2") -> list[tuple[float, float]]:
    """``(HRTA value, fixed-s value)`` per (problem, loss, seed) where both runs completed."""
    base = {(r["problem"], r["loss"], int(r["seed"])): float(r[metric]) for r in rows
            if r["optimizer"] == optimizer and r["method"] == "fixed" and r["status"] == "completed"}
    out = []
    for r in rows:
        if r["optimizer"] != optimizer or r["method"] != method or r["status"] != "completed":
            continue
        b = base.get((r["problem"], r["loss"], int(r["seed"])))
        if b is not None and math.isfinite(b) and math.isfinite(float(r[metric])):
            out.append((float(r[metric]), b))
    return out


def _median_ratio(p) -> float:
    ratios = [a / b for a, b in p if b > 0]
    return float(np.median(ratios)) if ratios else math.nan


def verdicts(rows: list[dict]) -> list[dict]:
    """Per (optimizer, HRTA variant): wins = seed-paired runs with a strictly lower final relative L2
    error than the same optimizer at s = 1, n = paired runs, the median of the per-seed ratios, and
    the report's verdict word."""
    from validation.findings import _verdict

    out = []
    for opt in OPTIMIZERS:
        for meth in VARIANTS:
            p = pairs(rows, opt, meth)
            if not p:
                continue
            k = sum(a < b for a, b in p)
            ratio = _median_ratio(p)
            out.append({"optimizer": opt, "method": meth, "wins": k, "n": len(p), "median_ratio_rel_l2": ratio,
                        "median_ratio_seconds": _median_ratio(pairs(rows, opt, meth, "seconds")),
                        "median_ratio_iterations": _median_ratio(pairs(rows, opt, meth, "iterations")),
                        "verdict": _verdict(k, len(p), ratio)})
    return out


def _look(summary, problem, loss, opt, method, metric):
    return C.summary_row(summary, problem=problem, loss=loss, optimizer=opt, method=method, metric=metric)


def markdown(summary: list[dict], verdict_rows: list[dict], rows: list[dict]) -> str:
    parts = []
    header = ["optimizer", "HRTA variant", "lower rel. L2 than s = 1 (seed-paired)", "median ratio rel. L2",
              "median ratio seconds", "median ratio iterations run", "verdict"]
    parts.append("#### Verdicts: HRTA vs the same optimizer at s = 1 (per seed, final relative L2 error)\n\n"
                 + C.markdown_table(header, [[OPT_LABELS[v["optimizer"]], LABELS[v["method"]],
                                              f"{v['wins']} of {v['n']}", f"{float(v['median_ratio_rel_l2']):.3g}",
                                              f"{float(v['median_ratio_seconds']):.3g}",
                                              f"{float(v['median_ratio_iterations']):.3g}", v["verdict"]]
                                             for v in verdict_rows]))
    cases = sorted({(r["problem"], r["loss"]) for r in rows})
    seeds = len({int(r["seed"]) for r in rows})
    for opt in OPTIMIZERS:
        sched = sorted({(r["method"], r["schedule"]) for r in rows if r["optimizer"] == opt},
                       key=lambda x: METHODS.index(x[0]))
        if not sched:
            continue
        header = ["problem / loss"] + [f"{LABELS[m]} rel. L2" for m, _ in sched] \
            + [f"{LABELS[m]} rel. H1 semi" for m, _ in sched] \
            + [f"{LABELS[m]} iterations run" for m, _ in sched] + [f"{LABELS[m]} seconds" for m, _ in sched]
        body = []
        for p, loss in cases:
            body.append([f"{p} / {loss}"] + [C.summary_cell(_look(summary, p, loss, opt, m, "rel_l2")) for m, _ in sched]
                        + [C.summary_cell(_look(summary, p, loss, opt, m, "rel_h1_semi")) for m, _ in sched]
                        + [C.summary_median(_look(summary, p, loss, opt, m, "iterations"), 0) for m, _ in sched]
                        + [C.summary_median(_look(summary, p, loss, opt, m, "seconds")) for m, _ in sched])
        wins = []
        for p, loss in cases:
            for m in VARIANTS:
                pp = [x for x in pairs([r for r in rows if (r["problem"], r["loss"]) == (p, loss)], opt, m)]
                wins.append(f"{p}/{loss} {LABELS[m]}: {sum(a < b for a, b in pp)} of {len(pp)}")
        parts.append(f"#### {OPT_LABELS[opt]}: " + ", ".join(f"{LABELS[m]} `{s}`" for m, s in sched)
                     + f"; median [min, max] over {seeds} seed(s) (iterations run and seconds: medians)\n\n"
                     + C.markdown_table(header, body)
                     + "\n\nSeed-paired wins on final relative L2 error: " + "; ".join(wins) + ".")
    return "\n\n".join(parts)


def _curves(out: Path, rows, problem, loss, opt, method):
    mine = [r for r in rows if (r["problem"], r["loss"], r["optimizer"], r["method"]) == (problem, loss, opt, method)]
    cs = [C.read_curve(out / "histories" / f"{run_stem(r)}_errors.csv.gz") for r in mine]
    cs = [c for c in cs if len(c["iteration"])]
    if not cs:
        return None, None
    n = min(len(c["iteration"]) for c in cs)  # an ENGD run that stopped early has fewer evaluations
    return cs[0]["iteration"][:n], np.array([c["rel_l2"][:n] for c in cs])


def plot(out: Path, rows: list[dict]) -> list[Path]:
    cases = sorted({(r["problem"], r["loss"]) for r in rows})
    if not cases:
        return []
    fig, axes = C.figure(len(OPTIMIZERS), len(cases), size=(4.2, 3.3))
    styles = {"fixed": "--", "hrta_0.5": "-", "hrta_1.5": ":"}
    for i, opt in enumerate(OPTIMIZERS):
        for j, (p, loss) in enumerate(cases):
            ax = axes[i, j]
            for k, m in enumerate(METHODS):
                x, y = _curves(out, rows, p, loss, opt, m)
                if x is not None:
                    ax.plot(x, np.median(y, axis=0), ls=styles[m], color=f"C{k}", lw=1.3,
                            label=f"{LABELS[m]} (median of {y.shape[0]})")
            ax.set_yscale("log")
            ax.set_title(f"{p} / {loss}, {OPT_LABELS[opt]}", fontsize=9)
            ax.set_xlabel(f"{OPT_LABELS[opt]} iteration")
            ax.set_ylabel("relative L2 (test points)")
            ax.grid(True, alpha=0.3)
            if j == 0:
                ax.legend(fontsize=7)
    return [C.save_figure(fig, out / "second_order.png")]
