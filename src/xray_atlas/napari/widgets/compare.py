"""Compare maps dock: an RGB composite of three maps, and the correlation plot of two.

**RGB composite.** Three map or probability layers go into the red, green and blue channels of
one RGB layer on their grid (:func:`xray_atlas.compare.rgb_composite`). Each channel runs
from its low to its high limit; "auto" takes the 1st and 99th percentiles of the map, and
shows them in the limit boxes, where they can be changed. "Export RGB..." writes the
composite as an 8-bit PNG or TIFF with the pixel size (:func:`xray_atlas.export.write_rgb`).

**Correlation plot.** The 2-D histogram of two maps' values over the pixels, in log density
(pyqtgraph: an ImageItem with a colour bar), Pearson's r beside it. A left-button drag on the
plot draws a rectangle or a lasso in value space; the pixels whose values lie inside become
label 1 of the "plot selection" Labels layer on the maps' grid, and the drawn outline stays as
an editable ROI (drag it or its handles: the selection follows). The other way round, the
pixels of a Labels layer (its selected label) or of a Shapes layer chosen under "highlight"
are drawn over the histogram in orange, and follow as the layer is painted or its shapes
moved. Right-drag and the wheel zoom the plot, middle-drag pans.

Below :data:`SYNC_PIXELS` pixels the histogram and selections are computed on the main thread
(a few milliseconds for a 426 x 427 painting: benchmarks/bench_correlation.py); larger maps on
worker threads, the newest request winning; every composite and export runs on the dock's job
bar.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QRectF, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from ...compare import (
    CHANNELS,
    Histogram2D,
    correlation,
    histogram2d,
    pixels_in_polygon,
    pixels_in_rectangle,
    rgb_composite,
)
from ...cube import Progress
from ...errors import XrayAtlasError
from ...export import rgb_description, value_label, write_rgb
from .._layers import grid_of, strongest, xa_meta
from .._notify import notify, notify_error
from .._workers import Delivery, JobBar
from ._common import apply_plot_theme, refill, scroll_box

if TYPE_CHECKING:
    import napari

__all__ = ["CompareWidget", "SYNC_PIXELS", "SELECTION_LAYER", "axis_label"]

#: Maps up to this many pixels are histogrammed and selected on the main thread (the 182,000
#: of a 426 x 427 painting: a few ms each, benchmarks/bench_correlation.py); larger on workers.
SYNC_PIXELS = 1_000_000
#: Most cells of the 2-D histogram along each axis (fewer for small maps: :func:`bins_for`).
BINS = 256
#: Name of the Labels layer that a selection on the plot writes.
SELECTION_LAYER = "plot selection"
_NONE = "none"
_HIGHLIGHT = (255, 150, 30)  # orange over viridis: found at once on every density
_CHANNEL_COLOURS = {"red": "#ff5a5a", "green": "#5adc5a", "blue": "#6a8cff"}


def _comparable(layer: Any) -> bool:
    """A 2-D single-channel image layer (a map, probability, reference or window map, counts)."""
    from napari.layers import Image

    return isinstance(layer, Image) and not layer.rgb and not layer.multiscale and np.ndim(layer.data) == 2


def _region_layer(layer: Any) -> bool:
    from napari.layers import Labels, Shapes

    return isinstance(layer, (Labels, Shapes))


def axis_label(layer: Any) -> str:
    """A plot axis for a map layer: its name and what its values are (net counts, counts/s,
    probability, counts)."""
    xa = xa_meta(layer)
    kind = xa.get("kind")
    if kind in ("map", "reference map"):
        return f"{layer.name} \u00b7 {value_label('map', xa.get('units'))}"
    if kind == "probability":
        return f"{layer.name} \u00b7 probability"
    if kind in ("cube", "window map"):
        return f"{layer.name} \u00b7 counts"
    return layer.name


def bins_for(pixels: int) -> int:
    """Cells along each axis: the power of two nearest the square root of the pixel count,
    32 to :data:`BINS` (a 96 x 128 painting: 128, so that its 12,288 pixels do not scatter over
    65,536 cells too small to see; 182,000 pixels: 256)."""
    return int(min(BINS, max(32, 2 ** round(np.log2(max(pixels, 1) ** 0.5)))))


def _once(fn: Callable[[], Any], what: str) -> Generator[Progress, None, Any]:
    """A one-step job for the job bar."""
    yield Progress(0, 1, what)
    return fn()


class _SelectBox(pg.ViewBox):
    """A plot's view box on which a left-button drag draws a rectangle or a lasso in data
    coordinates (``sigDrawn(vertices, kind)`` when the button is released); the other
    buttons keep pyqtgraph's pan and zoom."""

    sigDrawn = Signal(object, str)

    def __init__(self) -> None:
        super().__init__()
        self.mode = "rectangle"
        self._points: list[tuple[float, float]] = []
        self.trace = pg.PlotCurveItem(pen=pg.mkPen("#ffffff", width=1.5, style=Qt.PenStyle.DashLine))
        self.trace.setZValue(20)
        self.addItem(self.trace, ignoreBounds=True)

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 - pyqtgraph API
        if ev.button() != Qt.MouseButton.LeftButton or axis is not None:  # middle pans, right zooms
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        here = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            start = self.mapSceneToView(ev.buttonDownScenePos())
            self._points = [(start.x(), start.y())]
        if not self._points:  # a drag that began before the mode was set
            return
        (x0, y0), (x1, y1) = self._points[0], (here.x(), here.y())
        if self.mode == "lasso":
            self._points.append((x1, y1))
            outline = self._points + self._points[:1]
        else:
            outline = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        xs, ys = zip(*outline)
        self.trace.setData(np.asarray(xs), np.asarray(ys))
        if ev.isFinish():
            self.trace.setData([], [])
            vertices = np.asarray(outline[:-1], dtype=float)
            self._points = []
            self.sigDrawn.emit(vertices, self.mode)


class CompareWidget(QWidget):
    """Dock widget: RGB composite of three maps; correlation plot of two, with selections.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        #: Pixels up to which the plot is computed on the main thread (tests lower it).
        self.sync_pixels = SYNC_PIXELS
        self.histogram: Histogram2D | None = None
        self.selection: np.ndarray | None = None
        self.roi: Any = None
        self._pair: tuple[Any, Any] | None = None  # the (x, y) layers on the plot
        self._highlight_layer: Any = None
        self._highlight_mask: np.ndarray | None = None
        #: Pearson's r of the pair on the plot, and of the highlighted pixels.
        self.r = self.highlight_r = float("nan")
        self._generation: dict[str, int] = {}
        self._workers: set = set()
        # outside the QObject: PyQt drops the slots of a widget being deleted
        self._state = {"alive": True}
        self.destroyed.connect(lambda *_, s=self._state: s.update(alive=False))

        # -- RGB composite ------------------------------------------------------------------
        self.channel_combos: dict[str, QComboBox] = {}
        self.low_spins: dict[str, QDoubleSpinBox] = {}
        self.high_spins: dict[str, QDoubleSpinBox] = {}
        rgb_form = QFormLayout()
        for ch in CHANNELS:
            combo = QComboBox()
            combo.setToolTip(f"map or probability layer shown in {ch}; none leaves {ch} black")
            combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            combo.setMinimumContentsLength(8)
            lo, hi = QDoubleSpinBox(), QDoubleSpinBox()
            for spin, tip in ((lo, "at or below: dark"), (hi, "at or above: full")):
                spin.setRange(-1e12, 1e12)
                spin.setDecimals(3)
                spin.setFixedWidth(96)
                spin.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
                spin.setToolTip(f"{ch} limit, {tip}")
                spin.setEnabled(False)
            row = QHBoxLayout()
            row.addWidget(combo, 1)
            row.addWidget(lo)
            row.addWidget(hi)
            label = QLabel(ch)
            label.setStyleSheet(f"color: {_CHANNEL_COLOURS[ch]}; font-weight: bold")
            rgb_form.addRow(label, row)
            self.channel_combos[ch], self.low_spins[ch], self.high_spins[ch] = combo, lo, hi
        self.auto_check = QCheckBox("auto limits (1st-99th percentile)")
        self.auto_check.setChecked(True)
        self.auto_check.setToolTip(
            "each channel from the 1st to the 99th percentile of its map: a few hot or dead "
            "pixels do not set the scale; untick to type limits"
        )
        rgb_form.addRow("", self.auto_check)
        self.rgb_button = QPushButton("Make RGB")
        self.rgb_export_button = QPushButton("Export RGB...")
        self.rgb_export_button.setToolTip(
            "write the composite as an 8-bit PNG or TIFF, one pixel per map pixel, with the pixel size"
        )
        buttons = QHBoxLayout()
        buttons.addWidget(self.rgb_button)
        buttons.addWidget(self.rgb_export_button)
        self.rgb_info = QLabel("")
        self.rgb_info.setWordWrap(True)

        # -- correlation ----------------------------------------------------------------------
        self.x_combo, self.y_combo = QComboBox(), QComboBox()
        for combo in (self.x_combo, self.y_combo):
            combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            combo.setMinimumContentsLength(8)
        self.highlight_combo = QComboBox()
        self.highlight_combo.setToolTip(
            "a Labels layer (its selected label) or a Shapes layer (all its shapes): "
            "its pixels are drawn over the histogram in orange"
        )
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["rectangle", "lasso"])
        self.mode_combo.setToolTip(
            f"what a left-button drag on the plot draws; its pixels go into the '{SELECTION_LAYER}' Labels layer"
        )
        self.log_check = QCheckBox("log density")
        self.log_check.setChecked(True)
        corr_form = QFormLayout()
        corr_form.addRow("x", self.x_combo)
        corr_form.addRow("y", self.y_combo)
        corr_form.addRow("highlight", self.highlight_combo)
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.mode_combo, 1)
        mode_row.addWidget(self.log_check)
        corr_form.addRow("select", mode_row)

        self.box = _SelectBox()
        self.plot = pg.PlotWidget(viewBox=self.box)
        self.plot.setMinimumHeight(320)
        self.plot.setMenuEnabled(False)
        for side in ("left", "bottom"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.image = pg.ImageItem(axisOrder="col-major")
        self.overlay = pg.ImageItem(axisOrder="col-major")
        self.overlay.setZValue(10)
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay)
        self.colour_bar = pg.ColorBarItem(colorMap="viridis", interactive=False, width=14, label="pixels per cell")
        self.colour_bar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        # top right, on a band of the background: the densest cells are usually near the origin
        self.legend = self.plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self._legend_swatch = pg.ScatterPlotItem(symbol="s", size=10, pen=None, brush=pg.mkBrush(*_HIGHLIGHT))
        self.hint = pg.TextItem("paint maps first: they appear under x and y", color="#aaaaaa")
        self.hint.setParentItem(self.box)
        self.box.sigResized.connect(self._place_hint)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.jobs = JobBar()

        # the plot needs room for its axes, cells and colour bar: the dock is never narrower
        self.setMinimumWidth(440)
        box = scroll_box(self, viewer=self.viewer)
        title = QLabel("<b>RGB composite</b>")
        box.addWidget(title)
        box.addLayout(rgb_form)
        box.addLayout(buttons)
        box.addWidget(self.rgb_info)
        box.addWidget(QLabel("<b>Correlation plot</b>"))
        box.addLayout(corr_form)
        box.addWidget(self.plot, 1)
        box.addWidget(self.info)
        box.addWidget(self.jobs)
        box.addWidget(self.jobs.status)

        # -- signals ---------------------------------------------------------------------------
        # a choice the user made (none included) is never replaced by a default
        self._chosen: set = set()
        for combo in (*self.channel_combos.values(), self.x_combo, self.y_combo):
            combo.activated.connect(lambda _, c=combo: self._chosen.add(c))
        self.rgb_button.clicked.connect(self.make_rgb)
        self.rgb_export_button.clicked.connect(lambda: self.export_rgb())
        self.auto_check.toggled.connect(self._on_auto)
        self.x_combo.currentTextChanged.connect(self._on_pair_changed)
        self.y_combo.currentTextChanged.connect(self._on_pair_changed)
        self.highlight_combo.currentTextChanged.connect(self._on_highlight_changed)
        self.mode_combo.currentTextChanged.connect(self._on_mode)
        self.log_check.toggled.connect(lambda _: self._show_histogram())
        self.box.sigDrawn.connect(self._on_drawn)
        # painting a labels layer sends an event per stroke segment: one update per loop turn
        self._highlight_timer = QTimer(self)
        self._highlight_timer.setSingleShot(True)
        self._highlight_timer.setInterval(30)
        self._highlight_timer.timeout.connect(self.update_highlight)
        layers = self.viewer.layers
        for ev in (layers.events.inserted, layers.events.removed, layers.events.reordered):
            ev.connect(self._refresh_layers)
        self.viewer.events.theme.connect(self._apply_theme)
        self._apply_theme()
        self._refresh_layers()

    # -- layers --------------------------------------------------------------------------------
    def _defaults(self, n: int) -> list[str]:
        """The ``n`` layers to offer first: the shown maps with the highest mean net counts (the
        strongest lines), then the shown probabilities with the widest spread, then any other
        2-D image layers in list order."""
        found = [lyr for lyr in reversed(self.viewer.layers) if _comparable(lyr)]
        out = []
        for kind, by in (("map", "mean"), ("probability", "spread")):
            arrays = {
                lyr.name: np.asarray(lyr.data) for lyr in found if lyr.visible and xa_meta(lyr).get("kind") == kind
            }
            out += strongest(arrays, n, by=by) if arrays else []
        out += [lyr.name for lyr in found if lyr.name not in out]
        return out[:n]

    def _refresh_layers(self, *_: Any) -> None:
        maps = [lyr.name for lyr in reversed(self.viewer.layers) if _comparable(lyr)]
        channels = [self.channel_combos[ch] for ch in CHANNELS]
        # empty: nothing chosen yet, none, or a layer that is gone (Qt then shows the first item)
        before = {c: c.currentText() for c in (*channels, self.x_combo, self.y_combo)}
        for combo in channels:
            refill(combo, [_NONE, *maps], quiet=True)
        for combo in (self.x_combo, self.y_combo):
            refill(combo, maps, quiet=True)
        # a choice left empty and not made by the user takes the strongest map not shown yet:
        # a run's layers arrive one by one, the strongest first, and fill red, green, blue in turn
        for group in (channels, [self.x_combo, self.y_combo]):
            empty = [c for c in group if before[c] not in maps and c not in self._chosen]
            if not empty:
                continue
            used = {c.currentText() for c in group if c not in empty}
            free = [name for name in self._defaults(len(maps)) if name not in used]
            for i, combo in enumerate(empty):
                combo.blockSignals(True)
                if i < len(free):
                    combo.setCurrentText(free[i])
                elif group is channels:
                    combo.setCurrentText(_NONE)
                else:
                    combo.setCurrentIndex(-1)  # one map so far: y waits for the second
                combo.blockSignals(False)
        regions = [lyr.name for lyr in reversed(self.viewer.layers) if _region_layer(lyr)]
        refill(self.highlight_combo, [_NONE, *regions], quiet=True)
        self._on_pair_changed()
        self._on_highlight_changed()

    def _layer(self, name: str) -> Any:
        return self.viewer.layers[name] if name and name != _NONE and name in self.viewer.layers else None

    # -- RGB composite ---------------------------------------------------------------------------
    def _on_auto(self, on: bool) -> None:
        for ch in CHANNELS:
            self.low_spins[ch].setEnabled(not on)
            self.high_spins[ch].setEnabled(not on)

    def channel_layers(self) -> list[Any]:
        """The red, green and blue layers (None: black)."""
        return [self._layer(self.channel_combos[ch].currentText()) for ch in CHANNELS]

    def make_rgb(self) -> Any:
        """Compute the composite on the job bar; add its RGB layer (or update the one of the
        same channels). Returns the worker, or None."""
        layers = self.channel_layers()
        given = [lyr for lyr in layers if lyr is not None]
        if not given:
            notify_error(
                "Choose a map for red, green or blue first (paint maps in the Elemental maps dock)", log=self.jobs
            )
            return None
        shapes = {np.shape(lyr.data) for lyr in given}
        if len(shapes) > 1:
            notify_error(
                "red, green, blue: the maps must share a grid; got "
                + ", ".join(f"{lyr.name} {np.shape(lyr.data)}" for lyr in given),
                log=self.jobs,
            )
            return None
        auto = self.auto_check.isChecked()
        limits = [None if auto else (self.low_spins[ch].value(), self.high_spins[ch].value()) for ch in CHANNELS]
        arrays = [None if lyr is None else np.asarray(lyr.data) for lyr in layers]
        names = [None if lyr is None else lyr.name for lyr in layers]
        kinds = [None if lyr is None else xa_meta(lyr).get("kind") for lyr in layers]
        base = given[0]

        def compute() -> Any:
            return rgb_composite(*arrays, limits=limits)

        def done(composite: Any) -> Delivery | None:
            for ch, lim in zip(CHANNELS, composite.limits):
                if lim is not None:
                    self.low_spins[ch].setValue(lim[0])
                    self.high_spins[ch].setValue(lim[1])
            return self._deliver_rgb(composite, names, kinds, base)

        try:  # refused before any work: limits that cannot be used
            if not auto:
                for ch, lyr, lim in zip(CHANNELS, layers, limits):
                    if lyr is not None and not lim[1] > lim[0]:
                        raise XrayAtlasError(
                            f"limits: the {ch} channel's high ({lim[1]:g}) must be above its low ({lim[0]:g})"
                        )
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        return self.jobs.start(_once(compute, "RGB composite"), what="RGB composite", on_done=done)

    def _deliver_rgb(self, composite: Any, names: list, kinds: list, base: Any) -> Delivery | None:
        xa = xa_meta(base)
        name = "RGB (" + ", ".join(n or _NONE for n in names) + ")"
        meta = {
            "xray_atlas": {
                "kind": "rgb",
                "channels": list(names),
                "limits": list(composite.limits),
                "kinds": list(kinds),
                **{k: xa[k] for k in ("source", "pixel_size_um", "model", "units") if k in xa},
            }
        }
        self.rgb_info.setText(
            "limits: "
            + ", ".join(
                f"{ch} {lim[0]:.4g} to {lim[1]:.4g}" for ch, lim in zip(CHANNELS, composite.limits) if lim is not None
            )
        )
        if name in self.viewer.layers and getattr(self.viewer.layers[name], "rgb", False):
            layer = self.viewer.layers[name]
            layer.data = composite.rgb
            layer.metadata = meta
            layer.visible = True
            self.jobs.status.setText("RGB composite: updated")
            return None
        kwargs = {"name": name, "rgb": True, "metadata": meta, **grid_of(base)}
        return Delivery(
            self.viewer,
            [(composite.rgb, kwargs, "image")],
            f"RGB composite: {', '.join(n or _NONE for n in names)}",
            hide_cubes=True,
        )

    def rgb_layer(self) -> Any:
        """The newest RGB composite layer in the viewer (None if there is none)."""
        for lyr in reversed(self.viewer.layers):
            if xa_meta(lyr).get("kind") == "rgb" and getattr(lyr, "rgb", False):
                return lyr
        return None

    def export_rgb(self, path: str | None = None) -> Any:
        """Write the newest composite to ``path`` (asked for when None) as PNG or TIFF, on the
        job bar. Returns the worker, or None."""
        layer = self.rgb_layer()
        if layer is None:
            notify_error("No RGB composite to export: press Make RGB first", log=self.jobs)
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export the RGB composite", "rgb.png", "PNG image (*.png);;TIFF image (*.tif *.tiff)"
            )
            if not path:
                return None
            # the dialog has asked before replacing a file
        xa = xa_meta(layer)
        rgb = np.asarray(layer.data)
        channels = list(xa.get("channels", [None, None, None]))
        text = rgb_description(
            channels,
            xa.get("limits", [None] * 3),
            units=value_label("map", xa.get("units")),
            kinds=xa.get("kinds"),
            model=str(xa.get("model", "")),
            source=str(xa.get("source", "")),
            pixel_size_um=xa.get("pixel_size_um"),
        )
        if rgb.dtype != np.uint8 or rgb.ndim != 3:
            notify_error(f"layer {layer.name!r} is not an 8-bit RGB composite", log=self.jobs)
            return None

        def write() -> Any:
            return write_rgb(path, rgb, pixel_size_um=xa.get("pixel_size_um"), description=text, overwrite=True)

        def done(written: Any) -> None:
            notify(f"Exported the RGB composite: {written.name}", log=self.jobs, details=[str(written)])

        return self.jobs.start(_once(write, "export RGB"), what="export RGB", on_done=done)

    # -- correlation plot -----------------------------------------------------------------------
    def pair(self) -> tuple[Any, Any] | None:
        """The x and y layers, or None."""
        x, y = self._layer(self.x_combo.currentText()), self._layer(self.y_combo.currentText())
        return (x, y) if x is not None and y is not None else None

    @property
    def computing(self) -> bool:
        """A plot, highlight or selection is being computed on a worker thread."""
        return bool(self._workers)

    def _run(self, fn: Callable[[], Any], done: Callable[[Any], None], what: str, pixels: int) -> Any:
        """``done(fn())`` now for maps up to :attr:`sync_pixels`; else ``fn`` on a worker
        thread and ``done`` on the main thread when it returns, unless a newer request of the
        same ``what`` came meanwhile (the newest wins: choosing x, then y, draws one plot).
        Not the job bar: it runs one job at a time and would refuse the second choice."""
        if pixels <= self.sync_pixels:
            try:
                done(fn())
            except XrayAtlasError as err:
                notify_error(err, log=self.jobs)
            return None
        from napari.qt.threading import create_worker

        self._generation[what] = generation = self._generation.get(what, 0) + 1
        state, workers = self._state, self._workers
        worker = create_worker(fn, _start_thread=False)

        def returned(result: Any) -> None:
            if state["alive"] and self._generation.get(what) == generation:
                done(result)

        def errored(err: Exception) -> None:
            if state["alive"]:
                notify_error(
                    err if isinstance(err, XrayAtlasError) else f"{what} failed: {type(err).__name__}: {err}",
                    log=self.jobs,
                )

        def finished() -> None:
            workers.discard(worker)
            if state["alive"] and not workers:
                self.jobs.status.setText(f"{what}: done")

        worker.returned.connect(returned)
        worker.errored.connect(errored)
        worker.finished.connect(finished)
        workers.add(worker)
        self.jobs.status.setText(f"{what}: computing on {pixels:,} pixels")
        worker.start()
        return worker

    def _on_pair_changed(self, *_: Any) -> None:
        pair = self.pair()
        if pair == self._pair and self.histogram is not None:
            return
        self.redraw()

    def redraw(self) -> Any:
        """Histogram the chosen pair and draw it (with the highlight); a new pair drops the
        selection outline."""
        pair = self.pair()
        self._clear_roi()
        self._pair = pair
        if pair is None:
            self.histogram = None
            self._show_histogram()
            return None
        x_layer, y_layer = pair
        x, y = np.asarray(x_layer.data), np.asarray(y_layer.data)
        if x.shape != y.shape:
            notify_error(
                f"y: {y_layer.name} is {y.shape[1]} x {y.shape[0]} pixels and x {x_layer.name} "
                f"{x.shape[1]} x {x.shape[0]}: choose maps of one grid",
                log=self.jobs,
            )
            self.histogram = None
            self._show_histogram()
            return None

        def compute() -> tuple[Histogram2D, float]:
            return histogram2d(x, y, bins=bins_for(x.size)), correlation(x, y)

        def done(result: tuple[Histogram2D, float]) -> None:
            if self._pair != pair:
                return  # the pair changed while a worker ran
            self.histogram, self.r = result
            self._show_histogram()
            self.update_highlight()

        return self._run(compute, done, "correlation plot", x.size)

    def _show_histogram(self) -> None:
        h = self.histogram
        self.hint.setVisible(h is None)
        if h is None:
            self.image.clear()
            self.overlay.clear()
            self.info.setText("")
            return
        x_layer, y_layer = self._pair
        self.plot.setLabel("bottom", axis_label(x_layer))
        self.plot.setLabel("left", axis_label(y_layer))
        log = self.log_check.isChecked()
        density = h.log_density if log else h.counts.astype(np.float32)
        shown = np.where(h.counts > 0, density, np.nan).astype(np.float32)  # empty cells: the background
        top = float(density.max()) if h.n else 1.0
        top = top if top > 0 else 1.0
        self.image.setImage(shown, levels=(0.0, top), autoLevels=False)
        rect = self.value_rect()
        self.image.setRect(rect)  # (pyqtgraph: only once an image is set)
        self.colour_bar.setLevels((0.0, top))
        self._colour_bar_ticks(top, log)
        self.plot.getViewBox().setRange(rect, padding=0.02)
        self.highlight_r = float("nan")
        self._show_info()

    def _show_info(self) -> None:
        h = self.histogram
        if h is None:
            self.info.setText("")
            return
        text = f"{h.n:,} pixels" + (f", Pearson r = {self.r:.3f}" if np.isfinite(self.r) else "")
        if self._highlight_mask is not None and np.isfinite(self.highlight_r):
            text += f"; highlighted pixels: r = {self.highlight_r:.3f}"
        if h.outside + h.missing:
            text += f"; {h.outside + h.missing:,} pixels without a value"
        self.info.setText(text)

    def value_rect(self) -> QRectF:
        """The histogram's extent in value space (x0, y0, width, height)."""
        h = self.histogram
        x0, x1, y0, y1 = h.x_edges[0], h.x_edges[-1], h.y_edges[0], h.y_edges[-1]
        return QRectF(float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    def _colour_bar_ticks(self, top: float, log: bool) -> None:
        axis = self.colour_bar.axis
        if not log:
            axis.setTicks(None)
            self.colour_bar.getAxis("left").setLabel("pixels per cell")
            return
        most = 10**top - 1  # the fullest cell
        values = [v for v in (1, 10, 100, 1000, 10000, 100000, 1000000) if v <= max(most, 1)]
        axis.setTicks([[(float(np.log10(1 + v)), f"{v:,}") for v in values], []])
        self.colour_bar.getAxis("left").setLabel("pixels per cell (log)")

    def _place_hint(self, *_: Any) -> None:
        centre, text = self.box.boundingRect().center(), self.hint.textItem.boundingRect()
        self.hint.setPos(centre.x() - text.width() / 2, centre.y() - text.height() / 2)

    # -- highlight: a region of the painting on the plot --------------------------------------------
    def _on_highlight_changed(self, *_: Any) -> None:
        layer = self._layer(self.highlight_combo.currentText())
        if layer is self._highlight_layer:
            return
        self._watch(self._highlight_layer, False)
        self._highlight_layer = layer
        self._watch(layer, True)
        self.update_highlight()

    def _watch(self, layer: Any, on: bool) -> None:
        if layer is None:
            return
        names = ("data", "set_data", "paint", "selected_label")
        for name in names:
            emitter = getattr(layer.events, name, None)
            if emitter is None:
                continue
            if on:
                emitter.connect(self._schedule_highlight)
            else:
                emitter.disconnect(self._schedule_highlight)

    def _schedule_highlight(self, *_: Any) -> None:
        self._highlight_timer.start()

    def highlight_mask(self) -> np.ndarray | None:
        """The (H, W) pixels of the highlight layer on the maps' grid, or None."""
        layer = self._highlight_layer
        if layer is None or self._pair is None or layer not in self.viewer.layers:
            return None
        shape = np.shape(self._pair[0].data)
        from napari.layers import Labels

        if isinstance(layer, Labels):
            data = np.asarray(layer.data)
            if data.shape[-2:] != shape:
                raise XrayAtlasError(
                    f"highlight: labels layer {layer.name!r} is {data.shape[-1]} x "
                    f"{data.shape[-2]} pixels and the maps {shape[1]} x {shape[0]}"
                )
            return data.reshape(data.shape[-2:]) == layer.selected_label
        if len(layer.data) == 0:
            return np.zeros(shape, bool)
        from ._common import shapes_on_grid

        return np.asarray(shapes_on_grid(layer, self._pair[0]).to_labels(labels_shape=shape)) > 0

    def update_highlight(self) -> Any:
        """Draw the highlight layer's pixels over the histogram (cleared when there are none)."""
        h = self.histogram
        self.legend.clear()
        try:
            mask = self.highlight_mask() if h is not None else None
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            mask = None
        self._highlight_mask = mask
        if mask is None or h is None or not mask.any():
            self.overlay.clear()
            self.highlight_r = float("nan")
            self._show_info()
            if mask is not None and h is not None:
                self.legend.addItem(self._legend_swatch, f"{self._highlight_layer.name}: no pixels")
            return None
        x_layer, y_layer = self._pair
        x, y = np.asarray(x_layer.data), np.asarray(y_layer.data)
        layer = self._highlight_layer
        ranges = dict(x_range=(h.x_edges[0], h.x_edges[-1]), y_range=(h.y_edges[0], h.y_edges[-1]))

        def compute() -> tuple[Histogram2D, float]:
            return histogram2d(x, y, bins=h.counts.shape[0], mask=mask, **ranges), correlation(x, y, mask=mask)

        def done(result: tuple[Histogram2D, float]) -> None:
            part, r = result
            if self.histogram is not h:
                return
            rgba = np.zeros((*part.counts.shape, 4), np.uint8)
            hit = part.counts > 0
            rgba[hit, :3] = _HIGHLIGHT
            # opaque where the region has most of a cell's pixels, lighter where it has a few
            share = part.counts[hit] / np.maximum(h.counts[hit], 1)
            rgba[hit, 3] = (120 + 135 * share).astype(np.uint8)
            self.overlay.setImage(rgba, autoLevels=False, levels=None)
            self.overlay.setRect(self.value_rect())
            self.legend.clear()
            self.legend.addItem(self._legend_swatch, f"{layer.name}: {part.n:,} pixels")
            self.highlight_r = r
            self._show_info()

        return self._run(compute, done, "highlight", x.size)

    # -- selection: a region of the plot on the painting ----------------------------------------------
    def _on_mode(self, mode: str) -> None:
        self.box.mode = mode

    def _clear_roi(self) -> None:
        if self.roi is not None:
            self.plot.removeItem(self.roi)
            self.roi = None

    def _on_drawn(self, vertices: np.ndarray, kind: str) -> None:
        if self._pair is None or self.histogram is None:
            return
        span = np.ptp(vertices, axis=0)
        if kind == "rectangle" and not (span > 0).all():
            return  # a click, not a rectangle
        if kind == "lasso" and len(vertices) < 3:
            return
        self._clear_roi()
        pen = pg.mkPen(self._fg, width=2)
        if kind == "rectangle":
            lo = vertices.min(0)
            self.roi = pg.RectROI(lo.tolist(), span.tolist(), pen=pen, movable=True, rotatable=False)
        else:
            span = np.ptp(np.asarray(self.box.viewRange()), axis=1)
            self.roi = pg.PolyLineROI(_simplify(vertices, span).tolist(), closed=True, pen=pen)
        self.roi.setZValue(15)
        self.plot.addItem(self.roi)
        self.roi.sigRegionChangeFinished.connect(lambda *_: self.select_roi())
        self.select_roi()

    def roi_region(self) -> tuple[str, np.ndarray] | None:
        """The selection outline in value space: ("rectangle", [[x0, y0], [x1, y1]]) or
        ("polygon", (N, 2) vertices); None without one."""
        roi = self.roi
        if roi is None:
            return None
        if isinstance(roi, pg.PolyLineROI):
            pts = [roi.mapToParent(h.pos()) for h in roi.getHandles()]
            return "polygon", np.array([(p.x(), p.y()) for p in pts])
        pos, size = roi.pos(), roi.size()
        return "rectangle", np.array([(pos.x(), pos.y()), (pos.x() + size.x(), pos.y() + size.y())])

    def select_roi(self) -> Any:
        """Write the pixels inside the selection outline into the selection Labels layer."""
        region, pair = self.roi_region(), self._pair
        if region is None or pair is None:
            return None
        kind, v = region
        x, y = np.asarray(pair[0].data), np.asarray(pair[1].data)

        def compute() -> np.ndarray:
            if kind == "rectangle":
                return pixels_in_rectangle(x, y, (v[0, 0], v[1, 0]), (v[0, 1], v[1, 1]))
            return pixels_in_polygon(x, y, v)

        def done(mask: np.ndarray) -> None:
            if self._pair != pair:
                return
            self.selection = mask
            self._write_selection(mask, pair, kind, v)

        return self._run(compute, done, "selection", x.size)

    def _write_selection(self, mask: np.ndarray, pair: tuple[Any, Any], kind: str, vertices: np.ndarray) -> None:
        data = mask.astype(np.int32)
        meta = {
            "xray_atlas": {
                "kind": "selection",
                "x": pair[0].name,
                "y": pair[1].name,
                "shape": kind,
                "vertices": vertices.tolist(),
            }
        }
        layer = self.viewer.layers[SELECTION_LAYER] if SELECTION_LAYER in self.viewer.layers else None
        from napari.layers import Labels

        if isinstance(layer, Labels) and np.shape(layer.data) == data.shape:
            layer.data = data
            layer.metadata = meta
            layer.visible = True
        else:
            if layer is not None:  # another kind of layer, or another grid, under this name: replaced
                self.viewer.layers.remove(layer)
            from napari.utils.colormaps import DirectLabelColormap

            # the highlight's orange: the same pixels look the same on the plot and the painting
            colours = DirectLabelColormap(
                color_dict={
                    None: (0.3, 0.8, 1.0, 1.0),
                    0: (0.0, 0.0, 0.0, 0.0),
                    1: tuple(c / 255 for c in _HIGHLIGHT) + (1.0,),
                }
            )
            layer = self.viewer.add_labels(
                data, name=SELECTION_LAYER, opacity=0.7, metadata=meta, colormap=colours, **grid_of(pair[0])
            )
        layer.selected_label = 1
        if self.highlight_combo.currentText() in ("", _NONE):
            self.highlight_combo.setCurrentText(SELECTION_LAYER)
        n = int(mask.sum())
        self.jobs.status.setText(
            f"selection: {n:,} pixels ({100 * n / max(mask.size, 1):.1f} %) in '{SELECTION_LAYER}'"
        )

    # -- appearance -------------------------------------------------------------------------------
    def _apply_theme(self, *_: Any) -> None:
        apply_plot_theme(self.plot, self.viewer)
        try:
            from napari.utils.theme import get_theme

            fg = get_theme(self.viewer.theme).text.as_hex()
        except Exception:  # noqa: BLE001 - a custom theme without the key
            fg = "#f0f1f2"
        self._fg = fg  # outlines drawn on the plot: the theme's text colour, seen on its canvas
        self.box.trace.setPen(pg.mkPen(fg, width=1.5, style=Qt.PenStyle.DashLine))
        if self.roi is not None:
            self.roi.setPen(pg.mkPen(fg, width=2))
        for side in ("left", "right", "top", "bottom"):
            ax = self.colour_bar.getAxis(side)
            ax.setPen(fg)
            ax.setTextPen(fg)
        self.legend.setLabelTextColor(fg)
        bg = self.plot.backgroundBrush().color()
        self.legend.setBrush(pg.mkBrush(bg.red(), bg.green(), bg.blue(), 190))  # text readable over the cells

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        self._watch(self._highlight_layer, False)
        super().closeEvent(event)


def _simplify(vertices: np.ndarray, span: np.ndarray, *, tolerance: float = 0.006, most: int = 48) -> np.ndarray:
    """A lasso's vertices with the ones on (nearly) straight runs left out (Douglas-Peucker,
    scikit-image's ``approximate_polygon``, within ``tolerance`` of the view's ``span`` on each
    axis), at most ``most`` of them: each becomes a handle of the ROI that the user can drag."""
    from skimage.measure import approximate_polygon

    v = np.asarray(vertices, dtype=float)
    scale = np.where(np.asarray(span, dtype=float) > 0, span, 1.0)
    closed = np.vstack([v, v[:1]]) / scale
    kept = approximate_polygon(closed, tolerance)[:-1] * scale
    if len(kept) < 3:
        kept = v
    if len(kept) > most:
        kept = kept[np.linspace(0, len(kept), most, endpoint=False).astype(int)]
    return kept
