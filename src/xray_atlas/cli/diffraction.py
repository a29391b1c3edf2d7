"""``xray-atlas diffraction``: the correlation encoding of diffraction images, the lattice
rebuilt from it and its image (xray_atlas.diffraction)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import XrayAtlasError
from ._common import check_output, note_printer, seed

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    from ..devices import DEVICES

    p = sub.add_parser(
        "diffraction",
        help="read the correlation encoding from diffraction images, rebuild the lattice and its image",
        description="IMAGE [IMAGE ...] OUT: OUT is a result file (.h5) for "
        "one image, a folder for several (one <image stem>.h5 each). The span comes from --span, "
        "the image's metadata (HDF5 attribute 'span') or the model.",
    )
    p.add_argument("paths", nargs="+", metavar="IMAGE ... OUT")
    p.add_argument("--span", type=int, choices=(2, 3, 4))
    p.add_argument("--model", help="model name or file, or 'analytic' (default: the shipped model for the span)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--seed", type=seed, default=0, help="Monte Carlo seed of the reconstruction")
    p.add_argument("--unlog", action="store_true", help="the images are log-scaled: undo it first")
    p.add_argument("--tophat", type=int, default=0, metavar="R", help="white top-hat of radius R first (0: off)")
    p.add_argument("--inpaint-zeros", action="store_true", help="inpaint pixels <= 0 (a masked beam stop) first")
    p.add_argument("--match", action="store_true", help="match the intensity histogram to a training image first")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._files import check_destination
    from ..diffraction import (
        check_image,
        check_tophat,
        image_span,
        load_predictor,
        prepare_image,
        reconstruct,
        reference_image,
        resolve_span,
        write_reconstruction,
    )
    from ..io.images import read_image

    if len(args.paths) < 2:
        raise XrayAtlasError("give at least one IMAGE and the OUT path")
    *images, out = args.paths
    out = Path(out)
    if len(images) == 1 and out.suffix.lower() in (".h5", ".hdf5"):
        targets = [check_output(str(out), (".h5", ".hdf5"), inputs=tuple(images), overwrite=args.overwrite)]
    else:
        if not out.is_dir():
            raise XrayAtlasError("with several images OUT must be an existing folder (one <stem>.h5 each)", path=out)
        targets = [
            check_destination(out / f"{Path(i).stem}.h5", inputs=tuple(images), overwrite=args.overwrite)
            for i in images
        ]
        if len({t.name for t in targets}) < len(targets):
            raise XrayAtlasError("two images share a file stem; their results would overwrite each other", path=out)
    # read and check every image before any work, then load the model once
    loaded = []
    for path in images:
        img = read_image(path)
        check_image(img, name=str(path))
        try:
            check_tophat(args.tophat, img.shape)
        except XrayAtlasError as err:
            raise XrayAtlasError(f"--tophat: {err}", path=path) from None
        loaded.append((path, img, image_span(path)))
    span, note = resolve_span(args.span, (s for _, _, s in loaded), model=args.model, parameter="--span")
    if note:
        note_printer("diffraction")(note)
    predictor = load_predictor(args.model, span=span, device=args.device)
    match = reference_image(predictor.span) if args.match else None
    prepared = [
        prepare_image(
            img, unlog=args.unlog, tophat=args.tophat, match=match, mask=(img <= 0) if args.inpaint_zeros else None
        )[0]
        for _, img, _ in loaded
    ]
    for img, target in zip(prepared, targets):
        rec = reconstruct(img, predictor, seed=args.seed)
        write_reconstruction(target, rec, overwrite=args.overwrite)
        enc = ", ".join(f"{v:+.3f}" for v in rec.encoding)
        print(
            f"wrote {target}: span {rec.span} encoding [{enc}], image R^2 {rec.image_r2:.3f}"
            + ("" if rec.converged else " (lattice did not reach the encoding within 0.03)")
        )
    return 0
