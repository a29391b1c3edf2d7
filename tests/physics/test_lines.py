import pytest
import xraylib

from xray_atlas import XrayAtlasError
from xray_atlas.physics.lines import DEFAULT_MAP_LINES, family_lines, parse_line_family


def test_energies_are_xraylibs():
    for line in DEFAULT_MAP_LINES:
        sym, fam = parse_line_family(line)
        z = xraylib.SymbolToAtomicNumber(sym)
        for ln in family_lines(line):
            assert ln.energy_kev == xraylib.LineEnergy(z, getattr(xraylib, f"{ln.iupac}_LINE"))


def test_reference_energies():
    # xraylib 4.x LineEnergy: Fe KL3 6.4039 keV, Pb L3M5 10.5512 keV, Hg M5N7 2.1953 keV
    fe = {ln.iupac: ln.energy_kev for ln in family_lines("Fe-K")}
    assert fe["KL3"] == pytest.approx(6.4039, abs=1e-4)
    pb = {ln.iupac: ln.energy_kev for ln in family_lines("Pb-L")}
    assert pb["L3M5"] == pytest.approx(10.5512, abs=1e-3)
    hg = {ln.iupac: ln.energy_kev for ln in family_lines("Hg-M")}
    assert hg["M5N7"] == pytest.approx(2.195, abs=2e-3)


def test_intensities_sum_to_one_and_follow_radiative_rates():
    for line in ("Fe-K", "Pb-L", "Au-L", "Hg-M", "S-K"):
        assert sum(ln.relative_intensity for ln in family_lines(line)) == pytest.approx(1.0)
    # For a K family the cascade cannot change line ratios: Kb/Ka equals xraylib's
    # radiative-rate ratio (KM2 + KM3) / (KL2 + KL3), 0.1366 for Fe.
    fe = {ln.iupac: ln.relative_intensity for ln in family_lines("Fe-K", min_relative=0)}
    rr = {n: xraylib.RadRate(26, getattr(xraylib, f"{n}_LINE")) for n in ("KL2", "KL3", "KM2", "KM3")}
    expect = (rr["KM2"] + rr["KM3"]) / (rr["KL2"] + rr["KL3"])
    assert (fe["KM2"] + fe["KM3"]) / (fe["KL2"] + fe["KL3"]) == pytest.approx(expect, rel=1e-6)
    # Pb: La1 is the strongest L line (xraylib cross sections at 25 keV)
    assert family_lines("Pb-L")[0].iupac == "L3M5"


@pytest.mark.parametrize(
    "line, match",
    [
        ("Xx-K", "'Xx' is not an element symbol"),
        ("Fe-Q", "family must be one of K, L, M"),
        ("FeK", "write a line family"),
        ("C-L", "no L lines for C"),
    ],
)
def test_bad_line_names(line, match):
    with pytest.raises(XrayAtlasError, match=match):
        family_lines(line)


def test_excitation_below_edge_gives_no_lines():
    with pytest.raises(XrayAtlasError, match="no K lines for Pb excited at 20 keV"):
        family_lines("Pb-K", excitation_kev=20.0)  # Pb K edge is 88 keV
    with pytest.raises(XrayAtlasError, match="excitation_kev=-1"):
        family_lines("Fe-K", excitation_kev=-1)


def test_marker_lines_reach_down_to_the_axis_start():
    from xray_atlas.physics.lines import marker_lines

    # SEM-EDS: the only lines of C, O, Na lie below 1.2 keV (xraylib KL3: 0.277, 0.525, 1.041 keV)
    got = marker_lines(["C-K", "O-K", "Na-K", "Mg-K", "Al-K", "C-L"], lo_kev=0.1, hi_kev=10.0)
    energies = {ln.energy_kev for _, ln in got}
    for z in (6, 8, 11, 12, 13):
        assert xraylib.LineEnergy(z, xraylib.KL3_LINE) in energies
    assert {name for name, _ in got} == {"C-K", "O-K", "Na-K", "Mg-K", "Al-K"}  # C has no L lines
    # lines below the start of the axis are not marked
    assert [n for n, _ in marker_lines(["C-K", "O-K"], lo_kev=0.4, hi_kev=10.0)] == ["O-K", "O-K"]


def test_soft_families_are_marked_only_alone():
    from xray_atlas.physics.lines import marker_lines

    # Fe L (0.705 keV) beside Fe K only clutters an MA-XRF plot; alone it is marked
    both = marker_lines(["Fe-K", "Fe-L", "Pb-L"], lo_kev=0.0, hi_kev=40.0)
    assert {n for n, _ in both} == {"Fe-K", "Pb-L"}
    alone = marker_lines(["Fe-L"], lo_kev=0.0, hi_kev=40.0)
    assert alone and all(n == "Fe-L" and ln.energy_kev < 1.0 for n, ln in alone)
    # Fe K outside the axis (a 0-5 keV EDS spectrum): Fe L is what there is to mark
    assert {n for n, _ in marker_lines(["Fe-K", "Fe-L"], lo_kev=0.0, hi_kev=5.0)} == {"Fe-L"}
    assert all(ln.relative_intensity >= 0.01 for _, ln in both)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"families": ["Fe-K"], "lo_kev": 5.0, "hi_kev": 5.0}, "hi_kev=5.0 must be above lo_kev=5.0"),
        ({"families": ["Xq-K"], "lo_kev": 0.0, "hi_kev": 5.0}, "families='Xq-K'"),
    ],
)
def test_marker_lines_bad_input(kwargs, match):
    from xray_atlas.physics.lines import marker_lines

    with pytest.raises(XrayAtlasError, match=match):
        marker_lines(**kwargs)
