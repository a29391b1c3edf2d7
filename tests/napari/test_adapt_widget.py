"""The Adapt to instrument dock (issue 32): a folder of labelled radiographs in, the fitted
beam shown against the references, training in a child process with progress and Cancel, a
model the Classify image dock lists at once; bad folders refused in one notification."""

import numpy as np
from qtpy.QtCore import Qt

from xray_atlas.io.images import write_image
from xray_atlas.models.catalogue import list_models
from xray_atlas.physics.radiograph import ALLOYS, RadiographConfig, radiograph

#: A beam the shipped model was not trained on (it was: 50 kV behind 0.5 mm Al).
BEAM = RadiographConfig(kind="both", kv=42.0, filters=(("Al", 1.0),), size=96)


def _references(root, n_per_class=2):
    rng = np.random.default_rng(1)
    for label in ALLOYS:
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            r = radiograph(label, config=BEAM, kind=("plate", "wedge")[i % 2], rng=rng, output="uint16")
            write_image(root / label / f"{i}.tif", r.image)
    return root


def _idle(qtbot, dock, timeout=240000):
    qtbot.waitUntil(lambda: not dock.busy and dock.adapt_button.isEnabled(), timeout=timeout)


def test_adapt_fits_shows_trains_and_lists_the_model(plugin_dock, qtbot, errors, tmp_path):
    dock = plugin_dock("Adapt to instrument")
    dock.folder_edit.setText(str(_references(tmp_path / "refs")))
    dock.amount.setValue(200)
    dock.epochs.setValue(1)
    out = tmp_path / "adapted.safetensors"
    dock.out_edit.setText(str(out))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    assert not dock.adapt_button.isEnabled() and dock.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dock.plan is not None, timeout=120000)
    # the fit is shown: one point per reference image, beside the line of a perfect fit
    assert dock.fit_label.text().startswith("fitted beam: W ")
    assert "detector: ~" in dock.fit_label.text()  # 16-bit references: the noise is readable
    assert sum(len(c.getData()[0]) for c in dock.points.values()) == 4
    _idle(qtbot, dock)
    assert errors() == []
    assert dock.result is not None and out.is_file()
    assert "of your references right" in dock.status.text()
    assert out.resolve() in [i.path for i in list_models("images")]  # the Classify dock's list


def test_bad_folders_are_refused_and_the_dock_stays_usable(plugin_dock, qtbot, errors, tmp_path):
    dock = plugin_dock("Adapt to instrument")
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    assert any("choose the folder" in m for m in errors()) and dock.adapt_button.isEnabled()
    (tmp_path / "Al1050").mkdir()
    dock.folder_edit.setText(str(tmp_path))
    dock.out_edit.setText(str(tmp_path / "m.safetensors"))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    _idle(qtbot, dock, timeout=60000)
    assert any("found 1 class folder" in m for m in errors())
    assert not (tmp_path / "m.safetensors").exists() and dock.adapt_button.isEnabled()
    (tmp_path / "taken.safetensors").write_bytes(b"someone's file")
    dock.out_edit.setText(str(tmp_path / "taken.safetensors"))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    assert any("taken.safetensors" in m for m in errors())
    assert (tmp_path / "taken.safetensors").read_bytes() == b"someone's file"


def test_cancel_while_training_writes_nothing(plugin_dock, qtbot, errors, tmp_path):
    dock = plugin_dock("Adapt to instrument")
    dock.folder_edit.setText(str(_references(tmp_path / "refs")))
    dock.amount.setValue(4000)
    dock.epochs.setValue(30)
    dock.out_edit.setText(str(tmp_path / "never.safetensors"))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.job.busy, timeout=120000)
    qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    _idle(qtbot, dock)
    assert not (tmp_path / "never.safetensors").exists() and dock.result is None
    assert errors() == []


def test_the_element_model_is_adapted_to_a_scan_layer(plugin_dock, qtbot, errors, painting_file, tmp_path):
    """An XRF scan layer in: the instrument fitted to its sum spectrum and drawn over it with
    the residual, the base model fine-tuned in a child process, the model listed for the
    Element probabilities dock."""
    path, _ = painting_file
    dock = plugin_dock("Adapt to instrument")
    dock.viewer.open(str(path), plugin="napari-xray-atlas")
    dock.kind_combo.setCurrentText("element model (XRF scan)")
    assert dock.task == "elements" and dock.cube_combo.currentText() != ""
    assert dock.cube_combo.isVisibleTo(dock) and not dock.folder_box.isVisibleTo(dock)
    assert dock.base_combo.currentText() == "elements-default" and dock.residual.isVisibleTo(dock)
    dock.amount.setValue(1024)
    dock.epochs.setValue(1)
    out = tmp_path / "elements-adapted.safetensors"
    dock.out_edit.setText(str(out))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    # switching to radiographs mid-run would check an element model as a radiograph classifier
    assert not dock.kind_combo.isEnabled()
    qtbot.waitUntil(lambda: dock.plan is not None, timeout=240000)
    # the synthetic painting's scanner: an M6-like Rh tube at 50 kV with its optic
    assert dock.fit_label.text().startswith("fitted instrument: Rh tube at ")
    assert "degrees between beam and detector" in dock.fit_label.text()
    energy, fitted = dock.fitted_curve.getData()
    assert len(energy) > 100 and len(dock.residual_curve.getData()[0]) == len(energy)
    _idle(qtbot, dock, timeout=400000)
    assert errors() == []
    assert dock.result is not None and out.is_file() and dock.kind_combo.isEnabled()
    assert "Element probabilities dock" in dock.status.text()
    assert out.resolve() in [i.path for i in list_models("elements")]
    # back to radiographs: the folder row returns and the spectrum fit is cleared
    dock.kind_combo.setCurrentText("radiograph classifier")
    assert dock.folder_box.isVisibleTo(dock) and not dock.cube_combo.isVisibleTo(dock)
    assert len(dock.fitted_curve.getData()[0] if dock.fitted_curve.getData()[0] is not None else []) == 0


def test_a_scan_without_calibration_is_refused_in_one_notification(plugin_dock, errors, add_cube_layer, slow_cube):
    from xray_atlas import SpectralCube

    dock = plugin_dock("Adapt to instrument")
    dock.kind_combo.setCurrentText("element model (XRF scan)")
    dock.adapt()
    assert any("open an XRF scan first" in m for m in errors())
    raw = SpectralCube(np.ones((4, 4, 64), np.uint16), name="raw")
    add_cube_layer(dock.viewer, raw)
    dock.cube_combo.setCurrentText("raw")
    dock.adapt()
    assert any("no energy calibration" in m for m in errors()) and dock.adapt_button.isEnabled()


def test_cancel_during_the_instrument_fit_trains_nothing(plugin_dock, qtbot, errors, painting_file, tmp_path):
    path, _ = painting_file
    dock = plugin_dock("Adapt to instrument")
    dock.viewer.open(str(path), plugin="napari-xray-atlas")
    dock.kind_combo.setCurrentText("element model (XRF scan)")
    out = tmp_path / "never.safetensors"
    dock.out_edit.setText(str(out))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    assert dock.jobs.busy and dock.cancel_button.isEnabled()
    qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    # the fit checks Cancel after each candidate instrument (0.1-1 s each; the whole fit takes 10-60 s)
    qtbot.waitUntil(lambda: not dock.jobs.busy and dock.adapt_button.isEnabled(), timeout=15000)
    assert "cancelled during the instrument fit" in dock.status.text()
    assert dock.plan is None and not dock.job.busy and not out.exists() and dock.kind_combo.isEnabled()
    assert errors() == []


def test_the_map_model_is_adapted_to_a_scan_layer(plugin_dock, qtbot, errors, painting_file, tmp_path):
    """The map model: the instrument fitted to the scan layer's sum spectrum, maps-fit
    fine-tuned on paintings of it in a child process, the model listed in the Elemental maps
    dock at once; what the file states is said in the fit's label, not as a warning toast."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    path, _ = painting_file
    dock = plugin_dock("Adapt to instrument")
    maps_dock = plugin_dock("Elemental maps")
    dock.viewer.open(str(path), plugin="napari-xray-atlas")
    dock.kind_combo.setCurrentText("map model (XRF scan)")
    assert dock.task == "maps" and dock.cube_combo.isVisibleTo(dock)
    assert dock.form.labelForField(dock.amount).text() == "synthetic paintings" and dock.amount.value() == 60
    # only models on the per-cluster fit can take another instrument
    names = [dock.base_combo.itemText(i) for i in range(dock.base_combo.count())]
    assert dock.base_combo.currentText() == "maps-fit" and "maps-default" not in names
    dock.amount.setValue(4)
    dock.epochs.setValue(1)
    out = tmp_path / "maps-adapted.safetensors"
    dock.out_edit.setText(str(out))
    start = len(notification_manager.records)
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.plan is not None, timeout=240000)
    label = dock.fit_label.text()
    assert label.startswith("fitted instrument: Rh tube at ") and "from the file's metadata" in label
    assert "counts per pixel as in the scan" in label
    _idle(qtbot, dock, timeout=400000)
    assert errors() == []
    warnings = [n for n in notification_manager.records[start:] if n.severity == NotificationSeverity.WARNING]
    assert warnings == []
    text = dock.status.text()
    assert dock.result is not None and out.is_file() and "counts per pixel and line off the truth" in text
    # which the user is told to do depends on which model is nearer the truth
    better = dock.result.mae <= dock.result.base_mae
    assert ("Elemental maps dock" in text) == better and ("compare both on your scan" in text) == (not better)
    maps_dock.model_combo.refresh()
    listed = [maps_dock.model_combo.itemText(i) for i in range(maps_dock.model_combo.count())]
    assert any(out.stem in name for name in listed), listed


def test_cancel_while_the_map_model_is_checked_writes_nothing(plugin_dock, qtbot, errors, painting_file, tmp_path):
    # the check runs both models on two paintings (10-30 s); a Cancel there used to let it
    # finish and write the model the user had just said no to
    path, _ = painting_file
    dock = plugin_dock("Adapt to instrument")
    dock.viewer.open(str(path), plugin="napari-xray-atlas")
    dock.kind_combo.setCurrentText("map model (XRF scan)")
    dock.amount.setValue(4)
    dock.epochs.setValue(1)
    out = tmp_path / "never.safetensors"
    dock.out_edit.setText(str(out))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.plan is not None and dock.jobs.busy and not dock.job.busy, timeout=400000)
    qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    _idle(qtbot, dock, timeout=60000)
    assert "nothing was written" in dock.status.text()
    assert not out.exists() and dock.result is None and errors() == []
