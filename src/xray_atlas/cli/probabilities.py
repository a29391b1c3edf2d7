"""``xray-atlas probabilities``: element probability maps with a trained model."""

from __future__ import annotations

import argparse

from ..errors import XrayAtlasError
from ._common import DATASET_HELP, add_calibration, check_calibration, check_output, note_printer, positive_int

__all__ = ["add_parser", "add_options", "options", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "probabilities",
        help="element probability maps (which elements each pixel, region or cluster holds) with a trained model",
    )
    p.add_argument("cube", metavar="CUBE")
    p.add_argument("out", metavar="OUT.h5")
    add_options(p, labels=True)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=run)


def add_options(p: argparse.ArgumentParser, *, labels: bool) -> None:
    """The options of probabilities (also batch probabilities', which has no ``--labels``)."""
    from ..devices import DEVICES

    p.add_argument("--model", help="shipped or trained model name or a model file (default: the shipped model)")
    p.add_argument(
        "--region",
        type=positive_int,
        default=1,
        metavar="K",
        help="predict the summed spectrum of each K x K block (default 1: every pixel)",
    )
    if labels:
        p.add_argument(
            "--labels",
            metavar="CLUSTERS.h5",
            help="predict the summed spectrum of each cluster of this result file of xray-atlas cluster",
        )
    p.add_argument("--elements", help="comma-separated subset of the model's elements, e.g. Pb,Hg,Cu")
    add_calibration(p)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dataset", help=DATASET_HELP)


def options(args: argparse.Namespace) -> dict:
    """The options of xray_atlas.cubetasks.run_probabilities from the command line's (also batch's,
    which has no --labels)."""
    check_calibration(args)
    elements = tuple(s.strip() for s in args.elements.split(",")) if args.elements else None
    return {
        "model": args.model,
        "device": args.device,
        "region": args.region,
        "elements": elements,
        "offset_kev": args.offset_kev,
        "gain_kev": args.gain_kev,
        "dataset": args.dataset,
    }


def run(args: argparse.Namespace) -> int:
    from ..cubetasks import run_probabilities

    out = check_output(
        args.out,
        (".h5", ".hdf5"),
        inputs=(args.cube,) + ((args.labels,) if args.labels else ()),
        overwrite=args.overwrite,
    )
    opts = options(args)
    if args.labels and args.region != 1:
        raise XrayAtlasError("--labels and --region exclude each other")
    done = run_probabilities(
        args.cube, out, **opts, labels=args.labels, overwrite=args.overwrite, on_note=note_printer("probabilities")
    )
    print(f"wrote {out}: {done.summary}")
    return 0
