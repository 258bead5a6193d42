"""Compare losses on one Poisson problem over seeds: each loss trained from the same start.

Example::

    report = compare(builtin_problem("poisson_1d"), ["sobolev", "l2"], seeds=2, cfg=SolveConfig())
    report["summary"]["sobolev"]["rel_l2"]["median"]
"""
from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

import numpy as np

from hrta_pde.poisson.solve import Setup, SolveConfig, decide_sampling, plan_solve, solve
from hrta_pde.poisson.settings import saved_config

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
    Every loss trains on the same points: with ``sampler="auto"`` the first loss decides them
    (``ritz`` first: Gauss points for all, where the domain has a rule).
    """
    from hrta_pde.io.runs import clean_stale_tmp, make_run_dir, write_json
    from hrta_pde.errors import SettingError
    from hrta_pde.signals import catch_interrupts

    if seeds <= 0:
        raise ValueError(f"seeds={seeds} must be a positive integer")
    if losses:  # one set of points for every loss: the first loss decides sampler="auto"
        cfg = decide_sampling(problem, cfg.replace(loss=losses[0]))
    plans = [plan_solve(problem, cfg.replace(loss=name)) for name in losses]  # checked before any run
    names = [plan.config.loss for plan in plans]
    plans = dict(zip(names, plans))
    if not names:
        raise SettingError("no losses given: use e.g. {losses:=}ritz,sobolev,pinn")
    run_dir = make_run_dir(out, "compare") if out is not None else None
    done: dict[str, dict] = {}
    if run_dir is not None:
        from hrta_pde.poisson.runfolder import write_problem_file

        clean_stale_tmp(run_dir)
        if resume:
            done = {d["key"]: d for d in _read_compare_state(run_dir)["done"]}
        write_problem_file(run_dir, problem, cfg)
    state = {"problem": problem.spec, "config": cfg.to_dict(), "losses": names, "seeds": seeds,
             "reference": reference_choice, "done": list(done.values())}

    def save_state():
        if run_dir is not None:
            write_json(run_dir / COMPARE_STATE, state)

    rows, curves = [], {name: [] for name in names}
    with catch_interrupts() as interrupted:
        for k in range(seeds):
            base = cfg.replace(seed=cfg.run.seed + k)
            setup = None
            for name in names:
                key = f"{name}_seed{base.run.seed}"
                if key not in done:
                    if interrupted:  # received between two runs
                        return _compare_stopped(state, save_state, rows, run_dir, key)
                    setup = setup or Setup(problem, base)
                    plan = dataclasses.replace(plans[name], config=plans[name].config.replace(seed=base.run.seed))
                    entry = _compare_one(problem, plan, setup, run_dir, resume=resume, progress=progress,
                                         log=log, reference=reference)
                    if entry is None:
                        return _compare_stopped(state, save_state, rows, run_dir, key)
                    done[key] = entry
                    state["done"].append(entry)
                    save_state()
                rows.append(done[key]["row"])
                curves[name].append(tuple(done[key]["curve"]))
    report = {"problem": problem.name, "seeds": seeds, "rows": rows, "summary": _summary(names, rows),
              "status": "completed"}
    log(format_compare(report))
    if run_dir is not None:
        _write_comparison(run_dir, problem, report, curves)
    return report


def _summary(names: list[str], rows: list[dict]) -> dict:
    """Per loss and metric the median, min and max over the seeds."""
    summary = {}
    for name in names:
        mine = [r for r in rows if r["loss"] == name]
        summary[name] = {m: {"median": statistics.median(r[m] for r in mine), "min": min(r[m] for r in mine),
                             "max": max(r[m] for r in mine)}
                         for m in ("rel_l2", "rel_h1_semi", "max_error", "seconds")}
    return summary


def _write_comparison(run_dir: Path, problem, report: dict, curves: dict) -> None:
    """``compare.csv``, ``summary.json`` and ``errors.png`` (median error curve per loss)."""
    from hrta_pde.history import _write_csv
    from hrta_pde.io.runs import write_json
    from hrta_pde.poisson.plotting import plot_error_history

    rows = report["rows"]
    _write_csv(run_dir / "compare.csv", list(rows[0]), [list(r.values()) for r in rows])
    write_json(run_dir / "summary.json", report)
    med = {}
    for name, cs in curves.items():
        it = np.asarray(cs[0][0])
        errs = np.array([c[1] for c in cs if len(c[1]) == len(it)])
        med[f"{name} (median of {len(errs)})"] = (it, np.median(errs, axis=0))
    plot_error_history(med, run_dir / "errors.png", title=f"{problem.name}: relative L2 error against iteration")
    report["run_dir"] = str(run_dir)


def _compare_one(problem, plan, setup: Setup, run_dir, *, resume, progress, log, reference) -> dict | None:
    """Train one loss of one seed of a comparison (in its run folder under ``runs/``, resuming
    its checkpoint if asked); its row and error curve, or None if a signal stopped it."""
    from hrta_pde.io.checkpoint import load_checkpoint
    from hrta_pde.io.runs import make_run_dir
    from hrta_pde.poisson.runfolder import write_problem_file, write_run

    c = plan.config
    name, seed = c.loss, c.run.seed
    key = f"{name}_seed{seed}"
    sub = make_run_dir(run_dir / "runs" / key, "solve") if run_dir is not None else None
    ck = load_checkpoint(sub) if resume and sub is not None and (sub / "checkpoint.pt").is_file() else None
    if sub is not None:
        write_problem_file(sub, problem, c)
    res = solve(problem, plan, setup=setup, progress=progress, reference=reference, checkpoint_dir=sub, resume=ck)
    if res.metrics["status"] != "completed" and not (res.metrics["status"] == "interrupted" and sub is not None):
        log(f"hrta-pde: {res.metrics['message']}")  # a stopped comparison prints its own resume line
    if sub is not None:
        write_run(res, problem, sub)
    if res.metrics["status"] == "interrupted":
        return None
    row = {"loss": name, "seed": seed, **{m: res.metrics.get(m) for m in
           ("rel_l2", "rel_h1_semi", "max_error", "seconds", "iterations", "status")}}
    if run_dir is not None:
        res.history.to_csv(run_dir / f"history_{name}_seed{seed}.csv")
        res.history.evaluations_to_csv(run_dir / f"errors_{name}_seed{seed}.csv")
    log(f"seed {seed} {name:<8} rel L2 {row['rel_l2']:.3e}  rel H1 {row['rel_h1_semi']:.3e}  "
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
    cfg = saved_config(state["config"])
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
