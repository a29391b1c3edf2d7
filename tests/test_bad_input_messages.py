"""Messages of issue 27's refusals that the sweep (tests/badinput) checks only through the
command line: each names the parameter or file, gives the bound, never passes on advice to
allow pickles."""

import numpy as np
import pytest

from xray_atlas.errors import XrayAtlasError


def test_small_cube_clustering_names_the_parameter_that_fixes_it():
    from xray_atlas.cluster.methods import check_umap_hdbscan

    with pytest.raises(XrayAtlasError, match=r"min_cluster_size=0.01 gives 0 of 36 .*min_cluster_size=3"):
        check_umap_hdbscan(36)
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(XrayAtlasError, match="min_cluster_size"):
            check_umap_hdbscan(1000, min_cluster_size=bad)


def test_tophat_is_bounded_by_the_image():
    from xray_atlas.diffraction import check_tophat, prepare_image

    check_tophat(16, (32, 32))
    with pytest.raises(XrayAtlasError, match=r"tophat=1000000 must lie in \[0, 16\]"):
        prepare_image(np.ones((32, 32)), tophat=1_000_000)


def test_pickled_npy_is_refused_without_numpys_advice(tmp_path):
    from xray_atlas.io.images import read_image

    path = tmp_path / "o.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(XrayAtlasError) as info:
        read_image(path)
    assert "o.npy" in str(info.value) and "never loaded" in str(info.value) and "allow_pickle" not in str(info.value)


def test_a_card_that_disagrees_with_its_network_is_refused_at_load(tmp_path):
    from xray_atlas.models import ModelCard, build, load_model, save_model

    model, cfg = build("prior-mlp", n_channels=256, gain_kev=0.08, hidden=(4,))
    lines = list(cfg["lines"])
    inputs = {"n_channels": 256, "energy_offset_kev": 0.0, "energy_gain_kev": 0.08}
    save_model(
        tmp_path / "three.safetensors", model, ModelCard("prior-mlp", cfg, "maps", outputs=lines[:3], inputs=inputs)
    )
    save_model(
        tmp_path / "wide.safetensors",
        model,
        ModelCard("prior-mlp", cfg, "maps", outputs=lines, inputs={**inputs, "n_channels": 512}),
    )
    with pytest.raises(
        XrayAtlasError, match=f"three.safetensors: the card lists 3 outputs but the network has {len(lines)}"
    ):
        load_model(tmp_path / "three.safetensors")
    with pytest.raises(XrayAtlasError, match="wide.safetensors: the card's inputs say n_channels=512"):
        load_model(tmp_path / "wide.safetensors")


def test_non_regular_inputs_are_refused_at_once(tmp_path):
    import os

    from xray_atlas.io import read
    from xray_atlas.io.images import read_image

    os.mkfifo(tmp_path / "pipe.h5")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(XrayAtlasError, match="pipe.h5: is not a regular file"):
        read(tmp_path / "pipe.h5")
    with pytest.raises(XrayAtlasError, match="pipe.png: is not a regular file"):
        read_image(tmp_path / "pipe.png")
