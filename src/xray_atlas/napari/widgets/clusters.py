"""Clusters dock: cluster the pixels of a cube with a method from the core's table.

The form is built from :func:`xray_atlas.cluster.parameter_table` (a
:class:`~._common.ParamForm`, read by the parameters' own parser as the command line's
``--param`` is), so every method of :data:`xray_atlas.cluster.METHODS` appears here with its
parameters. Runs go to a worker that follows a child process
(:func:`xray_atlas.cluster.iter_cluster_in_child`) with progress and Cancel; a preview
clusters a spatial subsample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...cluster import METHODS, iter_cluster_in_child, parameter_table
from ...cube import SpectralCube
from ...errors import XrayAtlasError
from .._layers import cube_of, grid_of, is_cube_layer, provenance
from .._notify import notify_error
from .._workers import Delivery, JobBar
from ._common import ParamForm, refill, scroll_box
from ._export import ExportRow
from ._folder import FolderRow
from ._refine import RefineGroup

if TYPE_CHECKING:
    import napari

__all__ = ["ClustersWidget", "clusters_layer_data"]

PREVIEW_PIXELS = 12000

#: Niceness of the clustering's child process: napari's main thread gets the CPU first.
CHILD_NICE = 10


def clusters_layer_data(result: Any, name: str, *, cube: SpectralCube | None = None) -> tuple:
    """A Labels layer tuple: clusters 1..K, noise as label K + 1 (its own colour), 0 unused.
    With ``cube``, the metadata keeps its energy axis (for the spectra's export) and name."""
    k = result.n_clusters
    data = np.where(result.labels >= 0, result.labels + 1, k + 1).astype(np.int32)
    meta = {
        "xray_atlas": {
            "kind": "clusters",
            "noise_label": k + 1,
            "cluster_spectra": result.spectra,
            "sizes": result.sizes,
            "method": result.method,
            "params": result.params,
            **provenance(cube),
        }
    }
    if cube is not None and cube.calibrated:
        meta["xray_atlas"]["energy_kev"] = np.asarray(cube.energy, dtype=np.float64)
    return (data, {"name": name, "metadata": meta, "opacity": 0.6}, "labels")


class ClustersWidget(QWidget):
    """Dock widget: method, parameters, preview, run; then refine the clusters by hand
    (:class:`._refine.RefineGroup`)."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.cube_combo = QComboBox()
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(METHODS))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.form_box = QVBoxLayout()
        self.param_form: ParamForm | None = None
        self.fields: dict[str, QWidget] = {}
        self.preview_button = QPushButton("Preview (subsample)")
        self.run_button = QPushButton("Run")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.jobs = JobBar()

        top = QFormLayout()
        top.addRow("cube", self.cube_combo)
        top.addRow("method", self.method_combo)
        top.addRow("seed", self.seed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.run_button)
        box = scroll_box(self, viewer=self.viewer)
        box.addLayout(top)
        box.addLayout(self.form_box)
        box.addLayout(buttons)
        self.export_row = ExportRow(
            self.viewer,
            self.jobs,
            kinds=("clusters",),
            what="clusters",
            formats=("CSV spectra", "TIFF (values)", "PNG figures + sheet"),
        )
        box.addWidget(self.jobs)
        box.addWidget(self.jobs.status)
        box.addWidget(self.summary)
        self.refine = RefineGroup(self.viewer, self.jobs)
        self.refine.changed.connect(self.summary.setText)
        box.addWidget(self.refine)
        box.addWidget(self.export_row)
        box.addWidget(FolderRow(self, "cluster"))
        box.addStretch(1)

        self.method_combo.currentTextChanged.connect(self._build_form)
        self.preview_button.clicked.connect(self.preview)
        self.run_button.clicked.connect(self.run)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_cubes)
        self._build_form(self.method_combo.currentText())
        self._refresh_cubes()

    # -- form ---------------------------------------------------------------------------
    def _build_form(self, method: str) -> None:
        if self.param_form is not None:
            self.form_box.removeWidget(self.param_form)
            self.param_form.deleteLater()
        self.param_form = ParamForm(parameter_table(method))
        self.form_box.addWidget(self.param_form)
        self.fields = self.param_form.fields

    def parameters(self) -> dict[str, Any]:
        """The form's values, read by the method's parameters (as ``--param`` is)."""
        return self.param_form.checked()

    # -- layers ---------------------------------------------------------------------------
    def _refresh_cubes(self, *_: Any) -> None:
        refill(self.cube_combo, [lyr.name for lyr in self.viewer.layers if is_cube_layer(lyr)])

    @property
    def cube(self) -> SpectralCube | None:
        name = self.cube_combo.currentText()
        return cube_of(self.viewer.layers[name]) if name in self.viewer.layers else None

    # -- actions ----------------------------------------------------------------------------
    def _start(self, cube: SpectralCube, *, name: str, scale: float = 1.0) -> Any:
        method = self.method_combo.currentText()
        try:
            params = self.parameters()
            # in a child process: UMAP's and HDBSCAN's numba loops hold the GIL for up to 0.66 s,
            # which froze the window when they ran on a thread here (docs/benchmarks.md)
            steps = iter_cluster_in_child(cube, method, seed=self.seed.value(), nice=CHILD_NICE, **params)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        base = self.viewer.layers[self.cube_combo.currentText()]

        def done(result: Any) -> Delivery:
            data, kwargs, kind = clusters_layer_data(result, name, cube=cube)
            kwargs.update(grid_of(base, step=scale))
            noise = int((result.labels < 0).sum())
            self.summary.setText(f"{result.n_clusters} clusters, sizes {result.sizes.tolist()}; {noise} noise pixels")
            share = noise / max(result.labels.size, 1)
            message = f"{result.n_clusters} clusters found" + (
                f"; {share:.0%} of the pixels belong to none (noise)" if noise else ""
            )
            details = [
                f"{method} with {', '.join(f'{k}={v}' for k, v in result.params.items())}",
                f"cluster sizes: {result.sizes.tolist()}",
            ]
            return Delivery(self.viewer, [(data, kwargs, kind)], message, details, hide_cubes=False)

        return self.jobs.start(steps, what=f"{method} clustering", on_done=done)

    def run(self) -> Any:
        """Cluster the whole cube on a worker; adds a Labels layer when done."""
        cube = self.cube
        if cube is None:
            notify_error("Open a cube first (File > Open, or File > Open Sample > xray-atlas)")
            return None
        return self._start(cube, name=f"clusters ({self.method_combo.currentText()})")

    def preview(self) -> Any:
        """Cluster a strided subsample of the pixels (about 12,000) for a quick look."""
        cube = self.cube
        if cube is None:
            notify_error("Open a cube first (File > Open, or File > Open Sample > xray-atlas)")
            return None
        k = max(1, int(np.ceil(np.sqrt(cube.height * cube.width / PREVIEW_PIXELS))))
        small = SpectralCube(
            np.asarray(cube.counts[::k, ::k, :]),
            energy=cube.energy if cube.calibrated else None,
            name=f"{cube.name} preview",
        )
        return self._start(small, name=f"clusters preview ({self.method_combo.currentText()})", scale=float(k))

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.jobs.cancel()
        self.refine.disconnect_canvas()
        super().closeEvent(event)
