import numpy as np
import pytest

from xray_atlas.io.results import read_results


def test_save_maps_and_labels_through_napari(viewer, tmp_path, painting_file):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    labels = viewer.add_labels(painting.regions, name="clusters")
    labels.metadata["xray_atlas"] = {"cluster_spectra": np.ones((7, 4096), np.float32)}
    keep = [
        viewer.layers["painting.h5 counts"],
        viewer.layers["Hg-L (reference)"],
        viewer.layers["Pb-L (reference)"],
        labels,
    ]
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


# -- the export writers (issue 28): napari picks them by extension and layer types ------------

PLUGIN = "napari-xray-atlas"


def _map_layers(viewer, rng, *, pixel_size_um=None):
    from xray_atlas.napari._layers import map_layer_data

    extra = {"model": "maps-fit", "source": "panel.h5", **({"pixel_size_um": pixel_size_um} if pixel_size_um else {})}
    pb = rng.gamma(2.0, 100.0, (9, 11)).astype(np.float32)
    fe = rng.normal(10.0, 20.0, (9, 11)).astype(np.float32)  # negatives too (least squares)
    layers = []
    for line, data in (("Pb-L", pb), ("Fe-K", fe)):  # as the Elemental maps dock makes them
        arr, kwargs, _ = map_layer_data(f"{line} (maps-fit)", data, line=line, extra=extra)
        layers.append(viewer.add_image(arr, **kwargs))
    return layers, {"Pb-L": pb, "Fe-K": fe}


def _clusters_layer(viewer, rng, channels=24):
    labels = rng.integers(1, 4, (9, 11)).astype(np.int32)  # clusters 1..3, noise 4
    labels[0, :4] = 4
    spectra = rng.gamma(2.0, 1.0, (3, channels)).astype(np.float32)
    energy = 0.5 + 0.01 * np.arange(channels)
    layer = viewer.add_labels(
        labels,
        name="clusters (som)",
        metadata={
            "xray_atlas": {
                "kind": "clusters",
                "noise_label": 4,
                "cluster_spectra": spectra,
                "method": "som",
                "energy_kev": energy,
            }
        },
    )
    return layer, labels, spectra, energy


def test_one_map_saves_as_a_float32_tiff_with_its_pixel_size(viewer, tmp_path):
    import tifffile
    from napari.plugins.io import save_layers

    layers, values = _map_layers(viewer, np.random.default_rng(1), pixel_size_um=25.0)
    out = tmp_path / "lead.tif"
    assert save_layers(str(out), [layers[0]], plugin=PLUGIN) == [str(out)]
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.dtype == np.float32 and np.array_equal(page.asarray(), values["Pb-L"])
        num, den = page.tags["XResolution"].value
        assert page.tags["ResolutionUnit"].value == 3 and 1e4 * den / num == pytest.approx(25.0)
    # the no-extension choice of several layers is the export folder; .png one figure
    fig = tmp_path / "iron.png"
    assert save_layers(str(fig), [layers[1]], plugin=PLUGIN) == [str(fig)]
    from PIL import Image

    with Image.open(fig) as im:
        assert im.format == "PNG" and im.size[0] > 400


def test_clusters_layer_saves_its_spectra_as_csv(viewer, tmp_path):
    import csv

    from napari.plugins.io import save_layers

    layer, _, spectra, energy = _clusters_layer(viewer, np.random.default_rng(2))
    out = tmp_path / "means.csv"
    assert save_layers(str(out), [layer], plugin=PLUGIN) == [str(out)]
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["energy_kev", "cluster 1", "cluster 2", "cluster 3"]
    table = np.array(rows[1:], dtype=np.float64)
    np.testing.assert_allclose(table[:, 0], energy, atol=5e-7)
    assert np.array_equal(table[:, 1:].T.astype(np.float32), spectra)
    # and into a result file, the energy axis goes with the spectra (/energy)
    h5 = tmp_path / "clusters.h5"
    assert save_layers(str(h5), [layer], plugin=PLUGIN) == [str(h5)]
    np.testing.assert_allclose(read_results(h5)["energy"], energy)


def test_several_layers_save_as_an_export_folder(viewer, tmp_path, errors):
    import tifffile
    from napari.plugins.io import save_layers

    rng = np.random.default_rng(3)
    layers, values = _map_layers(viewer, rng, pixel_size_um=40.0)
    clusters, labels, _, _ = _clusters_layer(viewer, rng)
    out = tmp_path / "for-the-report"
    written = save_layers(str(out), [*layers, clusters], plugin=PLUGIN)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "Fe-K.tif",
            "Pb-L.tif",
            "clusters.tif",
            "Fe-K.png",
            "Pb-L.png",
            "clusters.png",
            "overview.png",
            "overview.pdf",
            "cluster_spectra.csv",
        ]
    )
    assert sorted(written) == sorted(str(out / n) for n in names)
    for line, truth in values.items():
        assert np.array_equal(tifffile.imread(out / f"{line}.tif"), truth)
    # layer labels 1..3 with noise 4 -> clusters.tif 1..3 with noise 0
    assert np.array_equal(tifffile.imread(out / "clusters.tif"), np.where(labels == 4, 0, labels))
    # saved again into the same folder: refused, one error, nothing replaced
    before = {n: (out / n).stat().st_mtime_ns for n in names}
    assert save_layers(str(out), [*layers, clusters], plugin=PLUGIN) == []
    assert any("exists" in m for m in errors())
    assert {n: (out / n).stat().st_mtime_ns for n in names} == before


def test_a_layer_that_is_no_map_is_refused_with_one_error(viewer, tmp_path, errors):
    from napari.plugins.io import save_layers

    stack = viewer.add_image(np.ones((3, 4, 5), np.float32), name="stack")
    out = tmp_path / "stack.tif"
    with pytest.warns(UserWarning, match="did not return any written paths"):
        assert save_layers(str(out), [stack], plugin=PLUGIN) == []
    assert list(tmp_path.iterdir()) == []
    assert any("3-D" in m and "stack" in m for m in errors())


def test_pixel_size_and_units_go_from_layers_to_the_file_and_back(viewer, tmp_path, errors):
    # issue 28: a layer's xray-atlas metadata may hold pixel_size_um and, for maps, units
    from xray_atlas.io.results import write_results

    src = tmp_path / "src.h5"
    write_results(
        src, maps={"Fe-K": np.full((3, 4), 2.0)}, units="counts/s", pixel_size_um=50.0, attrs={"model": "lsq"}
    )
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
