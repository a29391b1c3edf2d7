"""The Export row of the result docks: a format and a button that writes the dock's layers to a
folder with :mod:`xray_atlas.export` (TIFF values, figures, the overview sheet, spectra tables).

Which layers: the newest run's, shown or hidden (the model of the last layer of the dock's kind
in the layer list, and every layer of that kind and model). Not the selection: napari selects
each new layer, so after a run or an opened file one map is selected, and an export of that one
alone would surprise. A hand-picked set goes out through File > Save Selected Layers and the
export folder writer. The export runs on the dock's job bar, so it shows progress, can be
cancelled (a cancelled export removes the files it made), and ends with one toast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QMessageBox, QPushButton, QWidget

from ...errors import XrayAtlasError
from ...export import iter_export, output_names
from .._layers import xa_meta
from .._notify import notify, notify_error
from .._writer import result_from_layers

__all__ = ["ExportRow", "FORMAT_NAMES", "export_layers"]

#: The format choices as the dock shows them -> the core's format names.
FORMAT_NAMES = {
    "TIFF (values)": "tiff",
    "PNG figures + sheet": "png",
    "overview sheet (PNG, PDF)": "sheet",
    "CSV spectra": "csv",
}


def export_layers(viewer: Any, kinds: tuple[str, ...]) -> list:
    """The layers to export: every layer of ``kinds`` made by the newest run's model."""
    found = [lyr for lyr in viewer.layers if xa_meta(lyr).get("kind") in kinds]
    if not found:
        return []
    if found[-1]._type_string == "labels":  # one clusters layer at a time: the newest
        return [found[-1]]
    newest = xa_meta(found[-1])
    run = newest.get("model", newest.get("method"))
    return [lyr for lyr in found if xa_meta(lyr).get("model", xa_meta(lyr).get("method")) == run]


class ExportRow(QWidget):
    """A format choice and an Export button for a dock whose results are layers of ``kinds``.

    Parameters
    ----------
    viewer : napari.Viewer
    jobs : JobBar
        The dock's job bar: the export runs there.
    kinds : tuple of str
        Layer kinds (xray-atlas metadata) that the dock makes: ``("map",)``, ``("probability",)``,
        ``("clusters",)``.
    formats : tuple of str
        Keys of :data:`FORMAT_NAMES` to offer, the first the default.
    what : str
        What the layers are, for messages (``"maps"``).
    """

    def __init__(
        self,
        viewer: Any,
        jobs: Any,
        *,
        kinds: tuple[str, ...],
        formats: tuple[str, ...],
        what: str,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.viewer, self.jobs, self.kinds, self.what = viewer, jobs, kinds, what
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(formats))
        self.format_combo.setToolTip(
            "TIFF: the values, for ImageJ/Fiji, QGIS or Python; PNG: a figure per map in "
            "its colour with colour bar and scale bar, and the overview sheet; sheet: every "
            "map on one page (PNG and PDF); CSV: the spectra with an energy column"
        )
        self.button = QPushButton("Export...")
        self.button.setToolTip(f"write the newest run's {what} to a folder")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.format_combo, 1)
        row.addWidget(self.button)
        self.button.clicked.connect(self.export)
        self._folder = str(Path.home())

    def export(self) -> Any:
        """Ask for a folder, then export there on the job bar. Returns the worker, or None."""
        layers = export_layers(self.viewer, self.kinds)
        if not layers:
            notify_error(f"No {self.what} to export: run this dock first, or open a result file", log=self.jobs)
            return None
        fmt = FORMAT_NAMES[self.format_combo.currentText()]
        try:
            result = result_from_layers([lyr.as_layer_data_tuple() for lyr in layers])
            names = output_names(result, format=fmt)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        folder = QFileDialog.getExistingDirectory(self, f"Export {self.what} to a folder", self._folder)
        if not folder:
            return None
        self._folder = folder
        clash = [n for n in names if (Path(folder) / n).exists()]
        overwrite = False
        if clash:
            shown = ", ".join(clash[:4]) + (f" and {len(clash) - 4} more" if len(clash) > 4 else "")
            answer = QMessageBox.question(
                self, "Replace files?", f"{len(clash)} of the files exist in {folder}: {shown}. Replace them?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                return None
            overwrite = True
        try:
            steps = iter_export(result, folder, format=fmt, overwrite=overwrite)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None

        def done(exported: Any) -> None:
            notify(
                f"Exported {len(layers)} {self.what} as {fmt}: {len(exported.files)} files in "
                f"{Path(folder).name or folder}",
                log=self.jobs,
                details=[str(p) for p in exported.files] + exported.notes,
            )

        return self.jobs.start(steps, what=f"export to {fmt}", on_done=done)
