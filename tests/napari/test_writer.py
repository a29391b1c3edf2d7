import numpy as np

from xray_atlas.io.results import read_results


def test_save_maps_and_labels_through_napari(viewer, tmp_path, painting_file):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    labels = viewer.add_labels(painting.regions, name="clusters")
    labels.metadata["xray_atlas"] = {"cluster_spectra": np.ones((7, 4096), np.float32)}
    keep = [viewer.layers["painting.h5 counts"], viewer.layers["Hg-L (reference)"],
            viewer.layers["Pb-L (reference)"], labels]
    out = tmp_path / "result.h5"
    written = _save(viewer, out, keep)
    assert written == [str(out)]
    r = read_results(out)
    assert sorted(r["maps"]) == ["Hg-L", "Pb-L"]  # the counts layer is the input, not a result
    np.testing.assert_allclose(r["maps"]["Hg-L"], painting.maps["Hg-L"])
    np.testing.assert_array_equal(r["labels"], painting.regions)
    assert r["cluster_spectra"].shape == (7, 4096)
    assert r["attrs"]["model"] == "napari"


def _save(viewer, out, layers):
    from napari.plugins.io import save_layers

    return save_layers(str(out), layers, plugin="napari-xray-atlas")


def test_bad_save_notifies_and_writes_nothing(viewer, tmp_path, errors):
    from napari.plugins.io import save_layers

    a = viewer.add_image(np.ones((4, 4)), name="a")
    b = viewer.add_image(np.ones((5, 5)), name="b")
    out = tmp_path / "bad.h5"
    written = save_layers(str(out), [a, b], plugin="napari-xray-atlas")
    assert written == []
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert any("shape" in m for m in errors())
