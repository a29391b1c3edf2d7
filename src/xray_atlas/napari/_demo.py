"""`xray-atlas demo`: napari with the plugin docked and the synthetic painting loaded."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import XrayAtlasError

__all__ = ["run_demo", "build_demo_viewer"]

PLUGIN = "napari-xray-atlas"
DEMO_ELEMENTS = "Pb Hg Cu Fe Au Ca"


def build_demo_viewer(*, show: bool = True, viewer=None):
    """A viewer with the demo painting, the spectrum inspector docked and one pixel shown, and
    the Elemental maps and Element probabilities docks (the shipped models selected) in tabs
    beside it. With ``viewer`` (e.g. pytest's ``make_napari_viewer()``) the demo is set up in
    that one instead of a new one."""
    import napari

    from ._sample_data import ensure_demo_painting

    ensure_demo_painting()  # simulate (once, cached) before any window exists
    if viewer is None:
        viewer = napari.Viewer(title="xray-atlas demo", show=show)
    viewer.open_sample(PLUGIN, "painting")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Elemental maps")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Element probabilities", tabify=True)
    _, inspector = viewer.window.add_plugin_dock_widget(PLUGIN, "Spectrum inspector", tabify=True)
    cube = inspector.cube
    if inspector.cube_layer is not None:
        viewer.layers.selection.active = inspector.cube_layer
    inspector.elements_edit.setText(DEMO_ELEMENTS)
    inspector.update_markers()
    if cube is not None:
        inspector.show_pixel(int(cube.height * 0.62), cube.width // 2)  # the vermilion robe
    if "pigment regions" in viewer.layers:
        regions = viewer.layers["pigment regions"]
        names = regions.metadata["xray_atlas"]["names"]
        regions.selected_label = names.index("vermilion robe")
        inspector.region_combo.setCurrentText("pigment regions")
        inspector.compute_region()  # mean +/- std of the robe, on a worker
    return viewer, inspector


def run_demo(*, screenshot: str | os.PathLike | None = None) -> None:
    """Open the demo; with ``screenshot`` run headless, save a PNG of the window and quit."""
    if screenshot is not None:
        out = Path(screenshot)
        if out.suffix.lower() != ".png":
            raise XrayAtlasError("the screenshot must be a .png file", path=out)
        if not out.parent.resolve().is_dir():
            raise XrayAtlasError("the screenshot's folder does not exist", path=out)
        from ._display import ensure_display

        ensure_display()
    elif (
        os.name == "posix"
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        and os.uname().sysname == "Linux"
    ):
        raise XrayAtlasError(
            "no display to open napari on; run `xray-atlas demo --screenshot out.png` for a headless run"
        )
    import napari
    from qtpy.QtWidgets import QApplication

    viewer, inspector = build_demo_viewer(show=True)
    if screenshot is None:
        napari.run()
        return
    viewer.window.resize(1500, 900)
    while inspector.jobs.busy:  # let the region spectrum finish before the picture
        QApplication.processEvents()
    for _ in range(5):
        QApplication.processEvents()
    viewer.screenshot(str(screenshot), canvas_only=False, flash=False)
    viewer.close()
    print(f"wrote {screenshot}")
