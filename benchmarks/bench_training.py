"""Training from the napari dock: does the window stay responsive, and what does training on
a worker cost against training headless?

Measures, in one run on this machine:

- event-loop latency of a napari window (a 10 ms QTimer; latency = gap - 10 ms): idle, while
  the Training dock trains in its child process (its only path since issue 26, CPU and GPU,
  at nice 10), and while it trains on a thread (its CPU path before, forced here);
- training throughput (spectra/s, the loop's own figure, epochs 2-4 averaged): headless
  ``train()``, the dock in its child process, the dock on a thread; as ratios to headless;
- the fused Adam step against torch's default per-tensor loop, on the study FCN.

The task is the default elemental-map run (FCN 4096-512-64-64-12, synthetic spectra of the
default instrument, 8,192 new spectra per epoch, batch 256). Usage:
``python benchmarks/bench_training.py``.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

EPOCHS = 5


def _config():
    from xray_atlas.training import make_config

    return make_config("maps", epochs=EPOCHS, device="cpu")


def _throughput(history) -> float:
    return statistics.mean(e.samples_per_s for e in history[1:4])


def headless(tmp: Path) -> float:
    from xray_atlas.training import train

    return _throughput(train(_config(), tmp / "headless").result.history)


def fused_adam() -> dict:
    import torch

    from xray_atlas.models import build

    out = {}
    for label, kw in (("default", {}), ("fused", {"fused": True})):
        torch.manual_seed(0)
        model, _ = build("fcn")
        opt = torch.optim.Adam(model.parameters(), **kw)
        x, y = 5 * torch.rand(256, 4096), torch.rand(256, 12)
        for i in range(23):
            if i == 3:
                t = time.perf_counter()
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()
        out[label] = 20 * 256 / (time.perf_counter() - t)
    return out


def in_napari(tmp: Path) -> dict:
    from xray_atlas.napari._display import ensure_display

    ensure_display()
    import napari
    import numpy as np
    from qtpy.QtCore import QElapsedTimer, QTimer
    from qtpy.QtWidgets import QApplication

    import xray_atlas.training.run as run_mod
    from xray_atlas.training import EpochEnd, Finished

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    _, dock = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Training")
    app = QApplication.instance()

    def latency(seconds: float, until=None) -> list[float]:
        gaps, clock = [], QElapsedTimer()
        clock.start()
        last = [clock.elapsed()]

        def tick():
            now = clock.elapsed()
            gaps.append(now - last[0] - 10)
            last[0] = now

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(10)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and (until is None or not until()):
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        return gaps

    results = {"idle": latency(5.0)}
    for mode in ("process", "thread"):
        original = run_mod.Run.__init__

        def forced(self, *a, _mode=mode, **k):
            if _mode == "thread":  # the dock's own settings otherwise
                k["mode"] = _mode
            original(self, *a, **k)

        run_mod.Run.__init__ = forced
        try:
            dock.task_combo.setCurrentText("maps")
            dock.epochs.setValue(EPOCHS)
            dock.device_combo.setCurrentText("cpu")
            dock.out_edit.setText(str(tmp / f"dock-{mode}"))
            worker = dock.start()
            seen: list = []
            worker.yielded.connect(seen.append)
            latency(120, until=lambda: any(isinstance(e, EpochEnd) for e in seen))  # skip data set-up
            results[mode] = latency(120, until=lambda: any(isinstance(e, Finished) for e in seen))
            while dock.busy:
                app.processEvents()
                time.sleep(0.01)
            results[f"{mode}_throughput"] = _throughput([e for e in seen if isinstance(e, EpochEnd)])
        finally:
            run_mod.Run.__init__ = original
    viewer.close()
    return {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in results.items()}


def main() -> None:
    import numpy as np
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
    os.environ.setdefault("XRAY_ATLAS_HOME", str(tmp / "home"))
    try:
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads"
        )
        adam = fused_adam()
        print(
            f"Adam step, FCN, batch 256: default {adam['default']:,.0f} spectra/s, fused {adam['fused']:,.0f} "
            f"spectra/s ({adam['fused'] / adam['default']:.2f}x)"
        )
        base = headless(tmp)
        print(f"headless train(): {base:,.0f} spectra/s")
        r = in_napari(tmp)
        for mode in ("process", "thread"):
            print(
                f"dock, {mode}: {r[f'{mode}_throughput']:,.0f} spectra/s ({r[f'{mode}_throughput'] / base:.2f}x headless)"
            )
        print("event-loop latency (ms):        p50     p99     max   samples")
        for k in ("idle", "process", "thread"):
            g = r[k]
            print(f"  {k:<28} {np.percentile(g, 50):6.1f} {np.percentile(g, 99):7.1f} {g.max():7.1f} {len(g):7d}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
