"""Shared pieces of the validation experiments: worker pool, statistics, tables, figures, I/O.

Everything an experiment writes goes through these helpers, so that ``report.py`` can read any
result folder back: ``manifest.json`` (the command, profile, settings, machine, time), CSV
tables, Markdown tables and PNG figures.
"""
from __future__ import annotations

import csv
import datetime as _dt
import gzip
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from hrta_pde.io.atomic import atomic_write, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "validation" / "results"


# --------------------------------------------------------------------------- processes
def init_worker() -> None:
    """Run in every worker process (and in the main process when it does the work itself):
    one BLAS/intra-op thread, because the machine's cores are shared by the workers."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_tasks(fn: Callable, tasks: Sequence, workers: int, *, on_result: Callable | None = None,
              log=print) -> list:
    """``[fn(t) for t in tasks]``, in ``workers`` processes (spawned) when ``workers > 1``.

    ``tasks`` should be ordered longest first (better load balance). ``on_result(task, result)``
    is called as each result arrives (to write it to disk at once). Results come back in the
    order of ``tasks``.
    """
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    results: list = [None] * len(tasks)
    t0 = time.perf_counter()

    def done(i, res):
        results[i] = res
        if on_result is not None:
            on_result(tasks[i], res)
        n_done = sum(r is not None for r in results)
        log(f"[{n_done}/{len(tasks)}] {task_label(tasks[i])} done ({time.perf_counter() - t0:.0f} s elapsed)")

    if workers == 1 or len(tasks) <= 1:
        init_worker()
        for i, task in enumerate(tasks):
            done(i, fn(task))
        return results
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(min(workers, len(tasks)), initializer=init_worker) as pool:
        for i, res in pool.imap_unordered(_indexed, [(fn, i, t) for i, t in enumerate(tasks)]):
            done(i, res)
    return results


def split_done(tasks: Sequence, done: dict, key: Callable) -> tuple[dict, list]:
    """``(kept, todo)`` for a resumed call: the rows of ``done`` (an earlier call's, by ``key(task)``)
    that belong to ``tasks``, and the tasks that have no such row (to run)."""
    keys = {key(t) for t in tasks}
    kept = {k: v for k, v in done.items() if k in keys}
    return kept, [t for t in tasks if key(t) not in kept]

def _indexed(args):
    fn, i, task = args
    return i, fn(task)


LABEL_KEYS = ("problem", "part", "dim", "width", "depth", "seed", "method", "loss", "schedule")


def task_label(task) -> str:
    if isinstance(task, dict):
        return " ".join(f"{k}={v}" for k, v in task.items() if k in LABEL_KEYS)
    return str(task)


# --------------------------------------------------------------------------- statistics
def finite(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def med_min_max(values: Iterable[float]) -> tuple[float, float, float, int]:
    """``(median, min, max, n)`` of the finite values (nan if there are none)."""
    v = finite(values)
    if not v:
        return math.nan, math.nan, math.nan, 0
    return float(np.median(v)), float(min(v)), float(max(v)), len(v)


def group_summary(rows: list[dict], keys: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """Per group of runs with equal ``keys`` (sorted) and per metric: ``median``, ``min``, ``max`` and
    ``n`` of the finite values (:func:`med_min_max`), with the keys and ``metric`` as columns."""
    out = []
    for k in sorted({tuple(r[c] for c in keys) for r in rows}):
        mine = [r for r in rows if tuple(r[c] for c in keys) == k]
        for metric in metrics:
            med, lo, hi, n = med_min_max(r[metric] for r in mine)
            out.append({**dict(zip(keys, k)), "metric": metric, "n": n, "median": med, "min": lo, "max": hi})
    return out


def same_init_groups(rows: list[dict], keys: Sequence[str]) -> list[dict]:
    """Per group of runs with equal ``keys`` (sorted): ``runs`` and ``same_initial_network`` (one
    ``init_hash``, the hash of the initial parameters, for all of them)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[c] for c in keys), []).append(r["init_hash"])
    return [{**dict(zip(keys, k)), "runs": len(v), "same_initial_network": len(set(v)) == 1}
            for k, v in sorted(groups.items())]

def fmt(x: float, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}e}"


def fmt_cell(values: Iterable[float]) -> str:
    """``median [min, max]`` in scientific notation."""
    med, lo, hi, n = med_min_max(values)
    if n == 0:
        return "n/a"
    return f"{fmt(med)} [{fmt(lo)}, {fmt(hi)}]"



def summary_row(summary: list[dict], **key) -> dict | None:
    """The first row of a summary table whose fields equal ``key``, e.g.
    ``summary_row(summary, problem="disk", metric="rel_l2")``; None if there is none."""
    for s in summary:
        if all(s[k] == v for k, v in key.items()):
            return s
    return None


def summary_cell(s: dict | None) -> str:
    """``median [min, max]`` of a summary row (keys median, min, max, n); n/a for no row or n = 0."""
    if s is None or int(s["n"]) == 0:
        return "n/a"
    return f"{fmt(float(s['median']))} [{fmt(float(s['min']))}, {fmt(float(s['max']))}]"


def summary_median(s: dict | None, digits: int = 1) -> str:
    """The median of a summary row with ``digits`` decimals; n/a as in :func:`summary_cell`."""
    return "n/a" if s is None or int(s["n"]) == 0 else f"{float(s['median']):.{digits}f}"

# --------------------------------------------------------------------------- tables
def write_csv(path: Path, rows: list[dict], columns: Sequence[str] | None = None) -> Path:
    columns = list(columns or (rows[0].keys() if rows else []))
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: _csv_value(r.get(k)) for k in columns})
    return atomic_write(path, write)


def _csv_value(v):
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return "" if v is None else v


def write_run_tables(out: Path, rows: list[dict], run_columns: Sequence[str], *, same_keys: Sequence[str],
                     summary_keys: Sequence[str], metrics: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """Write ``runs.csv`` (the ``rows``), ``same_init.csv`` (:func:`same_init_groups` by ``same_keys``)
    and ``summary.csv`` (:func:`group_summary` by ``summary_keys``) into ``out``; return the last two."""
    write_csv(out / "runs.csv", rows, run_columns)
    same = same_init_groups(rows, same_keys)
    write_csv(out / "same_init.csv", same, [*same_keys, "runs", "same_initial_network"])
    summary = group_summary(rows, summary_keys, metrics)
    write_csv(out / "summary.csv", summary, [*summary_keys, "metric", "n", "median", "min", "max"])
    return same, summary

def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (first column left-aligned, the rest right-aligned)."""
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def write_text(path: Path, text: str) -> Path:
    return atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def write_json(path: Path, data) -> Path:
    from hrta_pde.io.runs import write_json as _write

    return _write(path, data)


def read_json(path: Path):
    with open(path) as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- histories
def write_curve(path: Path, columns: Sequence[str], rows: Iterable[Sequence[float]]) -> Path:
    """A gzip-compressed CSV of numbers (histories are long)."""
    def write(tmp: Path) -> None:
        with gzip.open(tmp, "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow([repr(float(x)) if isinstance(x, float) else x for x in r])
    return atomic_write(path, write)


def read_curve(path: Path) -> dict[str, np.ndarray]:
    with gzip.open(path, "rt", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        data = np.array([[float(x) for x in row] for row in reader], dtype=float)
    if data.size == 0:
        data = data.reshape(0, len(header))
    return {name: data[:, j] for j, name in enumerate(header)}


# --------------------------------------------------------------------------- figures
def figure(nrows: int = 1, ncols: int = 1, size=(6.4, 4.2)):
    """A matplotlib ``Figure`` on the Agg canvas (no pyplot, no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def band_plot(ax, x: np.ndarray, curves: np.ndarray, label: str, color=None, log: bool = True):
    """Median over the rows of ``curves`` (seeds x points) with a shaded min-max band."""
    curves = np.asarray(curves, dtype=float)
    med = np.nanmedian(curves, axis=0)
    lo, hi = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
    (line,) = ax.plot(x, med, lw=1.2, label=f"{label} (median of {curves.shape[0]})", color=color)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    return line


# --------------------------------------------------------------------------- provenance
def command_line() -> str:
    """The command that is running, relative to the repository root, ready to paste."""
    argv = list(sys.argv)
    script = Path(argv[0]).resolve()
    try:
        argv[0] = str(script.relative_to(ROOT))
    except ValueError:
        pass
    return shlex.join([_portable_python(sys.executable), *argv])


def _portable_python(python: str) -> str:
    """``python`` relative to the repository root when it lies inside it (``.venv/bin/python``),
    else plain ``python``: an interpreter elsewhere (``/tmp/venv/bin/python``) is no use to a reader."""
    path = Path(python)
    if not path.is_absolute():
        return python
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return "python"


def portable_command(command: str) -> str:
    """A recorded ``command_line()`` with its interpreter made portable (see ``_portable_python``)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    if not argv or "python" not in Path(argv[0]).name:
        return command
    return shlex.join([_portable_python(argv[0]), *argv[1:]])


def machine_info() -> dict:
    import torch

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": cpu or platform.processor() or "unknown", "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "platform": platform.platform()}


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class Manifest:
    """``manifest.json`` of a result folder: what ran, how, where, when and how long."""

    def __init__(self, out: Path, experiment: str, profile: str, settings: dict):
        self.out = Path(out)
        self.data = {"experiment": experiment, "profile": profile, "command": command_line(),
                     "started": now(), "finished": None, "seconds": None, "settings": settings,
                     "machine": machine_info(), "status": "running"}
        self._t0 = time.perf_counter()
        write_json(self.out / "manifest.json", self.data)

    def finish(self, status: str = "completed", **extra) -> dict:
        self.data.update(finished=now(), seconds=round(time.perf_counter() - self._t0, 1),
                         status=status, **extra)
        write_json(self.out / "manifest.json", self.data)
        return self.data


def out_dir(out: str | None, experiment: str, profile: str) -> Path:
    path = Path(out) if out else RESULTS / f"{experiment}-{profile}"
    path.mkdir(parents=True, exist_ok=True)
    return path
