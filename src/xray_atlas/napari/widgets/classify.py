"""Classify-image dock: classify the chosen image layer (a 2-D image, or each plane of a stack)
with a shipped or trained image model on a worker (progress, Cancel), list the class
probabilities, and add the activation map (Grad-CAM) as an overlay layer."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QCheckBox, QComboBox, QLabel, QPushButton, QTableWidget, QTableWidgetItem, QWidget

from ...classify import DEFAULT_IMAGE_MODEL, DomainCheck, activation_map, check_domain, load_image_model
from ...cube import Progress
from ...devices import DEVICES
from ...errors import XrayAtlasError
from .._notify import notify_error, notify_warning
from .._workers import Delivery, JobBar
from ._common import ModelCombo, form_dock, refill

if TYPE_CHECKING:
    import napari

__all__ = ["ClassifyWidget"]


def _model_names() -> list[str]:
    from ...models.catalogue import list_models

    return [i.name for i in list_models("images")]


def _plane_metadata(metadata: Any, i: int, n: int) -> dict:
    """The metadata that concerns plane ``i`` of ``n``: a per-plane ``classes`` list (as the
    samples carry) is cut to the plane's own entry."""
    meta = dict(metadata) if isinstance(metadata, dict) else {}
    classes = meta.get("classes")
    if n > 1 and isinstance(classes, (list, tuple)) and len(classes) == n:
        meta["classes"] = [classes[i]]
    return meta


def _job(
    model: Any, planes: np.ndarray, cam: bool, metadata: Any = None
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray | None, list[DomainCheck]]]:
    probs, maps, checks = [], [], []
    for i, plane in enumerate(planes):
        probs.append(model([plane])[0])
        checks.append(check_domain(model, plane, metadata=_plane_metadata(metadata, i, len(planes))))
        if cam:
            maps.append(activation_map(model, plane, class_index=int(np.argmax(probs[-1]))))
        yield Progress(i + 1, len(planes), f"image {i + 1} of {len(planes)}")
    return np.stack(probs), (np.stack(maps) if cam else None), checks


class ClassifyWidget(QWidget):
    """Dock widget: image layer, model, device, activation map; Classify lists the class
    probabilities and adds the map as a layer over the image."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.image_combo = QComboBox()
        self.model_combo = ModelCombo(_model_names)
        self.model_combo.setToolTip(
            "the shipped radiograph classifier (Al1050 / Al2017) or a model trained in the "
            "Training dock (task 'images')"
        )
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.cam_box = QCheckBox("add the activation map (Grad-CAM)")
        self.cam_box.setChecked(True)
        self.run_button = QPushButton("Classify")
        self.jobs = JobBar()
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.horizontalHeader().setStretchLastSection(True)
        form_dock(
            self,
            [
                ("image", self.image_combo),
                ("model", self.model_combo),
                ("device", self.device_combo),
                ("", self.cam_box),
            ],
            self.run_button,
            self.jobs,
            self.jobs.status,
            self.verdict,
            self.table,
            viewer=self.viewer,
        )
        self.run_button.clicked.connect(self.run)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_images)
        self._refresh_images()
        self.model_combo.refresh()
        if DEFAULT_IMAGE_MODEL in _model_names():
            self.model_combo.setCurrentText(DEFAULT_IMAGE_MODEL)
        #: (probabilities (N, k), classes) of the last run, for tests and scripting
        self.result: Any = None
        #: per image of the last run: is it like the model's training images (DomainCheck)
        self.domain: list[DomainCheck] = []

    def _refresh_images(self, *_: Any) -> None:
        from napari.layers import Image

        refill(
            self.image_combo,
            [
                lyr.name
                for lyr in self.viewer.layers
                if isinstance(lyr, Image)
                and lyr.ndim in (2, 3)
                and not lyr.rgb
                and not lyr.name.startswith("activation map")
            ],
        )

    def run(self) -> Any:
        """Check the layer and load the model here (a clear message for what cannot run);
        classification and the maps run on a worker."""

        name = self.image_combo.currentText()
        if name not in self.viewer.layers:
            notify_error("open an image first (File > Open, or File > Open Sample > xray-atlas radiograph)")
            return None
        layer = self.viewer.layers[name]
        data = np.asarray(layer.data)
        planes = data[None] if data.ndim == 2 else data
        try:
            if min(planes.shape[-2:]) < 4:
                raise XrayAtlasError(f"layer {name!r}: images of at least 4 x 4 pixels are needed, got {data.shape}")
            if not np.isfinite(planes).all():
                raise XrayAtlasError(f"layer {name!r} has NaN or infinite pixels")
            model = load_image_model(self.model_combo.currentText() or None, device=self.device_combo.currentText())
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        cam = self.cam_box.isChecked()

        def done(result: tuple[np.ndarray, np.ndarray | None, list[DomainCheck]]) -> Delivery | None:
            probs, maps, checks = result
            self.result = (probs, model.classes)
            self.domain = checks
            self.show_probabilities(probs, model.classes, checks)
            if maps is None:
                return None
            kwargs = {
                "name": f"activation map {name}",
                "colormap": "inferno",
                "blending": "additive",
                "opacity": 0.6,
                "contrast_limits": (0, 1),
                "scale": layer.scale,
                "translate": layer.translate,
            }
            # over the image it explains, added over several turns of the event loop
            return Delivery(
                self.viewer,
                [(maps[0] if data.ndim == 2 else maps, kwargs, "image")],
                hide_cubes=False,
                hide_results=False,
            )

        return self.jobs.start(
            _job(model, planes.astype(np.float32, copy=False), cam, layer.metadata),
            what=f"classification with {model.name}",
            on_done=done,
        )

    def show_probabilities(
        self, probs: np.ndarray, classes: tuple[str, ...], checks: list[DomainCheck] | None = None
    ) -> None:
        """One row per image (plane): its class, the probability of each class, and whether the
        image is like the model's training images; images outside are counted in the verdict."""

        checks = checks or []
        self.table.setColumnCount(2 + len(classes))
        self.table.setHorizontalHeaderLabels(["class", "like training?", *[f"P({c})" for c in classes]])
        self.table.setRowCount(len(probs))
        self.table.setVerticalHeaderLabels([str(i) for i in range(len(probs))])
        for r, p in enumerate(probs):
            self.table.setItem(r, 0, QTableWidgetItem(classes[int(p.argmax())]))
            if r < len(checks):
                c = checks[r]
                item = QTableWidgetItem({True: "yes", False: "NO: outside", None: "unknown"}[c.inside])
                item.setToolTip(c.message)
                self.table.setItem(r, 1, item)
            for j, v in enumerate(p):
                self.table.setItem(r, 2 + j, QTableWidgetItem(f"{v:.3f}"))
        if len(probs) == 1:
            verdict = f"{classes[int(probs[0].argmax())]} (p = {probs[0].max():.3f})"
        else:
            counts = np.bincount(probs.argmax(1), minlength=len(classes))
            verdict = (
                ", ".join(f"{classes[j]}: {counts[j]}" for j in np.argsort(-counts) if counts[j])
                + f" of {len(probs)} images"
            )
        outside = [c for c in checks if c.inside is False]
        if outside:
            which = "this image is" if len(probs) == 1 else f"{len(outside)} of {len(probs)} images are"
            note = f"Warning: {which} {outside[0].message[0].lower()}{outside[0].message[1:]}"
            verdict += "\n" + note
            notify_warning(note, log=self.jobs)
        elif checks and checks[0].inside is None:
            verdict += "\n" + checks[0].message
        self.verdict.setText(verdict)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        super().closeEvent(event)
