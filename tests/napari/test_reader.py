"""Opening files through napari's own reader machinery, then clicking pixels on the canvas."""

import hashlib

import numpy as np
import pytest

from xray_atlas.io import read
from xray_atlas.napari._layers import cube_of
from xray_atlas.napari._reader import napari_get_reader

REAL_CUBES = [
    "bruker_m6_jetstream_file_example.spx",
    "30x30_instructively_packed_16bit_compressed.bcf",
    "bcf_v2_50x50px.bcf",
    "Steel.spe",
    "XRFSpectrum.mca",
]


def test_get_reader_claims_only_what_it_can_read(tmp_path, painting_file, real_data):
    # issue 26 item 6: the reader looked at suffixes only and claimed files it could not read
    import h5py

    from xray_atlas.io.results import write_results
    from xray_atlas.napari._reader import read_layers

    cube_h5, painting = painting_file
    np.save(tmp_path / "cube.npy", painting.counts[:, :, :64])
    np.save(tmp_path / "image.npy", np.ones((8, 9)))
    write_results(tmp_path / "maps.h5", maps={"Pb-L": np.ones((4, 5))}, attrs={"model": "maps-fit"})
    (tmp_path / "empty.h5").write_bytes(b"")
    for name, arrays in {
        "flat.h5": {"spectra": (4, 4)},
        "four_d.h5": {"spectra": (2, 2, 2, 8)},
        "two_cubes.h5": {"a": (2, 2, 8), "b": (2, 2, 8)},
        "other.h5": {"table": (10,)},
    }.items():
        with h5py.File(tmp_path / name, "w") as f:
            for key, shape in arrays.items():
                f.create_dataset(key, data=np.ones(shape, "u2"))
    assert napari_get_reader(str(cube_h5)) is read_layers
    assert napari_get_reader(str(tmp_path / "cube.npy")) is read_layers
    assert napari_get_reader(str(tmp_path / "maps.h5")) is read_layers
    assert napari_get_reader(str(real_data / "bcf_v2_50x50px.bcf")) is read_layers
    assert napari_get_reader([str(cube_h5), str(real_data / "Steel.spe")]) is read_layers
    for name in ("empty.h5", "flat.h5", "four_d.h5", "two_cubes.h5", "other.h5", "image.tif", "missing.h5"):
        assert napari_get_reader(str(tmp_path / name)) is None, name
    assert napari_get_reader([str(cube_h5), str(tmp_path / "flat.h5")]) is None
    # a plain 2-D array is not a cube: napari's own reader gets it (see test_open_without_naming_the_plugin)
    plain = napari_get_reader(str(tmp_path / "image.npy"))
    assert callable(plain) and plain is not read_layers


@pytest.mark.parametrize("name", REAL_CUBES)
def test_open_real_file_and_click_a_pixel(viewer, inspector, qtbot, click, real_data, name):
    layers = viewer.open(str(real_data / name), plugin="napari-xray-atlas")
    assert len(layers) == 1
    layer = layers[0]
    cube = cube_of(layer)
    assert cube is not None
    with read(real_data / name) as ref:
        np.testing.assert_allclose(layer.data, ref.total_counts())
        y, x = ref.height // 2, ref.width // 3
        expected = ref.pixel(y, x).astype(float)
        energy = ref.energy
    assert inspector.cube_combo.currentText() == layer.name
    qtbot.wait(50)
    click(qtbot, viewer, layer, y, x)
    qtbot.waitUntil(lambda: inspector.pixel_yx == (y, x), timeout=3000)
    xs, ys = inspector.view.pixel_curve.getData()
    np.testing.assert_array_equal(ys, expected)
    np.testing.assert_allclose(xs, energy)


def test_reference_maps_become_hidden_element_layers(viewer, painting_file):
    path, painting = painting_file
    layers = viewer.open(str(path), plugin="napari-xray-atlas")
    names = [lyr.name for lyr in layers]
    assert names[0] == "painting.h5 counts"
    assert "Hg-L (reference)" in names
    hg = viewer.layers["Hg-L (reference)"]
    assert not hg.visible and hg.blending == "additive" and hg.colormap.name == "xray-atlas Hg"
    np.testing.assert_allclose(hg.data, painting.maps["Hg-L"])


@pytest.mark.parametrize(
    "case",
    ["nope", "empty", "truncated", "flat", "four_d", "nan_calibration", "nan_counts", "negative_counts", "missing"],
)
def test_bad_files_notify_and_add_nothing(viewer, errors, tmp_path, real_data, painting_file, case):
    import h5py

    if case == "nope":
        path = real_data / "Nope.bcf"
    elif case == "empty":
        path = tmp_path / "empty.h5"
        path.write_bytes(b"")
    elif case == "truncated":
        src, _ = painting_file
        path = tmp_path / "cut.h5"
        path.write_bytes(src.read_bytes()[:2000])
    elif case in ("flat", "four_d", "nan_calibration"):
        path = tmp_path / f"{case}.h5"
        shape = {"flat": (4, 4), "four_d": (2, 2, 2, 8), "nan_calibration": (2, 2, 8)}[case]
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("spectra", data=np.ones(shape, "u2"))
            ds.attrs.update(energy_offset_kev=0.0, energy_gain_kev=float("nan"))
    elif case in ("nan_counts", "negative_counts"):
        path = tmp_path / f"{case}.h5"
        data = np.ones((6, 5, 16), "f4")
        data[2, 3, 4] = np.nan if case == "nan_counts" else -1.0
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("spectra", data=data)
            ds.attrs.update(energy_offset_kev=0.0, energy_gain_kev=0.01)
    else:
        path = tmp_path / "missing.h5"
    before = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    n_layers = len(viewer.layers)
    try:
        viewer.open(str(path), plugin="napari-xray-atlas")
    except Exception as err:  # noqa: BLE001 - napari raises its own types
        # napari refuses a missing path before any plugin; files that hold no cube or result
        # (unopenable HDF5, no 3-D dataset) are refused by the reader and napari says so
        assert case in ("missing", "empty", "truncated", "flat", "four_d"), err
        assert path.name in str(err)
        assert len(viewer.layers) == n_layers and errors() == []
        return
    assert case not in ("missing", "empty", "truncated", "flat", "four_d")
    assert len(viewer.layers) == n_layers
    msgs = errors()
    assert len(msgs) == 1 and path.name in msgs[0], msgs
    if before is not None:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_large_cube_opens_through_the_streaming_path(viewer, qtbot, monkeypatch, painting_file):
    import xray_atlas.napari._reader as reader

    monkeypatch.setattr(reader, "SYNC_BYTES", 1)  # every cube counts as large
    path, painting = painting_file
    layer = viewer.open(str(path), plugin="napari-xray-atlas")[0]
    qtbot.waitUntil(lambda: not layer.metadata["xray_atlas"]["pending"], timeout=60000)
    np.testing.assert_array_equal(layer.data, painting.counts.sum(-1))
    assert layer.contrast_limits[1] == pytest.approx(float(painting.counts.sum(-1).max()))


def test_streaming_fills_in_place_and_stops_when_the_layer_is_removed(viewer, qtbot, tmp_path, slow_cube):
    from xray_atlas.napari._layers import cube_layer_data
    from xray_atlas.napari._reader import stream_total_counts
    from xray_atlas.physics.painting import synthetic_painting

    p = synthetic_painting(160, 16, seed=2)
    p.write(tmp_path / "tall.h5")
    row_bytes = 16 * 4096 * 2
    with read(tmp_path / "tall.h5") as cube:
        # full run: 20 tiles of 8 rows (chunk height 8)
        image = np.zeros((160, 16), np.float32)
        data, kwargs, _ = cube_layer_data(cube, image=image, pending=True)[0]
        layer = viewer.add_image(data, **kwargs)
        assert layer.data is image  # napari shows the very array the worker fills
        worker = stream_total_counts(cube, image, tile_bytes=row_bytes)
        seen = []
        worker.yielded.connect(seen.append)
        with qtbot.waitSignal(worker.finished, timeout=60000):
            pass
        np.testing.assert_array_equal(image, p.counts.sum(-1))
        assert not layer.metadata["xray_atlas"]["pending"] and len(seen) >= 2
        viewer.layers.remove(layer)

    # cancelled run on a slow lazy cube (10 ms per row): the layer goes away after the
    # first tile and the worker stops at the next one, long before the 200 rows are read
    cube = slow_cube((200, 16, 64), seconds_per_row=0.01)
    image = np.zeros((200, 16), np.float32)
    data, kwargs, _ = cube_layer_data(cube, image=image, pending=True)[0]
    layer = viewer.add_image(data, **kwargs)
    worker = stream_total_counts(cube, image, tile_bytes=16 * 64 * 2)
    worker.yielded.connect(lambda _: layer in viewer.layers and viewer.layers.remove(layer))
    with qtbot.waitSignal(worker.finished, timeout=60000):
        pass
    assert worker.abort_requested
    filled = np.flatnonzero(image.any(axis=1))
    assert 0 < filled.size < 100  # stopped part-way, rows filled in order
    np.testing.assert_array_equal(filled, np.arange(filled.size))


def test_ripple_scan_opens_through_napari(viewer, errors, tmp_path):
    # issue 28: .rpl + .raw, found by napari's file patterns, read lazily by io.read
    from rsciio.ripple import file_writer

    data = np.random.default_rng(2).poisson(4, (5, 6, 64)).astype("u2")
    file_writer(
        str(tmp_path / "scan.rpl"),
        {
            "data": data,
            "metadata": {"General": {"title": "scan"}, "Signal": {"signal_type": ""}},
            "axes": [
                {"name": "height", "size": 5, "scale": 50.0, "offset": 0.0, "units": "µm", "navigate": True},
                {"name": "width", "size": 6, "scale": 50.0, "offset": 0.0, "units": "µm", "navigate": True},
                {"name": "Energy", "size": 64, "scale": 0.02, "offset": 0.1, "units": "keV", "navigate": False},
            ],
        },
    )
    assert napari_get_reader(str(tmp_path / "scan.rpl")) is not None
    layer = viewer.open(str(tmp_path / "scan.rpl"), plugin=None)[0]  # as File > Open: the manifest's *.rpl
    cube = cube_of(layer)
    assert cube is not None and cube.pixel_size_um == 50.0
    np.testing.assert_array_equal(layer.data, data.sum(-1))
    (tmp_path / "scan.raw").write_bytes(b"\0" * 10)  # cut short: a notification, no layer
    n_layers = len(viewer.layers)
    viewer.open(str(tmp_path / "scan.rpl"), plugin="napari-xray-atlas")
    assert len(viewer.layers) == n_layers
    msgs = errors()
    assert len(msgs) == 1 and "scan.raw holds 10 bytes" in msgs[0], msgs


@pytest.mark.parametrize("name", ["bruker_m6_jetstream_file_example.spx", "Steel.spe"])
def test_a_single_spectrum_opens_as_a_grey_pixel_not_a_white_canvas(viewer, real_data, name):
    # found walking the Adapt dock on the M6 file: a one-pixel image got napari's limits
    # (its one value at the top) and filled the canvas with white
    layer = viewer.open(str(real_data / name), plugin="napari-xray-atlas")[0]
    assert layer.data.shape == (1, 1)
    assert layer.contrast_limits == [0.0, 2.0 * float(layer.data.max())]
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3].astype(int)
    assert (shot.min(axis=-1) > 230).mean() < 0.05  # near-white pixels are a small minority
