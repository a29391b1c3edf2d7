"""The longest event-loop stall of napari while each dock runs and while its results arrive.

A 10 ms QTimer ticks on the main thread; a stall is the gap between two ticks (a frozen
window cannot tick). For each dock the run is split into two phases:

- ``compute``: the job runs on its worker thread (the main thread only draws progress);
- ``arrival``: the result is handed over and its layers are added (one per event-loop turn,
  :class:`xray_atlas.napari._workers.Delivery`), until the dock is idle again.

With each longest gap, the most CPU time the process spent in one gap (``*_cpu_stall_ms``,
all its threads: in ``compute`` the worker's too): on a machine shared with other work a gap
also waits for a free core, the CPU time does not.

Docks: Elemental maps (maps-fit, the demo painting), Element probabilities (per pixel),
Clusters (UMAP + HDBSCAN), Training (task maps, one small epoch; the whole run counts as one
phase, ``run``).

Baseline, in the same process: the same maps layers added all at once in one event-loop
turn (what the dock did before), the longest stall that takes; reported beside the arrival
stall as a ratio. Floor: napari's own stall for one small image layer added to a fresh, empty
viewer (five times); no delivery of layers can stall less than one layer's add.

Usage::

    python benchmarks/bench_gui_stall.py [--json OUT.json]

Runs under Xvfb when there is no display (xray_atlas.napari._display).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    # the Training dock's run remembers its model in the user folder, as a user's run should:
    # the benchmark's go to a folder of its own, not into the user's model lists
    home = tempfile.mkdtemp(prefix="xa-stall-home-")
    os.environ["XRAY_ATLAS_HOME"] = home

    from xray_atlas.napari._display import ensure_display

    ensure_display()
    from qtpy.QtCore import QElapsedTimer, QTimer
    from qtpy.QtWidgets import QApplication

    from xray_atlas.napari._demo import PLUGIN, build_demo_viewer

    viewer, inspector = build_demo_viewer(show=True)
    viewer.window.resize(1600, 1000)
    app = QApplication.instance()
    while inspector.jobs.busy:
        app.processEvents()
    docks = {}
    for name in ("Elemental maps", "Element probabilities", "Clusters", "Training"):
        docks[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)[1]

    class Ticks:
        """Longest gap between 10 ms ticks, per phase (``phase()`` names the current one)."""

        def __init__(self, phase):
            self.phase = phase
            self.clock = QElapsedTimer()
            self.clock.start()
            self.last, self.at, self.last_cpu = 0, phase(), time.process_time()
            self.worst: dict[str, int] = {}
            self.cpu: dict[str, int] = {}
            self.timer = QTimer()
            self.timer.setInterval(10)
            self.timer.timeout.connect(self.tick)
            self.timer.start()

        def tick(self) -> None:
            now, ph, cpu = self.clock.elapsed(), self.phase(), time.process_time()
            for p in {ph, self.at}:  # a gap counts for the phase it began and ended in
                self.worst[p] = max(self.worst.get(p, 0), now - self.last)
                # the process's CPU time in the gap (all its threads): on a loaded machine the
                # gap waits for a core too, this does not
                self.cpu[p] = max(self.cpu.get(p, 0), round(1e3 * (cpu - self.last_cpu)))
            self.last, self.at, self.last_cpu = now, ph, cpu

        def stop(self) -> dict[str, int]:
            self.timer.stop()
            return {**self.worst, **{f"{k}_cpu": v for k, v in self.cpu.items()}}

    def job_phase(dock):
        return lambda: (
            "compute"
            if dock.jobs.worker is not None and dock.jobs._feed is None
            else "arrival"
            if dock.jobs.busy
            else "idle"
        )

    results: dict[str, dict] = {}

    def measure(name: str, start, busy, phase) -> None:
        for _ in range(20):
            app.processEvents()
        ticks = Ticks(phase)
        t0 = time.perf_counter()
        start()
        while busy():
            app.processEvents()
            time.sleep(0.001)
        for _ in range(10):
            app.processEvents()
        worst = ticks.stop()
        worst.pop("idle", None)
        worst.pop("idle_cpu", None)
        results[name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            **{f"{k}_stall_ms": v for k, v in worst.items()},
            "layers": len(viewer.layers),
        }
        print(f"{name:22s} {results[name]}", flush=True)

    maps = docks["Elemental maps"]
    captured = {}
    maps_delivery = maps._delivery

    def keep(*args):  # keep the layer tuples for the baseline below
        d = maps_delivery(*args)
        captured["layers"] = list(d.layers)
        return d

    maps._delivery = keep
    measure("Elemental maps", maps.run, lambda: maps.jobs.busy, job_phase(maps))
    probs = docks["Element probabilities"]
    measure("Element probabilities", probs.run, lambda: probs.jobs.busy, job_phase(probs))
    clusters = docks["Clusters"]
    measure("Clusters", clusters.run, lambda: clusters.jobs.busy, job_phase(clusters))

    training = docks["Training"]
    training.task_combo.setCurrentText("maps")
    for k, v in {"n_train": 1024, "n_val": 128, "n_channels": 1024, "gain_kev": 0.02}.items():
        training.source_form.set_value(k, v)
    training.epochs.setValue(1)
    training.batch_size.setValue(32)
    training.device_combo.setCurrentText("cpu")
    training.out_edit.setText(os.path.join(home, f"xa-stall-{os.getpid()}"))
    measure("Training", training.start, lambda: training.busy, lambda: "run" if training.busy else "idle")

    # baseline: the maps' layers added in one turn, as before
    from napari.layers import Layer

    layers = [Layer.create(d, {**k, "name": f"baseline {k['name']}"}, t) for d, k, t in captured["layers"]]
    for _ in range(20):
        app.processEvents()
    ticks = Ticks(lambda: "baseline")
    for layer in layers:
        viewer.add_layer(layer)
    for _ in range(10):
        app.processEvents()
    base = ticks.stop().get("baseline", 0)
    ratio = results["Elemental maps"]["arrival_stall_ms"] / max(base, 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results["baseline: maps layers in one turn"] = {
        "stall_ms": base,
        "layers": len(layers),
        "arrival_over_baseline": round(ratio, 3),
        "load_average_1min_at_end": round(load, 2),
    }
    print(
        f"baseline (maps layers added in one turn): {base} ms for {len(layers)} layers; "
        f"arrival stall / baseline = {ratio:.3f}; load average {load:.2f}"
    )
    # floor: napari's own stall for one image layer added to a fresh, empty viewer
    import napari

    bare = napari.Viewer(show=True)
    bare.window.resize(1600, 1000)
    floor = []
    for i in range(5):
        for _ in range(20):
            app.processEvents()
            time.sleep(0.005)
        ticks = Ticks(lambda: "floor")
        bare.add_image(np.random.default_rng(i).random((96, 128)).astype(np.float32), contrast_limits=(0, 1))
        t_end = time.perf_counter() + 0.5
        while time.perf_counter() < t_end:
            app.processEvents()
            time.sleep(0.002)
        floor.append(ticks.stop().get("floor", 0))
    bare.close()
    results["floor: one layer into an empty viewer"] = {"stall_ms": floor, "median_ms": float(np.median(floor))}
    print(f"floor (napari, one 96 x 128 layer into an empty viewer): {floor} ms")
    info = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "results": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(info, f, indent=2)
    viewer.close()


if __name__ == "__main__":
    main()
