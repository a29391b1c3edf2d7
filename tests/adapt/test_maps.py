"""The map model adapted to the user's instrument (xray_atlas.adapt.maps). Reference: a
painting scanned by the physics engine with a W tube at 40 kV, no optic and a 170 eV detector
(the shipped maps-fit was trained on an Rh tube at 50 kV behind a polycapillary, 145 eV)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from xray_atlas.clusterfit import ClusterFit
from xray_atlas.cube import SpectralCube
from xray_atlas.errors import XrayAtlasError
from xray_atlas.physics.painting import paint, painting_instrument, random_layout

W_TUBE = {"anode": "W", "tube_kv": 40.0, "optic": False, "fwhm_mnka_ev": 170.0}
SHIFTED = painting_instrument(dwell_ms=20.0, **W_TUBE)
EXE = shutil.which("xray-atlas") or os.path.join(os.path.dirname(sys.executable), "xray-atlas")


def _cli(*args):
    return subprocess.run([EXE, "adapt", "maps", *map(str, args)], capture_output=True, text=True, timeout=900)


def _painting(seed=3, size=(24, 32)):
    reg, regions = random_layout(*size, seed=seed)
    return paint(reg, regions, instrument=SHIFTED, seed=seed)


def test_the_cluster_fit_with_the_scanner_it_is_told_fits_that_scanner_better():
    # 400 ms per pixel (about 70,000 counts): the peaks' shapes show in each pixel's chi-square
    reg, regions = random_layout(16, 16, seed=4)
    p = paint(reg, regions, instrument=painting_instrument(dwell_ms=400.0, **W_TUBE), seed=4)
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata={})
    told = {"anode": "W", "tube_kv": 40.0, "polycapillary": False, "fwhm_mnka_ev": 170.0}

    def median_chi2(fit):
        from xray_atlas.cube import run_to_end

        run_to_end(fit.iter_prepare())
        return float(np.nanmedian(fit.tile(np.asarray(p.counts, np.float32), chi2=True).chi2))

    default, right = median_chi2(ClusterFit(cube, ("Fe-K",))), median_chi2(ClusterFit(cube, ("Fe-K",), instrument=told))
    # measured 4.35 against 5.79 (the cluster fit learns each paint's line shapes, which makes up
    # for part of a wrong scanner); equal if the instrument were ignored
    assert right < 0.85 * default, (right, default)
    # what the file states comes first: a cube whose metadata names the W tube and 170 eV is
    # fitted with them even when told the M6-like scanner
    stated = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata={**told})
    m6 = {"anode": "Rh", "tube_kv": 50.0, "fwhm_mnka_ev": 145.0}
    fit = ClusterFit(stated, ("Fe-K",), instrument={**m6, "polycapillary": False})
    assert np.allclose(fit.basis.thin, ClusterFit(cube, ("Fe-K",), instrument=told).basis.thin)
    with pytest.raises(XrayAtlasError, match="instrument: no parameter"):
        ClusterFit(cube, ("Fe-K",), instrument={"anode": "W", "kvp": 40})


def test_adapt_maps_fine_tunes_maps_fit_for_the_fitted_instrument(tmp_path):
    from xray_atlas.inference import load_map_model
    from xray_atlas.models.catalogue import list_models
    from xray_atlas.models.files import read_card

    cube = tmp_path / "scan.h5"
    _painting().write(cube)  # its file states the W tube and 40 kV
    before = cube.read_bytes()
    out = tmp_path / "maps-mine.safetensors"
    res = _cli(cube, out, "--n-paintings", 4, "--epochs", 1, "--device", "cpu")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert row["model"] == str(out) and (row["instrument"]["anode"], row["instrument"]["optic"]) == ("W", False)
    assert "anode W and tube voltage 40 kV from the file's metadata" in res.stderr
    assert "counts per pixel as in the scan" in res.stderr
    assert cube.read_bytes() == before
    card = read_card(out)
    assert card.training["init"] == "maps-fit"  # fine-tuned, not trained from nothing
    params = card.training["source_params"]
    assert (params["anode"], params["tube_kv"], params["optic"]) == ("W", 40.0, False)
    # the dwell times give the scan's counts per pixel (a 20 ms scan: about 14 ms at the centre)
    assert params["dwell_ms_min"] < 20.0 < params["dwell_ms_max"]
    assert (card.config["anode"], card.config["polycapillary"]) == ("W", False)
    assert card.training_data["fitted_instrument"]["anode"] == "W"
    # one short epoch on 4 paintings already beats the base on its own instrument's paintings
    # (measured 7.6 against 21.8 counts per pixel and line): the base fits them as an Rh scan
    assert row["validation_mae"] < 0.75 * row["base_validation_mae"], row
    # inference fits every cube with the model's instrument
    painted = _painting(seed=9, size=(8, 8))
    plain = SpectralCube(painted.counts, offset_kev=painted.energy_offset_kev, gain_kev=painted.energy_gain_kev)
    model = load_map_model(out, plain, device="cpu")
    assert model.instrument == {"anode": "W", "tube_kv": 40.0, "polycapillary": False, "fwhm_mnka_ev": 170.0}
    assert out.resolve() in {m.path for m in list_models("maps")}  # the Elemental maps dock lists it


def test_adapt_maps_refuses_bad_input_in_one_line(tmp_path):
    np.save(tmp_path / "raw.npy", np.ones((4, 4, 256), np.uint16))  # no energy calibration
    _painting(seed=1, size=(8, 8)).write(tmp_path / "scan.h5")
    for args, needle in (
        ((tmp_path / "raw.npy", tmp_path / "m.safetensors"), "no energy calibration"),
        ((tmp_path / "nope.h5", tmp_path / "m.safetensors"), "nope.h5"),
        ((tmp_path / "scan.h5", tmp_path / "scan.h5"), "scan.h5"),
        # the prior MLP's weights hold its instrument's spectra: it cannot take another's
        ((tmp_path / "scan.h5", tmp_path / "m.safetensors", "--base", "maps-default"), "per-cluster fit"),
        ((tmp_path / "scan.h5", tmp_path / "m.safetensors", "--base", "elements-default"), "elements"),
        ((tmp_path / "scan.h5", tmp_path / "m.safetensors", "--n-paintings", "2"), "n_paintings=2"),
    ):
        res = _cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert needle in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "m.safetensors").exists()
