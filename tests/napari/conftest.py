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


def wait_idle(qtbot, dock, timeout: int = 120000) -> None:
    """Wait until ``dock``'s job bar runs nothing. Wait on the state, not on a worker signal:
    ``finished`` may arrive while a Cancel click's events are processed, before a waitSignal
    would be listening."""
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=timeout)


@pytest.fixture
def idle():
    return wait_idle


@pytest.fixture
def plugin_dock(viewer):
    """Function that docks one of the plugin's widgets by display name and returns it."""

    def add(name: str):
        _, widget = viewer.window.add_plugin_dock_widget("napari-xray-atlas", name)
        return widget

    return add


@pytest.fixture
def errors():
    """Error notifications shown during the test."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    start = len(notification_manager.records)

    def collect() -> list[str]:
        return [
            str(n.message) for n in notification_manager.records[start:] if n.severity == NotificationSeverity.ERROR
        ]

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


def _slow_cube(shape=(100, 8, 64), *, seconds_per_row: float = 0.02, name: str = "slow", counts=None):
    """A SpectralCube on a dask array that takes ``seconds_per_row`` to read each row (a slow
    disk), so that cancellation between tiles can be observed. Chunks are one row."""
    import time

    import dask.array as da

    from xray_atlas import SpectralCube

    def slow(block):
        time.sleep(seconds_per_row)
        return block

    data = (
        da.ones(shape, dtype=np.uint16, chunks=(1,) + shape[1:])
        if counts is None
        else da.from_array(counts, chunks=(1,) + counts.shape[1:])
    )
    return SpectralCube(data.map_blocks(slow), offset_kev=0.0, gain_kev=0.04, name=name)


def _add_cube_layer(viewer, cube):
    """Show a cube as napari would after opening it (placeholder counts image)."""
    from xray_atlas.napari._layers import cube_layer_data

    data, kwargs, _ = cube_layer_data(cube, image=np.zeros(cube.shape[:2], np.float32), pending=True)[0]
    return viewer.add_image(data, **kwargs)


@pytest.fixture
def slow_cube():
    """Factory of slow lazy cubes; see :func:`_slow_cube`."""
    return _slow_cube


@pytest.fixture
def add_cube_layer():
    """Function that shows a cube as a counts layer; see :func:`_add_cube_layer`."""
    return _add_cube_layer
