"""The Clusters dock's Refine group: split, merge, assign a painted region, undo.

The computation is :mod:`xray_atlas.cluster.refine`; this group only reads the chosen
clusters layer, calls it, and writes the new labels and mean spectra back to the layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...cluster import FEATURE_PARAMETERS
from ...cluster.refine import Refined, Refinement, iter_reassign, iter_split, merge
from ...cube import SpectralCube
from ...errors import XrayAtlasError
from .._layers import cube_of, grid_of, is_cube_layer, xa_meta
from .._notify import notify, notify_error
from ._common import click_callback, layer_pixel, refill

if TYPE_CHECKING:
    from .._workers import JobBar

__all__ = ["RefineGroup", "REGION_LAYER"]

#: Name of the Labels layer the region to reassign is painted into.
REGION_LAYER = "refine region"

_TIP = (
    "Refine the chosen clusters layer by hand. Every change updates the layer's labels and its mean "
    "spectra (shown by the Spectrum inspector) at once; Undo takes back the last change.\n\n"
    "Split: click a cluster on the canvas (or choose it in the list) and split it into k parts by "
    "k-means on its own pixels' spectra.\n"
    "Merge: tick two or more clusters and merge them into the lowest-numbered one.\n"
    "Assign painted region: 'Paint region' opens a separate, empty 'refine region' layer with napari's "
    "brush; paint over the pixels that belong together (the eraser takes paint back), choose where "
    "they go (a cluster, a new cluster or noise), then 'Assign'. The clusters layer itself is never "
    "painted, so a stray stroke changes nothing until you assign it, and Undo can take it back."
)


def _is_clusters(layer: Any) -> bool:
    return xa_meta(layer).get("kind") == "clusters"


def layer_clusters(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels (clusters 0..K-1, -1 for noise) and mean spectra of a clusters layer (layer: 1..K,
    noise K + 1; a 0 painted or erased into it counts as noise)."""
    xa = xa_meta(layer)
    data = np.asarray(layer.data)
    spectra = np.asarray(xa["cluster_spectra"])
    labels = data.astype(np.int32) - 1
    labels[(data == xa["noise_label"]) | (data <= 0)] = -1
    if labels.max(initial=-1) >= spectra.shape[0]:
        raise XrayAtlasError(
            f"layer {layer.name!r} holds label {int(labels.max()) + 1}, beyond its "
            f"{spectra.shape[0]} clusters and noise ({xa['noise_label']}): was it painted into?"
        )
    return labels, spectra


def _layer_data(state: Refined) -> np.ndarray:
    return np.where(state.labels >= 0, state.labels + 1, state.n_clusters + 1).astype(np.int32)


def _swatch(layer: Any, label: int) -> QIcon:
    """A small square in the layer's colour of ``label``."""
    rgba = np.asarray(layer.get_color(label), dtype=float) if hasattr(layer, "get_color") else np.ones(4)
    pix = QPixmap(12, 12)
    pix.fill(QColor(*(int(255 * c) for c in rgba[:3])))
    return QIcon(pix)


class RefineGroup(QGroupBox):
    """Split, merge, assign a painted region and undo, on a clusters Labels layer.

    Parameters
    ----------
    viewer : napari.Viewer
    jobs : JobBar
        The dock's job bar: split and assign read the cube on its worker (progress, Cancel).

    Signals
    -------
    changed(str)
        After each change or undo, with a one-line summary of the clusters.
    """

    changed = Signal(str)

    def __init__(self, viewer: Any, jobs: JobBar, parent: QWidget | None = None):
        super().__init__("Refine", parent)
        self.viewer = viewer
        self.jobs = jobs
        self.setToolTip(_TIP)
        # layer.unique_id -> its undo history (docks get proxies of the layers: id() changes)
        self._histories: dict[Any, Refinement] = {}

        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("the clusters layer to refine")
        self.cluster_combo = QComboBox()
        self.cluster_combo.setToolTip("the cluster to split: click it on the canvas, or choose it here")
        self.k_spin = QSpinBox()
        self.k_spin.setRange(2, 20)
        self.k_spin.setValue(2)
        self.k_spin.setToolTip("parts to split the cluster into")
        self.k_spin.setMaximumWidth(70)
        self.split_button = QPushButton("Split")
        self.merge_list = QListWidget()
        self.merge_list.setToolTip("tick the clusters to merge")
        self.merge_list.setMaximumHeight(110)
        self.merge_button = QPushButton("Merge ticked")
        self.target_combo = QComboBox()
        self.target_combo.setToolTip("where the painted pixels go")
        self.paint_button = QPushButton("Paint region")
        self.paint_button.setToolTip("add (or select) the 'refine region' layer and its brush")
        self.assign_button = QPushButton("Assign")
        self.assign_button.setToolTip("give every pixel painted in 'refine region' the chosen cluster")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setEnabled(False)
        self.state_label = QLabel("")
        self.state_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("clusters layer", self.layer_combo)
        split_row = QHBoxLayout()
        split_row.addWidget(self.cluster_combo, 1)
        split_row.addWidget(QLabel("k"))
        split_row.addWidget(self.k_spin)
        split_row.addWidget(self.split_button)
        form.addRow("split", split_row)
        merge_col = QVBoxLayout()
        merge_col.addWidget(self.merge_list)
        merge_col.addWidget(self.merge_button)
        form.addRow("merge", merge_col)
        assign_row = QHBoxLayout()
        assign_row.addWidget(self.paint_button)
        assign_row.addWidget(QLabel("to"))
        assign_row.addWidget(self.target_combo, 1)
        assign_row.addWidget(self.assign_button)
        form.addRow("region", assign_row)
        bottom = QHBoxLayout()
        bottom.addWidget(self.undo_button)
        bottom.addWidget(self.state_label, 1)
        outer = QVBoxLayout(self)
        outer.addLayout(form)
        outer.addLayout(bottom)

        self.split_button.clicked.connect(self.split)
        self.merge_button.clicked.connect(self.merge)
        self.paint_button.clicked.connect(self.paint_region)
        self.assign_button.clicked.connect(self.assign)
        self.undo_button.clicked.connect(self.undo)
        self.layer_combo.currentTextChanged.connect(self._refresh_clusters)
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        self._on_mouse_drag = click_callback(self._on_click)
        self.viewer.mouse_drag_callbacks.append(self._on_mouse_drag)
        self._refresh_layers()

    # -- layers and lists ---------------------------------------------------------------------
    @property
    def layer(self) -> Any:
        """The chosen clusters layer, or None."""
        name = self.layer_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _refresh_layers(self, *_: Any) -> None:
        names = [lyr.name for lyr in self.viewer.layers if _is_clusters(lyr)]
        previous = refill(self.layer_combo, names, quiet=True)
        if names and previous not in names:
            self.layer_combo.setCurrentText(names[-1])  # the newest clustering is the one to refine
        live = {lyr.unique_id for lyr in self.viewer.layers}
        self._histories = {k: v for k, v in self._histories.items() if k in live}
        self._refresh_clusters()

    def _refresh_clusters(self, *_: Any) -> None:
        layer = self.layer
        sizes = np.asarray(xa_meta(layer).get("sizes", [])) if layer is not None else np.zeros(0)
        items = [f"cluster {k + 1} ({int(n)} px)" for k, n in enumerate(sizes)]
        noise = int(np.sum(np.asarray(layer.data) == xa_meta(layer)["noise_label"])) if layer is not None else 0
        split_items = items + ([f"noise ({noise} px)"] if noise else [])
        icons = [_swatch(layer, k + 1) for k in range(len(split_items))]
        index = self.cluster_combo.currentIndex()
        self.cluster_combo.clear()
        for icon, text in zip(icons, split_items):
            self.cluster_combo.addItem(icon, text)
        if 0 <= index < len(split_items):
            self.cluster_combo.setCurrentIndex(index)
        ticked = {
            i for i in range(self.merge_list.count()) if self.merge_list.item(i).checkState() == Qt.CheckState.Checked
        }
        self.merge_list.clear()
        for i, text in enumerate(items):
            item = QListWidgetItem(icons[i], text)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if i in ticked else Qt.CheckState.Unchecked)
            self.merge_list.addItem(item)
        target = self.target_combo.currentText()
        targets = [f"cluster {k + 1}" for k in range(len(items))] + (["new cluster", "noise"] if items else [])
        refill(self.target_combo, targets, quiet=True)
        if target in targets:
            self.target_combo.setCurrentText(target)
        history = self._histories.get(layer.unique_id) if layer is not None else None
        n = history.n_undo if history is not None else 0
        self.undo_button.setEnabled(n > 0)
        self.undo_button.setToolTip(f"take back the last change ({n} can be taken back)" if n else "nothing to undo")
        for w in (self.split_button, self.merge_button, self.paint_button, self.assign_button):
            w.setEnabled(layer is not None)

    def ticked(self) -> list[int]:
        """Clusters (0-based) ticked in the merge list."""
        return [
            i for i in range(self.merge_list.count()) if self.merge_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def _on_click(self, event: Any) -> None:
        """A click on the canvas picks the cluster under it for Split."""
        layer = self.layer
        if layer is None or not layer.visible:
            return
        yx = layer_pixel(layer, event.position, np.shape(layer.data))
        if yx is None:
            return
        value = int(np.asarray(layer.data)[yx])
        if 1 <= value <= self.cluster_combo.count():
            self.cluster_combo.setCurrentIndex(value - 1)

    # -- state --------------------------------------------------------------------------------
    def _history(self, layer: Any) -> Refinement:
        """The layer's undo history; started afresh if the layer was changed outside this group."""
        labels, spectra = layer_clusters(layer)
        known = self._histories.get(layer.unique_id)
        if known is not None and np.array_equal(known.labels, labels):
            return known
        history = Refinement(labels, spectra)
        self._histories[layer.unique_id] = history
        return history

    def _cube_for(self, layer: Any) -> SpectralCube:
        """The open cube the clusters were found in: same size, its name if several are."""
        shape = np.shape(layer.data)
        cubes = [cube_of(lyr) for lyr in self.viewer.layers if is_cube_layer(lyr)]
        fits = [c for c in cubes if (c.height, c.width) == shape]
        if not fits:
            raise XrayAtlasError(
                f"no open cube is {shape[0]} x {shape[1]} pixels like {layer.name!r}: open the cube "
                "it was found in (a preview's clusters cannot be split or assigned; run the whole "
                "cube)"
            )
        source = xa_meta(layer).get("source")
        named = [c for c in fits if c.name == source]
        return (named or fits)[0]

    def _show(self, layer: Any, state: Refined, note: str) -> None:
        """Put ``state`` on the layer: labels, then the metadata (its event redraws the spectra)."""
        xa = dict(xa_meta(layer))
        xa.update(
            noise_label=state.n_clusters + 1, cluster_spectra=np.array(state.spectra), sizes=np.array(state.sizes)
        )
        if note:
            xa["refinements"] = [*xa.get("refinements", []), note]
        elif xa.get("refinements"):
            xa["refinements"] = xa["refinements"][:-1]
        layer.data = _layer_data(state)
        layer.metadata = {**layer.metadata, "xray_atlas": xa}
        self._refresh_clusters()
        noise = int((state.labels < 0).sum())
        self.changed.emit(f"{state.n_clusters} clusters, sizes {state.sizes.tolist()}; {noise} noise pixels")

    def _apply(self, layer: Any, before: Refined, refined: Refined, note: str) -> None:
        history = self._histories.get(layer.unique_id)
        if history is None or history.current is not before:
            notify_error(
                f"{layer.name!r} changed while the {note.split()[0]} ran: nothing applied; try again", log=self.jobs
            )
            return
        self._show(layer, history.apply(refined), note)
        self.state_label.setText(f"{note}: {refined.n_clusters} clusters")
        self.jobs.log(f"{layer.name}: {note}")

    # -- actions ------------------------------------------------------------------------------
    def _chosen(self) -> tuple[Any, Refinement] | None:
        layer = self.layer
        if layer is None:
            notify_error("Refine: no clusters layer; run the clustering first", log=self.jobs)
            return None
        try:
            return layer, self._history(layer)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None

    def split(self) -> Any:
        """Split the chosen cluster into k on the job bar's worker; returns the worker."""
        chosen = self._chosen()
        if chosen is None:
            return None
        layer, history = chosen
        index = self.cluster_combo.currentIndex()
        cluster = -1 if index >= history.spectra.shape[0] else index
        k = self.k_spin.value()
        params = xa_meta(layer).get("params", {})
        feat = {name: params.get(name, default) for name, default in FEATURE_PARAMETERS.items()}
        before = history.current
        try:
            steps = iter_split(
                before.labels,
                before.spectra,
                self._cube_for(layer),
                cluster,
                k=k,
                seed=int(params.get("seed", 0)),
                **feat,
            )
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        what = "noise" if cluster < 0 else f"cluster {cluster + 1}"

        def done(refined: Refined) -> None:
            new = ", ".join(str(c + 1) for c in refined.touched)
            self._apply(layer, before, refined, f"split {what} into {k} (clusters {new})")
            notify(f"Split {what} into {len(refined.touched)}: clusters {new}", log=self.jobs)

        return self.jobs.start(steps, what=f"split {what}", on_done=done)

    def merge(self) -> Refined | None:
        """Merge the ticked clusters at once (no pixel is read)."""
        chosen = self._chosen()
        if chosen is None:
            return None
        layer, history = chosen
        clusters = self.ticked()
        if len(clusters) < 2:
            notify_error("Merge: tick two or more clusters in the list first", log=self.jobs)
            return None
        refined = merge(history.labels, history.spectra, clusters)
        names = ", ".join(str(c + 1) for c in clusters)
        for i in range(self.merge_list.count()):
            self.merge_list.item(i).setCheckState(Qt.CheckState.Unchecked)
        self._apply(layer, history.current, refined, f"merged clusters {names} into {clusters[0] + 1}")
        return refined

    def paint_region(self) -> Any:
        """Add (or select) the 'refine region' Labels layer on the clusters' grid, brush in hand."""
        layer = self.layer
        if layer is None:
            notify_error("Refine: no clusters layer; run the clustering first", log=self.jobs)
            return None
        region = self.viewer.layers[REGION_LAYER] if REGION_LAYER in self.viewer.layers else None
        if region is None or np.shape(region.data) != np.shape(layer.data):
            if region is not None:
                self.viewer.layers.remove(region)
            region = self.viewer.add_labels(
                np.zeros(np.shape(layer.data), np.int32), name=REGION_LAYER, opacity=0.8, **grid_of(layer)
            )
        region.visible = True
        region.selected_label = 1
        self.viewer.layers.selection.active = region
        region.mode = "paint"
        return region

    def assign(self) -> Any:
        """Give the pixels painted in 'refine region' the chosen cluster, on the worker."""
        chosen = self._chosen()
        if chosen is None:
            return None
        layer, history = chosen
        region = self.viewer.layers[REGION_LAYER] if REGION_LAYER in self.viewer.layers else None
        if region is None:
            notify_error("Refine: nothing painted; press 'Paint region' and paint the pixels first", log=self.jobs)
            return None
        target = self.target_combo.currentText()
        cluster = None if target == "new cluster" else -1 if target == "noise" else int(target.split()[-1]) - 1
        before = history.current
        try:
            mask = np.asarray(region.data) > 0
            if mask.shape != before.labels.shape:
                raise XrayAtlasError(
                    f"layer {REGION_LAYER!r} is {mask.shape[0]} x {mask.shape[1]}, the clusters "
                    f"{before.labels.shape[0]} x {before.labels.shape[1]}; press 'Paint region' again"
                )
            steps = iter_reassign(before.labels, before.spectra, self._cube_for(layer), mask, cluster)
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        n = int(mask.sum())

        def done(refined: Refined) -> None:
            to = (
                "noise"
                if cluster == -1
                else (f"new cluster {refined.n_clusters}" if cluster is None else f"cluster {cluster + 1}")
            )
            self._apply(layer, before, refined, f"assigned {n} painted pixels to {to}")
            if REGION_LAYER in self.viewer.layers:
                self.viewer.layers[REGION_LAYER].data = np.zeros_like(mask, np.int32)  # ready for the next region

        return self.jobs.start(steps, what="assign painted region", on_done=done)

    def undo(self) -> Refined | None:
        """Take back the last change to the chosen layer, at once."""
        chosen = self._chosen()
        if chosen is None:
            return None
        layer, history = chosen
        try:
            state = history.undo()
        except XrayAtlasError as err:
            notify_error(err, log=self.jobs)
            return None
        self._show(layer, state, "")
        self.state_label.setText(f"undone: {state.n_clusters} clusters")
        self.jobs.log(f"{layer.name}: undo")
        return state

    def disconnect_canvas(self) -> None:
        """Stop listening to canvas clicks (the dock closes)."""
        if self._on_mouse_drag in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_mouse_drag)
