"""How napari's window fares while a dock runs a batch over a folder, three ways.

A 10 ms QTimer ticks on the main thread of a shown viewer; the longest gap between two ticks
is the longest freeze. The same folder of small simulated scans goes through ``xray-atlas
batch maps`` as

- ``child``: :func:`xray_atlas.batch.iter_batch`, the docks' way: the dask client and a local
  cluster of worker processes live in a spawned child process; napari's process reads its
  progress from a queue;
- ``threads``: :func:`xray_atlas.batch.run_batch` on a napari worker thread with a local
  cluster of worker *threads* (``processes=False``): the cubes run in napari's process;
- ``processes``: ``run_batch`` on a napari worker thread with a local cluster of worker
  processes started from napari's process;
- ``idle``: a worker thread that sleeps 20 s: the floor the machine's own load sets (a
  shared machine's other processes take the CPU from the window too).

Each mode writes into its own OUTDIR; the figures are the longest gap, the wall time and the
rate the report states.

Usage::

    python benchmarks/bench_folder_gui.py [--scans 6] [--size 24] [--model lsq] [--workers 2]
                                          [--json OUT.json]

Runs under Xvfb when there is no display (xray_atlas.napari._display).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scans", type=int, default=6)
    ap.add_argument("--size", type=int, default=24, help="pixels per side of each scan")
    ap.add_argument("--model", default="lsq", help="map model (maps-fit: the default, heavier)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--modes", default="processes,threads,child")
    ap.add_argument("--nice", type=int, default=10, help="the child mode's nice (the docks': 10)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()

    from xray_atlas.napari._display import ensure_display

    ensure_display()
    import napari
    from napari.qt.threading import create_worker
    from qtpy.QtCore import QElapsedTimer, QEventLoop, QTimer

    from xray_atlas.batch import iter_batch, run_batch
    from xray_atlas.physics.painting import synthetic_painting

    work = Path(tempfile.mkdtemp(prefix="bench-folder-"))
    scans = work / "scans"
    scans.mkdir()
    for i in range(args.scans):
        synthetic_painting(args.size, args.size, n_channels=2048, seed=i).write(scans / f"scan{i:02d}.h5")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1200, 800)
    options = {"model": args.model}
    scheduler = f"local:{args.workers}"
    figures: dict = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "scans": args.scans,
        "size": args.size,
        "model": args.model,
        "workers": args.workers,
        "child_nice": args.nice,
        "modes": {},
    }

    for mode in args.modes.split(","):
        out = work / f"out-{mode}"
        if mode == "idle":
            worker = create_worker(time.sleep, 20.0, _start_thread=False)
        elif mode == "child":
            worker = create_worker(
                lambda: (
                    yield from iter_batch("maps", [scans], out, options=options, scheduler=scheduler, nice=args.nice)
                ),
                _start_thread=False,
            )
        else:
            worker = create_worker(
                run_batch,
                "maps",
                [scans],
                out,
                options=options,
                scheduler=scheduler,
                processes=mode == "processes",
                _start_thread=False,
            )
        result: dict = {}
        worker.returned.connect(lambda report, r=result: r.setdefault("report", report))
        worker.finished.connect(lambda r=result: r.setdefault("finished", True))
        worker.errored.connect(lambda err, r=result: r.setdefault("error", repr(err)))
        clock = QElapsedTimer()
        clock.start()
        gaps = {"last": 0, "longest": 0}

        def tick(g=gaps, c=clock) -> None:
            now = c.elapsed()
            g["longest"] = max(g["longest"], now - g["last"])
            g["last"] = now

        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(tick)
        timer.start()
        loop = QEventLoop()  # the window's own event loop, as napari.run() has it
        worker.finished.connect(loop.quit)
        t0 = time.perf_counter()
        worker.start()
        loop.exec()
        wall = time.perf_counter() - t0
        timer.stop()
        report = result.get("report")
        if mode == "idle":
            figures["modes"][mode] = {"longest_gap_ms": gaps["longest"], "wall_s": round(wall, 2)}
            print(mode, figures["modes"][mode], flush=True)
            continue
        figures["modes"][mode] = {
            "longest_gap_ms": gaps["longest"],
            "wall_s": round(wall, 2),
            "ok": report.count("ok") if report else None,
            "error": result.get("error"),
            "cubes_per_min": round(report.count("ok") / max(report.run_seconds, 1e-9) * 60, 1) if report else None,
        }
        print(mode, figures["modes"][mode], flush=True)
    viewer.close()
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
