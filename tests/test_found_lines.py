"""Every element that is there gets mapped (issue 28): the default map set is the twelve study
lines and every K or L family the per-cluster fit and the element model find in the cube; any
family can be named or added; a family the cube cannot show is refused in one line."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.cube import SpectralCube, run_to_end
from xray_atlas.inference import check_lines, iter_maps, load_map_model, parse_lines, predict_maps
from xray_atlas.physics.lines import DEFAULT_MAP_LINES
from xray_atlas.physics.materials import compound
from xray_atlas.physics.painting import Region, paint, synthetic_painting

#: Arsenic, cobalt, titanium, barium, tin and antimony pigments beside vermilion on lead white:
#: orpiment, realgar, smalt, titanium white, lithopone, lead-tin yellow, Naples yellow.
SIX = [
    Region("lead white priming", (("lead white", 30.0),)),
    Region("orpiment", (("orpiment", 20.0), ("lead white", 30.0))),
    Region("realgar", (("realgar", 15.0), ("lead white", 30.0))),
    Region("smalt", (("smalt", 30.0), ("lead white", 30.0))),
    Region("titanium white", (("titanium white", 20.0),)),
    Region("lithopone", (("lithopone", 20.0),)),
    Region("lead-tin yellow", (("lead-tin yellow", 15.0),)),
    Region("naples yellow", (("naples yellow", 15.0),)),
    Region("vermilion", (("vermilion", 25.0), ("lead white", 30.0))),
]
ADDED = ("As-K", "Co-K", "Ti-K", "Ba-L", "Sn-L", "Sb-L")  # Ba K, Sn K, Sb K: barely excited through the optic


def _cube(p):
    return SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=p.attrs)


@pytest.fixture(scope="module")
def six():
    yy, xx = np.mgrid[:32, :32]
    reg = (yy * 3 // 32) * 3 + xx * 3 // 32 + 1  # a 3 x 3 grid of the eight paints and the bare priming
    reg[reg == 9] = 0
    return paint(reg.astype(np.int32), SIX, seed=3)


def test_default_set_maps_the_arsenic_cobalt_titanium_barium_tin_antimony_of_a_painting(six):
    done = predict_maps(_cube(six), None, device="cpu")  # the default model, maps-fit
    maps = done.maps
    assert done.model == "maps-fit" and set(DEFAULT_MAP_LINES) <= set(maps)
    found = [f.line for f in done.found]
    assert set(ADDED) <= set(found) and set(maps) == set(DEFAULT_MAP_LINES) | set(found)
    # every addition is in the painting: the simulator's true maps hold it (Ni-K of smalt, Si-K of the glass too)
    assert all(six.maps.get(ln, np.zeros(1)).max() > 1.0 for ln in found), found
    # and maps it: correlation with the true map (benchmarks/found_lines.py on this painting:
    # Ti-K 1.000, Ba-L 1.000, Co-K 0.999, As-K 0.999, Sb-L 0.999, Sn-L 0.971)
    for ln in ADDED:
        r = np.corrcoef(maps[ln].ravel(), six.maps[ln].ravel())[0, 1]
        assert r > 0.95, (ln, r)
        assert float(maps[ln].sum()) == pytest.approx(float(six.maps[ln].sum()), rel=0.15), ln
    assert any(n.startswith("found in the cube") and "As-K (z " in n for n in done.notes)
    assert any("from the per-cluster fit, held and shrunk" in n for n in done.notes)
    # the maps of the twelve are those of a run that names them: the additions change nothing there
    twelve = predict_maps(_cube(six), None, device="cpu", lines=DEFAULT_MAP_LINES).maps
    assert set(twelve) == set(DEFAULT_MAP_LINES)
    for ln in ("Pb-L", "Hg-L"):
        np.testing.assert_allclose(twelve[ln], maps[ln], rtol=0.02, atol=1.0)


def test_default_set_adds_nothing_a_painting_lacks():
    # the demo painting's layout (lead-tin yellow only under malachite, where its L lines are
    # absorbed): none of arsenic, cobalt, titanium, barium or antimony is added, nor anything
    # the painting does not hold
    p = synthetic_painting(48, 64, seed=0)
    done = predict_maps(_cube(p), "fit", device="cpu")
    maps = done.maps
    found = [f.line for f in done.found]
    assert not set(found) & {"As-K", "Co-K", "Ti-K", "Ba-L", "Ba-K", "Sb-L", "Sb-K", "Sn-K", "Cd-K", "Cl-K"}, found
    assert all(p.maps.get(ln, np.zeros(1)).sum() > 0 for ln in found), found
    # a list of lines maps those and looks for nothing
    done = predict_maps(_cube(p), "fit", device="cpu", lines=("Pb-L", "Hg-L"))
    maps = done.maps
    assert set(maps) == {"Pb-L", "Hg-L"} and done.found == ()


def test_any_family_can_be_added_and_every_model_maps_it():
    # molybdenum is none of the 44 families of the physics prior: a paint of MoO3 beside lead white
    moly = compound("MoO3", density=4.7, name="molybdenum trioxide")
    reg = np.zeros((16, 16), np.int32)
    reg[:, 8:] = 1
    p = paint(reg, [Region("lead white", (("lead white", 30.0),)), Region("moly", ((moly, 10.0),))], seed=1)
    truth = p.maps["Mo-K"]
    assert truth[:, 8:].min() > 50 and truth[:, :8].max() == 0
    cube = _cube(p)
    for model in ("fit", "lsq", "roi", "maps-fit", "maps-default"):
        done = predict_maps(cube, model, device="cpu", add_lines=("Mo-K",))
        maps = done.maps
        assert set(DEFAULT_MAP_LINES) | {"Mo-K"} <= set(maps), model
        r = np.corrcoef(maps["Mo-K"].ravel(), truth.ravel())[0, 1]
        assert r > 0.95 and float(maps["Mo-K"].sum()) == pytest.approx(float(truth.sum()), rel=0.25), (model, r)
        if model.startswith("maps-"):
            assert any("Mo-K" in n and "per-cluster fit" in n for n in done.notes), done.notes
    # named alone, it is the only map
    maps = predict_maps(cube, "maps-fit", device="cpu", lines=("Mo-K",)).maps
    assert list(maps) == ["Mo-K"]
    # without a calibration a learnt model cannot take it from the fit: refused, naming what to do
    bare = SpectralCube(p.counts)
    with pytest.raises(XrayAtlasError, match=r"Mo-K not among the outputs of maps-default.*energy calibration"):
        load_map_model(None, bare, device="cpu", add_lines=("Mo-K",))
    mm = load_map_model(None, bare, device="cpu")
    with pytest.raises(XrayAtlasError, match="Mo-K not among the outputs"):
        run_to_end(iter_maps(bare, mm, lines=("Mo-K",)))


def test_a_family_the_cube_cannot_show_is_refused_in_one_line():
    cube = SpectralCube(np.ones((2, 2, 2048), np.float32), offset_kev=0.0, gain_kev=0.01, metadata={"tube_kv": 50.0})
    with pytest.raises(XrayAtlasError) as err:
        load_map_model("lsq", cube, device="cpu", lines=("U-K",))
    msg = str(err.value)
    assert "\n" not in msg and "U-K" in msg and "0.90-20.47 keV" in msg and "50 kV" in msg and "K edge" in msg
    with pytest.raises(XrayAtlasError, match=r"Ba-K has no line within this cube's 0.90-20.47 keV \(its lines lie"):
        load_map_model("fit", cube, device="cpu", add_lines=("Ba-K",))
    with pytest.raises(XrayAtlasError, match="C-K has no line"):  # below the noise peak's cut-off
        check_lines(("C-K",), cube)
    assert check_lines(("u-l", "Pb-L", "pb-l"), cube) == ("U-L", "Pb-L")  # U L lines at 13.6-17.2 keV


def test_line_lists_as_typed():
    assert parse_lines("") == (None, ()) and parse_lines(None) == (None, ())
    assert parse_lines("Pb-L, fe-k Hg-L") == (("Pb-L", "Fe-K", "Hg-L"), ())
    assert parse_lines("+As-K, Co-K +sb-l") == (None, ("As-K", "Co-K", "Sb-L"))
    for bad, needle in (("Pb-L, +As-K", "start the list with +"), ("+", "a [+] without"), ("+Xx-K", "Xx")):
        with pytest.raises(XrayAtlasError, match=needle):
            parse_lines(bad)


def test_command_line_adds_and_records_the_lines(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    from xray_atlas.io.results import read_results

    exe = shutil.which("xray-atlas") or os.path.join(os.path.dirname(sys.executable), "xray-atlas")
    moly = compound("MoO3", density=4.7, name="molybdenum trioxide")
    reg = np.zeros((12, 12), np.int32)
    reg[:6] = 1
    reg[:, 8:] = 2
    regions = [
        Region("lead white", (("lead white", 30.0),)),
        Region("orpiment", (("orpiment", 20.0),)),
        Region("moly", ((moly, 10.0),)),
    ]
    cube = tmp_path / "p.h5"
    paint(reg, regions, seed=2).write(cube)
    out = tmp_path / "maps.h5"
    res = subprocess.run(
        [exe, "maps", cube, out, "--model", "fit", "--lines", "+Mo-K"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    r = read_results(out)
    found = r["attrs"]["found_lines"].split(",")
    # arsenic found (the twelve and As-K), molybdenum asked for: the file holds all of them and says which were found
    assert "As-K" in found and "Mo-K" not in found
    assert set(r["maps"]) == set(DEFAULT_MAP_LINES) | set(found) | {"Mo-K"}
    assert f"found in the cube and added: {', '.join(found)}" in res.stdout
    assert "found in the cube and mapped beside the default lines: As-K (z " in res.stderr
    bad = subprocess.run(
        [exe, "maps", cube, tmp_path / "x.h5", "--lines", "+U-K"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "U-K has no line within this cube's 0.90-40.95 keV that a 50 kV tube excites" in bad.stderr
    assert not (tmp_path / "x.h5").exists()


def test_families_on_the_tubes_scattered_lines():
    from xray_atlas.models.prior import INSTRUMENT_DEFAULTS, PRIOR_FAMILIES, instrument_for
    from xray_atlas.probabilities import on_tube_lines

    # the M6's Rh tube at 50 kV: Cd Ka1 (23.174 keV, xraylib) is Rh Kb2 (23.172 keV), Cl Ka
    # (2.622) lies 70 eV from Rh La (2.692), Cd La (3.134) 10 eV from Rh Lg1 (3.144)
    on = on_tube_lines(PRIOR_FAMILIES, instrument_for(n_channels=4096, **INSTRUMENT_DEFAULTS))
    assert {"Cl-K", "Cd-K", "Cd-L", "Ag-K", "Ag-L"} <= set(on)
    assert not set(on) & {"As-K", "Co-K", "Ti-K", "Ba-L", "Sn-L", "Sb-L", "Pb-L", "Fe-K"}
