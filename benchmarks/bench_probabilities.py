"""Element probabilities end to end on a 524 x 348 x 4096 cube (the size of study 003's
painting): read from disk, prepare, infer, write ``/probabilities/<Symbol>``.

In one run on this machine, each a fresh process (imports and model loading included, page
cache warm after a first read):

- ``xray-atlas probabilities CUBE OUT.h5`` with the shipped model, per pixel, CPU;
- the same per 5 x 5 region;
- study 003's reference ViT (``vit1d``: patch 16, embed 16, 8 heads, 6 blocks; untrained
  weights, only the speed is measured) on the first 8 rows of prepared spectra,
  extrapolated to the cube.

Throughput in spectra per second and the ratio of the shipped model to the reference. The
cube is benchmarks/bench_cluster.py's synthetic painting in benchmarks/data/. Usage:
``python benchmarks/bench_probabilities.py``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CUBE = HERE / "data" / "painting_524x348.h5"


def child(kind: str, out: str) -> dict:
    import h5py

    t0 = time.perf_counter()
    with h5py.File(CUBE) as f:
        h, w = f["spectra"].shape[:2]
    if kind in ("pixel", "region"):
        from xray_atlas.cli import main

        args = ["probabilities", str(CUBE), out, "--device", "cpu"] + (["--region", "5"] if kind == "region" else [])
        assert main(args) == 0
        return {"seconds": time.perf_counter() - t0, "spectra": h * w}
    import torch

    from xray_atlas.models import build
    from xray_atlas.probabilities import load_element_model

    em = load_element_model(device="cpu")
    torch.manual_seed(0)
    ref, _ = build("vit1d", n_channels=em.energy.size, n_outputs=len(em.elements))
    ref.eval()
    with h5py.File(CUBE) as f:
        block = f["spectra"][:8].reshape(-1, f["spectra"].shape[-1])
    t0 = time.perf_counter()
    x = em.prepare(block, em.energy)
    with torch.inference_mode():
        for a in range(0, len(x), 512):
            torch.sigmoid(ref(torch.from_numpy(x[a : a + 512])))
    return {"seconds": time.perf_counter() - t0, "spectra": len(x)}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3])))
        return
    if not CUBE.exists():
        sys.exit(f"{CUBE} is missing: run benchmarks/bench_cluster.py first (it writes the painting)")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("pixel", "pixel", "region", "vit1d"):  # the first pixel run warms the page cache
            res = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(Path(tmp) / f"{kind}.h5")],
                capture_output=True,
                text=True,
                check=True,
            )
            rows[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{os.environ.get('OMP_NUM_THREADS', 'default')}"
    )
    for kind, r in rows.items():
        rate = r["spectra"] / r["seconds"]
        print(f"{kind:<8} {r['spectra']:>8} spectra {r['seconds']:8.1f} s {rate:10.0f} spectra/s")
    ratio = (rows["pixel"]["spectra"] / rows["pixel"]["seconds"]) / (
        rows["vit1d"]["spectra"] / rows["vit1d"]["seconds"]
    )
    est = rows["pixel"]["spectra"] / (rows["vit1d"]["spectra"] / rows["vit1d"]["seconds"])
    print(f"shipped per pixel / reference ViT: {ratio:.1f}x (the reference would take {est / 60:.1f} min per pixel)")


if __name__ == "__main__":
    main()
