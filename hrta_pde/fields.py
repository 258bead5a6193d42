"""Type checks of configuration values against the annotations of a config dataclass.

The dataclass annotations are the one table of types (``width: int``, ``beta: float | None``,
``reset_optimizer: bool``): :func:`check_fields` checks every field against it, so a new field
is checked without another line. TOML and the command line both arrive here, and Python's
``bool("no") is True``, so booleans accept only ``True``/``False``; integers accept no booleans
and no floats (``seed = 1e20`` is a float in TOML); floats accept integers (``lr = 1``).
"""
from __future__ import annotations

import dataclasses
import types
import typing

def integer_text(text: str, float_bound: float = float("inf")) -> int | None:
    """The integer ``text`` writes, also as a float literal with an integral value of at most
    ``float_bound`` in size (``1e4``); None for anything else (``1.5``, ``nan``, ``abc``). The
    command line's numbers and a schedule's stage iterations are read with it."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and abs(value) <= float_bound else None  # nan, inf: not integers


_KIND = {bool: "true or false (a TOML boolean, without quotes)", int: "an integer", float: "a number",
         str: "a string", list: "a list", dict: "a table"}


def field_types(cls) -> dict[str, object]:
    """``{field name: annotation}`` of a dataclass, with the string annotations resolved."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _options(hint) -> tuple:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (typing.get_origin(hint) or hint,)


def _matches(value, kind) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_value(name: str, value, hint):
    """``value`` (an int made a float where the field is a float), or a ``ValueError``."""
    options = _options(hint)
    for kind in options:
        if _matches(value, kind):
            return float(value) if kind is float and not isinstance(value, float) else value
    wanted = " or ".join(_KIND.get(k, "nothing (omit the key)" if k is type(None) else k.__name__)
                         for k in options if k is not type(None))
    if type(None) in options:
        wanted += " (or omit it for the default)"
    raise ValueError(f"{name}={value!r:.60} must be {wanted}, not a {type(value).__name__}")


def check_fields(obj) -> None:
    """Check (and normalise) every field of the dataclass instance ``obj`` against its type.

    Frozen dataclasses call it from ``__post_init__``: the normalised value (``lr = 1`` becomes
    ``1.0``) is set past the freeze, once, while the object is being made."""
    for name, hint in field_types(type(obj)).items():
        object.__setattr__(obj, name, check_value(name, getattr(obj, name), hint))
