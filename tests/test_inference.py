"""Elemental maps from cubes: baselines against the truth, streaming, model grids, bad input."""

import numpy as np
import pytest
import torch

from xray_atlas import XrayAtlasError
from xray_atlas.cube import SpectralCube, run_to_end
from xray_atlas.evaluation import limit_fit
from xray_atlas.metrics import map_scores
from xray_atlas.inference import iter_maps, load_map_model, predict_maps
from xray_atlas.io import read
from xray_atlas.models import ModelCard, build, save_model
from xray_atlas.physics.lines import DEFAULT_MAP_LINES
from xray_atlas.physics.painting import synthetic_painting


@pytest.fixture(scope="module")
def painting():
    return synthetic_painting(24, 32, seed=11, layout="random", truth=True, n_channels=2048)


@pytest.fixture
def painting_cube(painting, tmp_path):
    path = tmp_path / "p.h5"
    painting.write(path)
    with read(path) as cube:
        yield cube


def test_baselines_against_the_truth_and_the_limit(painting, painting_cube):
    lines = [ln for ln in DEFAULT_MAP_LINES if painting.maps.get(ln, np.zeros(1)).max() > 50]
    limit = map_scores(limit_fit(painting, lines), painting.maps, lines)
    lsq, _ = predict_maps(painting_cube, "lsq", device="cpu", lines=tuple(lines))
    roi, _ = predict_maps(painting_cube, "roi", device="cpu", lines=tuple(lines))
    s_lsq, s_roi = map_scores(lsq, painting.maps, lines), map_scores(roi, painting.maps, lines)
    # the limit fit knows the simulator's spectra: near-unbiased; both baselines are worse
    assert 0.97 < limit["mean"]["slope"] < 1.03 and limit["mean"]["pearson"] > 0.98
    assert limit["mean"]["mae"] < s_lsq["mean"]["mae"] < s_roi["mean"]["mae"] * 1.5
    assert 0.85 < s_lsq["mean"]["slope"] < 1.1 and s_lsq["mean"]["pearson"] > 0.9
    assert all(np.isfinite(m).all() and (m >= 0).all() for m in lsq.values())


def test_streaming_gives_the_same_maps_in_small_tiles(painting_cube):
    model = load_map_model("lsq", painting_cube, device="cpu")
    whole = run_to_end(iter_maps(painting_cube, model))
    steps = iter_maps(painting_cube, model, tile_bytes=32 * 2048 * 2 * 3, batch=50)  # 3 rows per tile
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as stop:
            tiled = stop.value
            break
    assert progress[-1].done == progress[-1].total >= 3  # tiles of whole chunk rows
    for ln in whole:
        np.testing.assert_allclose(tiled[ln], whole[ln], rtol=1e-5, atol=1e-3)


def test_empty_pixels_give_zeros_not_nan(tmp_path):
    counts = np.zeros((3, 4, 1024), np.float32)
    counts[0, 0, 500] = 10
    cube = SpectralCube(counts, offset_kev=0.0, gain_kev=0.02)
    for name in ("lsq", "roi"):
        maps, _ = predict_maps(cube, name, device="cpu")
        assert all(np.isfinite(m).all() and m[1:].max() == 0 for m in maps.values())
    model, cfg = build("prior-mlp", n_channels=1024, gain_kev=0.02)
    card = ModelCard("prior-mlp", cfg, "maps", inputs={"n_channels": 1024, "energy_offset_kev": 0.0,
                                                       "energy_gain_kev": 0.02}, outputs=list(DEFAULT_MAP_LINES))
    save_model(tmp_path / "m.safetensors", model, card)
    maps, _ = predict_maps(cube, tmp_path / "m.safetensors", device="cpu")
    assert all(np.isfinite(m).all() and m[1:].max() == 0 for m in maps.values())


def test_model_grid_resampled_when_safe_refused_otherwise(tmp_path, painting_cube):
    model, cfg = build("fcn", n_channels=1024, hidden=(8,))
    card = ModelCard("fcn", cfg, "maps", inputs={"n_channels": 1024, "energy_offset_kev": 0.0,
                                                 "energy_gain_kev": 0.04}, outputs=list(DEFAULT_MAP_LINES))
    save_model(tmp_path / "m", model, card)
    mm = load_map_model(tmp_path / "m", painting_cube, device="cpu")  # cube: 2048 x 10 eV
    assert mm.energy is not None and "resampled the cube's 2048 channels of 10.00 eV" in mm.notes[0]
    # rebinning conserves counts: 2048 channels of 10 eV -> 1024 of 40 eV
    block = np.asarray(painting_cube.counts[0], np.float32)
    np.testing.assert_allclose(mm.resample(block, painting_cube.energy).sum(1), block.sum(1), rtol=1e-4)
    # a cube that stops below the model's lines is refused
    short = SpectralCube(np.ones((2, 2, 500), np.float32), offset_kev=0.0, gain_kev=0.02)  # 0-10 keV
    with pytest.raises(XrayAtlasError, match="refusing to guess"):
        load_map_model(tmp_path / "m", short, device="cpu")
    bare = SpectralCube(np.ones((2, 2, 500), np.float32))
    with pytest.raises(XrayAtlasError, match="uncalibrated"):
        load_map_model(tmp_path / "m", bare, device="cpu")
    with pytest.raises(XrayAtlasError, match="needs an energy calibration"):
        load_map_model("lsq", bare, device="cpu")
    with pytest.raises(XrayAtlasError, match="neither a model file nor a known name"):
        load_map_model("no-such-model", painting_cube, device="cpu")
    with pytest.raises(XrayAtlasError, match="Xx-K not among"):
        run_to_end(iter_maps(painting_cube, mm, lines=("Xx-K",)))
