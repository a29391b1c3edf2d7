"""Goodness of fit (xray_atlas.spectrumfit) and the chi-square map of the fit-based map models:
Poisson statistics against their analytic moments, the per-cluster fit of spectra made from
known pure spectra, a line left out of the fit, the result file and the command line."""

import h5py
import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.clusterfit import ClusterFit, _Basis
from xray_atlas.cube import SpectralCube, run_to_end
from xray_atlas.inference import iter_maps, load_map_model
from xray_atlas.io.results import read_results, write_results
from xray_atlas.models.prior import background_basis
from xray_atlas.physics.painting import Region, paint, painting_instrument
from xray_atlas.spectrumfit import (
    fit_cluster,
    fit_pixels,
    fit_region,
    implied_spectrum,
    prepared_fit,
    reduced_chi2,
    residual,
)

N = 2048
GAIN = 0.02


def test_reduced_chi2_of_poisson_counts_is_one_at_any_count_level():
    # reference: for Poisson counts x of mean f, E[(x - f)^2] = f, so each channel's term
    # (x - f)^2 / max(f, 1) averages min(f, 1): the estimator's denominator
    rng = np.random.default_rng(0)
    for level in (0.01, 0.1, 1.0, 10.0, 300.0):
        f = level * rng.uniform(0.2, 1.8, size=(400, 512))
        chi = reduced_chi2(rng.poisson(f), f)
        # the mean of 400 spectra; the spread of one spectrum's value is measured, not assumed
        assert abs(chi.mean() - 1.0) < 4 * chi.std() / np.sqrt(chi.size) + 1e-3, level
    # the old denominator, channels - parameters, would read 0.1 counts a channel as ~0.1
    f = np.full((50, 4096), 0.1)
    x = rng.poisson(f)
    assert ((x - f) ** 2 / np.maximum(f, 1)).sum(1).mean() / 4096 < 0.15
    assert abs(reduced_chi2(x, f).mean() - 1.0) < 0.05
    # parameters lower the expectation; a spectrum without expected counts is not defined
    assert reduced_chi2(x[0], f[0], n_parameters=10) > reduced_chi2(x[0], f[0])
    assert np.isnan(reduced_chi2(np.zeros(8), np.zeros(8)))
    with pytest.raises(XrayAtlasError, match="shape"):
        reduced_chi2(np.zeros(8), np.zeros(9))
    with pytest.raises(XrayAtlasError, match="negative"):
        reduced_chi2(np.zeros(8), -np.ones(8))


def test_residual_of_poisson_counts_has_mean_0_and_std_1():
    rng = np.random.default_rng(1)
    f = rng.uniform(5.0, 500.0, size=200_000)
    r = residual(rng.poisson(f), f)
    # the standard error of the mean is 1 / sqrt(n) = 0.002; of the std about 0.002 too
    assert abs(r.mean()) < 0.01 and abs(r.std() - 1.0) < 0.01
    # below one count the variance is floored at one count: the residual's spread is sqrt(f)
    low = residual(rng.poisson(np.full(200_000, 0.25)), np.full(200_000, 0.25))
    assert abs(low.std() - 0.5) < 0.01


@pytest.fixture(scope="module")
def known_cube():
    """A 24 x 32 cube of Poisson draws from known spectra: the physics prior's thin spectra of
    four families and a smooth background (a combination of the fit's own background bumps),
    with amplitudes that vary from pixel to pixel: a model the fit can express exactly."""
    rng = np.random.default_rng(2)
    basis = _Basis(N, 0.0, GAIN, {})
    fams = ("Fe-K", "Pb-L", "Ca-K", "Cu-K")
    thin = np.stack([basis.thin[:, basis.families.index(f)] for f in fams], axis=1)
    bumps = background_basis(N, 0.0, GAIN)
    bg = bumps[:, 2:20] @ rng.random(18)
    bg /= bg.sum()
    amps = np.array([800.0, 1500.0, 400.0, 300.0]) * rng.uniform(0.7, 1.3, size=(24 * 32, 1))
    bga = 1000.0 * rng.uniform(0.7, 1.3, size=(24 * 32, 1))
    expected = amps @ thin.T + bga * bg
    energy = GAIN * np.arange(N)
    expected[:, energy < 0.9] = 0.0  # the channels of the noise peak are not fitted
    counts = rng.poisson(expected).astype(np.uint16).reshape(24, 32, N)
    cube = SpectralCube(counts, offset_kev=0.0, gain_kev=GAIN)
    fit = ClusterFit(cube, ("Fe-K",), n_clusters=1, pileup_time_s=None)
    run_to_end(fit.iter_prepare())
    return cube, fit, dict(zip(fams, amps.T)), expected


def test_the_fit_of_known_pure_spectra_recovers_them_and_its_residual_is_poisson(known_cube):
    cube, fit, truth, expected = known_cube
    flat = np.asarray(cube.counts).reshape(-1, N)
    got = fit.tile(flat, chi2=True)
    # each pixel: ~4,000 counts over 1,995 fitted channels, most of them under one count;
    # measured (2026-12-07): median 0.999, mean 1.002
    assert abs(float(np.median(got.chi2)) - 1.0) < 0.02
    assert abs(float(got.chi2.mean()) - 1.0) < 0.02
    # the same as the public estimator on the fit's own expectation of each pixel
    one = fit_pixels(fit, flat[7])
    assert one.reduced_chi2 == pytest.approx(float(got.chi2[7]), rel=1e-4)
    # the sum of every pixel: each family's net counts within 1 % of the truth (Poisson: 0.2 %)
    whole = fit_pixels(fit, flat)
    for fam, amps in truth.items():
        assert whole.net_counts[fam] == pytest.approx(float(amps.sum()), rel=0.01), fam
    assert whole.n_pixels == flat.shape[0] and whole.clusters == (0,)
    np.testing.assert_allclose(whole.fitted, whole.background + sum(whole.families.values()), rtol=1e-9)
    # the sum of every pixel is also the sum the cluster's line shapes and background were fitted
    # to (some 60 parameters more than the fit counts), so it reads a little under 1: measured 0.92
    # (one value over ~1,000 effective degrees of freedom: its own spread is about 0.05)
    assert 0.8 < whole.reduced_chi2 < 1.2
    # the pixels' residuals where the fit expects >= 5 counts: mean 0, std 1 (measured -0.009, 0.988)
    res = np.concatenate(
        [fit_pixels(fit, flat[i]).residual[fit_pixels(fit, flat[i]).fitted >= 5] for i in range(0, flat.shape[0], 37)]
    )
    assert res.size > 1000 and abs(res.mean()) < 0.05 and abs(res.std() - 1.0) < 0.05
    # below the first fitted channel the fit draws nothing
    assert not whole.fitted[~whole.channels].any()


def test_bright_pixels_get_the_same_chi2_by_every_path(known_cube):
    """The chi-square map splits the channels into those a pixel can lift to one expected count and
    the rest (ClusterFit._chi2); a pixel far brighter than its cluster, and one whose counts square to
    more than float32 holds exactly, are computed another way, to the same value as the direct sum."""
    cube, fit, _, expected = known_cube
    rng = np.random.default_rng(9)
    flat = np.asarray(cube.counts, np.float32).reshape(-1, N)
    bright = rng.poisson(expected[:3] * 40.0).astype(np.float32)  # ~170,000 counts a pixel
    got = fit.tile(np.concatenate([flat[:5], bright]), chi2=True).chi2
    direct = [fit_pixels(fit, row).reduced_chi2 for row in np.concatenate([flat[:5], bright])]
    np.testing.assert_allclose(got, direct, rtol=1e-4)
    assert (np.einsum("ij,ij->i", bright, bright) > 2**24).all()
    # a cube of such pixels: its clusters' own split, the float64 sum of squares
    hot = SpectralCube(
        rng.poisson(expected[:36] * 40.0).astype(np.float32).reshape(6, 6, N), offset_kev=0.0, gain_kev=GAIN
    )
    hfit = ClusterFit(hot, ("Fe-K",), n_clusters=1, pileup_time_s=None)
    run_to_end(hfit.iter_prepare())
    rows = np.asarray(hot.counts).reshape(-1, N)
    np.testing.assert_allclose(
        hfit.tile(rows, chi2=True).chi2, [fit_pixels(hfit, r).reduced_chi2 for r in rows], rtol=1e-4
    )


def test_region_cluster_and_implied_spectra(known_cube):
    cube, fit, truth, _ = known_cube
    flat = np.asarray(cube.counts).reshape(-1, N)
    mask = np.zeros((24, 32), bool)
    mask[3:9, 5:20] = True
    region = fit_region(fit, mask, tile_bytes=20 * 32 * N)  # several tiles
    same = fit_pixels(fit, flat[mask.ravel()])
    np.testing.assert_array_equal(region.measured, same.measured)
    np.testing.assert_allclose(region.fitted, same.fitted, rtol=1e-6)
    assert region.n_pixels == 90 and region.what == "region of 90 pixels"
    cluster = fit_cluster(fit, 0)
    np.testing.assert_array_equal(cluster.measured, fit.cluster_spectra[0])
    assert cluster.net_counts["Pb-L"] == pytest.approx(float(truth["Pb-L"].sum()), rel=0.01)
    assert cluster.what == "cluster 1"
    # the fit's own values imply its own spectrum; twice the Fe-K adds one more Fe-K part
    np.testing.assert_allclose(implied_spectrum(region, region.net_counts), region.fitted)
    more = implied_spectrum(region, {"Fe-K": 2 * region.net_counts["Fe-K"]})
    np.testing.assert_allclose(more - region.fitted, region.families["Fe-K"], atol=1e-9)
    with pytest.raises(XrayAtlasError, match="cluster=5"):
        fit_cluster(fit, 5)
    with pytest.raises(XrayAtlasError, match="no pixel"):
        fit_region(fit, np.zeros((24, 32), bool))
    with pytest.raises(XrayAtlasError, match="mask has shape"):
        fit_region(fit, np.ones((3, 3), bool))
    with pytest.raises(XrayAtlasError, match="spectra must be"):
        fit_pixels(fit, np.ones(17))


@pytest.fixture(scope="module")
def vermilion_painting():
    """Vermilion (HgS) beside lead white and yellow ochre, 20 ms a pixel (a painting's scan)."""
    reg = np.zeros((24, 32), np.int32)
    reg[:, 11:22] = 1
    reg[:, 22:] = 2
    regions = [
        Region("lead white", (("lead white", 30.0),)),
        Region("vermilion", (("vermilion", 25.0), ("lead white", 30.0))),
        Region("yellow ochre", (("yellow ochre", 50.0), ("lead white", 30.0))),
    ]
    return paint(reg, regions, instrument=painting_instrument(n_channels=N, gain_kev=GAIN), seed=3)


def test_a_line_left_out_of_the_fit_lights_up_the_chi2_map(vermilion_painting):
    p = vermilion_painting
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs))
    inside = p.regions == 1
    medians = {}
    for omit in ((), ("Hg-L",)):
        fit = prepared_fit(cube, omit=omit)
        chi = fit.tile(p.counts.reshape(-1, N), chi2=True).chi2.reshape(p.regions.shape)
        medians[omit] = float(np.median(chi[inside])), float(np.median(chi[~inside]))
    # every element in the fit: about 1 (Poisson; the pile-up peaks the fit lacks add a little);
    # measured (2026-12-07) 1.08 inside, 1.10 outside
    full_in, full_out = medians[()]
    assert 0.9 < full_in < 1.3 and 0.9 < full_out < 1.3
    # without Hg-L the vermilion lights up, the rest does not move; measured 73.5 and 1.09
    lack_in, lack_out = medians[("Hg-L",)]
    assert lack_in > 3 * lack_out
    assert lack_out == pytest.approx(full_out, rel=0.05)
    # and so does the residual at the Hg L lines (Hg La 9.99 keV) in a vermilion pixel
    fit = prepared_fit(cube, omit=("Hg-L",))
    y, x = np.argwhere(inside)[len(np.argwhere(inside)) // 2]
    one = fit_pixels(fit, p.counts[y, x])
    la = (one.energy > 9.85) & (one.energy < 10.15)
    assert one.residual[la].sum() > 10 and "Hg-L" not in one.families
    with pytest.raises(XrayAtlasError, match="omit"):
        ClusterFit(cube, ("Hg-L",), omit=("Hg-L",))


def test_maps_of_fit_based_models_carry_their_chi2(vermilion_painting, tmp_path):
    p = vermilion_painting
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs))
    lines = ("Hg-L", "Pb-L")
    fit = load_map_model("fit", cube, device="cpu", lines=lines)
    done = run_to_end(iter_maps(cube, fit, lines=lines))
    maps, chi = done.maps, done.reduced_chi2
    assert chi.shape == (24, 32) and chi.dtype == np.float32 and 0.9 < float(np.median(chi)) < 1.3
    # the same fit, pixel by pixel, as the inspector's core gives it
    direct = prepared_fit(cube, lines=lines)
    assert fit_pixels(direct, p.counts[5, 5]).reduced_chi2 == pytest.approx(float(chi[5, 5]), rel=1e-3)
    lsq = load_map_model("lsq", cube, device="cpu", lines=lines)
    assert run_to_end(iter_maps(cube, lsq, lines=lines)).reduced_chi2 is None  # not a fit-based model
    assert run_to_end(iter_maps(cube, fit, lines=lines, chi2=False)).reduced_chi2 is None
    with pytest.raises(XrayAtlasError, match="chi2="):
        run_to_end(iter_maps(cube, fit, lines=lines, chi2="yes"))
    # the result file carries it, NaN (a pixel without counts) included
    chi = chi.copy()
    chi[0, 0] = np.nan
    out = write_results(tmp_path / "m.h5", maps=maps, reduced_chi2=chi)
    with h5py.File(out) as f:
        assert f["fit/reduced_chi2"].dtype == np.float32
    back = read_results(out)["fit"]["reduced_chi2"]
    np.testing.assert_array_equal(back, chi)
    for bad, match in (
        (np.ones((3, 3)), "shape"),
        (np.ones(5), "2-D"),
        (np.full((24, 32), np.inf), "infinite"),
        (-np.ones((24, 32)), "negative"),
    ):
        with pytest.raises(XrayAtlasError, match=match):
            write_results(tmp_path / "bad.h5", maps=maps, reduced_chi2=bad)
    assert not (tmp_path / "bad.h5").exists()


def test_the_command_line_writes_and_exports_the_chi2_map(tmp_path, capsys):
    from xray_atlas.cli import main
    from xray_atlas.export import export_result

    cube = tmp_path / "p.h5"
    assert main(["simulate", "painting", str(cube), "--height", "10", "--width", "12", "--seed", "4"]) == 0
    out = tmp_path / "m.h5"
    assert main(["maps", str(cube), str(out), "--model", "fit", "--lines", "Pb-L,Hg-L"]) == 0
    said = capsys.readouterr().out
    assert "reduced chi-square: median" in said and "/fit/reduced_chi2" in said
    chi = read_results(out)["fit"]["reduced_chi2"]
    assert chi.shape == (10, 12) and 0.8 < float(np.nanmedian(chi)) < 1.5
    done = export_result(out, tmp_path / "tif", format="tiff")
    assert [p.name for p in done.files] == ["Hg-L.tif", "Pb-L.tif", "reduced_chi2.tif"]
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(done.files[-1]), chi)
    # lsq is no fit: no chi-square in its result
    lsq = tmp_path / "lsq.h5"
    assert main(["maps", str(cube), str(lsq), "--model", "lsq", "--lines", "Pb-L"]) == 0
    assert "fit" not in read_results(lsq)
