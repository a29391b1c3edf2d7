"""Screenshots for docs/ made by the suite (written into docs/images with
XRAY_ATLAS_DOCS_SCREENSHOTS=1, else into a temporary folder)."""

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _out(tmp_path, name):
    return ROOT / "docs" / "images" / name if os.environ.get("XRAY_ATLAS_DOCS_SCREENSHOTS") else tmp_path / name


def test_clustered_painting_screenshot(viewer, qtbot, tmp_path):
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1500, 900)
    viewer.open(str(ensure_demo_painting()), plugin="napari-xray-atlas")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    _, clusters = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Clusters")
    clusters.method_combo.setCurrentText("umap-hdbscan")
    worker = clusters.run()
    with qtbot.waitSignal(worker.finished, timeout=120000):
        pass
    layer = viewer.layers["clusters (umap-hdbscan)"]
    inspector.log_check.setChecked(True)
    assert len(inspector.cluster_spectra_shown()) == len(layer.metadata["xray_atlas"]["sizes"]) >= 5
    qtbot.wait(200)
    out = _out(tmp_path, "clusters.png")
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.std() > 20


def test_training_run_screenshot(viewer, qtbot, tmp_path):
    """A maps run in progress in the Training dock (docs/training.md)."""
    from xray_atlas.training import EpochEnd

    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1500, 1000)
    viewer.open(str(ensure_demo_painting()), plugin="napari-xray-atlas")
    _, training = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Training")
    training.task_combo.setCurrentText("maps")
    for k, v in {"n_train": 2048, "n_val": 256, "n_channels": 2048, "gain_kev": 0.01}.items():
        training.source_form.set_value(k, v)
    training.epochs.setValue(40)
    training.device_combo.setCurrentText("cpu")
    worker = training.start()
    seen = []
    worker.yielded.connect(seen.append)
    qtbot.waitUntil(lambda: sum(isinstance(e, EpochEnd) for e in seen) >= 6, timeout=120000)
    qtbot.wait(300)
    out = _out(tmp_path, "training.png")
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    training.cancel()
    qtbot.waitUntil(lambda: not training.busy, timeout=30000)
    assert training.status.text().startswith("cancelled")
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.std() > 10
