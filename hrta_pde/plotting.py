"""Figures with matplotlib (imported here only, on the Agg backend: no display needed)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hrta_pde.history import History


def _figure(figsize=(7.0, 4.5)):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _save(fig, path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    return path


def plot_loss_histories(histories: dict[str, History], path, *, title: str = "Training loss",
                        terms: bool = False, show_s: bool = True) -> Path:
    """Loss against iteration for each run (log scale; symlog if a loss is negative).

    Stage switches are marked with dotted vertical lines in the run's colour; with ``show_s``,
    ``s`` of each run is drawn as a step line on a second axis. With ``terms``, each loss term
    is drawn too (dashed).
    """
    fig, ax = _figure()
    negative = False
    colors = {}
    for k, (label, hist) in enumerate(histories.items()):
        if not hist.rows:
            continue
        it = np.asarray(hist.column("iteration"))
        loss = np.asarray(hist.column("loss"), dtype=float)
        negative |= bool(np.nanmin(loss) <= 0)
        (line,) = ax.plot(it, loss, lw=1.2, label=label)
        colors[label] = line.get_color()
        if terms and len(hist.term_names) > 1:
            for name in hist.term_names:
                ax.plot(it, np.asarray(hist.column(name), dtype=float), lw=0.8, ls="--",
                        color=line.get_color(), alpha=0.6, label=f"{label}: {name}")
        for sw in hist.switches:
            ax.axvline(sw, color=line.get_color(), ls=":", lw=1.0)
    if negative:
        ax.set_yscale("symlog", linthresh=1e-6)
    else:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss" + (" (symlog)" if negative else " (log scale)"))
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if show_s:
        ax2 = ax.twinx()
        for label, hist in histories.items():
            if hist.rows:
                ax2.step(hist.column("iteration"), hist.column("s"), where="post",
                         color=colors.get(label), alpha=0.35, lw=1.0)
        ax2.set_ylabel("homotopy parameter s (thin lines)")
        ax2.set_ylim(-0.05, 2.05)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def plot_error_history(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, *,
                       ylabel: str = "relative L2 error", title: str = "Error against iteration") -> Path:
    """Error curves ``{label: (iterations, errors)}`` on a log scale."""
    fig, ax = _figure()
    for label, (it, err) in curves.items():
        ax.plot(it, err, marker=".", lw=1.2, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_1d(x: np.ndarray, curves: dict[str, np.ndarray], path, *, title: str = "Solution",
            error: np.ndarray | None = None) -> Path:
    """Lines over a 1-D grid (prediction, exact...), and the pointwise error on a second panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 6.0 if error is not None else 4.0), layout="constrained")
    axes = fig.subplots(2 if error is not None else 1, 1, squeeze=False)[:, 0]
    order = np.argsort(x)
    for label, y in curves.items():
        axes[0].plot(x[order], y[order], lw=1.4, label=label)
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("u")
    axes[0].set_title(title)
    axes[0].legend(fontsize=8)
    axes[0].grid(True, alpha=0.3)
    if error is not None:
        axes[1].plot(x[order], error[order], lw=1.0, color="C3")
        axes[1].set_xlabel("x")
        axes[1].set_ylabel("prediction - exact")
        axes[1].grid(True, alpha=0.3)
    return _save(fig, path)
