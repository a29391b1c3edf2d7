"""What the commands of ``xray-atlas`` share: the parser class, exit statuses, argument types,
the output check and the options several commands take."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import XrayAtlasError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "Parser",
    "check_output",
    "note_printer",
    "name_values",
    "parse_params",
    "positive_int",
    "positive_float",
    "seed",
    "split_rows",
    "add_calibration",
    "check_calibration",
    "DATASET_HELP",
]

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

DATASET_HELP = "HDF5/Zarr dataset when the file holds several 3-D datasets"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and the bad-input exit status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def check_output(
    path: str, suffixes: tuple[str, ...], *, inputs: tuple[str, ...] = (), overwrite: bool = False
) -> Path:
    """Refuse a bad output path before any work starts: the one overwrite policy of every
    command (an existing output is replaced only with --overwrite, an input or a read-only
    file never; xray_atlas._files.check_destination)."""
    from .._files import check_destination

    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise XrayAtlasError(f"output must end in {' or '.join(suffixes)}", path=out)
    return check_destination(out, inputs=inputs, overwrite=overwrite)


def note_printer(command: str) -> Callable[[str], None]:
    """A callback printing the core's notes on stderr, one line each."""
    return lambda note: print(f"xray-atlas {command}: note: {note}", file=sys.stderr)


def name_values(items: list[str] | None, flag: str) -> dict[str, str]:
    """``NAME=VALUE`` options (repeatable ``flag``) as name -> text; ``-`` in names reads as ``_``."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise XrayAtlasError(f"{flag} {item!r}: write NAME=VALUE")
        name, value = item.split("=", 1)
        out[name.strip().replace("-", "_")] = value.strip()
    return out


def parse_params(items: list[str] | None, table: dict, *, flag: str, what: str) -> dict:
    """``NAME=VALUE`` options read by the parameters' own parser
    (:func:`xray_atlas.params.check_values`); errors name ``flag``."""
    from ..params import check_values

    return check_values(table, name_values(items, flag), what=what, flag=flag)


def _number(text: str, kind: type, ok, rule: str):
    """``text`` read as ``kind`` and held to ``ok``; argparse's error (it names the option) if not."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{value} {rule}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "must be >= 1")


def seed(text: str) -> int:
    return _number(text, int, lambda v: 0 <= v < 2**32, "must lie in [0, 2^32 - 1]")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < float("inf"), "must be a finite number > 0")


def split_rows(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"give a number of rows >= 1, or 0 (never split), not {text!r}")
    return n


def add_calibration(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--offset-kev",
        type=float,
        help="energy calibration for an uncalibrated cube, or one whose file "
        "states a wrong one: energy of channel 0 (keV)",
    )
    p.add_argument("--gain-kev", type=positive_float, help="energy calibration: keV per channel")


def check_calibration(args: argparse.Namespace) -> None:
    if (args.offset_kev is None) != (args.gain_kev is None):
        raise XrayAtlasError("--offset-kev and --gain-kev go together")
