"""Clustering a 524 x 348 x 4096 painting cube on disk: time, peak memory and ARI.

Runs, each in a fresh process (so times include imports and numba compilation, and the
memory is the process's peak resident size, VmHWM):

- xray-atlas ``umap-hdbscan`` and ``som`` with default settings (an 8 x 8 map whose nodes
  are then joined), and ``som`` as a plain 3 x 3 map for 10 epochs (targets: <= 30 s and
  3 GB; <= 10 s and 2 GB);
- study 003's recipe as published: UMAP (n_neighbors 30, min_dist 0, 1 component) on all raw
  spectra with 100 channels dropped at each end, then HDBSCAN (min_samples 10,
  min_cluster_size 2500);
- minisom 3 x 3 on the same raw spectra (one epoch timed, ten extrapolated: minisom trains
  one sample at a time).

Usage: ``python benchmarks/bench_cluster.py [--skip-study]``. The cube (a synthetic painting
with its true pigment regions) is generated once into benchmarks/data/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
H, W = 524, 348


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(kind: str, path: str) -> dict:
    import h5py
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    t = time.perf_counter()
    with h5py.File(path) as f:
        truth = f["regions"][()].ravel()
    if kind in ("umap-hdbscan", "som", "som-3x3"):
        from xray_atlas.cluster import cluster_cube
        from xray_atlas.io import read

        params = {"rows": 3, "cols": 3, "n_clusters": None} if kind == "som-3x3" else {}
        with read(path) as cube:
            labels = cluster_cube(cube, kind[:3] if kind == "som-3x3" else kind, **params).labels.ravel()
    elif kind == "study-umap":
        import hdbscan
        import umap

        with h5py.File(path) as f:
            x = f["spectra"][:, :, 100:-100].reshape(H * W, -1).astype(np.float32)
        emb = umap.UMAP(n_neighbors=30, min_dist=0.0, n_components=1).fit_transform(x)
        labels = hdbscan.HDBSCAN(min_samples=10, min_cluster_size=2500).fit_predict(emb)
    elif kind == "minisom":
        from minisom import MiniSom

        with h5py.File(path) as f:
            x = f["spectra"][:, :, 100:-100].reshape(H * W, -1).astype(np.float64)
        som = MiniSom(3, 3, x.shape[1], sigma=1.0, learning_rate=0.5, random_seed=0)
        t1 = time.perf_counter()
        som.train(x, x.shape[0], random_order=True)  # one epoch, one sample at a time
        epoch = time.perf_counter() - t1
        labels = np.array([som.winner(v)[0] * 3 + som.winner(v)[1] for v in x[::50]])
        truth = truth[::50]
        total = time.perf_counter() - t
        return {
            "seconds": total + 9 * epoch,
            "one_epoch_s": epoch,
            "peak_mb": peak_mb(),
            "ari": float(adjusted_rand_score(truth, labels)),
            "extrapolated": True,
        }
    else:
        raise ValueError(kind)
    return {
        "seconds": time.perf_counter() - t,
        "peak_mb": peak_mb(),
        "ari": float(adjusted_rand_score(truth, labels)),
        "n_clusters": int(len(set(labels.tolist()))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-study", action="store_true", help="skip the slow study recipes")
    ap.add_argument("--child")
    ap.add_argument("--path")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.path)))
        return
    path = HERE / "data" / f"painting_{H}x{W}.h5"
    if not path.exists():
        from xray_atlas.physics.painting import synthetic_painting

        path.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        synthetic_painting(H, W, seed=3).write(path)
        print(f"generated {path.name} in {time.perf_counter() - t:.0f} s")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"cube {path.name} ({path.stat().st_size / 1e9:.2f} GB)"
    )
    kinds = ["umap-hdbscan", "som", "som-3x3"] + ([] if args.skip_study else ["study-umap", "minisom"])
    results = {}
    for kind in kinds:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--path", str(path)], capture_output=True, text=True
        )
        if out.returncode != 0:
            print(f"{kind}: failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results[kind] = r
        extra = f" (one epoch {r['one_epoch_s']:.0f} s x 10)" if r.get("extrapolated") else ""
        print(f"{kind:13s} {r['seconds']:8.1f} s{extra}  peak {r['peak_mb']:7.0f} MB  ARI {r['ari']:.3f}")
    if "study-umap" in results and "umap-hdbscan" in results:
        print(
            f"ratio study UMAP / xray-atlas umap-hdbscan: "
            f"{results['study-umap']['seconds'] / results['umap-hdbscan']['seconds']:.1f} x time, "
            f"{results['study-umap']['peak_mb'] / results['umap-hdbscan']['peak_mb']:.1f} x memory"
        )
    if "minisom" in results and "som-3x3" in results:
        print(
            f"ratio minisom / xray-atlas som 3 x 3: "
            f"{results['minisom']['seconds'] / results['som-3x3']['seconds']:.1f} x time, "
            f"{results['minisom']['peak_mb'] / results['som-3x3']['peak_mb']:.1f} x memory"
        )


if __name__ == "__main__":
    main()
