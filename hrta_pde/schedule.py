"""A training schedule is data: a list of stages ``(s, iterations, lr, optimizer)`` (METHOD.md section 2).

The optimizer of a stage is ``adam`` (the paper's), ``lbfgs`` (``torch.optim.LBFGS`` with a
strong-Wolfe line search, one L-BFGS iteration per stage iteration) or ``engd`` (the energy natural
gradient of :mod:`hrta_pde.engd`: one Gauss-Newton/Newton step in function space per iteration).
``s`` changes at every switch whatever the optimizer.

A stage either runs a fixed number of iterations, or -- with a :class:`PlateauRule` -- ends when
the loss plateaus (and after ``iterations`` at most).

The plateau rule
----------------
Let ``L_1, L_2, ..., L_t`` be the total training losses of the current stage (``L_i`` is the loss
of the parameters that update ``i`` starts from). With window ``W`` and threshold ``tau``::

    A_t = mean(L_{t-W+1}, ..., L_t)          (last window)
    B_t = mean(L_{t-2W+1}, ..., L_{t-W})     (window before)
    plateau at t  <=>  t >= max(2W, min_iterations)  and  B_t - A_t < tau * |B_t|

i.e. the windowed mean loss fell by less than the fraction ``tau`` over the last ``W`` iterations.
The stage then ends after iteration ``t``; it ends after ``iterations`` in any case. Window means
smooth Adam's oscillations; the relative test makes the rule scale-free (for the Ritz energy,
which is negative, it compares with ``|B_t|``).

Example::

    >>> sched = Schedule([Stage(0.5, 3000), Stage(1.0, 13000)], lr=1e-3)
    >>> sched.total_iterations
    16000
    >>> parse_schedule("0.5:<=8000,1:8000").stages[0].plateau is not None
    True
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from hrta_pde.activation import check_s
from hrta_pde.fields import integer_text


#: The optimizers a stage can use.
OPTIMIZERS = ("adam", "lbfgs", "engd")


class ScheduleError(ValueError):
    """A schedule that cannot run; the message names the bad value."""


@dataclass(frozen=True)
class PlateauRule:
    """End a stage when the windowed mean loss stops decreasing (see the module docstring)."""

    window: int = 500
    threshold: float = 0.01
    min_iterations: int = 0

    def __post_init__(self):
        if not isinstance(self.window, int) or self.window <= 0:
            raise ScheduleError(f"plateau window={self.window!r} must be a positive integer")
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
                and self.threshold > 0):
            raise ScheduleError(f"plateau threshold={self.threshold!r} must be a positive number "
                                "(a relative decrease such as 0.01)")
        if not isinstance(self.min_iterations, int) or self.min_iterations < 0:
            raise ScheduleError(f"plateau min_iterations={self.min_iterations!r} must be an integer >= 0")


class PlateauDetector:
    """Incremental evaluation of a :class:`PlateauRule` on one stage's losses.

    ``update(loss)`` feeds ``L_t`` and returns True when the stage should end after it. The state
    (prefix sums of the losses) is plain data: :meth:`state_dict` / :meth:`load_state_dict`.
    """

    def __init__(self, rule: PlateauRule):
        self.rule = rule
        self.prefix = [0.0]  # prefix[t] = L_1 + ... + L_t

    def update(self, loss: float) -> bool:
        self.prefix.append(self.prefix[-1] + float(loss))
        t, w = len(self.prefix) - 1, self.rule.window
        if t < max(2 * w, self.rule.min_iterations):
            return False
        last = (self.prefix[t] - self.prefix[t - w]) / w
        before = (self.prefix[t - w] - self.prefix[t - 2 * w]) / w
        return before - last < self.rule.threshold * abs(before)

    def state_dict(self) -> dict:
        return {"prefix": list(self.prefix)}

    def load_state_dict(self, state: dict) -> None:
        self.prefix = [float(v) for v in state["prefix"]]


@dataclass(frozen=True)
class Stage:
    """One stage: activation ``sigma_s``, at most ``iterations`` steps of ``optimizer``.

    ``lr=None`` takes the schedule's learning rate for Adam, 1 for L-BFGS (its line search scales
    the step) and is unused by ENGD (its step size comes from a line search). With ``plateau`` set,
    the stage may end early; an ENGD stage also ends when no step size lowers the loss.
    """

    s: float
    iterations: int
    lr: float | None = None
    plateau: PlateauRule | None = None
    optimizer: str = "adam"

    def __post_init__(self):
        try:
            check_s(self.s)
        except ValueError as err:
            raise ScheduleError(str(err)) from None
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations <= 0:
            raise ScheduleError(f"stage iterations={self.iterations!r} must be a positive integer")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr)
                                        and self.lr > 0):
            raise ScheduleError(f"stage lr={self.lr!r} must be a positive number")
        if self.optimizer not in OPTIMIZERS:
            raise ScheduleError(f"stage optimizer={self.optimizer!r} is unknown: use one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class Schedule:
    """An ordered list of :class:`Stage` s, a default learning rate, and the Adam-reset option.

    ``reset_optimizer=False`` (the default) keeps Adam's moment estimates across a stage switch,
    so the new stage starts from the same optimizer state; ``True`` clears them (a fresh Adam
    from the parameters reached, as in a literal reading of Algorithm 1).
    """

    stages: tuple[Stage, ...]
    lr: float = 1e-3
    reset_optimizer: bool = False

    def __init__(self, stages, lr: float = 1e-3, reset_optimizer: bool = False):
        stages = tuple(stages)
        if not stages:
            raise ScheduleError("the schedule is empty: give at least one stage, e.g. '1:16000'")
        for st in stages:
            if not isinstance(st, Stage):
                raise ScheduleError(f"schedule entry {st!r} is not a Stage")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ScheduleError(f"lr={lr!r} must be a positive number")
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "lr", float(lr))
        object.__setattr__(self, "reset_optimizer", bool(reset_optimizer))

    @property
    def total_iterations(self) -> int:
        """The most iterations the schedule can take (plateau stages may end earlier)."""
        return sum(st.iterations for st in self.stages)

    def stage_lr(self, index: int) -> float:
        """The stage's learning rate: its own, else 1 for L-BFGS and the schedule's for the others."""
        st = self.stages[index]
        if st.lr is not None:
            return float(st.lr)
        return 1.0 if st.optimizer == "lbfgs" else self.lr

    @property
    def optimizers(self) -> tuple[str, ...]:
        """The optimizers the stages use, each once, in order of first use."""
        return tuple(dict.fromkeys(st.optimizer for st in self.stages))

    def boundaries(self) -> list[int]:
        """Global iterations at which the fixed-length stages 2, 3, ... start."""
        out, total = [], 0
        for st in self.stages[:-1]:
            total += st.iterations
            out.append(total)
        return out

    def to_dict(self) -> dict:
        """Plain data (for TOML/JSON): ``{"lr", "reset_optimizer", "stages": [...]}``."""
        stages = []
        for st in self.stages:
            d = {"s": st.s, "iterations": st.iterations}
            if st.lr is not None:
                d["lr"] = st.lr
            if st.optimizer != "adam":
                d["optimizer"] = st.optimizer
            if st.plateau is not None:
                d["plateau"] = {"window": st.plateau.window, "threshold": st.plateau.threshold,
                                "min_iterations": st.plateau.min_iterations}
            stages.append(d)
        return {"lr": self.lr, "reset_optimizer": self.reset_optimizer, "stages": stages}

    @classmethod
    def from_dict(cls, data: dict) -> "Schedule":
        allowed = {"lr", "reset_optimizer", "stages"}
        unknown = set(data) - allowed
        if unknown:
            raise ScheduleError(f"unknown schedule key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        stages = []
        for i, d in enumerate(data.get("stages", [])):
            if not isinstance(d, dict):
                raise ScheduleError(f"stage {i + 1} is {d!r}: write it as a table with s and iterations")
            extra = set(d) - {"s", "iterations", "lr", "plateau", "optimizer"}
            if extra or "s" not in d or "iterations" not in d:
                raise ScheduleError(f"stage {i + 1} has keys {sorted(d)}: it needs s and iterations, "
                                    "and may have lr, plateau and optimizer")
            plateau = d.get("plateau")
            if plateau is not None:
                bad = set(plateau) - {"window", "threshold", "min_iterations"}
                if bad:
                    raise ScheduleError(f"unknown plateau key(s) {sorted(bad)}; allowed: "
                                        "window, threshold, min_iterations")
                plateau = PlateauRule(**plateau)
            stages.append(Stage(d["s"], d["iterations"], d.get("lr"), plateau, d.get("optimizer", "adam")))
        return cls(stages, lr=data.get("lr", 1e-3), reset_optimizer=data.get("reset_optimizer", False))


def parse_schedule(text: str, lr: float = 1e-3, plateau: PlateauRule | None = None,
                   reset_optimizer: bool = False) -> Schedule:
    """Parse the CLI form ``"S:N[:LR][@OPTIMIZER],..."``.

    ``S:N`` is a fixed stage of ``N`` iterations with ``s = S``; ``S:<=N`` is a plateau-triggered
    stage of at most ``N`` iterations (rule ``plateau``, default :class:`PlateauRule()`); an
    optional third field sets the stage's learning rate; ``@adam`` (the default), ``@lbfgs`` or
    ``@engd`` chooses the optimizer. Examples: ``"0.5:3000,1:13000"``, ``"1:500,1:100@engd"``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("the schedule is empty: give stages such as '0.5:3000,1:13000'")
    stages = []
    for item in text.split(","):
        body, at, opt = item.partition("@")
        opt = opt.strip().lower() if at else "adam"
        if at and opt not in OPTIMIZERS:
            raise ScheduleError(f"stage {item.strip()!r}: optimizer {opt!r} is unknown: write "
                                f"@{', @'.join(OPTIMIZERS)}")
        parts = [p.strip() for p in body.strip().split(":")]
        if len(parts) not in (2, 3) or not all(parts):
            raise ScheduleError(f"cannot read stage {item.strip()!r}: write S:ITERATIONS[:LR][@OPTIMIZER], "
                                "e.g. 0.5:3000, 0.5:<=8000 (ends at a plateau) or 1:100@engd")
        try:
            s = float(parts[0])
        except ValueError:
            raise ScheduleError(f"stage {item.strip()!r}: s={parts[0]!r} is not a number") from None
        count, rule = parts[1], None
        if count.startswith("<="):
            count, rule = count[2:].strip(), plateau or PlateauRule()
        n = integer_text(count)  # 1e4 as on the command line (--points 1e4)
        if n is None:
            raise ScheduleError(f"stage {item.strip()!r}: iterations={count!r} is not an integer")
        stage_lr = None
        if len(parts) == 3:
            try:
                stage_lr = float(parts[2])
            except ValueError:
                raise ScheduleError(f"stage {item.strip()!r}: lr={parts[2]!r} is not a number") from None
        stages.append(Stage(s, n, stage_lr, rule, opt))
    return Schedule(stages, lr=lr, reset_optimizer=reset_optimizer)


__all__ = ["OPTIMIZERS", "PlateauRule", "PlateauDetector", "Stage", "Schedule", "ScheduleError",
           "parse_schedule"]
