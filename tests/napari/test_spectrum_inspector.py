"""The Spectrum inspector dock against the cube's own numbers."""

import numpy as np
import pytest
import xraylib
from qtpy.QtCore import Qt

from xray_atlas.io import read


@pytest.fixture
def opened(viewer, inspector, painting_file):
    path, painting = painting_file
    layer = viewer.open(str(path), plugin="napari-xray-atlas")[0]
    viewer.layers.selection.active = layer
    return layer, painting


def test_shift_hover_follows_the_mouse(viewer, inspector, qtbot, opened):
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtGui import QEnterEvent, QMouseEvent
    from qtpy.QtWidgets import QApplication

    layer, painting = opened
    native = viewer.window._qt_viewer.canvas.native
    tr = viewer.window._qt_viewer.canvas.layer_to_visual[layer].node.get_transform("visual", "canvas")
    for y, x in [(3, 4), (12, 20)]:
        cx, cy = tr.map([x + 0.5, y + 0.5])[:2]
        pos = QPoint(int(round(cx)), int(round(cy)))
        qtbot.wait(20)  # vispy drops move events that come within 10 ms of the last one
        # the virtual screen's pointer is elsewhere: tell the canvas the mouse entered first
        QApplication.sendEvent(native, QEnterEvent(pos.toPointF(), pos.toPointF(), native.mapToGlobal(pos).toPointF()))
        event = QMouseEvent(QMouseEvent.Type.MouseMove, pos.toPointF(), native.mapToGlobal(pos).toPointF(),
                            Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.ShiftModifier)
        QApplication.sendEvent(native, event)
        qtbot.waitUntil(lambda: inspector.pixel_yx == (y, x), timeout=3000)
        np.testing.assert_array_equal(inspector.pixel_curve.getData()[1], painting.counts[y, x])


def test_pins_follow_the_points_layer(viewer, inspector, qtbot, click, opened):
    layer, painting = opened
    for y, x in [(2, 3), (15, 20)]:
        click(qtbot, viewer, layer, y, x)
        qtbot.waitUntil(lambda: inspector.pixel_yx == (y, x), timeout=3000)
        inspector.pin_button.click()
    pins = viewer.layers["pinned pixels"]
    assert pins.data.tolist() == [[2, 3], [15, 20]]
    got = inspector.pinned_spectra()
    np.testing.assert_array_equal(got[0], painting.counts[2, 3])
    np.testing.assert_array_equal(got[1], painting.counts[15, 20])
    pins.data = np.array([[7.0, 8.0]])  # the user moves/deletes points in napari
    np.testing.assert_array_equal(inspector.pinned_spectra()[0], painting.counts[7, 8])
    inspector.clear_pins_button.click()
    assert inspector.pinned_spectra() == []


def test_region_mean_and_std_from_shapes_and_labels(viewer, inspector, qtbot, opened, idle):
    layer, painting = opened
    shapes = viewer.add_shapes([np.array([[2, 2], [2, 9], [8, 9], [8, 2]])], shape_type="rectangle", name="roi")
    inspector.region_combo.setCurrentText("roi")
    mask = np.asarray(shapes.to_labels(labels_shape=(20, 24))) > 0
    assert inspector.compute_region() is not None
    idle(qtbot, inspector)  # a small region can finish before a waitSignal would listen
    sel = painting.counts[mask].astype(float)
    np.testing.assert_allclose(inspector.region_curve.getData()[1], sel.mean(0))
    np.testing.assert_allclose(inspector._std_hi.getData()[1], sel.mean(0) + sel.std(0), atol=1e-9)

    labels = np.zeros((20, 24), np.int32)
    labels[10:, 12:] = 3
    lab = viewer.add_labels(labels, name="areas")
    lab.selected_label = 3
    inspector.region_combo.setCurrentText("areas")
    assert inspector.compute_region() is not None
    idle(qtbot, inspector)  # a small region can finish before a waitSignal would listen
    np.testing.assert_allclose(inspector.region_curve.getData()[1], painting.counts[10:, 12:].reshape(-1, 4096).mean(0))


def test_region_errors_are_notified(viewer, inspector, opened, errors):
    viewer.add_shapes(name="empty")
    inspector.region_combo.setCurrentText("empty")
    assert inspector.compute_region() is None
    assert any("holds no shape" in m for m in errors())


def test_sum_and_max_spectra(viewer, inspector, qtbot, opened):
    _, painting = opened
    worker = inspector.compute_sum_spectra()
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    c = painting.counts.reshape(-1, 4096).astype(float)
    np.testing.assert_allclose(inspector.sum_curve.getData()[1], c.sum(0) / c.shape[0])
    np.testing.assert_array_equal(inspector.max_curve.getData()[1], c.max(0))


def test_window_map_paints_a_new_layer(viewer, inspector, qtbot, opened):
    _, painting = opened
    inspector.window_check.setChecked(True)
    inspector.window.setRegion((9.85, 10.15))  # around Hg La1 (9.989 keV)
    n = len(viewer.layers)
    worker = inspector.paint_window_map()
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    assert len(viewer.layers) == n + 1
    new = viewer.layers[-1]
    e = painting.energy
    sel = (e >= 9.85 - 1e-9) & (e <= 10.15 + 1e-9)
    np.testing.assert_array_equal(new.data, painting.counts[..., sel].sum(-1))
    assert new.metadata["xray_atlas"]["window"] == pytest.approx((9.85, 10.15))
    assert "9.85-10.15 keV" in new.name


def test_cancelled_job_adds_no_layer(viewer, inspector, qtbot, slow_cube, add_cube_layer):
    """Cancel mid-run: the job stops at the next tile and no half layer appears."""
    cube = slow_cube()
    add_cube_layer(viewer, cube)
    assert inspector.cube is cube
    inspector.tile_bytes = 8 * 64 * 2  # one row per tile
    inspector.window_check.setChecked(True)
    n = len(viewer.layers)
    worker = inspector.paint_window_map()
    worker.yielded.connect(lambda _: inspector.jobs.cancel_button.click())
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    assert worker.abort_requested
    assert len(viewer.layers) == n
    assert inspector.jobs.status.text().endswith("cancelled")
    assert not inspector.jobs.busy


def test_line_markers_are_xraylib_energies(inspector, opened):
    inspector.elements_edit.setText("Fe, pb")
    inspector.update_markers()
    energies = inspector.marker_energies()
    assert xraylib.LineEnergy(26, xraylib.KL3_LINE) in energies
    assert xraylib.LineEnergy(82, xraylib.L3M5_LINE) in energies
    assert all(e >= 1.0 for e in energies)  # Fe L (0.7 keV) is not marked
    inspector.family_checks["K"].setChecked(False)
    assert xraylib.LineEnergy(26, xraylib.KL3_LINE) not in inspector.marker_energies()


def test_line_labels_do_not_cover_each_other(inspector, opened, qtbot):
    # As Ka and Pb La lie 10 eV apart (xraylib: 10.544 and 10.551 keV), K Kb and Ca Ka 100 eV
    inspector.elements_edit.setText("K Ca Fe Cu Zn As Au Hg Pb")
    inspector.update_markers()

    def boxes():
        labels = [item for item in inspector._marker_items if hasattr(item, "textItem")]
        return labels, [item.sceneBoundingRect() for item in labels]

    for view in (None, (9.5, 12.0), (0.0, 40.0)):  # as opened, zoomed in on As / Pb, zoomed out
        if view is not None:
            inspector.plot.setXRange(*view, padding=0)
        qtbot.wait(10)
        labels, rects = boxes()
        assert {"As K\u03b11", "Pb L\u03b11", "K K\u03b11", "Ca K\u03b11"} <= {item.textItem.toPlainText() for item in labels}
        covered = [(labels[i].textItem.toPlainText(), labels[j].textItem.toPlainText())
                   for i in range(len(rects)) for j in range(i + 1, len(rects)) if rects[i].intersects(rects[j])]
        assert not covered, (view, covered)


def test_unknown_element_warns(inspector, opened):
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    inspector.elements_edit.setText("Fe Xq")
    inspector.update_markers()
    msgs = [str(n.message) for n in notification_manager.records[start:]]
    assert any("'Xq'" in m for m in msgs), msgs
    assert xraylib.LineEnergy(26, xraylib.KL3_LINE) in inspector.marker_energies()


def test_log_mode_and_theme(viewer, inspector, opened):
    inspector.log_check.setChecked(True)
    assert inspector.plot.getPlotItem().ctrl.logYCheck.isChecked()
    viewer.theme = "light"
    from napari.utils.theme import get_theme

    from qtpy.QtGui import QColor

    assert inspector.plot.backgroundBrush().color().name() == QColor(get_theme("light").canvas.as_hex()).name()


def test_uncalibrated_cube_plots_against_channels(viewer, inspector, qtbot, click, real_data):
    layer = viewer.open(str(real_data / "XRFSpectrum.mca"), plugin="napari-xray-atlas")[0]
    assert "channel" in inspector.plot.getAxis("bottom").labelText
    inspector.elements_edit.setText("Co")
    inspector.update_markers()
    assert inspector.marker_energies() == []  # no calibration, no markers
    click(qtbot, viewer, layer, 0, 0)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (0, 0), timeout=3000)
    with read(real_data / "XRFSpectrum.mca") as cube:
        np.testing.assert_array_equal(inspector.pixel_curve.getData()[0], np.arange(4096))


def test_calibration_set_in_the_inspector_reaches_the_docks(viewer, inspector, plugin_dock, qtbot, click, real_data,
                                                            errors, idle):
    from xray_atlas.napari._layers import cube_of

    path = real_data / "XRFSpectrum.mca"  # single column, no calibration
    before = path.read_bytes()
    layer = viewer.open(str(path), plugin="napari-xray-atlas")[0]
    assert inspector.offset_edit.text() == inspector.gain_edit.text() == ""
    click(qtbot, viewer, layer, 0, 0)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (0, 0), timeout=3000)
    # bad values are notified and change nothing
    inspector.offset_edit.setText("-0.492773")
    for gain, message in (("five", "not a number"), ("0", "gain must be > 0"), ("5", "implausible")):
        inspector.gain_edit.setText(gain)
        qtbot.mouseClick(inspector.calibrate_button, Qt.MouseButton.LeftButton)
        assert any(message in m for m in errors()), (gain, errors())
        assert not cube_of(layer).calibrated
    # the calibration documented with the file (PyMca XrfTest.cfg)
    inspector.gain_edit.setText("0.00502883")
    qtbot.mouseClick(inspector.calibrate_button, Qt.MouseButton.LeftButton)
    cube = cube_of(layer)
    assert cube.calibrated and cube.energy[0] == pytest.approx(-0.492773)
    assert cube.energy[1] - cube.energy[0] == pytest.approx(0.00502883)
    assert "keV" in inspector.plot.getAxis("bottom").labelText
    np.testing.assert_allclose(inspector.pixel_curve.getData()[0], cube.energy)  # the pixel is re-plotted
    inspector.elements_edit.setText("Cu")
    inspector.update_markers()
    assert inspector.marker_energies() and min(
        abs(e - xraylib.LineEnergy(29, xraylib.KL3_LINE)) for e in inspector.marker_energies()) < 1e-9
    # a dock run afterwards reads the calibrated cube: copper is in the standard's fit list
    dock = plugin_dock("Element probabilities")
    dock.elements_edit.setText("Cu")
    dock.run()
    idle(qtbot, dock)
    assert float(viewer.layers["P(Cu)"].data[0, 0]) > 0.9
    # or fitted to peaks read off the plot (the channels where this file's Cu Ka and Sr Ka stand)
    inspector.peaks_edit.setText("1696 Cu Ka")
    qtbot.mouseClick(inspector.peaks_button, Qt.MouseButton.LeftButton)
    assert any("give two or more" in m for m in errors()) and cube_of(layer) is cube
    inspector.peaks_edit.setText("1696 Cu Ka, 2912 Sr Ka")
    qtbot.mouseClick(inspector.peaks_button, Qt.MouseButton.LeftButton)
    fitted = cube_of(layer)
    assert fitted is not cube and fitted.energy[0] == pytest.approx(-0.492773, abs=0.03)
    assert fitted.energy[1] - fitted.energy[0] == pytest.approx(0.00502883, rel=5e-3)
    assert float(inspector.offset_edit.text()) == pytest.approx(fitted.energy[0])
    assert path.read_bytes() == before
