"""Screenshots for docs/ made by the suite (written into docs/images with
XRAY_ATLAS_DOCS_SCREENSHOTS=1, else into a temporary folder)."""

import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _out(tmp_path, name):
    return ROOT / "docs" / "images" / name if os.environ.get("XRAY_ATLAS_DOCS_SCREENSHOTS") else tmp_path / name


def _screenshot(viewer, qtbot, tmp_path, name, *, min_std=20):
    """Write the window's screenshot and check that it shows something (not a blank frame)."""
    from PIL import Image

    qtbot.wait(200)
    out = _out(tmp_path, name)
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.std() > min_std
    return out


def test_clustered_painting_screenshot(viewer, qtbot, tmp_path):
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1500, 900)
    viewer.open(str(ensure_demo_painting()), plugin="napari-xray-atlas")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    _, clusters = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Clusters")
    clusters.method_combo.setCurrentText("umap-hdbscan")
    assert clusters.run() is not None
    qtbot.waitUntil(lambda: not clusters.jobs.busy, timeout=120000)
    layer = viewer.layers["clusters (umap-hdbscan)"]
    inspector.log_check.setChecked(True)
    assert len(inspector.cluster_spectra_shown()) == len(layer.metadata["xray_atlas"]["sizes"]) >= 5
    _screenshot(viewer, qtbot, tmp_path, "clusters.png")


def test_clusters_refine_screenshot(viewer, qtbot, tmp_path):
    """A split in the Clusters dock's Refine group (docs/clustering.md): umap-hdbscan puts the
    80-pixel zinc white retouching in the vermilion robe's cluster; splitting that cluster in
    two gives the retouching a cluster of its own."""
    import h5py
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QScrollArea
    from sklearn.metrics import adjusted_rand_score

    from xray_atlas.napari._layers import xa_meta
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1600, 1060)
    path = ensure_demo_painting()
    with h5py.File(path, "r") as f:
        regions = f["regions"][()]  # 3: vermilion robe, 7: zinc white retouching
    viewer.open(str(path), plugin="napari-xray-atlas")
    inspector_dock, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    clusters_dock, clusters = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Clusters")
    clusters.method_combo.setCurrentText("umap-hdbscan")
    assert clusters.run() is not None
    qtbot.waitUntil(lambda: not clusters.jobs.busy, timeout=120000)
    layer = viewer.layers["clusters (umap-hdbscan)"]
    robe = int(np.bincount(layer.data[regions == 3]).argmax())
    assert robe == int(np.bincount(layer.data[regions == 7]).argmax())  # the retouching hides in the robe
    refine = clusters.refine
    refine.cluster_combo.setCurrentIndex(robe - 1)
    qtbot.mouseClick(refine.split_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not clusters.jobs.busy, timeout=120000)
    inside = np.isin(regions, [3, 7])
    ari = adjusted_rand_score(regions[inside], layer.data[inside])
    assert ari > 0.95, ari  # measured 1.0 (k-means on the robe cluster's own features)
    inspector.log_check.setChecked(True)
    for lyr in viewer.layers:  # the clusters over the counts image, nothing else
        lyr.visible = lyr is layer or xa_meta(lyr).get("kind") == "cube"
    # room for the Refine group: the clusters dock gets most of the right-hand column
    viewer.window._qt_window.resizeDocks([inspector_dock, clusters_dock], [430, 560], Qt.Orientation.Vertical)
    qtbot.wait(300)
    clusters.findChild(QScrollArea).ensureWidgetVisible(refine)
    _screenshot(viewer, qtbot, tmp_path, "clusters-refine.png")


def test_training_run_screenshot(viewer, qtbot, tmp_path):
    """A maps run in progress in the Training dock (docs/training.md)."""
    from xray_atlas.napari._sample_data import ensure_demo_painting
    from xray_atlas.training import EpochEnd

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
    _screenshot(viewer, qtbot, tmp_path, "training.png", min_std=10)
    training.cancel()
    qtbot.waitUntil(lambda: not training.busy, timeout=30000)
    assert training.status.text().startswith("cancelled")


def test_maps_screenshot(viewer, qtbot, tmp_path):
    """Elemental maps of the demo painting painted by the shipped model (docs/maps.md)."""
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1500, 900)
    viewer.open(str(ensure_demo_painting()), plugin="napari-xray-atlas")
    _, maps = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Elemental maps")
    assert maps.model_combo.currentText() == "maps-fit"
    assert maps.run() is not None
    qtbot.waitUntil(lambda: not maps.jobs.busy, timeout=120000)  # computed and its layers added
    shown = {"Hg-L (maps-fit)", "Cu-K (maps-fit)", "Fe-K (maps-fit)", "Pb-L (maps-fit)"}
    for layer in viewer.layers:
        layer.visible = layer.name in shown
    assert shown <= {lyr.name for lyr in viewer.layers}
    viewer.layers.selection.active = viewer.layers["Hg-L (maps-fit)"]
    _screenshot(viewer, qtbot, tmp_path, "maps.png")


def test_probabilities_screenshot(viewer, qtbot, tmp_path):
    """Element probabilities of the demo painting per 3 x 3 region, with one pixel's list
    (docs/probabilities.md)."""
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1500, 900)
    viewer.open(str(ensure_demo_painting()), plugin="napari-xray-atlas")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    _, dock = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Element probabilities")
    dock.where_combo.setCurrentText("k x k region")
    dock.region_spin.setValue(3)
    dock.elements_edit.setText("Hg, Cu, Pb, Fe")
    assert dock.run() is not None
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=120000)  # computed and its layers added
    shown = {f"P({el}) 3x3" for el in ("Hg", "Cu", "Fe")}
    for layer in viewer.layers:
        layer.visible = layer.name in shown
    assert shown <= {lyr.name for lyr in viewer.layers}
    cube = inspector.cube
    y, x = int(cube.height * 0.62), cube.width // 2  # the vermilion robe
    inspector.show_pixel(y, x)
    probs = dock.show_pixel(y, x)
    assert probs["Hg"] >= dock.model().thresholds["Hg"]  # vermilion is HgS
    _screenshot(viewer, qtbot, tmp_path, "probabilities.png")


def test_diffraction_screenshot(viewer, qtbot, tmp_path, idle):
    """A span-3 reconstruction: input, lattice, re-simulated image, residual in a grid, the
    encoding matrix in the dock (docs/diffraction.md)."""
    viewer.window.resize(1400, 1000)
    viewer.open_sample("napari-xray-atlas", "diffraction-image")
    _, dock = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Diffraction")
    dock.span_combo.setCurrentText("3")
    assert dock.run() is not None
    idle(qtbot, dock)  # computed, and its layers added over several turns of the loop
    assert dock.result is not None and dock.result.converged
    grid = getattr(getattr(viewer, "canvas", None), "grid", None) or viewer.grid  # napari >= 0.9: viewer.canvas.grid
    grid.enabled = True
    grid.shape = (2, 2)
    viewer.reset_view()
    _screenshot(viewer, qtbot, tmp_path, "diffraction.png")


def test_classify_screenshot(viewer, qtbot, tmp_path, idle):
    """The sample radiographs classified with the shipped model, the activation map over them
    (docs/images.md)."""
    viewer.window.resize(1400, 900)
    viewer.open_sample("napari-xray-atlas", "radiographs")
    _, dock = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Classify image")
    assert dock.run() is not None
    idle(qtbot, dock)  # computed, and its layers added over several turns of the loop
    assert "activation map Radiographs (Al 2017 plate, Al 1050 wedge)" in viewer.layers
    viewer.dims.set_current_step(0, 0)
    viewer.reset_view()
    _screenshot(viewer, qtbot, tmp_path, "classify.png")


def test_compare_screenshot(viewer, qtbot, tmp_path):
    """The Compare maps dock on the demo painting (docs/compare.md): an RGB composite of Pb-L,
    Hg-L and Cu-K painted by the roi baseline, the correlation plot of Pb-L and Hg-L, a lasso
    drawn round the pixels with mercury and little lead, and those pixels on the canvas."""
    from qtpy.QtCore import QPoint, QPointF, Qt
    from qtpy.QtTest import QTest

    from xray_atlas.compare import pixels_in_polygon
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1800, 1000)
    viewer.open(str(ensure_demo_painting()), plugin="napari-xray-atlas")
    _, maps = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Elemental maps")
    maps.model_combo.setCurrentText("roi")
    assert maps.run() is not None
    qtbot.waitUntil(lambda: not maps.jobs.busy, timeout=120000)
    viewer.window.remove_dock_widget(maps)
    _, dock = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Compare maps")
    for ch, line in zip(("red", "green", "blue"), ("Hg-L", "Cu-K", "Pb-L")):
        dock.channel_combos[ch].setCurrentText(f"{line} (roi)")
    qtbot.mouseClick(dock.rgb_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=60000)
    dock.x_combo.setCurrentText("Pb-L (roi)")
    dock.y_combo.setCurrentText("Hg-L (roi)")
    dock.mode_combo.setCurrentText("lasso")
    x = np.asarray(viewer.layers["Pb-L (roi)"].data)
    y = np.asarray(viewer.layers["Hg-L (roi)"].data)
    # a lasso (real mouse moves, at a hand's pace) round the mercury-rich, lead-poor pixels
    hx, hy = float(np.ptp(x)), float(np.ptp(y))
    path = [
        (0.02 * hx, 0.45 * hy),
        (0.35 * hx, 0.45 * hy),
        (0.35 * hx, 1.02 * hy),
        (0.02 * hx, 1.02 * hy),
        (0.02 * hx, 0.46 * hy),
    ]
    dock.scroll_area.ensureWidgetVisible(dock.plot)
    vp = dock.plot.viewport()

    def at(px, py):
        p = dock.plot.mapFromScene(dock.box.mapViewToScene(QPointF(px, py)))
        return QPoint(int(p.x()), int(p.y()))

    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*path[0]))
    for (ax, ay), (bx, by) in zip(path[:-1], path[1:]):
        for t in np.linspace(0.1, 1.0, 8):
            QTest.qWait(12)
            QTest.mouseMove(vp, at(ax + t * (bx - ax), ay + t * (by - ay)))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*path[-1]))
    qtbot.waitUntil(lambda: "plot selection" in viewer.layers, timeout=10000)
    selected = viewer.layers["plot selection"].data == 1
    assert selected.any() and np.array_equal(selected, pixels_in_polygon(x, y, dock.roi_region()[1]))
    viewer.layers.selection.active = viewer.layers["plot selection"]
    viewer.reset_view()
    _screenshot(viewer, qtbot, tmp_path, "compare-dock.png")


def _vermilion_pixel(path):
    """A pixel in the middle of the demo painting's vermilion robe (its /regions)."""
    import h5py

    with h5py.File(path, "r") as f:
        regions = f["regions"][()]
        names = [n.decode() for n in f.attrs["region_names"]]
    robe = np.argwhere(regions == names.index("vermilion robe"))
    y, x = robe[len(robe) // 2]
    return int(y), int(x), regions, names


def _fit_dock(viewer, qtbot):
    _, view = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Fit inspector")
    view.parent().setMinimumWidth(640)  # the plot reads at this width
    return view


def test_fit_inspector_screenshot(viewer, qtbot, tmp_path, click):
    """The Fit inspector on a region of the demo painting's vermilion robe after a maps-fit run:
    the fit, its families, the residual and maps-fit's values drawn with the fit's shapes
    (docs/maps.md)."""
    from xray_atlas.napari._layers import grid_of
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1700, 1000)
    path = ensure_demo_painting()
    layer = viewer.open(str(path), plugin="napari-xray-atlas")[0]
    _, maps = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Elemental maps")
    assert maps.run() is not None
    qtbot.waitUntil(lambda: not maps.jobs.busy, timeout=300000)
    viewer.window.remove_dock_widget(maps)
    shown = {"Hg-L (maps-fit)", "Pb-L (maps-fit)"}
    for lyr in viewer.layers:
        lyr.visible = lyr.name in shown
    y, x, _, _ = _vermilion_pixel(path)
    viewer.add_shapes(
        [np.array([[y - 5, x - 6], [y - 5, x + 6], [y + 5, x + 6], [y + 5, x - 6]])],
        shape_type="rectangle",
        name="robe",
        edge_color="white",
        face_color="transparent",
        edge_width=0.6,
        **grid_of(layer),
    )
    view = _fit_dock(viewer, qtbot)
    view.compare_combo.setCurrentText("maps-fit")
    view.region_combo.setCurrentText("robe")
    viewer.reset_view()
    click(qtbot, viewer, layer, y, x)  # learns the fit's clusters and fits the pixel
    qtbot.waitUntil(lambda: not view.jobs.busy and view.result is not None, timeout=120000)
    qtbot.mouseClick(view.region_button, __import__("qtpy.QtCore", fromlist=["Qt"]).Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.jobs.busy and view.result.what.startswith("region"), timeout=120000)
    assert view.implied is not None and "Hg-L" in view.result.families
    view.plot.setXRange(1.5, 15.0, padding=0)  # the lines, as a user zooms with the mouse wheel
    viewer.layers.selection.active = viewer.layers["Hg-L (maps-fit)"]
    _screenshot(viewer, qtbot, tmp_path, "fit-inspector.png")


def test_fit_without_a_line_screenshot(viewer, qtbot, tmp_path, click):
    """What a line the fit lacks looks like: the demo painting fitted without Hg-L, its reduced
    chi-square map (computed here by the core, as ``ClusterFit(omit=("Hg-L",))`` gives it) lit up
    over the two vermilion paints, and a robe pixel in the Fit inspector with Hg-L left out
    (docs/maps.md)."""
    from xray_atlas.clusterfit import ClusterFit
    from xray_atlas.cube import run_to_end
    from xray_atlas.napari._layers import chi2_layer_data, grid_of
    from xray_atlas.napari._sample_data import ensure_demo_painting

    viewer.window.resize(1700, 1000)
    path = ensure_demo_painting()
    layer = viewer.open(str(path), plugin="napari-xray-atlas")[0]
    cube = layer.metadata["xray_atlas"]["cube"]
    fit = ClusterFit(cube, ("Pb-L",), omit=("Hg-L",))
    run_to_end(fit.iter_prepare())
    w = cube.width
    chi = np.full(cube.height * w, np.nan, np.float32)
    for rows, block in cube.iter_tiles():
        chi[rows.start * w : rows.stop * w] = fit.tile(block, chi2=True).chi2
    chi = chi.reshape(cube.height, w)
    y, x, regions, names = _vermilion_pixel(path)
    robe = regions == names.index("vermilion robe")
    assert np.nanmedian(chi[robe]) > 3 * np.nanmedian(chi[~robe & (regions != names.index("zinc white retouching"))])
    data, kwargs, kind = chi2_layer_data(chi, "fit without Hg-L", visible=True)
    viewer.add_layer(__import__("napari").layers.Layer.create(data, {**kwargs, **grid_of(layer)}, kind))
    layer.visible = False
    view = _fit_dock(viewer, qtbot)
    view.omit_edit.setText("Hg-L")
    viewer.reset_view()
    qtbot.wait(200)
    click(qtbot, viewer, layer, y, x)
    qtbot.waitUntil(lambda: not view.jobs.busy and view.result is not None, timeout=120000)
    assert "Hg-L" not in view.result.families and view.result.reduced_chi2 > 5
    _screenshot(viewer, qtbot, tmp_path, "fit-missing-line.png")


def test_fit_inspector_m6_screenshot(viewer, qtbot, tmp_path, click, real_data):
    """The Fit inspector on the real Bruker M6 Jetstream spectrum (one pixel, 1.09 million counts),
    log counts (docs/maps.md)."""
    viewer.window.resize(1500, 950)
    layer = viewer.open(str(real_data / "bruker_m6_jetstream_file_example.spx"), plugin="napari-xray-atlas")[0]
    view = _fit_dock(viewer, qtbot)
    click(qtbot, viewer, layer, 0, 0)
    qtbot.waitUntil(lambda: not view.jobs.busy and view.result is not None, timeout=120000)
    view.log_check.setChecked(True)
    assert view.result.net_counts["Ca-K"] > 4e5
    _screenshot(viewer, qtbot, tmp_path, "fit-m6.png")


def test_folder_run_screenshot(viewer, qtbot, tmp_path):
    """The Elemental maps dock after a run over a folder of scans, one result opened (docs/batch.md)."""
    from qtpy.QtCore import Qt

    from xray_atlas.napari.widgets._folder import FolderRow
    from xray_atlas.physics.painting import synthetic_painting

    scans = tmp_path / "campaign"
    scans.mkdir()
    for seed in range(4):
        synthetic_painting(40, 56, n_channels=2048, seed=seed).write(scans / f"panel-{seed + 1}.h5")
    (scans / "panel-5.h5").write_bytes(b"a scan cut short by a full disk")
    viewer.window.resize(1500, 1000)
    _, maps = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Elemental maps")
    row = maps.findChild(FolderRow)
    maps.model_combo.setCurrentText("lsq")
    row.input_edit.setText(str(scans))
    row.output_edit.setText(str(tmp_path / "maps"))
    row.scheduler_edit.setText("local:2")
    assert row.run() is not None
    qtbot.waitUntil(lambda: not maps.jobs.busy, timeout=300000)
    assert [row.results.topLevelItem(i).text(1) for i in range(5)] == ["ok"] * 4 + ["failed"]
    row.results.topLevelItem(1).setSelected(True)
    qtbot.mouseClick(row.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not maps.jobs.busy, timeout=60000)
    maps.scroll_area.ensureWidgetVisible(row.results)
    viewer.reset_view()
    _screenshot(viewer, qtbot, tmp_path, "folder-run.png", min_std=10)


def test_adapt_images_screenshot(viewer, qtbot, tmp_path):
    """The Adapt dock after a run on 12 radiographs of a 45 kV beam and a noisy detector
    (docs/adapt.md): the fitted beam and detector, each reference's level against the fitted
    beam's, and the new model's accuracy on the references."""
    from qtpy.QtCore import Qt

    from xray_atlas.io.images import write_image
    from xray_atlas.physics.radiograph import ALLOYS, RadiographConfig, radiograph

    cfg = RadiographConfig(kind="both", kv=45.0, filters=(("Al", 0.5),), photons=(60.0, 100.0), blur_px=(0.6, 1.0))
    rng = np.random.default_rng(1)
    refs = tmp_path / "my-radiographs"
    for label in ALLOYS:
        (refs / label).mkdir(parents=True)
        for i in range(6):
            r = radiograph(label, config=cfg, kind=("plate", "wedge")[i % 2], rng=rng, output="uint16")
            write_image(refs / label / f"{label}-{i}", r.image)
    viewer.window.resize(1600, 1000)
    _, dock = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Adapt to instrument")
    dock.folder_edit.setText(str(refs))
    dock.amount.setValue(600)
    dock.epochs.setValue(3)
    dock.out_edit.setText(str(tmp_path / "my-beam.safetensors"))
    qtbot.mouseClick(dock.adapt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dock.result is not None and dock.adapt_button.isEnabled(), timeout=300000)
    assert "detector: ~" in dock.fit_label.text()
    _screenshot(viewer, qtbot, tmp_path, "adapt-dock.png")
