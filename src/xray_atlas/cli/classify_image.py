"""``xray-atlas classify-image``: classify radiographs or micrographs, optionally writing their
activation maps (xray_atlas.classify)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import XrayAtlasError

__all__ = ["add_parser", "run", "check_cam"]


def add_parser(sub) -> None:
    from ..devices import DEVICES

    p = sub.add_parser(
        "classify-image",
        help="classify images (radiographs, micrographs) and optionally write their activation maps",
        description="Prints one JSON object per image: path, class, "
        "probabilities (and cam, the map's PNG, with --cam).",
    )
    p.add_argument("paths", nargs="+", metavar="IMAGE|FOLDER", help="image files, or folders searched for images")
    p.add_argument("--model", help="model name or file (default: the shipped radiograph model, Al1050 / Al2017)")
    p.add_argument("--cam", metavar="DIR", help="write one activation-map PNG per image (<stem>.png) into DIR")
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing maps in the --cam folder (never an input image)"
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..classify import classify_files, load_image_model
    from ..io.images import find_images, read_image

    files = find_images(args.paths)
    cam = Path(args.cam) if args.cam else None
    if cam is not None:
        check_cam(cam, files, overwrite=args.overwrite)
    for f in files:  # every image is read and checked before any result is printed or written
        if min(read_image(f).shape) < 4:
            raise XrayAtlasError("expected an image of at least 4 x 4 pixels", path=f)
    model = load_image_model(args.model, device=args.device)
    if cam is not None:
        try:
            cam.mkdir(exist_ok=True)
        except OSError as err:
            raise XrayAtlasError(f"--cam: cannot make the folder ({err.strerror or err})", path=cam) from None
    for row in classify_files(files, model, cam_dir=cam):
        print(json.dumps(row), flush=True)
        if row.get("in_domain") is False:  # the JSON says it too; this line is for a reader
            print(f"xray-atlas classify-image: warning: {row['path']}: {row['domain_note']}", file=sys.stderr)
    return 0


def check_cam(cam: Path, files: list[Path], *, overwrite: bool) -> None:
    """Refuse a --cam folder whose maps (<stem>.png) would write over an input image (never
    allowed), over each other, or over existing files (only with --overwrite)."""
    from .._files import check_destination, same_file, writable

    if not cam.parent.is_dir():
        raise XrayAtlasError("--cam: the folder's parent does not exist", path=cam)
    if cam.exists() and not cam.is_dir():
        raise XrayAtlasError("--cam must be a folder", path=cam)
    if len({f.stem for f in files}) < len(files):
        raise XrayAtlasError("--cam: two images share a file stem; their maps would overwrite each other")
    if not cam.exists():
        if not writable(cam.parent):
            raise XrayAtlasError("--cam: cannot make the folder here (not writable)", path=cam)
        return
    for f in files:
        target = cam / f"{f.stem}.png"
        clash = next((g for g in files if same_file(g, target)), None)
        if clash is not None:
            raise XrayAtlasError(
                f"--cam: the activation map {target} would replace the input image {clash}; choose another --cam folder"
            )
        try:
            check_destination(target, overwrite=overwrite)
        except XrayAtlasError as err:
            raise XrayAtlasError(f"--cam: {err}") from None
