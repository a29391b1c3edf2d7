"""``xray-atlas info``: a cube's shape, calibration and metadata as JSON."""

from __future__ import annotations

import argparse
import json

from ._common import DATASET_HELP

__all__ = ["add_parser", "run", "time_summary"]


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a spectral cube (shape, calibration, metadata) as JSON")
    p.add_argument("cube", metavar="CUBE", help="cube file: .h5, .npy, .zarr, .bcf, .spx, .rpl (+ .raw), .mca, .spe")
    p.add_argument("--dataset", help=DATASET_HELP)
    p.add_argument("--stats", action="store_true", help="also stream the cube and report total counts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io import read

    with read(args.cube, dataset=args.dataset) as cube:
        size = cube.pixel_size_um
        size_y = cube.metadata.get("pixel_size_y_um", size) if size else None
        info = {
            "path": cube.path,
            "shape": list(cube.shape),
            "dtype": str(cube.dtype),
            "calibrated": cube.calibrated,
            "energy_kev": [float(cube.energy[0]), float(cube.energy[-1])] if cube.calibrated else None,
            "energy_gain_kev": cube.energy_gain_kev if cube.calibrated else None,
            "pixel_size_um": size,
            # the scanned area, height x width, from the pixels' centres' steps
            "scan_size_mm": [cube.height * float(size_y) / 1000, cube.width * size / 1000] if size else None,
            "live_time_s": time_summary(cube.metadata.get("live_time_s")),
            "real_time_s": time_summary(cube.metadata.get("real_time_s")),
            "tube_kv": cube.metadata.get("tube_kv"),
            "metadata": {
                k: time_summary(v) if k in ("live_time_s", "real_time_s") else v for k, v in cube.metadata.items()
            },
            "reference_maps": sorted(cube.reference_maps),
        }
        if args.stats:
            info["total_counts"] = float(cube.spectrum_stats()["sum"].sum())
    print(json.dumps(info, default=str))
    return 0


def time_summary(value: object) -> object:
    """A time per pixel for JSON: the number, or for an (H, W) array its min, median and max."""
    import numpy as np

    if value is None or np.ndim(value) < 2:
        return value
    arr = np.asarray(value[...] if hasattr(value, "shape") else value, dtype=np.float64)
    return {
        "per_pixel": list(arr.shape),
        "min": float(arr.min()),
        "median": float(np.median(arr)),
        "max": float(arr.max()),
    }
