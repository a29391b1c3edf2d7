"""Opening cubes and result files the way napari chooses a reader (issue 26 item 6), and result
files written by the napari writer and by the command line reopening as layers."""

import numpy as np
import pytest

from xray_atlas.io.results import read_results

PLUGIN = "napari-xray-atlas"


@pytest.fixture
def first_use(viewer):
    """A fresh session (the viewer fixture reset napari's settings) in which the plugin is used
    for the first time: npe2 activates it then (here: docking the Diffraction widget)."""
    from npe2 import PluginManager

    PluginManager.instance().deactivate(PLUGIN)  # as if this session had not used it yet

    def use() -> None:
        viewer.window.add_plugin_dock_widget(PLUGIN, "Diffraction")

    return use


def test_open_without_naming_the_plugin(viewer, first_use, tmp_path, painting_file):
    from napari.errors import MultipleReaderError
    from napari.plugins import _npe2
    from napari.plugins.utils import get_preferred_reader
    from napari.settings import get_settings

    from xray_atlas.io.results import write_results

    cube_h5, painting = painting_file
    np.save(tmp_path / "cube.npy", painting.counts[:, :, :64])
    np.save(tmp_path / "image.npy", np.arange(12.0).reshape(3, 4))
    write_results(tmp_path / "maps.h5", maps={"Pb-L": painting.maps["Pb-L"]}, attrs={"model": "maps-fit"})
    # napari picks readers by file name: its builtins claim *.h5 and *.npy too, so with no
    # preference it cannot choose (File > Open shows the "Choose reader" dialog)
    assert set(_npe2.get_readers(str(cube_h5))) == {"napari", PLUGIN}
    get_settings().plugins.extension2reader = {"*.hdf": "napari"}  # a choice of the user's own
    with pytest.raises(MultipleReaderError):
        viewer.open(str(cube_h5), plugin=None)
    first_use()
    prefs = get_settings().plugins.extension2reader
    assert prefs["*.hdf"] == "napari"  # kept
    assert all(prefs[p] == PLUGIN for p in ("*.h5", "*.hdf5", "*.npy", "*.zarr"))
    assert get_preferred_reader(str(cube_h5)) == PLUGIN
    # plugin=None is what File > Open and drag-and-drop use: no dialog is needed any more
    names = [lyr.name for lyr in viewer.open(str(cube_h5), plugin=None)]
    assert names[0] == "painting.h5 counts" and "Pb-L (reference)" in names
    (counts,) = viewer.open(str(tmp_path / "cube.npy"), plugin=None)
    np.testing.assert_array_equal(counts.data, painting.counts[:, :, :64].sum(-1))
    (pb,) = viewer.open(str(tmp_path / "maps.h5"), plugin=None)
    assert pb.name == "Pb-L (maps-fit)" and pb.blending == "additive"
    np.testing.assert_allclose(pb.data, painting.maps["Pb-L"], rtol=1e-6)
    # a plain 2-D array still opens, through napari's own reader
    (plain,) = viewer.open(str(tmp_path / "image.npy"), plugin=None)
    np.testing.assert_array_equal(plain.data, np.arange(12.0).reshape(3, 4))


def test_writer_results_reopen_as_the_same_layers(viewer, tmp_path):
    from napari.plugins.io import save_layers

    from xray_atlas.napari._layers import map_layer_data

    rng = np.random.default_rng(0)
    pb, fe = rng.random((6, 7)) * 50, rng.random((6, 7)) * 20
    p_cu = rng.random((6, 7))
    clusters = rng.integers(1, 4, (6, 7)).astype(np.int32)  # layer labels 1..3 = clusters 0..2
    clusters[0, :3] = 4  # noise
    spectra = rng.random((3, 32)).astype(np.float32)

    def add(data, kwargs, _kind):  # as the Maps and Probabilities docks add their layers
        return viewer.add_image(data, **kwargs)

    made = [
        add(*map_layer_data("Pb-L (maps-fit)", pb, line="Pb-L", extra={"model": "maps-fit"})),
        add(*map_layer_data("Fe-K (maps-fit)", fe, line="Fe-K", extra={"model": "maps-fit"})),
        add(
            *map_layer_data(
                "P(Cu) pixel (maps-fit)", p_cu, kind="probability", extra={"element": "Cu", "model": "maps-fit"}
            )
        ),
        viewer.add_labels(
            clusters,
            name="clusters",
            metadata={"xray_atlas": {"kind": "clusters", "noise_label": 4, "cluster_spectra": spectra}},
        ),
    ]
    out = tmp_path / "saved.h5"
    assert save_layers(str(out), made, plugin=PLUGIN) == [str(out)]
    viewer.layers.clear()
    layers = {lyr.name: lyr for lyr in viewer.open(str(out), plugin=PLUGIN)}
    assert set(layers) == {"Pb-L (maps-fit)", "Fe-K (maps-fit)", "P(Cu) (maps-fit)", "clusters (maps-fit)"}
    for name, truth, cmap in (("Pb-L (maps-fit)", pb, "xray-atlas Pb"), ("Fe-K (maps-fit)", fe, "xray-atlas Fe")):
        lyr = layers[name]
        assert type(lyr).__name__ == "Image" and lyr.colormap.name == cmap and lyr.blending == "additive"
        np.testing.assert_allclose(lyr.data, truth, rtol=1e-6)
    prob = layers["P(Cu) (maps-fit)"]
    assert type(prob).__name__ == "Image" and tuple(prob.contrast_limits) == (0.0, 1.0)
    assert prob.colormap.name == "xray-atlas Cu"
    np.testing.assert_allclose(prob.data, p_cu, rtol=1e-6)
    lab = layers["clusters (maps-fit)"]
    assert type(lab).__name__ == "Labels"
    np.testing.assert_array_equal(lab.data, clusters)  # same numbering: noise is label K + 1
    np.testing.assert_array_equal(lab.metadata["xray_atlas"]["cluster_spectra"], spectra)
    # saved again, the file holds the same results
    again = tmp_path / "again.h5"
    assert save_layers(str(again), list(viewer.layers), plugin=PLUGIN) == [str(again)]
    a, b = read_results(out), read_results(again)
    for group in ("maps", "probabilities"):
        assert sorted(a[group]) == sorted(b[group])
        for k in a[group]:
            np.testing.assert_array_equal(a[group][k], b[group][k])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    assert a["labels"].min() == -1


def test_command_line_results_open_as_layers(viewer, tmp_path, painting_file):
    from xray_atlas.cli import main

    cube, painting = painting_file
    maps, probs, clusters = tmp_path / "maps.h5", tmp_path / "probs.h5", tmp_path / "clusters.h5"
    assert main(["maps", str(cube), str(maps), "--lines", "Pb-L,Hg-L"]) == 0
    assert main(["probabilities", str(cube), str(probs), "--elements", "Pb,Hg"]) == 0
    assert main(["cluster", str(cube), str(clusters), "--method", "som"]) == 0
    got = {lyr.name: lyr for path in (maps, probs, clusters) for lyr in viewer.open(str(path), plugin=PLUGIN)}
    written = read_results(maps)
    model = str(written["attrs"]["model"])
    for line in ("Pb-L", "Hg-L"):
        lyr = got[f"{line} ({model})"]
        assert type(lyr).__name__ == "Image" and lyr.blending == "additive"
        np.testing.assert_array_equal(lyr.data, written["maps"][line])
    assert got[f"Hg-L ({model})"].colormap.name == "xray-atlas Hg"
    p = read_results(probs)
    pmodel = str(p["attrs"]["model"])
    for el in ("Pb", "Hg"):
        np.testing.assert_array_equal(got[f"P({el}) ({pmodel})"].data, p["probabilities"][el])
    c = read_results(clusters)
    lab = got["clusters (som)"]
    assert type(lab).__name__ == "Labels"
    k = int(c["labels"].max()) + 1
    np.testing.assert_array_equal(lab.data, np.where(c["labels"] >= 0, c["labels"] + 1, k + 1))
    # the files carry the cube's 500 um pixels: every layer lands on one millimetre grid
    for lyr in got.values():
        assert tuple(lyr.scale) == (0.5, 0.5) and str(lyr.units[0]) == "millimeter", lyr.name


def test_a_reopened_maps_file_shows_a_readable_picture(viewer, tmp_path):
    """Issue 28 (a sibling of issue 26's white canvas): twelve additive maps, all visible, turned
    a reopened maps file nearly white; like a dock's run, it shows its three strongest maps."""
    from xray_atlas.io.results import write_results

    rng = np.random.default_rng(3)
    lines = ("S-K", "K-K", "Ca-K", "Cr-K", "Mn-K", "Fe-K", "Cu-K", "Zn-K", "Sr-K", "Au-L", "Hg-L", "Pb-L")
    strength = dict(zip(lines, np.arange(1, 13) * 100.0))  # Pb-L strongest, then Hg-L, Au-L
    maps = {ln: rng.gamma(4.0, strength[ln] / 4.0, (30, 40)).astype(np.float32) for ln in lines}
    out = tmp_path / "maps.h5"
    write_results(out, maps=maps, attrs={"model": "maps-fit"})
    viewer.open(str(out), plugin=PLUGIN)
    shown = {lyr.name for lyr in viewer.layers if lyr.visible}
    assert shown == {"Pb-L (maps-fit)", "Hg-L (maps-fit)", "Au-L (maps-fit)"}
    assert len(viewer.layers) == 12
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    assert (shot.min(axis=-1) > 230).mean() < 0.05  # near-white pixels are a small minority
