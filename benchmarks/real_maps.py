"""Map models on the real M6 Jetstream spectrum (../shared/data/real), against the net counts
of Bruker's own embedded fit: the table "On a real spectrum" of docs/maps.md.

Usage: ``python benchmarks/real_maps.py [MODEL ...]`` (default: maps-default, lsq, roi; a
model is a name or a .safetensors path).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
M6 = REAL / "bruker_m6_jetstream_file_example.spx"


def main(models: list[str]) -> None:
    from xray_atlas.inference import predict_maps
    from xray_atlas.io import read
    from xray_atlas.physics.lines import DEFAULT_MAP_LINES
    from xray_atlas.physics.reference import bruker_net_counts

    net, _ = bruker_net_counts(M6)
    models = models or ["maps-default", "lsq", "roi"]
    got = {}
    with read(M6) as cube:
        for m in models:
            maps = predict_maps(cube, m, device="cpu")[0]
            got[m] = {ln: float(np.asarray(v).sum()) for ln, v in maps.items()}
    names = [Path(m).stem for m in models]
    print("| line | Bruker fit | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for ln in DEFAULT_MAP_LINES:
        print(f"| {ln} | {net.get(ln, 0):,.0f} | " + " | ".join(f"{got[m].get(ln, float('nan')):,.0f}" for m in models) + " |")
    strong = [ln for ln in DEFAULT_MAP_LINES if net.get(ln, 0) >= 500]
    for m, n in zip(models, names):
        err = [abs(got[m][ln] - net[ln]) / net[ln] for ln in strong]
        print(f"{n}: median relative error over the lines Bruker fits >= 500 counts ({', '.join(strong)}): "
              f"{np.median(err):.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
