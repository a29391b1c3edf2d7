import numpy as np
import pytest
import xraylib

from xray_atlas import XrayAtlasError
from xray_atlas.physics.detector import MNKA_KEV, Detector, escape_fraction


def test_fwhm_at_mn_ka_default_and_pymca_steel():
    assert Detector().fwhm_kev(MNKA_KEV) * 1000 == pytest.approx(145.0, abs=5)
    # Steel.cfg (PyMca): noise 0.127439 keV, Fano 0.101156; PyMca's FWHM formula
    # sqrt(noise^2 + 2.3548^2 * 0.00385 * fano * E) gives 169.9 eV at Mn Ka
    expect = np.sqrt(0.127439**2 + 2.3548**2 * 0.00385 * 0.101156 * MNKA_KEV)
    det = Detector(fano=0.101156, fwhm_mnka_ev=1000 * expect)
    assert det.noise_fwhm_kev == pytest.approx(0.127439, rel=1e-6)
    assert det.fwhm_kev(10.0) > det.fwhm_kev(MNKA_KEV) > det.fwhm_kev(2.0)


def test_escape_fraction():
    e = np.array([1.7, 2.0, 5.9, 10.0, 20.0])
    f = escape_fraction(e)
    assert f[0] == 0  # below the Si K edge (1.839 keV, xraylib) nothing escapes
    assert np.all(np.diff(f[1:]) < 0)  # deeper absorption, fewer escapes
    # Si escape of Mn Ka: a few per mille (Reed and Ware 1972; measured 0.3-0.7 % for Fe-55 on Si)
    assert 0.002 < f[2] < 0.008


def test_efficiency_matches_beer_lambert():
    det = Detector(window_be_um=25.0, sensor_um=450.0)
    e = np.array([2.0, 8.0, 30.0])
    be = np.exp(-np.array([xraylib.CS_Total(4, v) for v in e]) * 1.848 * 25e-4)
    si = 1 - np.exp(-np.array([xraylib.CS_Photo(14, v) for v in e]) * 2.33 * 450e-4)
    np.testing.assert_allclose(det.efficiency(e), be * si, rtol=1e-12)
    assert det.efficiency(np.array([30.0]))[0] < 0.2  # thin Si is transparent at high energy


def test_render_matches_direct_peaks_and_keeps_net_counts():
    det = Detector()
    e, n = np.array([3.69, 6.404, 10.551]), np.array([1000.0, 500.0, 200.0])
    direct, net = det.detect_lines(e, n)
    fast = det.render(e, n)
    assert np.abs(fast - direct).max() < 2e-3 * direct.max()  # linear split between channels
    np.testing.assert_allclose(net, n * (1 - escape_fraction(e)))
    # the Gaussian part of the full-energy peak holds the net counts: a window of +/- 3 sigma
    ch = (det.energy > 6.404 - 3 * det.sigma_kev(6.404)) & (det.energy < 6.404 + 3 * det.sigma_kev(6.404))
    assert direct[ch].sum() == pytest.approx(net[1], rel=0.06)  # tail and step add a few %
    # escape peak of Ca Ka at 3.69 - 1.74 keV
    esc = (det.energy > 1.85) & (det.energy < 2.05)
    assert direct[esc].sum() == pytest.approx(1000 * escape_fraction(3.69), rel=0.15)


def test_pileup_moves_counts_to_the_sum_energy():
    det = Detector(pileup_time_s=1e-6)
    spec = det.render(np.array([6.404]), np.array([1e5]))
    n = spec.sum()  # 1e5 photons plus tail and step
    frac = n * 1e-6  # rate x resolving time: ~10 % of events pair up
    piled = det.pileup(spec, live_time_s=1.0)
    s = (det.energy > 12.5) & (det.energy < 13.1)  # 2 x Fe Ka = 12.81 keV
    assert piled[s].sum() == pytest.approx(frac * n, rel=0.05)
    assert piled.sum() == pytest.approx(n * (1 - frac), rel=0.01)  # each pair is counted once


def test_calibration_drift():
    det = Detector().with_calibration(offset_kev=0.05)
    assert det.energy[0] == 0.05 and det.gain_kev == 0.01


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gain_kev": 0}, "gain_kev"),
        ({"n_channels": 4}, "n_channels"),
        ({"fwhm_mnka_ev": 80}, "Fano limit"),
        ({"window_be_um": -1}, "window_be_um"),
        ({"tail_slope": 0}, "tail_slope"),
    ],
)
def test_bad_detector(kwargs, match):
    with pytest.raises(XrayAtlasError, match=match):
        Detector(**kwargs)
