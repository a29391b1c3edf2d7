"""The Element probabilities dock (issue 6): a layer per element per pixel, region or cluster,
the writer saves them, a click lists a pixel's probabilities, cancel adds nothing, bad input."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from xray_atlas.io import read
from xray_atlas.io.results import read_results
from xray_atlas.probabilities import predict_probabilities


@pytest.fixture
def dock(plugin_dock):
    return plugin_dock("Element probabilities")


def test_pixel_probabilities_become_layers_and_a_click_lists_them(
    viewer, dock, inspector, qtbot, click, painting_file, tmp_path, errors, idle
):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    assert dock.model_combo.currentText() == "elements-default"
    dock.elements_edit.setText("Pb, Hg Fe")
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    assert errors() == []
    names = {lyr.name for lyr in viewer.layers}
    assert {"P(Pb)", "P(Hg)"} <= names
    layer = viewer.layers["P(Pb)"]
    assert layer.blending == "additive" and tuple(layer.contrast_limits) == (0.0, 1.0)
    with read(path) as cube:
        expected = predict_probabilities(cube, "elements-default", device="cpu", elements=("Pb",)).probabilities
    np.testing.assert_allclose(layer.data, expected["Pb"], atol=1e-5)
    assert "present in some pixels" in dock.summary.text()
    # a click shows the pixel's spectrum in the inspector and its probabilities here
    click(qtbot, viewer, layer, 5, 7)
    np.testing.assert_array_equal(inspector.view.pixel_curve.getData()[1], painting.counts[5, 7])
    text = dock.pixel_label.text()
    assert text.startswith("pixel y=5, x=7: present") and f"Pb {expected['Pb'][5, 7]:.2f}" in text
    # saved as /probabilities/<Symbol>
    from napari.plugins.io import save_layers

    out = tmp_path / "p.h5"
    save_layers(str(out), [layer, viewer.layers["P(Fe)"]], plugin="napari-xray-atlas")
    r = read_results(out)
    assert set(r["probabilities"]) == {"Pb", "Fe"}
    np.testing.assert_allclose(r["probabilities"]["Pb"], expected["Pb"], atol=1e-5)


def test_regions_and_clusters(viewer, dock, qtbot, painting_file, idle):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    dock.elements_edit.setText("Ca")
    dock.where_combo.setCurrentText("k x k region")
    dock.region_spin.setValue(4)
    dock.run()
    idle(qtbot, dock)
    reg = viewer.layers["P(Ca) 4x4"].data
    assert np.all(reg[:4, :4] == reg[0, 0]) and len(np.unique(reg)) > 1
    labels = np.zeros(painting.counts.shape[:2], np.int32)  # 0: unlabelled in napari
    labels[:, :12] = 1
    labels[:10, 12:] = 2
    viewer.add_labels(labels, name="my regions")
    dock.where_combo.setCurrentText("clusters")
    dock.labels_combo.setCurrentText("my regions")
    dock.run()
    idle(qtbot, dock)
    clu = viewer.layers["P(Ca) clusters"].data
    assert len(np.unique(clu[labels == 1])) == 1 and len(np.unique(clu[labels == 2])) == 1
    assert np.all(clu[labels == 0] == 0)


def test_cancel_adds_no_layer(viewer, dock, qtbot, slow_cube, add_cube_layer, idle):
    cube = slow_cube((60, 8, 1024), seconds_per_row=0.05)  # 0-41 keV
    add_cube_layer(viewer, cube)
    dock.tile_bytes = 8 * 1024 * 2  # one row per tile
    n = len(viewer.layers)
    worker = dock.run()
    qtbot.wait(600)
    assert worker is not None
    qtbot.mouseClick(dock.jobs.cancel_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    qtbot.wait(100)
    assert len(viewer.layers) == n and dock.jobs.status.text().endswith("cancelled")


def test_bad_input_notifies(viewer, dock, qtbot, painting_file, errors, slow_cube, add_cube_layer):
    dock.run()
    assert any("open a cube first" in m.lower() for m in errors())
    path, _ = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    dock.elements_edit.setText("Pb, U")
    assert dock.run() is None and any("U not among" in m for m in errors())
    dock.elements_edit.setText("")
    dock.where_combo.setCurrentText("clusters")
    assert dock.run() is None and any("no Labels layer" in m for m in errors())
    viewer.add_labels(np.zeros((3, 3), np.int32), name="wrong")
    dock.labels_combo.setCurrentText("wrong")
    assert dock.run() is None and any("is 3 x 3, the cube 20 x 24" in m for m in errors())
    short = slow_cube((4, 4, 64), seconds_per_row=0.0, name="short")  # ends at 2.5 keV
    layer = add_cube_layer(viewer, short)
    dock.cube_combo.setCurrentText(layer.name)
    dock.where_combo.setCurrentText("pixel")
    assert dock.run() is None and any("ends at 2.52 keV" in m for m in errors())


def test_notes_of_one_cube_do_not_follow_into_the_next(viewer, dock, qtbot, small_painting, add_cube_layer, idle):
    """The dock keeps its element model between runs; the notes a run reports are its own
    (issue 26, item 8: the cached model piled up notes across runs and cubes)."""
    from napari.utils.notifications import notification_manager

    from xray_atlas.cube import SpectralCube

    counts = np.asarray(small_painting.counts)[:6, :6]
    off, gain = small_painting.energy_offset_kev, small_painting.energy_gain_kev
    pairs = counts[:, :, : counts.shape[2] // 2 * 2].reshape(6, 6, -1, 2).sum(-1)  # twice the channel width
    coarse = add_cube_layer(viewer, SpectralCube(pairs, offset_kev=off, gain_kev=2 * gain, name="coarse"))
    native = add_cube_layer(viewer, SpectralCube(counts, offset_kev=off, gain_kev=gain, name="native"))
    dock.elements_edit.setText("Pb")
    runs = []
    for name in (coarse.name, native.name, native.name):
        dock.cube_combo.setCurrentText(name)
        assert dock.cube_combo.currentText() == name
        start = len(notification_manager.records)
        first = len(dock.jobs.lines)
        dock.run()
        idle(qtbot, dock)
        runs.append(([str(n.message) for n in notification_manager.records[start:]], dock.jobs.lines[first:]))
    (toast_coarse, log_coarse), (toast_native, log_native), (toast_again, _) = runs
    assert any("resampled" in line for line in log_coarse), log_coarse
    assert not any("resampled" in line for line in log_native), log_native
    assert len(toast_coarse) == len(toast_native) == len(toast_again) == 1
    assert "notes in Details" in toast_coarse[0] and "notes in Details" not in toast_again[0]


def test_a_pixels_probabilities_go_with_their_cube(viewer, dock, qtbot, small_painting, add_cube_layer):
    """Issue 26, item 8: the label kept the old cube's pixel after another cube was chosen or
    the cube removed."""
    from xray_atlas.cube import SpectralCube

    counts = np.asarray(small_painting.counts)[:4, :4]
    off, gain = small_painting.energy_offset_kev, small_painting.energy_gain_kev
    first = add_cube_layer(viewer, SpectralCube(counts, offset_kev=off, gain_kev=gain, name="first"))
    second = add_cube_layer(viewer, SpectralCube(counts[::-1], offset_kev=off, gain_kev=gain, name="second"))
    dock.cube_combo.setCurrentText(first.name)
    dock.show_pixel(1, 2)
    assert dock.pixel_label.text().startswith("pixel y=1, x=2")
    viewer.add_image(np.zeros((4, 4)), name="unrelated")  # another layer: the pixel stays
    assert dock.pixel_label.text().startswith("pixel y=1, x=2")
    dock.cube_combo.setCurrentText(second.name)
    assert not dock.pixel_label.text().startswith("pixel")
    dock.cube_combo.setCurrentText(first.name)
    dock.show_pixel(0, 0)
    viewer.layers.remove(first)
    assert not dock.pixel_label.text().startswith("pixel")
