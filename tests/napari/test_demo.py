"""`xray-atlas demo --screenshot`: the main job, headless. It also makes the docs' screenshot."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_demo_viewer_has_plugin_docked_and_painting(qtbot):
    from xray_atlas.napari._demo import build_demo_viewer

    viewer, inspector = build_demo_viewer(show=False)
    try:
        assert "Synthetic painting counts" in viewer.layers
        assert inspector.cube is not None and inspector.pixel_yx is not None
        y, x = inspector.pixel_yx
        np.testing.assert_array_equal(inspector.view.pixel_curve.getData()[1], inspector.cube.pixel(y, x))
        assert len(inspector.marker_energies()) > 10
        qtbot.waitUntil(lambda: not inspector.jobs.busy, timeout=60000)  # the robe's mean spectrum
        mean = inspector.view.region_curve.getData()[1]
        regions = viewer.layers["pigment regions"]
        robe = regions.data == regions.metadata["xray_atlas"]["names"].index("vermilion robe")
        np.testing.assert_allclose(mean, np.asarray(inspector.cube.counts)[robe].mean(0))
        # the default map model is docked, ready, on the painting
        maps = next(w for w in viewer.window._dock_widgets.values() if w.widget().__class__.__name__ == "MapsWidget")
        assert maps.widget().model_combo.currentText() == "maps-fit"
        assert maps.widget().cube_combo.currentText() == "Synthetic painting counts"
        probs = next(
            w for w in viewer.window._dock_widgets.values() if w.widget().__class__.__name__ == "ProbabilitiesWidget"
        )
        assert probs.widget().model_combo.currentText() == "elements-default"
        assert probs.widget().cube_combo.currentText() == "Synthetic painting counts"
    finally:
        viewer.close()


def test_demo_screenshot_command(tmp_path):
    exe = shutil.which("xray-atlas") or str(Path(sys.executable).parent / "xray-atlas")
    out = tmp_path / "demo.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    res = subprocess.run([exe, "demo", "--screenshot", str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    # the painting is drawn on the canvas: the canvas region is not one flat colour
    assert img[100:-100, 350:800].std() > 10
    if os.environ.get("XRAY_ATLAS_DOCS_SCREENSHOTS"):
        shutil.copy(out, ROOT / "docs" / "images" / "getting-started.png")


def test_closing_the_viewer_mid_job_is_quiet(make_napari_viewer, qtbot, slow_cube, add_cube_layer):
    """A job still running when its dock goes away stops and touches no deleted widget."""
    viewer = make_napari_viewer()
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    add_cube_layer(viewer, slow_cube())
    inspector.tile_bytes = 8 * 64 * 2
    worker = inspector.compute_sum_spectra()
    qtbot.waitUntil(lambda: worker.is_running, timeout=5000)
    viewer.close()  # napari may already wait for the worker here
    qtbot.waitUntil(lambda: not worker.is_running, timeout=60000)
    assert worker.abort_requested  # closing stopped it part-way
    qtbot.wait(50)  # a late signal on a deleted widget would raise in the Qt event loop
