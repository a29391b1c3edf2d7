"""``xray-atlas demo``: napari with the plugin docked and a demo painting."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="open napari with the plugin docked and a demo painting")
    p.add_argument("--screenshot", metavar="OUT.png", help="run headless and write a screenshot instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..napari._demo import run_demo

    run_demo(screenshot=args.screenshot)
    return 0
