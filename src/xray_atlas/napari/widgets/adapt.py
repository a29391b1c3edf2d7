"""Adapt dock: make a model fit the user's instrument (docs/adapt.md).

Three kinds, one flow. The radiograph classifier: pick the folder of labelled reference
radiographs; the beam is fitted (:func:`~xray_atlas.adapt.plan_image_adaptation`, seconds) and
each reference image's measured level is shown against the level the fitted beam gives it. The
element model and the map model: pick a cube layer; the XRF instrument is fitted to the scan's
sum spectrum (:func:`~xray_atlas.adapt.plan_element_adaptation`,
:func:`~xray_atlas.adapt.plan_map_adaptation`, about a minute) and the fitted spectrum is shown
over the measured one, with the residual. Either way the fit runs on a worker, the model is
then trained in a child process, as the Training dock trains
(:mod:`xray_atlas.napari._training`), with its progress and Cancel, and checked and written on
a worker; the Classify image, Element probabilities or Elemental maps dock lists it at once.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import (
    QComboBox,
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

from ...adapt.maps import ADAPT_MAP_EPOCHS, ADAPT_MAP_PAINTINGS
from ...adapt.spectra import ADAPT_EPOCHS
from ...classify import DEFAULT_IMAGE_MODEL
from ...cube import Progress
from ...errors import XrayAtlasError
from ...inference import DEFAULT_MAPS_MODEL
from ...probabilities import DEFAULT_ELEMENTS_MODEL
from .._layers import cube_of, is_cube_layer
from .._notify import notify, notify_error, notify_warning
from .._training import TrainingJob, TrainingStatus
from .._workers import JobBar, show_progress
from ._common import ModelCombo, apply_plot_theme, form_dock, refill

if TYPE_CHECKING:
    import napari

__all__ = ["AdaptWidget"]


#: What the dock adapts: label -> the task of its models.
KINDS = {"radiograph classifier": "images", "element model (XRF scan)": "elements", "map model (XRF scan)": "maps"}
#: Per task: the default base model, the default epochs, and the label, settings (range, step,
#: default) and tooltip of the amount of synthetic data.
DEFAULTS = {
    "images": (
        DEFAULT_IMAGE_MODEL,
        12,
        "synthetic images",
        (0, 1_000_000, 500, 0),  # 0: auto
        "synthetic radiographs of the fitted beam to train on (20 % validation); auto: 3,000, "
        "or 6,000 for a detector noisier than 1,000 photons per pixel",
    ),
    "elements": (
        DEFAULT_ELEMENTS_MODEL,
        ADAPT_EPOCHS,
        "spectra per epoch",
        (1024, 10_000_000, 8192, 32768),
        "synthetic spectra of the fitted instrument per epoch (new ones each epoch)",
    ),
    "maps": (
        DEFAULT_MAPS_MODEL,
        ADAPT_MAP_EPOCHS,
        "synthetic paintings",
        (4, 1000, 10, ADAPT_MAP_PAINTINGS),
        "synthetic paintings scanned by the fitted instrument at your scan's counts per pixel (2-5 s each)",
    ),
}


def _model_names(task: str) -> list[str]:
    from ...models.catalogue import list_models

    infos = list_models(task)
    if task == "maps":  # only a model on the per-cluster fit can take another instrument
        from ...models.spectral import CLUSTER_FIT_MODELS

        infos = [i for i in infos if i.card.architecture in CLUSTER_FIT_MODELS]
    return [i.name for i in infos]


class _Stopped(Exception):
    """Cancel pressed during the instrument fit."""


def _plan(
    task: str, source: Any, base: str, n: int, epochs: int, stop: threading.Event
) -> Generator[Progress, None, Any]:
    """Fit the instrument to ``source`` (a reference folder, or a cube for ``elements`` and
    ``maps``); None if ``stop`` is set during the fit."""
    from ...adapt import plan_element_adaptation, plan_image_adaptation, plan_map_adaptation

    def progress(*_: Any) -> None:  # after each candidate instrument (0.1-1 s): Cancel is felt there
        if stop.is_set():
            raise _Stopped

    what = "fitting the beam" if task == "images" else "summing the scan and fitting the instrument"
    yield Progress(0, 1, what)
    try:
        if task == "images":
            plan = plan_image_adaptation(source, base=base or None, n_images=n or None, epochs=epochs, device="auto")
        elif task == "elements":
            plan = plan_element_adaptation(
                source, base=base or None, n_train=n, epochs=epochs, device="auto", progress=progress
            )
        else:
            plan = plan_map_adaptation(
                source, base=base or None, n_paintings=n, epochs=epochs, device="auto", progress=progress
            )
    except XrayAtlasError as err:  # handed to on_done, which raises it on the main thread: one notification
        return err
    except _Stopped:
        return None
    yield Progress(1, 1, "fitted")
    return None if stop.is_set() else plan


def _finish(task: str, plan: Any, trained: Path, out: Path) -> Generator[Progress, None, Any]:
    from ...adapt import finish_element_adaptation, finish_image_adaptation
    from ...adapt.maps import iter_finish_map_adaptation

    yield Progress(0, 1, "checking the model")
    try:
        if task == "maps":  # both models scored on paintings (10-30 s): Cancel is felt between runs
            made = yield from iter_finish_map_adaptation(plan, trained, out)
        else:
            finish = finish_image_adaptation if task == "images" else finish_element_adaptation
            made = finish(plan, trained, out)
    except XrayAtlasError as err:
        return err
    yield Progress(1, 1, "written")
    return made


class AdaptWidget(QWidget):
    """Dock widget: what to adapt, the reference folder or the scan, base model, where to
    save; Adapt / Cancel; the fit, training progress, the result."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.plan: Any = None
        #: The last model written (AdaptedImageModel), for tests and scripts.
        self.result: Any = None
        self._trained: Path | None = None
        self._out: Path | None = None
        self._stop_fit = threading.Event()
        self.training = TrainingStatus()
        self.job = TrainingJob(self.training)
        self.destroyed.connect(self.job.close)

        self.kind_combo = QComboBox()
        self.kind_combo.addItems(list(KINDS))
        self.kind_combo.setToolTip(
            "radiograph classifier: from 3-10 labelled radiographs per class of your instrument; "
            "element model and map model: from one XRF scan of yours (no labels), whose sum spectrum "
            "the instrument is fitted to"
        )
        self.cube_combo = QComboBox()
        self.cube_combo.setToolTip("the scan whose sum spectrum your instrument is fitted to")
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder with Al1050/ and Al2017/ holding your radiographs")
        self.folder_button = QPushButton("…")
        self.folder_button.setMaximumWidth(30)
        folder_row = QHBoxLayout()
        folder_row.setContentsMargins(0, 0, 0, 0)
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.folder_button)
        self.folder_box = QWidget()
        self.folder_box.setLayout(folder_row)
        self.base_combo = ModelCombo(lambda: _model_names(self.task))
        self.base_combo.setToolTip("the model whose recipe is followed, and compared on your references")
        # how much synthetic data: images, spectra per epoch or paintings, as the kind takes
        self.amount = QSpinBox()
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
        self.residual = pg.PlotWidget()
        self.residual.setMinimumHeight(90)
        self.residual.setMaximumHeight(120)
        self.residual.setLabel("bottom", "energy (keV)")
        self.residual.setLabel("left", "residual (σ)")
        self.residual.setXLink(self.plot)
        self.residual_curve = self.residual.plot([], [], pen=pg.mkPen("#e57373", width=1))
        # not in the legend, which names the radiograph points; the fit label says what is drawn
        self.measured_curve = self.plot.plot([], [], pen=pg.mkPen("#bdbdbd", width=1))
        self.fitted_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#4fc3f7", width=1, style=pg.QtCore.Qt.PenStyle.DashLine)
        )
        self.points = {
            name: self.plot.plot([], [], pen=None, symbol=symbol, symbolSize=9, symbolBrush=colour, name=name)
            for name, symbol, colour in (
                ("Al1050 plates", "o", "#4fc3f7"),
                ("Al1050 wedges", "t", "#4fc3f7"),
                ("Al2017 plates", "o", "#ffb74d"),
                ("Al2017 wedges", "t", "#ffb74d"),
            )
        }
        self.form = form_dock(
            self,
            [
                ("adapt", self.kind_combo),
                ("references", self.folder_box),
                ("scan", self.cube_combo),
                ("base model", self.base_combo),
                ("synthetic images", self.amount),
                ("epochs", self.epochs),
                ("save to", self.out_edit),
            ],
            holder,
            self.jobs,
            self.jobs.status,
            self.bar,
            self.fit_label,
            self.plot,
            self.residual,
            self.status,
            viewer=self.viewer,
        )
        self.kind_combo.currentTextChanged.connect(self._kind_changed)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        self._refresh_layers()
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
        self._kind_changed()

    @property
    def task(self) -> str:
        """The task of the models adapted: ``images``, ``elements`` or ``maps``."""
        return KINDS[self.kind_combo.currentText()]

    @property
    def busy(self) -> bool:
        return self.jobs.busy or self.job.busy

    def _kind_changed(self, *_: Any) -> None:
        task = self.task
        images = task == "images"
        for field, shown in ((self.folder_box, images), (self.cube_combo, not images)):
            field.setVisible(shown)
            self.form.labelForField(field).setVisible(shown)
        default, epochs, label, (low, high, step, value), tip = DEFAULTS[task]
        self.form.labelForField(self.amount).setText(label)
        self.amount.setRange(low, high)
        self.amount.setSpecialValueText("auto" if low == 0 else "")
        self.amount.setSingleStep(step)
        self.amount.setValue(value)
        self.amount.setToolTip(tip)
        self.epochs.setValue(epochs)
        self.base_combo.refresh()
        if default in _model_names(task):
            self.base_combo.setCurrentText(default)
        self.plot.setLogMode(x=False, y=not images)
        self.plot.setLabel("bottom", "measured level, -ln(I / I0)" if images else "energy (keV)")
        self.plot.setLabel("left", "fitted beam's level" if images else "counts (sum spectrum)")
        self.residual.setVisible(not images)
        self.plot.plotItem.legend.setVisible(images)
        self._clear_fit()

    def _clear_fit(self) -> None:
        self.fit_label.setText("")
        for curve in (*self.points.values(), self.identity, self.measured_curve, self.fitted_curve):
            curve.setData([], [])
        self.residual_curve.setData([], [])

    def _refresh_layers(self, *_: Any) -> None:
        refill(self.cube_combo, [lyr.name for lyr in self.viewer.layers if is_cube_layer(lyr)], quiet=True)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of labelled radiographs (Al1050/, Al2017/)")
        if path:
            self.folder_edit.setText(path)

    def _destination(self) -> Path:
        from ..._files import check_destination
        from ...models.catalogue import default_model_path

        text = self.out_edit.text().strip()
        try:
            out = Path(text).expanduser() if text else default_model_path(self.task, "adapted")
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
        task = self.task
        try:
            self._out = self._destination()
            source = self._source()
            if source is None:
                return None
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        self.result = None
        self.plan = None
        self.status.setText("")
        self._clear_fit()
        self._set_running(True)
        n = self.amount.value()
        self._stop_fit = threading.Event()
        steps = _plan(task, source, self.base_combo.currentText(), n, self.epochs.value(), self._stop_fit)
        self._show_progress(0, 0, "fitting the beam…" if task == "images" else "fitting the instrument (a minute)…")
        worker = self.jobs.start(steps, what="fit the instrument", on_done=self._train, on_cancel=self._stop_fit.set)
        if worker is not None:
            worker.finished.connect(self._plan_ended)
        return worker

    def _source(self) -> Any:
        """The reference folder or the cube, checked in milliseconds; None (told) if missing."""
        if self.task == "images":
            from ...adapt import read_references

            folder = self.folder_edit.text().strip()
            if not folder:
                notify_error("choose the folder of labelled radiographs first (Al1050/ and Al2017/ in it)")
                return None
            read_references(folder)  # a wrong folder is refused here, before any work
            return folder
        name = self.cube_combo.currentText()
        cube = cube_of(self.viewer.layers[name]) if name in self.viewer.layers else None
        if cube is None:
            notify_error("open an XRF scan first: the instrument is fitted to its sum spectrum")
            return None
        if not cube.calibrated:
            raise XrayAtlasError(
                f"{name}: the cube has no energy calibration, which the instrument fit needs; "
                "set one in the Spectrum inspector"
            )
        return cube

    def _plan_ended(self) -> None:
        if not self.job.busy:  # refused, failed or cancelled: nothing trains
            self.bar.setVisible(False)
            self._set_running(False)

    def _train(self, plan: Any) -> None:
        if isinstance(plan, XrayAtlasError):
            raise plan
        if plan is None:  # cancelled during the fit
            self.status.setText("cancelled during the instrument fit: nothing was trained")
            return
        self.plan = plan
        self._show_fit(plan)
        if self.task == "images":  # a poor fit of the levels: a warning (adapt.images)
            for note in plan.notes[1:]:
                notify_warning(note, log=self.jobs)
        self._trained = Path(tempfile.mkdtemp(prefix="xray-atlas-adapt-")) / "adapted.safetensors"
        try:
            self.job.start(plan.config, self._trained, resume=False)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            self._set_running(False)
            return
        what = "beam" if self.task == "images" else "instrument"
        self.status.setText(f"training {plan.config.model} for the fitted {what} ({plan.config.epochs} epochs)")

    def _on_running(self, on: bool) -> None:
        if on:
            return
        self.bar.setVisible(False)
        trained = self._trained
        if trained is None or not trained.exists():  # cancelled or failed before an epoch
            self._set_running(False)
            self._cleanup()
            return
        self._show_progress(0, 0, "checking and writing the model…")
        steps = _finish(self.task, self.plan, trained, self._out)
        worker = self.jobs.start(steps, what="check and write", on_done=self._done)
        if worker is None:
            self._finished()
        else:
            worker.finished.connect(self._finished)

    def _done(self, made: Any) -> None:
        if isinstance(made, XrayAtlasError):
            raise made
        self.result = made
        self.base_combo.refresh()
        if self.task == "images":
            text = (
                f"{made.path.name}: {made.reference_accuracy:.0%} of your references right "
                f"(base model {self.plan.base.name}: {made.base_accuracy:.0%}). Choose it in the Classify image dock."
            )
        elif self.task == "maps":
            text = (
                f"{made.path.name}: on paintings of the fitted instrument, {made.mae:.2f} counts per pixel and line "
                f"off the truth (base model {self.plan.base.name}: {made.base_mae:.2f}). "
                + (
                    "Choose it in the Elemental maps dock."
                    if made.mae <= made.base_mae
                    else "It is further off than the base: compare both on your scan before using it."
                )
            )
        else:
            auc = f"validation AUC {made.val_auc:.3f}" if made.val_auc is not None else "no validation AUC"
            text = (
                f"{made.path.name}: {auc} on spectra of the fitted instrument; in the scan's sum spectrum it finds "
                f"{', '.join(made.found) or 'nothing'} (base model: {', '.join(made.base_found) or 'nothing'}). "
                "Choose it in the Element probabilities dock."
            )
        self.status.setText(text)
        notify(text, log=self.jobs, details=made.notes)

    def _finished(self) -> None:
        self.bar.setVisible(False)
        self._set_running(False)
        self._cleanup()

    def cancel(self) -> None:
        """Stop fitting, training (after the current batch) or checking: nothing is written."""
        checking = self.jobs.busy and self.plan is not None and not self.job.busy
        self.jobs.cancel()
        if self.job.cancel():
            self.status.setText("cancelling after the current batch…")
        elif checking:  # the model is written at the check's last step only
            self.status.setText("cancelled while checking the model: nothing was written")

    def _cleanup(self) -> None:
        if self._trained is not None:
            shutil.rmtree(self._trained.parent, ignore_errors=True)
            self._trained = None

    # -- what is shown ---------------------------------------------------------------------
    def _set_running(self, on: bool) -> None:
        self.adapt_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        # the run's later steps (showing the fit, checking and writing) follow the kind
        self.kind_combo.setEnabled(not on)

    def _show_fit(self, plan: Any) -> None:
        if self.task != "images":
            self._show_spectrum_fit(plan)
            return
        from ...adapt import predicted_levels

        beam = plan.instrument
        if beam.photons is not None:
            detector = f"detector: ~{beam.photons:,.0f} photons per pixel, blur {beam.blur_px:.1f} px"
        elif beam.blur_px is not None:
            detector = f"detector's noise not readable (under one grey level); blur {beam.blur_px:.1f} px (edges)"
        else:
            detector = "detector's noise not readable (under one grey level)"
        self.fit_label.setText(
            f"fitted beam: W {beam.kv:g} kV behind {beam.filter_al_mm:g} mm Al; levels within "
            f"{np.expm1(beam.residual):.1%} on average over {beam.n_images} images; {detector}"
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

    def _show_spectrum_fit(self, plan: Any) -> None:
        fit, inst = plan.fit, plan.fit.instrument
        self.fit_label.setText(
            f"fitted instrument: {inst.anode} tube at {inst.kv:g} kV, "
            f"{'with a' if inst.optic else 'no'} polycapillary optic, detector {inst.fwhm_mnka_ev:g} eV at Mn Ka, "
            f"{inst.scatter_deg:g} degrees between beam and detector; "
            f"reduced chi-square {fit.reduced_chi2:.1f}. Grey: the scan's sum spectrum; blue dashes: the fit. "
            # what was taken from the file, the training paintings' dwell: information, not warnings
            + " ".join(f"{note[0].upper()}{note[1:]}." for note in plan.notes[1:])
        )
        # on a log axis: counts below half a count would stretch it over decades of nothing
        self.measured_curve.setData(fit.energy, np.maximum(fit.measured, 0.5))
        self.fitted_curve.setData(fit.energy, np.maximum(fit.fitted, 0.5))
        top = float(max(fit.measured.max(), fit.fitted.max(), 1.0))
        self.plot.setYRange(np.log10(max(top * 1e-5, 0.5)), np.log10(top * 2.0), padding=0)
        self.residual_curve.setData(fit.energy, np.clip(fit.residual, -50, 50))

    def _show_progress(self, value: int, maximum: int, text: str) -> None:
        show_progress(self.bar, value, maximum, text)

    def _show_text(self, text: str) -> None:
        self.status.setText(text)

    def _on_failed(self, message: str) -> None:
        notify_error(message, log=self.jobs)

    def _apply_theme(self, *_: Any) -> None:
        apply_plot_theme(self.plot, self.viewer)
        apply_plot_theme(self.residual, self.viewer)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        self.job.close()
        self._cleanup()
        super().closeEvent(event)
