"""What a solve leaves in its run folder, and the table printed at its end.

A run folder holds ``problem.toml`` (the problem and the settings as run: it reproduces the run),
``checkpoint.pt`` (written while training, see :func:`hrta_pde.poisson.solve.solve`),
``history.csv``, ``errors.csv``, ``metrics.json``, ``model.pt`` and the plots ``loss.png``,
``solution.png`` and ``errors.png``. The library's :func:`solve` writes none of them but the
checkpoint; the caller (the command line, ``compare``) writes them with these functions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_problem_file(run_dir, problem, config) -> Path:
    """``RUN_DIR/problem.toml``: the problem with a ``[solver]`` table of ``config`` (as run)."""
    from hrta_pde.io.atomic import atomic_write_text
    from hrta_pde.poisson.problem_toml import problem_to_toml

    return atomic_write_text(Path(run_dir) / "problem.toml", problem_to_toml(problem, solver=config.to_dict()))


def write_run(res, problem, run_dir) -> Path:
    """Write the results of the :class:`~hrta_pde.poisson.solve.SolveResult` ``res`` into
    ``run_dir``: history, errors, metrics, model, plots."""
    from hrta_pde.io.runs import write_json
    from hrta_pde.poisson.plotting import plot_error_history, plot_loss_histories, plot_solution

    run_dir = Path(run_dir)
    res.history.to_csv(run_dir / "history.csv")
    res.history.evaluations_to_csv(run_dir / "errors.csv")
    config = res.config.to_dict()
    write_json(run_dir / "metrics.json", {"problem": problem.name, "config": config, "metrics": res.metrics})
    torch.save({"state_dict": res.net.state_dict(), "config": config}, run_dir / "model.pt")
    loss = res.config.loss
    plot_loss_histories({loss: res.history}, run_dir / "loss.png", title=f"{problem.name}: {loss} loss", terms=True)
    plot_solution(res.net, problem, run_dir / "solution.png",
                  title=f"{problem.name}: {loss} loss, {res.metrics['iterations']} iterations")
    if res.history.evaluations:
        ev = res.history.evaluations
        it = np.array([e["iteration"] for e in ev])
        plot_error_history({"relative L2": (it, np.array([e["rel_l2"] for e in ev])),
                            "relative H1 seminorm": (it, np.array([e["rel_h1_semi"] for e in ev]))},
                           run_dir / "errors.png", ylabel="relative error",
                           title=f"{problem.name}: error against iteration ({loss})")
    return run_dir


def format_metrics(metrics: dict) -> str:
    """The metrics of a solve as a two-column table."""
    keys = [("rel_l2", "relative L2"), ("rel_h1_semi", "relative H1 seminorm"), ("max_error", "max error"),
            ("l2", "L2 error"), ("ritz_energy", "Ritz energy E(u)"), ("ritz_energy_exact", "exact energy E(u*)"),
            ("final_loss", "final training loss"), ("iterations", "iterations"), ("seconds", "time [s]")]
    lines = [f"{'metric':<24} {'value':>14}"]
    for k, label in keys:
        if k in metrics:
            v = metrics[k]
            lines.append(f"{label:<24} {v:>14d}" if isinstance(v, int) else f"{label:<24} {v:>14.4e}")
    return "\n".join(lines)
