"""Data-parallel training on the CPU: one process against N DDP processes (gloo) on the same
task, the same global batch and the same cores.

Measures training throughput (samples per second: the loop's own figure, all processes
together, over an epoch including validation and rank 0's checkpoint writes; mean of epochs 2
to the last) for:

- ``spectra``: the default elemental-map run (FCN 4096-512-64-64-12, new synthetic spectra
  drawn every batch by the physics engine, batch 256, Adam) with 8,192 spectra per epoch;
  with N processes each draws its own share of every batch;
- ``images``: image classification (image-cnn with BatchNorm, 64 x 64 synthetic micrographs
  held in memory, batch 64, Adam): compute only, no data drawing.

One process runs with all of torch's threads, and again with one thread; N processes with
threads / N each (what ``launch`` does), so all use the same cores. Runs alternate (1, 1 with
one thread, N, 1, ...) so that load from other work on a shared machine falls on all alike;
every run is printed with the load average, then the medians.

Usage: ``python benchmarks/bench_ddp.py [--processes 2] [--repeats 2] [--epochs 4] [--tasks spectra,images]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def _config(task: str, epochs: int):
    from xray_atlas.training import make_config

    if task == "spectra":
        return make_config(
            "maps",
            epochs=epochs,
            device="cpu",
            batch_size=256,
            patience=0,
            source_params={"n_train": 8192, "n_val": 1024},
        )
    if task == "images":
        return make_config(
            "images",
            source="synthetic-micrographs",
            model="image-cnn",
            epochs=epochs,
            device="cpu",
            batch_size=64,
            patience=0,
            schedule="constant",
            source_params={"n_images": 1600, "frame": 64, "size": 64},
        )
    raise SystemExit(f"unknown task {task!r}")


def _throughput(history) -> float:
    return statistics.mean(e.samples_per_s for e in history[1:])


def one_run(task: str, n: int, threads: int, epochs: int, folder: Path) -> float:
    import torch

    from xray_atlas.training import train
    from xray_atlas.training.distributed import launch

    cfg = _config(task, epochs)
    out = folder / f"{task}-{n}-{time.monotonic_ns()}"
    if n == 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            outcome = train(cfg, out, remember=False)
        finally:
            torch.set_num_threads(before)
    else:
        outcome = launch(n, cfg, out, remember=False, threads=threads)
    return _throughput(outcome.result.history)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--tasks", default="spectra,images")
    args = ap.parse_args()
    import torch

    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    all_threads = torch.get_num_threads()
    variants = ((1, all_threads), (1, 1), (args.processes, max(1, all_threads // args.processes)))
    names = {v: f"{v[0]} process{'es' if v[0] > 1 else ''} x {v[1]} thread{'s' if v[1] > 1 else ''}" for v in variants}
    results: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            for r in range(args.repeats):
                for n, threads in variants:
                    v = one_run(task, n, threads, args.epochs, Path(tmp))
                    results.setdefault((task, n, threads), []).append(v)
                    print(
                        f"{task} run {r + 1}: {names[(n, threads)]}: {v:,.0f} samples/s "
                        f"(load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("\n| task | " + " | ".join(names[v] for v in variants) + " | ratio N procs / 1 proc |")
    print("| --- |" + " --- |" * (len(variants) + 1))
    for task in args.tasks.split(","):
        med = [statistics.median(results[(task, *v)]) for v in variants]
        print(f"| {task} | " + " | ".join(f"{m:,.0f} samples/s" for m in med) + f" | {med[2] / med[0]:.2f} |")


if __name__ == "__main__":
    main()
