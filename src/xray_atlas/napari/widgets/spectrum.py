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
from ._calibration import CalibrationControls
from ._common import CubeChoice, click_callback, layer_pixel, refill, region_mask, scroll_box
from ._spectrum_plot import SpectrumPlot

if TYPE_CHECKING:
    import napari

__all__ = ["SpectrumInspector"]

_PIN_LAYER = "pinned pixels"
_HINT_NO_CUBE = "open a cube (File > Open, or File > Open Sample > painting)"
_HINT_NO_PIXEL = "click a pixel (Shift + hover to follow)"
_PIN_COLOURS = ["#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


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
        self._watched_points: Any = None

        # -- widgets --------------------------------------------------------------------
        self.cube_combo = QComboBox()
        self._combo_tips = {self.cube_combo: "Cube whose spectra are shown (layers opened by xray-atlas)"}
        #: What is drawn (curves, markers, the energy window); ``plot`` is its pyqtgraph widget.
        self.view = SpectrumPlot(hint=_HINT_NO_CUBE)
        self.plot = self.view.widget

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
        self.calibration = CalibrationControls(apply=self.set_calibration, refuse=notify_error)
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
        cal = self.calibration
        grid.addWidget(cal.offset_edit, 3, 1)
        grid.addWidget(cal.gain_edit, 3, 2)
        grid.addWidget(cal.calibrate_button, 3, 3)
        grid.addWidget(cal.peaks_edit, 4, 1, 1, 2)
        grid.addWidget(cal.peaks_button, 4, 3)
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
        self.log_check.toggled.connect(self.view.set_log)
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
        self.view.window.sigRegionChanged.connect(self._on_window_changed)
        self.window_button.clicked.connect(self.paint_window_map)
        self.fit_button.clicked.connect(self.open_fit_inspector)

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
        self.view.clear_curves()
        self.pixel_yx = None
        hint = _HINT_NO_CUBE if cube is None else _HINT_NO_PIXEL
        self.pixel_label.setText(hint)
        self.view.set_hint(hint)
        self.calibration.show(cube)
        self.window_button.setEnabled(cube is not None and self.window_check.isChecked())
        self.view.set_energy_axis(None if cube is None else cube.energy, calibrated=cube is None or cube.calibrated)
        self._on_window_changed()  # keV or channels
        self._update_pins()
        self._show_cluster_means()
        self.update_markers()
        self.view.rescale()

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
        self.view.set_curve(self.view.pixel_curve, "pixel", cube.energy, spectrum.astype(np.float64))
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
        layer = self._pins_layer()
        cube = self.cube
        if layer is None or cube is None or len(layer.data) == 0:
            self.view.set_pins(np.zeros(0), [])
            return
        colours, spectra = [], []
        for i, point in enumerate(np.asarray(layer.data)[:, -2:]):
            y, x = (int(round(v)) for v in point)
            if not (0 <= y < cube.height and 0 <= x < cube.width):
                colours.append("#888888")
                continue
            colours.append(_PIN_COLOURS[i % len(_PIN_COLOURS)])
            spectra.append((f"pin {i + 1} ({y}, {x})", colours[-1], cube.pixel(y, x).astype(np.float64)))
        self.view.set_pins(cube.energy, spectra)
        with layer.events.data.blocker():
            layer.border_color = colours

    def _show_cluster_means(self, *_: Any) -> None:
        """Plot the mean spectrum of every cluster of the newest clusters layer, in its colours;
        again whenever its metadata change (the Clusters dock's Refine group rewrites them)."""
        layers = [lyr for lyr in self.viewer.layers if lyr.metadata.get("xray_atlas", {}).get("kind") == "clusters"]
        cube = self.cube
        spectra = []
        if layers and cube is not None:
            layers[-1].events.metadata.connect(self._show_cluster_means)  # once: napari ignores a repeat
            xa = layers[-1].metadata["xray_atlas"]
            if xa["cluster_spectra"].shape[1] == cube.n_channels:
                for k, (spec, size) in enumerate(zip(xa["cluster_spectra"], xa["sizes"])):
                    rgba = np.asarray(layers[-1].get_color(k + 1) if hasattr(layers[-1], "get_color") else (1, 1, 1, 1))
                    spectra.append((f"cluster {k + 1} ({int(size)} px)", tuple(int(255 * c) for c in rgba[:3]), spec))
        self.view.set_cluster_means(np.zeros(0) if cube is None else cube.energy, spectra)

    def cluster_spectra_shown(self) -> list[np.ndarray]:
        """The y data of the cluster-mean curves (for tests and scripts)."""
        return self.view.cluster_spectra()

    def pinned_spectra(self) -> list[np.ndarray]:
        """The y data of the pinned curves (for tests and scripts)."""
        return self.view.pinned_spectra()

    def compute_sum_spectra(self) -> Any:
        """Stream the cube on a worker and plot sum (per pixel) and max spectra."""
        cube = self.cube
        if cube is None:
            return None
        n = cube.height * cube.width

        def done(stats: dict) -> None:
            if self.cube is cube:
                self.view.set_curve(self.view.sum_curve, "sum / pixels", cube.energy, stats["sum"] / n)
                self.view.set_curve(self.view.max_curve, "max", cube.energy, stats["max"])

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
            self.view.set_region(cube.energy, stats["mean"], stats["std"])
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
        """Mark the lines of the elements and families chosen, within the cube's energies."""
        cube = self.cube
        lines = []
        if cube is not None and cube.calibrated:
            lo, hi = float(cube.energy[0]), float(cube.energy[-1])
            if hi > lo:  # a one-channel cube has no axis to mark
                lines = marker_lines(self.selected_lines(), lo_kev=lo, hi_kev=hi)
        self.view.set_markers(lines)

    def marker_energies(self) -> list[float]:
        """Energies (keV) of the marked lines (for tests and scripts)."""
        return self.view.marker_energies()

    # -- energy window ---------------------------------------------------------------------
    def _on_window_toggled(self, on: bool) -> None:
        self.view.window.setVisible(on)
        self.window_button.setEnabled(on)
        self._on_window_changed()

    def _on_window_changed(self, *_: Any) -> None:
        a, b = self.view.window.getRegion()
        unit = "keV" if (self.cube is None or self.cube.calibrated) else "ch"
        self.window_label.setText(f"{a:.3f}-{b:.3f} {unit}" if self.window_check.isChecked() else "")

    def paint_window_map(self) -> Any:
        """Sum the counts in the energy window over every pixel (on a worker) into a new layer."""

        cube = self.cube
        if cube is None:
            return None
        a, b = (float(v) for v in self.view.window.getRegion())
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
    def _apply_theme(self, *_: Any) -> None:
        self.view.apply_theme(self.viewer)

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
