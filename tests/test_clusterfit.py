"""The per-cluster fit (``--model fit``): line groups against the physics engine, a buried
layer's line ratios, maps against the limit, pile-up, bad input."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.clusterfit import (
    HOLD_SE,
    ClusterFit,
    FitHold,
    _Basis,
    family_groups,
    fit_family_shapes,
    iter_cluster_fit_maps,
)
from xray_atlas.cube import SpectralCube, run_to_end
from xray_atlas.evaluation import limit_fit
from xray_atlas.inference import predict_maps
from xray_atlas.metrics import map_scores
from xray_atlas.models.prior import INSTRUMENT_DEFAULTS, instrument_for
from xray_atlas.physics.materials import pigment
from xray_atlas.physics.painting import Region, paint, painting_instrument
from xray_atlas.physics.spectra import Layer, pure_spectrum, simulate

N = 2048
GAIN = 0.02


@pytest.fixture(scope="module")
def instrument():
    return instrument_for(n_channels=N, **{**INSTRUMENT_DEFAULTS, "gain_kev": GAIN})


def test_line_groups_add_up_to_the_thin_family_spectrum(instrument):
    # reference: the physics engine's own pure spectrum of the family (xraylib line ratios)
    for family in ("Pb-L", "Hg-L", "Fe-K"):
        groups = family_groups(family, instrument)
        assert len(groups) >= 2  # K alpha / K beta; L l, alpha, beta, gamma ...
        shares = np.array([s for _, s in groups])
        assert 0.995 < shares.sum() <= 1.0 + 1e-9  # only groups under 0.1 % are left out
        summed = sum(s * g for g, s in groups)
        np.testing.assert_allclose(summed, pure_spectrum(family, instrument=instrument), atol=2e-3 * summed.max())


def test_a_buried_layer_gets_its_own_line_ratios(instrument):
    # zinc white over vermilion: Zn's K edge (9.66 keV) absorbs Hg La (9.99 keV) far more than
    # Hg Ll (8.72 keV); the engine's own family spectrum of that stack is the reference
    inst = painting_instrument(n_channels=N, gain_kev=GAIN, dwell_ms=2000.0)
    sim = simulate(
        [Layer(pigment("zinc white"), 40.0), Layer(pigment("vermilion"), 25.0), Layer(pigment("lead white"))], inst
    )
    true = sim.family_spectrum("Hg-L", inst.detector)
    basis = _Basis(N, 0.0, GAIN, {})
    shapes, bg = fit_family_shapes(sim.expected, basis, sim.energy >= 0.9)
    thin = pure_spectrum("Hg-L", instrument=instrument)
    la = (sim.energy > 9.8) & (sim.energy < 10.2)
    assert true[la].sum() < 0.8 * thin[la].sum()  # the matrix effect is there to be found
    assert abs(shapes["Hg-L"][la].sum() - true[la].sum()) < 0.3 * abs(thin[la].sum() - true[la].sum())
    assert bg.sum() == pytest.approx(1.0)
    # a trace below min_share keeps its thin spectrum; below trace_share it is left out
    traced, _ = fit_family_shapes(sim.expected, basis, sim.energy >= 0.9, min_share=1.0, trace_share=1e-3)
    assert np.array_equal(traced["Hg-L"], basis.thin[:, basis.families.index("Hg-L")])
    gone, _ = fit_family_shapes(sim.expected, basis, sim.energy >= 0.9, min_share=1.0, trace_share=1.0)
    assert gone == {}


@pytest.fixture(scope="module")
def zinc_painting():
    # the default model's worst case (docs/maps.md): mercury under zinc white, beside other paints
    reg = np.zeros((24, 32), np.int32)
    reg[:, 16:] = 1
    reg[12:, :] += 2
    regions = [
        Region("zinc white over vermilion", (("zinc white", 40.0), ("vermilion", 25.0), ("lead white", 30.0))),
        Region("vermilion", (("vermilion", 25.0), ("lead white", 30.0))),
        Region("yellow ochre", (("yellow ochre", 50.0), ("lead white", 30.0))),
        Region("emerald green over zinc white", (("emerald green", 20.0), ("zinc white", 30.0))),
    ]
    return paint(reg, regions, instrument=painting_instrument(n_channels=N, gain_kev=GAIN), seed=5, truth=True)


def test_maps_near_the_limit_where_least_squares_is_far(zinc_painting):
    p = zinc_painting
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs))
    lines = ("Hg-L", "Zn-K", "Fe-K", "Cu-K", "Pb-L")
    limit = map_scores(limit_fit(p, lines), p.maps, lines)
    done = predict_maps(cube, "fit", device="cpu", lines=lines)
    fit = done.maps
    lsq = predict_maps(cube, "lsq", device="cpu", lines=lines).maps
    s_fit, s_lsq = map_scores(fit, p.maps, lines), map_scores(lsq, p.maps, lines)
    # measured (2026-11-23): Hg-L 1.07, Zn-K 1.10, Pb-L 1.32 x the limit's MAE; least squares
    # 3.83, 3.85, 5.39; the shipped maps-default reads Hg-L here at 3.19
    for ln in lines:
        assert s_fit[ln]["mae"] < (1.2 if ln in ("Hg-L", "Zn-K") else 1.5) * limit[ln]["mae"], ln
        assert s_fit[ln]["mae"] < 0.6 * s_lsq[ln]["mae"], ln
    assert 0.97 < s_fit["mean"]["slope"] < 1.03
    assert all(np.isfinite(m).all() and (m >= 0).all() for m in fit.values())
    assert any("clusters" in n and "pile-up" in n for n in done.notes)


def test_shrink_to_the_clusters_smooths_the_noise_and_keeps_a_step(zinc_painting):
    """Empirical-Bayes shrinkage: against the simulator's true maps, each line's error falls,
    a cluster's total stays, and a departure far beyond the noise is kept."""
    p = zinc_painting
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs))
    lines = ("Hg-L", "Zn-K", "Fe-K", "Cu-K", "Pb-L")
    fit = ClusterFit(cube, lines)
    run_to_end(fit.iter_prepare())
    got = fit.tile(p.counts.reshape(-1, N), errors=True)
    truth = np.stack([p.maps[ln].ravel() for ln in lines], axis=1)
    raw = got.values.copy()
    whole, local = raw.copy(), raw.copy()
    assert fit.shrink(whole, got.labels, got.totals) > 0
    fit.shrink(local, got.labels, got.totals, shape=p.counts.shape[:2], size=3)
    for i, ln in enumerate(lines):
        before = np.abs(raw[:, i] - truth[:, i]).mean()
        assert np.abs(whole[:, i] - truth[:, i]).mean() < before, ln
        assert np.abs(local[:, i] - truth[:, i]).mean() < before, ln
    member = fit._members(got.labels)
    np.testing.assert_allclose(member @ whole, member @ raw, rtol=0.02, atol=1.0)  # towards the mean: totals kept
    # half of one cluster's pixels 30 standard errors higher in Pb-L: a real step, not noise
    j = int(np.bincount(got.labels[got.labels >= 0]).argmax())
    pix = np.flatnonzero(got.labels == j)
    step = 30 * float(got.errors[pix, 4].mean())
    raised = raw.copy()
    raised[pix[::2], 4] += step
    fit.shrink(raised, got.labels, got.totals)
    assert raised[pix[::2], 4].mean() - raised[pix[1::2], 4].mean() > 0.95 * step
    hw = p.counts.shape[:2]
    # bands of rows (bounded memory on a large cube) give the values of the whole cube at once:
    # one row per band for the block means (each band reads the unshrunk row above it)
    for kw, ref in (({}, whole), ({"shape": hw, "size": 3}, local), ({"shape": hw, "size": 5}, None)):
        one, banded = raw.copy(), raw.copy()
        fit.shrink(one, got.labels, got.totals, band_pixels=10**9, **kw)
        fit.shrink(banded, got.labels, got.totals, band_pixels=1, **kw)
        np.testing.assert_allclose(banded, one, rtol=1e-5, atol=1e-3)
        if ref is not None:
            np.testing.assert_array_equal(one, ref)
    for kw, match in (
        ({"size": 2, "shape": hw}, "size="),
        ({"size": 0, "shape": hw}, "size="),
        ({"size": 3}, "shape="),
        ({"size": 3, "shape": (5, 5)}, "shape="),
    ):
        with pytest.raises(XrayAtlasError, match=match):
            fit.shrink(raw.copy(), got.labels, got.totals, **kw)


def test_clusters_learnt_from_a_sample_of_rows(zinc_painting):
    # a large scan learns its clusters and their spectra from an even sample of its rows
    # and fits every pixel: learnt from a third of the rows, the maps stay close
    p = zinc_painting
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs))
    lines = ("Hg-L", "Zn-K", "Pb-L")
    tile = 2 * 32 * N * 2  # two rows of uint16 counts a tile
    full = run_to_end(iter_cluster_fit_maps(cube, lines, tile_bytes=tile))
    progress = []
    sampled = run_to_end(iter_cluster_fit_maps(cube, lines, tile_bytes=tile, sample_pixels=256), progress.append)
    # 24 rows in memory, read a row at a time for the sample: every 3rd sampled (8), read in two
    # passes (the third, for fit-mlp's inputs, is skipped in one step), then all 12 tiles fitted
    assert [q.done for q in progress] == [0, *range(1, 17), *range(24, 37)] and progress[-1].total == 36
    for ln in lines:  # measured: Hg-L 13.9 against 12.3 counts
        assert np.abs(sampled[ln] - p.maps[ln]).mean() < 1.25 * np.abs(full[ln] - p.maps[ln]).mean(), ln


def test_pileup_correction_follows_the_live_time(zinc_painting):
    p = zinc_painting
    lines = ("Zn-K",)
    plain = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev)
    timed = SpectralCube(
        p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata={"live_time_s": 0.02}
    )
    notes: list = []
    a = run_to_end(iter_cluster_fit_maps(plain, lines, notes=notes))["Zn-K"]
    b = run_to_end(iter_cluster_fit_maps(timed, lines))["Zn-K"]
    assert "pile-up" not in notes[0]
    # events lost to pile-up: 2 x rate x 100 ns (the detector model's pulse-pair time)
    totals = p.counts[..., p.energy_offset_kev + GAIN * np.arange(N) >= 0.9].sum(-1).astype(float)
    lit = a > 100
    np.testing.assert_allclose(b[lit] / a[lit], 1 / (1 - 2 * totals[lit] / 0.02 * 1e-7), rtol=1e-4)


def test_bad_input_and_empty_pixels():
    counts = np.zeros((3, 4, 1024), np.float32)
    counts[0, 0, 500] = 10
    with pytest.raises(XrayAtlasError, match="calibration"):
        run_to_end(iter_cluster_fit_maps(SpectralCube(counts), ("Fe-K",)))
    cube = SpectralCube(counts, offset_kev=0.0, gain_kev=0.02)
    with pytest.raises(XrayAtlasError, match="n_clusters"):
        run_to_end(iter_cluster_fit_maps(cube, ("Fe-K",), n_clusters=0))
    with pytest.raises(XrayAtlasError, match="Xx-K"):
        run_to_end(iter_cluster_fit_maps(cube, ("Xx-K",)))
    maps = predict_maps(cube, "fit", device="cpu").maps
    assert all(np.isfinite(m).all() and m[1:].max() == 0 for m in maps.values())
    empty = SpectralCube(np.zeros((2, 2, 1024), np.float32), offset_kev=0.0, gain_kev=0.02)
    maps = predict_maps(empty, "fit", device="cpu").maps
    assert all(m.max() == 0 for m in maps.values())


def test_real_m6_spectrum_against_brukers_fit(real_data):
    """A real accumulation (one pixel, so one cluster) on a calcium phosphate with traces:
    measured 2026-11-23, Fe-K 928 of Bruker's 918, Zn-K 1,329 of 1,210, Sr-K 3,123 of 2,893,
    Hg-L 714 of 502 (a trace at 0.05 % of the counts, fitted with its thin spectrum), Pb-L
    1,975 of 812; least squares gives a median error of 0.22 over these lines, the fit 0.10."""
    from xray_atlas.io import read
    from xray_atlas.physics.reference import bruker_net_counts

    path = real_data / "bruker_m6_jetstream_file_example.spx"
    bruker, _ = bruker_net_counts(path)
    with read(path) as cube:
        maps = predict_maps(cube, "fit", device="cpu").maps
    for line, tol in (("Fe-K", 0.05), ("Sr-K", 0.1), ("Zn-K", 0.15), ("Ca-K", 0.1), ("Hg-L", 0.6)):
        assert float(maps[line].sum()) == pytest.approx(bruker[line], rel=tol), line
    assert float(maps["Cu-K"].sum()) < 50 and float(maps["Mn-K"].sum()) < 50  # Bruker: 0 and 6


def _poisson_cube(expected: np.ndarray, energy: np.ndarray, shape=(20, 30), seed=0) -> SpectralCube:
    draws = np.random.default_rng(seed).poisson(np.broadcast_to(expected, (*shape, expected.size)))
    return SpectralCube(draws.astype(np.float32), offset_kev=float(energy[0]), gain_kev=float(energy[1] - energy[0]))


def test_standard_errors_follow_the_scatter_of_poisson_draws(instrument):
    # reference: for least squares weighted by the inverse Poisson variance, the covariance of
    # the coefficients is the inverse of the weighted normal matrix (Gauss-Markov); 600 draws of
    # one spectrum (vermilion over lead white, 2,000 counts a pixel) are one cluster
    inst = painting_instrument(n_channels=N, gain_kev=GAIN)
    sim = simulate([Layer(pigment("vermilion"), 25.0), Layer(pigment("lead white"))], inst)
    expected = sim.expected * (2000.0 / sim.expected.sum())
    cube = _poisson_cube(expected, sim.energy)
    fit = ClusterFit(cube, ("Hg-L", "Pb-L", "S-K"), n_clusters=1)
    run_to_end(fit.iter_prepare(means=True))
    got = fit.tile(cube.counts, inputs=True, errors=True)
    assert fit.k == 1 and got.free.shape == got.errors.shape == (600, 3)
    scatter, claimed = got.free.std(axis=0), np.sqrt((got.errors**2).mean(axis=0))
    np.testing.assert_allclose(claimed, scatter, rtol=0.12)  # measured: within 4 %
    assert claimed[0] > 3 and np.all(got.errors >= 0)
    # the unconstrained values are unbiased around the non-negative ones' mean for strong lines
    assert abs(got.free[:, 0].mean() - got.values[:, 0].mean()) < 0.05 * got.values[:, 0].mean()


def test_hold_keeps_a_learnt_model_within_the_fits_errors(zinc_painting):
    # a "model" that erases every line, and one that invents ten standard errors of each
    p = zinc_painting
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs))
    lines = ("Hg-L", "Zn-K", "Pb-L")
    fit = ClusterFit(cube, lines)
    run_to_end(fit.iter_prepare(means=True))
    got = fit.tile(cube.counts, inputs=True, errors=True)
    member = fit._members(got.labels)
    band = HOLD_SE * np.sqrt(member @ got.errors**2 + (fit.shape_errors * (member @ got.totals)[:, None]) ** 2)
    for pred in (np.zeros_like(got.values), got.values + 10 * got.errors):
        hold = FitHold(fit)
        out = hold.pixels(pred, got)
        assert np.all(out >= np.maximum(got.values - HOLD_SE * got.errors, 0) - 1e-3)
        assert np.all(out <= got.values + HOLD_SE * got.errors + 1e-3)
        hold.clusters(out, got.labels, got.totals)
        # each cluster's total of each line is back within its band around the unbiased fit
        off = np.abs(member @ out - member @ got.free)
        assert np.all(off <= band * 1.001 + 1e-2), (off, band)
        assert hold.n_clusters_moved >= 1 and "standard errors" in hold.note(out.size)
    # the erased mercury is back where the painting has it: within 10 % of the fit's total
    assert out[:, 0].sum() == pytest.approx(got.values[:, 0].sum(), rel=0.1)


def test_shape_errors_grow_beside_a_strong_peak(instrument, monkeypatch):
    # Zn Ka (8.64 keV) lies 80 eV from Hg Ll (8.72 keV): a trace of zinc beside vermilion is as
    # uncertain as the mercury peaks' calibration and width; beside chalk it is not. Measured
    # (Poisson units of the cluster's counts): vermilion 0.17 -> 1.18 with the drift, chalk 0.094 -> 0.099
    from xray_atlas import clusterfit

    inst = painting_instrument(n_channels=N, gain_kev=GAIN)
    out = {}
    for name, stack in (
        ("vermilion", [Layer(pigment("vermilion"), 20.0), Layer(pigment("lead white"))]),
        ("chalk", [Layer(pigment("chalk ground"))]),
    ):
        sim = simulate(stack, inst)
        spectrum = sim.expected + pure_spectrum("Zn-K", instrument=instrument) * 2e-3 * sim.expected.sum()
        cube = _poisson_cube(spectrum * (2000.0 / spectrum.sum()), sim.energy)
        for drift in ((0.0, 0.0), (clusterfit.DRIFT_EV, clusterfit.DRIFT_WIDTH)):
            monkeypatch.setattr(clusterfit, "DRIFT_EV", drift[0])
            monkeypatch.setattr(clusterfit, "DRIFT_WIDTH", drift[1])
            fit = ClusterFit(cube, ("Zn-K",), n_clusters=1)
            run_to_end(fit.iter_prepare())
            out.setdefault(name, []).append(float(fit.shape_errors[0, 0]))
    assert out["vermilion"][1] > 2 * out["vermilion"][0], out
    assert out["chalk"][1] < 1.1 * out["chalk"][0], out


def test_evidence_of_each_family_and_families_beyond_the_prior():
    # orpiment beside lead white: arsenic's net counts in the orpiment cluster's sum are many
    # standard errors and a large share; cobalt, absent, is nowhere
    inst = painting_instrument(n_channels=N, gain_kev=GAIN)
    reg = np.zeros((10, 12), np.int32)
    reg[:, 6:] = 1
    p = paint(
        reg,
        [Region("lead white", (("lead white", 30.0),)), Region("orpiment", (("orpiment", 20.0),))],
        instrument=inst,
        seed=4,
    )
    cube = SpectralCube(p.counts, offset_kev=0.0, gain_kev=GAIN)
    # W-L: none of the prior's 44 families, fitted beside them
    fit = ClusterFit(cube, ("Pb-L", "W-L"), n_clusters=2, min_counts=1e4)
    assert fit.basis.families[-1] == "W-L" and fit.lines == ("Pb-L", "W-L")
    run_to_end(fit.iter_prepare())
    z, share = fit.evidence()
    assert z.shape == share.shape == (fit.k, len(fit.basis.families)) == (2, 45)
    arsenic = fit.basis.families.index("As-K")
    assert z[:, arsenic].max() > 20 and share[:, arsenic].max() > 0.1
    # the summed spectrum's net counts of arsenic: the truth's, within the sampled pixels' share
    assert fit.cluster_net[:, arsenic].sum() == pytest.approx(float(p.maps["As-K"].sum()), rel=0.1)
    assert z[:, fit.basis.families.index("Co-K")].max() < 3
    fit.lines = ("As-K", "Pb-L")  # after preparing, any of its families
    got = fit.tile(p.counts)
    assert got.values.shape == (120, 2) and got.values[:, 0].reshape(10, 12)[:, 6:].min() > 100
    with pytest.raises(XrayAtlasError, match="Mo-K not among this fit's families"):
        fit.lines = ("Mo-K",)
