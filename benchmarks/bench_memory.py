"""Peak memory of maps, probabilities and both clusterings on a cube of >= 4 GB on disk.

Issues 31 and 33: whatever the cube's size, each of these commands stays under about 2 GB
of resident memory. The script writes (once) a 1024 x 1024 x 2048 uint16 HDF5 cube in the
project's layout (docs/dev/contracts.md section 2; 4.29 GB), then runs each command in a fresh
process through the command line and prints its peak resident memory (the child's
``ru_maxrss``), wall time and spectra per second:

- ``xray-atlas maps`` (the default model, maps-fit: clustering, per-cluster fit, learnt correction)
- ``xray-atlas maps --model maps-default`` (a per-pixel learnt model)
- ``xray-atlas probabilities``
- ``xray-atlas cluster --method umap-hdbscan``
- ``xray-atlas cluster --method som``

The cube is a synthetic painting of 256 x 256 pixels (the physics engine's expected counts,
:func:`xray_atlas.physics.painting.paint`) laid 4 x 4 times side by side, each copy with its
own Poisson draw, written block by block: writing it holds one 256 x 256 block, not the cube.

Usage: ``python benchmarks/bench_memory.py [FOLDER] [--only NAME ...] [--delete]``
(FOLDER default /tmp/xray-atlas-bench-memory; ``--delete`` removes the cube afterwards).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
BLOCK, REPEAT, CHANNELS, GAIN_KEV = 256, 4, 2048, 0.02
H = W = BLOCK * REPEAT

RUNS = {
    "maps": ["maps"],
    "maps-default": ["maps", "--model", "maps-default"],
    "probabilities": ["probabilities"],
    "umap-hdbscan": ["cluster", "--method", "umap-hdbscan"],
    "som": ["cluster", "--method", "som"],
}


def make_cube(path: Path) -> None:
    """Write the 1024 x 1024 x 2048 cube block by block (a no-op when it exists)."""
    import numpy as np

    from xray_atlas.io.results import atomic_h5
    from xray_atlas.physics.generator import poisson
    from xray_atlas.physics.painting import paint, painting_instrument, shapes_layout

    if path.exists():
        return
    t = time.perf_counter()
    reg, regions = shapes_layout(BLOCK, BLOCK, seed=0)
    inst = painting_instrument(n_channels=CHANNELS, gain_kev=GAIN_KEV)
    painting = paint(reg, regions, instrument=inst, seed=0, truth=True)
    expected = painting.truth["expected"].reshape(-1, CHANNELS)
    painting.truth = None
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as f:
        ds = f.create_dataset("spectra", shape=(H, W, CHANNELS), dtype="u2", chunks=(8, 8, CHANNELS))
        ds.attrs["energy_offset_kev"] = painting.energy_offset_kev
        ds.attrs["energy_gain_kev"] = painting.energy_gain_kev
        for k, v in painting.attrs.items():
            f.attrs[k] = v
        f.attrs["region_names"] = np.array(painting.region_names, dtype="S")
        f.create_dataset("regions", data=np.tile(painting.regions, (REPEAT, REPEAT)))
        for i in range(REPEAT):
            for j in range(REPEAT):
                rng = np.random.default_rng(1000 + REPEAT * i + j)
                block = np.empty(expected.shape, np.uint16)
                for a in range(0, expected.shape[0], 256):
                    block[a : a + 256] = poisson(expected[a : a + 256], rng)
                ds[i * BLOCK : (i + 1) * BLOCK, j * BLOCK : (j + 1) * BLOCK] = block.reshape(BLOCK, BLOCK, CHANNELS)
            print(f"  wrote rows {i * BLOCK}-{(i + 1) * BLOCK} ({time.perf_counter() - t:.0f} s)", flush=True)
    print(
        f"cube {path}: {path.stat().st_size / 1e9:.2f} GB on disk, {time.perf_counter() - t:.0f} s to write", flush=True
    )


def run(name: str, cube: Path, folder: Path, src: Path = SRC) -> dict:
    """One command in a fresh process; its peak resident memory from ``os.wait4`` (ru_maxrss, as RUSAGE_CHILDREN gives it)."""
    out = folder / f"{name}.h5"
    cmd = [sys.executable, "-m", "xray_atlas.cli", *RUNS[name][:1], str(cube), str(out), *RUNS[name][1:], "--overwrite"]
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    text = proc.stdout.read()
    rc = os.waitstatus_to_exitcode(status)
    return {
        "name": name,
        "command": " ".join(["xray-atlas", *cmd[3:]]),
        "rc": rc,
        "wall_s": wall,
        "peak_mb": usage.ru_maxrss / 1024,
        "spectra_per_s": H * W / wall,
        "output": text.strip()[-2000:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", default="/tmp/xray-atlas-bench-memory")
    ap.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    ap.add_argument("--cube-only", action="store_true", help="write the cube and stop")
    ap.add_argument("--delete", action="store_true", help="remove the folder (cube and results) afterwards")
    ap.add_argument(
        "--src",
        type=Path,
        default=SRC,
        help="the xray_atlas source tree the commands run (default: "
        "this checkout's; another, e.g. a copy of an older commit's, for a before-and-after)",
    )
    args = ap.parse_args()
    sys.path.insert(0, str(SRC))
    folder = Path(args.folder)
    cube = folder / "cube-1024x1024x2048.h5"
    make_cube(cube)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.python_version()}; "
        f"cube {cube.stat().st_size / 1e9:.2f} GB ({H} x {W} x {CHANNELS} uint16)",
        flush=True,
    )
    if args.cube_only:
        return
    rows = []
    for name in args.only:
        r = run(name, cube, folder, args.src)
        rows.append(r)
        print(
            f"{name}: rc {r['rc']}, peak {r['peak_mb']:.0f} MB, {r['wall_s']:.0f} s, "
            f"{r['spectra_per_s']:,.0f} spectra/s\n  {r['command']}\n  " + r["output"].replace("\n", "\n  "),
            flush=True,
        )
    print("\n| run | peak resident memory | wall | spectra/s |\n| --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| `{r['command']}` | {r['peak_mb']:.0f} MB | {r['wall_s']:.0f} s | {r['spectra_per_s']:,.0f} |"
            + ("" if r["rc"] == 0 else f" (exit {r['rc']})")
        )
    if args.delete:
        shutil.rmtree(folder)
        print(f"removed {folder}")


if __name__ == "__main__":
    main()
