"""Experiment ``pde``: HRTA on Poisson problems, through ``hrta_pde.poisson.solve``.

(a) ``paper``: the paper's PDE example (``builtin_problem("paper_pde")``, a stand-in since the
    paper's formulas were stripped): the paper's two-layer network (``net="paper"``:
    ``HomotopyNet``, N(0, 1) weights, NTK scaling), the smooth activation ``phi = relu3``, the
    Sobolev loss; HRTA 0.5 -> 1 and 1 -> 1.5 against Adam with s = 1 throughout, all with the
    same number of Adam steps, from the same initial network and points, over several seeds.
(b) ``losses``: Deep Ritz vs Sobolev vs PINN on catalog problems, each trained with the HRTA
    schedule and with the single-stage baseline of the same length (a DeepXDE FNN with
    Glorot-normal initialisation, ``phi = relu3``).

Within one seed every run starts from the same points and the same initial network: the solver's
``Setup`` is a deterministic function of the seed (not of the loss or schedule). This is checked:
each row records a hash of the initial parameters, and ``same_init.csv`` says whether all runs of
a (part, problem, seed) share it.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from validation import common as C

PROFILES = {
    "quick": {
        "paper": {"width": 200, "points": 200, "boundary_points": 2, "test_points": 2000, "seeds": 1,
                  "methods": {"adam": "1:300", "hrta_0.5": "0.5:100,1:200", "hrta_1.5": "1:100,1.5:200"},
                  "eval_every": 50},
        "losses": {"problems": ["poisson_1d"], "losses": ["ritz", "sobolev", "pinn"], "width": 32, "depth": 2,
                   "points": 200, "boundary_points": 50, "test_points": 2000, "seeds": 1,
                   "methods": {"adam": "1:300", "hrta_0.5": "0.5:100,1:200", "hrta_1.5": "1:100,1.5:200"},
                   "eval_every": 50},
        "workers": 1,
    },
    "full": {
        # The paper's 3000 + 13000 steps scaled by 1/4 (the same proportion), to keep a run near
        # 1-2 minutes on one core; the paper's width and point count were stripped from its text.
        "paper": {"width": 1000, "points": 500, "boundary_points": 2, "test_points": 5000, "seeds": 3,
                  "methods": {"adam": "1:4000", "hrta_0.5": "0.5:750,1:3250", "hrta_1.5": "1:750,1.5:3250"},
                  "eval_every": 250},
        "losses": {"problems": ["poisson_1d", "poisson_2d_sin", "poisson_disk", "poisson_lshape",
                                "poisson_3d_cube", "poisson_neumann_square"],
                   "losses": ["ritz", "sobolev", "pinn"], "width": 64, "depth": 3, "points": 1000,
                   "boundary_points": 200, "test_points": 5000, "seeds": 2,
                   "methods": {"adam": "1:2000", "hrta_0.5": "0.5:500,1:1500", "hrta_1.5": "1:500,1.5:1500"},
                   "eval_every": 250},
        "workers": 2,
    },
}
LABELS = {"adam": "Adam (s=1)", "hrta_0.5": "HRTA 0.5->1", "hrta_1.5": "HRTA 1->1.5"}
METRICS = ("rel_l2", "rel_h1_semi", "max_error", "final_loss", "seconds")
#: rough seconds per Adam step on one core, to order tasks longest first
_COST = {"pinn": 3.0, "ritz": 1.0, "sobolev": 1.0}


def make_config(task: dict):
    from hrta_pde.poisson.solve import SolveConfig

    return SolveConfig.from_dict(dict(
        loss=task["loss"], schedule=task["schedule"], lr=1e-3, net=task["net"], width=task["width"],
        depth=task["depth"], phi="relu3", points=task["points"], boundary_points=task["boundary_points"],
        sampler="random", test_points=task["test_points"], eval_every=task["eval_every"],
        checkpoint_every=10**9, record_every=10, seed=task["seed"], dtype="float64", device="cpu"))


def param_hash(net) -> str:
    h = hashlib.sha256()
    for name, p in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train_run(task: dict, make_config) -> tuple:
    """Solve the catalog problem ``task["problem"]`` with the configuration ``make_config(task)``:
    the solver's result and the hash of the initial network (:func:`param_hash`)."""
    from hrta_pde.poisson.catalog import builtin_problem
    from hrta_pde.poisson.solve import Setup, solve

    problem = builtin_problem(task["problem"])
    cfg = make_config(task)
    setup = Setup(problem, cfg)
    init = param_hash(setup.net)
    return solve(problem, cfg, setup=setup), init


def run_row(task: dict, keys, res, init: str, metrics) -> dict:
    """A row of ``runs.csv``: the task's ``keys``, the result's ``metrics``, status, iterations,
    switches and initial hash; plus the loss history and error evaluations that
    :func:`write_curves` moves to their own files."""
    h = res.history
    return {**{k: task[k] for k in keys}, **{m: res.metrics.get(m) for m in metrics},
            "status": res.metrics["status"], "iterations": res.metrics["iterations"],
            "switches": list(h.switches), "init_hash": init,
            "history": {"iteration": h.column("iteration"), "loss": h.column("loss")},
            "errors": [(e["iteration"], e["rel_l2"]) for e in h.evaluations]}


def write_curves(out: Path, stem: str, row: dict) -> None:
    """Move ``row``'s loss history and error evaluations into ``histories/{stem}_loss.csv.gz`` and
    ``histories/{stem}_errors.csv.gz`` under ``out``."""
    hist, errs = row.pop("history"), row.pop("errors")
    (out / "histories").mkdir(parents=True, exist_ok=True)
    C.write_curve(out / "histories" / f"{stem}_loss.csv.gz", ["iteration", "loss"],
                  zip(hist["iteration"], hist["loss"]))
    C.write_curve(out / "histories" / f"{stem}_errors.csv.gz", ["iteration", "rel_l2"], errs)


def completed_rows(out: Path, run_stem, metrics) -> list[dict]:
    """The completed rows of an earlier call's ``out/runs.csv`` whose two curve files (named by
    ``run_stem(row)``) exist; the ``metrics`` as floats (nan where empty), the rest as read (strings).
    None if there is no ``runs.csv``."""
    path = out / "runs.csv"
    if not path.exists():
        return []
    return [{**r, **{m: float(r[m]) if r[m] not in ("", None) else math.nan for m in metrics}}
            for r in C.read_csv(path) if r["status"] == "completed"
            and all((out / "histories" / f"{run_stem(r)}_{kind}.csv.gz").exists() for kind in ("loss", "errors"))]


def task_fn(task: dict) -> dict:
    res, init = train_run(task, make_config)
    return run_row(task, ("part", "problem", "loss", "method", "schedule", "seed"), res, init, METRICS)


def tasks_of(prof: dict, seeds: int | None) -> list[dict]:
    tasks = []
    a = prof["paper"]
    for seed in range(seeds or a["seeds"]):
        for method, sched in a["methods"].items():
            tasks.append({"part": "paper", "problem": "paper_pde", "loss": "sobolev", "method": method,
                          "schedule": sched, "seed": seed, "net": "paper", "width": a["width"], "depth": 1,
                          **{k: a[k] for k in ("points", "boundary_points", "test_points", "eval_every")}})
    b = prof["losses"]
    for problem in b["problems"]:
        for seed in range(seeds or b["seeds"]):
            for loss in b["losses"]:
                for method, sched in b["methods"].items():
                    tasks.append({"part": "losses", "problem": problem, "loss": loss, "method": method,
                                  "schedule": sched, "seed": seed, "net": "fnn", "width": b["width"],
                                  "depth": b["depth"],
                                  **{k: b[k] for k in ("points", "boundary_points", "test_points", "eval_every")}})
    return tasks


def _cost(t: dict) -> float:
    steps = sum(int(x.split(":")[1]) for x in t["schedule"].split(","))
    per = (t["width"] / 64.0) ** 2 * 0.2 if t["net"] == "paper" else _COST[t["loss"]] * t["points"] / 1000
    return steps * per


def _key(t: dict) -> tuple:
    return (t["part"], t["problem"], t["loss"], t["method"], int(t["seed"]), t["schedule"])


def run_stem(t: dict) -> str:
    return f"{t['part']}_{t['problem']}_{t['loss']}_{t['method']}_seed{t['seed']}"


def load_done(out: Path) -> dict[tuple, dict]:
    """Completed rows of an earlier call's ``runs.csv`` whose curve files exist, keyed like the
    tasks (the schedule included, so a changed schedule is trained again)."""
    rows = ({**r, "seed": int(r["seed"]), "iterations": int(r["iterations"]),
             "switches": [int(x) for x in str(r["switches"]).split()]} for r in completed_rows(out, run_stem, METRICS))
    return {_key(row): row for row in rows}


def run(profile_name: str, out: Path, *, seeds: int | None = None, workers: int | None = None,
        resume: bool = False, log=print) -> dict:
    prof = PROFILES[profile_name]
    workers = workers or prof["workers"]
    manifest = C.Manifest(out, "pde", profile_name, {
        "paper": prof["paper"], "losses": prof["losses"], "seeds_override": seeds, "workers": workers,
        "phi": "relu3", "lr": 1e-3, "sampler": "random", "dtype": "float64"})
    tasks = sorted(tasks_of(prof, seeds), key=lambda t: -_cost(t))
    done, todo = C.split_done(tasks, load_done(out) if resume else {}, _key)
    log(f"pde ({profile_name}): {len(tasks)} runs ({len(done)} already done), {workers} worker(s)")

    def on_result(task, r):
        write_curves(out, run_stem(r), r)

    rows = (C.run_tasks(task_fn, todo, workers, on_result=on_result, log=log) if todo else []) + list(done.values())
    rows.sort(key=lambda r: (r["part"], r["problem"], r["loss"], r["method"], r["seed"]))
    same, summary = C.write_run_tables(out, rows, RUN_COLUMNS, same_keys=("part", "problem", "seed"),
                                       summary_keys=("part", "problem", "loss", "method"), metrics=METRICS)
    C.write_text(out / "pde.md", markdown(summary, prof, seeds))
    figures = plot(out, rows, prof)
    manifest.finish(figures=[p.name for p in figures], failed_runs=sum(r["status"] != "completed" for r in rows),
                    runs_kept_from_earlier_call=len(done))
    log((out / "pde.md").read_text())
    return {"rows": rows, "summary": summary, "figures": figures, "same_init": same}


RUN_COLUMNS = ["part", "problem", "loss", "method", "schedule", "seed", "rel_l2", "rel_h1_semi", "max_error",
               "final_loss", "seconds", "iterations", "switches", "status", "init_hash"]


def lookup(summary, part, problem, loss, method, metric):
    return C.summary_row(summary, part=part, problem=problem, loss=loss, method=method, metric=metric)


def markdown(summary: list[dict], prof: dict, seeds: int | None) -> str:
    a, b = prof["paper"], prof["losses"]
    parts = []
    header = ["method", "schedule", "relative L2", "relative H1 seminorm", "max error", "final Sobolev loss",
              "seconds"]
    rows = [[LABELS[m], sched] + [C.summary_cell(lookup(summary, "paper", "paper_pde", "sobolev", m, k)) for k in
                                  ("rel_l2", "rel_h1_semi", "max_error", "final_loss")]
            + [C.summary_median(lookup(summary, "paper", "paper_pde", "sobolev", m, "seconds"))]
            for m, sched in a["methods"].items()]
    parts.append(f"#### (a) paper_pde: Sobolev loss, paper network (width {a['width']}, 1 hidden layer), "
                 f"phi = relu3, {a['points']} points; median [min, max] over {seeds or a['seeds']} seeds\n\n"
                 + C.markdown_table(header, rows))
    for metric, title in (("rel_l2", "relative L2 error"), ("rel_h1_semi", "relative H1 seminorm error")):
        cols = [(loss, m) for loss in b["losses"] for m in b["methods"]]
        header = ["problem"] + [f"{loss}, {LABELS[m]}" for loss, m in cols]
        rows = [[p] + [C.summary_cell(lookup(summary, "losses", p, loss, m, metric)) for loss, m in cols]
                for p in b["problems"]]
        parts.append(f"#### (b) {title}: Ritz vs Sobolev vs PINN (FNN {b['depth']} x {b['width']}, relu3, "
                     f"{b['points']} interior / {b['boundary_points']} boundary points; "
                     + ", ".join(f"{LABELS[k]} {v}" for k, v in b["methods"].items()) + "); median [min, max] over "
                     f"{seeds or b['seeds']} seeds\n\n" + C.markdown_table(header, rows))
    return "\n\n".join(parts)


def _curves(out: Path, rows, part, problem, loss, method, kind):
    mine = [r for r in rows if (r["part"], r["problem"], r["loss"], r["method"]) == (part, problem, loss, method)]
    cs = [C.read_curve(out / "histories" / f"{part}_{problem}_{loss}_{method}_seed{r['seed']}_{kind}.csv.gz")
          for r in mine]
    if not cs:
        return None, None
    n = min(len(c["iteration"]) for c in cs)
    col = "loss" if kind == "loss" else "rel_l2"
    return cs[0]["iteration"][:n], np.array([c[col][:n] for c in cs])


def plot(out: Path, rows: list[dict], prof: dict) -> list[Path]:
    paths = []
    a, b = prof["paper"], prof["losses"]
    fig, axes = C.figure(1, 2)
    for m in a["methods"]:
        x, y = _curves(out, rows, "paper", "paper_pde", "sobolev", m, "loss")
        if x is not None:
            C.band_plot(axes[0, 0], x, y, LABELS[m])
        x, y = _curves(out, rows, "paper", "paper_pde", "sobolev", m, "errors")
        if x is not None:
            C.band_plot(axes[0, 1], x, y, LABELS[m])
    axes[0, 0].set_ylabel("Sobolev training loss")
    axes[0, 1].set_ylabel("relative L2 error (test points)")
    for ax in axes[0]:
        ax.set_xlabel("Adam iteration")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("paper_pde: median over seeds, shaded min-max", fontsize=10)
    paths.append(C.save_figure(fig, out / "pde_paper.png"))
    probs = b["problems"]
    ncols = min(3, len(probs))
    nrows = math.ceil(len(probs) / ncols)
    fig, axes = C.figure(nrows, ncols, size=(5.0, 3.6))
    styles = {"adam": "--", "hrta_0.5": "-", "hrta_1.5": ":"}
    for i, p in enumerate(probs):
        ax = axes[i // ncols, i % ncols]
        for j, loss in enumerate(b["losses"]):
            for m in b["methods"]:
                x, y = _curves(out, rows, "losses", p, loss, m, "errors")
                if x is not None:
                    ax.plot(x, np.median(y, axis=0), ls=styles[m], color=f"C{j}", lw=1.2, label=f"{loss}, {LABELS[m]}")
        ax.set_yscale("log")
        ax.set_title(p, fontsize=9)
        ax.set_xlabel("Adam iteration")
        ax.set_ylabel("relative L2 (median)")
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=6)
    for k in range(len(probs), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    paths.append(C.save_figure(fig, out / "pde_losses.png"))
    return paths
