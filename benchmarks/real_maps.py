"""Map models on the real M6 Jetstream spectrum (../shared/data/real), against the net counts
of Bruker's own embedded fit, and on the same sample as the physics engine simulates it (known
truth) at a map pixel's counts: the tables "Beyond paintings" of docs/maps.md.

The sample (a calcium phosphate with traces of K, Fe, Zn, As, Sr, Hg and Pb) is nothing like
the paint stacks of the training paintings, which is the point: a map model must not invent or
erase lines on the scan it has not seen. The simulation (``physics.reference.m6_jetstream_sample``)
is drawn 64 times at 1,500 counts (an 8 x 8 cube; the mean of each map is scaled back to the
simulation's counts).

Usage: ``python benchmarks/real_maps.py [MODEL ...]`` (default: maps-default, maps-spatial,
maps-fit, lsq, roi, fit; a model is a name or a .safetensors path).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
M6 = REAL / "bruker_m6_jetstream_file_example.spx"
PIXEL_COUNTS = 1500.0


def _table(reference: dict, got: dict, names: list[str], lines, title: str) -> None:
    print(f"\n{title}\n")
    print("| line | reference | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for ln in lines:
        print(
            f"| {ln} | {reference.get(ln, 0):,.0f} | "
            + " | ".join(f"{got[n].get(ln, float('nan')):,.0f}" for n in names)
            + " |"
        )
    strong = [ln for ln in lines if reference.get(ln, 0) >= 500]
    for n in names:
        err = [abs(got[n][ln] - reference[ln]) / reference[ln] for ln in strong]
        print(
            f"{n}: median relative error over the lines with >= 500 counts ({', '.join(strong)}): {np.median(err):.2f}"
        )


def main(models: list[str]) -> None:
    from xray_atlas.cube import SpectralCube
    from xray_atlas.inference import predict_maps
    from xray_atlas.io import read
    from xray_atlas.physics.lines import DEFAULT_MAP_LINES
    from xray_atlas.physics.reference import bruker_net_counts, m6_jetstream_sample

    models = models or ["maps-default", "maps-spatial", "maps-fit", "lsq", "roi", "fit"]
    names = [Path(m).stem for m in models]
    net, _ = bruker_net_counts(M6)
    got = {}
    with read(M6) as cube:
        for m, n in zip(models, names):
            maps = predict_maps(cube, m, device="cpu").maps
            got[n] = {ln: float(np.asarray(v).sum()) for ln, v in maps.items()}
    _table(net, got, names, DEFAULT_MAP_LINES, "Real M6 spectrum (1.09 million counts), against Bruker's fit")

    sim, _, _ = m6_jetstream_sample(M6)
    lam = sim.expected * (PIXEL_COUNTS / sim.expected.sum())
    counts = np.random.default_rng(0).poisson(np.broadcast_to(lam, (8, 8, lam.size))).astype(np.float32)
    cube = SpectralCube(counts, energy=sim.energy)
    scale = sim.expected.sum() / counts.sum(-1).mean()
    got = {}
    for m, n in zip(models, names):
        maps = predict_maps(cube, m, device="cpu").maps
        got[n] = {ln: float(np.asarray(v).mean()) * scale for ln, v in maps.items()}
    _table(
        sim.net,
        got,
        names,
        DEFAULT_MAP_LINES,
        f"The same sample simulated by the physics engine, 64 pixels of {PIXEL_COUNTS:,.0f} counts, against its truth",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
