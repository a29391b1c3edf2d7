"""``xray-atlas maps``: elemental maps with a trained model or a baseline."""

from __future__ import annotations

import argparse

from ._common import DATASET_HELP, add_calibration, check_calibration, check_output, note_printer

__all__ = ["add_parser", "add_options", "options", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("maps", help="elemental maps (net counts per line family) with a trained model or a baseline")
    p.add_argument("cube", metavar="CUBE")
    p.add_argument("out", metavar="OUT.h5")
    add_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    p.set_defaults(func=run)


def add_options(p: argparse.ArgumentParser) -> None:
    """The options of maps (also batch maps')."""
    from ..cube import MAP_UNITS
    from ..devices import DEVICES

    p.add_argument(
        "--model",
        help="shipped or trained model name (maps-fit: a learnt correction of the "
        "per-cluster fit, held within its standard errors; maps-default: the prior MLP, 1.3x faster, "
        "for paintings, and the stand-in for maps-fit on a cube without energy calibration; "
        "maps-spatial), a model file, or a baseline: lsq, roi, fit (least squares with each cluster of "
        "pixels' own line ratios) (default: maps-fit). With fit and maps-fit the result also holds "
        "/fit/reduced_chi2, how well the per-cluster fit explains each pixel's counts (about 1: "
        "within Poisson noise; a line the fit lacks lights up)",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--lines",
        help="line families to map instead of the default set (the twelve study lines and "
        "every K or L family found in the cube), e.g. Pb-L,Fe-K; a list that starts with + adds to the "
        "default set, e.g. +As-K,Co-K. Any family xraylib knows with a line in the cube's energy range; "
        "those beyond a learnt model's outputs come from the per-cluster fit",
    )
    p.add_argument(
        "--units",
        choices=MAP_UNITS,
        default="counts",
        help="net counts (default), or net counts per "
        "second of each pixel's live time (needs the live time in the file)",
    )
    add_calibration(p)
    p.add_argument("--dataset", help=DATASET_HELP)


def options(args: argparse.Namespace) -> dict:
    """The options of xray_atlas.cubetasks.run_maps from the command line's (also batch's)."""
    from ..inference import parse_lines

    check_calibration(args)
    lines, add = parse_lines(args.lines)  # the maps dock's lines box reads the same way
    return {
        "model": args.model,
        "device": args.device,
        "lines": lines,
        "add_lines": add,
        "units": args.units,
        "offset_kev": args.offset_kev,
        "gain_kev": args.gain_kev,
        "dataset": args.dataset,
    }


def run(args: argparse.Namespace) -> int:
    from ..cubetasks import run_maps

    out = check_output(args.out, (".h5", ".hdf5"), inputs=(args.cube,), overwrite=args.overwrite)
    done = run_maps(args.cube, out, **options(args), overwrite=args.overwrite, on_note=note_printer("maps"))
    print(f"wrote {out}: {done.summary}")
    return 0
