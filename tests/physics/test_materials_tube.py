import numpy as np
import pytest
import xraylib

from xray_atlas import XrayAtlasError
from xray_atlas.physics.materials import PIGMENTS, compound, mass_attenuation, mix, pigment
from xray_atlas.physics.tube import Tube, tube_spectrum


def test_compound_fractions_are_xraylibs():
    c = compound("PbCrO4", density=6.1)
    ref = xraylib.CompoundParser("PbCrO4")
    for z, w in zip(ref["Elements"], ref["massFractions"]):
        assert c.fraction(z) == pytest.approx(w)
    assert sum(w for _, w in c.fractions) == pytest.approx(1.0)


def test_mix_density_follows_volumes():
    a = compound("CaCO3", density=2.71)
    b = compound("C18H32O2", density=0.93)
    m = mix([(a, 0.5), (b, 0.5)])
    assert m.density == pytest.approx(1 / (0.5 / 2.71 + 0.5 / 0.93))
    assert m.fraction("Ca") == pytest.approx(0.5 * a.fraction("Ca"))


def test_pigments_hold_their_key_elements():
    for name, sym in [
        ("lead white", "Pb"),
        ("vermilion", "Hg"),
        ("azurite", "Cu"),
        ("smalt", "Co"),
        ("chrome yellow", "Cr"),
        ("yellow ochre", "Fe"),
        ("raw umber", "Mn"),
        ("zinc white", "Zn"),
        ("gold leaf", "Au"),
        ("chalk ground", "Sr"),
        ("naples yellow", "Sb"),
        ("lead-tin yellow", "Sn"),
    ]:
        assert pigment(name).fraction(sym) > 0.001, name
    assert len(PIGMENTS) >= 20


def test_mass_attenuation_is_weighted_sum():
    c = compound("FeO(OH)", density=4.27)
    e = np.array([5.0, 10.0])
    expect = sum(w * np.array([xraylib.CS_Total(z, v) for v in e]) for z, w in c.fractions)
    np.testing.assert_allclose(mass_attenuation(c, e), expect)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: compound("Xq2O", density=1), "formula"),
        (lambda: compound("CaCO3", density=0), "density"),
        (lambda: compound({"Fe": -1}, density=1), "negative"),
        (lambda: pigment("unobtainium"), "pigment='unobtainium' is unknown"),
        (lambda: Tube("Zr"), "anode"),
        (lambda: Tube(kv=500), "kv=500"),
        # SpekPy models a Rh anode up to 50 kV only, and says so with a bare Exception
        (lambda: tube_spectrum(Tube("Rh", 55.0)), "SpekPy does not simulate a Rh tube at 55 kV"),
    ],
)
def test_bad_materials_and_tubes(call, match):
    with pytest.raises(XrayAtlasError, match=match):
        call()


def test_rh_tube_has_its_k_lines():
    e, f = tube_spectrum(Tube("Rh", 50.0), de=0.05)
    assert e.max() < 50.1 and f.min() >= 0
    ka = xraylib.LineEnergy(45, xraylib.KL3_LINE)  # 20.216 keV
    near = np.abs(e - ka) < 0.1
    continuum = (e > 17) & (e < 19)
    assert f[near].max() > 10 * np.median(f[continuum])
