"""Adapt dock: make the radiograph classifier fit the user's instrument (docs/adapt.md).

Pick the folder of labelled reference radiographs and press Adapt. The beam is fitted on a
worker (:func:`~xray_atlas.adapt.plan_image_adaptation`, seconds) and shown: each reference
image's measured level against the level the fitted beam gives it. The model is then trained
in a child process, as the Training dock trains (:mod:`xray_atlas.napari._training`), with its
progress and Cancel, and checked and written on a worker
(:func:`~xray_atlas.adapt.finish_image_adaptation`); the Classify image dock lists it at once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from ...classify import DEFAULT_IMAGE_MODEL
from ...cube import Progress
from ...errors import XrayAtlasError
from .._notify import notify, notify_error, notify_warning
from .._training import TrainingJob, TrainingStatus
from .._workers import JobBar, show_progress
from ._common import ModelCombo, apply_plot_theme, form_dock

if TYPE_CHECKING:
    import napari

__all__ = ["AdaptWidget"]


def _model_names() -> list[str]:
    from ...models.catalogue import list_models

    return [i.name for i in list_models("images")]


def _plan(references: str, base: str, n_images: int, epochs: int) -> Generator[Progress, None, Any]:
    from ...adapt import plan_image_adaptation

    yield Progress(0, 1, "reading the references and fitting the beam")
    try:
        plan = plan_image_adaptation(references, base=base or None, n_images=n_images, epochs=epochs, device="auto")
    except XrayAtlasError as err:  # handed to on_done, which raises it on the main thread: one notification
        return err
    yield Progress(1, 1, "beam fitted")
    return plan


def _finish(plan: Any, trained: Path, out: Path) -> Generator[Progress, None, Any]:
    from ...adapt import finish_image_adaptation

    yield Progress(0, 1, "checking the model on the references")
    try:
        made = finish_image_adaptation(plan, trained, out)
    except XrayAtlasError as err:
        return err
    yield Progress(1, 1, "written")
    return made


class AdaptWidget(QWidget):
    """Dock widget: reference folder, base model, where to save; Adapt / Cancel; the fitted
    beam against the references, training progress, the result."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.plan: Any = None
        #: The last model written (AdaptedImageModel), for tests and scripts.
        self.result: Any = None
        self._trained: Path | None = None
        self._out: Path | None = None
        self.training = TrainingStatus()
        self.job = TrainingJob(self.training)
        self.destroyed.connect(self.job.close)

        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder with Al1050/ and Al2017/ holding your radiographs")
        self.folder_button = QPushButton("…")
        self.folder_button.setMaximumWidth(30)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.folder_button)
        self.base_combo = ModelCombo(_model_names)
        self.base_combo.setToolTip("the model whose recipe is followed, and compared on your references")
        self.n_images = QSpinBox()
        self.n_images.setRange(100, 1_000_000)
        self.n_images.setValue(3000)
        self.n_images.setToolTip("synthetic radiographs of the fitted beam to train on (20 % validation)")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(12)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("new model in the user's models folder")
        self.adapt_button = QPushButton("Adapt")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.adapt_button)
        buttons.addWidget(self.cancel_button)
        holder = QWidget()
        holder.setLayout(buttons)
        # runs the two short steps on a thread; its own Cancel row is hidden (the dock's Cancel
        # stops whichever step runs), its status line shows what it is doing
        self.jobs = JobBar()
        self.jobs.setVisible(False)
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        self.fit_label = QLabel("")
        self.fit_label.setWordWrap(True)
        self.fit_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(180)
        self.plot.setLabel("bottom", "measured level, -ln(I / I0)")
        self.plot.setLabel("left", "fitted beam's level")
        self.plot.addLegend(offset=(10, 10))
        self.identity = self.plot.plot([], [], pen=pg.mkPen("#888888", width=1, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.points = {
            name: self.plot.plot([], [], pen=None, symbol=symbol, symbolSize=9, symbolBrush=colour, name=name)
            for name, symbol, colour in (
                ("Al1050 plates", "o", "#4fc3f7"),
                ("Al1050 wedges", "t", "#4fc3f7"),
                ("Al2017 plates", "o", "#ffb74d"),
                ("Al2017 wedges", "t", "#ffb74d"),
            )
        }
        form_dock(
            self,
            [
                ("references", folder_row),
                ("base model", self.base_combo),
                ("synthetic images", self.n_images),
                ("epochs", self.epochs),
                ("save to", self.out_edit),
            ],
            holder,
            self.jobs,
            self.jobs.status,
            self.bar,
            self.fit_label,
            self.plot,
            self.status,
            viewer=self.viewer,
        )
        self.folder_button.clicked.connect(self._browse)
        self.adapt_button.clicked.connect(self.adapt)
        self.cancel_button.clicked.connect(self.cancel)
        status = self.training
        status.progress.connect(self._show_progress)
        status.text.connect(self._show_text)
        status.failed.connect(self._on_failed)
        status.running.connect(self._on_running)
        self.viewer.events.theme.connect(self._apply_theme)
        self._apply_theme()
        self.base_combo.refresh()
        if DEFAULT_IMAGE_MODEL in _model_names():
            self.base_combo.setCurrentText(DEFAULT_IMAGE_MODEL)

    @property
    def busy(self) -> bool:
        return self.jobs.busy or self.job.busy

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of labelled radiographs (Al1050/, Al2017/)")
        if path:
            self.folder_edit.setText(path)

    def _destination(self) -> Path:
        from ..._files import check_destination
        from ...models.catalogue import default_model_path

        text = self.out_edit.text().strip()
        try:
            out = Path(text).expanduser() if text else default_model_path("images", "adapted")
        except OSError as err:
            raise XrayAtlasError(f"cannot create the models folder ({err})") from None
        check_destination(out, overwrite=False, folder_ok=False)
        return out

    # -- the three steps ----------------------------------------------------------------------
    def adapt(self) -> Any:
        """Fit the beam to the references (on a worker), then train and write the model."""
        if self.busy:
            notify("an adaptation is going on: cancel it first")
            return None
        folder = self.folder_edit.text().strip()
        if not folder:
            notify_error("choose the folder of labelled radiographs first (Al1050/ and Al2017/ in it)")
            return None
        try:
            from ...adapt import read_references

            self._out = self._destination()
            read_references(folder)  # a wrong folder is refused here, before any work (milliseconds)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        self.result = None
        self.status.setText("")
        self._set_running(True)
        self._show_progress(0, 0, "reading the references and fitting the beam…")
        steps = _plan(folder, self.base_combo.currentText(), self.n_images.value(), self.epochs.value())
        worker = self.jobs.start(steps, what="fit the beam", on_done=self._train)
        if worker is not None:
            worker.finished.connect(self._plan_ended)
        return worker

    def _plan_ended(self) -> None:
        if not self.job.busy:  # refused, failed or cancelled: nothing trains
            self.bar.setVisible(False)
            self._set_running(False)

    def _train(self, plan: Any) -> None:
        if isinstance(plan, XrayAtlasError):
            raise plan
        self.plan = plan
        self._show_fit(plan)
        for note in plan.notes[1:]:
            notify_warning(note, log=self.jobs)
        self._trained = Path(tempfile.mkdtemp(prefix="xray-atlas-adapt-")) / "adapted.safetensors"
        try:
            self.job.start(plan.config, self._trained, resume=False)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            self._set_running(False)
            return
        self.status.setText(f"training {plan.config.model} for the fitted beam ({plan.config.epochs} epochs)")

    def _on_running(self, on: bool) -> None:
        if on:
            return
        self.bar.setVisible(False)
        trained = self._trained
        if trained is None or not trained.exists():  # cancelled or failed before an epoch
            self._set_running(False)
            self._cleanup()
            return
        self._show_progress(0, 0, "checking the model on your references…")
        worker = self.jobs.start(_finish(self.plan, trained, self._out), what="check and write", on_done=self._done)
        if worker is None:
            self._finished()
        else:
            worker.finished.connect(self._finished)

    def _done(self, made: Any) -> None:
        if isinstance(made, XrayAtlasError):
            raise made
        self.result = made
        self.base_combo.refresh()
        text = (
            f"{made.path.name}: {made.reference_accuracy:.0%} of your references right "
            f"(base model {self.plan.base.name}: {made.base_accuracy:.0%}). Choose it in the Classify image dock."
        )
        self.status.setText(text)
        notify(text)

    def _finished(self) -> None:
        self.bar.setVisible(False)
        self._set_running(False)
        self._cleanup()

    def cancel(self) -> None:
        """Stop fitting, or stop training after the current batch (nothing is written)."""
        self.jobs.cancel()
        if self.job.cancel():
            self.status.setText("cancelling after the current batch…")

    def _cleanup(self) -> None:
        if self._trained is not None:
            shutil.rmtree(self._trained.parent, ignore_errors=True)
            self._trained = None

    # -- what is shown ---------------------------------------------------------------------
    def _set_running(self, on: bool) -> None:
        self.adapt_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)

    def _show_fit(self, plan: Any) -> None:
        from ...adapt import predicted_levels

        beam = plan.instrument
        self.fit_label.setText(
            f"fitted beam: W {beam.kv:g} kV behind {beam.filter_al_mm:g} mm Al; levels within "
            f"{np.expm1(beam.residual):.1%} on average over {beam.n_images} images"
        )
        predicted = predicted_levels(
            plan.measured, kv=beam.kv, filter_al_mm=beam.filter_al_mm, scintillator_um=beam.scintillator_um
        )
        measured = np.array([r.levels[0] for r in plan.measured])
        for name, curve in self.points.items():
            label, kind = name.split()
            keep = [r.label == label and r.kind == kind[:-1] for r in plan.measured]
            curve.setData(measured[keep], predicted[keep])
        top = float(max(measured.max(), predicted.max())) * 1.05
        self.identity.setData([0.0, top], [0.0, top])

    def _show_progress(self, value: int, maximum: int, text: str) -> None:
        show_progress(self.bar, value, maximum, text)

    def _show_text(self, text: str) -> None:
        self.status.setText(text)

    def _on_failed(self, message: str) -> None:
        notify_error(message, log=self.jobs)

    def _apply_theme(self, *_: Any) -> None:
        apply_plot_theme(self.plot, self.viewer)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        self.job.close()
        self._cleanup()
        super().closeEvent(event)
