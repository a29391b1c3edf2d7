"""Spectrum inspector dock: click a pixel (or hold Shift and hover) to see its spectrum.

Pinned pixels live in a Points layer, regions in a Shapes or Labels layer; element line
markers come from xraylib; dragging an energy window on the plot and pressing "Paint
window map" adds a window-sum map. Reading one pixel is done on the main thread (one
spectrum, milliseconds); everything that streams the cube runs on a worker.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from ...cube import TILE_BYTES
from ...errors import XrayAtlasError
from ...physics.lines import FAMILIES, marker_lines, parse_line_family
from .._layers import grid_of, is_cube_layer, map_layer_data
from .._notify import notify, notify_error, notify_warning
from .._workers import Delivery, JobBar
from ._common import CubeChoice, apply_plot_theme, click_callback, layer_pixel, refill, region_mask, scroll_box

if TYPE_CHECKING:
    import napari

__all__ = ["SpectrumInspector"]

_PIN_LAYER = "pinned pixels"
_HINT_NO_CUBE = "open a cube (File > Open, or File > Open Sample > painting)"
_HINT_NO_PIXEL = "click a pixel (Shift + hover to follow)"
_PIN_COLOURS = ["#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def count_range(counts: list[np.ndarray], *, log: bool) -> tuple[float, float]:
    """The count axis range that shows ``counts`` whole: 0 to just above the maximum, or in
    log mode (pyqtgraph's view is then in log10 units) from just below the smallest positive
    count to just above the maximum. Nothing to show: 0-1 counts (1-10 in log mode)."""
    values = np.concatenate([np.ravel(c) for c in counts]) if counts else np.zeros(0)
    values = values[np.isfinite(values)]
    if not log:
        top = float(values.max()) if values.size else 0.0
        return (0.0, top * 1.08) if top > 0 else (0.0, 1.0)
    positive = values[values > 0]
    if not positive.size:
        return (0.0, 1.0)
    lo, hi = float(np.log10(positive.min())), float(np.log10(positive.max()))
    pad = 0.05 * max(hi - lo, 1.0)
    return lo - pad, hi + pad


def _luminance(rgb: tuple[float, ...]) -> float:
    """WCAG relative luminance of an sRGB colour (0-255)."""
    c = np.asarray(rgb[:3], dtype=float) / 255.0
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def window_colours(background: tuple[int, int, int]) -> tuple[tuple[int, int, int, int], tuple[int, int, int]]:
    """Fill (RGBA) and edge (RGB) of the energy-window band on a plot of this background:
    light blue on a dark canvas, dark blue on a light one, strong enough to find at once
    (edges >= 4.5:1 against the canvas) yet leaving the spectrum under the band legible."""
    if _luminance(background) < 0.3:
        return (100, 170, 255, 90), (140, 190, 255)
    return (30, 90, 200, 80), (20, 70, 170)


class SpectrumInspector(CubeChoice, QWidget):
    """Dock widget that plots spectra of the cube behind the selected cube layer.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it in).
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.pixel_yx: tuple[int, int] | None = None
        #: Bytes of spectra each streamed tile holds (jobs stop between tiles on cancel).
        self.tile_bytes = TILE_BYTES
        self._marker_items: list[Any] = []
        self._label_anchors: list[tuple[Any, float, float]] = []  # (label, keV, marker top)
        self._marker_lines: list[tuple[str, Any]] = []
        self._cluster_curves: list[pg.PlotDataItem] = []
        self._pin_curves: list[pg.PlotDataItem] = []
        self._watched_points: Any = None

        # -- widgets --------------------------------------------------------------------
        self.cube_combo = QComboBox()
        self._combo_tips = {self.cube_combo: "Cube whose spectra are shown (layers opened by xray-atlas)"}
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(220)
        # no grid: pyqtgraph's translucent grid costs ~12 ms per repaint in software
        # rendering (benchmarks/bench_open_and_click.py), 6x the rest of the plot
        self.plot.setLabel("left", "counts")
        # counts are counts: no "(x0.001)" or "(x1e+15)" unit prefix on the axis
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        # what to do, in the middle of an empty plot (kept in place in screen coordinates)
        self.hint = pg.TextItem(_HINT_NO_CUBE, color="#aaaaaa")
        self.hint.setParentItem(self.plot.getViewBox())
        self.plot.getViewBox().sigResized.connect(self._place_hint)
        self.pixel_curve = self.plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=1.5))
        self.region_curve = self.plot.plot([], [], pen=pg.mkPen("#ffd54f", width=1.5))
        self._std_hi = pg.PlotDataItem([], [])
        self._std_lo = pg.PlotDataItem([], [])
        self.region_band = pg.FillBetweenItem(self._std_lo, self._std_hi, brush=pg.mkBrush(255, 213, 79, 60))
        self.plot.addItem(self.region_band)
        self.sum_curve = self.plot.plot([], [], pen=pg.mkPen("#aed581", width=1))
        self.max_curve = self.plot.plot([], [], pen=pg.mkPen("#e57373", width=1))
        # markers, labels and the window band are drawn to the view: they must not widen it
        self.marker_curve = pg.PlotDataItem([], [], pen=pg.mkPen("#bbbbbb", width=1), connect="pairs")
        self.plot.addItem(self.marker_curve, ignoreBounds=True)
        self.plot.getViewBox().sigXRangeChanged.connect(self._place_labels)  # a zoom moves the labels apart
        self.window = pg.LinearRegionItem(values=(6.2, 6.6))
        self.window.setZValue(-10)
        self.window.setVisible(False)
        self.plot.addItem(self.window, ignoreBounds=True)

        self.log_check = QCheckBox("log counts")
        self.pixel_label = QLabel(_HINT_NO_CUBE)
        # text changes must not re-layout the dock: a layout pass repaints the whole window
        self.pixel_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.pin_button = QPushButton("Pin pixel")
        self.clear_pins_button = QPushButton("Clear pins")
        self.sum_button = QPushButton("Sum && max spectra")
        self.region_combo = QComboBox()
        self._combo_tips[self.region_combo] = "Shapes layer (all shapes) or Labels layer (selected label)"
        for combo in self._combo_tips:
            # a long file name is cut off in the box: its list and tooltip show it whole
            combo.view().setTextElideMode(Qt.TextElideMode.ElideNone)
            combo.currentTextChanged.connect(lambda _, c=combo: self._show_full_names(c))
            self._show_full_names(combo)
        self.region_button = QPushButton("Region mean ± std")
        self.elements_edit = QLineEdit()
        self.elements_edit.setPlaceholderText("elements, e.g. Fe Pb Hg Cu")
        self.family_checks = {fam: QCheckBox(fam) for fam in FAMILIES}
        for fam in ("K", "L"):
            self.family_checks[fam].setChecked(True)
        self.window_check = QCheckBox("energy window")
        self.window_label = QLabel("")
        self.window_button = QPushButton("Paint window map")
        self.window_button.setEnabled(False)
        self.fit_button = QPushButton("Fit inspector")
        self.fit_button.setToolTip(
            "how well the per-cluster fit explains this pixel or region: its families, "
            "background, residual and reduced chi-square, in a dock of its own"
        )
        # a cube read without one (PyMca's single-column .mca, a bare .npy) gets its
        # calibration here; the docks then read the calibrated cube
        self.offset_edit = QLineEdit()
        self.offset_edit.setPlaceholderText("offset (keV)")
        self.offset_edit.setToolTip("energy of channel 0 in keV")
        self.gain_edit = QLineEdit()
        self.gain_edit.setPlaceholderText("gain (keV per channel)")
        self.gain_edit.setToolTip("keV per channel: E = offset + gain x channel")
        self.calibrate_button = QPushButton("Set calibration")
        self.peaks_edit = QLineEdit()
        self.peaks_edit.setPlaceholderText("or peaks: channel line, e.g. 1698 Cu Ka, 2036 Zn Ka")
        self.peaks_edit.setToolTip(
            "two or more peaks: the channel where each stands (read off the plot's channel axis) "
            "and its line; the calibration is fitted to them (xraylib energies)"
        )
        self.peaks_button = QPushButton("Fit to peaks")
        self.jobs = JobBar()

        # -- layout -----------------------------------------------------------------------
        grid = QGridLayout()
        grid.addWidget(QLabel("cube"), 0, 0)
        grid.addWidget(self.cube_combo, 0, 1, 1, 3)
        grid.addWidget(QLabel("region"), 1, 0)
        grid.addWidget(self.region_combo, 1, 1, 1, 2)
        grid.addWidget(self.region_button, 1, 3)
        grid.addWidget(QLabel("lines"), 2, 0)
        grid.addWidget(self.elements_edit, 2, 1)
        fams = QHBoxLayout()
        for check in self.family_checks.values():
            fams.addWidget(check)
        grid.addLayout(fams, 2, 2, 1, 2)
        grid.addWidget(QLabel("energy"), 3, 0)
        grid.addWidget(self.offset_edit, 3, 1)
        grid.addWidget(self.gain_edit, 3, 2)
        grid.addWidget(self.calibrate_button, 3, 3)
        grid.addWidget(self.peaks_edit, 4, 1, 1, 2)
        grid.addWidget(self.peaks_button, 4, 3)
        buttons = QHBoxLayout()
        for w in (self.log_check, self.pin_button, self.clear_pins_button, self.sum_button):
            buttons.addWidget(w)
        win = QHBoxLayout()
        for w in (self.window_check, self.window_label, self.window_button, self.fit_button):
            win.addWidget(w)
        box = scroll_box(self, viewer=self.viewer)  # stacked docks stay on the screen: this one scrolls
        box.addLayout(grid)
        box.addWidget(self.plot, 1)
        box.addWidget(self.pixel_label)
        box.addLayout(buttons)
        box.addLayout(win)
        box.addWidget(self.jobs)
        box.addWidget(self.jobs.status)

        # -- signals -----------------------------------------------------------------------
        self.cube_combo.currentIndexChanged.connect(self._on_cube_changed)
        self.log_check.toggled.connect(self._on_log)
        # the plot's own context menu (Plot Options > Transforms > Log Y) is the same switch
        self.plot.getPlotItem().ctrl.logYCheck.toggled.connect(self.log_check.setChecked)
        self.pin_button.clicked.connect(self.pin_current)
        self.clear_pins_button.clicked.connect(self.clear_pins)
        self.sum_button.clicked.connect(self.compute_sum_spectra)
        self.region_button.clicked.connect(self.compute_region)
        self.elements_edit.editingFinished.connect(self.update_markers)
        for check in self.family_checks.values():
            check.toggled.connect(self.update_markers)
        self.window_check.toggled.connect(self._on_window_toggled)
        self.window.sigRegionChanged.connect(self._on_window_changed)
        self.window_button.clicked.connect(self.paint_window_map)
        self.fit_button.clicked.connect(self.open_fit_inspector)
        self.calibrate_button.clicked.connect(self._on_set_calibration)
        self.peaks_button.clicked.connect(self._on_fit_peaks)
        # Ranges are set explicitly after each change (see _rescale): pyqtgraph's lazy
        # auto-range repaints the plot a second time, which doubles the click latency.
        self.plot.enableAutoRange(x=False, y=False)

        layers = self.viewer.layers
        layers.events.inserted.connect(self._on_layer_inserted)
        layers.events.removed.connect(self._refresh_layer_lists)
        layers.events.reordered.connect(self._refresh_layer_lists)
        self._on_mouse_drag = click_callback(self._on_click)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self.viewer.mouse_move_callbacks.append(self._on_mouse_move)
        self.viewer.events.theme.connect(self._apply_theme)
        self._apply_theme()
        self._refresh_layer_lists()

    def _set_curve(self, curve: pg.PlotDataItem, name: str, x: np.ndarray, y: np.ndarray) -> None:
        """Set a curve's data and list it in the legend (curves without data stay out of it)."""
        curve.setData(x, y)
        if self.legend.getLabel(curve) is None:
            self.legend.addItem(curve, name)
        self._rescale()

    def _rescale(self) -> None:
        """Fit the count axis to the curves shown, then redraw the line markers once."""
        # the curves' own data: getData() gives the displayed (log10, downsampled) values
        counts = [
            np.asarray(c.yData, dtype=np.float64) for c in self._data_curves() if c.yData is not None and len(c.yData)
        ]
        self.hint.setVisible(not counts)
        self.plot.setYRange(*count_range(counts, log=self.log_check.isChecked()), padding=0)
        # apply the new view transform now rather than during the next paint, which
        # would otherwise schedule a second paint of the whole plot
        self.plot.getViewBox().updateMatrix()
        self._draw_markers()

    def _place_hint(self, *_: Any) -> None:
        # the hint lives in the view box's pixel coordinates (it stays put on pan and zoom)
        centre, text = self.plot.getViewBox().boundingRect().center(), self.hint.textItem.boundingRect()
        self.hint.setPos(centre.x() - text.width() / 2, centre.y() - text.height() / 2)

    def _data_curves(self) -> list[pg.PlotDataItem]:
        return [
            self.pixel_curve,
            self.region_curve,
            self._std_hi,
            self.sum_curve,
            self.max_curve,
            *self._pin_curves,
            *self._cluster_curves,
        ]

    def _clear_curves(self) -> None:
        for curve in (self.pixel_curve, self.region_curve, self.sum_curve, self.max_curve, self._std_hi, self._std_lo):
            curve.setData([], [])
            self.legend.removeItem(curve)

    # -- layers -----------------------------------------------------------------------------
    def _cube_layers(self) -> list[Any]:
        return [lyr for lyr in self.viewer.layers if is_cube_layer(lyr)]

    def _show_full_names(self, combo: QComboBox) -> None:
        """Widen the combo's list to its longest name and put the chosen name in its tooltip."""
        view = combo.view()
        metrics = combo.fontMetrics()
        widest = max((metrics.horizontalAdvance(combo.itemText(i)) for i in range(combo.count())), default=0)
        view.setMinimumWidth(widest + 2 * view.frameWidth() + 30)  # + margins and scroll bar
        tip = self._combo_tips[combo]
        combo.setToolTip(f"{combo.currentText()}\n\n{tip}" if combo.currentText() else tip)

    def _on_layer_inserted(self, event: Any) -> None:
        """A cube opened now is the one the user wants to see: show it."""
        self._refresh_layer_lists()
        layer = getattr(event, "value", None)
        if layer is not None and is_cube_layer(layer) and self.cube_combo.currentText() != layer.name:
            self.cube_combo.setCurrentText(layer.name)  # -> _on_cube_changed

    def _refresh_layer_lists(self, *_: Any) -> None:
        from napari.layers import Labels, Shapes

        names = [lyr.name for lyr in self._cube_layers()]
        current = refill(self.cube_combo, names, quiet=True)
        refill(self.region_combo, [lyr.name for lyr in self.viewer.layers if isinstance(lyr, (Labels, Shapes))])
        for combo in self._combo_tips:
            self._show_full_names(combo)
        self._watch_pins()
        if current not in names:
            self._on_cube_changed()
        self._show_cluster_means()

    def _on_cube_changed(self, *_: Any) -> None:
        """Show the new cube and nothing of the old one: its pixel, label, pins, region,
        sum and max spectra, cluster means, line markers and calibration."""
        cube = self.cube
        self._clear_curves()
        self.pixel_yx = None
        hint = _HINT_NO_CUBE if cube is None else _HINT_NO_PIXEL
        self.pixel_label.setText(hint)
        self.hint.setText(hint)
        self._place_hint()
        self.calibrate_button.setEnabled(cube is not None)
        self.peaks_button.setEnabled(cube is not None)
        self.window_button.setEnabled(cube is not None and self.window_check.isChecked())
        linear = cube is not None and cube.calibrated
        self.offset_edit.setText(f"{round(cube.energy_offset_kev, 9):.6g}" if linear else "")
        self.gain_edit.setText(f"{round(cube.energy_gain_kev, 12):.6g}" if linear else "")
        if cube is None:
            self.plot.setLabel("bottom", "energy")
            self.plot.setXRange(0.0, 1.0, padding=0)
        else:
            self.plot.setLabel("bottom", "energy (keV)" if cube.calibrated else "channel (uncalibrated)")
            lo, hi = float(cube.energy[0]), float(cube.energy[-1])
            self.plot.setXRange(lo, hi, padding=0.01)
            a, b = self.window.getRegion()
            if not (lo <= a < b <= hi):
                mid = lo + 0.15 * (hi - lo)
                self.window.setRegion((mid, mid + 0.02 * (hi - lo)))
            self.window.setBounds((lo, hi))
        self._on_window_changed()  # keV or channels
        self._update_pins()
        self._show_cluster_means()
        self._marker_lines = []
        self.update_markers()
        self._rescale()

    def set_calibration(self, offset_kev: float, gain_kev: float) -> None:
        """Give the current cube the linear calibration ``E = offset + gain * channel`` (keV).

        The file is not touched: the cube layer holds the calibrated cube from now on, so the
        plot, the line markers and every dock that reads the layer use it. A bad value is
        notified and changes nothing.
        """

        layer, cube = self.cube_layer, self.cube
        if cube is None:
            notify("open a cube first, then set its calibration")
            return
        try:
            calibrated = cube.with_calibration(offset_kev=offset_kev, gain_kev=gain_kev)
        except XrayAtlasError as err:
            notify_error(f"{cube.name}: {err}")
            return
        layer.metadata["xray_atlas"]["cube"] = calibrated
        pixel = self.pixel_yx
        self._on_cube_changed()
        if pixel is not None:
            self.show_pixel(*pixel)
        notify(
            f"{cube.name}: {calibrated.energy[0]:.3f}-{calibrated.energy[-1]:.3f} keV "
            f"({gain_kev * 1000:g} eV per channel)"
        )

    def _on_set_calibration(self) -> None:

        values = []
        for edit, what in ((self.offset_edit, "offset"), (self.gain_edit, "gain")):
            try:
                values.append(float(edit.text().strip()))
            except ValueError:
                notify_error(f"calibration: the {what} {edit.text().strip()!r} is not a number (keV)")
                return
        self.set_calibration(*values)

    def _on_fit_peaks(self) -> None:

        from ...preprocess import calibrate_to_peaks

        try:
            offset, gain = calibrate_to_peaks(self.peaks_edit.text())
        except XrayAtlasError as err:
            notify_error(f"calibration: {err}")
            return
        self.set_calibration(offset, gain)

    # -- mouse --------------------------------------------------------------------------
    def _data_pixel(self, position: Any) -> tuple[int, int] | None:
        layer = self.cube_layer
        cube = self.cube
        if layer is None or cube is None:
            return None
        return layer_pixel(layer, position, (cube.height, cube.width))

    def _on_click(self, event: Any) -> None:
        pix = self._data_pixel(event.position)
        if pix is not None:
            self.show_pixel(*pix)

    def _on_mouse_move(self, viewer: Any, event: Any) -> None:
        if "Shift" not in event.modifiers or self.cube is None:
            return
        pix = self._data_pixel(event.position)
        if pix is not None and pix != self.pixel_yx:
            self.show_pixel(*pix)

    # -- spectra --------------------------------------------------------------------------
    def show_pixel(self, y: int, x: int) -> np.ndarray | None:
        """Read pixel (y, x) of the current cube and plot its spectrum; return it."""
        cube = self.cube
        if cube is None:
            return None

        try:
            spectrum = cube.pixel(y, x)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        self.pixel_yx = (int(y), int(x))
        self._set_curve(self.pixel_curve, "pixel", cube.energy, spectrum.astype(np.float64))
        total = float(spectrum.sum(dtype=np.float64))
        self.pixel_label.setText(f"pixel y={y}, x={x}: {total:,.0f} counts")
        return spectrum

    def pin_current(self) -> None:
        """Add the current pixel to the 'pinned pixels' Points layer."""
        if self.pixel_yx is None:
            notify("click a pixel first, then pin it")
            return
        layer = self._pins_layer(create=True)
        layer.add(np.array([self.pixel_yx], dtype=float))

    def clear_pins(self) -> None:
        layer = self._pins_layer()
        if layer is not None:
            layer.data = np.zeros((0, 2))

    def _pins_layer(self, create: bool = False) -> Any:
        if _PIN_LAYER in self.viewer.layers:
            return self.viewer.layers[_PIN_LAYER]
        if not create:
            return None
        base = self.cube_layer
        # on the cube's grid, so that a pin's data coordinates are the cube's pixel (y, x)
        layer = self.viewer.add_points(
            np.zeros((0, 2)),
            name=_PIN_LAYER,
            size=max(3, (base.data.shape[0] if base is not None else 100) // 40),
            face_color="transparent",
            border_color="#ff7f0e",
            symbol="square",
            **(grid_of(base) if base is not None else {}),
        )
        if base is not None:
            self.viewer.layers.selection.active = base
        self._watch_pins()
        return layer

    def _watch_pins(self) -> None:
        layer = self._pins_layer()
        if layer is self._watched_points:
            return
        if layer is not None:
            layer.events.data.connect(self._update_pins)
        self._watched_points = layer
        self._update_pins()

    def _update_pins(self, *_: Any) -> None:
        for curve in self._pin_curves:
            self.plot.removeItem(curve)
            self.legend.removeItem(curve)
        had_pins, self._pin_curves = bool(self._pin_curves), []
        layer = self._pins_layer()
        cube = self.cube
        if layer is None or cube is None or len(layer.data) == 0:
            if had_pins:
                self._rescale()
            return
        colours = []
        for i, point in enumerate(np.asarray(layer.data)[:, -2:]):
            y, x = (int(round(v)) for v in point)
            if not (0 <= y < cube.height and 0 <= x < cube.width):
                colours.append("#888888")
                continue
            colour = _PIN_COLOURS[i % len(_PIN_COLOURS)]
            colours.append(colour)
            curve = self.plot.plot(
                cube.energy,
                cube.pixel(y, x).astype(np.float64),
                name=f"pin {i + 1} ({y}, {x})",
                pen=pg.mkPen(colour, width=1),
            )
            self._pin_curves.append(curve)
        self._rescale()
        with layer.events.data.blocker():
            layer.border_color = colours

    def _show_cluster_means(self, *_: Any) -> None:
        """Plot the mean spectrum of every cluster of the newest clusters layer, in its colours;
        again whenever its metadata change (the Clusters dock's Refine group rewrites them)."""
        for curve in self._cluster_curves:
            self.plot.removeItem(curve)
            self.legend.removeItem(curve)
        self._cluster_curves = []
        layers = [lyr for lyr in self.viewer.layers if lyr.metadata.get("xray_atlas", {}).get("kind") == "clusters"]
        cube = self.cube
        if not layers or cube is None:
            return
        layers[-1].events.metadata.connect(self._show_cluster_means)  # once: napari ignores a repeat
        xa = layers[-1].metadata["xray_atlas"]
        spectra, sizes = xa["cluster_spectra"], xa["sizes"]
        if spectra.shape[1] != cube.n_channels:
            return
        for k, (spec, size) in enumerate(zip(spectra, sizes)):
            rgba = np.asarray(layers[-1].get_color(k + 1) if hasattr(layers[-1], "get_color") else (1, 1, 1, 1))
            colour = tuple(int(255 * c) for c in rgba[:3])
            curve = self.plot.plot(cube.energy, spec, pen=pg.mkPen(colour, width=1))
            self.legend.addItem(curve, f"cluster {k + 1} ({int(size)} px)")
            self._cluster_curves.append(curve)
        self._rescale()

    def cluster_spectra_shown(self) -> list[np.ndarray]:
        """The y data of the cluster-mean curves (for tests and scripts)."""
        return [c.yData for c in self._cluster_curves]

    def pinned_spectra(self) -> list[np.ndarray]:
        """The y data of the pinned curves (for tests and scripts)."""
        return [c.yData for c in self._pin_curves]

    def compute_sum_spectra(self) -> Any:
        """Stream the cube on a worker and plot sum (per pixel) and max spectra."""
        cube = self.cube
        if cube is None:
            return None
        n = cube.height * cube.width

        def done(stats: dict) -> None:
            if self.cube is cube:
                self._set_curve(self.sum_curve, "sum / pixels", cube.energy, stats["sum"] / n)
                self._set_curve(self.max_curve, "max", cube.energy, stats["max"])

        return self.jobs.start(cube.iter_spectrum_stats(tile_bytes=self.tile_bytes), what="sum spectrum", on_done=done)

    def region_mask(self) -> np.ndarray:
        """Boolean (H, W) mask of the chosen Shapes layer (all shapes) or Labels layer (selected label)."""
        return region_mask(self.viewer, self.cube_layer, self.region_combo.currentText())

    def compute_region(self) -> Any:
        """Mean ± std spectrum of the chosen region, on a worker."""

        cube = self.cube
        try:
            mask = self.region_mask()
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None

        def done(stats: dict) -> None:
            if self.cube is not cube:
                return
            e = cube.energy
            self._set_curve(self.region_curve, "region mean", e, stats["mean"])
            self._std_hi.setData(e, stats["mean"] + stats["std"])
            self._std_lo.setData(e, np.maximum(stats["mean"] - stats["std"], 0))
            self._rescale()
            self.pixel_label.setText(f"region: {stats['n_pixels']} pixels")

        return self.jobs.start(
            cube.iter_region_stats(mask, tile_bytes=self.tile_bytes), what="region spectrum", on_done=done
        )

    def open_fit_inspector(self) -> Any:
        """Dock the Fit inspector (or bring it forward) on this cube and region, and hand it the
        current pixel (:mod:`.fitview`); returns it."""
        _, view = self.viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Fit inspector")
        for mine, theirs in ((self.cube_combo, view.cube_combo), (self.region_combo, view.region_combo)):
            if mine.currentText():
                theirs.setCurrentText(mine.currentText())
        if self.pixel_yx is not None:
            view.show_pixel(*self.pixel_yx)
        return view

    # -- markers --------------------------------------------------------------------------
    def selected_lines(self) -> list[str]:
        """Line families to mark: each element in the box times each ticked family."""

        text = self.elements_edit.text()
        symbols = [s for s in re.split(r"[\s,;]+", text) if s]
        out = []
        for sym in symbols:
            for fam, check in self.family_checks.items():
                if check.isChecked():
                    try:
                        parse_line_family(f"{sym}-{fam}", parameter="elements")
                    except XrayAtlasError as err:
                        notify_warning(err, log=self.jobs)
                        break
                    out.append(f"{sym[0].upper()}{sym[1:].lower()}-{fam}")
        return out

    def update_markers(self, *_: Any) -> None:
        self._marker_lines = []
        cube = self.cube
        if cube is None or not cube.calibrated:
            self._draw_markers()
            return
        lo, hi = float(cube.energy[0]), float(cube.energy[-1])
        if hi > lo:  # a one-channel cube has no axis to mark
            self._marker_lines = marker_lines(self.selected_lines(), lo_kev=lo, hi_kev=hi)
        self._draw_markers()

    def marker_energies(self) -> list[float]:
        """Energies (keV) of the marked lines (for tests and scripts)."""
        return [ln.energy_kev for _, ln in self._marker_lines]

    def _draw_markers(self) -> None:
        for item in self._marker_items:
            self.plot.removeItem(item)
        self._marker_items = []
        lines = self._marker_lines
        if not lines:
            self.marker_curve.setData([], [])
            return
        ymin, ymax = self.plot.getViewBox().viewRange()[1]
        if self.log_check.isChecked():
            base, top = ymin, ymax  # log10 units
            heights = [base + (top - base) * (0.35 + 0.6 * ln.relative_intensity) for _, ln in lines]
            heights = [10**h for h in heights]
            floor = 10**base
        else:
            top = ymax if ymax > 0 else 1.0
            heights = [top * (0.15 + 0.8 * ln.relative_intensity) for _, ln in lines]
            floor = 0.0
        xs = np.repeat([ln.energy_kev for _, ln in lines], 2)
        ys = np.ravel([[floor, h] for h in heights])
        self.marker_curve.setData(xs, ys)
        seen: set[str] = set()
        self._label_anchors = []
        for (name, ln), h in zip(lines, heights):
            if name in seen:
                continue  # label only the strongest line of each family
            seen.add(name)
            label = pg.TextItem(f"{name.split('-')[0]} {ln.label}", anchor=(0.5, 1.0), color="#dddddd")
            self.plot.addItem(label, ignoreBounds=True)
            self._marker_items.append(label)
            self._label_anchors.append((label, ln.energy_kev, np.log10(h) if self.log_check.isChecked() else h))
        self._place_labels()

    def _place_labels(self, *_: Any) -> None:
        """Put each line label at its marker's top, or the nearest free height below (else
        above) it, so that no label covers another at the current zoom (As Ka / Pb La lie
        10 eV apart)."""
        anchors = self._label_anchors
        if not anchors:
            return
        vb = self.plot.getViewBox()
        px, py = (abs(v) or 1.0 for v in vb.viewPixelSize())  # view units per screen pixel
        y_lo, y_hi = vb.viewRange()[1]
        placed: list[tuple[float, float, float, float]] = []  # x0, x1, y0, y1 in view units
        for label, x, top in sorted(anchors, key=lambda a: a[1]):
            r = label.textItem.boundingRect()
            half, tall = 0.5 * r.width() * px, r.height() * py
            down = [top - k * tall for k in range(int((top - y_lo) / tall) + 1)]
            up = [top + k * tall for k in range(1, int(max(y_hi - top, 0.0) / tall) + 1)]
            y = next(
                (
                    c
                    for c in [*down, *up]
                    if not any(
                        x - half < b1 and a1 < x + half and c < d1 and c1 < c + tall for a1, b1, c1, d1 in placed
                    )
                ),
                top,
            )
            placed.append((x - half, x + half, y, y + tall))
            label.setPos(x, y)

    # -- energy window ---------------------------------------------------------------------
    def _on_window_toggled(self, on: bool) -> None:
        self.window.setVisible(on)
        self.window_button.setEnabled(on)
        self._on_window_changed()

    def _on_window_changed(self, *_: Any) -> None:
        a, b = self.window.getRegion()
        unit = "keV" if (self.cube is None or self.cube.calibrated) else "ch"
        self.window_label.setText(f"{a:.3f}-{b:.3f} {unit}" if self.window_check.isChecked() else "")

    def paint_window_map(self) -> Any:
        """Sum the counts in the energy window over every pixel (on a worker) into a new layer."""

        cube = self.cube
        if cube is None:
            return None
        a, b = (float(v) for v in self.window.getRegion())
        try:
            steps = cube.iter_window_sum(a, b, tile_bytes=self.tile_bytes)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        unit = "keV" if cube.calibrated else "ch"

        def done(image: np.ndarray) -> Delivery:
            data, kwargs, kind = map_layer_data(
                f"{cube.name} {a:.2f}-{b:.2f} {unit}", image, kind="window map", extra={"window": (a, b)}
            )
            if self.cube_layer is not None:
                kwargs.update(grid_of(self.cube_layer))
            # alone on the canvas: additive over the counts image it washed the picture out
            return Delivery(self.viewer, [(data, kwargs, kind)], hide_cubes=True)

        return self.jobs.start(steps, what="window map", on_done=done)

    # -- appearance ---------------------------------------------------------------------------
    def _on_log(self, on: bool) -> None:
        x_range = self.plot.getViewBox().viewRange()[0]
        self.plot.setLogMode(x=False, y=on)
        # setLogMode switches pyqtgraph's auto-range back on, which spans the log10 of the
        # zero channels and of the marker feet (10^-17..10^16): set the ranges ourselves
        self.plot.enableAutoRange(x=False, y=False)
        self.plot.setXRange(*x_range, padding=0)
        self._rescale()

    def _apply_theme(self, *_: Any) -> None:
        apply_plot_theme(self.plot, self.viewer)
        bg = self.plot.backgroundBrush().color()
        fill, edge = window_colours((bg.red(), bg.green(), bg.blue()))
        self.window.setBrush(pg.mkBrush(*fill))
        self.window.setHoverBrush(pg.mkBrush(*fill[:3], min(255, fill[3] + 50)))
        for line in self.window.lines:
            line.setPen(pg.mkPen(edge, width=2))
            line.setHoverPen(pg.mkPen(edge, width=4))

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        for cbs, cb in (
            (self.viewer.mouse_drag_callbacks, self._on_mouse_drag),
            (self.viewer.mouse_move_callbacks, self._on_mouse_move),
        ):
            if cb in cbs:
                cbs.remove(cb)
        super().closeEvent(event)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key_Escape:
            self.jobs.cancel()
        super().keyPressEvent(event)
