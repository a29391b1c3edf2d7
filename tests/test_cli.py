"""The installed `xray-atlas` console script, run as a user would."""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

EXE = shutil.which("xray-atlas") or os.path.join(os.path.dirname(sys.executable), "xray-atlas")


def run(*args, **kw):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=120, **kw)


def assert_one_line_error(res, *needles):
    assert res.returncode == 2, res
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_help_lists_commands():
    res = run("--help")
    assert res.returncode == 0
    for cmd in ("info", "simulate", "demo"):
        assert cmd in res.stdout


def test_simulate_then_info(tmp_path):
    out = tmp_path / "p.h5"
    res = run("simulate", "painting", out, "--height", 12, "--width", 10, "--seed", 4)
    assert res.returncode == 0, res.stderr
    res = run("info", out, "--stats")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["shape"] == [12, 10, 4096]
    assert info["calibrated"] and info["energy_gain_kev"] == pytest.approx(0.01)
    assert "Pb-L" in info["reference_maps"]
    with h5py.File(out) as f:
        assert info["total_counts"] == pytest.approx(float(f["spectra"][()].sum()))


def test_simulate_from_an_image(tmp_path):
    img = np.zeros((10, 14))
    img[:, 7:] = 1.0
    np.save(tmp_path / "img.npy", img)
    out = tmp_path / "p.h5"
    res = run("simulate", "painting", out, "--image", tmp_path / "img.npy", "--dwell-ms", 10)
    assert res.returncode == 0, res.stderr
    with h5py.File(out) as f:
        assert f["spectra"].shape == (10, 14, 4096)
        regions = f["regions"][()]
        assert len(np.unique(regions[:, :7])) == 1 and len(np.unique(regions[:, 7:])) == 1
    assert_one_line_error(run("simulate", "painting", tmp_path / "q.h5", "--image", tmp_path / "none.npy"), "none.npy")
    assert_one_line_error(run("simulate", "painting", out, "--dwell-ms", "0"), "--dwell-ms")


def test_info_on_real_file(real_data):
    res = run("info", real_data / "Steel.spe")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["shape"] == [1, 1, 2048]


def test_bad_inputs_give_one_line(tmp_path, real_data):
    assert_one_line_error(run("info", real_data / "Nope.bcf"), "Nope.bcf", "not a readable Bruker file")
    assert_one_line_error(run("info", tmp_path / "missing.h5"), "missing.h5", "no such file")
    (tmp_path / "empty.h5").write_bytes(b"")
    assert_one_line_error(run("info", tmp_path / "empty.h5"), "empty.h5", "not a readable HDF5")
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f["spectra"] = np.ones((4, 4))
    assert_one_line_error(run("info", tmp_path / "flat.h5"), "flat.h5", "2-D")
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["spectra"] = np.full((2, 2, 8), np.nan, "f4")
    assert_one_line_error(run("info", tmp_path / "nan.h5", "--stats"), "nan.h5", "NaN")
    assert_one_line_error(run("simulate", "painting", tmp_path / "no" / "p.h5"), "output folder does not exist")
    assert_one_line_error(run("simulate", "painting", tmp_path / "p.txt"), "p.txt", ".h5")
    assert_one_line_error(run("simulate", "painting", tmp_path / "p.h5", "--height", "-3"), "--height", "-3")
    assert_one_line_error(run("frobnicate"), "invalid choice")
    assert_one_line_error(run("demo", "--screenshot", tmp_path / "x.jpg"), "x.jpg", ".png")
    assert not (tmp_path / "p.h5").exists() and not (tmp_path / "p.txt").exists()


def test_cluster_command(tmp_path):
    out = tmp_path / "p.h5"
    assert run("simulate", "painting", out, "--height", 24, "--width", 32, "--seed", 2).returncode == 0
    res = run(
        "cluster",
        out,
        tmp_path / "c.h5",
        "--method",
        "som",
        "--param",
        "rows=4",
        "--param",
        "epochs=5",
        "--param",
        "n_clusters=auto",
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "c.h5") as f:
        labels = f["labels"][()]
        assert labels.shape == (24, 32) and labels.dtype == np.int32
        assert f["cluster_spectra"].shape == (labels.max() + 1, 4096)
        assert f.attrs["model"] == "som"
    assert_one_line_error(run("cluster", out, tmp_path / "d.h5", "--method", "som", "--param", "colour=1"), "colour")
    assert_one_line_error(run("cluster", out, tmp_path / "d.h5", "--method", "som", "--param", "rows=x"), "rows")
    assert_one_line_error(run("cluster", out, out, "--method", "som"), "overwrite the input")
    assert not (tmp_path / "d.h5").exists()


def test_train_command_resume_and_bad_input(tmp_path):
    from xray_atlas.models import load_model
    from xray_atlas.models.catalogue import list_models

    out = tmp_path / "maps.safetensors"
    small = [
        "--param",
        "n_train=256",
        "--param",
        "n_val=64",
        "--param",
        "n_channels=512",
        "--param",
        "gain_kev=0.04",
        "--model-param",
        "hidden=32",
        "--device",
        "cpu",
    ]
    res = run("train", "maps", out, "--epochs", 2, "--seed", 5, *small)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"wrote {out}: done after 2 epochs") and "pearson" in res.stdout
    assert "epoch 2/2" in res.stderr  # the progress lines
    model, card = load_model(out)
    assert card.seed == 5 and card.config["hidden"] == [32] and card.inputs["n_channels"] == 512
    assert [m.path for m in list_models("maps") if not m.shipped] == [out.resolve()]
    res = run("train", "maps", out, "--epochs", 3, "--seed", 5, "--resume", *small)
    assert res.returncode == 0 and "done after 3 epochs" in res.stdout, res.stderr
    assert len((tmp_path / "maps.csv").read_text().splitlines()) == 4  # header + 3 epochs, one log
    before = out.read_bytes()
    assert_one_line_error(run("train", "maps", out, *small), "a model exists here", "--overwrite")
    assert_one_line_error(run("train", "maps", tmp_path / "x", "--lr", "-1"), "lr=-1.0 is out of range")
    assert_one_line_error(run("train", "maps", tmp_path / "x", "--param", "tube_kv=500"), "tube_kv='500'")
    assert_one_line_error(run("train", "images", tmp_path / "x", "--param", f"root={tmp_path}"), "not an image dataset")
    assert_one_line_error(run("train", "diffraction", tmp_path / "x", "--param", "span=5"), "span='5'", "[2, 4]")
    assert_one_line_error(run("train", "maps", tmp_path / "no" / "x"), "output folder does not exist")
    assert out.read_bytes() == before and not (tmp_path / "x").exists()
    listing = json.loads(run("train", "elements", "--list").stdout)
    # the task default model (spectral-cnn) brings its own lr over study 003's 1e-4 (kept by vit1d)
    assert listing["models"] == ["spectral-cnn", "vit1d"] and listing["defaults"]["lr"] == 1e-3
    listing = json.loads(run("train", "diffraction", "--list").stdout)
    assert listing["models"] == ["cfs-fourier", "cfs-large", "cfs-small"]
    assert listing["defaults"]["batch_size"] == 32 and listing["defaults"]["optimizer"] == "adam"  # study 004


def test_maps_command(tmp_path):
    from xray_atlas.io.results import read_results

    cube = tmp_path / "p.h5"
    assert run("simulate", "painting", cube, "--height", 10, "--width", 12, "--seed", 8).returncode == 0
    out = tmp_path / "maps.h5"
    res = run("maps", cube, out, "--device", "cpu")  # --model omitted: the shipped model
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"wrote {out}: 12 maps") and "maps-fit" in res.stdout
    r = read_results(out)
    assert set(r["maps"]) == {
        "S-K",
        "K-K",
        "Ca-K",
        "Cr-K",
        "Mn-K",
        "Fe-K",
        "Cu-K",
        "Zn-K",
        "Sr-K",
        "Au-L",
        "Hg-L",
        "Pb-L",
    }
    assert r["attrs"]["model"] == "maps-fit" and r["maps"]["Pb-L"].shape == (10, 12)
    res = run("maps", cube, tmp_path / "lsq.h5", "--model", "lsq", "--lines", "Pb-L,Hg-L")
    assert res.returncode == 0 and set(read_results(tmp_path / "lsq.h5")["maps"]) == {"Pb-L", "Hg-L"}
    res = run("maps", cube, tmp_path / "fit.h5", "--model", "fit", "--lines", "Pb-L")
    assert res.returncode == 0 and "per-cluster fit" in res.stderr, res.stderr
    fit = read_results(tmp_path / "fit.h5")
    assert fit["attrs"]["model"] == "fit" and fit["maps"]["Pb-L"].max() > 100
    np.save(tmp_path / "short.npy", np.ones((4, 4, 100), np.uint16))
    assert_one_line_error(run("maps", tmp_path / "short.npy", tmp_path / "x.h5"), "uncalibrated")
    assert_one_line_error(run("maps", cube, tmp_path / "x.h5", "--model", "nope"), "neither a model file")
    assert_one_line_error(run("maps", cube, tmp_path / "x.h5", "--lines", "Xx-K"), "Xx")
    assert_one_line_error(run("maps", cube, cube), "p.h5")
    assert not (tmp_path / "x.h5").exists()


def test_maps_takes_a_calibration_for_an_uncalibrated_cube(tmp_path, real_data):
    from xray_atlas.io.results import read_results

    mca = real_data / "XRFSpectrum.mca"  # single column, no calibration
    assert_one_line_error(run("maps", mca, tmp_path / "x.h5", "--model", "lsq"), "needs an energy calibration")
    res = run("maps", mca, tmp_path / "d.h5", "--device", "cpu")
    assert res.returncode == 0 and "assuming the model's" in res.stderr and "its own calibration" in res.stderr
    # the calibration documented with the file (PyMca XrfTest.cfg)
    cal = ("--offset-kev", "-0.492773", "--gain-kev", "0.00502883")
    res = run("maps", mca, tmp_path / "m.h5", "--model", "lsq", *cal)
    assert res.returncode == 0, res.stderr
    maps = read_results(tmp_path / "m.h5")["maps"]
    # Fe, Cu, Zn, Sr and Pb are in the thin standard's fit list (PyMca's XrfTest.cfg); Au is not
    assert min(float(maps[ln].sum()) for ln in ("Fe-K", "Cu-K", "Zn-K", "Sr-K", "Pb-L")) > 1000
    assert float(maps["Au-L"].sum()) < 0.05 * float(maps["Cu-K"].sum())
    res = run("maps", mca, tmp_path / "n.h5", "--device", "cpu", *cal)
    assert res.returncode == 0 and "resampled the cube's 4096 channels of 5.03 eV" in res.stderr
    assert "assuming" not in res.stderr
    assert_one_line_error(run("maps", mca, tmp_path / "x.h5", "--gain-kev", "0.01"), "go together")
    assert_one_line_error(run("maps", mca, tmp_path / "x.h5", "--offset-kev", "0", "--gain-kev", "5"), "implausible")
    assert not (tmp_path / "x.h5").exists()


def test_probabilities_command(tmp_path, real_data):
    from xray_atlas.io.results import read_results

    cube = tmp_path / "p.h5"
    assert run("simulate", "painting", cube, "--height", 12, "--width", 10, "--seed", 3).returncode == 0
    out = tmp_path / "prob.h5"
    res = run("probabilities", cube, out, "--device", "cpu")  # --model omitted: the shipped model
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"wrote {out}: 29 probability maps per pixel with elements-default")
    r = read_results(out)
    assert {"Pb", "Hg", "Cu", "Fe", "Ca", "Rh", "Sn", "Sb"} <= set(r["probabilities"])
    assert r["attrs"]["model"] == "elements-default" and r["probabilities"]["Pb"].shape == (12, 10)
    assert all(p.min() >= 0 and p.max() <= 1 for p in r["probabilities"].values())
    assert set(json.loads(r["attrs"]["thresholds"])) == set(r["probabilities"])
    # per region and per cluster (the labels of xray-atlas cluster's result file)
    res = run("probabilities", cube, tmp_path / "r.h5", "--region", 4, "--elements", "Pb,Fe")
    assert res.returncode == 0 and "per 4 x 4 region" in res.stdout
    assert set(read_results(tmp_path / "r.h5")["probabilities"]) == {"Pb", "Fe"}
    with h5py.File(tmp_path / "clusters.h5", "w") as f:
        f["labels"] = np.where(np.arange(10)[None, :] < 5, 0, 1).repeat(12, 0).astype(np.int32)
    res = run("probabilities", cube, tmp_path / "c.h5", "--labels", tmp_path / "clusters.h5", "--elements", "Pb")
    assert res.returncode == 0 and "per cluster" in res.stdout
    pb = read_results(tmp_path / "c.h5")["probabilities"]["Pb"]
    assert len(np.unique(pb[:, :5])) == 1 and len(np.unique(pb[:, 5:])) == 1
    # an uncalibrated real spectrum with its documented calibration (PyMca XrfTest.cfg)
    mca = real_data / "XRFSpectrum.mca"
    assert_one_line_error(run("probabilities", mca, tmp_path / "x.h5"), "no energy calibration")
    res = run("probabilities", mca, tmp_path / "m.h5", "--offset-kev", "-0.492773", "--gain-kev", "0.00502883")
    assert res.returncode == 0, res.stderr
    assert "note: resampled the cube's 4096 channels of 5.03 eV" in res.stderr
    assert read_results(tmp_path / "m.h5")["probabilities"]["Cu"][0, 0] > 0.9
    assert_one_line_error(
        run("probabilities", cube, tmp_path / "x.h5", "--model", "maps-default"),
        "is a model for elemental maps, not element probabilities",
    )
    assert_one_line_error(
        run("probabilities", cube, tmp_path / "x.h5", "--region", 2, "--labels", tmp_path / "clusters.h5"),
        "exclude each other",
    )
    assert_one_line_error(run("probabilities", cube, tmp_path / "x.h5", "--labels", cube), "no /labels dataset")
    assert_one_line_error(run("probabilities", cube, tmp_path / "x.h5", "--gain-kev", "0.01"), "go together")
    assert_one_line_error(run("probabilities", cube, tmp_path / "x.h5", "--elements", "Pb,U"), "U not among")
    assert_one_line_error(run("probabilities", cube, cube), "p.h5")
    assert not (tmp_path / "x.h5").exists()


def _diffraction_images(tmp_path, n=2, span=2):
    from xray_atlas.physics.lattice import diffraction_image, random_couplings, simulate_lattices

    made = simulate_lattices(span=span, couplings=random_couplings(span, n, 5), size=48, sweeps=60, rng=6)
    paths = []
    for i, img in enumerate(diffraction_image(made.lattices, lot=24, n_lots=16, rng=7)):
        p = tmp_path / f"img{i}.h5"
        with h5py.File(p, "w") as f:
            f.create_dataset("image", data=img).attrs["span"] = span
        paths.append(p)
    return made, paths


def test_diffraction_command(tmp_path):
    made, paths = _diffraction_images(tmp_path)
    before = [p.read_bytes() for p in paths]
    out = tmp_path / "one.h5"
    res = run("diffraction", paths[0], out, "--model", "analytic", "--seed", 1)  # span from the image's metadata
    assert res.returncode == 0, res.stderr
    assert "span 2" in res.stdout and "image R^2" in res.stdout
    with h5py.File(out) as f:  # docs/dev/contracts.md section 3
        np.testing.assert_allclose(f["encoding"][()], made.encoding[0], atol=0.05)
        assert f["lattice"].dtype == np.uint8 and f["reconstruction"].shape == (24, 24)
        assert f.attrs["model"] == "analytic"
    folder = tmp_path / "many"
    folder.mkdir()
    res = run("diffraction", *paths, folder, "--span", 2)  # the shipped span-2 network, one load
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["img0.h5", "img1.h5"]
    assert res.stdout.count("wrote") == 2 and "diffraction-span2" in h5py.File(folder / "img1.h5").attrs["model"]
    assert [p.read_bytes() for p in paths] == before  # inputs untouched


def test_diffraction_bad_input(tmp_path):
    _, paths = _diffraction_images(tmp_path, n=1)
    np.save(tmp_path / "rect.npy", np.ones((20, 30)))
    np.save(tmp_path / "tiny.npy", np.ones((8, 8)))
    nan = np.ones((20, 20))
    nan[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    assert_one_line_error(run("diffraction", tmp_path / "rect.npy", tmp_path / "o.h5"), "square")
    assert_one_line_error(run("diffraction", tmp_path / "tiny.npy", tmp_path / "o.h5"), "too small")
    assert_one_line_error(run("diffraction", tmp_path / "nan.npy", tmp_path / "o.h5"), "NaN")
    assert_one_line_error(
        run("diffraction", paths[0], tmp_path / "o.h5", "--model", "diffraction-span2", "--span", "3"),
        "trained for span 2",
    )
    assert_one_line_error(run("diffraction", paths[0], paths[0], tmp_path / "o.h5"), "existing folder")
    np.save(tmp_path / "plain.npy", h5py.File(paths[0])["image"][()])  # no span in an .npy
    assert_one_line_error(
        run("diffraction", tmp_path / "plain.npy", tmp_path / "o.h5", "--model", "analytic"), "needs the span"
    )
    res = run("diffraction", tmp_path / "plain.npy", tmp_path / "p.h5")
    assert res.returncode == 0 and "using span 2" in res.stderr and (tmp_path / "p.h5").exists()
    assert not (tmp_path / "o.h5").exists()


def test_simulate_radiographs_then_classify_with_maps(tmp_path):
    ds = tmp_path / "ds"
    res = run("simulate", "radiographs", ds, "--n", 36, "--size", 96, "--seed", 2)
    assert res.returncode == 0, res.stderr
    files = sorted(p for p in ds.rglob("*") if p.is_file())
    per = {s: sum(p.parts[-3] == s for p in files) for s in ("train", "val", "test")}
    # study 002's split within each class folder: every 3rd to test, every 6th of the rest to val
    assert len(files) == 36 and 10 <= per["test"] <= 12 and 2 <= per["val"] <= 4
    assert f"train {per['train']}, val {per['val']}, test {per['test']}" in res.stdout
    cams = tmp_path / "cams"
    res = run("classify-image", ds / "test", ds / "val", "--cam", cams)  # folders; the shipped model
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == per["test"] + per["val"]
    assert set(rows[0]) == {"path", "class", "probabilities", "cam", "in_domain"}
    assert all(r["in_domain"] is True for r in rows)  # radiographs like the model's training images
    # every file sits in its true class's folder; the shipped model reads them all right
    assert all(r["class"] == os.path.basename(os.path.dirname(r["path"])) for r in rows)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)
    assert sorted(p.name for p in cams.iterdir()) == sorted(
        f"{os.path.splitext(os.path.basename(r['path']))[0]}.png" for r in rows
    )


def test_classify_image_bad_input(tmp_path):
    good = tmp_path / "a.npy"
    np.save(good, np.random.default_rng(0).random((32, 32)).astype(np.float32))
    bad = tmp_path / "b.png"
    bad.write_bytes(b"not a png")
    assert_one_line_error(run("classify-image", good, bad, "--cam", tmp_path / "cams"), "b.png", "not a readable image")
    assert not (tmp_path / "cams").exists()  # nothing written when any input is bad
    assert_one_line_error(run("classify-image", tmp_path / "none.png"), "none.png", "no such file")
    assert_one_line_error(
        run("classify-image", good, "--model", "elements-default"),
        "is a model for element probabilities, not image classification",
    )
    assert_one_line_error(run("classify-image", good, "--cam", tmp_path / "no" / "cams"), "parent does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run("classify-image", empty), "no images in this folder")
    assert_one_line_error(run("simulate", "radiographs", tmp_path), "not an empty folder")


def _ripple_scan(folder, *, live=0.02):
    """A 6 x 8 x 128 ripple scan of 50 µm pixels written by rosettasciio's own writer."""
    from rsciio.ripple import file_writer

    data = np.random.default_rng(3).poisson(5, (6, 8, 128)).astype("u2")
    eds = {"live_time": live} if live else {}
    file_writer(
        str(folder / "scan.rpl"),
        {
            "data": data,
            "metadata": {
                "General": {"title": "scan"},
                "Signal": {"signal_type": "EDS_SEM"},
                "Acquisition_instrument": {"SEM": {"beam_energy": 40.0, "Detector": {"EDS": eds}}},
            },
            "axes": [
                {"name": "height", "size": 6, "scale": 50.0, "offset": 0.0, "units": "µm", "navigate": True},
                {"name": "width", "size": 8, "scale": 50.0, "offset": 0.0, "units": "µm", "navigate": True},
                {"name": "Energy", "size": 128, "scale": 0.16, "offset": -0.5, "units": "keV", "navigate": False},
            ],
        },
    )
    return folder / "scan.rpl", data


def test_info_prints_pixel_size_live_time_and_beam_energy(tmp_path):
    from xray_atlas.io.hdf5 import write_cube

    rpl, data = _ripple_scan(tmp_path)
    res = run("info", rpl, "--stats")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["shape"] == [6, 8, 128] and info["total_counts"] == float(data.sum())
    assert info["pixel_size_um"] == 50.0 and info["scan_size_mm"] == pytest.approx([0.3, 0.4])  # 6 x 8 pixels of 50 µm
    assert info["live_time_s"] == 0.02 and info["tube_kv"] == 40.0
    live = np.linspace(0.01, 0.03, 12).reshape(3, 4)
    write_cube(
        tmp_path / "lt.h5",
        np.ones((3, 4, 16), "u2"),
        energy_offset_kev=0.0,
        energy_gain_kev=0.01,
        extra={"live_time_s": live},
    )
    info = json.loads(run("info", tmp_path / "lt.h5").stdout)
    assert info["live_time_s"] == {"per_pixel": [3, 4], "min": 0.01, "median": pytest.approx(0.02), "max": 0.03}
    assert info["pixel_size_um"] is None and info["scan_size_mm"] is None and info["tube_kv"] is None
    (tmp_path / "scan.raw").write_bytes(b"\0" * 100)
    assert_one_line_error(run("info", rpl), "scan.rpl", "scan.raw holds 100 bytes")
    (tmp_path / "scan.raw").unlink()
    assert_one_line_error(run("info", rpl), "scan.rpl", "no .raw data file beside the header")


def test_maps_in_counts_per_second_and_the_pixel_size_in_results(tmp_path):
    from xray_atlas.io.hdf5 import write_cube
    from xray_atlas.io.results import read_results
    from xray_atlas.physics.painting import synthetic_painting

    p = synthetic_painting(5, 6, seed=1, n_channels=1024)
    live = np.linspace(0.015, 0.025, 30).reshape(5, 6)  # a known live time per pixel
    cube = tmp_path / "live.h5"
    write_cube(
        cube,
        p.counts,
        energy_offset_kev=p.energy_offset_kev,
        energy_gain_kev=p.energy_gain_kev,
        extra={"live_time_s": live},
        attrs={"pixel_size_um": 80.0},
    )
    for units in ("counts", "counts/s"):
        res = run("maps", cube, tmp_path / f"{units.replace('/', '_')}.h5", "--model", "lsq", "--units", units)
        assert res.returncode == 0, res.stderr
        assert res.stdout.rstrip().endswith(f"mean {units}")
    counts, per_s = read_results(tmp_path / "counts.h5"), read_results(tmp_path / "counts_s.h5")
    assert counts["attrs"]["units"] == "counts" and per_s["attrs"]["units"] == "counts/s"
    assert counts["attrs"]["pixel_size_um"] == per_s["attrs"]["pixel_size_um"] == 80.0
    for line, m in counts["maps"].items():
        np.testing.assert_array_equal(per_s["maps"][line], (m / live).astype(np.float32))
    # no live time in the file: refused before any work, no output
    rpl, _ = _ripple_scan(tmp_path, live=None)
    assert_one_line_error(
        run("maps", rpl, tmp_path / "x.h5", "--model", "lsq", "--units", "counts/s"),
        "scan.rpl",
        "maps in counts/s need each pixel's live time",
    )
    assert_one_line_error(run("maps", rpl, tmp_path / "x.h5", "--units", "cps"), "invalid choice")
    assert not (tmp_path / "x.h5").exists()
    res = run(
        "cluster",
        rpl,
        tmp_path / "c.h5",
        "--method",
        "som",
        "--param",
        "rows=2",
        "--param",
        "epochs=2",
        "--param",
        "trim=0",
    )
    assert res.returncode == 0, res.stderr
    assert read_results(tmp_path / "c.h5")["attrs"]["pixel_size_um"] == 50.0


def test_lines_are_read_as_the_maps_dock_reads_them(tmp_path):
    # --lines and the maps dock's lines box share one parser (inference.parse_lines): families
    # in any case, a list that starts with + adds to the default set; an element alone is
    # refused by both, with the same message
    from xray_atlas.errors import XrayAtlasError
    from xray_atlas.inference import parse_lines

    cube, out = tmp_path / "p.h5", tmp_path / "m.h5"
    assert run("simulate", "painting", cube, "--height", 6, "--width", 6, "--channels", 1024).returncode == 0
    for text in ("fe-k", "FE-K, pb-l", "+co-k"):
        res = run("maps", cube, out, "--lines", text, "--model", "lsq", "--overwrite")
        assert res.returncode == 0, res.stderr
        lines, add = parse_lines(text)
        with h5py.File(out) as f:
            names = set(f["maps"])
        assert names == set(lines) if lines else set(add) < names, (text, names)
    with pytest.raises(XrayAtlasError) as dock:
        parse_lines("Fe")
    assert_one_line_error(run("maps", cube, out, "--lines", "Fe", "--model", "lsq", "--overwrite"), str(dock.value))


def test_params_are_read_by_their_declaration(tmp_path):
    # one parser (xray_atlas.params.Param.check) for --param, --model-param and the forms: a
    # start with none (half the map), as the clusters dock's sigma field takes it
    cube = tmp_path / "p.h5"
    assert run("simulate", "painting", cube, "--height", 8, "--width", 8, "--channels", 1024).returncode == 0
    som = ["cluster", cube, tmp_path / "c.h5", "--method", "som", "--param", "rows=2", "--param", "cols=2"]
    res = run(*som, "--param", "sigma=none,0.5", "--param", "lr=0.4,0.05")
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["labels"].shape == (8, 8)
    assert_one_line_error(
        run(*som, "--overwrite", "--param", "lr=a,b"), "--param lr='a,b': give comma-separated numbers"
    )
    assert_one_line_error(
        run(*som, "--overwrite", "--param", "device=gpu"), "--param device='gpu'; choose one of auto, cpu"
    )
    res = run("train", "maps", tmp_path / "m", "--model", "prior-mlp", "--model-param", "hidden=a")
    assert_one_line_error(res, "--model-param hidden='a': give comma-separated whole numbers")
    res = run("train", "maps", tmp_path / "m", "--model", "prior-mlp", "--model-param", "colour=1")
    assert_one_line_error(res, "--model-param colour: unknown for model 'prior-mlp'; known: ")
