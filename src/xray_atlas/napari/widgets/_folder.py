"""The "Run over a folder" group of the Elemental maps, Element probabilities and Clusters
docks: the dock's current task options run over every scan of a folder
(:func:`xray_atlas.batch.iter_batch`, the work of ``xray-atlas batch``), with progress in
scans and Cancel on the dock's job bar, then a list of the results to open as layers.

The batch runs in a child process with its own dask workers (see docs/dev/batch.md): napari's
process only reads the child's progress, so the window keeps answering, and neither the
models nor dask are loaded into it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...errors import XrayAtlasError
from .._notify import error_text, notify, notify_error
from .._workers import Delivery

__all__ = ["FolderRow", "batch_options"]

#: What the toast says a scan got, per task.
_DONE = {"maps": "mapped", "probabilities": "given probability maps", "cluster": "clustered"}
#: Scheduling priority the batch gives up (POSIX nice), as the Training dock's: napari's event
#: loop, at 0, wins the CPU whenever it needs it, and the batch takes every idle cycle.
NICE = 10
#: Statuses the list colours (napari's error red; grey for what did not run).
_MARKED = {"failed": "#e35d6a", "cancelled": "#8a8f98"}
#: The list's columns.
COLUMNS = ("scan", "status", "result or error")


def _maps_options(dock: Any) -> dict:
    from ...inference import DEFAULT_MAPS_MODEL

    model = dock.model_combo.currentText()
    lines, add = dock.lines()
    # the default by name is None, as on the command line: the batch then takes its stand-in for
    # an uncalibrated scan, and a rerun knows either as the default's result
    return {
        "model": None if model == DEFAULT_MAPS_MODEL else model,
        "device": dock.device_combo.currentText(),
        "lines": lines,
        "add_lines": add,
        "units": dock.units(),
    }


def _probabilities_options(dock: Any) -> dict:
    from ...probabilities import DEFAULT_ELEMENTS_MODEL

    where = dock.where_combo.currentText()
    if where == "clusters":
        raise XrayAtlasError("per: clusters names one scan's Labels layer; over a folder choose pixel or k x k region")
    model = dock.model_combo.currentText()
    if not model:
        raise XrayAtlasError("no element model is installed; train one in the Training dock (task elements)")
    return {
        "model": None if model == DEFAULT_ELEMENTS_MODEL else model,
        "device": dock.device_combo.currentText(),
        "region": dock.region_spin.value() if where == "k x k region" else 1,
        "elements": dock.elements(),
    }


def _cluster_options(dock: Any) -> dict:
    return {"method": dock.method_combo.currentText(), "params": dock.parameters(), "seed": dock.seed.value()}


_OPTIONS = {"maps": _maps_options, "probabilities": _probabilities_options, "cluster": _cluster_options}


def batch_options(dock: Any, task: str) -> dict:
    """The options of :func:`xray_atlas.batch.run_batch` for ``task`` from the dock's fields
    (those of :func:`xray_atlas.cubetasks.run_maps`, ``run_probabilities``, ``run_cluster``).

    Raises
    ------
    XrayAtlasError
        A field the batch cannot take (a bad lines box, clusters of one scan).
    """
    return _OPTIONS[task](dock)


class FolderRow(QGroupBox):
    """ "Run over a folder": input and output folders, Run folder, and the results' list.

    Parameters
    ----------
    dock : QWidget
        A dock with ``viewer`` and ``jobs`` (its :class:`~.._workers.JobBar`) and the fields
        :func:`batch_options` reads for ``task``.
    task : {"maps", "probabilities", "cluster"}
    """

    def __init__(self, dock: Any, task: str, parent: QWidget | None = None):
        super().__init__("Run over a folder", parent)
        if task not in _OPTIONS:
            raise XrayAtlasError(f"task={task!r}; choose one of {', '.join(_OPTIONS)}")
        self.dock, self.task = dock, task
        self.viewer, self.jobs = dock.viewer, dock.jobs
        self.input_edit = QLineEdit()
        self.input_edit.setPlaceholderText("the folder of scans (subfolders: a glob, e.g. scans/**/*.h5)")
        self.input_edit.setToolTip(
            "its cube files (.h5, .bcf, .rpl, .zarr ...); subfolders are not searched, a glob "
            "with ** searches them; results and hidden files are passed over"
        )
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("the folder for the results (made if missing)")
        self.output_edit.setToolTip("one <scan>.h5 per scan, and batch-report.json / .csv")
        self.scheduler_edit = QLineEdit("local")
        self.scheduler_edit.setToolTip(
            "local: one worker per core; local:N: N workers; tcp://host:8786 or a "
            "scheduler file (.json): a dask cluster that sees the same folders"
        )
        self.overwrite_check = QCheckBox("replace results made otherwise or older")
        self.overwrite_check.setToolTip("results of these settings newer than their scan are skipped either way")
        self.run_button = QPushButton("Run folder")
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("open the chosen results as layers (or double-click one)")
        self.results = QTreeWidget()
        self.results.setHeaderLabels(list(COLUMNS))
        self.results.setRootIsDecorated(False)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.results.setMinimumHeight(110)
        self.report_label = QLabel("")
        self.report_label.setWordWrap(True)
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        #: The last batch's report (a :class:`~xray_atlas.batch.BatchReport`), None before one.
        self.report: Any = None

        form = QFormLayout()
        form.addRow("scans", self._with_browse(self.input_edit, "Folder of scans"))
        form.addRow("results to", self._with_browse(self.output_edit, "Folder for the results"))
        form.addRow("workers", self.scheduler_edit)
        form.addRow("", self.overwrite_check)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.open_button)
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addLayout(buttons)
        box.addWidget(self.results)
        box.addWidget(self.report_label)
        self.run_button.clicked.connect(self.run)
        self.open_button.clicked.connect(self.open_chosen)
        self.results.itemDoubleClicked.connect(lambda item, _col: self.open_results([item]))

    def _with_browse(self, edit: QLineEdit, title: str) -> QWidget:
        button = QPushButton("...")
        button.setToolTip(title)
        button.setMaximumWidth(32)

        def browse() -> None:
            start = edit.text().strip() or os.path.expanduser("~")
            chosen = QFileDialog.getExistingDirectory(self, title, start)
            if chosen:
                edit.setText(chosen)

        button.clicked.connect(browse)
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit, 1)
        layout.addWidget(button)
        return row

    # -- a run --------------------------------------------------------------------------------
    def run(self) -> Any:
        """Run the dock's task over the folder on the job bar; returns the worker (None when refused)."""
        from ...batch import iter_batch

        inputs, outdir = self.input_edit.text().strip(), self.output_edit.text().strip()
        if self.jobs.busy:
            notify("Another job is running: wait for it or cancel it first")
            return None
        cancel = threading.Event()
        try:  # everything that can be refused is refused here, before any work
            if not inputs:
                raise XrayAtlasError("scans: choose the folder of scans")
            if not outdir:
                raise XrayAtlasError("results to: choose a folder for the results")
            steps = iter_batch(
                self.task,
                [os.path.expanduser(inputs)],
                os.path.expanduser(outdir),
                options=batch_options(self.dock, self.task),
                scheduler=self.scheduler_edit.text().strip() or "local",
                overwrite=self.overwrite_check.isChecked(),
                cancel=cancel,
                nice=NICE,
            )
        except XrayAtlasError as err:
            if "give --overwrite" in err.reason:  # the command's words, said in this group's
                err = XrayAtlasError(
                    err.reason.replace("give --overwrite", f"tick '{self.overwrite_check.text()}'").replace(
                        "OUTDIR", "folder for the results"
                    ),
                    path=err.path,
                )
            notify_error(err, log=self.jobs)
            return None
        what = f"{self.task} over a folder"
        worker = self.jobs.start(steps, what=what, on_done=self._done, on_cancel=cancel.set)
        if worker is not None:
            self.results.clear()
            self.report_label.setText("")
            worker.yielded.connect(lambda p: self._on_progress(p, what))
        return worker

    def _on_progress(self, p: Any, what: str) -> None:
        if not self.jobs.alive:
            return
        self.jobs.bar.setFormat("%v/%m scans")
        self.jobs.status.setText(f"{what}: {p.done}/{p.total} scans, {p.what}")

    def _done(self, report: Any) -> None:
        self.report = report
        self.fill(report)
        n = len(report.rows)
        ok, skipped, failed, cancelled = (report.count(s) for s in ("ok", "skipped", "failed", "cancelled"))
        message = f"{ok + skipped} of {n} scans {_DONE[self.task]}"
        if skipped:
            message += f" ({skipped} already were)"
        if failed:
            message += f", {failed} failed"
        if cancelled:
            message += f", {cancelled} cancelled"
        if failed or cancelled:
            message += ": see the report"
        self.report_label.setText(f"report: {report.paths[1]}")
        details = [
            f"{Path(r['input']).name}: {r['status']}: {r['error'] or r['summary'] or ''}".rstrip(": ")
            for r in report.rows
        ]
        notify(message, log=self.jobs, details=details)
        return None

    def fill(self, report: Any) -> None:
        """List ``report``'s scans: status, and the result file or the one-line error."""
        self.results.clear()
        for row in report.rows:
            err = row.get("error")
            shown = error_text(XrayAtlasError(err)) if err else (Path(row["output"]).name if row.get("output") else "")
            item = QTreeWidgetItem([Path(row["input"]).name, row["status"], shown])
            item.setToolTip(2, err or row.get("summary") or row.get("output") or "")
            item.setData(0, Qt.ItemDataRole.UserRole, row.get("output"))
            if row["status"] in _MARKED:
                item.setForeground(1, QBrush(QColor(_MARKED[row["status"]])))
            if row.get("output") is None:  # nothing to open
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.results.addTopLevelItem(item)
        for col in range(len(COLUMNS) - 1):
            self.results.resizeColumnToContents(col)

    # -- opening results ----------------------------------------------------------------------
    def open_chosen(self) -> None:
        """Open the selected results as layers."""
        items = self.results.selectedItems()
        if not items:
            notify("Choose results in the list first (or double-click one)")
            return
        self.open_results(items)

    def open_results(self, items: list) -> None:
        """Open the result files of ``items`` as the reader makes them, one layer per event-loop
        turn (the dock's job bar), then the readable picture: the new ones shown, earlier results hidden."""
        from .._reader import result_layer_data

        paths = [p for p in (it.data(0, Qt.ItemDataRole.UserRole) for it in items) if p]
        if not paths:
            notify("This scan has no result to open (see its error)")
            return
        if self.jobs.busy:
            notify("Another job is running: wait for it or cancel it first")
            return
        layers = []
        for path in paths:
            try:
                layers += result_layer_data(path)
            except XrayAtlasError as err:
                notify_error(err, log=self.jobs)
        if layers:  # no toast of its own: the run's toast (failures) stays the one in view
            self.jobs.log(f"opening {', '.join(paths)}")
            self.jobs.deliver(Delivery(self.viewer, layers, hide_cubes=self.task != "cluster"), what="opening results")
