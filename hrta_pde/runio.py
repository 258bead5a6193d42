"""Run folders: creation, atomic JSON writes, and the summary of what was written."""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path


class RunDirError(ValueError):
    """A run folder that cannot be created or written."""


def make_run_dir(out: str | os.PathLike | None, kind: str) -> Path:
    """Create ``out`` (or ``runs/<kind>-<timestamp>``) and check it is writable."""
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{kind}-{stamp}"
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create output folder {str(path)!r}: {err.strerror}; "
                          "choose another folder with --out") from None
    if not os.access(path, os.W_OK):
        raise RunDirError(f"output folder {str(path)!r} is not writable: choose another with --out")
    return path


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item())
    return value


def write_json(path: str | os.PathLike, data) -> Path:
    """Write JSON atomically (temporary file, then rename); non-finite floats become strings."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        json.dump(_clean(data), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def summary(run_dir: Path) -> str:
    """A listing of the files of a run folder, for the end of a command."""
    lines = [f"wrote {run_dir}/"]
    for p in sorted(run_dir.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            lines.append(f"  {p.name:<28} {p.stat().st_size:>10,d} bytes")
    return "\n".join(lines)
