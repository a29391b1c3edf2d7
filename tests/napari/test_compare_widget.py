"""The Compare maps dock (issue 29) with real clicks and drags: an RGB composite layer on the maps'
grid and its export, the correlation plot of two maps, rectangle and lasso selections on the
plot written to a Labels layer, and a painted Labels region or a Shapes region drawn over the
plot. Values are checked against the core functions, which tests/test_compare.py checks
against analytic cases and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QPointF, Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication, QFileDialog

from xray_atlas.compare import histogram2d, pixels_in_polygon, pixels_in_rectangle, rgb_composite
from xray_atlas.napari._layers import map_layer_data

LINES = ("Pb-L", "Hg-L", "Cu-K", "Fe-K")
GRID = {"scale": (0.5, 0.5), "units": ("mm", "mm")}  # the synthetic painting's 500 um pixels


@pytest.fixture
def maps(viewer, small_painting):
    """The small painting's true maps as map layers on its millimetre grid (the maps dock's
    layer kind and metadata), with noise so that the plot has a spread; returns name -> array."""
    rng = np.random.default_rng(3)
    out = {}
    for line in LINES:
        data = rng.poisson(small_painting.maps[line]).astype(np.float32)
        arr, kwargs, _ = map_layer_data(
            f"{line} (roi)", data, line=line, extra={"model": "roi", "pixel_size_um": 500.0, "source": "painting"}
        )
        viewer.add_image(arr, **kwargs, **GRID)
        out[f"{line} (roi)"] = arr
    return out


@pytest.fixture
def dock(plugin_dock, maps, qtbot):
    widget = plugin_dock("Compare maps")
    qtbot.waitUntil(lambda: widget.plot.isVisible(), timeout=10000)
    return widget


def _view_to_widget(dock, x: float, y: float) -> QPoint:
    """Where value (x, y) of the plot lies in its viewport (where mouse events go)."""
    scene = dock.box.mapViewToScene(QPointF(x, y))
    p = dock.plot.mapFromScene(scene)
    return QPoint(int(p.x()), int(p.y()))


def _drag(dock, path: list[tuple[float, float]]) -> None:
    """A real left-button drag on the plot through the value points of ``path``, at a hand's
    pace: pyqtgraph drops mouse moves that come less than 10 ms after the last one (its
    ``mouseRateLimit`` of 100 Hz), so moves sent back to back would leave corners out."""
    vp = dock.plot.viewport()
    points = [_view_to_widget(dock, x, y) for x, y in path]
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
    for a, b in zip(points[:-1], points[1:]):
        for t in np.linspace(0.1, 1.0, 6):
            QTest.qWait(12)
            QTest.mouseMove(vp, QPoint(int(a.x() + t * (b.x() - a.x())), int(a.y() + t * (b.y() - a.y()))))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])
    QApplication.processEvents()


def _choose(dock, x: str, y: str) -> None:
    dock.x_combo.setCurrentText(x)
    dock.y_combo.setCurrentText(y)
    assert dock.pair() is not None and [lyr.name for lyr in dock.pair()] == [x, y]


def test_defaults_are_the_strongest_maps(dock, maps):
    means = sorted(maps, key=lambda k: -float(maps[k].mean()))
    assert [dock.channel_combos[c].currentText() for c in ("red", "green", "blue")] == means[:3]
    assert [dock.x_combo.currentText(), dock.y_combo.currentText()] == means[:2]
    assert dock.histogram is not None  # drawn as soon as the dock opens


def test_layers_arriving_one_by_one_fill_the_channels_and_a_users_none_stays(
    viewer, plugin_dock, small_painting, qtbot
):
    dock = plugin_dock("Compare maps")
    assert dock.histogram is None and dock.hint.isVisible()
    for line in ("Cu-K", "Pb-L", "Fe-K", "Hg-L"):  # as a maps run delivers them, one per turn
        arr, kwargs, _ = map_layer_data(f"{line} (roi)", small_painting.maps[line], line=line)
        viewer.add_image(arr, **kwargs, **GRID)
    assert [dock.channel_combos[c].currentText() for c in ("red", "green", "blue")] == [
        "Cu-K (roi)",
        "Pb-L (roi)",
        "Fe-K (roi)",
    ]
    assert [dock.x_combo.currentText(), dock.y_combo.currentText()] == ["Cu-K (roi)", "Pb-L (roi)"]
    assert dock.histogram is not None and not dock.hint.isVisible()
    # the user leaves blue black (Home: the first item, none, as from the keyboard)
    blue = dock.channel_combos["blue"]
    blue.setFocus()
    QTest.keyClick(blue, Qt.Key.Key_Home)
    assert blue.currentText() == "none"
    arr, kwargs, _ = map_layer_data("Zn-K (roi)", small_painting.maps["Zn-K"], line="Zn-K")
    viewer.add_image(arr, **kwargs, **GRID)
    assert blue.currentText() == "none"


def test_rgb_composite_is_a_layer_on_the_maps_grid_and_exports(
    viewer, dock, maps, qtbot, idle, errors, tmp_path, monkeypatch
):
    from PIL import Image

    for ch, line in zip(("red", "green", "blue"), ("Pb-L", "Hg-L", "Cu-K")):
        dock.channel_combos[ch].setCurrentText(f"{line} (roi)")
    qtbot.mouseClick(dock.rgb_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    layer = viewer.layers["RGB (Pb-L (roi), Hg-L (roi), Cu-K (roi))"]
    expected = rgb_composite(maps["Pb-L (roi)"], maps["Hg-L (roi)"], maps["Cu-K (roi)"])  # auto: 1st-99th
    assert layer.rgb and np.array_equal(layer.data, expected.rgb)
    assert tuple(layer.scale) == (0.5, 0.5) and tuple(str(u) for u in layer.units) == ("millimeter", "millimeter")
    # the auto limits are shown, and the maps no longer wash over the composite
    assert dock.low_spins["red"].value() == pytest.approx(expected.limits[0][0], abs=1e-3)
    assert dock.high_spins["blue"].value() == pytest.approx(expected.limits[2][1], abs=1e-3)
    assert not any(viewer.layers[n].visible for n in maps)
    # typed limits: the same layer is updated
    n_layers = len(viewer.layers)
    qtbot.mouseClick(dock.auto_check, Qt.MouseButton.LeftButton)
    assert not dock.auto_check.isChecked() and dock.low_spins["red"].isEnabled()
    dock.low_spins["red"].setValue(0.0)
    dock.high_spins["red"].setValue(10.0)
    qtbot.mouseClick(dock.rgb_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert len(viewer.layers) == n_layers
    red = np.clip(np.rint(maps["Pb-L (roi)"] * 25.5), 0, 255)
    assert np.array_equal(layer.data[..., 0], red.astype(np.uint8))
    # Export RGB...: the file dialog answers a path (a test cannot click a native dialog)
    out = tmp_path / "composite.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    qtbot.mouseClick(dock.rgb_export_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), layer.data)
        assert im.info["dpi"][0] == pytest.approx(25400 / 500, rel=1e-3)
        assert "red Pb-L (roi) 0 to 10 net counts" in im.info["Description"]
    # napari's File > Save Selected Layer writes it the same way (the plugin's .tif writer)
    import tifffile

    viewer.layers.selection.active = layer
    written = viewer.layers.save(str(tmp_path / "saved.tif"), selected=True, plugin="napari-xray-atlas")
    assert written and np.array_equal(tifffile.imread(written[0]), layer.data)
    assert errors() == []


def test_correlation_plot_and_a_rectangle_drawn_on_it(viewer, dock, maps, qtbot, errors):
    _choose(dock, "Pb-L (roi)", "Hg-L (roi)")
    x, y = maps["Pb-L (roi)"], maps["Hg-L (roi)"]
    h = dock.histogram
    ref = histogram2d(x, y, bins=h.counts.shape[0])
    assert np.array_equal(h.counts, ref.counts) and h.n == x.size
    # axes name the maps and their units; the colour bar says it is a log scale of pixels
    plot = dock.plot.getPlotItem()
    assert "Pb-L (roi)" in plot.getAxis("bottom").labelText and "net counts" in plot.getAxis("bottom").labelText
    assert "Hg-L (roi)" in plot.getAxis("left").labelText
    assert "log" in dock.colour_bar.getAxis("left").labelText
    assert "Pearson r" in dock.info.text()
    # a drag over the upper values of x and the lower half of y's range
    x0, x1 = float(np.percentile(x, 40)), float(x.max()) * 1.01
    y0, y1 = float(y.min()) - 0.5, float(y.max()) / 2
    _drag(dock, [(x0, y0), (x1, y1)])
    qtbot.waitUntil(lambda: "plot selection" in viewer.layers, timeout=10000)
    kind, corners = dock.roi_region()
    assert kind == "rectangle"
    step = (np.ptp(h.x_edges) / 100, np.ptp(h.y_edges) / 100)  # a screen pixel is far below 1 % of the axis
    assert corners[0] == pytest.approx((x0, y0), abs=max(step)) and corners[1] == pytest.approx((x1, y1), abs=max(step))
    layer = viewer.layers["plot selection"]
    expected = pixels_in_rectangle(x, y, corners[:, 0], corners[:, 1])
    assert expected.any() and np.array_equal(layer.data == 1, expected)
    assert tuple(layer.scale) == (0.5, 0.5)
    # the selection is highlighted on the plot: the overlay covers exactly its cells
    assert dock.highlight_combo.currentText() == "plot selection"
    overlay = dock.overlay.image
    part = histogram2d(
        x, y, bins=h.counts.shape[0], mask=expected, x_range=h.x_edges[[0, -1]], y_range=h.y_edges[[0, -1]]
    )
    assert np.array_equal(overlay[..., 3] > 0, part.counts > 0)
    # ... drawn over the histogram's cells in value space (not at the origin), in the orange of
    # the selection layer on the painting
    for item in (dock.image, dock.overlay):
        shown = item.mapRectToView(item.boundingRect())
        assert (shown.left(), shown.top(), shown.width(), shown.height()) == pytest.approx(
            (h.x_edges[0], h.y_edges[0], np.ptp(h.x_edges), np.ptp(h.y_edges))
        )
    orange = overlay[part.counts > 0][0, :3]
    assert np.allclose(layer.colormap.map(np.array([1]))[0, :3], orange / 255, atol=0.01)
    # dragging the rectangle moves the selection with it
    before = layer.data.copy()
    dock.roi.setPos((corners[0, 0] - (x1 - x0) / 2, corners[0, 1]), finish=True)
    QApplication.processEvents()
    kind, moved = dock.roi_region()
    assert np.array_equal(layer.data == 1, pixels_in_rectangle(x, y, moved[:, 0], moved[:, 1]))
    assert not np.array_equal(layer.data, before)
    assert errors() == []


def test_lasso_selects_the_pixels_inside_it(viewer, dock, maps, qtbot, errors):
    _choose(dock, "Cu-K (roi)", "Pb-L (roi)")
    dock.mode_combo.setCurrentText("lasso")
    x, y = maps["Cu-K (roi)"], maps["Pb-L (roi)"]
    # a triangle around the values of one pixel away from the plot's edges (legs of 3 d, the pixel
    # d, d from the corner in each axis)
    fx, fy = (x - x.min()) / np.ptp(x), (y - y.min()) / np.ptp(y)
    i, j = np.argwhere((fx > 0.2) & (fx < 0.8) & (fy > 0.2) & (fy < 0.8))[0]
    px, py = float(x[i, j]), float(y[i, j])
    dx, dy = 0.08 * np.ptp(x), 0.08 * np.ptp(y)
    (ax, bx), (ay, by) = (px - dx, px + 2 * dx), (py - dy, py + 2 * dy)
    triangle = [(ax, ay), (bx, ay), (ax, by), (ax, ay + 0.02 * dy)]
    _drag(dock, triangle)
    qtbot.waitUntil(lambda: "plot selection" in viewer.layers, timeout=10000)
    kind, vertices = dock.roi_region()
    assert kind == "polygon" and 3 <= len(vertices) <= 48  # thinned to handles the user can drag
    selected = viewer.layers["plot selection"].data == 1
    assert np.array_equal(selected, pixels_in_polygon(x, y, vertices))
    box = pixels_in_rectangle(x, y, (ax, bx), (ay, by))
    assert selected[i, j] and selected.sum() <= box.sum() and not (selected & ~box).any()
    assert errors() == []


def test_a_painted_region_and_a_shapes_region_are_highlighted(viewer, dock, maps, qtbot, click, errors):
    _choose(dock, "Pb-L (roi)", "Cu-K (roi)")
    x, y = maps["Pb-L (roi)"], maps["Cu-K (roi)"]
    h = dock.histogram
    ranges = dict(x_range=h.x_edges[[0, -1]], y_range=h.y_edges[[0, -1]], bins=h.counts.shape[0])
    region = np.zeros(x.shape, np.int32)
    region[2:6, 3:9] = 1
    labels = viewer.add_labels(region, name="robe", **GRID)
    dock.highlight_combo.setCurrentText("robe")
    assert np.array_equal(dock.overlay.image[..., 3] > 0, histogram2d(x, y, mask=region == 1, **ranges).counts > 0)
    assert "robe: 24 pixels" in dock.legend.items[0][1].text
    # a click with napari's paint brush (size 1) adds one pixel: the plot follows
    labels.brush_size = 1
    labels.mode = "paint"
    viewer.layers.selection.active = labels
    click(qtbot, viewer, labels, 12, 15)
    qtbot.waitUntil(lambda: "robe: 25 pixels" in dock.legend.items[0][1].text, timeout=5000)
    region[12, 15] = 1
    assert np.array_equal(dock.overlay.image[..., 3] > 0, histogram2d(x, y, mask=region == 1, **ranges).counts > 0)
    # a Shapes rectangle drawn in world millimetres on a grid of its own (napari's default)
    corners = np.array([[10.0, 4.0], [10.0, 12.0], [16.0, 12.0], [16.0, 4.0]]) * 0.5  # rows 10..16, cols 4..12
    shapes = viewer.add_shapes([corners], shape_type="rectangle", name="sky")
    dock.highlight_combo.setCurrentText("sky")
    mask = dock.highlight_mask()
    assert mask[11:16, 5:12].all() and not mask[:9].any() and not mask[:, 13:].any()
    assert np.array_equal(dock.overlay.image[..., 3] > 0, histogram2d(x, y, mask=mask, **ranges).counts > 0)
    shapes.data = [corners - [4.0, 0.0]]  # moved up 8 rows
    qtbot.waitUntil(lambda: dock.highlight_mask() is not None and dock.highlight_mask()[3:8, 5:12].all(), timeout=5000)
    qtbot.waitUntil(
        lambda: np.array_equal(
            dock.overlay.image[..., 3] > 0, histogram2d(x, y, mask=dock.highlight_mask(), **ranges).counts > 0
        ),
        timeout=5000,
    )
    assert errors() == []


def test_large_maps_are_computed_on_worker_threads(viewer, dock, maps, qtbot, errors):
    dock.sync_pixels = 10  # the small painting stands in for a map of millions of pixels
    _choose(dock, "Pb-L (roi)", "Cu-K (roi)")  # x, then y: two requests, the newest wins
    assert dock.computing
    qtbot.waitUntil(lambda: not dock.computing, timeout=20000)
    x, y = maps["Pb-L (roi)"], maps["Cu-K (roi)"]
    assert [lyr.name for lyr in dock._pair] == ["Pb-L (roi)", "Cu-K (roi)"]
    assert np.array_equal(dock.histogram.counts, histogram2d(x, y, bins=dock.histogram.counts.shape[0]).counts)
    _drag(
        dock,
        [
            (float(np.percentile(x, 30)), float(np.percentile(y, 30))),
            (float(np.percentile(x, 90)), float(np.percentile(y, 90))),
        ],
    )
    qtbot.waitUntil(lambda: "plot selection" in viewer.layers and not dock.computing, timeout=20000)
    kind, corners = dock.roi_region()
    expected = pixels_in_rectangle(x, y, corners[:, 0], corners[:, 1])
    assert expected.any() and np.array_equal(viewer.layers["plot selection"].data == 1, expected)
    assert errors() == []


def test_maps_of_two_grids_are_refused_in_one_line(viewer, dock, errors):
    viewer.add_image(np.ones((5, 7), np.float32), name="other grid")
    _choose(dock, "Pb-L (roi)", "other grid")
    assert dock.histogram is None
    assert len(errors()) == 1 and "choose maps of one grid" in errors()[0]
