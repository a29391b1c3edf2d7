"""napari tests run on a real Qt application: under an X virtual framebuffer when there is no
screen (napari's canvas needs OpenGL, which Qt's pure offscreen platform lacks)."""

from __future__ import annotations

import numpy as np
import pytest

from xray_atlas.napari._display import ensure_display

_MODE = ensure_display()  # before pytest-qt creates the QApplication


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """The demo painting is cached under XDG_CACHE_HOME: keep the tests' copy to themselves."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def viewer(make_napari_viewer):
    """A shown viewer with a fixed size, so that canvas clicks land where computed."""
    v = make_napari_viewer(show=True)
    v.window.resize(1200, 800)
    return v


@pytest.fixture
def inspector(viewer, qtbot):
    """The Spectrum inspector docked the way napari's Plugins menu docks it."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    return widget


def click_data_pixel(qtbot, viewer, layer, y: int, x: int, modifier=None) -> None:
    """A real left click on the canvas over data pixel (y, x) of ``layer``."""
    from qtpy.QtCore import QPoint, Qt

    qt_viewer = viewer.window._qt_viewer
    qt_viewer.canvas.native.setFocus()
    visual = qt_viewer.canvas.layer_to_visual[layer]
    tr = visual.node.get_transform(map_from="visual", map_to="canvas")
    cx, cy = tr.map([x + 0.5, y + 0.5])[:2]  # vispy orders (x, y); pixel i spans [i, i + 1]
    native = qt_viewer.canvas.native
    ratio = native.devicePixelRatioF() if hasattr(native, "devicePixelRatioF") else 1.0
    pos = QPoint(int(round(cx / ratio)), int(round(cy / ratio)))
    qtbot.mouseClick(native, Qt.MouseButton.LeftButton, modifier or Qt.KeyboardModifier.NoModifier, pos)


@pytest.fixture
def click():
    return click_data_pixel


@pytest.fixture
def errors():
    """Error notifications shown during the test."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    start = len(notification_manager.records)

    def collect() -> list[str]:
        return [str(n.message) for n in notification_manager.records[start:] if n.severity == NotificationSeverity.ERROR]

    return collect


@pytest.fixture(scope="session")
def small_painting():
    from xray_atlas.physics.painting import synthetic_painting

    return synthetic_painting(20, 24, seed=5)


@pytest.fixture
def painting_file(tmp_path, small_painting):
    path = tmp_path / "painting.h5"
    small_painting.write(path)
    return path, small_painting
