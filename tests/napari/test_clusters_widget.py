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


def test_run_adds_labels_and_cluster_means(viewer, clusters, qtbot, painting_file, tmp_path):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Spectrum inspector")
    clusters.method_combo.setCurrentText("som")
    worker = clusters.run()
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
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


def test_preview_clusters_a_subsample(viewer, clusters, qtbot, painting_file, monkeypatch):
    import xray_atlas.napari.widgets.clusters as mod

    monkeypatch.setattr(mod, "PREVIEW_PIXELS", 120)  # 480 pixels -> every 2nd row and column
    path, _ = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    clusters.method_combo.setCurrentText("som")
    worker = clusters.preview()
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
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
