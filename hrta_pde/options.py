"""Typed options shared by ``solve`` and ``approx``: validated once, where they are made.

A configuration is a frozen dataclass made of small option groups, each frozen and checked when it
is constructed (so an options object that exists is valid):

* :class:`NetworkOptions`: width, depth, the target activation ``phi``, the network kind and init;
* :class:`SamplingOptions`: how many training / boundary / test points, and the sampler;
* :class:`TrainingOptions`: learning rate, plateau rule, optimizer reset, record and checkpoint
  intervals; :meth:`TrainingOptions.schedule` turns stage text into a :class:`Schedule`;
* :class:`RunOptions`: seed, floating point type and device.

The flat form, one key per value, is what a problem file's ``[solver]`` table, the command line and
a run folder's JSON hold: :meth:`Config.from_dict` reads it (checking every key and value once),
:meth:`Config.to_dict` writes it and :meth:`Config.keys` lists its keys, the one list of settings.

Example::

    net = NetworkOptions(width=32, depth=2, phi="relu3")
    TrainingOptions(lr=1e-2).schedule("0.5:300,1:700").total_iterations   # 1000
    NetworkOptions(width=0)        # ValueError: width=0 must be a positive integer

Errors that name a setting are :class:`SettingError`: the library writes ``loss=ritz``, the
command line the flag ``--loss ritz``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from hrta_pde._backend import resolve_dtype
from hrta_pde.activation import get_phi
from hrta_pde.errors import SettingError
from hrta_pde.fields import check_fields, field_types
from hrta_pde.limits import MAX_DEPTH
from hrta_pde.schedule import PlateauRule, Schedule, parse_schedule

#: Largest seed: torch takes 64-bit seeds, and derived streams add to the seed (test points, seeds
#: of a comparison).
MAX_SEED = 2**62


def check_positive(obj, names) -> None:
    """Every field of ``names`` of ``obj`` is a positive integer (the types are checked already)."""
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ValueError(f"{name}={value!r} must be a positive integer")


def check_choice(name: str, value, choices) -> None:
    """``value`` is one of ``choices``; the message lists them."""
    if value not in choices:
        names = [repr(c) for c in choices]
        listed = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise ValueError(f"{name}={value!r} is unknown: use {listed}")


@dataclass(frozen=True)
class NetworkOptions:
    """The network: ``width`` neurons in each of ``depth`` hidden layers with activation ``phi``.

    ``net``: ``"fnn"`` (``dde.nn.FNN``) or ``"paper"`` (``HomotopyNet``: N(0, 1) init, NTK scaling);
    ``init`` of the FNN: ``"domain"`` (data-dependent), ``"glorot"`` (DeepXDE's) or ``"auto"``
    (domain for tanh and sin, glorot for ReLU^k).
    """

    width: int = 64
    depth: int = 1
    phi: str = "tanh"
    net: str = "fnn"
    init: str = "auto"

    def __post_init__(self):
        check_fields(self)
        check_positive(self, ("width", "depth"))
        if self.depth > MAX_DEPTH:
            raise SettingError(f"depth={self.depth} is above the limit of {MAX_DEPTH} hidden layers: "
                               "lower {depth}")
        check_choice("net", self.net, ("fnn", "paper"))
        check_choice("init", self.init, ("auto", "domain", "glorot"))
        get_phi(self.phi)

    @property
    def hidden(self) -> list[int]:
        return [self.width] * self.depth


@dataclass(frozen=True)
class SamplingOptions:
    """Training points (``points`` inside, ``boundary_points`` on the boundary, drawn by
    ``sampler``) and ``test_points`` independent random points for the errors. ``points=None``
    and ``sampler="auto"``: the solver decides by the problem and loss (see
    :func:`hrta_pde.poisson.solve.decide_sampling`)."""

    points: int | None = 1000
    boundary_points: int = 200
    sampler: str = "sobol"  # low-discrepancy points: the Ritz energy needs an accurate quadrature
    test_points: int = 10000

    def __post_init__(self):
        check_fields(self)
        check_positive(self, [n for n in ("points", "boundary_points", "test_points") if getattr(self, n) is not None])
        check_choice("sampler", self.sampler, ("auto", "random", "uniform", "sobol", "gauss", "grid"))


@dataclass(frozen=True)
class TrainingOptions:
    """Adam's learning rate ``lr``, the plateau rule of ``S:<=N`` stages, whether each stage starts
    with a fresh optimizer, and the intervals of history rows and checkpoints (iterations)."""

    lr: float = 1e-3
    reset_optimizer: bool = False
    plateau_window: int = 500
    plateau_threshold: float = 0.01
    record_every: int = 10
    checkpoint_every: int = 1000

    def __post_init__(self):
        check_fields(self)
        check_positive(self, ("plateau_window", "record_every", "checkpoint_every"))
        self.plateau_rule()

    def plateau_rule(self) -> PlateauRule:
        return PlateauRule(self.plateau_window, self.plateau_threshold)

    def schedule(self, text: str) -> Schedule:
        """The :class:`Schedule` of stage text such as ``"0.5:3000,1:13000"`` with these options."""
        return parse_schedule(text, self.lr, self.plateau_rule(), self.reset_optimizer)


@dataclass(frozen=True)
class RunOptions:
    """``seed`` of every random draw, floating point type ``dtype`` and ``device`` (``"auto"``:
    CUDA if visible)."""

    seed: int = 0
    dtype: str = "float64"
    device: str = "auto"

    def __post_init__(self):
        check_fields(self)
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed={self.seed} must be an integer from 0 to 2^62 (torch seeds are "
                             "64-bit and derived seeds add to it)")
        resolve_dtype(self.dtype)

    @property
    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype)


class Config:
    """A frozen dataclass of option groups and plain values, with a flat dictionary form.

    A field whose type is a dataclass is a group: its fields are keys of the flat form. ``OMIT``
    lists group fields that the configuration fixes (they keep the group default's value and are
    not keys).
    """

    OMIT: tuple[str, ...] = ()
    #: What a key is called in the message about an unknown one.
    KEY_NAME = "key"

    @classmethod
    def _groups(cls) -> dict[str, type]:
        return {name: hint for name, hint in field_types(cls).items() if dataclasses.is_dataclass(hint)}

    @classmethod
    def _layout(cls) -> list[tuple[str | None, str]]:
        """``(group or None, key)`` for every key, in order."""
        groups, out = cls._groups(), []
        for f in dataclasses.fields(cls):
            if f.name in groups:
                out += [(f.name, g.name) for g in dataclasses.fields(groups[f.name]) if g.name not in cls.OMIT]
            else:
                out.append((None, f.name))
        return out

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The keys of the flat form (a ``[solver]`` table, a run folder's ``config``)."""
        return tuple(key for _, key in cls._layout())

    @classmethod
    def from_dict(cls, data: dict, base=None):
        """The configuration of the flat ``data`` (missing keys: those of ``base``, else the
        defaults); every key and value is checked here."""
        layout = cls._layout()
        unknown = set(data) - {key for _, key in layout}
        if unknown:
            raise ValueError(f"unknown {cls.KEY_NAME}(s) {sorted(unknown)}; allowed: {', '.join(sorted(cls.keys()))}")
        flat = {**(base.to_dict() if base is not None else {}), **data}
        defaults = {f.name: f.default for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING}
        grouped: dict[str, dict] = {}
        top = {}
        for group, key in layout:
            if key in flat:
                (grouped.setdefault(group, {}) if group else top)[key] = flat[key]
        for group, values in grouped.items():
            top[group] = dataclasses.replace(defaults[group], **values) if group in defaults else values
        return cls(**top)

    def to_dict(self) -> dict:
        """The flat form: ``{key: value}`` for every key of :meth:`keys`."""
        return {key: getattr(getattr(self, group), key) if group else getattr(self, key)
                for group, key in self._layout()}

    def replace(self, **flat):
        """A copy with some flat keys changed (``cfg.replace(width=32, loss="ritz")``)."""
        return type(self).from_dict(flat, base=self)
