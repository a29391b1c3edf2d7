"""The ``xray-atlas`` command.

Every sub-command is a thin call into the core: its module here (one per command) parses
the arguments, calls the core and prints. Bad input ends with one line on stderr naming the
file or parameter and a non-zero exit status, never a traceback (set ``XRAY_ATLAS_DEBUG=1`` to
see one for unexpected errors).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import XrayAtlasError
from . import (
    adapt,
    batch,
    classify_image,
    cluster,
    demo,
    diffraction,
    export,
    info,
    maps,
    probabilities,
    simulate,
    train,
)
from ._common import EXIT_BAD_INPUT, EXIT_INTERNAL, Parser

__all__ = ["main", "build_parser", "EXIT_BAD_INPUT", "EXIT_INTERNAL"]

#: The commands in the order ``--help`` lists them; each module's ``add_parser(sub)`` adds its own.
COMMANDS = (
    info,
    simulate,
    cluster,
    maps,
    probabilities,
    batch,
    train,
    adapt,
    diffraction,
    classify_image,
    export,
    demo,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``xray-atlas`` (exposed for documentation and tests)."""
    parser = Parser(
        prog="xray-atlas",
        description="Deep learning for X-ray materials characterisation (MA-XRF cubes, diffraction, radiographs).",
    )
    parser.add_argument("--version", action="version", version=f"xray-atlas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    import warnings

    # Library warnings (torch, Pillow, numpy) would add lines to a one-line error: they are held
    # back, and shown as one line each only when the command succeeds.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        status = _run(func, args)
    if status == 0:
        for text in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
            print(f"xray-atlas {args.command}: warning: {text}", file=sys.stderr)
    return status


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except XrayAtlasError as err:
        print(f"xray-atlas {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"xray-atlas {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("XRAY_ATLAS_DEBUG"):
            raise
        msg = " ".join(str(err).split()) or type(err).__name__
        print(
            f"xray-atlas {args.command}: internal error: {type(err).__name__}: {msg} (XRAY_ATLAS_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
