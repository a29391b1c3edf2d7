"""The ``xray-atlas`` command.

Every sub-command is a thin call into the core. Bad input ends with one line on stderr
naming the file or parameter and a non-zero exit status, never a traceback (set
``XRAY_ATLAS_DEBUG=1`` to see one for unexpected errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .errors import XrayAtlasError

__all__ = ["main", "build_parser"]

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and the bad-input exit status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import read

    with read(args.cube, dataset=args.dataset) as cube:
        info = {
            "path": cube.path,
            "shape": list(cube.shape),
            "dtype": str(cube.dtype),
            "calibrated": cube.calibrated,
            "energy_kev": [float(cube.energy[0]), float(cube.energy[-1])] if cube.calibrated else None,
            "energy_gain_kev": cube.energy_gain_kev if cube.calibrated else None,
            "metadata": cube.metadata,
            "reference_maps": sorted(cube.reference_maps),
        }
        if args.stats:
            info["total_counts"] = float(cube.spectrum_stats()["sum"].sum())
    print(json.dumps(info, default=str))
    return 0


def _check_output(path: str, suffixes: tuple[str, ...], *, inputs: tuple[str, ...] = ()) -> Path:
    """Refuse a bad output path before any work starts."""
    from .io.results import check_destination

    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise XrayAtlasError(f"output must end in {' or '.join(suffixes)}", path=out)
    return check_destination(out, inputs=inputs)


def _read_gray_image(path: str):
    """A grayscale image from .npy, or from PNG/TIFF/JPEG when Pillow is installed."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise XrayAtlasError("no such image file", path=p)
    if p.suffix.lower() == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise XrayAtlasError(f"not a readable .npy image ({err})", path=p) from None
    try:
        from PIL import Image
    except ImportError:
        raise XrayAtlasError("reading this image needs Pillow (pip install pillow), or give a .npy", path=p) from None
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("L"), dtype=np.float64)
    except OSError as err:
        raise XrayAtlasError(f"not a readable image ({err})", path=p) from None


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .physics.painting import synthetic_painting

    out = _check_output(args.out, (".h5", ".hdf5"))
    image = _read_gray_image(args.image) if args.image else None
    painting = synthetic_painting(args.height, args.width, seed=args.seed, n_channels=args.channels,
                                  dwell_ms=args.dwell_ms, image=image)
    painting.write(out)
    h, w, c = painting.counts.shape
    print(f"wrote {out} ({h} x {w} x {c}, {painting.counts.sum(-1).mean():.0f} counts per pixel)")
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .cluster import cluster_cube, method_parameters
    from .io import read
    from .io.results import write_results

    out = _check_output(args.out, (".h5", ".hdf5"), inputs=(args.cube,))
    defaults = method_parameters(args.method)
    params = {}
    for item in args.param or []:
        if "=" not in item:
            raise XrayAtlasError(f"--param {item!r}: write NAME=VALUE")
        name, value = item.split("=", 1)
        name = name.strip().replace("-", "_")
        if name not in defaults:
            raise XrayAtlasError(f"--param {name}: unknown for {args.method}; known: {', '.join(sorted(defaults))}")
        params[name] = _parse_value(value, defaults[name], name)
    with read(args.cube, dataset=args.dataset) as cube:
        result = cluster_cube(cube, args.method, seed=args.seed, **params)
        write_results(out, labels=result.labels, cluster_spectra=result.spectra, inputs=(args.cube,),
                      attrs={"model": args.method, "parameters": json.dumps(result.params, default=str)})
    noise = int((result.labels < 0).sum())
    print(f"wrote {out}: {result.n_clusters} clusters (sizes {result.sizes.tolist()}), {noise} noise pixels")
    return 0


def _parse_value(text: str, default: object, name: str) -> object:
    """A --param value, typed like the parameter's default."""
    try:
        if isinstance(default, bool):
            return text.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, str):
            return text
        if isinstance(default, float) or default is None:
            return None if text.lower() == "none" else float(text)
        if isinstance(default, tuple):
            return tuple(float(v) for v in text.split(","))
        return text
    except ValueError:
        raise XrayAtlasError(f"--param {name}={text!r} is not a valid {type(default).__name__}") from None


def _cmd_demo(args: argparse.Namespace) -> int:
    from .napari._demo import run_demo

    run_demo(screenshot=args.screenshot)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``xray-atlas`` (exposed for documentation and tests)."""
    parser = _Parser(
        prog="xray-atlas",
        description="Deep learning for X-ray materials characterisation (MA-XRF cubes, diffraction, radiographs).",
    )
    parser.add_argument("--version", action="version", version=f"xray-atlas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="describe a spectral cube (shape, calibration, metadata) as JSON")
    p.add_argument("cube", metavar="CUBE", help="cube file: .h5, .npy, .zarr, .bcf, .spx, .mca, .spe")
    p.add_argument("--dataset", help="HDF5/Zarr dataset when the file holds several 3-D datasets")
    p.add_argument("--stats", action="store_true", help="also stream the cube and report total counts")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("simulate", help="write synthetic data")
    what = p.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser, required=True)
    q = what.add_parser("painting", help="a synthetic painting cube with its true maps (HDF5)")
    q.add_argument("out", metavar="OUT.h5")
    q.add_argument("--height", type=_positive_int, default=96)
    q.add_argument("--width", type=_positive_int, default=128)
    q.add_argument("--channels", type=_positive_int, default=4096)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--dwell-ms", type=_positive_float, default=20.0, help="time per pixel (default 20 ms)")
    q.add_argument("--image", metavar="IMAGE", help="grayscale image whose gray levels lay out the pigments "
                   "(sets the size; .npy, or PNG/TIFF with Pillow)")
    q.set_defaults(func=_cmd_simulate)

    from .cluster import METHODS

    p = sub.add_parser("cluster", help="cluster pixels by their spectra into labels and mean spectra")
    p.add_argument("cube", metavar="CUBE")
    p.add_argument("out", metavar="OUT.h5")
    p.add_argument("--method", choices=list(METHODS), required=True)
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="method option, e.g. --param n_neighbors=30 --param rows=3 (repeatable)")
    p.add_argument("--dataset", help="HDF5/Zarr dataset when the file holds several 3-D datasets")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_cluster)

    p = sub.add_parser("demo", help="open napari with the plugin docked and a demo painting")
    p.add_argument("--screenshot", metavar="OUT.png", help="run headless and write a screenshot instead")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
