"""Training history: one row per recorded iteration, stage switches, and periodic evaluations.

Columns of the main table: ``iteration`` (global, 1-based: the loss of the parameters that
update ``iteration`` starts from), ``stage`` (1-based), ``s``, ``lr`` (the step size: Adam's learning
rate, the L-BFGS line-search step, the ENGD step ``eta``), ``loss`` (the total), one column per loss
term, ``optimizer`` and ``time`` (seconds of training so far). Saved as CSV.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from hrta_pde.io.atomic import atomic_write

BASE_COLUMNS = ("iteration", "stage", "s", "lr", "loss")


class History:
    """Rows of ``(iteration, stage, s, lr, loss, *terms, optimizer, time)``, switches and evaluations."""

    def __init__(self, term_names: tuple[str, ...] = ()):
        self.term_names = tuple(term_names)
        self.rows: list[tuple] = []
        self.switches: list[int] = []  # global iterations at which a new stage began (its first)
        self.evaluations: list[dict] = []  # {"iteration": i, metric: value, ...}

    @property
    def columns(self) -> tuple[str, ...]:
        return BASE_COLUMNS + self.term_names + ("optimizer", "time")

    def append(self, iteration: int, stage: int, s: float, lr: float, loss: float,
               terms: list[float], time: float, optimizer: str = "adam") -> None:
        self.rows.append((iteration, stage, s, lr, loss, *terms, optimizer, time))

    def column(self, name: str) -> list:
        j = self.columns.index(name)
        return [row[j] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def final_finite_loss(self) -> float:
        for row in reversed(self.rows):
            if math.isfinite(row[4]):
                return row[4]
        return math.nan

    # -- persistence -------------------------------------------------------------------------
    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the table atomically, one row per recorded iteration (``columns`` as header).

        Only the table: :meth:`read_csv` recovers the switches from the ``stage`` column, and
        :meth:`evaluations_to_csv` writes the evaluations to a file of their own.
        """
        path = Path(path)
        _write_csv(path, self.columns, self.rows)
        return path

    def evaluations_to_csv(self, path: str | os.PathLike) -> Path | None:
        """Write the evaluations (one row each, the keys of the first as header) atomically;
        nothing (``None``) when there are none."""
        if not self.evaluations:
            return None
        keys = list(self.evaluations[0])
        _write_csv(Path(path), keys, [[e.get(k, "") for k in keys] for e in self.evaluations])
        return Path(path)

    def state_dict(self) -> dict:
        return {"term_names": list(self.term_names), "rows": [list(r) for r in self.rows],
                "switches": list(self.switches), "evaluations": [dict(e) for e in self.evaluations]}

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        h = cls(tuple(state["term_names"]))
        h.rows = [tuple(r) for r in state["rows"]]
        h.switches = list(state["switches"])
        h.evaluations = [dict(e) for e in state["evaluations"]]
        return h

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> "History":
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            if tuple(header[:5]) != BASE_COLUMNS or header[-1] != "time":
                raise ValueError(f"{path} is not a hrta_pde history CSV (header {header[:5]}...)")
            named = header[-2] == "optimizer"
            h = cls(tuple(header[5:-2] if named else header[5:-1]))
            for row in reader:
                optimizer = row[-2] if named else "adam"
                numbers = row[2:-2] if named else row[2:-1]
                h.rows.append((int(row[0]), int(row[1]), *map(float, numbers), optimizer, float(row[-1])))
        stages = h.column("stage")
        h.switches = [h.rows[i][0] for i in range(1, len(stages)) if stages[i] != stages[i - 1]]
        return h


def _write_csv(path: Path, header, rows) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
    atomic_write(path, write)
