"""Study 003's preprocessing steps, against analytic answers."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.preprocess import crop, extrapolate_edges, prepare, resample, smooth

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
