"""``xray-atlas export``: a result file's maps as TIFF images or figures, its spectra as CSV
(xray_atlas.export)."""

from __future__ import annotations

import argparse
import sys

from ..errors import XrayAtlasError
from ._common import positive_float

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    from ..export import FORMATS

    p = sub.add_parser(
        "export",
        help="write a result file's maps as TIFF images or figures, or its spectra as "
        "CSV tables, for other programs and reports",
        description="RESULT.h5 OUTDIR: tiff writes one float32 TIFF per map or probability "
        "(<line or symbol>.tif, the stored values, pixel size in the resolution tags); png one figure "
        "per map (<line or symbol>.png) and the overview sheet; sheet the overview sheet alone "
        "(overview.png and overview.pdf, every map on one page); csv the spectra the result holds "
        "(cluster_spectra.csv, region_spectra.csv) beside an energy_kev column; rgb an RGB composite "
        "of the three --lines, red, green and blue (rgb_<R>_<G>_<B>.png and .tif, 8-bit, each channel "
        "from the 1st to the 99th percentile of its map, see --percentiles). OUTDIR is made when "
        "missing; no file in it is replaced without --overwrite.",
    )
    p.add_argument("result", metavar="RESULT.h5", help="a result file of xray-atlas maps, probabilities or cluster")
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--format", choices=FORMATS, default="tiff", help="default: tiff")
    p.add_argument(
        "--lines",
        help="comma-separated maps or probabilities to export, e.g. Pb-L,Fe-K or Pb,Hg "
        "(default: all); for --format rgb exactly three, red, green, blue, e.g. Pb-L,Hg-L,Cu-K "
        "(none leaves a channel black)",
    )
    p.add_argument(
        "--percentiles",
        metavar="LOW,HIGH",
        help="rgb: each channel runs from this low to this high percentile of its map's values (default 1,99)",
    )
    p.add_argument(
        "--pixel-size-um",
        type=positive_float,
        metavar="UM",
        help="pixel side in micrometres, for a result that does not state it (scale bars, TIFF resolution)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUTDIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_result

    lines = [t for t in (s.strip() for s in args.lines.replace(" ", ",").split(",")) if t] if args.lines else None
    if args.lines is not None and not lines:
        raise XrayAtlasError("--lines is empty: give maps or probabilities, e.g. --lines Pb-L,Fe-K")
    percentiles = (1.0, 99.0)
    if args.percentiles is not None:
        if args.format != "rgb":
            raise XrayAtlasError("--percentiles sets the rgb format's channel limits: give it with --format rgb")
        try:
            percentiles = tuple(float(t) for t in args.percentiles.replace(" ", ",").split(",") if t.strip())
        except ValueError:
            raise XrayAtlasError(f"--percentiles {args.percentiles!r}: give two numbers, e.g. 1,99") from None
    try:
        done = export_result(
            args.result,
            args.outdir,
            format=args.format,
            lines=lines,
            overwrite=args.overwrite,
            pixel_size_um=args.pixel_size_um,
            percentiles=percentiles,
        )
    except XrayAtlasError as err:
        if err.reason.startswith(("lines", "percentiles")):  # the core names its parameter; the command line's --
            raise XrayAtlasError(f"--{err.reason}", path=err.path) from None
        raise
    for note in done.notes:
        hint = " (give --pixel-size-um)" if "pixel size" in note else ""
        print(f"xray-atlas export: note: {note}{hint}", file=sys.stderr)
    names = [p.name for p in done.files]
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    print(f"wrote {len(names)} files to {done.folder}: {shown}")
    return 0
