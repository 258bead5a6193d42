"""Run folders: creation, atomic JSON writes, and the summary of what was written."""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from hrta_pde.io.atomic import TMP_GLOB, atomic_write_text
from hrta_pde.errors import SettingError, literal


class RunDirError(SettingError):
    """A run folder that cannot be created or written (the command line names ``--out``)."""


def make_run_dir(out: str | os.PathLike | None, kind: str) -> Path:
    """Create ``out`` (or ``runs/<kind>-<timestamp>``) and check it is writable."""
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{kind}-{stamp}"
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create output folder {literal(repr(str(path)))}: {literal(err.strerror)}; "
                          "choose another folder{out: with |}") from None
    if not os.access(path, os.W_OK):
        raise RunDirError(f"output folder {literal(repr(str(path)))} is not writable: choose another"
                          "{out: with | folder}")
    return path


#: The identity of a run folder: the command, problem and settings that made it (hidden, so the
#: summary does not list it). ``--out`` reuses a non-empty folder only when it matches.
IDENTITY = ".hrta_run.json"


def clean_stale_tmp(path: str | os.PathLike) -> list[Path]:
    """Remove ``.*.tmp`` files left by writes that were killed (atomic writes use such names)."""
    removed = []
    for tmp in Path(path).rglob(TMP_GLOB):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def claim_run_dir(out: str | os.PathLike, identity: dict, *, overwrite: bool = False) -> Path:
    """Create ``out`` for a new run; refuse a non-empty folder made by another run.

    A folder is reused when it is empty, when it holds a run of the same ``identity`` (command,
    problem and settings: the same run again), or with ``overwrite``. Otherwise its files (a
    user's ``model.pt``, another run's checkpoint) would be silently replaced.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirError("{out:=}" f"{literal(repr(str(path)))} is a file, not a folder: choose another "
                          "{out:|folder}")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        mine = _read_identity(path)
        if mine != _clean(identity):
            why = ("it holds a run of other settings or another problem" if mine is not None
                   else "it is not a run folder of hrta-pde")
            raise RunDirError("{out:=}" f"{literal(repr(str(path)))} is not empty and {why}: choose a new "
                              "folder, add {overwrite:|overwrite=True} to replace its files, or continue an "
                              "interrupted run with {resume:|resume}")
    path = make_run_dir(path, identity.get("command", "run"))
    clean_stale_tmp(path)
    write_json(path / IDENTITY, identity)
    return path


def _read_identity(path: Path):
    try:
        return json.loads((path / IDENTITY).read_text())
    except (OSError, ValueError):
        return None


def read_json(path: str | os.PathLike, what: str = "file"):
    """``json.loads`` of a file; a one-line ``RunDirError`` naming the file if it is damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunDirError(literal(f"{path} is damaged: not valid JSON ({err.msg} at line {err.lineno}, column "
                                  f"{err.colno}); restore or delete the {what}")) from None
    except UnicodeDecodeError:
        raise RunDirError(literal(f"{path} is damaged: not text; restore or delete the {what}")) from None


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
    return atomic_write_text(path, json.dumps(_clean(data), indent=2) + "\n")


def summary(run_dir: Path) -> str:
    """A listing of the files of a run folder, for the end of a command."""
    lines = [f"wrote {run_dir}/"]
    for p in sorted(run_dir.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            lines.append(f"  {p.name:<28} {p.stat().st_size:>10,d} bytes")
    return "\n".join(lines)
