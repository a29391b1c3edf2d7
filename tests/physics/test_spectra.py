import numpy as np
import pytest
import xraylib

from xray_atlas import XrayAtlasError
from xray_atlas.io import read
from xray_atlas.physics.materials import compound, pigment
from xray_atlas.physics.spectra import Geometry, Instrument, Layer, scatter_geometry, simulate
from xray_atlas.physics.tube import tube_spectrum


def _line_net(sim, family, iupacs):
    return sum(n for fam, iu, _, n in sim.lines if fam == family and iu in iupacs)


def _xraylib_ratio(z, num, den, inst, det_energies):
    """Tube-weighted xraylib cross-section ratio, times the detector efficiency ratio."""
    e0, flux = tube_spectrum(inst.tube, de=inst.tube_de_kev)

    def cs_line(name, e):
        try:
            return xraylib.CS_FluorLine_Kissel_Cascade(z, getattr(xraylib, f"{name}_LINE"), e)
        except ValueError:  # below the edge
            return 0.0

    cs = {n: sum(flux * np.array([cs_line(n, e) for e in e0])) for n in num + den}
    eff = inst.detector.efficiency(np.array(det_energies))
    return sum(cs[n] for n in num) / sum(cs[n] for n in den) * eff[0] / eff[1]


def test_thin_fe_and_pb_line_ratios_follow_xraylib():
    inst = Instrument()
    fe = simulate([Layer(compound("Fe", density=7.87), 0.05)], inst, scatter=False, pileup=False)
    got = _line_net(fe, "Fe-K", {"KM2", "KM3"}) / _line_net(fe, "Fe-K", {"KL2", "KL3"})
    expect = _xraylib_ratio(26, ["KM2", "KM3"], ["KL2", "KL3"], inst, [7.058, 6.404])
    assert got == pytest.approx(expect, rel=0.10)
    pb = simulate([Layer(compound("Pb", density=11.3), 0.01)], inst, scatter=False, pileup=False)
    got = _line_net(pb, "Pb-L", {"L2M4", "L3N5"}) / _line_net(pb, "Pb-L", {"L3M5", "L3M4"})
    expect = _xraylib_ratio(82, ["L2M4", "L3N5"], ["L3M5", "L3M4"], inst, [12.614, 10.551])
    assert got == pytest.approx(expect, rel=0.10)


def test_paint_layer_hides_what_lies_beneath():
    inst = Instrument()
    lead = [
        simulate([Layer(pigment("vermilion"), t), Layer(pigment("lead white"))], inst).net["Pb-L"]
        for t in (5.0, 20.0, 60.0)
    ]
    assert lead[0] > lead[1] > lead[2] > 0
    thick = simulate([Layer(pigment("lead white"), 2000.0)], inst).net["Pb-L"]
    infinite = simulate([Layer(pigment("lead white"))], inst).net["Pb-L"]
    assert thick == pytest.approx(infinite, rel=1e-3)


@pytest.mark.parametrize("scatter_deg", [90.0, 150.0])
def test_compton_peak_where_kinematics_puts_it(scatter_deg):
    inst = Instrument(geometry=scatter_geometry(scatter_deg))
    assert inst.geometry.scatter_deg == scatter_deg
    sim = simulate([Layer(compound("C6H10O5", density=1.5))], inst, pileup=False)  # cellulose: scatter only
    theta = np.radians(inst.geometry.scatter_deg)
    e_rh = xraylib.LineEnergy(45, xraylib.KL3_LINE)
    e_c = e_rh / (1 + e_rh / 510.999 * (1 - np.cos(theta)))  # Compton formula
    win = (sim.energy > e_c - 0.6) & (sim.energy < e_rh - 0.3)
    peak = sim.energy[win][np.argmax(sim.scatter[win])]
    assert peak == pytest.approx(e_c, abs=0.1)
    # and the Rayleigh peak sits at the tube line itself
    win = np.abs(sim.energy - e_rh) < 0.2
    assert sim.energy[win][np.argmax(sim.scatter[win])] == pytest.approx(e_rh, abs=0.03)


def test_scatter_geometry_keeps_the_default_at_90_degrees_and_refuses_others_by_name():
    assert scatter_geometry(90.0) == Geometry()
    g = scatter_geometry(135.0)  # the beam normal to the surface, the detector tilted
    assert (g.incidence_deg, g.exit_deg) == (90.0, 45.0)
    for bad in (60.0, 180.0):
        with pytest.raises(XrayAtlasError, match=f"scatter_deg={bad}"):
            scatter_geometry(bad)


def test_steel_srm1155_against_the_real_spectrum(real_data):
    """Steel.spe (NIST SRM 1155) simulated with the instrument of Steel.cfg (16 keV excitation)."""
    from xray_atlas.physics.reference import steel_srm1155
    from xray_atlas.physics.spectra import pure_spectrum
    from xray_atlas.unmix import fit_net_counts

    steel, inst = steel_srm1155()
    sim = simulate(steel, inst)
    with read(real_data / "Steel.spe") as cube:
        meas = cube.pixel(0, 0).astype(float)
    e = inst.detector.energy
    for fam, iu in (("Cr-K", "KL3"), ("Mn-K", "KL3"), ("Fe-K", "KL3"), ("Ni-K", "KL3"), ("Fe-K", "KM3")):
        en = xraylib.LineEnergy(xraylib.SymbolToAtomicNumber(fam[:-2]), getattr(xraylib, f"{iu}_LINE"))
        i = int(round((en - e[0]) / inst.detector.gain_kev))
        got = [i - 6 + int(np.argmax(s[i - 6 : i + 7])) for s in (meas, sim.expected)]
        assert abs(got[0] - got[1]) <= 1, (fam, iu, got)  # peak positions within one channel
    # net areas in the measurement: the simulated family shapes (its line ratios) + SNIP background
    pure = {f: sim.family_spectrum(f, inst.detector) for f in ("Cr-K", "Mn-K", "Fe-K", "Ni-K")}
    pure.update({f: pure_spectrum(f, instrument=inst) for f in ("Cu-K", "V-K", "Ar-K", "Mo-L")})
    ch = slice(int(1.5 / inst.detector.gain_kev), int(20 / inst.detector.gain_kev))
    fit = fit_net_counts(meas, pure, channels=ch)
    for fam in ("Cr-K", "Mn-K", "Ni-K"):
        ratio = (sim.net[fam] / sim.net["Fe-K"]) / (fit[fam] / fit["Fe-K"])
        assert ratio == pytest.approx(1.0, abs=0.25), (fam, ratio)


def test_m6_jetstream_real_spectrum_shape(real_data):
    """The Bruker M6 spectrum: continuum, scatter and peaks agree band by band within x1.6."""
    from xray_atlas.physics.reference import m6_jetstream_sample

    sim, target, meas = m6_jetstream_sample(real_data / "bruker_m6_jetstream_file_example.spx", iterations=6)
    for fam in ("Ca-K", "Fe-K", "Sr-K", "Pb-L"):
        assert sim.net[fam] == pytest.approx(target[fam], rel=0.1)
    for a, b in [(4.3, 6.0), (6.0, 12.0), (12.0, 17.5), (17.5, 21.5)]:  # continuum, Compton + Rayleigh
        k = (sim.energy > a) & (sim.energy < b)
        assert abs(np.log10(sim.expected[k].sum() / meas[k].sum())) < 0.2, (a, b)


@pytest.mark.parametrize(
    "layers, match",
    [
        ([], "at least one layer"),
        ([Layer(pigment("vermilion")), Layer(pigment("lead white"))], "infinitely thick but is not the last"),
    ],
)
def test_bad_stacks(layers, match):
    with pytest.raises(XrayAtlasError, match=match):
        simulate(layers)


def test_bad_layer_thickness():
    with pytest.raises(XrayAtlasError, match="thickness_um=-2"):
        Layer(pigment("azurite"), -2)
