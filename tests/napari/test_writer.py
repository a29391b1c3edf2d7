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


def test_pixel_size_and_units_go_from_layers_to_the_file_and_back(viewer, tmp_path, errors):
    # issue 28: a layer's xray-atlas metadata may hold pixel_size_um and, for maps, units
    from xray_atlas.io.results import write_results

    src = tmp_path / "src.h5"
    write_results(src, maps={"Fe-K": np.full((3, 4), 2.0)}, units="counts/s", pixel_size_um=50.0,
                  attrs={"model": "lsq"})
    layers = viewer.open(str(src), plugin="napari-xray-atlas")
    assert layers[0].metadata["xray_atlas"]["pixel_size_um"] == 50.0
    assert layers[0].metadata["xray_atlas"]["units"] == "counts/s"
    out = tmp_path / "again.h5"
    assert _save(viewer, out, layers) == [str(out)]
    r = read_results(out)
    assert r["attrs"]["units"] == "counts/s" and r["attrs"]["pixel_size_um"] == 50.0
    counts = viewer.add_image(np.ones((3, 4), np.float32), name="Pb-L", metadata={"xray_atlas": {"line": "Pb-L"}})
    mixed = tmp_path / "mixed.h5"
    assert _save(viewer, mixed, [layers[0], counts]) == []  # counts/s beside counts: one file records one
    assert not mixed.exists() and any("different units (counts, counts/s)" in m for m in errors())
