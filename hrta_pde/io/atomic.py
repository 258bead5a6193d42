"""One atomic write for every file the package produces.

A file is written under a hidden temporary name in its own folder, then renamed over the target
(``os.replace`` is atomic on POSIX): a reader, or a run killed mid-write, sees the old file or the
new one, never half of one. A temporary name left by a killed process matches :data:`TMP_GLOB`.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

#: The pattern of the temporary names (hidden, ``.tmp`` before the suffix the writer may need).
TMP_GLOB = ".*.tmp*"


def temporary_name(path: Path) -> Path:
    """A hidden name beside ``path`` that keeps its suffix (writers that pick a format by suffix)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *,
                 fsync: bool = False) -> Path:
    """Run ``write(tmp)`` on a temporary name beside ``path``, then rename it to ``path``.

    With ``fsync`` the data reach the disk before the rename (checkpoints). On any failure the
    temporary file is removed and ``path`` is untouched; the exception propagates.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, newline: str | None = None) -> Path:
    """Write ``text`` atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline=newline) as fh:
            fh.write(text)
    return atomic_write(path, write)
