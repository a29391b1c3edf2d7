"""Elemental maps from cubes: baselines against the truth, streaming, model grids, bad input."""

import numpy as np
import pytest
import torch

from xray_atlas import XrayAtlasError
from xray_atlas.cube import SpectralCube, run_to_end
from xray_atlas.evaluation import limit_fit
from xray_atlas.inference import iter_maps, load_map_model, predict_maps
from xray_atlas.io import read
from xray_atlas.metrics import map_scores
from xray_atlas.models import ModelCard, build, save_model
from xray_atlas.models.prior import PRIOR_FAMILIES
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
    lsq = predict_maps(painting_cube, "lsq", device="cpu", lines=tuple(lines)).maps
    roi = predict_maps(painting_cube, "roi", device="cpu", lines=tuple(lines)).maps
    s_lsq, s_roi = map_scores(lsq, painting.maps, lines), map_scores(roi, painting.maps, lines)
    # the limit fit knows the simulator's spectra: near-unbiased; both baselines are worse
    assert 0.97 < limit["mean"]["slope"] < 1.03 and limit["mean"]["pearson"] > 0.98
    assert limit["mean"]["mae"] < s_lsq["mean"]["mae"] < s_roi["mean"]["mae"] * 1.5
    assert 0.85 < s_lsq["mean"]["slope"] < 1.1 and s_lsq["mean"]["pearson"] > 0.9
    assert all(np.isfinite(m).all() and (m >= 0).all() for m in lsq.values())


def test_streaming_gives_the_same_maps_in_small_tiles(painting_cube):
    model = load_map_model("lsq", painting_cube, device="cpu")
    whole = run_to_end(iter_maps(painting_cube, model)).maps
    progress = []
    tiled = run_to_end(
        iter_maps(painting_cube, model, tile_bytes=32 * 2048 * 2 * 3, batch=50),  # 3 rows per tile
        progress.append,
    ).maps
    assert progress[-1].done == progress[-1].total >= 3  # tiles of whole chunk rows
    for ln in whole:
        np.testing.assert_allclose(tiled[ln], whole[ln], rtol=1e-5, atol=1e-3)


def test_a_run_returns_its_result_and_leaves_the_model_as_loaded(tmp_path, painting_cube):
    """Issue 30 item 3, the stale-notes bug: a run's notes, clusters and chi-square were written
    into the model, so that a model used twice (the docks, a batch's cached model) carried the
    first run's notes into the second's. Each run now returns its own MapsResult."""
    import dataclasses

    # a model with a note of its own from loading (its grid is resampled), and the fit, whose
    # run adds notes, clusters, chi-square and found families
    module, cfg = build("fcn", n_channels=1024, hidden=(8,))
    inputs = {"n_channels": 1024, "energy_offset_kev": 0.0, "energy_gain_kev": 0.04}
    save_model(tmp_path / "m", module, ModelCard("fcn", cfg, "maps", inputs=inputs, outputs=list(DEFAULT_MAP_LINES)))
    for name in (tmp_path / "m", "fit"):
        mm = load_map_model(name, painting_cube, device="cpu")
        loaded = list(mm.notes)
        first, second = (run_to_end(iter_maps(painting_cube, mm)) for _ in range(2))
        assert mm.notes == loaded and not hasattr(mm, "labels")  # nothing written into the model
        assert first.notes == second.notes and first.notes[: len(loaded)] == tuple(loaded)
        assert len(set(first.notes)) == len(first.notes)  # no note twice
        assert first.model == mm.name and first.lines == tuple(first.maps) and first.units == "counts"
        for ln in first.lines:
            np.testing.assert_array_equal(first.maps[ln], second.maps[ln])
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.notes = ()
    assert loaded == [] and any("per-cluster fit" in n for n in first.notes)
    assert first.labels.shape == first.reduced_chi2.shape == (24, 32)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert [f.line for f in first.found] == [f.line for f in second.found]
    assert set(first.lines) == set(DEFAULT_MAP_LINES) | {f.line for f in first.found}
    # a run with lines named looks for none: its result says so, whatever the model ran before
    named = run_to_end(iter_maps(painting_cube, mm, lines=("Pb-L",)))
    assert named.found == () and named.lines == ("Pb-L",) and not any(n.startswith("found in") for n in named.notes)


def test_empty_pixels_give_zeros_not_nan(tmp_path):
    counts = np.zeros((3, 4, 1024), np.float32)
    counts[0, 0, 500] = 10
    cube = SpectralCube(counts, offset_kev=0.0, gain_kev=0.02)
    for name in ("lsq", "roi"):
        maps = predict_maps(cube, name, device="cpu").maps
        assert all(np.isfinite(m).all() and m[1:].max() == 0 for m in maps.values())
    model, cfg = build("prior-mlp", n_channels=1024, gain_kev=0.02)
    card = ModelCard(
        "prior-mlp",
        cfg,
        "maps",
        inputs={"n_channels": 1024, "energy_offset_kev": 0.0, "energy_gain_kev": 0.02},
        outputs=list(DEFAULT_MAP_LINES),
    )
    save_model(tmp_path / "m.safetensors", model, card)
    maps = predict_maps(cube, tmp_path / "m.safetensors", device="cpu").maps
    assert all(np.isfinite(m).all() and m[1:].max() == 0 for m in maps.values())


def test_model_grid_resampled_when_safe_refused_otherwise(tmp_path, painting_cube):
    model, cfg = build("fcn", n_channels=1024, hidden=(8,))
    card = ModelCard(
        "fcn",
        cfg,
        "maps",
        inputs={"n_channels": 1024, "energy_offset_kev": 0.0, "energy_gain_kev": 0.04},
        outputs=list(DEFAULT_MAP_LINES),
    )
    save_model(tmp_path / "m", model, card)
    mm = load_map_model(tmp_path / "m", painting_cube, device="cpu")  # cube: 2048 x 10 eV
    assert mm.energy is not None and "resampled the cube's 2048 channels of 10.00 eV" in mm.notes[0]
    # rebinning conserves counts: 2048 channels of 10 eV -> 1024 of 40 eV
    block = np.asarray(painting_cube.counts[0], np.float32)
    got = mm.resample(block, painting_cube.energy)
    assert mm.low_channels == 23 and not got[:, :23].any()  # the noise-peak channels (< 0.9 keV) read zero
    np.testing.assert_allclose(got.sum(1), block[:, painting_cube.energy >= 0.9 - 0.02].sum(1), rtol=2e-3)
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
    with pytest.raises(XrayAtlasError, match="'Xx' is not an element symbol"):
        run_to_end(iter_maps(painting_cube, mm, lines=("Xx-K",)))


def _spatial_model(*, gain, n_channels=2048, seed=0):
    """A spatial map model with random weights (a fresh one starts as the pixel's least squares
    and would ignore its neighbours)."""
    model, cfg = build("spatial-prior-mlp", n_channels=n_channels, gain_kev=gain, hidden=(16,))
    torch.manual_seed(seed)
    torch.nn.init.normal_(model.mlp[-1].weight, std=0.5)
    card = ModelCard(
        "spatial-prior-mlp",
        cfg,
        "maps",
        outputs=list(DEFAULT_MAP_LINES),
        inputs={"n_channels": n_channels, "energy_offset_kev": 0.0, "energy_gain_kev": gain},
    )
    return model.eval(), card


def test_spatial_model_streams_the_block_means_it_was_trained_on(painting, painting_cube, tmp_path):
    from xray_atlas.models.spectral import neighbourhood_mean

    model, card = _spatial_model(gain=painting.energy_gain_kev)  # the cube's own grid: no resampling
    save_model(tmp_path / "s.safetensors", model, card)
    mm = load_map_model(tmp_path / "s.safetensors", painting_cube, device="cpu")
    # tiles of 3 rows with halos of 2: every tile's blocks reach into the next tile's rows
    streamed = run_to_end(iter_maps(painting_cube, mm, tile_bytes=32 * 2048 * 2 * 3, batch=100)).maps
    counts = painting.counts.astype(np.float32)
    counts[..., painting.energy < 0.9] = 0  # the noise-peak channels every map model reads as zero
    x = np.stack([counts.reshape(-1, 2048), neighbourhood_mean(counts, 5).reshape(-1, 2048)], axis=1)
    with torch.no_grad():
        direct = model(torch.from_numpy(x)).numpy().reshape(24, 32, -1)
    for j, ln in enumerate(DEFAULT_MAP_LINES):
        np.testing.assert_allclose(streamed[ln], direct[..., j], rtol=1e-3, atol=1e-2 * max(direct[..., j].max(), 1))
    assert any(direct[..., j].max() > 10 for j in range(len(DEFAULT_MAP_LINES)))
    # the neighbours count: changing the pixel two rows up changes the map here, five rows up does not
    near, far = painting.counts.astype(np.float32), painting.counts.astype(np.float32)
    near[8, 10] *= 3
    far[5, 10] *= 3
    kept = near.copy()
    assert kept[..., :90].any()  # counts below 0.9 keV: masked for the model, never in the cube
    got = {}
    for name, c in (("near", near), ("far", far)):
        cube = SpectralCube(c, offset_kev=painting.energy_offset_kev, gain_kev=painting.energy_gain_kev)
        got[name] = run_to_end(iter_maps(cube, load_map_model(tmp_path / "s.safetensors", cube, device="cpu"))).maps
    np.testing.assert_array_equal(near, kept)

    def diff(name):
        return max(abs(got[name][ln][10, 10] - streamed[ln][10, 10]) for ln in DEFAULT_MAP_LINES)

    assert diff("near") > 1e-3 and diff("far") < 1e-3


def test_spatial_models_need_a_source_with_neighbours(tmp_path):
    from xray_atlas.training import check_run, make_config

    cfg = make_config("maps", model="spatial-prior-mlp", source="synthetic-spectra", epochs=1)
    with pytest.raises(XrayAtlasError, match="reads 5 x 5 pixel neighbourhoods.*synthetic-spectra"):
        check_run(cfg, tmp_path / "m.safetensors")
    with pytest.raises(XrayAtlasError, match="neighbourhood=4 must be an odd number"):
        build("spatial-prior-mlp", neighbourhood=4)


def test_fit_model_streams_the_cluster_fit_beside_the_counts(painting, painting_cube, tmp_path):
    from xray_atlas.clusterfit import iter_cluster_fit_inputs

    model, cfg = build("fit-mlp", n_channels=2048, gain_kev=painting.energy_gain_kev, hidden=(16,))
    torch.manual_seed(0)
    torch.nn.init.normal_(model.mlp[-1].weight, std=0.5)  # a fresh one returns the fit itself
    card = ModelCard(
        "fit-mlp",
        cfg,
        "maps",
        outputs=list(DEFAULT_MAP_LINES),
        inputs={"n_channels": 2048, "energy_offset_kev": 0.0, "energy_gain_kev": painting.energy_gain_kev},
    )
    save_model(tmp_path / "f.safetensors", model.eval(), card)
    mm = load_map_model(tmp_path / "f.safetensors", painting_cube, device="cpu")
    progress = []
    # not held to the fit's errors here (this random correction is far outside them) nor shrunk
    # to the clusters: the model's own values, streamed
    free = run_to_end(
        iter_maps(painting_cube, mm, tile_bytes=32 * 2048 * 2 * 3, batch=100, hold_se=None, shrink=False),
        progress.append,
    )
    streamed = free.maps
    # three passes of the fit, then one of the model, tile by tile
    n_tiles = -(-24 // painting_cube.tile_rows(32 * 2048 * 2 * 3))
    assert n_tiles >= 2 and [p.done for p in progress] == list(range(4 * n_tiles + 1))
    assert progress[-1].total == 4 * n_tiles
    assert free.labels.shape == (24, 32) and any("per-cluster fit" in n for n in free.notes)
    counts = painting.counts.astype(np.float32).reshape(-1, 2048)
    counts[:, painting.energy < 0.9] = 0
    fitted = run_to_end(iter_cluster_fit_inputs(painting_cube))
    with torch.no_grad():
        direct = model(torch.from_numpy(np.concatenate([counts, fitted], axis=1))).numpy().reshape(24, 32, -1)
    for j, ln in enumerate(DEFAULT_MAP_LINES):
        np.testing.assert_allclose(streamed[ln], direct[..., j], rtol=1e-3, atol=1e-2 * max(direct[..., j].max(), 1))
    pb = DEFAULT_MAP_LINES.index("Pb-L")
    fit_pb = fitted[:, PRIOR_FAMILIES.index("Pb-L")]
    assert not np.allclose(direct[..., pb].ravel(), fit_pb, rtol=1e-2)  # the correction acts
    # held (the default), the maps move back towards the fit's: within its band, pixel by pixel
    done = run_to_end(iter_maps(painting_cube, mm, tile_bytes=32 * 2048 * 2 * 3, batch=100, shrink=False))
    held = done.maps
    assert np.abs(held["Pb-L"].ravel() - fit_pb).mean() < 0.5 * np.abs(streamed["Pb-L"].ravel() - fit_pb).mean()
    assert any("standard errors of the per-cluster fit" in n for n in done.notes)
    assert not any("empirical Bayes" in n for n in done.notes)
    assert not any("standard errors" in n for n in free.notes)  # each run's own notes
    # shrunk (the default) towards each pixel's own cluster: totals kept, the run says so
    done = run_to_end(iter_maps(painting_cube, mm, tile_bytes=32 * 2048 * 2 * 3, batch=100))
    shrunk = done.maps
    assert any("empirical Bayes" in n and "3 x 3 block" in n for n in done.notes)
    assert float(shrunk["Pb-L"].sum()) == pytest.approx(float(held["Pb-L"].sum()), rel=0.02)
    assert not np.allclose(shrunk["Pb-L"], held["Pb-L"])
    for bad in (0, -1.0, float("nan"), "2"):
        with pytest.raises(XrayAtlasError, match="hold_se="):
            run_to_end(iter_maps(painting_cube, mm, hold_se=bad))
    for bad in ("no", 1, None):
        with pytest.raises(XrayAtlasError, match="shrink="):
            run_to_end(iter_maps(painting_cube, mm, shrink=bad))
    with pytest.raises(XrayAtlasError, match="fits the cube by clusters.*calibration"):
        load_map_model(tmp_path / "f.safetensors", SpectralCube(painting.counts), device="cpu")
    with pytest.raises(XrayAtlasError, match="per-cluster fit of whole scans.*synthetic-spectra"):
        from xray_atlas.training import check_run, make_config

        check_run(make_config("maps", model="fit-mlp", source="synthetic-spectra", epochs=1), tmp_path / "m")


def test_default_model_and_its_stand_in_without_calibration(painting, painting_cube):
    from xray_atlas.inference import DEFAULT_MAPS_MODEL, UNCALIBRATED_MAPS_MODEL

    mm = load_map_model(None, painting_cube, device="cpu")
    assert mm.name == DEFAULT_MAPS_MODEL == "maps-fit" and getattr(mm.module, "cluster_fit", False)
    bare = SpectralCube(np.ones((2, 3, 4096), np.float32))  # no calibration: the fit cannot run
    mm = load_map_model(None, bare, device="cpu")
    assert mm.name == UNCALIBRATED_MAPS_MODEL == "maps-default"
    assert any("needs its energy calibration" in n and "maps-default instead" in n for n in mm.notes)
    with pytest.raises(XrayAtlasError, match="fits the cube by clusters"):  # asked for by name: refused
        load_map_model(DEFAULT_MAPS_MODEL, bare, device="cpu")
    # its notes point to what would run maps-fit: a calibration first
    bright = SpectralCube(np.full((2, 3, 4096), 100.0, np.float32))
    mm = load_map_model(None, bright, device="cpu")
    done = run_to_end(iter_maps(bright, mm))
    assert any(
        "three times the counts" in n
        and n.endswith("give the cube its energy calibration and compare with --model maps-fit or fit")
        for n in done.notes
    ), done.notes


def test_familiarity_guard_falls_back_to_least_squares_on_unlike_spectra(painting, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from xray_atlas.models import load_model
    from xray_atlas.models.spectral import fit_familiarity

    model, cfg = build("prior-mlp", n_channels=2048, gain_kev=painting.energy_gain_kev, hidden=(16,))
    torch.manual_seed(0)
    torch.nn.init.normal_(model.net.mlp[-1].weight, std=0.5)  # a correction far from zero
    model.eval()
    x = torch.from_numpy(painting.counts.reshape(-1, 2048).astype(np.float32))
    torch.set_grad_enabled(False)
    try:
        plain = model(x)
        assert torch.all(model.net.guard.fallback == 0)  # off until fitted
        assert fit_familiarity(model, x) and not fit_familiarity(build("fcn", n_channels=64, hidden=(4,))[0], x[:, :64])
        fitted = model(x)
    finally:
        torch.set_grad_enabled(True)
    familiar = model.net.guard.fallback == 0
    assert familiar.float().mean() >= 0.998  # its own pixels keep the learnt correction
    torch.testing.assert_close(fitted[familiar], plain[familiar])
    # a spectrum like none of them (one line at 15 keV on a flat continuum) gets the least squares value
    odd = torch.ones(3, 2048)
    odd[:, 1490:1510] += 400.0
    with torch.no_grad():
        model.net.mlp[-1].weight.zero_()
        model.net.mlp[-1].bias.zero_()
        lsq_only = model(odd)
        torch.nn.init.normal_(model.net.mlp[-1].weight, std=0.5)
        guarded = model(odd)
    assert torch.all(model.net.guard.fallback == 1)
    torch.testing.assert_close(guarded, lsq_only)
    # streamed over a cube, the share of such pixels is reported
    save_model(
        tmp_path / "g.safetensors",
        model,
        ModelCard(
            "prior-mlp",
            cfg,
            "maps",
            outputs=list(DEFAULT_MAP_LINES),
            inputs={"n_channels": 2048, "energy_offset_kev": 0.0, "energy_gain_kev": painting.energy_gain_kev},
        ),
    )
    mixed = painting.counts.astype(np.float32).copy()
    mixed[:6] = odd[0].numpy()  # a quarter of the rows
    cube = SpectralCube(mixed, offset_kev=0.0, gain_kev=painting.energy_gain_kev)
    mm = load_map_model(tmp_path / "g.safetensors", cube, device="cpu")
    done = run_to_end(iter_maps(cube, mm))
    assert any(n.startswith(("25.", "26.")) and "unlike the spectra the model was trained on" in n for n in done.notes)
    # a model file from before the guard loads with it off
    card = ModelCard(
        "prior-mlp",
        cfg,
        "maps",
        outputs=list(DEFAULT_MAP_LINES),
        inputs={"n_channels": 2048, "energy_offset_kev": 0.0, "energy_gain_kev": painting.energy_gain_kev},
    )
    save_model(tmp_path / "m.safetensors", model, card)
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        meta = f.metadata()
    state = {k: v for k, v in load_file(str(tmp_path / "m.safetensors")).items() if "guard." not in k}
    save_file(state, str(tmp_path / "old.safetensors"), metadata=meta)
    old, _ = load_model(tmp_path / "old.safetensors")
    old(odd)
    assert torch.all(old.net.guard.fallback == 0)


@pytest.mark.parametrize("name", ["prior-mlp", "spatial-prior-mlp"])
def test_pixels_far_above_the_training_counts_are_reported(painting, tmp_path, name):
    model, cfg = build(name, n_channels=2048, gain_kev=painting.energy_gain_kev, hidden=(16,))
    totals = painting.counts.reshape(-1, 2048).sum(1, dtype=np.float64)
    inputs = {"n_channels": 2048, "energy_offset_kev": 0.0, "energy_gain_kev": painting.energy_gain_kev}
    lines = list(DEFAULT_MAP_LINES)
    save_model(
        tmp_path / "m.safetensors",
        model,
        ModelCard(
            name,
            cfg,
            "maps",
            outputs=lines,
            inputs={**inputs, "total_counts": [float(totals.min()), float(np.percentile(totals, 99.9))]},
        ),
    )
    save_model(tmp_path / "old.safetensors", model, ModelCard(name, cfg, "maps", outputs=lines, inputs=inputs))
    counts = painting.counts.astype(np.float32)
    own = SpectralCube(counts, offset_kev=0.0, gain_kev=painting.energy_gain_kev)
    mm = load_map_model(tmp_path / "m.safetensors", own, device="cpu")
    done = run_to_end(iter_maps(own, mm))
    assert not any("counts of the model's training pixels" in n for n in done.notes)  # its own kind of pixels
    long = counts.copy()
    long[:6] *= 10.0  # a quarter of the rows scanned ten times longer
    cube = SpectralCube(long, offset_kev=0.0, gain_kev=painting.energy_gain_kev)
    for path, told in (("m.safetensors", True), ("old.safetensors", False)):
        mm = load_map_model(tmp_path / path, cube, device="cpu")
        done = run_to_end(iter_maps(cube, mm))
        note = [n for n in done.notes if "counts of the model's training pixels" in n]
        assert bool(note) == told, (path, done.notes)
    assert note == [] and mm.most_counts is None
    mm = load_map_model(tmp_path / "m.safetensors", cube, device="cpu")
    done = run_to_end(iter_maps(cube, mm))
    (note,) = [n for n in done.notes if "counts of the model's training pixels" in n]
    assert note.startswith("25.0% of the pixels")
    read = long[:6, :, mm.low_channels :].sum(-1, dtype=np.float64)  # the noise-peak channels read as zero
    assert f"median {np.median(read):,.0f} against at most {np.percentile(totals, 99.9):,.0f}" in note


def test_prior_mlp_level_input_is_held_within_its_range(painting):
    model, _ = build(
        "prior-mlp",
        n_channels=2048,
        gain_kev=painting.energy_gain_kev,
        hidden=(16,),
        level=True,
        level_range=(2.0, 4.0),
    )
    x = torch.from_numpy(painting.counts.reshape(-1, 2048)[:64].astype(np.float32))
    assert float(x.sum(dim=1).min()) > 100.0  # 10 x these counts lie above 10^4
    model.eval()
    with torch.no_grad():
        fresh = model(x)  # the last layer starts at zero: the least-squares value at any count level
        torch.testing.assert_close(model(10 * x), 10 * fresh, rtol=1e-4, atol=1e-3)
        torch.nn.init.normal_(model.net.mlp[-1].weight, std=0.5)
        # within the range the count level changes the correction; beyond it the model acts as
        # at its edge, so the maps scale with the counts instead of extrapolating
        assert (model(10 * x) - 10 * model(x)).abs().max() > 1.0
        torch.testing.assert_close(model(1000 * x), 10 * model(100 * x), rtol=1e-4, atol=1e-2)
    # the spatial model takes the pixel's level the same way
    spatial, _ = build(
        "spatial-prior-mlp",
        n_channels=2048,
        gain_kev=painting.energy_gain_kev,
        hidden=(16,),
        level=True,
        level_range=(2.0, 4.0),
    )
    spatial.eval()
    pair = torch.stack([x, x.roll(1, dims=0)], dim=1)
    with torch.no_grad():
        torch.nn.init.normal_(spatial.mlp[-1].weight, std=0.5)
        assert (spatial(10 * pair) - 10 * spatial(pair)).abs().max() > 1.0
        torch.testing.assert_close(spatial(1000 * pair), 10 * spatial(100 * pair), rtol=2e-3, atol=1e-2)  # float32 sums
    for name in ("prior-mlp", "spatial-prior-mlp"):
        with pytest.raises(XrayAtlasError, match=r"level_range=\(3.0, 2.0\)"):
            build(name, level=True, level_range=(3.0, 2.0))


def test_real_m6_spectrum_noise_peak_masked(real_data):
    """The M6 Jetstream's noise peak (a quarter of its counts, below 0.9 keV) is not read as
    lines: the least-squares baseline then lands near Bruker's own fit (unmasked it gave Pb-L 94
    of Bruker's 812 and Fe-K 669 of 918)."""
    from xray_atlas.physics.reference import bruker_net_counts

    path = real_data / "bruker_m6_jetstream_file_example.spx"
    bruker, _ = bruker_net_counts(path)
    with read(path) as cube:
        mm = load_map_model("lsq", cube, device="cpu")
        maps = run_to_end(iter_maps(cube, mm)).maps
        assert mm.low_channels == int((cube.energy < 0.9).sum()) > 150
    for line, tol in (("Fe-K", 0.1), ("Sr-K", 0.1), ("Zn-K", 0.3), ("Pb-L", 0.3), ("Hg-L", 0.5)):
        assert float(maps[line].sum()) == pytest.approx(bruker[line], rel=tol), line


def test_tiles_cast_to_float32_exactly():
    from xray_atlas.inference import _cast_into

    src = np.array([[0, 1, 32768, 65535], [7, 40000, 2, 3]], np.uint16)  # above int16's range too
    for s in (src, src.astype(">u2"), src.astype(np.float64)):  # big-endian: numpy's cast instead
        dst = np.full((2, 6), -1.0, np.float32)
        _cast_into(dst[:, :4], s)
        assert np.array_equal(dst[:, :4], src.astype(np.float32)) and (dst[:, 4:] == -1).all()
