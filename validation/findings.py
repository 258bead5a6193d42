"""The report's shared vocabulary: numbers read back from CSV, seed-by-seed counts, medians, the
verdict words, figure links and the provenance paragraph of a section (``validation/report.py``)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from validation import common as C

HRTA_METHODS = {"hrta_0.5": "HRTA 0.5->1", "hrta_1.5": "HRTA 1->1.5", "hrta_plateau": "HRTA 0.5->1 (plateau)"}


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _b(x) -> bool:
    return str(x).strip().lower() in ("true", "1", "yes")


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()



def _provenance(m: dict) -> str:
    s = m.get("seconds")
    took = f"{s / 60:.1f} min" if isinstance(s, (int, float)) else "unfinished"
    mach = m.get("machine", {})
    return (f"Command (from the repository root):\n\n```bash\n{C.portable_command(m['command'])}\n```\n\n"
            f"Started {m['started']}, finished {m.get('finished') or 'n/a'} ({took}); status {m['status']}; "
            f"machine: {mach.get('cores')} cores, {mach.get('cpu_model')}, torch {mach.get('torch')}.")


def _figs(folder: Path, names, out_dir: Path) -> str:
    return "\n\n".join(f"![{n}]({_rel(folder / n, out_dir)})" for n in names if (folder / n).exists())


def _verdict(k: int, n: int, ratio: float | None = None) -> str:
    """A plain word for "lower than the baseline in k of n comparisons": helps (at least 2/3), does
    not help (at most 1/3), mixed (between). ``ratio``: median HRTA / baseline; a win by less than
    10% in the median is only "helps slightly"."""
    if n == 0:
        return "not measured"
    if 3 * k >= 2 * n:
        return "helps slightly" if ratio is not None and math.isfinite(ratio) and ratio > 0.9 else "helps"
    if 3 * k <= n:
        return "does not help"
    return "mixed"


def _count(pairs) -> tuple[int, int]:
    """``(k, n)``: k comparisons where the first value is strictly lower, n comparable ones."""
    pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
    return sum(a < b for a, b in pairs), len(pairs)



def _median(v) -> float:
    v = sorted(float(x) for x in v)
    if not v:
        return math.nan
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _across(x, y, at: float) -> tuple[float, float] | None:
    """``(y after / y before, x gap)`` between the last record with ``x < at`` and the first with
    ``x >= at`` (a value across a stage switch); None if either side is missing or y before is 0."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    before, after = np.flatnonzero(x < at), np.flatnonzero(x >= at)
    if not before.size or not after.size or y[before[-1]] == 0:
        return None
    return float(y[after[0]] / y[before[-1]]), float(x[after[0]] - x[before[-1]])
