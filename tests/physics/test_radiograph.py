"""Radiograph simulator: alloy compositions, polychromatic Beer-Lambert, the thickness
ambiguity at one voltage and its resolution with two, and the image's scale independence."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.physics.materials import mass_attenuation
from xray_atlas.physics.radiograph import (
    ALLOYS,
    RadiographConfig,
    alloy,
    open_beam_log,
    radiograph,
    radiographs,
    transmission,
)


def test_alloys_stay_within_their_registered_limits():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = alloy("Al1050", rng=rng), alloy("Al2017", rng=rng)
        assert a.fraction("Al") >= 0.995 and a.fraction("Fe") <= 0.004  # AA 1050: Al >= 99.50, Fe <= 0.40 wt %
        assert 0.035 <= b.fraction("Cu") <= 0.045 and 0.004 <= b.fraction("Mg") <= 0.008  # AA 2017
    assert alloy("Al2017").density == pytest.approx(2.79)  # ASM Handbook vol. 2
    with pytest.raises(XrayAtlasError, match="alloy='Al7075'"):
        alloy("Al7075")


def test_thin_plate_follows_beer_lambert_and_thick_ones_harden_the_beam():
    al = alloy("Al1050")
    t1, t2, t10 = (-np.log(transmission(al, np.array([t]))[0]) for t in (0.01, 1.0, 10.0))
    # a 10 um foil: -ln T -> sum_E w(E) mu(E) rho t, with mu from xraylib; the weights' mean
    # attenuation lies between xraylib's mu at 50 keV and at 10 keV
    mu = mass_attenuation(al, np.array([10.0, 50.0])) * al.density / 10.0  # 1/mm
    assert mu[1] * 0.01 < t1 < mu[0] * 0.01
    assert t10 < 10 * t2 < 1000 * t1  # beam hardening: the mean attenuation falls with depth


def test_one_voltage_confuses_thickness_with_alloy_two_voltages_do_not():
    # docs/dev/glossary.md study 000: a 2017 plate of thickness t transmits about like a 1050 plate of 1.31 t
    a, b = alloy("Al1050"), alloy("Al2017")
    ratio = -np.log(transmission(b, np.array([1.0]))) / -np.log(transmission(a, np.array([1.0])))
    assert 1.2 < float(ratio[0]) < 1.45
    # the matching 1050 thickness for each 2017 plate: same signal at 50 kV ...
    grid = np.linspace(0.1, 20, 4000)
    t50_a = transmission(a, grid)
    for t in (0.5, 1.0, 2.0, 5.0, 10.0):
        same = grid[np.argmin(np.abs(t50_a - transmission(b, np.array([t]))[0]))]
        # ... but not at 80 kV: mu(2017) / mu(1050) falls from 1.44 at 25 keV to 1.16 at 80 keV
        # (xraylib: Cu's photo-absorption fades faster than Al's Compton scattering), so the
        # 2017 plate attenuates 2-3 % less there, at any thickness
        ra = -np.log(transmission(a, np.array([same]), kv=80.0)[0])
        rb = -np.log(transmission(b, np.array([t]), kv=80.0)[0])
        assert rb < ra * 0.99, (t, ra, rb)


def test_radiograph_has_open_beam_around_the_object_and_no_fixed_scale():
    cfg = RadiographConfig(size=96, kind="plate", flat_field_share=1.0, photons=(1e5, 1e5), blur_px=(0.3, 0.3))
    r = radiograph("Al2017", config=cfg, thickness_mm=2.0, rng=3, output="uint16")
    assert r.image.dtype == np.uint16 and r.image.shape == (96, 96)
    log = open_beam_log(r.image)
    assert np.median(np.r_[log[0], log[-1], log[:, 0], log[:, -1]]) < 0.02  # open beam at the border
    inside = np.sort(log.ravel())[-200:]  # the plate's interior
    expect = -np.log(transmission(r.material, np.array([2.0]))[0])
    assert np.median(inside) == pytest.approx(expect, abs=0.03)
    f = radiograph("Al2017", config=cfg, thickness_mm=2.0, rng=3, output="float")
    np.testing.assert_allclose(open_beam_log(f.image), log, atol=0.01)  # 16 bit or float: same -ln(I / I0)


def test_dual_energy_wedges_and_batches():
    cfg = RadiographConfig(size=64, kind="wedge", kv=(50.0, 80.0))
    r = radiograph("Al1050", config=cfg, rng=1, output="float")
    assert r.image.shape == (2, 64, 64) and r.kind == "wedge" and r.thickness_mm == 10.0
    assert open_beam_log(r.image[1]).max() < open_beam_log(r.image[0]).max()  # 80 kV penetrates more
    x, y, recs = radiographs(12, config=RadiographConfig(size=48, kind="both"), seed=2, balance=(0.25, 0.75))
    assert x.shape == (12, 48, 48) and set(y) <= {0, 1} and [ALLOYS[k] for k in y] == [q.alloy for q in recs]
    with pytest.raises(XrayAtlasError, match="kind='disc'"):
        RadiographConfig(kind="disc").check()


def test_instrument_spread_changes_the_beam_per_image():
    # the same 2 mm plate under +-3 kV: the attenuation level moves (a softer beam attenuates more)
    cfg = RadiographConfig(size=48, kind="plate", kv_spread=3.0, flat_field_share=1.0, photons=(1e6, 1e6))
    levels = {
        round(
            float(
                np.sort(
                    open_beam_log(
                        radiograph("Al1050", config=cfg, thickness_mm=2.0, rng=s, output="float").image
                    ).ravel()
                )[-50:].mean()
            ),
            2,
        )
        for s in range(5)
    }
    assert len(levels) >= 2 and max(levels) - min(levels) > 0.02
