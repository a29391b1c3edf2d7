"""Small helpers shared by the dock widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox, QWidget

if TYPE_CHECKING:
    from qtpy.QtWidgets import QVBoxLayout

__all__ = [
    "refill",
    "ModelCombo",
    "ParamForm",
    "apply_plot_theme",
    "form_dock",
    "scroll_box",
    "refit_on_show",
    "click_callback",
    "layer_pixel",
    "chosen_cube",
]


def refill(combo: QComboBox, names: list[str], *, quiet: bool = False) -> str:
    """Replace a combo box's items, keeping the current choice if it still exists.

    Returns the previous choice. With ``quiet`` no change signal is emitted.
    """
    current = combo.currentText()
    combo.blockSignals(quiet)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)
    return current


class ModelCombo(QComboBox):
    """Model names from ``names()``, refreshed whenever the list opens (a model trained in
    another dock appears at once)."""

    def __init__(self, names: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self._names = names

    def refresh(self) -> None:
        refill(self, list(self._names()), quiet=True)

    def showPopup(self) -> None:  # noqa: N802 - Qt API
        self.refresh()
        super().showPopup()


def scroll_box(widget: QWidget, *, viewer: Any = None) -> QVBoxLayout:
    """The layout to fill a dock with: a vertical box inside a scroll area that fills ``widget``.

    Docks stacked by the Plugins menu add up their minimum heights; without a scroll area each
    asks for its whole form, which grew a 1600 x 1000 window to 1889 px and put buttons below
    the screen. In a scroll area a dock can shrink to a few rows and scroll. With ``viewer``
    the canvas is fitted to the data again once the dock has taken its room.
    """
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout

    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    # fields narrow to the dock's width instead of a second, horizontal scroll bar
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    inner = QWidget()
    inner.setObjectName("xray_atlas_dock_contents")
    area.setWidget(inner)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    widget.scroll_area = area  # for tests and callers that bring a button into view
    _keep_wide_enough(area, inner)
    if viewer is not None:
        refit_on_show(widget, viewer)
    return QVBoxLayout(inner)


def _keep_wide_enough(area: Any, inner: QWidget) -> None:
    """Keep ``area`` at least as wide as ``inner``'s narrowest layout: with no horizontal scroll
    bar, a dock narrower than its form clipped the buttons at its right edge (the Spectrum
    inspector's "Region spectrum" in a 300 px dock). Qt's dock layout honours the minimum."""
    from qtpy.QtCore import QEvent, QObject

    def fit() -> None:
        want = inner.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width()
        if area.minimumWidth() != want:
            area.setMinimumWidth(want)

    class _Watch(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
            if event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show):
                fit()
            return False

    watch = _Watch(inner)  # parented: lives as long as the form
    inner.installEventFilter(watch)
    area.fit_width = fit  # called before the dock is first shown, so that it opens at its width


def refit_on_show(widget: QWidget, viewer: Any) -> None:
    """Fit the canvas to the data once ``widget`` is first shown: a new dock narrows the canvas,
    and napari keeps the old zoom, which cut the painting's edge off. Qt settles a new dock's
    width over a few layout passes, so the canvas is fitted again on each resize for a moment
    (``SETTLE_MS``) after the show, never later (a user's own zoom stays)."""
    import time

    from qtpy.QtCore import QEvent, QObject, QTimer

    state = {"until": 0.0}

    def _fit() -> None:
        try:
            if len(viewer.layers):
                viewer.reset_view()
        except RuntimeError:  # the viewer was closed meanwhile
            pass

    class _Settle(QObject):
        # the dock and the canvas share each layout pass: a resize of the dock is one of the canvas
        def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
            kind = event.type()
            if kind == QEvent.Type.Show and state["until"] == 0.0:
                area = getattr(obj, "scroll_area", None)
                if area is not None:  # the dock's final width first
                    area.fit_width()
                state["until"] = time.monotonic() + SETTLE_MS / 1000
                QTimer.singleShot(0, _fit)
            elif kind == QEvent.Type.Resize and state["until"] > 0.0:
                if time.monotonic() < state["until"]:
                    QTimer.singleShot(0, _fit)
                else:
                    obj.removeEventFilter(self)
            return False

    widget._refit_filter = _Settle(widget)
    widget.installEventFilter(widget._refit_filter)


#: How long after a dock is first shown a resize of it still refits the view.
SETTLE_MS = 3000


def form_dock(widget: QWidget, rows: list, *below: QWidget, viewer: Any = None) -> QFormLayout:
    """Lay out a dock in a scroll area (:func:`scroll_box`): a form of (label, field) rows, then
    ``below`` widgets top to bottom, then a stretch. Returns the form."""
    form = QFormLayout()
    for label, field in rows:
        form.addRow(label, field)
    box = scroll_box(widget, viewer=viewer)
    box.addLayout(form)
    for w in below:
        box.addWidget(w)
    box.addStretch(1)
    return form


def click_callback(on_click: Any) -> Any:
    """A napari mouse-drag callback that calls ``on_click(event)`` after a left click that did
    not move more than 4 screen pixels (a drag pans the canvas and is not a click)."""
    import numpy as np

    def callback(viewer: Any, event: Any):
        if event.button != 1:
            return
        start = np.asarray(event.pos, dtype=float)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or bool(np.hypot(*(np.asarray(event.pos, dtype=float) - start)) > 4)
            yield
        if not moved:
            on_click(event)

    return callback


def layer_pixel(layer: Any, position: Any, shape: tuple) -> tuple[int, int] | None:
    """The (y, x) data pixel of ``layer`` under the world ``position``, if inside ``shape``."""
    import numpy as np

    coords = np.asarray(layer.world_to_data(position))[-2:]
    y, x = (int(np.floor(c + 0.5)) for c in coords)
    return (y, x) if 0 <= y < shape[0] and 0 <= x < shape[1] else None


def chosen_cube(viewer: Any, name: str) -> tuple[Any, Any]:
    """The cube layer named ``name`` and its cube; a notification and (None, None) if absent."""
    from napari.utils.notifications import show_error

    from .._layers import cube_of

    if name not in viewer.layers:
        show_error("Open a cube first (File > Open, or File > Open Sample > xray-atlas)")
        return None, None
    return viewer.layers[name], cube_of(viewer.layers[name])


def apply_plot_theme(plot: Any, viewer: Any) -> None:
    """Give a pyqtgraph plot napari's canvas and text colours."""
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(viewer.theme)
        bg, fg = theme.canvas.as_hex(), theme.text.as_hex()
    except Exception:  # noqa: BLE001 - a custom theme without these keys
        bg, fg = "#262930", "#f0f1f2"
    plot.setBackground(bg)
    for axis in ("left", "bottom"):
        ax = plot.getAxis(axis)
        ax.setPen(fg)
        ax.setTextPen(fg)


class ParamForm(QWidget):
    """A form built from a core parameter table (name -> :class:`~xray_atlas.params.Param`):
    spin boxes with the table's ranges, combo boxes for choices, check boxes, text fields.
    :meth:`values` returns what the core's checks take (text fields as text); :meth:`checked`
    reads them with the parameters' own parser (:meth:`~xray_atlas.params.Param.check`), as the
    command line does."""

    #: Spin box limits of a parameter the table leaves open (its check lies in the core).
    OPEN_INT = (0, 10**7)
    OPEN_FLOAT = (0.0, 1e6)

    def __init__(self, params: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.params = params
        self.fields: dict[str, QWidget] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for name, p in params.items():
            w: QWidget
            if p.kind == "choice":
                w = QComboBox()
                w.addItems([str(c) for c in p.choices])
                w.setCurrentText(str(p.default))
            elif p.kind == "bool":
                w = QCheckBox()
                w.setChecked(bool(p.default))
            elif p.kind == "number" and isinstance(p.default, int):
                w = QSpinBox()
                low, high = self.OPEN_INT
                w.setRange(
                    int(low if p.low is None else p.low), int(min(high if p.high is None else p.high, 2**31 - 1))
                )
                w.setValue(p.default)
            elif p.kind == "number" and p.default is not None:
                w = QDoubleSpinBox()
                w.setDecimals(4)
                low, high = self.OPEN_FLOAT
                w.setRange(low if p.low is None else p.low, high if p.high is None else p.high)
                w.setValue(p.default)
            else:
                w = QLineEdit(p.text())
                if p.kind in ("path", "paths") or p.default is None:
                    w.setPlaceholderText(p.doc)
            w.setToolTip(p.doc)
            w.setObjectName(name)
            self.fields[name] = w
            form.addRow(name.replace("_", " "), w)

    def checked(self) -> dict[str, Any]:
        """:meth:`values` read by each parameter's :meth:`~xray_atlas.params.Param.check`.

        Raises
        ------
        XrayAtlasError
            A text field the parameter cannot read (naming the parameter).
        """
        return {name: self.params[name].check(name, value) for name, value in self.values().items()}

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, w in self.fields.items():
            if isinstance(w, QComboBox):
                out[name] = w.currentText()
            elif isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                out[name] = w.value()
            else:
                out[name] = w.text()
        return out

    def set_value(self, name: str, value: Any) -> None:
        w = self.fields[name]
        if isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
            w.setValue(value)
        else:
            w.setText(str(value))


class CubeChoice:
    """For a dock with a ``cube_combo`` of cube layer names and a ``viewer``: the chosen cube
    layer and its cube (None when the name is empty or the layer is gone)."""

    @property
    def cube_layer(self) -> Any:
        name = self.cube_combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    @property
    def cube(self) -> Any:
        from .._layers import cube_of

        layer = self.cube_layer
        return cube_of(layer) if layer is not None else None


def shapes_on_grid(shapes: Any, base: Any) -> Any:
    """``shapes`` with its vertices in ``base``'s data coordinates (the cube's pixels): a
    Shapes layer drawn on a scaled cube may have pixel steps of its own (napari's "new shapes"
    button takes the viewer's step, a script may give none)."""
    import numpy as np
    from napari.layers import Shapes

    s1, t1 = np.asarray(shapes.scale[-2:], float), np.asarray(shapes.translate[-2:], float)
    s2, t2 = np.asarray(base.scale[-2:], float), np.asarray(base.translate[-2:], float)
    if np.allclose(s1, s2) and np.allclose(t1, t2):
        return shapes
    data = [(np.asarray(v, float)[:, -2:] * s1 + t1 - t2) / s2 for v in shapes.data]
    return Shapes(data, shape_type=list(shapes.shape_type))


def region_mask(viewer: Any, cube_layer: Any, name: str) -> Any:
    """Boolean (H, W) mask of the cube behind ``cube_layer`` from the layer ``name``: a Shapes
    layer (all its shapes, placed by their world position, :func:`shapes_on_grid`) or a Labels
    layer of the cube's shape (its selected label).

    Raises
    ------
    XrayAtlasError
        No cube or no such layer; labels of another shape; a Shapes layer without shapes.
    """
    import numpy as np
    from napari.layers import Labels

    from ...errors import XrayAtlasError
    from .._layers import cube_of

    cube = cube_of(cube_layer) if cube_layer is not None else None
    if cube is None or not name or name not in viewer.layers:
        raise XrayAtlasError("choose a cube and a Shapes or Labels layer for the region")
    layer = viewer.layers[name]
    shape = (cube.height, cube.width)
    if isinstance(layer, Labels):
        data = np.asarray(layer.data)
        if data.shape[-2:] != shape:
            raise XrayAtlasError(f"labels layer {name!r} has shape {data.shape}, the cube is {shape}")
        return data.reshape(shape) == layer.selected_label
    if len(layer.data) == 0:
        raise XrayAtlasError(f"shapes layer {name!r} holds no shape")
    return np.asarray(shapes_on_grid(layer, cube_layer).to_labels(labels_shape=shape)) > 0
