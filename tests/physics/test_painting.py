import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.io import read
from xray_atlas.physics.lines import DEFAULT_MAP_LINES
from xray_atlas.physics.painting import family_profile, fwhm_kev, simple_painting


def test_fwhm_at_mn_ka_is_145_ev():
    assert fwhm_kev(5.8951) == pytest.approx(0.145, abs=1e-6)
    # Fano broadening grows with energy: FWHM(Pb La) > FWHM(Mn Ka) > FWHM(S Ka)
    assert fwhm_kev(10.55) > fwhm_kev(5.9) > fwhm_kev(2.3)


def test_profile_has_unit_area_and_peaks_at_the_line():
    energy = np.arange(4096) * 0.01
    prof = family_profile("Fe-K", energy)
    assert prof.sum() == pytest.approx(1.0, rel=1e-3)
    assert energy[np.argmax(prof)] == pytest.approx(6.40, abs=0.015)


def test_painting_truth_and_counts(tmp_path):
    p = simple_painting(24, 32, seed=3)
    assert set(DEFAULT_MAP_LINES) <= set(p.maps)
    totals = p.counts.sum(-1)
    assert 1500 < totals.mean() < 6000  # realistic counts per MA-XRF pixel
    # Net counts of a line family appear under its peak: the Hg La window tracks the Hg-L map
    e = p.energy
    win = (e > 9.85) & (e < 10.15)
    r = np.corrcoef(p.counts[..., win].sum(-1).ravel(), p.maps["Hg-L"].ravel())[0, 1]
    assert r > 0.9
    p.write(tmp_path / "p.h5")
    with read(tmp_path / "p.h5") as cube:
        assert cube.shape == (24, 32, 4096)
        np.testing.assert_array_equal(cube.pixel(5, 6), p.counts[5, 6])
        np.testing.assert_allclose(cube.reference_maps["Pb-L"][()], p.maps["Pb-L"])


def test_same_seed_same_painting():
    a, b = simple_painting(8, 8, seed=1), simple_painting(8, 8, seed=1)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert not np.array_equal(a.counts, simple_painting(8, 8, seed=2).counts)


@pytest.mark.parametrize("kwargs, match", [
    ({"height": 0}, "height=0"), ({"n_channels": 8}, "n_channels=8"), ({"dose": -1}, "dose=-1"),
    ({"fwhm_mnka_ev": 50}, "Fano limit"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(XrayAtlasError, match=match):
        simple_painting(**{"height": 4, "width": 4, **kwargs})
