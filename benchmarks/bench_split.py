"""One large cube on one worker and on two, its rows split into blocks: ``xray-atlas batch
maps`` with :func:`xray_atlas.batch.run_batch` (issue 33: "one 100 GB cube uses the cluster too").

The cube: a simulated painting of 256 x 384 pixels x 4,096 channels, float32 counts (1.61 GB,
1.5 GiB), made of four synthetic paintings of 64 rows (seeds 0-3) stacked, built into a
temporary folder in benchmarks/data/ and deleted at the end. Its maps with the default model
(``maps-fit``), three ways, alternating each round:

- ``local:1``: one worker (both cores for its torch and BLAS threads), the cube whole (the
  automatic default does not split on one worker);
- ``local:2 whole``: two workers (one core each), ``split_rows=0``: the cube whole on one of
  them, the other idle (what issue 33's one-task-per-cube batch did);
- ``local:2 split``: two workers, blocks of 32 rows: 8 blocks of 4 tiles, the blocks the
  automatic split makes of a cube above its threshold (4 per worker, whole tiles; this cube,
  at 1.5 GiB, is below it).

"run" counts from the first task submitted to the result written (the cluster's start comes
on top, in "wall"); spectra/s is the cube's pixels over "run". The split run's report row says
how long the steps that are not split took (preparation: the per-cluster fit's clusters and
spectra; assembly: holding the clusters, shrinking, writing). The split result is compared
with the whole ones: with ``local:2 whole`` (one thread a worker, as the blocks had) and
with ``local:1`` (two threads: the per-cluster fit's k-means then puts a few boundary pixels
in other clusters, the single command's own dependence on the thread count).

``--task probabilities`` runs the element probabilities instead (``elements-default`` per
pixel), a task without global steps: every pixel's work is in the blocks.

Usage: ``python benchmarks/bench_split.py [--rounds R] [--task maps|probabilities] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STRIPES, STRIPE_ROWS, WIDTH, CHANNELS = 4, 64, 384, 4096


def make_cube(path: Path) -> Path:
    """Four synthetic paintings of 64 rows stacked into one cube file, in the layout
    ``io.hdf5.write_cube`` writes (written stripe by stripe, never whole in memory)."""
    import h5py

    from xray_atlas.physics.painting import synthetic_painting

    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "spectra", shape=(STRIPES * STRIPE_ROWS, WIDTH, CHANNELS), dtype=np.float32, chunks=(8, 8, CHANNELS)
        )
        for k in range(STRIPES):
            p = synthetic_painting(STRIPE_ROWS, WIDTH, seed=k, n_channels=CHANNELS)
            ds[k * STRIPE_ROWS : (k + 1) * STRIPE_ROWS] = p.counts.astype(np.float32)
            if k == 0:
                ds.attrs["energy_offset_kev"] = float(p.energy_offset_kev)
                ds.attrs["energy_gain_kev"] = float(p.energy_gain_kev)
                for key, value in p.attrs.items():
                    f.attrs[key] = value
            del p
    return path


def run(cube: Path, out: Path, n_workers: int, split_rows: int | None, task: str = "maps") -> dict:
    from xray_atlas.batch import local_cluster, run_batch

    t0 = time.perf_counter()
    # a cluster of its own, given by address: ``local:N`` would start no more workers than
    # cubes when the cube is not split, and ``local:2 whole`` would be one worker of two threads
    with local_cluster(n_workers) as cluster:
        report = run_batch(task, [cube], out, scheduler=cluster.scheduler_address, split_rows=split_rows)
    wall = time.perf_counter() - t0
    (row,) = report.rows
    assert row["status"] == "ok", row["error"]
    assert report.workers == n_workers, report.workers
    return {"run_s": report.run_seconds, "wall_s": wall, "row": row}


def compare(a: Path, b: Path) -> tuple[float, int]:
    """The largest difference between two results' maps, over each map's largest value, and
    the pixels where some map differs by more than 1e-3 of its largest value."""
    import h5py

    worst, far = 0.0, None
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        group = "maps" if "maps" in fa else "probabilities"
        assert sorted(fa[group]) == sorted(fb[group])
        for line in fa[group]:
            x, y = fa[group][line][()], fb[group][line][()]
            scale = max(float(np.abs(x).max()), 1e-12)
            worst = max(worst, float(np.abs(x - y).max()) / scale)
            hit = np.abs(x - y) > 1e-3 * scale
            far = hit if far is None else far | hit
    return worst, int(far.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the cube and the results (printed folder)")
    parser.add_argument(
        "--task",
        choices=("maps", "probabilities"),
        default="maps",
        help="probabilities (elements-default per pixel): a task without global steps",
    )
    args = parser.parse_args()
    (HERE / "data").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="split_", dir=HERE / "data"))
    try:
        t0 = time.perf_counter()
        cube = make_cube(tmp / "painting.h5")
        n_pixels = STRIPES * STRIPE_ROWS * WIDTH
        print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load average {os.getloadavg()}", flush=True)
        print(
            f"cube {STRIPES * STRIPE_ROWS} x {WIDTH} x {CHANNELS} float32, {cube.stat().st_size / 1e9:.2f} GB, "
            f"built in {time.perf_counter() - t0:.0f} s; {args.task}, default model",
            flush=True,
        )
        runs = (("local:1", 1, None), ("local:2 whole", 2, 0), ("local:2 split", 2, 32))
        results: dict[str, list[dict]] = {name: [] for name, _, _ in runs}
        for r in range(args.rounds):
            for name, n, split in runs:
                res = run(cube, tmp / f"out_{name.replace(':', '').replace(' ', '_')}_{r}", n, split, args.task)
                results[name].append(res)
                extra = ""
                if "split" in res["row"]:
                    s = res["row"]["split"]
                    blocks = s["block_seconds"]
                    not_split = s["prepare_seconds"] + s["write_seconds"]
                    extra = (
                        f"; {len(blocks)} blocks of {s['blocks'][0][1] - s['blocks'][0][0]} rows, "
                        f"{min(blocks):.1f}-{max(blocks):.1f} s each, prepare {s['prepare_seconds']:.1f} s "
                        f"({s['load_seconds']:.1f} s of it getting the model), "
                        f"assemble+write {s['write_seconds']:.1f} s (not split: {not_split:.1f} s, "
                        f"{not_split / res['run_s']:.0%} of the run)"
                    )
                print(
                    f"round {r + 1}: {name}: {res['run_s']:.1f} s, {n_pixels / res['run_s']:,.0f} spectra/s "
                    f"(wall {res['wall_s']:.1f} s with the cluster's start){extra}; load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        one = [x["run_s"] for x in results["local:1"]]
        for name in ("local:2 whole", "local:2 split"):
            ratios = [a / b["run_s"] for a, b in zip(one, results[name])]
            print(
                f"throughput {name} / local:1: {', '.join(f'{x:.2f}' for x in ratios)} per round "
                f"(best of each: {min(one) / min(x['run_s'] for x in results[name]):.2f})",
                flush=True,
            )
        split = tmp / "out_local2_split_0" / "painting.h5"
        for name, whole in (
            ("local:2 whole (one thread a worker, as the split's)", "out_local2_whole_0"),
            ("local:1 (two threads)", "out_local1_0"),
        ):
            d, moved = compare(tmp / whole / "painting.h5", split)
            print(
                f"split against {name}: largest map difference {d:.2e} of the map's largest value, "
                f"{moved} pixel(s) with a map more than 1e-3 of its largest value apart",
                flush=True,
            )
        print(f"load average after: {os.getloadavg()}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # the local cluster's workers are spawned processes: they import this file
    main()
