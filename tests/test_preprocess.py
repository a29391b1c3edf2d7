"""Study 003's preprocessing steps, against analytic answers."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.preprocess import (
    crop,
    extrapolate_edges,
    prepare,
    resample,
    resample_float32,
    smooth,
)

E = 0.01 * np.arange(2048)  # 0-20.47 keV


def test_crop_keeps_the_range():
    y = np.arange(2048.0)
    yc, ec = crop(y, E, 1.0, 2.0)
    assert ec[0] == pytest.approx(1.0) and ec[-1] == pytest.approx(2.0) and yc.shape == (101,)
    with pytest.raises(XrayAtlasError, match="lo_kev=3 must be below hi_kev=2"):
        crop(y, E, 3, 2)
    with pytest.raises(XrayAtlasError, match="no channels in 30-40 keV"):
        crop(y, E, 30, 40)


def test_edges_become_the_exponential_of_the_inside():
    # a pure exponential continuum with a noise peak and a cut-off at the ends: the ends
    # are replaced by the continuation of the exponential, exactly
    true = 500 * np.exp(-0.2 * E)
    y = true.copy()
    y[:50] = 1e5  # noise peak below 0.5 keV
    y[-80:] = 0  # detector cut-off
    out = extrapolate_edges(np.stack([y, 2 * y]), E, edge_kev=1.0, fit_kev=1.0)
    np.testing.assert_allclose(out[0], true, rtol=1e-9)
    np.testing.assert_allclose(out[1], 2 * true, rtol=1e-9)
    assert np.array_equal(extrapolate_edges(y, E, edge_kev=0.0), y)


def test_resample_conserves_counts_and_is_identity_on_the_same_grid():
    rng = np.random.default_rng(0)
    y = rng.poisson(5.0, size=(3, 2048)).astype(float)
    np.testing.assert_allclose(resample(y, E, E), y, atol=1e-9)
    coarse = 0.005 + 0.02 * np.arange(1024)  # pairs of channels
    r = resample(y, E, coarse)
    np.testing.assert_allclose(r, y[:, 0::2] + y[:, 1::2], atol=1e-9)
    fine = 0.01 * np.arange(4096) - 5.0  # covers -5-36 keV: counts outside the input stay zero
    assert resample(y, E, fine).sum() == pytest.approx(y.sum())


def test_resample_in_chunks_gives_the_same_counts_in_bounded_memory():
    import tracemalloc

    rng = np.random.default_rng(1)
    y = rng.poisson(5.0, size=(2000, 2048)).astype(np.uint16)
    fine = 0.005 * np.arange(4096)
    whole = resample(y, E, fine)
    got = resample_float32(y, E, fine, rows=64)
    assert got.dtype == np.float32 and got.shape == (2000, 4096)
    np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(resample_float32(y[0], E, fine), whole[0], rtol=1e-6, atol=1e-4)
    tracemalloc.start()
    resample_float32(y, E, fine, rows=64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the float32 result (32.8 MB) and the float64 temporaries of 64 spectra (a few MB);
    # resample of all 2,000 at once peaks near 330 MB
    assert peak < 45e6, peak
    with pytest.raises(XrayAtlasError, match="rows=0"):
        resample_float32(y, E, fine, rows=0)


def test_savitzky_golay_keeps_a_quadratic():
    q = 3 + 2 * E - 0.5 * E**2
    np.testing.assert_allclose(smooth(q, window=11, order=2), q, atol=1e-9)
    with pytest.raises(XrayAtlasError, match="window=10 must be odd"):
        smooth(q, window=10)


def test_prepare_chains_the_steps():
    y = np.full(2048, 4.0)
    out = prepare(y, E, 0.02 * np.arange(512), edge_kev=0.5, smooth_window=5)
    assert out.shape == (512,)
    np.testing.assert_allclose(out[30:-30], 8.0, rtol=1e-6)  # two channels of 4 counts each


def test_line_energies_and_calibration_to_named_peaks():
    import xraylib

    from xray_atlas.preprocess import calibrate_to_peaks, line_energy

    # Ka is Ka1 and Ka2 weighted by xraylib's rates (Cu: 8.0478 and 8.0278 keV, about 2 : 1)
    ka1, ka2 = xraylib.LineEnergy(29, xraylib.KL3_LINE), xraylib.LineEnergy(29, xraylib.KL2_LINE)
    assert ka2 < line_energy("Cu Ka") < ka1 and line_energy("Cu Ka") == pytest.approx((2 * ka1 + ka2) / 3, abs=1e-3)
    assert line_energy("Pb-La") == line_energy("Pb Lα") == pytest.approx(10.54, abs=0.01)
    assert line_energy("Fe Kb") == pytest.approx(xraylib.LineEnergy(26, xraylib.KM3_LINE), abs=1e-3)
    offset, gain = -0.492773, 0.00502883  # PyMca's XrfTest.cfg
    peaks = ", ".join(f"{(line_energy(n) - offset) / gain:.3f} {n}" for n in ("Fe Ka", "Sr Ka", "Pb Lb"))
    assert calibrate_to_peaks(peaks) == pytest.approx((offset, gain), rel=1e-5)
    for bad, message in (
        ("1696 Cu Ka", "give two or more"),
        ("x Cu Ka, 2 Zn Ka", "must start with a channel"),
        ("1696 Cu, 2912 Sr Ka", "element and a line group"),
        ("1696 Cu Kz, 2912 Sr Ka", "no Kz"),
    ):
        with pytest.raises(XrayAtlasError, match=message):
            calibrate_to_peaks(bad)


def test_calibrate_recovers_a_linear_axis_from_peaks(real_data):
    from xray_atlas.io import read
    from xray_atlas.preprocess import calibrate

    # PyMca's XRFSpectrum.mca: find the Fe, Cu and Sr Ka peaks (xraylib 6.404, 8.048, 14.165
    # keV) near where the header's hint (Co Ka at channel ~1474) puts them, and fit; PyMca's
    # XrfTest.cfg states zero -0.492773 keV, gain 0.00502883 keV per channel
    with read(real_data / "XRFSpectrum.mca") as cube:
        s = cube.pixel(0, 0).astype(float)
    lines = {6.404: 1372, 8.048: 1697, 14.165: 2914}  # keV -> a rough channel, +/- 25
    peaks = [a - 25 + int(np.argmax(s[a - 25 : a + 26])) for a in lines.values()]
    offset, gain = calibrate(peaks, list(lines))
    assert offset == pytest.approx(-0.492773, abs=0.01) and gain == pytest.approx(0.00502883, rel=2e-3)
    with pytest.raises(XrayAtlasError, match="two or more pairs"):
        calibrate([100], [6.4])
    with pytest.raises(XrayAtlasError, match="must be > 0"):
        calibrate([100, 200], [8.0, 6.4])


def test_mask_edges_zeroes_outside_and_keeps_float32():
    from xray_atlas.preprocess import mask_edges

    y = np.ones((2, 2048), np.float32)
    m = mask_edges(y, E, 0.9, 15.0)
    assert m.dtype == np.float32 and m[:, E < 0.9].sum() == 0 and m[:, E > 15].sum() == 0
    assert m[:, (E >= 0.9) & (E <= 15)].min() == 1 and y.min() == 1  # the input is untouched
    assert mask_edges(np.ones(2048, np.uint16), E, 1.0).dtype == np.float32
