"""``xray-atlas simulate``: a synthetic painting cube, or an image dataset of radiographs or
micrographs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import XrayAtlasError
from ._common import Parser, check_output, positive_float, positive_int, seed

__all__ = ["add_parser", "run_painting", "run_images"]


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help="write synthetic data")
    what = p.add_subparsers(dest="what", metavar="WHAT", parser_class=Parser, required=True)
    q = what.add_parser("painting", help="a synthetic painting cube with its true maps (HDF5)")
    q.add_argument("out", metavar="OUT.h5")
    q.add_argument("--height", type=positive_int, default=96)
    q.add_argument("--width", type=positive_int, default=128)
    q.add_argument("--channels", type=positive_int, default=4096)
    q.add_argument("--seed", type=seed, default=0)
    q.add_argument("--dwell-ms", type=positive_float, default=20.0, help="time per pixel (default 20 ms)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    q.add_argument(
        "--image",
        metavar="IMAGE",
        help="grayscale image whose gray levels lay out the pigments (sets the size; .npy, or PNG/TIFF with Pillow)",
    )
    q.set_defaults(func=run_painting)
    for name, doc in (
        ("radiographs", "radiographs of Al 1050 / Al 2017 plates and wedges"),
        ("micrographs", "micrographs of nanoparticles in 8 morphology classes"),
    ):
        q = what.add_parser(name, help=f"an image dataset (train/val/test/<class>/): {doc}")
        q.add_argument("out", metavar="OUT_DIR", help="a new or empty folder")
        q.add_argument("--n", type=positive_int, default=300, help="images (default 300)")
        q.add_argument("--size", type=positive_int, default=128, help="image side in pixels (default 128)")
        q.add_argument("--seed", type=seed, default=0)
        if name == "radiographs":
            q.add_argument("--kind", choices=("plate", "wedge", "both"), default="both")
        q.add_argument("--quadrants", action="store_true", help="cut each image into quarters (study 002)")
        q.set_defaults(func=run_images, kind="both")


def run_painting(args: argparse.Namespace) -> int:
    from ..io.images import read_image
    from ..physics.painting import synthetic_painting

    out = check_output(args.out, (".h5", ".hdf5"), overwrite=args.overwrite)
    image = read_image(args.image) if args.image else None
    painting = synthetic_painting(
        args.height, args.width, seed=args.seed, n_channels=args.channels, dwell_ms=args.dwell_ms, image=image
    )
    painting.write(out, overwrite=args.overwrite)
    h, w, c = painting.counts.shape
    print(f"wrote {out} ({h} x {w} x {c}, {painting.counts.sum(-1).mean():.0f} counts per pixel)")
    return 0


def run_images(args: argparse.Namespace) -> int:
    from ..devices import check_memory
    from ..imagesets import write_dataset

    out = Path(args.out)
    if not out.parent.is_dir():
        raise XrayAtlasError("output folder's parent does not exist", path=out.parent)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise XrayAtlasError("exists and is not an empty folder", path=out)
    if not 16 <= args.size <= 8192:
        raise XrayAtlasError(f"--size {args.size} must lie in [16, 8192] pixels")
    # the images in float64, in memory twice (made, then written by class)
    check_memory(2 * 8.0 * args.n * args.size**2, f"--n {args.n} images of --size {args.size}")
    if args.what == "radiographs":
        from ..physics.radiograph import ALLOYS, RadiographConfig, radiographs

        recs = radiographs(args.n, config=RadiographConfig(kind=args.kind, size=args.size), seed=args.seed)[2]
        images, labels, classes = [r.image for r in recs], [ALLOYS.index(r.alloy) for r in recs], ALLOYS
    else:
        from ..physics.micrograph import MORPHOLOGIES, micrographs

        x, labels = micrographs(args.n, size=args.size, seed=args.seed)
        images, classes = list(x), MORPHOLOGIES
    counts = write_dataset(out, images, labels, classes, split_quadrants=args.quadrants)
    sizes = ", ".join(f"{s} {sum(c.values())}" for s, c in counts.items())
    print(f"wrote {out} ({len(classes)} classes; {sizes})")
    return 0
