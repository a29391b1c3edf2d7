"""Elemental maps dock: paint net-count maps of line families with a shipped or trained model
or a baseline, on a worker with progress and Cancel.

Every line becomes an Image layer (element colour map from black, additive blending) on the
cube's grid, so the spectrum inspector samples it like the cube, and File > Save Layers writes
``/maps/<line>``. The three strongest lines are shown, everything else hidden, so that the
canvas stays readable; layers arrive one per event-loop turn, so that napari never freezes. The model list is read again each time it opens, so a model trained in the
Training dock appears in it at once. A baseline's maps can be painted beside the model's. The
per-cluster fit also adds its clusters as a (hidden) Labels layer. The lines box takes the
lines to map instead of the default set, or with a leading ``+`` lines to add to it
(:func:`~xray_atlas.inference.parse_lines`); the toast names the families the run found in
the cube and added.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QWidget

from ...cube import TILE_BYTES, Progress, SpectralCube
from ...devices import DEVICES
from ...errors import XrayAtlasError
from ...inference import (
    BASELINES,
    DEFAULT_MAPS_MODEL,
    MapsResult,
    iter_maps,
    live_time_for,
    load_map_model,
    map_model_names,
    parse_lines,
)
from .._layers import (
    SHOWN,
    chi2_layer_data,
    cube_of,
    grid_of,
    is_cube_layer,
    map_layer_data,
    provenance,
    shown_opacity,
    strongest,
)
from .._notify import notify_error
from .._workers import Delivery, JobBar
from ._common import ModelCombo, chosen_cube, form_dock, refill
from ._export import ExportRow
from ._folder import FolderRow

if TYPE_CHECKING:
    import napari

__all__ = ["MapsWidget"]

#: The units a map can be painted in: label -> ``units`` of iter_maps and the result file.
UNITS = {"net counts": "counts", "counts per second (live time)": "counts/s"}


def _job(
    cube: SpectralCube,
    models: list,
    lines: tuple[str, ...] | None,
    add: tuple[str, ...],
    tile_bytes: int,
    units: str = "counts",
) -> Generator[Progress, None, list[MapsResult]]:
    """Stream the cube through each model; returns their :class:`MapsResult` in order. A
    model compared with the first maps the first one's lines."""
    out = []
    for i, mm in enumerate(models):
        if i == 0:
            got = yield from iter_maps(cube, mm, lines=lines, add_lines=add, tile_bytes=tile_bytes, units=units)
        else:
            got = yield from iter_maps(cube, mm, lines=out[0].lines, tile_bytes=tile_bytes, units=units)
        out.append(got)
    return out


def _chi2_note(chi2: np.ndarray, layer: str) -> str:
    """'; the fit's reduced chi-square ...' for the toast: its median and the share of pixels
    the fit explains poorly (above 3: a line or a shape the fit lacks)."""
    c = chi2[np.isfinite(chi2)]
    if not c.size:
        return ""
    return (
        f"; the fit's reduced chi-square: median {float(np.median(c)):.2f}, above 3 in "
        f"{float((c > 3).mean()):.1%} of the pixels (layer {layer!r}, hidden)"
    )


class MapsWidget(QWidget):
    """Dock widget: cube, model, lines, device; Run paints one layer per line."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        #: Bytes of spectra per streamed tile (Cancel takes effect between tiles).
        self.tile_bytes = TILE_BYTES
        self.cube_combo = QComboBox()
        self.model_combo = ModelCombo(lambda: sum(map_model_names().values(), []))
        self.model_combo.setToolTip(
            "shipped and trained models (maps-fit, the default: a learnt correction of the "
            "per-cluster fit, held within its standard errors; maps-default: the prior "
            "MLP, faster, for paintings and for cubes without energy calibration), and "
            "the baselines lsq (least squares on pure spectra), roi (window sums) and fit "
            "(least squares with each cluster of similar pixels' own line ratios)"
        )
        self.lines_edit = QLineEdit()
        self.lines_edit.setPlaceholderText("the twelve and those found; Pb-L, Hg-L: only these; +As-K: add")
        self.lines_edit.setToolTip(
            "empty: the default set, the twelve study lines (S-K ... Pb-L) and every K or L "
            "family the per-cluster fit and the element model find in the cube; a list "
            "(Pb-L, Hg-L, Fe-K): only those; a list that starts with + (+As-K, Co-K): the "
            "default set and those. Any family xraylib knows with a line in the cube's "
            "energy range; lines beyond a learnt model's outputs come from the per-cluster "
            "fit"
        )
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.compare_combo = QComboBox()
        self.compare_combo.addItems(["none", *BASELINES])
        self.compare_combo.setToolTip(
            "also paint a baseline's maps, side by side (lsq: least squares on pure "
            "spectra; roi: window sums, the closest on the real M6 spectrum, docs/maps.md)"
        )
        self.units_combo = QComboBox()
        for label, units in UNITS.items():
            self.units_combo.addItem(label, units)
        self.run_button = QPushButton("Paint maps")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.jobs = JobBar()
        self.export_row = ExportRow(
            self.viewer,
            self.jobs,
            kinds=("map", "fit chi2"),
            what="maps",
            formats=("TIFF (values)", "PNG figures + sheet", "overview sheet (PNG, PDF)"),
        )
        form_dock(
            self,
            [
                ("cube", self.cube_combo),
                ("model", self.model_combo),
                ("lines", self.lines_edit),
                ("device", self.device_combo),
                ("compare with", self.compare_combo),
                ("units", self.units_combo),
            ],
            self.run_button,
            self.jobs,
            self.jobs.status,
            self.summary,
            self.export_row,
            FolderRow(self, "maps"),
            viewer=self.viewer,
        )
        self.run_button.clicked.connect(self.run)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_cubes)
        self.cube_combo.currentTextChanged.connect(self._refresh_units)
        self._refresh_cubes()
        self._refresh_units()
        self.model_combo.refresh()
        names = [self.model_combo.itemText(i) for i in range(self.model_combo.count())]
        self.model_combo.setCurrentText(DEFAULT_MAPS_MODEL if DEFAULT_MAPS_MODEL in names else BASELINES[0])

    def _refresh_units(self, *_: Any) -> None:
        """Counts per second only for a cube whose file states its live time."""
        name = self.cube_combo.currentText()
        cube = cube_of(self.viewer.layers[name]) if name in self.viewer.layers else None
        timed = cube is not None and cube.live_time_s is not None
        item = self.units_combo.model().item(1)
        item.setEnabled(timed)
        if not timed and self.units_combo.currentIndex() == 1:
            self.units_combo.setCurrentIndex(0)
        self.units_combo.setToolTip(
            "net counts of each line family, or net counts per second of each pixel's live time (maps of scans "
            "with different dwell times compare)"
            + ("" if timed or cube is None else f"; {name} states no live time, so counts only")
        )

    def units(self) -> str:
        """The chosen units of the maps: ``counts`` or ``counts/s``."""
        return self.units_combo.currentData()

    def _refresh_cubes(self, *_: Any) -> None:
        refill(self.cube_combo, [lyr.name for lyr in self.viewer.layers if is_cube_layer(lyr)])

    def lines(self) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """(lines instead of the default set or None, lines added to it) of the lines box."""
        return parse_lines(self.lines_edit.text())

    def run(self) -> Any:
        """Paint the maps on a worker; layers are added only when the whole cube is done."""
        base, cube = chosen_cube(self.viewer, self.cube_combo.currentText())
        if cube is None:
            return None
        model = self.model_combo.currentText()
        device = self.device_combo.currentText()
        try:  # everything that can be refused is refused here, before any work
            units = self.units()
            live_time_for(cube, units=units)
            lines, add = self.lines()
            other = self.compare_combo.currentText()
            names = [model] + ([other] if other in BASELINES and other != model else [])
            # the default by name: on a cube without calibration its stand-in, with a note
            models = [
                load_map_model(None if n == DEFAULT_MAPS_MODEL else n, cube, device=device, lines=lines, add_lines=add)
                for n in names
            ]
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None

        def done(results: list) -> Delivery:
            return self._delivery(results, base, model, units)

        steps = _job(cube, models, lines, add, self.tile_bytes, units)
        return self.jobs.start(steps, what=f"maps with {model}", on_done=done)

    def _delivery(self, results: list[MapsResult], base: Any, model: str, units: str = "counts") -> Delivery:
        """The run's layers (the strongest lines of the first model first and visible, the rest
        hidden), one toast and the notes for the details log."""
        where = grid_of(base)
        kept = {**provenance(cube_of(base)), "units": units}  # the cube's name and pixel size, for an export
        first = results[0].maps
        ranked = strongest(first, 5)  # by mean net counts
        shown = ranked[:SHOWN]
        opacity = shown_opacity({ln: first[ln] for ln in shown})
        visible, hidden, details = [], [], []
        chi2_note = ""
        for i, result in enumerate(results):
            model_name, maps, clusters, chi2 = result.model, result.maps, result.labels, result.reduced_chi2
            details += [f"{model_name}: {note}" for note in result.notes]
            for ln, data in maps.items():
                arr, kwargs, kind = map_layer_data(
                    f"{ln} ({model_name})",
                    data,
                    line=ln,
                    visible=i == 0 and ln in shown,
                    extra={"model": model_name, **kept},
                )
                if kwargs["visible"]:
                    kwargs["opacity"] = opacity
                (visible if kwargs["visible"] else hidden).append((arr, {**kwargs, **where}, kind))
            if clusters is not None:  # which pixels shared line ratios: label 0 is no counts
                hidden.append(
                    (
                        clusters.astype(np.int32) + 1,
                        {
                            "name": f"clusters ({model_name})",
                            "opacity": 0.4,
                            "visible": False,
                            "metadata": {"xray_atlas": {"kind": "fit clusters", "model": model_name}},
                            **where,
                        },
                        "labels",
                    )
                )
            if chi2 is not None:  # how well the fit explains each pixel: read on its own, so hidden
                data, kwargs, kind = chi2_layer_data(chi2, model_name, extra=kept)
                hidden.append((data, {**kwargs, **where}, kind))
                if i == 0:
                    chi2_note = _chi2_note(chi2, kwargs["name"])
        visible.sort(key=lambda t: shown.index(t[1]["metadata"]["xray_atlas"]["line"]))
        per_s = units == "counts/s"
        self.summary.setText(
            f"{len(visible) + len(hidden)} layers; strongest mean net counts{' per s' * per_s}: "
            + ", ".join(f"{k} {float(first[k].mean()):.{3 if per_s else 0}{'g' if per_s else 'f'}}" for k in ranked)
        )
        used, found = results[0].model, [f.line for f in results[0].found]
        message = f"Maps ready: {len(first)} lines with {used}"
        if used != model:
            message += f" (standing in for {model}, which needs an energy calibration)"
        if found:
            message += f"; found in the cube and added: {', '.join(found)}"
        message += (
            f"; showing {', '.join(shown)}" + chi2_note + (f". {len(details)} notes in Details" if details else "")
        )
        return Delivery(self.viewer, visible + hidden, message, details)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        super().closeEvent(event)
