"""Sample data: the painting (simulated on a worker the first time, then read from the cache),
the radiographs and the micrographs."""

import os

import numpy as np


def test_first_opening_simulates_in_the_background(viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from xray_atlas.napari._sample_data import demo_painting_path

    assert not demo_painting_path().exists()
    layers = viewer.open_sample("napari-xray-atlas", "painting")
    assert [lyr.name for lyr in layers] == ["Synthetic painting (simulating...)"]  # at once
    qtbot.waitUntil(lambda: "Synthetic painting counts" in viewer.layers, timeout=60000)
    assert "Synthetic painting (simulating...)" not in viewer.layers
    assert demo_painting_path().exists()
    counts = viewer.layers["Synthetic painting counts"]
    regions = viewer.layers["pigment regions"]
    assert counts.data.shape == regions.data.shape == (96, 128)
    assert "vermilion robe" in regions.metadata["xray_atlas"]["names"]
    assert viewer.layers["Hg-L (reference)"].data.max() > 100

    # second opening: straight from the cache, no placeholder
    layers = viewer.open_sample("napari-xray-atlas", "painting")
    assert layers[0].name.startswith("Synthetic painting counts")
    np.testing.assert_array_equal(layers[0].data, counts.data)
    assert os.path.getsize(demo_painting_path()) > 96 * 128 * 4096 * 2


def test_image_samples_carry_what_they_show(viewer):
    (radio,) = viewer.open_sample("napari-xray-atlas", "radiographs")
    assert radio.data.shape == (2, 256, 256) and radio.data.dtype == np.uint16
    assert radio.metadata["objects"] == ["Al2017 plate 2 mm", "Al1050 wedge 10 mm"]
    (micro,) = viewer.open_sample("napari-xray-atlas", "micrographs")
    assert micro.data.shape == (8, 256, 256) and len(set(micro.metadata["classes"])) == 8
