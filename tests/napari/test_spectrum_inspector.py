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
        event = QMouseEvent(
            QMouseEvent.Type.MouseMove,
            pos.toPointF(),
            native.mapToGlobal(pos).toPointF(),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.ShiftModifier,
        )
        QApplication.sendEvent(native, event)
        qtbot.waitUntil(lambda y=y, x=x: inspector.pixel_yx == (y, x), timeout=3000)
        np.testing.assert_array_equal(inspector.view.pixel_curve.getData()[1], painting.counts[y, x])


def test_pins_follow_the_points_layer(viewer, inspector, qtbot, click, opened):
    layer, painting = opened
    for y, x in [(2, 3), (15, 20)]:
        click(qtbot, viewer, layer, y, x)
        qtbot.waitUntil(lambda y=y, x=x: inspector.pixel_yx == (y, x), timeout=3000)
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


def on_cube_grid(viewer):
    """What napari's "new shapes" button gives a layer drawn over the selected cube: its grid."""
    base = viewer.layers[0]
    return {"scale": base.scale, "units": base.units}


def test_region_mean_and_std_from_shapes_and_labels(viewer, inspector, qtbot, opened, idle):
    layer, painting = opened
    shapes = viewer.add_shapes(
        [np.array([[2, 2], [2, 9], [8, 9], [8, 2]])], shape_type="rectangle", name="roi", **on_cube_grid(viewer)
    )
    inspector.region_combo.setCurrentText("roi")
    mask = np.asarray(shapes.to_labels(labels_shape=(20, 24))) > 0
    assert inspector.compute_region() is not None
    idle(qtbot, inspector)  # a small region can finish before a waitSignal would listen
    sel = painting.counts[mask].astype(float)
    np.testing.assert_allclose(inspector.view.region_curve.getData()[1], sel.mean(0))
    np.testing.assert_allclose(inspector.view._std_hi.getData()[1], sel.mean(0) + sel.std(0), atol=1e-9)

    labels = np.zeros((20, 24), np.int32)
    labels[10:, 12:] = 3
    lab = viewer.add_labels(labels, name="areas")
    lab.selected_label = 3
    inspector.region_combo.setCurrentText("areas")
    assert inspector.compute_region() is not None
    idle(qtbot, inspector)  # a small region can finish before a waitSignal would listen
    np.testing.assert_allclose(
        inspector.view.region_curve.getData()[1], painting.counts[10:, 12:].reshape(-1, 4096).mean(0)
    )


def test_region_errors_are_notified(viewer, inspector, opened, errors):
    viewer.add_shapes(name="empty")
    inspector.region_combo.setCurrentText("empty")
    assert inspector.compute_region() is None
    assert any("holds no shape" in m for m in errors())


def test_sum_and_max_spectra(viewer, inspector, qtbot, opened, idle):
    _, painting = opened
    assert inspector.compute_sum_spectra() is not None
    idle(qtbot, inspector)  # a tiny cube can finish before a waitSignal would listen
    c = painting.counts.reshape(-1, 4096).astype(float)
    np.testing.assert_allclose(inspector.view.sum_curve.getData()[1], c.sum(0) / c.shape[0])
    np.testing.assert_array_equal(inspector.view.max_curve.getData()[1], c.max(0))


def test_window_map_paints_a_new_layer(viewer, inspector, qtbot, opened, idle):
    _, painting = opened
    inspector.window_check.setChecked(True)
    inspector.view.window.setRegion((9.85, 10.15))  # around Hg La1 (9.989 keV)
    n = len(viewer.layers)
    assert inspector.paint_window_map() is not None
    idle(qtbot, inspector)  # a tiny cube can finish before a waitSignal would listen
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


def assert_log_range_fits(inspector, *spectra):
    """In log mode the count axis (log10 units in pyqtgraph) runs from just below the
    smallest positive count of ``spectra`` to just above their maximum."""
    values = np.concatenate([np.ravel(s) for s in spectra]).astype(float)
    lo, hi = inspector.plot.getViewBox().viewRange()[1]
    smallest, largest = np.log10(values[values > 0].min()), np.log10(values.max())
    assert smallest - 0.5 < lo < smallest, (lo, smallest)
    assert largest < hi < largest + 0.5, (hi, largest)


def test_log_counts_fit_every_spectrum(viewer, inspector, qtbot, click, opened, idle):
    """pyqtgraph's log mode turned auto-range back on: the axis spanned 10^-17..10^16."""
    layer, painting = opened
    counts = painting.counts.astype(float)
    click(qtbot, viewer, layer, 2, 3)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (2, 3), timeout=3000)
    inspector.elements_edit.setText("Fe Pb")  # markers must not widen the axis
    inspector.update_markers()
    qtbot.mouseClick(inspector.log_check, Qt.MouseButton.LeftButton)
    assert inspector.log_check.isChecked()
    assert_log_range_fits(inspector, counts[2, 3])  # pixel
    qtbot.mouseClick(inspector.pin_button, Qt.MouseButton.LeftButton)
    click(qtbot, viewer, layer, 15, 20)  # switching spectra
    qtbot.waitUntil(lambda: inspector.pixel_yx == (15, 20), timeout=3000)
    assert_log_range_fits(inspector, counts[15, 20], counts[2, 3])  # pixel and pin
    viewer.layers["pinned pixels"].data = np.array([[10.0, 12.0]])
    viewer.layers.selection.active = layer
    assert_log_range_fits(inspector, counts[15, 20], counts[10, 12])  # the pin moved
    qtbot.mouseClick(inspector.clear_pins_button, Qt.MouseButton.LeftButton)
    assert_log_range_fits(inspector, counts[15, 20])
    viewer.add_shapes(
        [np.array([[2, 2], [2, 9], [8, 9], [8, 2]])], shape_type="rectangle", name="roi", **on_cube_grid(viewer)
    )
    viewer.layers.selection.active = layer
    inspector.region_combo.setCurrentText("roi")
    qtbot.mouseClick(inspector.region_button, Qt.MouseButton.LeftButton)
    idle(qtbot, inspector)
    region = counts[2:9, 2:10].reshape(-1, counts.shape[-1])  # the rectangle's pixels
    mean, std = region.mean(0), region.std(0)
    np.testing.assert_allclose(inspector.view.region_curve.yData, mean)
    assert_log_range_fits(inspector, counts[15, 20], mean, mean + std)  # region
    qtbot.mouseClick(inspector.sum_button, Qt.MouseButton.LeftButton)
    idle(qtbot, inspector)
    flat = counts.reshape(-1, counts.shape[-1])
    assert_log_range_fits(inspector, counts[15, 20], mean, mean + std, flat.mean(0), flat.max(0))  # sum and max
    qtbot.mouseClick(inspector.log_check, Qt.MouseButton.LeftButton)  # back to linear counts
    assert inspector.plot.getViewBox().viewRange()[1] == pytest.approx([0, flat.max() * 1.08])
    qtbot.mouseClick(inspector.log_check, Qt.MouseButton.LeftButton)
    assert_log_range_fits(inspector, counts[15, 20], mean, mean + std, flat.mean(0), flat.max(0))
    # the plot's own menu switch (Plot Options > Transforms > Log Y) is the same switch
    inspector.plot.getPlotItem().ctrl.logYCheck.setChecked(False)
    assert not inspector.log_check.isChecked()
    assert inspector.plot.getViewBox().viewRange()[1] == pytest.approx([0, flat.max() * 1.08])


def test_log_counts_of_the_real_m6_spectrum(viewer, inspector, qtbot, click, real_data):
    """The Bruker M6 Jetstream sum spectrum spans 1 to 34,826 counts (807 empty channels)."""
    layer = viewer.open(str(real_data / "bruker_m6_jetstream_file_example.spx"), plugin="napari-xray-atlas")[0]
    click(qtbot, viewer, layer, 0, 0)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (0, 0), timeout=3000)
    inspector.log_check.setChecked(True)
    with read(real_data / "bruker_m6_jetstream_file_example.spx") as cube:
        spectrum = cube.pixel(0, 0)
    assert spectrum.min() == 0 and spectrum[spectrum > 0].min() == 1 and spectrum.max() == 34826
    assert_log_range_fits(inspector, spectrum)
    assert inspector.plot.getViewBox().viewRange()[0] == pytest.approx([-0.955, 39.99], abs=0.5)  # x kept


def test_new_cube_replaces_the_old_ones_state(viewer, inspector, qtbot, click, opened, idle, tmp_path):
    from xray_atlas.physics.painting import synthetic_painting

    layer, painting = opened
    click(qtbot, viewer, layer, 4, 5)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (4, 5), timeout=3000)
    qtbot.mouseClick(inspector.pin_button, Qt.MouseButton.LeftButton)
    viewer.add_shapes(
        [np.array([[2, 2], [2, 9], [8, 9], [8, 2]])], shape_type="rectangle", name="roi", **on_cube_grid(viewer)
    )
    inspector.region_combo.setCurrentText("roi")
    inspector.compute_region()
    idle(qtbot, inspector)
    inspector.compute_sum_spectra()
    idle(qtbot, inspector)
    inspector.elements_edit.setText("Fe")
    inspector.update_markers()
    assert "pixel y=4, x=5" in inspector.pixel_label.text() or "region" in inspector.pixel_label.text()

    other = synthetic_painting(12, 10, seed=9)  # a second cube, opened now: the inspector shows it
    other.write(tmp_path / "other.h5")
    new = viewer.open(str(tmp_path / "other.h5"), plugin="napari-xray-atlas")[0]
    assert inspector.cube_combo.currentText() == new.name and inspector.cube.shape[:2] == (12, 10)
    assert inspector.pixel_yx is None
    assert inspector.pixel_label.text().startswith("click a pixel")
    assert inspector.view.hint.isVisible() is False  # the pin of (4, 5) is a spectrum of the new cube
    for curve in (
        inspector.view.pixel_curve,
        inspector.view.region_curve,
        inspector.view.sum_curve,
        inspector.view.max_curve,
        inspector.view._std_hi,
    ):
        assert curve.yData is None or len(curve.yData) == 0
    np.testing.assert_array_equal(inspector.pinned_spectra()[0], other.counts[4, 5])
    assert inspector.plot.getViewBox().viewRange()[1] == pytest.approx([0, other.counts[4, 5].max() * 1.08])
    click(qtbot, viewer, new, 11, 9)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (11, 9), timeout=3000)
    assert inspector.pixel_label.text().startswith("pixel y=11, x=9")

    # every cube closed: nothing of them is left on the plot
    viewer.layers.remove(new)
    viewer.layers.remove(layer)
    assert inspector.cube is None
    assert inspector.pixel_label.text().startswith("open a cube")
    assert inspector.pinned_spectra() == [] and inspector.marker_energies() == []
    assert inspector.view.pixel_curve.yData is None or len(inspector.view.pixel_curve.yData) == 0
    assert inspector.calibration.offset_edit.text() == inspector.calibration.gain_edit.text() == ""
    assert not inspector.calibration.calibrate_button.isEnabled()
    assert inspector.view.hint.isVisible()
    assert inspector.plot.getViewBox().viewRange()[1] == pytest.approx([0, 1])


def test_empty_plot_has_a_sane_axis_and_says_what_to_do(viewer, inspector, qtbot, click, opened):
    layer, painting = opened
    viewer.layers.remove(layer)
    assert inspector.plot.getViewBox().viewRange()[1] == pytest.approx([0, 1])
    axis = inspector.plot.getAxis("left")
    assert axis.autoSIPrefixScale == 1.0 and "(x" not in axis.labelString()  # was "counts (x0.001)"
    assert inspector.view.hint.isVisible() and inspector.view.hint.textItem.toPlainText().startswith("open a cube")
    layer = viewer.open(str(opened[0].source.path), plugin="napari-xray-atlas")[0]
    assert inspector.view.hint.isVisible() and inspector.view.hint.textItem.toPlainText().startswith("click a pixel")
    # the hint stands in the middle of the plot
    box = inspector.plot.getViewBox()
    centre = inspector.view.hint.mapRectToItem(box, inspector.view.hint.boundingRect()).center()
    assert abs(centre.x() - box.width() / 2) < 0.1 * box.width()
    assert abs(centre.y() - box.height() / 2) < 0.1 * box.height()
    click(qtbot, viewer, layer, 1, 1)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (1, 1), timeout=3000)
    assert not inspector.view.hint.isVisible()
    assert inspector.plot.getViewBox().viewRange()[1][1] == pytest.approx(painting.counts[1, 1].max() * 1.08)


def _contrast_ratio(a, b):
    """WCAG 2 contrast ratio of two sRGB colours (0-255): 1 = none, 21 = black on white."""

    def luminance(rgb):
        c = np.asarray(rgb, dtype=float) / 255
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return c @ [0.2126, 0.7152, 0.0722]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def blend(rgba, background):
    alpha = rgba[3] / 255
    return [alpha * f + (1 - alpha) * b for f, b in zip(rgba[:3], background)]


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_energy_window_band_stands_out(viewer, inspector, theme):
    contrast_ratio = _contrast_ratio
    viewer.theme = theme
    bg = inspector.plot.backgroundBrush().color().getRgb()[:3]
    fill = inspector.view.window.brush.color().getRgb()
    edge = inspector.view.window.lines[0].pen.color().getRgb()[:3]
    # was (120, 160, 255, 40): 16 % opaque, 1.2:1 against the black canvas
    assert fill[3] >= 0.3 * 255
    assert contrast_ratio(blend(fill, bg), bg) >= 1.5
    assert contrast_ratio(edge, bg) >= 4.5
    assert inspector.view.window.lines[0].pen.widthF() >= 2


def test_light_element_lines_are_marked(inspector, opened):
    """EDS: C, O, Na, Mg, Al have only lines below the old 1.2 keV cut-off."""
    inspector.elements_edit.setText("C O Na Mg Al")
    inspector.update_markers()
    energies = inspector.marker_energies()
    for z in (6, 8, 11, 12, 13):
        assert xraylib.LineEnergy(z, xraylib.KL3_LINE) in energies, z
    assert min(energies) == pytest.approx(0.277, abs=1e-3)
    inspector.elements_edit.setText("Fe")  # Fe L (0.7 keV) only beside Fe K: not marked
    inspector.update_markers()
    assert min(inspector.marker_energies()) > 6
    inspector.family_checks["K"].setChecked(False)  # Fe L alone: marked
    assert min(inspector.marker_energies()) == pytest.approx(xraylib.LineEnergy(26, xraylib.L3M1_LINE))


def test_long_cube_names_are_shown_whole(viewer, inspector, tmp_path, small_painting):
    name = "MA-XRF_scan_of_the_Madonna_with_child_panel_2026-12-06_session3_detector2_full_resolution"
    small_painting.write(tmp_path / f"{name}.h5")
    layer = viewer.open(str(tmp_path / f"{name}.h5"), plugin="napari-xray-atlas")[0]
    combo = inspector.cube_combo
    assert combo.currentText() == layer.name
    text = combo.fontMetrics().horizontalAdvance(layer.name)
    assert combo.width() < text  # the box cuts it off (the dock is 660 px wide) ...
    assert combo.view().minimumWidth() > text  # ... its list does not
    assert combo.view().textElideMode() == Qt.TextElideMode.ElideNone
    assert layer.name in combo.toolTip()


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
        labels = [item for item in inspector.view._marker_items if hasattr(item, "textItem")]
        return labels, [item.sceneBoundingRect() for item in labels]

    for view in (None, (9.5, 12.0), (0.0, 40.0)):  # as opened, zoomed in on As / Pb, zoomed out
        if view is not None:
            inspector.plot.setXRange(*view, padding=0)
        qtbot.wait(10)
        labels, rects = boxes()
        assert {"As K\u03b11", "Pb L\u03b11", "K K\u03b11", "Ca K\u03b11"} <= {
            item.textItem.toPlainText() for item in labels
        }
        covered = [
            (labels[i].textItem.toPlainText(), labels[j].textItem.toPlainText())
            for i in range(len(rects))
            for j in range(i + 1, len(rects))
            if rects[i].intersects(rects[j])
        ]
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
    with read(real_data / "XRFSpectrum.mca"):
        np.testing.assert_array_equal(inspector.view.pixel_curve.getData()[0], np.arange(4096))


def test_calibration_set_in_the_inspector_reaches_the_docks(
    viewer, inspector, plugin_dock, qtbot, click, real_data, errors, idle
):
    from xray_atlas.napari._layers import cube_of

    path = real_data / "XRFSpectrum.mca"  # single column, no calibration
    before = path.read_bytes()
    layer = viewer.open(str(path), plugin="napari-xray-atlas")[0]
    assert inspector.calibration.offset_edit.text() == inspector.calibration.gain_edit.text() == ""
    click(qtbot, viewer, layer, 0, 0)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (0, 0), timeout=3000)
    # bad values are notified and change nothing
    inspector.calibration.offset_edit.setText("-0.492773")
    for gain, message in (("five", "not a number"), ("0", "gain must be > 0"), ("5", "implausible")):
        inspector.calibration.gain_edit.setText(gain)
        qtbot.mouseClick(inspector.calibration.calibrate_button, Qt.MouseButton.LeftButton)
        assert any(message in m for m in errors()), (gain, errors())
        assert not cube_of(layer).calibrated
    # the calibration documented with the file (PyMca XrfTest.cfg)
    inspector.calibration.gain_edit.setText("0.00502883")
    qtbot.mouseClick(inspector.calibration.calibrate_button, Qt.MouseButton.LeftButton)
    cube = cube_of(layer)
    assert cube.calibrated and cube.energy[0] == pytest.approx(-0.492773)
    assert cube.energy[1] - cube.energy[0] == pytest.approx(0.00502883)
    assert "keV" in inspector.plot.getAxis("bottom").labelText
    np.testing.assert_allclose(inspector.view.pixel_curve.getData()[0], cube.energy)  # the pixel is re-plotted
    inspector.elements_edit.setText("Cu")
    inspector.update_markers()
    assert (
        inspector.marker_energies()
        and min(abs(e - xraylib.LineEnergy(29, xraylib.KL3_LINE)) for e in inspector.marker_energies()) < 1e-9
    )
    # a dock run afterwards reads the calibrated cube: copper is in the standard's fit list
    dock = plugin_dock("Element probabilities")
    dock.elements_edit.setText("Cu")
    dock.run()
    idle(qtbot, dock)
    assert float(viewer.layers["P(Cu)"].data[0, 0]) > 0.9
    # or fitted to peaks read off the plot (the channels where this file's Cu Ka and Sr Ka stand)
    inspector.calibration.peaks_edit.setText("1696 Cu Ka")
    qtbot.mouseClick(inspector.calibration.peaks_button, Qt.MouseButton.LeftButton)
    assert any("give two or more" in m for m in errors()) and cube_of(layer) is cube
    inspector.calibration.peaks_edit.setText("1696 Cu Ka, 2912 Sr Ka")
    qtbot.mouseClick(inspector.calibration.peaks_button, Qt.MouseButton.LeftButton)
    fitted = cube_of(layer)
    assert fitted is not cube and fitted.energy[0] == pytest.approx(-0.492773, abs=0.03)
    assert fitted.energy[1] - fitted.energy[0] == pytest.approx(0.00502883, rel=5e-3)
    assert float(inspector.calibration.offset_edit.text()) == pytest.approx(fitted.energy[0])
    assert path.read_bytes() == before
