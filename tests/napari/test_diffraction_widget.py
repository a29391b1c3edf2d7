"""The Diffraction dock (issue 8): sample image -> encoding matrix, lattice, re-simulated image and
residual layers; preparation stages as layers; cancel adds nothing; bad input is refused."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from xray_atlas.physics.lattice import correlations


@pytest.fixture
def dock(plugin_dock):
    return plugin_dock("Diffraction")


def test_sample_image_is_reconstructed_into_layers(viewer, dock, qtbot, errors, idle):
    viewer.open_sample("napari-xray-atlas", "diffraction-image")
    sample = viewer.layers["Diffraction image (span 3)"]
    assert dock.image_combo.currentText() == sample.name
    dock.span_combo.setCurrentText("3")
    assert dock.model_combo.currentText() == "diffraction-span3"  # the shipped model follows the span
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    rec = dock.result
    names = {lyr.name for lyr in viewer.layers}
    tag = "(diffraction-span3, span 3)"
    assert {f"lattice {tag}", f"re-simulated {tag}", f"residual {tag}"} <= names
    # delivered one layer per turns of the event loop, listed top-down as before, all visible
    top = [lyr.name for lyr in reversed(viewer.layers)][:3]
    assert top == [f"residual {tag}", f"re-simulated {tag}", f"lattice {tag}"]
    assert all(lyr.visible for lyr in viewer.layers)
    residual = viewer.layers[f"residual {tag}"]
    assert residual.contrast_limits[0] == -residual.contrast_limits[1] > -np.inf
    np.testing.assert_allclose(residual.scale, sample.scale)
    lattice = viewer.layers[f"lattice {tag}"].data
    np.testing.assert_allclose(correlations(lattice, 3), rec.measured, atol=1e-6)
    assert viewer.layers[f"re-simulated {tag}"].data.shape == sample.data.shape
    # the network reads the sample's encoding (stored in its metadata by the simulator)
    truth = np.asarray(sample.metadata["encoding"])
    assert np.abs(rec.encoding - truth).max() < 0.1
    # the matrix plot shows a(0,0) = 1 and the encoding in [dy, dx] order
    m = dock.matrix_item.image
    assert m.shape == (3, 3) and m[0, 0] == 1
    np.testing.assert_allclose(m.ravel()[1:], rec.encoding, rtol=1e-6)
    assert "image R^2" in dock.summary.text()


def test_preparation_steps_show_as_layers_and_analytic_runs(viewer, dock, qtbot, errors, idle):
    from xray_atlas.diffraction import degrade

    viewer.open_sample("napari-xray-atlas", "diffraction-image")
    img = viewer.layers["Diffraction image (span 3)"].data
    viewer.add_image(degrade(img, 0, counts=1000.0, log=True, beam_stop=2), name="recorded")
    dock.image_combo.setCurrentText("recorded")
    dock.span_combo.setCurrentText("3")
    dock.model_combo.setCurrentText("analytic")
    dock.unlog_box.setChecked(True)
    dock.inpaint_box.setChecked(True)
    dock.steps_box.setChecked(True)
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    assert {"recorded unlog", "recorded inpaint"} <= {lyr.name for lyr in viewer.layers}
    assert viewer.layers["recorded inpaint"].data[48 // 2, 48 // 2] > 0  # the beam stop is filled


def test_cancel_adds_nothing_and_bad_input_is_refused(viewer, dock, qtbot, errors, idle):
    viewer.open_sample("napari-xray-atlas", "diffraction-image")
    dock.model_combo.setCurrentText("analytic")
    n = len(viewer.layers)
    dock.lattice_size = 1024  # slow enough to cancel mid-run
    worker = dock.run()
    assert worker is not None
    dock.jobs.cancel()
    idle(qtbot, dock)
    assert len(viewer.layers) == n and dock.result is None
    dock.lattice_size = None
    viewer.add_image(np.ones((20, 30)), name="not square")
    dock.image_combo.setCurrentText("not square")
    assert dock.run() is None
    assert any("square" in e for e in errors())
    # a model trained for another span is refused before any work
    viewer.layers.selection.clear()
    dock.image_combo.setCurrentText("Diffraction image (span 3)")
    dock.span_combo.setCurrentText("4")
    dock.model_combo.setCurrentText("diffraction-span2")
    assert dock.run() is None
    assert any("trained for span 2" in e for e in errors())
    assert len(viewer.layers) == n + 1


def test_load_image_file_sets_the_span_from_its_metadata(viewer, dock, tmp_path, errors):
    import h5py

    from xray_atlas.physics.lattice import diffraction_image, random_couplings, simulate_lattices

    made = simulate_lattices(span=4, couplings=random_couplings(4, 1, 2), size=32, sweeps=40, rng=3)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=diffraction_image(made.lattices[0], lot=16, n_lots=8, rng=4)).attrs["span"] = 4
    layer = dock.load(str(path))
    assert layer is not None and layer.name == "scan" and layer.data.shape == (16, 16)
    assert dock.span_combo.currentText() == "4" and dock.image_combo.currentText() == "scan"
    assert dock.model_combo.currentText() == "diffraction-span4"
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    n = len(viewer.layers)
    assert dock.load(str(tmp_path / "bad.h5")) is None and len(viewer.layers) == n
    assert any("bad.h5" in e for e in errors())


def test_span_comes_from_the_layer_metadata(viewer, dock, qtbot, errors, idle):
    # issue 26 item 7: the span-3 sample ran at span 2 and gave 3 values instead of 8
    viewer.open_sample("napari-xray-atlas", "diffraction-image")
    assert dock.span_combo.currentText() == "3" and dock.model_combo.currentText() == "diffraction-span3"
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    assert dock.result.span == 3 and len(dock.result.encoding) == 8
    # a layer without a span keeps the user's choice; a bad span is reported, not applied
    viewer.add_image(np.ones((32, 32)), name="plain")
    dock.span_combo.setCurrentText("4")
    dock.image_combo.setCurrentText("plain")
    assert dock.span_combo.currentText() == "4"
    viewer.add_image(np.ones((32, 32)), name="odd", metadata={"xray_atlas": {"span": 7}})
    dock.image_combo.setCurrentText("odd")
    assert dock.span_combo.currentText() == "4"
    viewer.add_image(np.ones((32, 32)), name="two", metadata={"xray_atlas": {"span": 2}})
    dock.image_combo.setCurrentText("two")
    assert dock.span_combo.currentText() == "2"


def _label_rects(dock):
    view = dock.matrix.getPlotItem().getViewBox()
    return [lbl.mapRectToScene(lbl.boundingRect()) for lbl in dock._labels], view


@pytest.mark.parametrize("span", [3, 4])
def test_encoding_values_do_not_overlap(viewer, dock, qtbot, span):
    # issue 26 item 7: the 9 values of a span-3 matrix were drawn over each other
    rng = np.random.default_rng(span)
    dock.show_encoding(rng.uniform(-0.9, 0.9, span * span - 1), span)

    def readable() -> bool:
        rects, view = _label_rects(dock)
        box = view.sceneBoundingRect()
        inside = all(box.contains(r) for r in rects)  # every value inside the plot, none cut off
        return inside and all(not a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1 :])

    qtbot.waitUntil(readable, timeout=5000)
    assert len(dock._labels) == span * span
    assert dock.matrix.height() >= 64 * span


def test_hdf5_image_opened_with_file_open_brings_its_span(viewer, dock, tmp_path):
    import h5py

    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=np.random.default_rng(0).random((24, 24))).attrs["span"] = 4
    (layer,) = viewer.open(str(path), plugin="napari-xray-atlas")
    assert layer.name == "scan" and layer.metadata["xray_atlas"]["span"] == 4
    assert dock.image_combo.currentText() == "scan" and dock.span_combo.currentText() == "4"
    assert dock.model_combo.currentText() == "diffraction-span4"


def test_a_diffraction_image_opened_later_becomes_the_choice(viewer, dock):
    # with maps and other 2-D images open, the span-3 sample ran at the span of whatever image
    # the list kept (seen in the GUI walk of issue 26)
    viewer.add_image(np.ones((32, 32)), name="a map")
    viewer.add_image(np.ones((32, 32)), name="another map")
    viewer.open_sample("napari-xray-atlas", "diffraction-image")
    assert dock.image_combo.currentText() == "Diffraction image (span 3)"
    assert dock.span_combo.currentText() == "3"
    viewer.add_image(np.ones((32, 32)), name="a later map")  # no span: the choice stays
    assert dock.image_combo.currentText() == "Diffraction image (span 3)"
