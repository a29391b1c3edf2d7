"""Training dock: pick a task, set up its data and hyper-parameters, watch it learn, stop it,
go on with it.

The dock turns the form into a :class:`~xray_atlas.training.TrainConfig`, hands it to a
:class:`~xray_atlas.napari._training.TrainingJob` (the run in a child process, and why) and
draws what its :class:`~xray_atlas.napari._training.TrainingStatus` reports: the progress
bar, the loss curves and the metrics table.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from ...devices import DEVICES
from ...errors import XrayAtlasError
from ...training import OPTIMIZERS, SCHEDULES, EpochEnd, TrainConfig
from ...training.tasks import TASKS
from .._notify import notify_error
from .._training import TrainingJob, TrainingStatus
from .._workers import show_progress
from ._common import ParamForm, apply_plot_theme, refill, scroll_box

if TYPE_CHECKING:
    import napari

__all__ = ["TrainingWidget"]


class TrainingWidget(QWidget):
    """Dock widget: task, data, model, loss, optimiser, schedule; Start / Cancel / Resume;
    progress, live loss curves and a metrics table per epoch."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        #: What the dock draws, updated from the run's events.
        self.training = TrainingStatus()
        self.job = TrainingJob(self.training)
        self.destroyed.connect(self.job.close)

        # -- form ---------------------------------------------------------------------------
        self.task_combo = QComboBox()
        for name, task in TASKS.items():
            self.task_combo.addItem(name)
            self.task_combo.setItemData(self.task_combo.count() - 1, task.title, Qt.ItemDataRole.ToolTipRole)
        self.source_combo = QComboBox()
        self.source_box = QVBoxLayout()
        self.source_form: ParamForm | None = None
        self.model_combo = QComboBox()
        self.loss_combo = QComboBox()
        self.optimizer_combo = QComboBox()
        self.optimizer_combo.addItems(list(OPTIMIZERS))
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 10.0)
        self.lr.setSingleStep(1e-4)
        self.weight_decay = QDoubleSpinBox()
        self.weight_decay.setDecimals(6)
        self.weight_decay.setRange(0.0, 1.0)
        self.schedule_combo = QComboBox()
        self.schedule_combo.addItems(list(SCHEDULES))
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 100_000)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 65_536)
        self.patience = QSpinBox()
        self.patience.setRange(0, 100_000)
        self.patience.setToolTip("stop after this many epochs without a better validation loss (0: never)")
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("new folder in the user's models folder")
        self.browse_button = QPushButton("…")
        self.browse_button.setMaximumWidth(30)

        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.cancel_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.resume_button.setToolTip(
            "go on with the last run from its last complete epoch, with that run's "
            "settings, up to the epochs (and on the device) set here"
        )
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(160)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "loss")
        self.plot.setLogMode(y=True)
        self.plot.addLegend(offset=(-10, 10))
        self.step_curve = self.plot.plot([], [], pen=pg.mkPen("#90a4ae", width=1), name="batch")
        self.train_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#4fc3f7", width=2), symbol="o", symbolSize=5, symbolBrush="#4fc3f7", name="train"
        )
        self.val_curve = self.plot.plot(
            [], [], pen=pg.mkPen("#ffb74d", width=2), symbol="o", symbolSize=5, symbolBrush="#ffb74d", name="validation"
        )
        self.table = QTableWidget(0, 0)
        self.table.setMinimumHeight(90)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

        top = QFormLayout()
        top.addRow("task", self.task_combo)
        top.addRow("data", self.source_combo)
        hyper = QFormLayout()
        hyper.addRow("model", self.model_combo)
        hyper.addRow("loss", self.loss_combo)
        hyper.addRow("optimizer", self.optimizer_combo)
        hyper.addRow("learning rate", self.lr)
        hyper.addRow("weight decay", self.weight_decay)
        hyper.addRow("schedule", self.schedule_combo)
        hyper.addRow("epochs", self.epochs)
        hyper.addRow("batch size", self.batch_size)
        hyper.addRow("early stop", self.patience)
        hyper.addRow("device", self.device_combo)
        hyper.addRow("seed", self.seed)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.browse_button)
        hyper.addRow("save to", out_row)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(b)
        # The settings scroll (a data source has up to 17 parameters); buttons, progress,
        # curves and table stay in view below them.
        settings = QWidget()
        form_box = QVBoxLayout(settings)
        form_box.setContentsMargins(0, 0, 0, 0)
        form_box.addLayout(top)
        data_box = QCollapsible("data settings")
        holder = QWidget()
        holder.setLayout(self.source_box)
        data_box.addWidget(holder)
        data_box.expand(animate=False)
        form_box.addWidget(data_box)
        form_box.addLayout(hyper)
        form_box.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(settings)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        results = QSplitter(Qt.Orientation.Vertical)
        results.addWidget(self.plot)
        results.addWidget(self.table)
        results.setStretchFactor(0, 2)
        results.setStretchFactor(1, 1)
        outer = QSplitter(Qt.Orientation.Vertical)
        outer.addWidget(scroll)
        lower = QWidget()
        lower_box = QVBoxLayout(lower)
        lower_box.setContentsMargins(0, 0, 0, 0)
        lower_box.addLayout(buttons)
        lower_box.addWidget(self.bar)
        lower_box.addWidget(self.status)
        lower_box.addWidget(results, 1)
        outer.addWidget(lower)
        outer.setStretchFactor(0, 1)
        outer.setStretchFactor(1, 1)
        outer.setSizes([420, 480])
        box = scroll_box(self, viewer=self.viewer)  # stacked docks stay on the screen: this one scrolls
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(outer)

        self.task_combo.currentTextChanged.connect(self._on_task)
        self.source_combo.currentTextChanged.connect(self._on_source)
        self.model_combo.currentTextChanged.connect(self._on_model)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.browse_button.clicked.connect(self._browse)
        self.viewer.events.theme.connect(self._apply_theme)
        status = self.training
        status.progress.connect(self._show_progress)
        status.steps_changed.connect(self._draw_steps)
        status.epochs_changed.connect(self._redraw)
        status.text.connect(self._show_text)
        status.failed.connect(self._on_failed)
        status.running.connect(self._on_running)
        self._apply_theme()
        self._on_task(self.task_combo.currentText())

    # -- form -------------------------------------------------------------------------------
    @property
    def task(self):
        return TASKS[self.task_combo.currentText()]

    def _on_task(self, name: str) -> None:
        task = TASKS[name]
        refill(self.source_combo, list(task.sources), quiet=True)
        self._on_source(self.source_combo.currentText())
        refill(self.model_combo, task.models(), quiet=True)
        self.model_combo.setCurrentText(task.default_model)
        refill(self.loss_combo, list(task.losses))
        self.loss_combo.setCurrentText(task.losses[0])
        self._on_model(self.model_combo.currentText())

    def _on_source(self, name: str) -> None:
        if not name:
            return
        if self.source_form is not None:
            self.source_box.removeWidget(self.source_form)
            self.source_form.deleteLater()
        self.source_form = ParamForm(self.task.sources[name].parameters(self.task.name))
        self.source_box.addWidget(self.source_form)

    def _on_model(self, name: str) -> None:
        """The task's and then the model's own defaults (study settings)."""
        if not name:
            return
        d = self.task.hyperparameters(name)
        self.optimizer_combo.setCurrentText(d.get("optimizer", "adam"))
        self.lr.setValue(d.get("lr", 1e-3))
        self.weight_decay.setValue(d.get("weight_decay", 0.0))
        self.schedule_combo.setCurrentText(d.get("schedule", "constant"))
        self.epochs.setValue(d.get("epochs", 10))
        self.batch_size.setValue(d.get("batch_size", 64))
        self.patience.setValue(d.get("patience", 0))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the model as", "", "Model folder (*);;Single file (*.safetensors)"
        )
        if path:
            self.out_edit.setText(path)

    def config(self) -> TrainConfig:
        """The form as a training configuration."""
        d = self.task.hyperparameters(self.model_combo.currentText())
        return TrainConfig(
            task=self.task.name,
            source=self.source_combo.currentText(),
            model=self.model_combo.currentText(),
            loss=self.loss_combo.currentText(),
            source_params=self.source_form.values() if self.source_form else {},
            optimizer=self.optimizer_combo.currentText(),
            lr=self.lr.value(),
            weight_decay=self.weight_decay.value(),
            schedule=self.schedule_combo.currentText(),
            epochs=self.epochs.value(),
            batch_size=self.batch_size.value(),
            patience=self.patience.value(),
            grad_clip=d.get("grad_clip", 0.0),
            device=self.device_combo.currentText(),
            seed=self.seed.value(),
        )

    # -- runs ---------------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        """The napari worker following the run, or None."""
        return self.job.worker

    @property
    def busy(self) -> bool:
        return self.job.busy

    @property
    def last_out(self) -> Path | None:
        return self.job.last_out

    @property
    def history(self) -> list[EpochEnd]:
        return self.training.history

    @property
    def resumable(self) -> bool:
        """Whether the last run left a state to go on from (written after each complete epoch)."""
        return self.job.resumable

    def start(self) -> Any:
        """Start a new run with the form's settings."""
        from ...models.catalogue import default_model_path

        text = self.out_edit.text().strip()
        try:
            out = (
                Path(text).expanduser() if text else default_model_path(self.task.name, self.model_combo.currentText())
            )
        except OSError as err:
            return self._refuse(XrayAtlasError(f"cannot create the models folder ({err})"))
        return self._launch(self.config(), out, resume=False)

    def resume(self) -> Any:
        """Go on with the last run from its last complete epoch, with that run's settings (the
        form may have changed since), up to the form's epochs and on the form's device."""
        if not self.resumable:
            self.resume_button.setEnabled(False)
            return self._refuse(
                XrayAtlasError(
                    "nothing to resume: no epoch of the last run completed"
                    if self.job.last_out is not None
                    else "nothing to resume: start a run first"
                )
            )
        config = dataclasses.replace(
            self.job.last_config, epochs=self.epochs.value(), device=self.device_combo.currentText()
        )
        return self._launch(config, self.job.last_out, resume=True)

    def cancel(self) -> None:
        """Stop after the current batch; the best model so far stays."""
        if self.job.cancel():
            self.status.setText(self.status.text() + " — cancelling…")

    def _refuse(self, err: Exception) -> None:
        notify_error(err)
        return None

    def _launch(self, config: TrainConfig, out: Path, *, resume: bool) -> Any:
        try:
            return self.job.start(config, out, resume=resume)
        except XrayAtlasError as err:
            return self._refuse(err)

    def _show_progress(self, value: int, maximum: int, text: str) -> None:
        show_progress(self.bar, value, maximum, text)

    def _on_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        # not after a run cancelled or failed before its first epoch
        self.resume_button.setEnabled(not on and self.resumable)
        if on:
            self.out_edit.setText(str(self.job.last_out))
        else:
            self.bar.setVisible(False)
            self.out_edit.clear()  # the next Start makes a new model; Resume goes on with this one

    def _draw_steps(self) -> None:
        self.step_curve.setData(*self.training.steps)

    def _show_text(self, text: str) -> None:
        self.status.setText(text)

    def _on_failed(self, message: str) -> None:
        notify_error(message)
        self.status.setText(f"failed: {message}")

    def _redraw(self) -> None:
        h = self.training.history
        self.train_curve.setData([e.epoch for e in h], [max(e.train_loss, 1e-12) for e in h])
        self.val_curve.setData([e.epoch for e in h], [max(e.val_loss, 1e-12) for e in h])
        if not h:
            self.step_curve.setData(*self.training.steps)
        keys = list(h[-1].metrics) if h else []
        cols = ["epoch", "train", "validation", *keys, "lr", "s"]
        self.table.setColumnCount(len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setRowCount(len(h))
        for r, e in enumerate(h):
            values = [
                e.epoch,
                e.train_loss,
                e.val_loss,
                *(e.metrics.get(k, float("nan")) for k in keys),
                e.lr,
                e.seconds,
            ]
            for c, v in enumerate(values):
                text = str(v) if isinstance(v, int) else f"{v:.4g}"
                self.table.setItem(r, c, QTableWidgetItem(text + (" *" if c == 2 and e.best else "")))
        if h:
            self.table.scrollToBottom()

    def _apply_theme(self, *_: Any) -> None:
        apply_plot_theme(self.plot, self.viewer)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.job.close()
        super().closeEvent(event)
