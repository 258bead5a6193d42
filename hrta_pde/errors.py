"""Errors that name settings: the library writes ``width``, the command line ``--width``.

A :class:`SettingError` carries a template in which every setting is ``{name}``; ``str(err)``
names them as Python keys, :meth:`SettingError.with_flags` as the command line's flags (the CLI
prints that one). Any module may raise one without knowing about the command line.
"""
from __future__ import annotations

import string

__all__ = ["SettingError", "literal"]


class _Setting:
    """A setting named in a message, written for Python (``loss``) or for the command line
    (``--loss``). ``{loss:=}`` (a value follows): ``loss=`` or ``--loss ``; ``{out:CLI|LIB}``: the
    command line writes ``CLI`` and the flag, Python ``LIB`` (``{out: with |}``: only the command
    line names it)."""

    def __init__(self, name: str, flags: bool):
        self.name, self.flags = name, flags

    def __format__(self, spec: str) -> str:
        flag = "--" + self.name.replace("_", "-")
        if spec == "=":
            return flag + " " if self.flags else self.name + "="
        cli, bar, lib = spec.partition("|")
        if not bar:
            return flag if self.flags else self.name
        return cli + flag if self.flags else lib


class _Settings(dict):
    def __init__(self, flags: bool):
        super().__init__()
        self.flags = flags

    def __missing__(self, key: str) -> _Setting:
        return _Setting(key, self.flags)


def literal(text: str) -> str:
    """``text`` as a literal part of a :class:`SettingError` template (its braces doubled)."""
    return str(text).replace("{", "{{").replace("}", "}}")


class SettingError(ValueError):
    """A bad value whose message names settings as ``{name}`` (see :class:`_Setting`).

    ``str(err)`` names them as Python keys (``drop hard_bc``); :meth:`with_flags` as the command
    line's flags (``drop --hard-bc``), which the CLI prints.
    """

    def __init__(self, template: str):
        self.template = template
        super().__init__(string.Formatter().vformat(template, (), _Settings(flags=False)))

    def with_flags(self) -> str:
        return string.Formatter().vformat(self.template, (), _Settings(flags=True))
