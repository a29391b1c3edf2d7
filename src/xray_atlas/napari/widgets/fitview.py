"""Fit inspector dock: how well the per-cluster fit explains a pixel, a region or a cluster.

Click a pixel (or pick a Shapes/Labels region, or press "Its cluster") and the dock draws the
measured spectrum, the fit's expected spectrum, its background and each line family's part
(ticked in the list, in the element's colour), with the residual in standard deviations below
and the reduced chi-square beside them (:mod:`xray_atlas.spectrumfit`). The fit is the one
under the fit-based map models (``fit``, ``maps-fit``); "compare with" draws the spectrum a
map model's values imply with the fit's own line shapes and background, which is what can be
shown of a learnt model's correction (a network has no spectrum of its own).

The fit's clusters are learnt once per cube on a worker (seconds); a pixel or a cluster is then
fitted on the main thread (a few milliseconds), a region, which streams the cube, on a worker.
The Spectrum inspector's "Fit inspector" button opens this dock on its cube, pixel and region.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from ...colours import element_colour, line_symbol
from ...cube import TILE_BYTES
from ...errors import XrayAtlasError
from ...spectrumfit import (
    RESIDUAL,
    SpectrumFit,
    fit_cluster,
    fit_pixels,
    implied_spectrum,
    iter_fit_region,
    iter_prepared_fit,
    reduced_chi2,
)
from .._layers import is_cube_layer, xa_meta
from .._notify import notify, notify_error
from .._workers import JobBar
from ._common import CubeChoice, click_callback, layer_pixel, refill, region_mask, scroll_box
from ._spectrum_plot import count_range

if TYPE_CHECKING:
    import napari

    from ...clusterfit import ClusterFit

__all__ = ["FitInspector"]

_NONE = "none"
_HINT = "click a pixel of the cube, or fit a region or the pixel's cluster"
#: A map layer's kinds whose values can be drawn with the fit's shapes.
_MAP_KINDS = ("map",)


def _family_pen(family: str, *, width: float = 1.2) -> Any:
    r, g, b = (int(255 * c) for c in element_colour(line_symbol(family)))
    style = Qt.PenStyle.DotLine if family.endswith("-M") else Qt.PenStyle.SolidLine
    return pg.mkPen((r, g, b), width=width, style=style)


class FitInspector(CubeChoice, QWidget):
    """Dock widget: the per-cluster fit of a pixel, region or cluster, taken apart.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.tile_bytes = TILE_BYTES
        #: The last fit shown (:class:`~xray_atlas.spectrumfit.SpectrumFit`), for tests and scripts.
        self.result: SpectrumFit | None = None
        #: The spectrum the chosen model's values imply, when one is drawn.
        self.implied: np.ndarray | None = None
        #: Milliseconds the last pixel or cluster fit took on the main thread.
        self.last_ms = 0.0
        self.pixel_yx: tuple[int, int] | None = None
        self._fits: dict[tuple, ClusterFit] = {}  # (id(cube), omitted, extra lines) -> prepared fit
        self._pending: tuple | None = None  # what to fit once the fit is ready
        self._where: Any = None  # where the shown fit came from: (y, x), a mask, or None (a cluster)
        self._family_curves: dict[str, pg.PlotDataItem] = {}
        self._hidden: set[str] = set()  # families the user unticked (kept across fits)

        # -- widgets --------------------------------------------------------------------
        self.cube_combo = QComboBox()
        self.compare_combo = QComboBox()
        self.compare_combo.setToolTip(
            "draw the spectrum a map model's values imply, with the fit's own line shapes "
            "and background (a learnt model has no spectrum of its own: this is what its "
            "correction of the fit looks like)"
        )
        self.omit_edit = QLineEdit()
        self.omit_edit.setPlaceholderText("leave out of the fit, e.g. Hg-L (what if)")
        self.omit_edit.setToolTip(
            "line families the fit leaves out: a family the counts hold shows in the residual "
            "and the reduced chi-square"
        )
        self.region_combo = QComboBox()
        self.region_combo.setToolTip("Shapes layer (all shapes) or Labels layer (selected label)")
        self.region_button = QPushButton("Fit region")
        self.cluster_button = QPushButton("Its cluster")
        self.cluster_button.setToolTip(
            "the fit of the clicked pixel's cluster: the summed spectrum of its sampled "
            "pixels, from which its line shapes and background were fitted"
        )
        self.log_check = QCheckBox("log counts")
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.layout_widget.setMinimumHeight(340)
        self.plot = self.layout_widget.addPlot(row=0, col=0)
        self.res_plot = self.layout_widget.addPlot(row=1, col=0)
        self.layout_widget.ci.layout.setRowStretchFactor(0, 3)
        self.layout_widget.ci.layout.setRowStretchFactor(1, 1)
        self.res_plot.setXLink(self.plot)
        self.plot.setLabel("left", "counts")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.res_plot.setLabel("left", "residual (\u03c3)")
        self.res_plot.setLabel("bottom", "energy (keV)")
        self.res_plot.getAxis("left").setToolTip(RESIDUAL)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.measured_curve = self.plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=1), name="measured")
        self.fitted_curve = self.plot.plot([], [], pen=pg.mkPen("#ffb74d", width=2), name="fit")
        self.background_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#9e9e9e", width=1.5, style=Qt.PenStyle.DashLine), name="background"
        )
        self.implied_curve = pg.PlotDataItem([], [], pen=pg.mkPen("#f06292", width=1.5, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.implied_curve)
        self.residual_curve = self.res_plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=1))
        for y in (0.0, -3.0, 3.0):
            self.res_plot.addItem(
                pg.InfiniteLine(
                    pos=y,
                    angle=0,
                    pen=pg.mkPen("#9e9e9e", width=1, style=Qt.PenStyle.SolidLine if y == 0 else Qt.PenStyle.DotLine),
                )
            )
        self.plot.enableAutoRange(x=False, y=False)
        self.res_plot.enableAutoRange(x=False, y=False)
        self.families_list = QListWidget()
        self.families_list.setMaximumHeight(110)
        self.families_list.setToolTip("each line family's part of the fit: untick to hide")
        self.summary = QLabel(_HINT)
        self.summary.setWordWrap(True)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.jobs = JobBar()

        grid = QGridLayout()
        grid.addWidget(QLabel("cube"), 0, 0)
        grid.addWidget(self.cube_combo, 0, 1, 1, 3)
        grid.addWidget(QLabel("region"), 1, 0)
        grid.addWidget(self.region_combo, 1, 1, 1, 2)
        grid.addWidget(self.region_button, 1, 3)
        grid.addWidget(QLabel("compare with"), 2, 0)
        grid.addWidget(self.compare_combo, 2, 1, 1, 2)
        grid.addWidget(self.cluster_button, 2, 3)
        grid.addWidget(QLabel("leave out"), 3, 0)
        grid.addWidget(self.omit_edit, 3, 1, 1, 2)
        grid.addWidget(self.log_check, 3, 3)
        box = scroll_box(self, viewer=self.viewer)
        box.addLayout(grid)
        box.addWidget(self.layout_widget, 1)
        box.addWidget(self.summary)
        row = QHBoxLayout()
        row.addWidget(self.families_list, 1)
        box.addLayout(row)
        box.addWidget(self.jobs)
        box.addWidget(self.jobs.status)

        # -- signals --------------------------------------------------------------------
        self.cube_combo.currentIndexChanged.connect(self._on_cube_changed)
        self.compare_combo.currentIndexChanged.connect(self._redraw_implied)
        self.omit_edit.editingFinished.connect(self._refit)
        self.region_button.clicked.connect(self.fit_region)
        self.cluster_button.clicked.connect(self.fit_its_cluster)
        self.log_check.toggled.connect(self._on_log)
        self.families_list.itemChanged.connect(self._on_family_toggled)
        layers = self.viewer.layers
        layers.events.inserted.connect(self._refresh_layers)
        layers.events.removed.connect(self._refresh_layers)
        layers.events.reordered.connect(self._refresh_layers)
        self._on_mouse_drag = click_callback(self._on_click)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self.viewer.events.theme.connect(self._apply_theme)
        self._apply_theme()
        self._refresh_layers()

    # -- layers -------------------------------------------------------------------------
    def _refresh_layers(self, *_: Any) -> None:
        from napari.layers import Labels, Shapes

        names = [lyr.name for lyr in self.viewer.layers if is_cube_layer(lyr)]
        before = refill(self.cube_combo, names, quiet=True)
        refill(self.region_combo, [lyr.name for lyr in self.viewer.layers if isinstance(lyr, (Labels, Shapes))])
        refill(self.compare_combo, [_NONE, *self.map_models()], quiet=True)
        if before != self.cube_combo.currentText():
            self._on_cube_changed()

    def map_models(self) -> list[str]:
        """The models whose map layers lie on the current cube's grid (newest last)."""
        cube = self.cube
        if cube is None:
            return []
        out: list[str] = []
        for lyr in self.viewer.layers:
            xa = xa_meta(lyr)
            if (
                xa.get("kind") in _MAP_KINDS
                and xa.get("model")
                and np.shape(lyr.data) == (cube.height, cube.width)
                and xa["model"] not in out
            ):
                out.append(str(xa["model"]))
        return out

    def _model_values(self, model: str, where: tuple[int, int] | np.ndarray) -> tuple[dict[str, float], list[str]]:
        """``model``'s net counts of each of its lines at pixel ``where`` (y, x) or summed over
        the mask ``where`` (H, W), and notes. Maps in counts/s are multiplied back by each
        pixel's live time."""
        cube = self.cube
        values: dict[str, float] = {}
        notes: list[str] = []
        live = None
        for lyr in self.viewer.layers:
            xa = xa_meta(lyr)
            if xa.get("kind") not in _MAP_KINDS or xa.get("model") != model or not xa.get("line"):
                continue
            data = np.asarray(lyr.data, np.float64)
            if xa.get("units") == "counts/s":
                if live is None:
                    live = cube.live_time_map() if cube is not None else None
                if live is None:
                    notes.append(f"{lyr.name} is in counts/s and the cube states no live time: left out")
                    continue
                data = data * live
            if isinstance(where, tuple):
                values[xa["line"]] = float(data[where])
            else:
                values[xa["line"]] = float(data[where].sum())
        return values, notes

    def _fit_based(self, model: str) -> bool:
        """Whether ``model``'s run left a reduced chi-square layer: it is the fit or corrects it."""
        return any(
            xa_meta(lyr).get("kind") == "fit chi2" and xa_meta(lyr).get("model") == model for lyr in self.viewer.layers
        )

    # -- the fit ----------------------------------------------------------------------------
    def omitted(self) -> tuple[str, ...]:
        """The families of the "leave out" box, checked."""
        from ...physics.lines import parse_line_family

        text = self.omit_edit.text().replace(",", " ").split()
        return tuple(dict.fromkeys("-".join(parse_line_family(t, parameter="leave out")) for t in text))

    def _key(self) -> tuple | None:
        cube = self.cube
        if cube is None:
            return None
        from ...models.prior import PRIOR_FAMILIES

        omit = self.omitted()
        extra = []  # families beyond the prior's 44 that maps were painted of: part of the fit too
        for lyr in self.viewer.layers:
            line = xa_meta(lyr).get("line")
            if xa_meta(lyr).get("kind") in _MAP_KINDS and line and line not in PRIOR_FAMILIES and line not in omit:
                extra.append(line)
        return (id(cube), omit, tuple(sorted(set(extra))))

    def fit(self) -> ClusterFit | None:
        """The prepared per-cluster fit of the current cube, or None while it is prepared (on a
        worker, started here when needed)."""
        try:
            key = self._key()
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        if key is None:
            return None
        if key in self._fits:
            return self._fits[key]
        cube = self.cube
        if not cube.calibrated:
            notify_error(
                f"{cube.name}: the per-cluster fit needs an energy calibration (set one in the Spectrum inspector)",
                log=self.jobs,
            )
            return None
        if self.jobs.busy:
            return None
        try:
            steps = iter_prepared_fit(cube, lines=key[2], omit=key[1], tile_bytes=self.tile_bytes)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None

        def done(fit: ClusterFit) -> None:
            self._fits[key] = fit
            self.jobs.log(f"{fit.note()}" + (f"; left out: {', '.join(key[1])}" if key[1] else ""))
            pending, self._pending = self._pending, None
            if pending is not None and self._key() == key:
                self._run(pending)

        self.jobs.start(steps, what="learning the fit's clusters", on_done=done)
        return None

    def _run(self, request: tuple) -> None:
        kind = request[0]
        if kind == "pixel":
            self.show_pixel(*request[1:])
        elif kind == "cluster":
            self.fit_its_cluster()
        elif kind == "mask":
            self.fit_mask(*request[1:])

    def _refit(self) -> None:
        """The "leave out" box changed: fit what is shown again with the new fit."""
        if self.result is None:
            return
        if self.pixel_yx is not None and self.result.what.startswith("pixel"):
            self.show_pixel(*self.pixel_yx)
        else:
            self.fit()  # prepared for the next fit

    def show_pixel(self, y: int, x: int) -> SpectrumFit | None:
        """Fit pixel (y, x) of the current cube and draw it (once the fit is ready)."""
        cube = self.cube
        if cube is None:
            return None
        try:
            spectrum = cube.pixel(y, x)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        self.pixel_yx = (int(y), int(x))
        fit = self.fit()
        if fit is None:
            self._pending = ("pixel", int(y), int(x))
            self.summary.setText(f"pixel y={y}, x={x}: learning the fit's clusters first...")
            return None
        start = time.perf_counter()
        result = fit_pixels(fit, spectrum, what=f"pixel (y={y}, x={x})")
        self.last_ms = 1000 * (time.perf_counter() - start)
        self._show(result, (int(y), int(x)))
        return result

    def fit_its_cluster(self) -> SpectrumFit | None:
        """Fit and draw the summed spectrum of the clicked pixel's cluster."""
        cube = self.cube
        if cube is None or self.pixel_yx is None:
            notify("click a pixel first: its cluster is fitted")
            return None
        fit = self.fit()
        if fit is None:
            self._pending = ("cluster",)
            return None
        y, x = self.pixel_yx
        lab, _ = fit._labels(np.asarray(cube.pixel(y, x), np.float32)[None])
        if lab[0] < 0:
            notify(f"pixel y={y}, x={x} holds no counts: it is in no cluster")
            return None
        start = time.perf_counter()
        result = fit_cluster(fit, int(lab[0]))
        self.last_ms = 1000 * (time.perf_counter() - start)
        self._show(result, None)
        return result

    def region_mask(self) -> np.ndarray:
        """Boolean (H, W) mask of the chosen Shapes layer (all shapes) or Labels layer (selected label)."""
        return region_mask(self.viewer, self.cube_layer, self.region_combo.currentText())

    def fit_region(self) -> Any:
        """Fit the sum of the chosen region's pixels, on a worker."""
        try:
            mask = self.region_mask()
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        return self.fit_mask(mask, f"region {self.region_combo.currentText()!r}")

    def fit_mask(self, mask: np.ndarray, what: str = "region") -> Any:
        """Fit the sum of the pixels where ``mask`` (H, W) is True, on a worker (the region
        streams the cube); returns the worker, or None."""
        cube = self.cube
        if cube is None:
            return None
        fit = self.fit()
        if fit is None:
            self._pending = ("mask", mask, what)
            return None
        n = int(np.count_nonzero(mask))
        try:
            steps = iter_fit_region(fit, mask, tile_bytes=self.tile_bytes, what=f"{what}, {n:,} pixels")
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None

        def done(result: SpectrumFit) -> None:
            if self.cube is cube:
                self._show(result, mask)

        return self.jobs.start(steps, what="region fit", on_done=done)

    # -- drawing ----------------------------------------------------------------------------
    def _show(self, result: SpectrumFit, where: tuple[int, int] | np.ndarray | None) -> None:
        """Draw ``result``; ``where`` it came from (a pixel (y, x), a mask, None for a cluster)
        picks the map values "compare with" draws."""
        self.result = result
        self._where = where
        e = result.energy
        c = result.channels
        self._set(self.measured_curve, e, result.measured)
        self._set(self.fitted_curve, e[c], result.fitted[c])
        self._set(self.background_curve, e[c], result.background[c])
        self._set(self.residual_curve, e[c], result.residual[c])
        for curve in self._family_curves.values():
            self.plot.removeItem(curve)
        self._family_curves = {}
        self.families_list.blockSignals(True)
        self.families_list.clear()
        for fam, part in result.families.items():
            curve = pg.PlotDataItem(e[c], part[c], pen=_family_pen(fam))
            curve.setVisible(fam not in self._hidden)
            self.plot.addItem(curve)
            self._family_curves[fam] = curve
            item = QListWidgetItem(f"{fam}  {result.net_counts[fam]:,.0f}")
            item.setData(Qt.ItemDataRole.UserRole, fam)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if fam in self._hidden else Qt.CheckState.Checked)
            r, g, b = (int(255 * v) for v in element_colour(line_symbol(fam)))
            item.setForeground(QColor(r, g, b))
            self.families_list.addItem(item)
        self.families_list.blockSignals(False)
        self._redraw_implied()

    def _redraw_implied(self, *_: Any) -> None:
        """The chosen model's implied spectrum (if any), the ranges and the summary."""
        result = self.result
        if result is None:
            return
        c = result.channels
        lines = [
            f"{result.what}: {result.measured.sum():,.0f} counts; reduced \u03c7\u00b2 "
            f"{result.reduced_chi2:.2f} (about 1 when the fit explains the counts within Poisson noise)"
        ]
        if result.clusters:
            lines.append(
                "fitted with the line shapes and background of cluster"
                + ("s " if len(result.clusters) > 1 else " ")
                + ", ".join(str(k + 1) for k in result.clusters)
            )
        lines += result.notes
        self.implied = None
        model = self.compare_combo.currentText()
        where = self._where
        values, notes = ({}, []) if model in ("", _NONE) or where is None else self._model_values(model, where)
        if model not in ("", _NONE) and where is None:
            lines.append(f"a cluster's sum holds its sampled pixels, and {model}'s values are per pixel: not drawn")
        elif model not in ("", _NONE) and not values:
            lines.append(f"no map layer of {model} on this cube")
        if values:
            self.implied = implied_spectrum(result, values)
            chi = float(reduced_chi2(result.measured[c], self.implied[c], n_parameters=result.n_parameters))
            shown = sorted((f for f in values if f in result.families), key=lambda f: -result.net_counts[f])
            unshown = [f for f in values if f not in result.families and values[f] > 0.5]
            lines.append(
                f"{model}'s values drawn with the fit's line shapes and background: reduced \u03c7\u00b2 "
                f"{chi:.2f}; " + ", ".join(f"{f} {values[f]:,.0f} (fit {result.net_counts[f]:,.0f})" for f in shown[:6])
            )
            if unshown:
                lines.append(
                    f"{model} reads " + ", ".join(f"{f} {values[f]:,.0f}" for f in unshown) + ", which the "
                    "fit left out of this spectrum: no line shape to draw them with"
                )
            if not self._fit_based(model):
                lines.append(
                    f"{model} is a learnt model without a spectrum of its own: its background and line "
                    "shapes cannot be shown, only its values drawn with the fit's"
                )
            lines += notes
            self._set(self.implied_curve, result.energy[c], self.implied[c])
            if self.legend.getLabel(self.implied_curve) is None:
                self.legend.addItem(self.implied_curve, "model's values")
        else:
            self.implied_curve.setData([], [])
            self.legend.removeItem(self.implied_curve)
        self.summary.setText("\n".join(lines))
        self._rescale()

    def _set(self, curve: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
        curve.setData(np.asarray(x, np.float64), np.asarray(y, np.float64))

    def _rescale(self) -> None:
        """The count axis from just below the smallest positive count to just above the
        largest (log) or 0 to the largest (linear), as the Spectrum inspector's; the residual
        axis symmetric, at least +/- 4 standard deviations."""
        result = self.result
        if result is None:
            return
        c = result.channels
        curves = [result.fitted[c]] + ([self.implied[c]] if self.implied is not None else [])
        if self.log_check.isChecked():
            # the fit's tails fall to 1e-18 counts far above the last line: the fitted curves are
            # shown down to the smallest measured count or to what the fit expects in the channels
            # that hold counts (its 5th percentile there: a 20 ms pixel expects 0.01-0.1 counts a channel)
            hit = np.flatnonzero(result.measured > 0)
            floor = float(result.measured[hit].min()) if hit.size else np.inf
            if hit.size:
                inside = result.fitted[c][(result.energy[c] <= result.energy[hit[-1]]) & (result.fitted[c] > 0)]
                if inside.size:
                    floor = min(floor, float(np.percentile(inside, 5)))
            curves = [v[v >= floor] for v in curves]
        self.plot.setYRange(*count_range([result.measured, *curves], log=self.log_check.isChecked()), padding=0)
        lo, hi = float(result.energy[0]), float(result.energy[-1])
        self.plot.setXRange(lo, hi, padding=0.01)
        r = result.residual[c]
        top = max(4.0, 1.1 * float(np.max(np.abs(r)))) if r.size else 4.0
        self.res_plot.setYRange(-top, top, padding=0)

    def _on_log(self, on: bool) -> None:
        x_range = self.plot.getViewBox().viewRange()[0]
        self.plot.setLogMode(x=False, y=on)
        self.plot.enableAutoRange(x=False, y=False)
        self.plot.setXRange(*x_range, padding=0)
        self._rescale()

    def _on_family_toggled(self, item: QListWidgetItem) -> None:
        fam = item.data(Qt.ItemDataRole.UserRole)
        on = item.checkState() == Qt.CheckState.Checked
        (self._hidden.discard if on else self._hidden.add)(fam)
        if fam in self._family_curves:
            self._family_curves[fam].setVisible(on)

    def family_curves(self) -> dict[str, pg.PlotDataItem]:
        """The family parts' curves by family (for tests and scripts)."""
        return dict(self._family_curves)

    # -- mouse and life -----------------------------------------------------------------------
    def _on_click(self, event: Any) -> None:
        layer, cube = self.cube_layer, self.cube
        if layer is None or cube is None:
            return
        pix = layer_pixel(layer, event.position, (cube.height, cube.width))
        if pix is not None:
            self.show_pixel(*pix)

    def _on_cube_changed(self, *_: Any) -> None:
        self.result = None
        self.implied = None
        self.pixel_yx = None
        self._pending = None
        for curve in (
            self.measured_curve,
            self.fitted_curve,
            self.background_curve,
            self.residual_curve,
            self.implied_curve,
        ):
            curve.setData([], [])
        for curve in self._family_curves.values():
            self.plot.removeItem(curve)
        self._family_curves = {}
        self.families_list.clear()
        refill(self.compare_combo, [_NONE, *self.map_models()], quiet=True)
        cube = self.cube
        self.summary.setText(
            _HINT if cube is not None else "open a cube (File > Open, or File > Open Sample > painting)"
        )
        if cube is not None:
            self.res_plot.setLabel("bottom", "energy (keV)" if cube.calibrated else "channel (uncalibrated)")

    def _apply_theme(self, *_: Any) -> None:
        """napari's canvas and text colours (as ``apply_plot_theme`` gives a single plot)."""
        try:
            from napari.utils.theme import get_theme

            theme = get_theme(self.viewer.theme)
            bg, fg = theme.canvas.as_hex(), theme.text.as_hex()
        except Exception:  # noqa: BLE001 - a custom theme without these keys
            bg, fg = "#262930", "#f0f1f2"
        self.layout_widget.setBackground(bg)
        for plot in (self.plot, self.res_plot):
            for name in ("left", "bottom"):
                plot.getAxis(name).setPen(fg)
                plot.getAxis(name).setTextPen(fg)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        super().closeEvent(event)
