"""A conservator's walk through the whole plugin, with real clicks (issue 26).

One napari window, as ``xray-atlas demo`` opens it: every dock opened from the Plugins menu,
pixels clicked, log counts ticked, a window map painted, maps, probabilities and both
clusterings run, one small training epoch and a cancelled second run, the diffraction and
classify docks on the sample data. At each step: no error notification, the window on the
screen, the canvas not washed out, the log axis sane, the right span. With
XRAY_ATLAS_DOCS_SCREENSHOTS=1 it writes a screenshot of each dock after its run into
docs/images/walk-*.png (``bash tools/screenshots.sh``).
"""

import os
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from .test_dock_layout import plugin_menu_actions
from .test_training_widget import _small_maps as small_maps_run

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "napari-xray-atlas"
#: A canvas pixel is near-white when all its channels are above this (0-255).
NEAR_WHITE = 230


def _canvas_white_share(viewer) -> float:
    rgb = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3]
    return float((rgb > NEAR_WHITE).all(-1).mean())


def _dock(viewer, name):
    return next(w for key, w in dict(viewer.window.dock_widgets).items() if key.startswith(name))


def _show(viewer, qtbot, name):
    """Bring a (tabbed) dock to the front, as a click on its tab would."""
    widget = _dock(viewer, name)
    widget.parent().raise_()  # napari's dock wrapper (a QDockWidget)
    qtbot.wait(50)
    return widget


def _shot(viewer, qtbot, tmp_path, name):
    qtbot.wait(150)
    folder = ROOT / "docs" / "images" if os.environ.get("XRAY_ATLAS_DOCS_SCREENSHOTS") else tmp_path
    out = folder / f"walk-{name}.png"
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    return out


def _on_screen(viewer) -> None:
    screen = QApplication.primaryScreen().availableGeometry()
    frame = viewer.window._qt_window.frameGeometry()
    assert frame.height() <= screen.height() and frame.width() <= screen.width(), (frame, screen)


@pytest.mark.slow
def test_walk_through_every_dock(make_napari_viewer, qtbot, tmp_path, click, errors, idle):
    from xray_atlas.napari._demo import build_demo_viewer

    viewer, inspector = build_demo_viewer(viewer=make_napari_viewer(show=True))
    _walk(viewer, inspector, qtbot, tmp_path, click, errors, idle)


def _walk(viewer, inspector, qtbot, tmp_path, click, errors, idle):
    win = viewer.window._qt_window
    win.resize(1600, 1000)
    qtbot.waitUntil(lambda: not inspector.jobs.busy, timeout=120000)  # the robe's mean spectrum

    # -- every dock from the Plugins menu ---------------------------------------------------
    actions = plugin_menu_actions(viewer)
    for name in (
        "Clusters",
        "Training",
        "Diffraction",
        "Classify image",
        "Spectrum inspector",
        "Elemental maps",
        "Element probabilities",
    ):
        actions[name].trigger()
        qtbot.wait(30)
    _on_screen(viewer)
    assert errors() == []

    # -- pixels, log counts ----------------------------------------------------------------
    cube_layer = viewer.layers["Synthetic painting counts"]
    for y, x in ((20, 30), (60, 80)):
        click(qtbot, viewer, cube_layer, y, x)
        assert inspector.pixel_yx == (y, x)
    shown = [np.asarray(inspector.cube.pixel(60, 80), float)]
    if inspector.view.region_curve.yData is not None:  # the robe's mean, from the demo
        shown.append(np.asarray(inspector.view.region_curve.yData, float))
    qtbot.mouseClick(inspector.log_check, Qt.MouseButton.LeftButton)
    assert inspector.log_check.isChecked()
    lo, hi = inspector.plot.getViewBox().viewRange()[1]  # log10 units in log mode
    values = np.concatenate(shown)
    low, high = np.log10(values[values > 0].min()), np.log10(values.max())
    # just below the smallest positive count, just above the largest (was 10^-17..10^16)
    assert low - 0.5 <= lo <= low and high <= hi <= high + 0.5, (lo, hi, low, high)
    qtbot.mouseClick(inspector.log_check, Qt.MouseButton.LeftButton)
    assert not inspector.log_check.isChecked()

    # -- an energy-window map ----------------------------------------------------------------
    n = len(viewer.layers)
    qtbot.mouseClick(inspector.window_check, Qt.MouseButton.LeftButton)
    inspector.view.window.setRegion((9.9, 10.8))  # Pb La, Hg La
    qtbot.mouseClick(inspector.window_button, Qt.MouseButton.LeftButton)
    idle(qtbot, inspector)
    assert len(viewer.layers) == n + 1 and errors() == []
    assert _canvas_white_share(viewer) < 0.05

    # -- maps, probabilities, clusterings: a readable canvas after each -----------------------
    for name, button, kind in (
        ("Elemental maps", "run_button", "map"),
        ("Element probabilities", "run_button", "probability"),
    ):
        dock = _show(viewer, qtbot, name)
        qtbot.mouseClick(getattr(dock, button), Qt.MouseButton.LeftButton)
        idle(qtbot, dock)
        assert errors() == []
        shown = [lyr for lyr in viewer.layers if lyr.visible and lyr.metadata.get("xray_atlas", {}).get("kind") == kind]
        assert 1 <= len(shown) <= 3
        white = _canvas_white_share(viewer)
        assert white < 0.05, f"{name}: {white:.0%} of the canvas is near-white"
        _shot(viewer, qtbot, tmp_path, name.split()[-1].lower())
        _on_screen(viewer)

    clusters = _show(viewer, qtbot, "Clusters")
    for method in ("umap-hdbscan", "som"):
        clusters.method_combo.setCurrentText(method)
        qtbot.mouseClick(clusters.run_button, Qt.MouseButton.LeftButton)
        idle(qtbot, clusters)
        assert errors() == []
        layer = viewer.layers[f"clusters ({method})"]
        assert layer.visible and len(np.unique(layer.data)) >= 3
        assert _canvas_white_share(viewer) < 0.05
    _shot(viewer, qtbot, tmp_path, "clusters")

    # -- one small training epoch, then a second run cancelled ---------------------------------
    training = _show(viewer, qtbot, "Training")
    small_maps_run(training, epochs=1)
    training.out_edit.setText(str(tmp_path / "walk-model"))
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not training.busy, timeout=300000)
    assert errors() == [] and training.history, training.status.text()
    _shot(viewer, qtbot, tmp_path, "training")
    training.epochs.setValue(50)
    training.out_edit.setText(str(tmp_path / "walk-model-2"))
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: training.cancel_button.isEnabled(), timeout=60000)
    qtbot.mouseClick(training.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not training.busy, timeout=120000)
    assert errors() == [] and training.start_button.isEnabled()

    # -- diffraction and classify on the sample data -------------------------------------------
    for layer in viewer.layers:  # the painting's layers out of the way, as the user would
        layer.visible = False
    viewer.open_sample(PLUGIN, "diffraction-image")
    diffraction = _show(viewer, qtbot, "Diffraction")  # the image just opened is its choice
    assert diffraction.span_combo.currentText() == "3"
    qtbot.mouseClick(diffraction.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, diffraction)
    assert errors() == [] and diffraction.result.span == 3 and len(diffraction.result.encoding) == 8
    _shot(viewer, qtbot, tmp_path, "diffraction")

    layers = viewer.open_sample(PLUGIN, "radiographs")
    classify = _show(viewer, qtbot, "Classify image")
    classify.image_combo.setCurrentText(layers[0].name)  # as the user picks it
    for layer in viewer.layers:
        layer.visible = layer in layers
    qtbot.mouseClick(classify.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, classify)
    assert errors() == [] and classify.table.rowCount() >= 2
    assert all(c.inside for c in classify.domain)
    _shot(viewer, qtbot, tmp_path, "classify")
    _on_screen(viewer)
