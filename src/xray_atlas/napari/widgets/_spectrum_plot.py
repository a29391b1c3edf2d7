"""The Spectrum inspector's plot: what is drawn, and nothing about where it comes from.

:class:`SpectrumPlot` owns a pyqtgraph ``PlotWidget`` and every item on it (the pixel, region,
sum and max curves, pinned pixels, cluster means, element line markers and their labels, the
energy-window band, the hint in an empty plot); the dock hands it arrays and names. The count
axis is fitted to the curves after each change (:func:`count_range`), never by pyqtgraph's
lazy auto-range, which would repaint the plot a second time per click.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg

from ._common import apply_plot_theme

__all__ = ["SpectrumPlot", "count_range", "window_colours"]


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


class SpectrumPlot:
    """Spectra against energy (or channel), with a legend, line markers and an energy window.

    Parameters
    ----------
    hint : str
        Text shown in the middle of the plot while it has no curve.

    Attributes
    ----------
    widget : pyqtgraph.PlotWidget
        The plot, for the dock's layout.
    pixel_curve, region_curve, sum_curve, max_curve : pyqtgraph.PlotDataItem
        The spectra the dock sets through :meth:`set_curve` and :meth:`set_region`.
    window : pyqtgraph.LinearRegionItem
        The energy window (hidden until :meth:`show_window`).
    """

    def __init__(self, *, hint: str) -> None:
        self.widget = pg.PlotWidget()
        self.widget.setMinimumHeight(220)
        self.log = False
        self._pin_curves: list[pg.PlotDataItem] = []
        self._cluster_curves: list[pg.PlotDataItem] = []
        self._marker_lines: list[tuple[str, Any]] = []
        self._marker_items: list[Any] = []
        self._label_anchors: list[tuple[Any, float, float]] = []  # (label, keV, marker top)
        plot = self.widget
        # no grid: pyqtgraph's translucent grid costs ~12 ms per repaint in software
        # rendering (benchmarks/bench_open_and_click.py), 6x the rest of the plot
        plot.setLabel("left", "counts")
        # counts are counts: no "(x0.001)" or "(x1e+15)" unit prefix on the axis
        plot.getAxis("left").enableAutoSIPrefix(False)
        self.legend = plot.addLegend(offset=(-10, 10))
        # what to do, in the middle of an empty plot (kept in place in screen coordinates)
        self.hint = pg.TextItem(hint, color="#aaaaaa")
        self.hint.setParentItem(plot.getViewBox())
        plot.getViewBox().sigResized.connect(self._place_hint)
        self.pixel_curve = plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=1.5))
        self.region_curve = plot.plot([], [], pen=pg.mkPen("#ffd54f", width=1.5))
        self._std_hi = pg.PlotDataItem([], [])
        self._std_lo = pg.PlotDataItem([], [])
        self.region_band = pg.FillBetweenItem(self._std_lo, self._std_hi, brush=pg.mkBrush(255, 213, 79, 60))
        plot.addItem(self.region_band)
        self.sum_curve = plot.plot([], [], pen=pg.mkPen("#aed581", width=1))
        self.max_curve = plot.plot([], [], pen=pg.mkPen("#e57373", width=1))
        # markers, labels and the window band are drawn to the view: they must not widen it
        self.marker_curve = pg.PlotDataItem([], [], pen=pg.mkPen("#bbbbbb", width=1), connect="pairs")
        plot.addItem(self.marker_curve, ignoreBounds=True)
        plot.getViewBox().sigXRangeChanged.connect(self._place_labels)  # a zoom moves the labels apart
        self.window = pg.LinearRegionItem(values=(6.2, 6.6))
        self.window.setZValue(-10)
        self.window.setVisible(False)
        plot.addItem(self.window, ignoreBounds=True)
        # Ranges are set explicitly after each change (see rescale): pyqtgraph's lazy
        # auto-range repaints the plot a second time, which doubles the click latency.
        plot.enableAutoRange(x=False, y=False)

    # -- curves -----------------------------------------------------------------------------
    def set_curve(self, curve: pg.PlotDataItem, name: str, x: np.ndarray, y: np.ndarray) -> None:
        """Set a curve's data and list it in the legend (curves without data stay out of it)."""
        curve.setData(x, y)
        if self.legend.getLabel(curve) is None:
            self.legend.addItem(curve, name)
        self.rescale()

    def set_region(self, x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
        """The region's mean spectrum and its band of one standard deviation (floored at 0)."""
        self._std_hi.setData(x, mean + std)
        self._std_lo.setData(x, np.maximum(mean - std, 0))
        self.set_curve(self.region_curve, "region mean", x, mean)

    def clear_curves(self) -> None:
        """Empty the pixel, region, sum and max curves (pins and cluster means stay)."""
        for curve in (self.pixel_curve, self.region_curve, self.sum_curve, self.max_curve, self._std_hi, self._std_lo):
            curve.setData([], [])
            self.legend.removeItem(curve)

    def _replace(self, curves: list[pg.PlotDataItem], x: np.ndarray, spectra: list[tuple[str, Any, np.ndarray]]):
        for curve in curves:
            self.widget.removeItem(curve)
            self.legend.removeItem(curve)
        out = []
        for name, colour, y in spectra:
            curve = self.widget.plot(x, y, pen=pg.mkPen(colour, width=1))
            self.legend.addItem(curve, name)
            out.append(curve)
        return out

    def set_pins(self, x: np.ndarray, spectra: list[tuple[str, Any, np.ndarray]]) -> None:
        """Replace the pinned pixels' curves by ``spectra``: (legend name, colour, counts)."""
        old, self._pin_curves = self._pin_curves, self._replace(self._pin_curves, x, spectra)
        if old or self._pin_curves:
            self.rescale()

    def set_cluster_means(self, x: np.ndarray, spectra: list[tuple[str, Any, np.ndarray]]) -> None:
        """Replace the cluster-mean curves by ``spectra``: (legend name, colour, counts)."""
        old, self._cluster_curves = self._cluster_curves, self._replace(self._cluster_curves, x, spectra)
        if old or self._cluster_curves:
            self.rescale()

    def pinned_spectra(self) -> list[np.ndarray]:
        return [c.yData for c in self._pin_curves]

    def cluster_spectra(self) -> list[np.ndarray]:
        return [c.yData for c in self._cluster_curves]

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

    def rescale(self) -> None:
        """Fit the count axis to the curves shown, then redraw the line markers once."""
        # the curves' own data: getData() gives the displayed (log10, downsampled) values
        counts = [
            np.asarray(c.yData, dtype=np.float64) for c in self._data_curves() if c.yData is not None and len(c.yData)
        ]
        self.hint.setVisible(not counts)
        self.widget.setYRange(*count_range(counts, log=self.log), padding=0)
        # apply the new view transform now rather than during the next paint, which
        # would otherwise schedule a second paint of the whole plot
        self.widget.getViewBox().updateMatrix()
        self._draw_markers()

    # -- axes, hint, log, theme -------------------------------------------------------------
    def set_hint(self, text: str) -> None:
        self.hint.setText(text)
        self._place_hint()

    def _place_hint(self, *_: Any) -> None:
        # the hint lives in the view box's pixel coordinates (it stays put on pan and zoom)
        centre, text = self.widget.getViewBox().boundingRect().center(), self.hint.textItem.boundingRect()
        self.hint.setPos(centre.x() - text.width() / 2, centre.y() - text.height() / 2)

    def set_energy_axis(self, energy: np.ndarray | None, *, calibrated: bool = True) -> None:
        """Show the span of ``energy`` (keV, or channels when not ``calibrated``); ``None``:
        no cube. The energy window is kept inside the span."""
        if energy is None:
            self.widget.setLabel("bottom", "energy")
            self.widget.setXRange(0.0, 1.0, padding=0)
            return
        self.widget.setLabel("bottom", "energy (keV)" if calibrated else "channel (uncalibrated)")
        lo, hi = float(energy[0]), float(energy[-1])
        self.widget.setXRange(lo, hi, padding=0.01)
        a, b = self.window.getRegion()
        if not (lo <= a < b <= hi):
            mid = lo + 0.15 * (hi - lo)
            self.window.setRegion((mid, mid + 0.02 * (hi - lo)))
        self.window.setBounds((lo, hi))

    def set_log(self, on: bool) -> None:
        """Counts on a log axis (pyqtgraph's view is then in log10 units) or a linear one."""
        self.log = bool(on)
        x_range = self.widget.getViewBox().viewRange()[0]
        self.widget.setLogMode(x=False, y=self.log)
        # setLogMode switches pyqtgraph's auto-range back on, which spans the log10 of the
        # zero channels and of the marker feet (10^-17..10^16): set the ranges ourselves
        self.widget.enableAutoRange(x=False, y=False)
        self.widget.setXRange(*x_range, padding=0)
        self.rescale()

    def apply_theme(self, viewer: Any) -> None:
        """napari's theme on the plot, and a window band that stands out on its background."""
        apply_plot_theme(self.widget, viewer)
        bg = self.widget.backgroundBrush().color()
        fill, edge = window_colours((bg.red(), bg.green(), bg.blue()))
        self.window.setBrush(pg.mkBrush(*fill))
        self.window.setHoverBrush(pg.mkBrush(*fill[:3], min(255, fill[3] + 50)))
        for line in self.window.lines:
            line.setPen(pg.mkPen(edge, width=2))
            line.setHoverPen(pg.mkPen(edge, width=4))

    # -- line markers ---------------------------------------------------------------------------
    def set_markers(self, lines: list[tuple[str, Any]]) -> None:
        """Mark ``lines``: (family name, :class:`~xray_atlas.physics.lines.MarkerLine`)."""
        self._marker_lines = list(lines)
        self._draw_markers()

    def marker_energies(self) -> list[float]:
        return [ln.energy_kev for _, ln in self._marker_lines]

    def _draw_markers(self) -> None:
        for item in self._marker_items:
            self.widget.removeItem(item)
        self._marker_items = []
        lines = self._marker_lines
        if not lines:
            self.marker_curve.setData([], [])
            return
        ymin, ymax = self.widget.getViewBox().viewRange()[1]
        if self.log:
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
            self.widget.addItem(label, ignoreBounds=True)
            self._marker_items.append(label)
            self._label_anchors.append((label, ln.energy_kev, np.log10(h) if self.log else h))
        self._place_labels()

    def _place_labels(self, *_: Any) -> None:
        """Put each line label at its marker's top, or the nearest free height below (else
        above) it, so that no label covers another at the current zoom (As Ka / Pb La lie
        10 eV apart)."""
        anchors = self._label_anchors
        if not anchors:
            return
        vb = self.widget.getViewBox()
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
