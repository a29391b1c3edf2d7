"""Element probabilities dock: which elements each pixel, k x k region or cluster holds, from
a trained multi-label model, on a worker with progress and Cancel.

Every element becomes an Image layer of probabilities in [0, 1] (element colour map, additive
blending, on the cube's grid), which File > Save Layers writes as ``/probabilities/<Symbol>``.
The three with the most spatial contrast are shown (an element present everywhere draws no
picture), the others hidden.
Clicking a pixel of the cube lists that pixel's probabilities here while the spectrum
inspector plots its spectrum; elements at or above their decision threshold are marked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget

from ...cube import TILE_BYTES
from ...devices import DEVICES
from ...errors import XrayAtlasError
from ...probabilities import (
    DEFAULT_ELEMENTS_MODEL,
    ElementModel,
    ProbabilitiesResult,
    check_cube,
    element_model_names,
    iter_probabilities,
    load_element_model,
    present,
    spectrum_probabilities,
)
from .._layers import (
    SHOWN,
    cube_of,
    element_colormap,
    grid_of,
    is_cube_layer,
    map_layer_data,
    provenance,
    shown_opacity,
    strongest,
    xa_meta,
)
from .._notify import notify_error
from .._workers import Delivery, JobBar
from ._common import ModelCombo, chosen_cube, click_callback, form_dock, layer_pixel, refill
from ._export import ExportRow
from ._folder import FolderRow

if TYPE_CHECKING:
    import napari

__all__ = ["ProbabilitiesWidget"]

WHERE = ("pixel", "k x k region", "clusters")
PIXEL_HINT = "click a pixel of the cube to see its probabilities"


def labels_of(layer: Any) -> np.ndarray:
    """Cluster labels of a Labels layer in the file convention (-1: no cluster): a clusters
    layer of the Clusters dock (1..K, noise K + 1), or any Labels layer (0: unlabelled)."""
    data = np.asarray(layer.data)
    xa = xa_meta(layer)
    if xa.get("kind") == "clusters":
        out = data.astype(np.int64) - 1
        out[data == xa["noise_label"]] = -1
        return out
    return np.where(data > 0, data, -1).astype(np.int64)


class ProbabilitiesWidget(QWidget):
    """Dock widget: cube, model, where (pixel, region, clusters), device; Run adds one
    probability layer per element; a click on the cube shows that pixel's probabilities."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        #: Bytes of spectra per streamed tile (Cancel takes effect between tiles).
        self.tile_bytes = TILE_BYTES
        self._model: ElementModel | None = None
        self._device: str | None = None
        self.cube_combo = QComboBox()
        self.model_combo = ModelCombo(lambda: sum(element_model_names().values(), []))
        self.where_combo = QComboBox()
        self.where_combo.addItems(list(WHERE))
        self.where_combo.setToolTip(
            "pixel: every spectrum on its own; region: the summed spectrum of each k x k "
            "block; clusters: the summed spectrum of each cluster of a Labels layer"
        )
        self.region_spin = QSpinBox()
        self.region_spin.setRange(2, 256)
        self.region_spin.setValue(5)
        self.labels_combo = QComboBox()
        self.elements_edit = QLineEdit()
        self.elements_edit.setPlaceholderText("all of the model's elements, or e.g. Pb, Hg, Cu")
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.run_button = QPushButton("Paint probabilities")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.pixel_label = QLabel(PIXEL_HINT)
        self._label_cube: Any = None  # the cube whose pixel the label shows
        self.pixel_label.setWordWrap(True)
        self.jobs = JobBar()
        self.export_row = ExportRow(
            self.viewer,
            self.jobs,
            kinds=("probability",),
            what="probability maps",
            formats=("TIFF (values)", "PNG figures + sheet", "overview sheet (PNG, PDF)"),
        )
        form_dock(
            self,
            [
                ("cube", self.cube_combo),
                ("model", self.model_combo),
                ("per", self.where_combo),
                ("region k", self.region_spin),
                ("clusters", self.labels_combo),
                ("elements", self.elements_edit),
                ("device", self.device_combo),
            ],
            self.run_button,
            self.jobs,
            self.jobs.status,
            self.summary,
            self.export_row,
            self.pixel_label,
            FolderRow(self, "probabilities"),
            viewer=self.viewer,
        )
        self.run_button.clicked.connect(self.run)
        self.model_combo.currentTextChanged.connect(self._forget_model)
        self.cube_combo.currentIndexChanged.connect(self._forget_pixel)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        self._on_mouse_drag = click_callback(self._on_click)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self._refresh_layers()
        self.model_combo.refresh()
        names = [self.model_combo.itemText(i) for i in range(self.model_combo.count())]
        if DEFAULT_ELEMENTS_MODEL in names:
            self.model_combo.setCurrentText(DEFAULT_ELEMENTS_MODEL)

    def _refresh_layers(self, *_: Any) -> None:
        from napari.layers import Labels

        # quiet: refilling passes through an empty list, which is no change of cube
        refill(self.cube_combo, [lyr.name for lyr in self.viewer.layers if is_cube_layer(lyr)], quiet=True)
        refill(self.labels_combo, [lyr.name for lyr in self.viewer.layers if isinstance(lyr, Labels)])
        self._forget_pixel()

    def _forget_pixel(self, *_: Any) -> None:
        """A pixel's probabilities stay on show only while their cube is the chosen one."""
        name = self.cube_combo.currentText()
        cube = cube_of(self.viewer.layers[name]) if name in self.viewer.layers else None
        if cube is not self._label_cube:
            self._label_cube = None
            self.pixel_label.setText(PIXEL_HINT)

    def _forget_model(self, *_: Any) -> None:
        self._model = None

    def model(self) -> ElementModel:
        """The chosen model, loaded once (a click then costs one spectrum's prediction)."""
        name = self.model_combo.currentText()
        if not name:
            raise XrayAtlasError("no element model is installed; train one in the Training dock (task elements)")
        device = self.device_combo.currentText()
        if self._model is None or self._model.name != name or self._device != device:
            self._model = load_element_model(name, device=device)
            self._device = device
        return self._model

    def elements(self) -> tuple[str, ...] | None:
        from ...physics.lines import atomic_number, symbol

        text = self.elements_edit.text().replace(" ", ",")
        items = [t for t in (s.strip() for s in text.split(",")) if t]
        return tuple(symbol(atomic_number(t, parameter="elements")) for t in items) or None

    # -- a clicked pixel ---------------------------------------------------------------------
    def _on_click(self, event: Any) -> None:
        name = self.cube_combo.currentText()
        cube = cube_of(self.viewer.layers[name]) if name in self.viewer.layers else None
        pix = layer_pixel(self.viewer.layers[name], event.position, cube.shape[:2]) if cube is not None else None
        if pix is not None:
            self.show_pixel(*pix)

    def show_pixel(self, y: int, x: int) -> dict[str, float] | None:
        """Predict pixel (y, x) of the current cube and list its probabilities; return them."""
        name = self.cube_combo.currentText()
        if name not in self.viewer.layers:
            return None
        cube = cube_of(self.viewer.layers[name])
        try:
            model = self.model()
            check_cube(cube, model)
            probs = spectrum_probabilities(cube.pixel(y, x), cube.energy, model)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        hits = present(probs, model.thresholds)
        ranked = sorted(probs, key=lambda el: -probs[el])[:10]
        self._label_cube = cube
        self.pixel_label.setText(
            f"pixel y={y}, x={x}: present {', '.join(hits) or 'none'}\n"
            + "  ".join(f"{el} {probs[el]:.2f}{'*' if el in hits else ''}" for el in ranked)
        )
        return probs

    # -- a run -------------------------------------------------------------------------------
    def run(self) -> Any:
        """Paint the probabilities on a worker; layers are added only when the whole cube is done."""
        base, cube = chosen_cube(self.viewer, self.cube_combo.currentText())
        if cube is None:
            return None
        where = self.where_combo.currentText()
        region, labels = 1, None
        try:  # everything that can be refused is refused here, before any work
            model = self.model()
            elements = self.elements()
            if elements:
                missing = [el for el in elements if el not in model.elements]
                if missing:
                    raise XrayAtlasError(
                        f"elements: {', '.join(missing)} not among the model's ({', '.join(model.elements)})"
                    )
            check_cube(cube, model)
            if where == "k x k region":
                region = self.region_spin.value()
            elif where == "clusters":
                lname = self.labels_combo.currentText()
                if lname not in self.viewer.layers:
                    raise XrayAtlasError("clusters: no Labels layer; run the Clusters dock or paint labels first")
                labels = labels_of(self.viewer.layers[lname])
                if labels.shape != (cube.height, cube.width):
                    raise XrayAtlasError(
                        f"clusters: layer {lname!r} is {labels.shape[0]} x {labels.shape[1]}, the "
                        f"cube {cube.height} x {cube.width}"
                    )
                if not (labels >= 0).any():
                    raise XrayAtlasError(f"clusters: layer {lname!r} labels no pixel")
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        tag = {"pixel": "pixel", "k x k region": f"{region}x{region}", "clusters": "clusters"}[where]

        def done(result: ProbabilitiesResult) -> Delivery:
            probs, run_notes = result.probabilities, list(result.notes)
            shown = strongest(probs, SHOWN, by="spread")
            opacity = shown_opacity({el: probs[el] for el in shown}, limits=(0.0, 1.0))
            suffix = ("" if tag == "pixel" else f" {tag}") + (
                "" if model.name == DEFAULT_ELEMENTS_MODEL else f" ({model.name})"
            )
            visible, hidden = [], []
            for el, data in probs.items():
                arr, kwargs, kind = map_layer_data(
                    f"P({el}){suffix}",
                    data,
                    kind="probability",
                    visible=el in shown,
                    extra={"element": el, "model": model.name, **provenance(cube)},
                )
                kwargs.update(colormap=element_colormap(el), contrast_limits=(0.0, 1.0), **grid_of(base))
                if el in shown:
                    kwargs["opacity"] = opacity
                (visible if el in shown else hidden).append((arr, kwargs, kind))
            visible.sort(key=lambda t: shown.index(t[1]["metadata"]["xray_atlas"]["element"]))
            share = {el: float((p >= model.thresholds[el]).mean()) for el, p in probs.items()}
            found = sorted((el for el in share if share[el] > 0), key=lambda el: -share[el])
            self.summary.setText(
                f"{len(probs)} layers; present in some {tag if tag != 'pixel' else 'pixel'}s: "
                + (", ".join(f"{el} {share[el]:.0%}" for el in found) or "none")
            )

            message = (
                f"Probabilities ready: {len(found)} of {len(probs)} elements present somewhere; "
                f"showing {', '.join(f'P({el})' for el in shown)}"
                + (f". {len(run_notes)} notes in Details" if run_notes else "")
            )
            return Delivery(self.viewer, visible + hidden, message, run_notes)

        steps = iter_probabilities(
            cube, model, region=region, labels=labels, elements=elements, tile_bytes=self.tile_bytes
        )
        return self.jobs.start(steps, what=f"probabilities with {model.name}", on_done=done)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        try:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
        except ValueError:
            pass
        super().closeEvent(event)
