"""The Clusters dock: form from the core's table, runs on a worker, layers and result files."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from xray_atlas.cluster import METHODS, method_parameters
from xray_atlas.io.results import read_results


@pytest.fixture
def clusters(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Clusters")
    return widget


def test_form_follows_the_method_table(clusters):
    assert [clusters.method_combo.itemText(i) for i in range(clusters.method_combo.count())] == list(METHODS)
    for method in METHODS:
        clusters.method_combo.setCurrentText(method)
        assert set(clusters.fields) == set(method_parameters(method))
        assert clusters.parameters() == method_parameters(method)


def test_text_fields_are_read_as_the_command_line_reads_them(clusters):
    # one parser (xray_atlas.params.Param.check) for the form and --param
    from xray_atlas.cluster import parameter_table
    from xray_atlas.errors import XrayAtlasError

    clusters.method_combo.setCurrentText("som")
    table = parameter_table("som")
    for name, text in (("sigma", "None, 0.5"), ("lr", "0.4,0.05"), ("n_clusters", " 3 ")):
        clusters.fields[name].setText(text)
        assert clusters.parameters()[name] == table[name].check(name, text)
    assert clusters.parameters()["sigma"] == (None, 0.5) and clusters.parameters()["n_clusters"] == "3"
    assert clusters.fields["device"].currentText() == "auto"
    clusters.fields["lr"].setText("fast")
    with pytest.raises(XrayAtlasError, match="lr='fast': give comma-separated numbers"):
        clusters.parameters()


def test_run_adds_labels_and_cluster_means(viewer, clusters, qtbot, painting_file, tmp_path, idle):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    clusters.method_combo.setCurrentText("som")
    assert clusters.run() is not None
    idle(qtbot, clusters, 60000)  # computed, and its layer added over several turns of the loop
    layer = viewer.layers["clusters (som)"]
    xa = layer.metadata["xray_atlas"]
    labels = np.where(layer.data == xa["noise_label"], -1, layer.data - 1)
    assert adjusted_rand_score(painting.regions.ravel(), labels.ravel()) > 0.8
    # the inspector draws every cluster's mean spectrum
    shown = inspector.cluster_spectra_shown()
    assert len(shown) == len(xa["sizes"])
    k0 = labels == 0
    np.testing.assert_allclose(shown[0], painting.counts[k0].mean(0), rtol=1e-4)
    # saved as a result file: clusters 0..K-1 and -1 for noise, with the mean spectra
    from napari.plugins.io import save_layers

    out = tmp_path / "clusters.h5"
    assert save_layers(str(out), [layer], plugin="napari-xray-atlas") == [str(out)]
    r = read_results(out)
    np.testing.assert_array_equal(r["labels"], labels)
    assert r["cluster_spectra"].shape == (len(xa["sizes"]), 4096)


def test_preview_clusters_a_subsample(viewer, clusters, qtbot, painting_file, monkeypatch, idle):
    import xray_atlas.napari.widgets.clusters as mod

    monkeypatch.setattr(mod, "PREVIEW_PIXELS", 120)  # 480 pixels -> every 2nd row and column
    path, _ = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    clusters.method_combo.setCurrentText("som")
    # the default 16 x 16 map needs 256 pixels; this preview has 120
    clusters.fields["rows"].setValue(8)
    clusters.fields["cols"].setValue(8)
    assert clusters.preview() is not None
    idle(qtbot, clusters, 60000)
    layer = viewer.layers["clusters preview (som)"]
    assert layer.data.shape == (10, 12)
    np.testing.assert_allclose(layer.scale, 2 * np.asarray(viewer.layers[0].scale))  # every 2nd pixel


def test_bad_parameters_are_notified(viewer, clusters, painting_file, errors):
    path, _ = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    clusters.method_combo.setCurrentText("som")
    clusters.fields["rows"].setValue(0)
    assert clusters.run() is None
    assert any("rows=0" in m for m in errors())
    assert not any(lyr.name.startswith("clusters") for lyr in viewer.layers)


def test_no_cube_is_notified(clusters, errors):
    assert clusters.run() is None and clusters.preview() is None
    assert any("open a cube first" in m.lower() for m in errors())


def test_cancel_adds_no_layer(viewer, clusters, qtbot, slow_cube, add_cube_layer):
    counts = np.random.default_rng(0).poisson(3, (100, 40, 512)).astype("u2")
    add_cube_layer(viewer, slow_cube(counts=counts))
    clusters.method_combo.setCurrentText("som")
    n = len(viewer.layers)
    worker = clusters.run()
    worker.yielded.connect(lambda _: clusters.jobs.cancel_button.click())
    with qtbot.waitSignal(worker.finished, timeout=30000):
        pass
    assert worker.abort_requested and len(viewer.layers) == n
    assert clusters.jobs.status.text().endswith("cancelled")


def test_clustering_runs_in_a_child_process_that_cancel_ends(viewer, clusters, qtbot, painting_file):
    # UMAP's and HDBSCAN's numba loops held the GIL for up to 0.66 s on a thread of napari's
    # process (docs/benchmarks.md): the run goes to a child process, which Cancel ends
    import multiprocessing as mp

    path, _ = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    clusters.method_combo.setCurrentText("som")
    n = len(viewer.layers)
    seen = []

    def on_progress(_):
        seen.append([p.name for p in mp.active_children() if p.is_alive()])
        clusters.jobs.cancel_button.click()

    worker = clusters.run()
    worker.yielded.connect(on_progress)
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    assert seen and "xray-atlas-job" in seen[0]  # the child ran the clustering
    assert worker.abort_requested and len(viewer.layers) == n
    assert not [p for p in mp.active_children() if p.name == "xray-atlas-job"]  # and is gone


# -- the Refine group ----------------------------------------------------------------------


@pytest.fixture
def merged_clusters(viewer, painting_file):
    """The painting's true regions as clusters, with regions 1 and 2 (two paints) merged into
    cluster 1 (layer label 2), shown as the Clusters dock shows a run."""
    from xray_atlas.cluster import FEATURE_PARAMETERS, ClusterResult, cluster_spectra
    from xray_atlas.napari._layers import cube_of
    from xray_atlas.napari.widgets.clusters import clusters_layer_data

    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    cube = cube_of(viewer.layers[0])
    labels = np.where(
        painting.regions == 2, 1, np.where(painting.regions > 2, painting.regions - 1, painting.regions)
    ).astype(np.int32)
    spectra, sizes = cluster_spectra(cube, labels)
    result = ClusterResult(labels, spectra, sizes, "som", {**FEATURE_PARAMETERS, "seed": 0})
    data, kwargs, _ = clusters_layer_data(result, "clusters (som)", cube=cube)
    return viewer.add_labels(data, **kwargs), painting


def test_refine_split_merge_assign_and_undo_by_clicks(viewer, clusters, merged_clusters, qtbot, click, idle, tmp_path):
    from qtpy.QtCore import Qt

    from xray_atlas.napari.widgets._refine import REGION_LAYER

    layer, painting = merged_clusters
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    refine = clusters.refine
    assert refine.layer_combo.currentText() == "clusters (som)"
    start = layer.data.copy()
    start_spectra = layer.metadata["xray_atlas"]["cluster_spectra"].copy()
    assert len(inspector.cluster_spectra_shown()) == 7
    left = Qt.MouseButton.LeftButton

    # pick the merged cluster with a click on the canvas (pixel 0, 0 is region 1), split it in 2
    refine.cluster_combo.setCurrentIndex(0)
    click(qtbot, viewer, layer, 0, 0)
    assert refine.cluster_combo.currentIndex() == 1  # layer label 2 = cluster 2
    qtbot.mouseClick(refine.split_button, left)
    idle(qtbot, clusters)
    xa = layer.metadata["xray_atlas"]
    assert len(xa["sizes"]) == 8 and xa["noise_label"] == 9
    assert clusters.summary.text().startswith("8 clusters")
    # region 1 (165 px) keeps label 2, region 2 (65 px) becomes the new label 8
    np.testing.assert_array_equal(layer.data == 2, painting.regions == 1)
    np.testing.assert_array_equal(layer.data == 8, painting.regions == 2)
    shown = inspector.cluster_spectra_shown()
    assert len(shown) == 8  # the inspector redrew the means at once
    np.testing.assert_allclose(shown[7], painting.counts[painting.regions == 2].mean(0), rtol=1e-4)
    # the result file holds the refined clusters
    from napari.plugins.io import save_layers

    out = tmp_path / "refined.h5"
    assert save_layers(str(out), [layer], plugin="napari-xray-atlas") == [str(out)]
    r = read_results(out)
    np.testing.assert_array_equal(r["labels"], layer.data - 1)  # no noise: 1..8 -> 0..7
    np.testing.assert_allclose(r["cluster_spectra"][7], shown[7], rtol=1e-6)

    # merge clusters 4 and 5 (instant)
    for i in (3, 4):
        refine.merge_list.item(i).setCheckState(Qt.CheckState.Checked)
    qtbot.mouseClick(refine.merge_button, left)
    assert len(layer.metadata["xray_atlas"]["sizes"]) == 7
    np.testing.assert_array_equal(layer.data == 4, np.isin(painting.regions, [4, 5]))
    assert len(inspector.cluster_spectra_shown()) == 7

    # paint a one-pixel region with a real click of napari's brush and give it a new cluster
    qtbot.mouseClick(refine.paint_button, left)
    region = viewer.layers[REGION_LAYER]
    assert region.mode == "paint"
    region.brush_size = 1
    click(qtbot, viewer, region, 10, 3)
    assert np.argwhere(region.data > 0).tolist() == [[10, 3]]
    refine.target_combo.setCurrentText("new cluster")
    qtbot.mouseClick(refine.assign_button, left)
    idle(qtbot, clusters)
    assert len(layer.metadata["xray_atlas"]["sizes"]) == 8 and layer.data[10, 3] == 8
    np.testing.assert_allclose(layer.metadata["xray_atlas"]["cluster_spectra"][7], painting.counts[10, 3], rtol=1e-5)
    assert not region.data.any()  # cleared for the next region

    # Undo three times restores the start, labels and spectra; then there is nothing to undo
    for _ in range(3):
        assert refine.undo_button.isEnabled()
        qtbot.mouseClick(refine.undo_button, left)
    np.testing.assert_array_equal(layer.data, start)
    np.testing.assert_array_equal(layer.metadata["xray_atlas"]["cluster_spectra"], start_spectra)
    assert len(inspector.cluster_spectra_shown()) == 7
    assert not refine.undo_button.isEnabled()


def test_refine_refusals_are_notified(viewer, clusters, merged_clusters, qtbot, errors):
    from qtpy.QtCore import Qt

    layer, _ = merged_clusters
    refine = clusters.refine
    refine.merge_list.item(0).setCheckState(Qt.CheckState.Checked)
    qtbot.mouseClick(refine.merge_button, Qt.MouseButton.LeftButton)
    assert any("tick two or more" in m for m in errors())
    qtbot.mouseClick(refine.assign_button, Qt.MouseButton.LeftButton)
    assert any("nothing painted" in m for m in errors())
    refine.cluster_combo.setCurrentIndex(6)  # cluster 7: 2 pixels
    refine.k_spin.setValue(3)
    assert refine.split() is None
    assert any("too few to split into k=3" in m for m in errors())
    assert len(layer.metadata["xray_atlas"]["sizes"]) == 7  # nothing changed


def test_refine_split_cancel_changes_nothing(viewer, clusters, qtbot, slow_cube, add_cube_layer, idle):
    from xray_atlas.cluster import ClusterResult
    from xray_atlas.napari.widgets.clusters import clusters_layer_data

    counts = np.random.default_rng(0).poisson(3, (60, 8, 64)).astype("u2")
    cube = slow_cube(counts=counts)  # 0.02 s a row
    add_cube_layer(viewer, cube)
    labels = np.zeros((60, 8), np.int32)
    spectra = counts.reshape(-1, 64).mean(0, keepdims=True).astype(np.float32)
    result = ClusterResult(
        labels,
        spectra,
        np.array([480]),
        "som",
        {"trim": 0, "bin": 1, "normalise": "sqrt-total", "pca_components": 5, "seed": 0},
    )
    data, kwargs, _ = clusters_layer_data(result, "clusters (som)", cube=cube)
    layer = viewer.add_labels(data, **kwargs)
    worker = clusters.refine.split()
    assert worker is not None
    worker.yielded.connect(lambda _: clusters.jobs.cancel_button.click())
    idle(qtbot, clusters)
    assert worker.abort_requested and clusters.jobs.status.text().endswith("cancelled")
    np.testing.assert_array_equal(layer.data, data)
    assert len(layer.metadata["xray_atlas"]["sizes"]) == 1 and not clusters.refine.undo_button.isEnabled()
