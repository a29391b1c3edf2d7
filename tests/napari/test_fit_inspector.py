"""The Fit inspector dock and the reduced chi-square layer, with real clicks, against the core's
numbers (xray_atlas.spectrumfit)."""

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from xray_atlas.io import read
from xray_atlas.spectrumfit import fit_pixels, fit_region, prepared_fit

from .test_spectrum_inspector import on_cube_grid


@pytest.fixture
def opened(viewer, painting_file):
    path, painting = painting_file
    layer = viewer.open(str(path), plugin="napari-xray-atlas")[0]
    return layer, painting


def assert_log_range_shows_the_fit(view):
    """In log mode the count axis runs from just below the smallest measured count, or the
    fit's 5th percentile over the channels up to the last with counts when that is lower (a
    20 ms pixel expects 0.01-0.1 counts a channel), to just above the largest value; not down
    to the 1e-18 counts of the fit's tails."""
    r = view.result
    c = r.channels
    hit = np.flatnonzero(r.measured > 0)
    f = r.fitted[c]
    inside = f[(r.energy[c] <= r.energy[hit[-1]]) & (f > 0)]
    floor = min(r.measured[hit].min(), np.percentile(inside, 5))
    top = max(r.measured.max(), f.max())
    lo, hi = view.plot.getViewBox().viewRange()[1]  # log10 units
    assert np.log10(floor) - 0.5 <= lo <= np.log10(floor), (lo, floor)
    assert np.log10(top) <= hi <= np.log10(top) + 0.5, (hi, top)
    if f[f > 0].min() < floor / 100:  # a 20 ms pixel's fit falls to 1e-18 above its last line
        assert lo > np.log10(f[f > 0].min()) + 1  # the tails are not what sets the range


def _click_item_check(qtbot, widget, item):
    """A real click on a list item's check box (its left end)."""
    rect = widget.visualItemRect(item)
    qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(rect.left() + 10, rect.center().y()))


def test_a_clicked_pixel_is_fitted_and_taken_apart(viewer, qtbot, click, idle, plugin_dock, opened, errors):
    layer, painting = opened
    view = plugin_dock("Fit inspector")
    robe = np.argwhere(painting.regions == painting.region_names.index("vermilion robe"))
    y, x = (int(v) for v in robe[len(robe) // 2])
    click(qtbot, viewer, layer, y, x)
    idle(qtbot, view)  # the fit's clusters are learnt on a worker first
    qtbot.waitUntil(lambda: view.result is not None, timeout=10000)
    result = view.result
    assert view.pixel_yx == (y, x) and result.what == f"pixel (y={y}, x={x})"
    np.testing.assert_array_equal(result.measured, painting.counts[y, x])
    # the core's own fit of that pixel, with a fit prepared the same way
    with read(opened[0].metadata["xray_atlas"]["cube"].path) as cube:
        core = fit_pixels(prepared_fit(cube), cube.pixel(y, x))
    np.testing.assert_allclose(result.fitted, core.fitted, rtol=1e-5, atol=1e-6)
    assert result.reduced_chi2 == pytest.approx(core.reduced_chi2, rel=1e-5)
    assert f"reduced \u03c7\u00b2 {result.reduced_chi2:.2f}" in view.summary.text()
    # the curves hold the fit: the fitted and background over the fitted channels, one curve a family
    c = result.channels
    np.testing.assert_allclose(view.fitted_curve.yData, result.fitted[c])
    np.testing.assert_allclose(view.background_curve.yData, result.background[c])
    np.testing.assert_allclose(view.residual_curve.yData, result.residual[c])
    curves = view.family_curves()
    assert "Hg-L" in curves and list(curves) == list(result.families)  # vermilion: HgS, strongest first
    assert view.families_list.count() == len(curves)
    # a real click on a family's check box hides its curve, and it stays hidden for the next pixel
    item = next(
        view.families_list.item(i)
        for i in range(view.families_list.count())
        if view.families_list.item(i).data(Qt.ItemDataRole.UserRole) == "Hg-L"
    )
    _click_item_check(qtbot, view.families_list, item)
    assert item.checkState() == Qt.CheckState.Unchecked and not curves["Hg-L"].isVisible()
    click(qtbot, viewer, layer, y, x + 1)
    qtbot.waitUntil(lambda: view.pixel_yx == (y, x + 1), timeout=3000)
    assert not view.family_curves()["Hg-L"].isVisible() and view.family_curves()["Pb-L"].isVisible()
    # a pixel is fitted on the main thread: it must stay well under a frame's worth of waiting
    assert view.last_ms < 50, view.last_ms
    # log counts: from just below the smallest positive count to just above the largest
    qtbot.mouseClick(view.log_check, Qt.MouseButton.LeftButton)
    assert_log_range_shows_the_fit(view)
    r = view.result
    values = np.concatenate([r.measured, r.fitted[r.channels]])
    qtbot.mouseClick(view.log_check, Qt.MouseButton.LeftButton)
    assert view.plot.getViewBox().viewRange()[1] == pytest.approx([0, values.max() * 1.08])
    assert errors() == []


def test_a_region_and_a_cluster_and_a_family_left_out(viewer, qtbot, click, idle, plugin_dock, opened, errors):
    layer, painting = opened
    view = plugin_dock("Fit inspector")
    robe = painting.regions == painting.region_names.index("vermilion robe")
    y, x = (int(v) for v in np.argwhere(robe)[np.count_nonzero(robe) // 2])
    click(qtbot, viewer, layer, y, x)
    idle(qtbot, view)
    qtbot.waitUntil(lambda: view.result is not None, timeout=10000)
    # the region: a rectangle drawn on the cube's grid, fitted on a worker
    viewer.add_shapes(
        [np.array([[2, 3], [2, 12], [9, 12], [9, 3]])], shape_type="rectangle", name="roi", **on_cube_grid(viewer)
    )
    view.region_combo.setCurrentText("roi")
    qtbot.mouseClick(view.region_button, Qt.MouseButton.LeftButton)
    idle(qtbot, view)
    r = view.result
    assert r.n_pixels == 8 * 10 and r.what == "region 'roi', 80 pixels"
    np.testing.assert_array_equal(r.measured, painting.counts[2:10, 3:13].reshape(-1, painting.counts.shape[2]).sum(0))
    # the core's fit of the same pixels (a sum of 240,000 counts of azurite sky: its Cu Ka + Ka pile-up
    # peak at 16.1 keV, which the fit lacks, is far beyond the noise there; measured 11.1)
    mask = np.zeros(painting.regions.shape, bool)
    mask[2:10, 3:13] = True
    with read(layer.metadata["xray_atlas"]["cube"].path) as cube:
        core = fit_region(prepared_fit(cube), mask)
    assert r.reduced_chi2 == pytest.approx(core.reduced_chi2, rel=1e-5) and r.reduced_chi2 > 1
    np.testing.assert_allclose(r.fitted, core.fitted, rtol=1e-5, atol=1e-6)
    # the clicked pixel's cluster
    qtbot.mouseClick(view.cluster_button, Qt.MouseButton.LeftButton)
    assert view.result.what.startswith("cluster ") and view.result.n_pixels > 1
    # leave Hg-L out: the fit is learnt again without it, and the vermilion pixel's residual shows the
    # Hg L lines the fit now lacks
    click(qtbot, viewer, layer, y, x)
    qtbot.waitUntil(lambda: view.result.what.startswith("pixel"), timeout=3000)
    before = view.result
    view.omit_edit.setFocus()
    qtbot.keyClicks(view.omit_edit, "Hg-L")
    qtbot.keyClick(view.omit_edit, Qt.Key.Key_Return)
    idle(qtbot, view)
    qtbot.waitUntil(lambda: view.result is not before, timeout=10000)
    after = view.result
    assert "Hg-L" in before.families and "Hg-L" not in after.families
    la = (after.energy > 9.85) & (after.energy < 10.15)  # Hg La, 9.99 keV
    assert after.residual[la].sum() > before.residual[la].sum() + 5
    assert after.reduced_chi2 > 2 * before.reduced_chi2
    assert errors() == []


def test_maps_write_a_chi2_layer_that_the_inspector_and_files_carry(
    viewer, qtbot, click, idle, plugin_dock, opened, errors, tmp_path
):
    layer, painting = opened
    maps = plugin_dock("Elemental maps")
    maps.model_combo.setCurrentText("fit")
    maps.lines_edit.setText("Pb-L, Hg-L, Fe-K")
    qtbot.mouseClick(maps.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, maps)
    chi = viewer.layers["reduced chi2 (fit)"]
    assert not chi.visible and tuple(chi.contrast_limits) == (0.0, 5.0) and chi.colormap.name == "magma"
    assert chi.data.shape == painting.counts.shape[:2] and 0.8 < float(np.nanmedian(chi.data)) < 1.5
    assert chi.metadata["xray_atlas"]["kind"] == "fit chi2"
    assert any("the fit's reduced chi-square: median" in ln for ln in maps.jobs.lines)
    # the inspector draws the map model's values with the fit's shapes; for the fit they are its own
    view = plugin_dock("Fit inspector")
    view.compare_combo.setCurrentText("fit")
    y, x = 10, 12
    click(qtbot, viewer, layer, y, x)
    idle(qtbot, view)
    qtbot.waitUntil(lambda: view.result is not None and view.implied is not None, timeout=10000)
    c = view.result.channels
    # the fit's own map values (corrected for the 2 % of events pile-up took) imply the fit's spectrum
    np.testing.assert_allclose(view.implied[c], view.result.fitted[c], rtol=1e-4, atol=1e-6)
    assert view.result.net_counts["Pb-L"] == pytest.approx(float(viewer.layers["Pb-L (fit)"].data[y, x]), rel=1e-4)
    assert "fit's values drawn with the fit's line shapes" in view.summary.text()
    # and the chi-square map read at that pixel is the inspector's
    assert view.result.reduced_chi2 == pytest.approx(float(chi.data[y, x]), rel=1e-3)
    # File > Save Layers writes /fit/reduced_chi2 beside the maps; opening the file brings it back
    from xray_atlas.io.results import read_results

    out = tmp_path / "saved.h5"
    names = ["Pb-L (fit)", "Hg-L (fit)", "reduced chi2 (fit)"]
    viewer.layers.selection = {viewer.layers[n] for n in names}
    viewer.layers.save(str(out), selected=True, plugin="napari-xray-atlas")
    saved = read_results(out)
    np.testing.assert_array_equal(saved["fit"]["reduced_chi2"], chi.data)
    assert set(saved["maps"]) == {"Pb-L", "Hg-L"}
    reopened = viewer.open(str(out), plugin="napari-xray-atlas")
    again = next(lyr for lyr in reopened if lyr.metadata["xray_atlas"]["kind"] == "fit chi2")
    assert again.name.startswith("reduced chi2 (fit)") and not again.visible  # napari numbers a second one
    np.testing.assert_array_equal(again.data, chi.data)
    assert errors() == []


def test_the_spectrum_inspector_opens_the_fit_inspector_on_its_pixel(viewer, inspector, qtbot, click, idle, opened):
    layer, painting = opened
    click(qtbot, viewer, layer, 5, 7)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (5, 7), timeout=3000)
    inspector.scroll_area.ensureWidgetVisible(inspector.fit_button)
    qtbot.mouseClick(inspector.fit_button, Qt.MouseButton.LeftButton)
    view = next(w for key, w in dict(viewer.window.dock_widgets).items() if key.startswith("Fit inspector"))
    idle(qtbot, view)
    qtbot.waitUntil(lambda: view.result is not None, timeout=10000)
    assert view.pixel_yx == (5, 7) and view.cube is inspector.cube
    np.testing.assert_array_equal(view.result.measured, painting.counts[5, 7])
    # a second click brings the same dock forward
    qtbot.mouseClick(inspector.fit_button, Qt.MouseButton.LeftButton)
    assert sum(key.startswith("Fit inspector") for key in dict(viewer.window.dock_widgets)) == 1


def test_the_fit_inspector_on_the_real_m6_spectrum(viewer, qtbot, click, idle, plugin_dock, real_data):
    """The Bruker M6 Jetstream accumulation (one pixel, 1.09 million counts): one cluster, the
    pixel's fit is its cluster's."""
    layer = viewer.open(str(real_data / "bruker_m6_jetstream_file_example.spx"), plugin="napari-xray-atlas")[0]
    view = plugin_dock("Fit inspector")
    click(qtbot, viewer, layer, 0, 0)
    idle(qtbot, view)
    qtbot.waitUntil(lambda: view.result is not None, timeout=10000)
    r = view.result
    assert r.measured.sum() > 1e6 and r.clusters == (0,)
    assert r.net_counts["Ca-K"] > 4e5  # Bruker's fit: 459,971 (docs/maps.md)
    qtbot.mouseClick(view.log_check, Qt.MouseButton.LeftButton)
    assert_log_range_shows_the_fit(view)


def test_a_learnt_model_is_shown_as_its_values_on_the_fit(viewer, qtbot, click, idle, plugin_dock, opened, errors):
    """maps-default has no spectrum and no fit of its own: no chi-square layer; the inspector
    draws its values with the fit's line shapes and says what it cannot show."""
    layer, painting = opened
    maps = plugin_dock("Elemental maps")
    maps.model_combo.setCurrentText("maps-default")
    qtbot.mouseClick(maps.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, maps)
    assert "Hg-L (maps-default)" in viewer.layers
    assert not any(lyr.metadata.get("xray_atlas", {}).get("kind") == "fit chi2" for lyr in viewer.layers)
    view = plugin_dock("Fit inspector")
    assert view.compare_combo.findText("maps-default") >= 0
    view.compare_combo.setCurrentText("maps-default")
    y, x = 12, 12
    click(qtbot, viewer, layer, y, x)
    idle(qtbot, view)
    qtbot.waitUntil(lambda: view.result is not None and view.implied is not None, timeout=10000)
    text = view.summary.text()
    assert "maps-default's values drawn with the fit's line shapes" in text
    assert "learnt model without a spectrum of its own" in text
    # each of its values, drawn with the fit's shape of that family: the curve departs from the fit by
    # exactly (its value / the fit's - 1) of each family's part
    r = view.result
    values = {
        lyr.metadata["xray_atlas"]["line"]: float(lyr.data[y, x])
        for lyr in viewer.layers
        if lyr.name.endswith("(maps-default)")
    }
    assert set(values) >= {"Hg-L", "Pb-L", "Fe-K"}
    moved = sum(
        (r.families[f] * (values[f] / r.net_counts[f] - 1.0) for f in values if f in r.families),
        np.zeros_like(r.fitted),
    )
    np.testing.assert_allclose(view.implied - r.fitted, moved, atol=1e-6 * r.fitted.max())
    assert np.abs(moved).max() > 0.1  # the network does not read the fit's numbers
    # "none" takes the model's curve away
    view.compare_combo.setCurrentText("none")
    assert view.implied is None and "maps-default" not in view.summary.text()
    assert errors() == []
