import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.physics.detector import Detector
from xray_atlas.physics.spectra import pure_spectrum
from xray_atlas.unmix import fit_net_counts, snip_background


def test_snip_recovers_a_smooth_continuum():
    x = np.arange(2048)
    continuum = 50 * np.exp(-(((x - 900) / 600.0) ** 2)) + 5
    peaks = 2000 * np.exp(-0.5 * ((x - 640) / 6.0) ** 2) + 800 * np.exp(-0.5 * ((x - 1050) / 8.0) ** 2)
    bg = snip_background(continuum + peaks, width=30)
    inner = slice(100, 1900)
    assert np.max(np.abs(bg[inner] - continuum[inner]) / continuum[inner]) < 0.1


def test_least_squares_recovers_net_counts():
    det = Detector()
    pure = {f: pure_spectrum(f, det) for f in ("Fe-K", "Mn-K", "Pb-L", "Hg-L", "Ca-K")}
    truth = {"Fe-K": 5000.0, "Mn-K": 300.0, "Pb-L": 8000.0, "Hg-L": 1500.0, "Ca-K": 0.0}
    spectrum = sum(truth[k] * pure[k] for k in truth) + 3.0  # flat continuum
    got = fit_net_counts(spectrum, pure, background=np.full(det.n_channels, 3.0))
    for k, v in truth.items():
        assert got[k] == pytest.approx(v, rel=0.01, abs=5)


def test_bad_input():
    with pytest.raises(XrayAtlasError, match="at least one"):
        fit_net_counts(np.ones(10), {})
    with pytest.raises(XrayAtlasError, match="channels"):
        fit_net_counts(np.ones(10), {"Fe-K": np.ones(12)})
    with pytest.raises(XrayAtlasError, match="width=0"):
        snip_background(np.ones(10), width=0)
