"""Parameters of data sources, clustering methods and models: one declaration, one parser.

A parameter table maps a name to a :class:`Param` (default, range or choices, help, and how
it is written). The command line (``--param NAME=VALUE``, ``--model-param``), the napari
forms and the core's own checks all go through :meth:`Param.check`, so a value is read the
same wherever it is typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import XrayAtlasError

__all__ = ["Param", "KINDS", "param_for", "table_defaults", "check_values"]

#: How a parameter is written and edited: ``number`` (int or float, like the default; a
#: default of None also takes ``none``), ``bool``, ``choice`` (one of ``choices``), ``string``
#: (one word, kept as typed), ``text`` (comma-separated names), ``numbers`` (comma-separated
#: numbers, ``none`` for an unset one), ``path`` (a file or folder), ``paths`` (comma-separated
#: files).
KINDS = ("number", "bool", "choice", "string", "text", "numbers", "path", "paths")

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Param:
    """One parameter: default, help text, allowed range (``low``, ``high``; None: open) or
    ``choices``, and its ``kind`` (:data:`KINDS`)."""

    default: Any
    doc: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    kind: str = "number"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r}; choose one of {', '.join(KINDS)}")

    def check(self, name: str, value: Any) -> Any:
        """``value`` (as typed, or already a value) of the parameter ``name``, typed like its
        kind; a one-line :class:`~xray_atlas.errors.XrayAtlasError` naming ``name`` otherwise."""
        if self.kind == "bool":
            if isinstance(value, str):
                if value.strip().lower() not in _TRUE + _FALSE:
                    raise XrayAtlasError(f"{name}={value!r} must be true or false")
                return value.strip().lower() in _TRUE
            return bool(value)
        if self.kind == "choice":
            if value not in self.choices:
                raise XrayAtlasError(f"{name}={value!r}; choose one of {', '.join(map(str, self.choices))}")
            return value
        if self.kind == "string":
            return value.strip() if isinstance(value, str) else value
        if self.kind in ("text", "paths"):
            if value is None:
                return ()
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(s.strip() for s in items if str(s).strip())
        if self.kind == "path":
            return str(value).strip()
        if self.kind == "numbers":
            return self._numbers(name, value)
        return self._number(name, value)

    def _number(self, name: str, value: Any) -> Any:
        whole = isinstance(self.default, int) and not isinstance(self.default, bool)
        if self.default is None and (value is None or (isinstance(value, str) and value.strip().lower() == "none")):
            return None
        try:
            v = float(value)
            if whole and v.is_integer():
                v = int(value) if isinstance(value, (int, np.integer)) else int(v)
        except (TypeError, ValueError):
            raise XrayAtlasError(f"{name}={value!r} is not a number") from None
        if whole and not isinstance(v, int):
            raise XrayAtlasError(f"{name}={value!r} must be a whole number")
        if not math.isfinite(v) and self.low is None and self.high is None:
            raise XrayAtlasError(f"{name}={value!r} is not a finite number")
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if not math.isfinite(v) or not low <= v <= high:
            raise XrayAtlasError(f"{name}={value!r} is out of range [{low:g}, {high:g}]")
        return v

    def _numbers(self, name: str, value: Any) -> tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        whole = bool(self.default) and all(isinstance(d, int) and not isinstance(d, bool) for d in self.default)
        out = []
        for item in items:
            if item is None or (isinstance(item, str) and item.strip().lower() == "none"):
                out.append(None)
                continue
            try:
                out.append(int(item) if whole else float(item))
            except (TypeError, ValueError):
                kind = "whole numbers" if whole else "numbers"
                raise XrayAtlasError(f"{name}={value!r}: give comma-separated {kind} (or none)") from None
        return tuple(out)

    def text(self, value: Any = None) -> str:
        """``value`` (the default when None) written as :meth:`check` reads it back."""
        value = self.default if value is None else value
        if value is None:
            return ""
        if isinstance(value, (tuple, list)):
            return ", ".join("none" if v is None else str(v) for v in value)
        return str(value)


def param_for(default: Any, doc: str = "") -> Param:
    """A parameter declared by its default alone (the models' options, which are
    registered as keyword defaults): its kind follows the default's type."""
    if isinstance(default, bool):
        return Param(default, doc, kind="bool")
    if isinstance(default, (int, float)) or default is None:
        return Param(default, doc)
    if isinstance(default, (tuple, list)) and all(isinstance(v, (int, float)) or v is None for v in default):
        return Param(tuple(default), doc, kind="numbers")
    if isinstance(default, (tuple, list)):
        return Param(tuple(default), doc, kind="text")
    return Param(default, doc, kind="string")


def table_defaults(table: dict[str, Param]) -> dict[str, Any]:
    """Name -> default of a parameter table."""
    return {k: p.default for k, p in table.items()}


def check_values(table: dict[str, Param], values: dict[str, Any], *, what: str, flag: str = "") -> dict[str, Any]:
    """``values`` (name -> value or text) checked against ``table``; an unknown name is refused
    with the known ones listed (``what`` names the table's owner, ``flag`` the option to
    show before the name, e.g. ``--param``)."""
    out = {}
    for name, value in values.items():
        if name not in table:
            raise XrayAtlasError(
                f"{flag + ' ' if flag else ''}{name}: unknown for {what}; known: {', '.join(sorted(table)) or 'none'}"
            )
        try:
            out[name] = table[name].check(name, value)
        except XrayAtlasError as err:
            raise XrayAtlasError(f"{flag} {err}" if flag else str(err)) from None
    return out
