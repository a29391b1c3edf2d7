"""The XRF instrument fitted to a scan's sum spectrum (xray_atlas.adapt.spectra). References:
paintings scanned by the physics engine with a known instrument (the fit must name it), and
the real Bruker M6 Jetstream spectrum (Rh tube at 50 kV with a polycapillary, its file says
50 kV; the M6's detector is specified at about 145 eV at Mn Ka)."""

from dataclasses import replace

import numpy as np
import pytest

from xray_atlas.adapt.spectra import fit_xrf_instrument
from xray_atlas.errors import XrayAtlasError
from xray_atlas.physics.painting import paint, painting_instrument, random_layout
from xray_atlas.physics.tube import Tube

M6_LIKE = painting_instrument(dwell_ms=20.0)
#: An instrument unlike the training scanner: W tube at 40 kV, no optic, a 170 eV detector.
SHIFTED = replace(
    M6_LIKE,
    tube=Tube("W", 40.0, current_ua=600.0),
    optic=None,
    detector=replace(M6_LIKE.detector, fwhm_mnka_ev=170.0),
)


def _sum_spectrum(instrument, seed=3):
    reg, regions = random_layout(24, 32, seed=seed)
    p = paint(reg, regions, instrument=instrument, seed=seed)
    return p.counts.reshape(-1, p.counts.shape[-1]).sum(0), p.energy_offset_kev, p.energy_gain_kev


@pytest.mark.parametrize(
    ("instrument", "anode", "optic", "kv", "fwhm"),
    [(M6_LIKE, "Rh", True, 50.0, 145.0), (SHIFTED, "W", False, 40.0, 170.0)],
    ids=["m6-like", "w-40kv-no-optic-170ev"],
)
def test_the_fit_names_the_instrument_a_painting_was_scanned_with(instrument, anode, optic, kv, fwhm):
    spectrum, offset, gain = _sum_spectrum(instrument)
    fit = fit_xrf_instrument(spectrum, offset_kev=offset, gain_kev=gain)
    got = fit.instrument
    assert (got.anode, got.optic) == (anode, optic)
    assert abs(got.kv - kv) <= 2.0 and abs(got.fwhm_mnka_ev - fwhm) <= 10.0
    # every other anode and optic the fit tried fitted worse
    others = [chi2 for cand, chi2 in fit.tried.items() if (cand.anode, cand.optic) != (anode, optic)]
    assert len(others) >= 10 and min(others) > fit.reduced_chi2
    assert fit.fitted.shape == fit.measured.shape == fit.energy.shape
    assert np.isfinite(fit.residual).all()


def test_the_real_m6_spectrum_reads_as_a_rhodium_tube_at_50_kv_with_an_optic(real_data):
    from xray_atlas.io import read

    with read(real_data / "bruker_m6_jetstream_file_example.spx") as cube:
        spectrum = cube.spectrum_stats()["sum"]
        fit = fit_xrf_instrument(spectrum, offset_kev=cube.energy_offset_kev, gain_kev=cube.energy_gain_kev)
    got = fit.instrument
    assert (got.anode, got.optic) == ("Rh", True)
    assert 48.0 <= got.kv <= 52.0 and 130.0 <= got.fwhm_mnka_ev <= 160.0


def test_spectra_that_cannot_be_fitted_are_refused_by_name():
    good = np.full(1024, 50.0)
    with pytest.raises(XrayAtlasError, match="too few"):
        fit_xrf_instrument(np.ones(1024), offset_kev=0.0, gain_kev=0.02)
    with pytest.raises(XrayAtlasError, match="non-negative"):
        fit_xrf_instrument(np.r_[good, -1.0], offset_kev=0.0, gain_kev=0.02)
    with pytest.raises(XrayAtlasError, match="gain_kev=0"):
        fit_xrf_instrument(good, offset_kev=0.0, gain_kev=0.0)
    with pytest.raises(XrayAtlasError, match="'Pt' is not one of"):
        fit_xrf_instrument(good, offset_kev=0.0, gain_kev=0.02, anodes=("Pt",))
