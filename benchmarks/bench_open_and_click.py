"""Open a 564 x 428 x 4096 uint16 HDF5 cube in napari and click pixels.

Measures, in one run:

1. Baseline: a plain numpy read-and-sum of the same file (``f["spectra"][()].sum(-1)``),
   wall time and peak memory added, in a fresh process.
2. The plugin: ``viewer.open`` through the xray-atlas reader until the streamed
   total-counts image is complete (worker thread, progress bar), wall time and peak memory
   added, in a fresh process. Reported as a ratio to the baseline.
3. Click -> spectrum drawn: real Qt mouse clicks on the canvas over random pixels, timed from
   the click until the plot widget has repainted (synchronous repaint), median and p95.

The page cache is dropped before each timed read when this runs as root (cold disk), and the
runs are repeated warm. Usage::

    python benchmarks/bench_open_and_click.py [--height 564 --width 428 --clicks 200]

The cube is generated once into benchmarks/data/ (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_cube(path: Path, height: int, width: int) -> None:
    """A painting-like uint16 cube, chunked for spectra (8 x 8 pixels x all channels)."""
    import h5py

    from xray_atlas.physics.painting import synthetic_painting

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    block = synthetic_painting(32, width, seed=0).counts  # 32 rows, repeated with shifts
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("spectra", shape=(height, width, 4096), dtype="u2", chunks=(8, 8, 4096))
        ds.attrs.update(energy_offset_kev=0.0, energy_gain_kev=0.01)
        for r in range(0, height, 32):
            n = min(32, height - r)
            ds[r : r + n] = np.roll(block, r, axis=1)[:n]
    os.replace(tmp, path)


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


class PeakRSS:
    """Samples this process's resident memory every 5 ms."""

    def __init__(self) -> None:
        self.base = self.rss()
        self.peak = self.base
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, self.rss())

    @property
    def added_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def child_numpy(path: str) -> dict:
    import h5py

    with PeakRSS() as mem:
        t = time.perf_counter()
        with h5py.File(path, "r") as f:
            total = f["spectra"][()].sum(axis=-1)
        dt = time.perf_counter() - t
    return {"seconds": dt, "peak_added_mb": mem.added_mb, "checksum": float(total.sum())}


def child_plugin(path: str, clicks: int, cold: bool) -> dict:
    from xray_atlas.napari._display import ensure_display

    ensure_display()
    import napari
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    for _ in range(5):
        QApplication.processEvents()
    with PeakRSS() as mem:
        t = time.perf_counter()
        layer = viewer.open(path, plugin="napari-xray-atlas")[0]
        t_layer = time.perf_counter() - t
        while layer.metadata["xray_atlas"]["pending"]:
            QApplication.processEvents()
            time.sleep(0.002)
        t_full = time.perf_counter() - t
    checksum = float(np.asarray(layer.data, dtype=np.float64).sum())

    # clicks: real mouse events on the canvas over random pixels, read from disk
    if cold:
        drop_caches()
    canvas = viewer.window._qt_viewer.canvas
    native = canvas.native
    QApplication.processEvents()
    tr = canvas.layer_to_visual[layer].node.get_transform("visual", "canvas")
    from qtpy.QtCore import QEvent, QObject

    class PaintWatch(QObject):
        painted = False

        def eventFilter(self, obj, event):  # noqa: N802 - Qt API
            if event.type() == QEvent.Type.Paint:
                self.painted = True
            return False

    watch = PaintWatch()
    inspector.plot.viewport().installEventFilter(watch)
    rng = np.random.default_rng(0)
    h, w = layer.data.shape
    ready, drawn = [], []
    misses = 0
    for _ in range(clicks):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        cx, cy = tr.map([x + 0.5, y + 0.5])[:2]
        pos = QPoint(int(round(cx)), int(round(cy)))
        QApplication.processEvents()
        watch.painted = False
        t = time.perf_counter()
        QTest.mouseClick(native, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
        ready.append(time.perf_counter() - t)  # spectrum read and handed to the plot
        while not watch.painted:  # until Qt has painted the plot (and the window around it)
            QApplication.processEvents()
        drawn.append(time.perf_counter() - t)
        if inspector.pixel_yx is None or abs(inspector.pixel_yx[0] - y) > 1 or abs(inspector.pixel_yx[1] - x) > 1:
            misses += 1
        time.sleep(0.011)  # vispy drops events closer than 10 ms
    # control: the same clicks with the inspector unhooked, until napari's canvas has
    # repainted. This is napari's own cost of a click here (software OpenGL under Xvfb).
    viewer.mouse_drag_callbacks.remove(inspector._on_mouse_drag)
    canvas_watch = PaintWatch()
    native.installEventFilter(canvas_watch)
    control = []
    for _ in range(min(clicks, 100)):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        cx, cy = tr.map([x + 0.5, y + 0.5])[:2]
        QApplication.processEvents()
        canvas_watch.painted = False
        t = time.perf_counter()
        QTest.mouseClick(
            native, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(int(round(cx)), int(round(cy)))
        )
        deadline = t + 0.2
        while not canvas_watch.painted and time.perf_counter() < deadline:
            QApplication.processEvents()
        control.append(time.perf_counter() - t)
        time.sleep(0.011)
    viewer.close()
    ms = np.array(drawn) * 1000
    ms_ready = np.array(ready) * 1000
    return {
        "ready_median_ms": float(np.median(ms_ready)),
        "ready_p95_ms": float(np.percentile(ms_ready, 95)),
        "layer_shown_s": t_layer,
        "seconds": t_full,
        "peak_added_mb": mem.added_mb,
        "checksum": checksum,
        "click_median_ms": float(np.median(ms)),
        "click_p95_ms": float(np.percentile(ms, 95)),
        "click_max_ms": float(ms.max()),
        "clicks": clicks,
        "napari_click_median_ms": float(np.median(control) * 1000),
        "missed_clicks": misses,
    }


def run_child(kind: str, path: Path, clicks: int, cold: bool = False) -> dict:
    extra = ["--cold"] if cold else []
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--path", str(path), "--clicks", str(clicks), *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=564)
    ap.add_argument("--width", type=int, default=428)
    ap.add_argument("--clicks", type=int, default=200)
    ap.add_argument("--child")
    ap.add_argument("--path")
    ap.add_argument("--cold", action="store_true")
    args = ap.parse_args()
    if args.child:
        result = child_numpy(args.path) if args.child == "numpy" else child_plugin(args.path, args.clicks, args.cold)
        print(json.dumps(result))
        return

    path = HERE / "data" / f"cube_{args.height}x{args.width}x4096.h5"
    make_cube(path, args.height, args.width)
    size_gb = path.stat().st_size / 1e9
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"cube: {path.name}, {size_gb:.2f} GB, chunks (8, 8, 4096), uint16")
    for cache in ("cold", "warm"):
        if cache == "cold" and not drop_caches():
            print("cold: cannot drop the page cache (not root); skipped")
            continue
        base = run_child("numpy", path, 0)
        if cache == "cold":
            drop_caches()
        plug = run_child("plugin", path, args.clicks, cold=cache == "cold")
        assert abs(base["checksum"] - plug["checksum"]) < 1e-6 * base["checksum"], (base, plug)
        print(f"[{cache} page cache]")
        print(f"  numpy read+sum        {base['seconds']:7.2f} s   peak added {base['peak_added_mb']:7.0f} MB")
        print(
            f"  xray-atlas open       {plug['seconds']:7.2f} s   peak added {plug['peak_added_mb']:7.0f} MB"
            f"   (layer on screen after {plug['layer_shown_s']:.2f} s)"
        )
        print(
            f"  ratio plugin / numpy  {plug['seconds'] / base['seconds']:7.2f} x time, "
            f"{plug['peak_added_mb'] / max(base['peak_added_mb'], 1):.2f} x memory"
        )
        print(f"  click -> spectrum set median {plug['ready_median_ms']:.1f} ms, p95 {plug['ready_p95_ms']:.1f} ms")
        print(
            f"  click -> plot painted median {plug['click_median_ms']:.1f} ms, p95 {plug['click_p95_ms']:.1f} ms, "
            f"max {plug['click_max_ms']:.1f} ms over {plug['clicks']} clicks ({plug['missed_clicks']} off-target)"
        )
        print(f"  control: napari alone, click -> canvas repainted median {plug['napari_click_median_ms']:.1f} ms")


if __name__ == "__main__":
    main()
