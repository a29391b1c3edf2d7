"""Docks opened from the Plugins menu fit the screen and keep their main button reachable
(issue 26, item 5: stacked docks grew a 1600 x 1000 window to 1889 px, the Clusters Run
button below the screen), and the canvas is fitted again once a dock takes its room (item 11)."""

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

MAIN_BUTTON = {
    "Spectrum inspector": "sum_button",
    "Clusters": "run_button",
    "Elemental maps": "run_button",
    "Element probabilities": "run_button",
    "Training": "start_button",
    "Adapt to instrument": "adapt_button",
    "Diffraction": "run_button",
    "Classify image": "run_button",
    "Compare maps": "rgb_button",
    "Fit inspector": "region_button",
}


def plugin_menu_actions(viewer):
    """The xray-atlas actions of napari's Plugins menu, by their text."""
    bar = viewer.window._qt_window.menuBar()
    plugins = next(a.menu() for a in bar.actions() if a.text().replace("&", "") == "Plugins")
    ours = next(a.menu() for a in plugins.actions() if a.menu() is not None and a.text() == "xray-atlas")
    return {a.text(): a for a in ours.actions()}


def test_every_dock_from_the_plugins_menu_fits_a_full_hd_screen(make_napari_viewer, qtbot):
    screen = QApplication.primaryScreen().availableGeometry()
    if screen.width() < 1920 or screen.height() < 1080:
        pytest.skip(f"needs a 1920 x 1080 screen (the test display is {screen.width()} x {screen.height()})")
    viewer = make_napari_viewer(show=True)
    win = viewer.window._qt_window
    win.resize(1600, 1000)
    actions = plugin_menu_actions(viewer)
    assert set(MAIN_BUTTON) <= set(actions)
    for name in MAIN_BUTTON:  # as a user clicks them, one after the other: docks stack on the right
        actions[name].trigger()
        qtbot.wait(50)
    found = dict(viewer.window.dock_widgets)
    docks = {name: next(w for key, w in found.items() if key.startswith(name)) for name in MAIN_BUTTON}
    qtbot.waitUntil(lambda: all(d.isVisible() for d in docks.values()), timeout=10000)
    frame = win.frameGeometry()
    assert frame.height() <= 1080 and frame.width() <= 1920, (frame.width(), frame.height())
    assert screen.contains(win.geometry()), (win.geometry(), screen)
    for name, dock in docks.items():
        button = getattr(dock, MAIN_BUTTON[name])
        area = getattr(dock, "scroll_area", None)
        if area is not None:
            area.ensureWidgetVisible(button)
        qtbot.waitUntil(lambda b=button: not b.visibleRegion().isEmpty(), timeout=5000)
        # the whole button is on the screen
        top_left = button.mapToGlobal(button.rect().topLeft())
        bottom_right = button.mapToGlobal(button.rect().bottomRight())
        assert screen.contains(top_left) and screen.contains(bottom_right), (name, top_left, bottom_right)
        if area is not None:  # and not cut off by the dock's right edge (a 300 px dock clipped the inspector's)
            view = area.viewport()
            assert view.width() >= area.widget().minimumSizeHint().width(), (name, view.width())
            inside = [button.mapTo(view, p) for p in (button.rect().topLeft(), button.rect().bottomRight())]
            assert all(view.rect().contains(p) for p in inside), (name, inside, view.rect())


def test_opening_a_dock_refits_the_canvas(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    layer = viewer.add_image(np.random.default_rng(0).random((300, 1000)).astype(np.float32))
    viewer.reset_view()
    qtbot.wait(100)
    canvas = viewer.window._qt_viewer.canvas

    def painting_fits() -> bool:
        tr = canvas.layer_to_visual[layer].node.get_transform(map_from="visual", map_to="canvas")
        x0, _ = tr.map([0, 0])[:2]
        x1, _ = tr.map([1000, 0])[:2]
        width = canvas.native.width()
        return x0 >= -1 and x1 <= width + 1

    assert painting_fits()
    wide = canvas.native.width()
    viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Elemental maps")
    qtbot.waitUntil(lambda: canvas.native.width() < wide - 100, timeout=5000)
    # the dock narrows the canvas; the painting's right edge was cut off before the refit
    qtbot.waitUntil(painting_fits, timeout=5000)


def test_the_demo_s_tabbed_docks_are_not_cut_off_at_the_right(make_napari_viewer, qtbot):
    """The demo tabs three docks on the right; napari gave them 300 px and the inspector's form
    needs about 400, which cut "Region mean", "Set calibration" and "Sum & max spectra" in half
    (seen in a screenshot, not by the stacked-docks test above)."""
    from xray_atlas.napari._demo import build_demo_viewer

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    _, inspector = build_demo_viewer(viewer=viewer)
    qtbot.waitUntil(lambda: not inspector.jobs.busy, timeout=60000)
    area = inspector.scroll_area
    need = area.widget().minimumSizeHint().width()
    qtbot.waitUntil(lambda: area.viewport().width() >= need, timeout=5000)
    for button in (inspector.region_button, inspector.sum_button):
        right = button.mapTo(area.viewport(), button.rect().bottomRight())
        assert area.viewport().rect().contains(right), (button.text(), right, area.viewport().rect())
    assert viewer.window._qt_window.frameGeometry().width() <= 1920
