"""Throughput of ``xray-atlas batch maps`` with one and with two local workers on the same
eight cubes, and of the shell loop it replaces.

Eight synthetic paintings of 64 x 96 pixels x 4,096 channels (51 MB each, seeds 0-7, made once
into benchmarks/data/batch/) get their maps with the default model (``maps-fit``):

- ``local:1`` and ``local:2``: :func:`xray_atlas.batch.run_batch` with a local cluster of one
  worker (given both cores for torch's and BLAS's threads) or two workers (one core each);
  "cubes/min" counts from the first cube submitted to the last result, "wall" adds the
  cluster's start;
- ``loop``: ``xray-atlas maps CUBE OUT.h5`` once per cube, one process after the other (what a
  shell loop does: each process imports and loads its model).

The batch runs alternate (1, 2, 1, 2 workers) so that a neighbour's load shows as disagreeing
rounds. Usage: ``python benchmarks/bench_batch.py [--rounds R] [--no-loop]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "batch"
N_CUBES, HEIGHT, WIDTH = 8, 64, 96


def make_cubes() -> list[Path]:
    from xray_atlas.physics.painting import synthetic_painting

    DATA.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(N_CUBES):
        path = DATA / f"painting_{seed}.h5"
        if not path.exists():
            synthetic_painting(HEIGHT, WIDTH, seed=seed).write(path)
        paths.append(path)
    return paths


def batch_run(n_workers: int, cubes: list[Path], out: Path) -> dict:
    from xray_atlas.batch import run_batch

    t0 = time.perf_counter()
    report = run_batch("maps", cubes, out, scheduler=f"local:{n_workers}")
    wall = time.perf_counter() - t0
    assert report.count("ok") == len(cubes), [r["error"] for r in report.rows if r["error"]]
    return {
        "workers": n_workers,
        "cubes_per_min": len(cubes) / report.run_seconds * 60,
        "run_s": report.run_seconds,
        "wall_s": wall,
        "cube_s": [r["seconds"] for r in report.rows],
    }


def loop_run(cubes: list[Path], out: Path) -> dict:
    exe = Path(sys.executable).with_name("xray-atlas")
    out.mkdir()
    t0 = time.perf_counter()
    for cube in cubes:
        subprocess.run([str(exe), "maps", str(cube), str(out / cube.name)], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    return {"cubes_per_min": len(cubes) / wall * 60, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-loop", action="store_true", help="skip the shell loop of xray-atlas maps")
    args = parser.parse_args()
    cubes = make_cubes()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load average {os.getloadavg()}", flush=True)
    print(f"{len(cubes)} cubes {HEIGHT} x {WIDTH} x 4096, default model (maps-fit)", flush=True)
    results: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        for r in range(args.rounds):
            for n in (1, 2):
                res = batch_run(n, cubes, Path(tmp) / f"out_{n}_{r}")
                results[n].append(res)
                print(
                    f"round {r + 1}: local:{n}: {res['cubes_per_min']:.1f} cubes/min ({res['run_s']:.1f} s for "
                    f"{len(cubes)} cubes, wall {res['wall_s']:.1f} s with the cluster's start); per cube "
                    f"{min(res['cube_s']):.2f}-{max(res['cube_s']):.2f} s",
                    flush=True,
                )
        if not args.no_loop:
            loop = loop_run(cubes, Path(tmp) / "loop")
            print(
                f"loop of xray-atlas maps: {loop['cubes_per_min']:.1f} cubes/min ({loop['wall_s']:.1f} s)", flush=True
            )
    best = {n: max(r["cubes_per_min"] for r in rs) for n, rs in results.items()}
    ratios = [b["cubes_per_min"] / a["cubes_per_min"] for a, b in zip(results[1], results[2])]
    print(
        f"throughput 2 workers / 1 worker: {', '.join(f'{x:.2f}' for x in ratios)} per round "
        f"(best of each: {best[2] / best[1]:.2f})"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":  # the local cluster's workers are spawned processes: they import this file
    main()
