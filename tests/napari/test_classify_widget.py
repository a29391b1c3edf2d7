"""The Classify image dock (issue 9): the sample radiographs are classified plane by plane with
the shipped model, probabilities listed, activation maps added over the image; a cancelled run
adds nothing; bad layers and models are refused with a notification."""

import numpy as np
import pytest
from qtpy.QtCore import Qt


@pytest.fixture
def dock(plugin_dock):
    return plugin_dock("Classify image")


def test_sample_radiographs_are_classified_with_maps(viewer, dock, qtbot, errors, idle):
    viewer.open_sample("napari-xray-atlas", "radiographs")
    sample = viewer.layers["Radiographs (Al 2017 plate, Al 1050 wedge)"]
    assert dock.image_combo.currentText() == sample.name and dock.model_combo.currentText() == "radiograph-default"
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    probs, classes = dock.result
    assert classes == ("Al1050", "Al2017") and probs.shape == (2, 2)
    # the simulator's truth (in the layer metadata): a 2017 plate, then a 1050 wedge
    assert [classes[k] for k in probs.argmax(1)] == ["Al2017", "Al1050"]
    assert dock.verdict.text().endswith("of 2 images") and dock.table.rowCount() == 2
    cam = viewer.layers[f"activation map {sample.name}"]
    assert cam.data.shape == sample.data.shape and cam.data.max() == pytest.approx(1)
    # a single 2-D image gets a single verdict and a 2-D map
    viewer.add_image(sample.data[0], name="plate")
    dock.image_combo.setCurrentText("plate")
    dock.run()
    idle(qtbot, dock)
    assert dock.verdict.text().startswith("Al2017 (p = ") and viewer.layers["activation map plate"].data.ndim == 2


def test_cancel_adds_nothing_and_bad_input_is_refused(viewer, dock, qtbot, errors, idle):
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((400, 96, 96)).astype(np.float32), name="many")
    n = len(viewer.layers)
    dock.image_combo.setCurrentText("many")
    worker = dock.run()
    assert worker is not None
    dock.jobs.cancel()
    idle(qtbot, dock)
    assert len(viewer.layers) == n and dock.result is None
    viewer.add_image(np.full((32, 32), np.nan), name="holes")
    dock.image_combo.setCurrentText("holes")
    assert dock.run() is None and any("NaN" in e for e in errors())
    viewer.add_image(np.ones((3, 3)), name="tiny")
    dock.image_combo.setCurrentText("tiny")
    assert dock.run() is None and any("4 x 4" in e for e in errors())
    dock.image_combo.setCurrentText("many")
    dock.model_combo.addItem("/nowhere/model")
    dock.model_combo.setCurrentText("/nowhere/model")
    assert dock.run() is None and any("neither a model file" in e for e in errors())
    assert len(viewer.layers) == n + 2


def test_micrographs_are_flagged_outside_the_radiograph_model(viewer, dock, qtbot, errors, idle):
    # issue 26 item 9: the radiograph model called 8 of 8 micrographs "Al1050 p=1.000"
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer.open_sample("napari-xray-atlas", "micrographs")
    dock.image_combo.setCurrentText("Micrographs (8 morphologies)")
    dock.cam_box.setChecked(False)
    start = len(notification_manager.records)
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    assert [c.inside for c in dock.domain] == [False] * 8
    text = dock.verdict.text()
    assert "8 of 8 images are outside what radiograph-default was trained on" in text
    column = [dock.table.item(r, 1).text() for r in range(8)]
    assert column == ["NO: outside"] * 8
    warnings = [
        str(n.message) for n in notification_manager.records[start:] if n.severity == NotificationSeverity.WARNING
    ]
    assert any("outside what radiograph-default" in w for w in warnings)
    # the radiograph sample, with the same dock, is inside
    viewer.open_sample("napari-xray-atlas", "radiographs")
    dock.image_combo.setCurrentText("Radiographs (Al 2017 plate, Al 1050 wedge)")
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert [c.inside for c in dock.domain] == [True, True] and "outside" not in dock.verdict.text()
    assert [dock.table.item(r, 1).text() for r in range(2)] == ["yes", "yes"]
