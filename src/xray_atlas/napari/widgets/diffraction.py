"""Diffraction dock: read the correlation (CFS) encoding from a diffraction image with a
network or the analytic inverse, rebuild a lattice with it on a worker (progress, Cancel),
and add the lattice, the re-simulated image and the residual as layers; the encoding is drawn
as an S x S matrix beside the image R^2.

Preparation steps for experimental images (undo a log scale, inpaint a masked beam stop,
top-hat, histogram matching) are optional; with "show steps" each stage becomes a layer.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import QCheckBox, QComboBox, QFileDialog, QLabel, QPushButton, QSpinBox, QWidget

from ...devices import DEVICES
from ...diffraction import (
    DIFFRACTION_BASELINES,
    check_image,
    default_model_name,
    iter_reconstruct,
    load_predictor,
    metadata_span,
    prepare_image,
    reference_image,
)
from ...errors import XrayAtlasError
from .._notify import notify_error, notify_warning
from .._workers import Delivery, JobBar
from ._common import ModelCombo, apply_plot_theme, form_dock, refill

if TYPE_CHECKING:
    import napari

__all__ = ["DiffractionWidget", "encoding_matrix"]


def encoding_matrix(encoding, span: int) -> np.ndarray:
    """(S, S) matrix of the encoding, [dy, dx], with a(0, 0) = 1."""
    m = np.ones(span * span, dtype=np.float32)
    m[1:] = np.asarray(encoding, dtype=np.float32)
    return m.reshape(span, span)


def _model_names() -> list[str]:
    from ...models.catalogue import list_models

    return [i.name for i in list_models("diffraction")] + list(DIFFRACTION_BASELINES)


class DiffractionWidget(QWidget):
    """Dock widget: image layer, span, model, preparation; Reconstruct adds the layers."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.image_combo = QComboBox()
        self.load_button = QPushButton("Load image...")
        self.span_combo = QComboBox()
        self.span_combo.addItems(["2", "3", "4"])
        self.model_combo = ModelCombo(_model_names)
        self.model_combo.setToolTip(
            "the shipped model per span, trained ones, or 'analytic' (inverse Fourier "
            "transform of the image: exact on clean images, fragile on noisy ones)"
        )
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.unlog_box = QCheckBox("undo log scale")
        self.inpaint_box = QCheckBox("inpaint pixels <= 0 (beam stop)")
        self.tophat_spin = QSpinBox()
        self.tophat_spin.setRange(0, 64)
        self.tophat_spin.setToolTip("white top-hat radius in pixels (0: off)")
        self.match_box = QCheckBox("match the training histogram")
        self.steps_box = QCheckBox("show steps as layers")
        self.run_button = QPushButton("Predict and reconstruct")
        self.jobs = JobBar()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.matrix = pg.PlotWidget()
        self.matrix.setMinimumHeight(180)
        self.matrix.setAspectLocked(True)
        self.matrix.invertY(True)
        self.matrix.setTitle("encoding a(dx, dy)")
        self.matrix.getAxis("bottom").setLabel("dx")
        self.matrix.getAxis("left").setLabel("dy")
        apply_plot_theme(self.matrix, napari_viewer)
        self.matrix_item = pg.ImageItem(axisOrder="row-major")
        self.matrix_item.setLookupTable(pg.colormap.get("CET-D1").getLookupTable(nPts=256))
        self.matrix.addItem(self.matrix_item)
        self._labels: list = []

        form_dock(
            self,
            [
                ("image", self.image_combo),
                ("", self.load_button),
                ("span", self.span_combo),
                ("model", self.model_combo),
                ("device", self.device_combo),
                ("prepare", self.unlog_box),
                ("", self.inpaint_box),
                ("top-hat radius", self.tophat_spin),
                ("", self.match_box),
                ("", self.steps_box),
            ],
            self.run_button,
            self.jobs,
            self.jobs.status,
            self.summary,
            self.matrix,
            viewer=self.viewer,
        )

        self.run_button.clicked.connect(self.run)
        self.load_button.clicked.connect(self._ask_file)
        self.span_combo.currentTextChanged.connect(self._span_changed)
        self.image_combo.currentTextChanged.connect(self._image_changed)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_images)
        self.viewer.layers.events.inserted.connect(self._on_inserted)  # after the refill
        self.model_combo.refresh()
        self._refresh_images()
        self._image_changed(self.image_combo.currentText())
        self._span_changed(self.span_combo.currentText())
        #: the last reconstruction (for tests and scripting)
        self.result: Any = None
        #: side of the rebuilt lattice (None: at least 96 and twice the image side)
        self.lattice_size: int | None = None

    # -- inputs -------------------------------------------------------------------------
    def _refresh_images(self, *_: Any) -> None:
        from napari.layers import Image

        # quiet: refilling passes through other names, whose spans must not stick
        before = refill(
            self.image_combo,
            [lyr.name for lyr in self.viewer.layers if isinstance(lyr, Image) and lyr.ndim == 2 and not lyr.rgb],
            quiet=True,
        )
        if self.image_combo.currentText() != before:
            self.image_combo.currentTextChanged.emit(self.image_combo.currentText())

    def _on_inserted(self, event: Any) -> None:
        """A diffraction image just opened (its metadata declares a span) becomes the choice."""
        layer = event.value
        try:
            declared = metadata_span(layer.metadata, name=f"layer {layer.name!r}") is not None
        except XrayAtlasError:
            declared = False
        if declared and self.image_combo.findText(layer.name) >= 0:
            self.image_combo.setCurrentText(layer.name)

    def _image_changed(self, name: str) -> None:
        """Follow the span the chosen layer's metadata declares (the sample: 3), if any."""

        if name not in self.viewer.layers:
            return
        try:
            span = metadata_span(self.viewer.layers[name].metadata, name=f"layer {name!r}")
        except XrayAtlasError as err:
            notify_warning(f"{err}; choose the span by hand")
            return
        if span is not None:
            self.span_combo.setCurrentText(str(span))

    def _span_changed(self, text: str) -> None:
        want = default_model_name(int(text))
        names = [self.model_combo.itemText(i) for i in range(self.model_combo.count())]
        if self.model_combo.currentText() not in DIFFRACTION_BASELINES:
            self.model_combo.setCurrentText(want if want in names else DIFFRACTION_BASELINES[0])

    def _ask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Diffraction image", "", "Images (*.tif *.tiff *.png *.npy *.h5 *.hdf5 *.jpg)"
        )
        if path:
            self.load(path)

    def load(self, path: str) -> Any:
        """Open an image file as a layer (span from its metadata when it has one)."""

        from ...diffraction import image_span
        from ...io.images import read_image

        try:
            img = read_image(path)
            span = image_span(path)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        from pathlib import Path

        layer = self.viewer.add_image(img, name=Path(path).stem, colormap="magma")
        if span is not None:
            self.span_combo.setCurrentText(str(span))
        self.image_combo.setCurrentText(layer.name)
        return layer

    # -- run ----------------------------------------------------------------------------
    def run(self) -> Any:
        """Check the image and load the model here; preparation (inpainting can take seconds),
        prediction and the Monte Carlo run on a worker."""

        name = self.image_combo.currentText()
        if name not in self.viewer.layers:
            notify_error("open a 2-D diffraction image first (Load image..., File > Open or the sample)")
            return None
        data = np.asarray(self.viewer.layers[name].data, dtype=np.float64)
        span = int(self.span_combo.currentText())
        try:  # what can be refused is refused here, before any work (NaN pixels are inpainted)
            check_image(np.where(np.isfinite(data), data, 0.0))
            predictor = load_predictor(
                self.model_combo.currentText(), span=span, device=self.device_combo.currentText()
            )
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        base = self.viewer.layers[name]
        options = {
            "unlog": self.unlog_box.isChecked(),
            "mask": (data <= 0) if self.inpaint_box.isChecked() else None,
            "tophat": self.tophat_spin.value(),
        }
        match, lattice_size = self.match_box.isChecked(), self.lattice_size

        def job() -> Generator[Any, None, Any]:
            image, stages = prepare_image(data, match=reference_image(span) if match else None, **options)
            return (yield from iter_reconstruct(image, predictor, stages=stages, lattice_size=lattice_size))

        def done(rec: Any) -> Delivery:
            self.result = rec
            tag = f"({rec.model}, span {rec.span})"
            self.show_encoding(rec.encoding, rec.span)
            enc = ", ".join(f"{v:+.3f}" for v in rec.encoding)
            note = "" if rec.converged else "; the lattice did not reach the encoding within 0.03"
            self.summary.setText(f"image R^2 {rec.image_r2:.3f}{note}\nencoding [{enc}]")
            lim = float(np.abs(rec.residual).max()) or 1.0
            on_image = {"scale": base.scale, "translate": base.translate}
            # top to bottom as the list shows them: residual, re-simulated, lattice, the steps
            layers = [
                (
                    rec.residual,
                    {"name": f"residual {tag}", "colormap": "PiYG", "contrast_limits": (-lim, lim), **on_image},
                    "image",
                ),
                (rec.reconstruction, {"name": f"re-simulated {tag}", "colormap": "magma", **on_image}, "image"),
                (
                    rec.lattice,
                    {
                        "name": f"lattice {tag}",
                        "colormap": "gray",
                        "interpolation2d": "nearest",
                        "contrast_limits": (0, 1),
                    },
                    "image",
                ),
            ]
            if self.steps_box.isChecked():
                layers += [
                    (np.asarray(arr, np.float32), {"name": f"{name} {step}", "colormap": "magma"}, "image")
                    for step, arr in reversed(rec.stages[1:])
                ]
            # one layer per turns of the event loop, earlier results left as they are
            return Delivery(self.viewer, layers, hide_cubes=False, hide_results=False)

        return self.jobs.start(job(), what=f"reconstruction with {predictor.name}", on_done=done)

    def show_encoding(self, encoding, span: int) -> None:
        """Draw the encoding as an S x S matrix (colour -1..1) with its values.

        Each cell gets at least 64 screen pixels, so that the values of a span-3 or span-4
        encoding (9 or 16 cells) sit side by side without overlapping.
        """
        from qtpy.QtGui import QFont

        m = encoding_matrix(encoding, span)
        self.matrix_item.setImage(m, levels=(-1, 1))
        self.matrix.setMinimumHeight(max(180, 64 * span + 60))
        self.matrix.setRange(xRange=(0, span), yRange=(0, span), padding=0.05)
        for item in self._labels:
            self.matrix.removeItem(item)
        self._labels = []
        font = QFont()
        font.setPointSizeF(8.0 if span >= 4 else 9.0)
        for dy in range(span):
            for dx in range(span):
                t = pg.TextItem(f"{m[dy, dx]:+.2f}", anchor=(0.5, 0.5), color="k")
                t.setFont(font)
                t.setPos(dx + 0.5, dy + 0.5)
                self.matrix.addItem(t)
                self._labels.append(t)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        super().closeEvent(event)
