"""How well :func:`xray_atlas.adapt.measure_detector` reads a radiograph detector's noise and blur.

For each detector (open-beam photons per pixel x Gaussian blur in pixels) and each output type
(float, 16-bit, 8-bit), ``--n`` radiographs of the physics engine (plates and wedges, 128 px,
the default beam; seed 5) are read back. Prints per detector the share read, the median and
range of the read photons over the true ones, and the median and range of the read blur; and
where the noise is hidden under one grey level, the blur read off the edge instead.

Usage: ``python benchmarks/eval_detector_reading.py [--n 6]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from xray_atlas.adapt import measure_detector
from xray_atlas.physics.radiograph import RadiographConfig, radiograph

PHOTONS = (50, 300, 2000, 10000, 50000)
BLURS = (0.3, 0.8, 1.5, 3.0, 4.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="images per detector and output type")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(5)
    for photons in PHOTONS:
        for blur in BLURS:
            for output in ("float", "uint16", "uint8"):
                cfg = RadiographConfig(kind="both", photons=(photons, photons), blur_px=(blur, blur))
                read = [
                    measure_detector(radiograph("Al2017", config=cfg, rng=rng, output=output).image)
                    for _ in range(args.n)
                ]
                ok = np.array([(p / photons, b) for p, b in read if p is not None])
                edge = np.array([b for p, b in read if p is None and b is not None])
                line = f"photons {photons:6d} blur {blur:.1f} {output:6s} read {len(ok)}/{args.n}"
                if len(ok):
                    line += (
                        f" photons x{np.median(ok[:, 0]):.2f} [{ok[:, 0].min():.2f}-{ok[:, 0].max():.2f}]"
                        f" blur {np.median(ok[:, 1]):.2f} [{ok[:, 1].min():.2f}-{ok[:, 1].max():.2f}] px"
                    )
                if len(edge):  # noise hidden under one grey level: the blur read off the edge
                    line += f"; edge blur {len(edge)}: {np.median(edge):.2f} [{edge.min():.2f}-{edge.max():.2f}] px"
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
