"""Data sources of the training tasks (the diffraction source and the spectra source's
task options here; the others are exercised through tests/training/test_run.py)."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError


def test_synthetic_diffraction_source_checks_caches_and_degrades(tmp_path):
    from xray_atlas.training.sources import SyntheticDiffraction

    with pytest.raises(XrayAtlasError, match="lot=40"):
        SyntheticDiffraction("diffraction", size=32, lot=40)
    with pytest.raises(XrayAtlasError, match="must not exceed 1"):
        SyntheticDiffraction("diffraction", noise_fraction=0.7, degrade_fraction=0.5)
    with pytest.raises(XrayAtlasError, match="cache"):
        SyntheticDiffraction("diffraction", cache=str(tmp_path / "no" / "c.h5"))
    with pytest.raises(XrayAtlasError, match="span"):
        SyntheticDiffraction("diffraction", span=5)
    cache = tmp_path / "c.h5"
    kw = dict(
        span=3,
        n_images=40,
        size=16,
        lot=8,
        n_lots=4,
        sweeps=20,
        cache=str(cache),
        image_size=32,
        noise_fraction=0.5,
        degrade_fraction=0.5,
    )
    src = SyntheticDiffraction("diffraction", **kw)
    src.prepare(1)
    assert cache.exists() and src.outputs[:2] == ("a(1,0)", "a(2,0)") and len(src.outputs) == 8
    stamp = cache.stat().st_mtime_ns
    again = SyntheticDiffraction("diffraction", **kw)
    again.prepare(1)  # same settings: read back, not simulated again
    assert cache.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again._train[1], src._train[1])
    xb, yb = next(iter(src.train_batches(0, 16, 1)))
    assert tuple(xb.shape) == (16, 1, 32, 32) and tuple(yb.shape) == (16, 8)
    assert np.allclose(xb.numpy().mean(axis=(1, 2, 3)), 1, atol=1e-4)  # mean-normalised
    SyntheticDiffraction("diffraction", **{**kw, "sweeps": 21}).prepare(1)  # other settings: replaced
    assert cache.stat().st_mtime_ns != stamp


@pytest.mark.parametrize(
    "name, what",
    [
        ("synthetic-radiographs", "radiographs"),
        ("synthetic-micrographs", "micrographs"),
        ("synthetic-diffraction", "lattices"),
    ],
)
def test_image_sources_report_preparation_and_stop_on_cancel(name, what):
    import threading

    from xray_atlas.training.sources import PreparationCancelled
    from xray_atlas.training.tasks import TASKS

    task = next(t for t, task in TASKS.items() if name in task.sources)
    small = {"n_images": 130} if what != "lattices" else {"n_images": 130, "cache": ""}
    src = TASKS[task].sources[name](task, **small)
    seen = []
    src.watch(progress=seen.append)
    src.prepare(seed=1)
    assert seen and seen[-1].done == seen[-1].total == 130 and {e.what for e in seen} == {what}
    assert [e.done for e in seen] == sorted(e.done for e in seen)
    cancel = threading.Event()
    cancel.set()
    src.watch(progress=seen.append, cancel=cancel)
    with pytest.raises(PreparationCancelled, match=what):
        src.prepare(seed=2)


def test_synthetic_spectra_self_absorption_is_an_elements_option():
    from xray_atlas.training.sources import SyntheticSpectra

    src = SyntheticSpectra("elements", thickness=1.0, n_channels=1024, gain_kev=0.02, elements="Ca, Pb")
    assert src._config().thickness == (1e-3, 1.0)
    assert SyntheticSpectra("elements", elements="Ca, Pb")._config().thickness is None  # thin by default
    with pytest.raises(XrayAtlasError, match="no parameter.*thickness"):
        SyntheticSpectra("maps", thickness=1.0)
    # refused when the source is made, before a run starts
    for bad, match in ((20.0, "thickness=20.0 is out of range"), (1e-4, "thickness=0.0001 must be 0")):
        with pytest.raises(XrayAtlasError, match=match):
            SyntheticSpectra("elements", thickness=bad)


def test_synthetic_spectra_unlisted_elements_appear_without_labels():
    from xray_atlas.training.sources import SyntheticSpectra

    src = SyntheticSpectra(
        "elements", elements="Ca, Pb", unlisted="mo, Zr", unlisted_share=1.0, n_channels=1024, gain_kev=0.02, n_val=64
    )
    assert src._config().unlisted == ("Mo", "Zr") and src.describe()["unlisted"] == ["Mo", "Zr"]
    src.prepare(seed=3)
    x, y = src._val
    assert y.shape == (64, 2)  # Ca and Pb only
    # Zr Ka (xraylib 15.77 keV) or Mo Ka (17.48 keV) lines stand in the spectra of the unlisted elements
    e = 0.02 * np.arange(1024)
    zr, mo = (e > 15.6) & (e < 15.95), (e > 17.3) & (e < 17.65)
    plain = SyntheticSpectra("elements", elements="Ca, Pb", n_channels=1024, gain_kev=0.02, n_val=64)
    plain.prepare(seed=3)
    assert (x[:, zr] + x[:, mo]).sum() > 10 * (plain._val[0][:, zr] + plain._val[0][:, mo]).sum()
    with pytest.raises(XrayAtlasError, match="unlisted: Pb also among the elements"):
        SyntheticSpectra("elements", elements="Ca, Pb", unlisted="Pb, Mo")
    with pytest.raises(XrayAtlasError, match="unlisted.*'Qq'"):
        SyntheticSpectra("elements", unlisted="Qq")
    with pytest.raises(XrayAtlasError, match="no parameter.*unlisted"):
        SyntheticSpectra("maps", unlisted="Mo")


def test_every_anode_offered_makes_spectra():
    # the form offered Pd, which the physics engine's tube (SpekPy) does not simulate: a run
    # chosen with it was refused only when the data were made
    from xray_atlas.training.sources import SyntheticSpectra

    for anode in SyntheticSpectra.PARAMS["anode"].choices:
        src = SyntheticSpectra(
            "elements", anode=anode, tube_kv=40.0, n_channels=512, gain_kev=0.04, n_train=16, n_val=16
        )
        src.prepare(0)
        (x, _), *_ = src.val_batches(16)
        assert np.isfinite(np.asarray(x)).all() and float(np.asarray(x).sum()) > 0, anode


def test_around_a_fitted_instrument_keeps_the_neighbours_the_tube_model_simulates():
    """'around': the instrument and its neighbours (+/- 3 kV, +/- 15 eV); a Rh tube is
    simulated up to 50 kV only (SpekPy), so at 50 kV the 53 kV neighbour is left out, and a
    Rh tube at 55 kV is refused by name before any spectrum is drawn."""
    from xray_atlas.training.sources import SyntheticSpectra

    small = {"n_train": 64, "n_val": 16, "n_channels": 1024, "gain_kev": 0.02}
    src = SyntheticSpectra(
        "elements", anode="Rh", tube_kv=50.0, optic=True, scatter_deg=150.0, instruments="around", **small
    )
    src.check()
    src.prepare(0)
    kvs = sorted(g.config.instrument.tube.kv for g in src.generator.generators)
    assert kvs == [47.0, 50.0, 50.0, 50.0]
    assert all(g.config.instrument.optic is not None for g in src.generator.generators)
    # the fitted scattering angle is every neighbour's
    assert {g.config.instrument.geometry.scatter_deg for g in src.generator.generators} == {150.0}
    assert src.describe()["scatter_deg"] == 150.0
    assert src.model_inputs()["polycapillary"] is True
    bad = SyntheticSpectra("elements", anode="Rh", tube_kv=55.0, **small)
    bad.check()
    with pytest.raises(XrayAtlasError, match="tube_kv=55: .*Rh tube"):
        bad.prepare(0)


def test_synthetic_paintings_are_scanned_by_the_instrument_their_parameters_describe():
    from xray_atlas.models.prior import INSTRUMENT_DEFAULTS
    from xray_atlas.training.sources import SyntheticPaintings

    small = {"n_paintings": 1, "height": 8, "width": 8, "dwell_ms_min": 20.0, "dwell_ms_max": 20.0}
    default = SyntheticPaintings("maps", **small)
    # the defaults are the shipped models' M6-like scanner: their cards' configuration is unchanged
    assert {k: default.model_inputs()[k] for k in INSTRUMENT_DEFAULTS if k not in ("offset_kev", "gain_kev")} == {
        k: v for k, v in INSTRUMENT_DEFAULTS.items() if k not in ("offset_kev", "gain_kev")
    }
    w = SyntheticPaintings(
        "maps", **small, anode="W", tube_kv=40.0, optic=False, scatter_deg=135.0, fwhm_mnka_ev=170.0, fwhm_jitter_ev=0
    )
    inputs = w.model_inputs()
    assert (inputs["anode"], inputs["tube_kv"], inputs["polycapillary"], inputs["fwhm_mnka_ev"]) == (
        "W",
        40.0,
        False,
        170.0,
    )
    (pt,) = w.paintings(1, 1)
    assert (pt.attrs["anode"], pt.attrs["tube_kv"], pt.attrs["fwhm_mnka_ev"]) == ("W", 40.0, 170.0)
    # W L-alpha (8.40 keV), scattered from the tube, shows in the W scanner's paintings only
    (rh,) = default.paintings(1, 1)
    e = pt.energy_offset_kev + pt.energy_gain_kev * np.arange(pt.counts.shape[2])
    band = (e > 8.30) & (e < 8.50)
    side = ((e > 7.9) & (e < 8.1)) | ((e > 8.8) & (e < 9.0))
    ratio = [p.counts.sum((0, 1))[band].mean() / p.counts.sum((0, 1))[side].mean() for p in (pt, rh)]
    assert ratio[0] > 1.5 * ratio[1], ratio
    with pytest.raises(XrayAtlasError, match="anode"):
        SyntheticPaintings("maps", **small, anode="Pt")


def test_paintings_at_long_dwell_keep_values_that_float16_cannot_hold():
    # at 1 s per pixel the per-cluster fit's net counts pass float16's 65,504: stored as float16
    # they became inf, and the first training step's loss NaN (adapting to a 1 M-count scan)
    from xray_atlas.training.sources import SyntheticPaintings

    src = SyntheticPaintings(
        "maps", n_paintings=1, val_paintings=1, height=8, width=8, dwell_ms_min=1000.0, dwell_ms_max=1000.0
    )
    src.use_cluster_fit(model="fit-mlp")
    src.prepare(0)
    x, _ = src._train
    assert x.dtype == np.float32 and np.isfinite(x).all() and x.max() > 65504
    short = SyntheticPaintings("maps", n_paintings=1, val_paintings=1, height=8, width=8)
    short.use_cluster_fit(model="fit-mlp")
    short.prepare(0)
    assert short._train[0].dtype == np.float16  # half the memory where it is enough


def test_synthetic_radiographs_take_the_detectors_noise_and_blur():
    from xray_atlas.training.sources import SyntheticRadiographs

    with pytest.raises(XrayAtlasError, match="photons_low=900 must not exceed photons_high=800"):
        SyntheticRadiographs("images", photons_low=900, photons_high=800)
    with pytest.raises(XrayAtlasError, match="blur_low_px=2 must not exceed blur_high_px=1"):
        SyntheticRadiographs("images", blur_low_px=2, blur_high_px=1)
    # 30 photons per open-beam pixel: a relative noise of 1/sqrt(30) = 0.18 before the blur,
    # against 0.0045-0.022 at the default 2,000-50,000 (as the physics engine draws it)
    noisy = SyntheticRadiographs("images", n_images=20, photons_low=30, photons_high=30, blur_low_px=0, blur_high_px=0)
    quiet = SyntheticRadiographs("images", n_images=20, blur_low_px=0, blur_high_px=0)
    spread = []
    for src in (noisy, quiet):
        src.prepare(seed=1)
        levels = src._train[0][:, 0]  # -ln(I/I0): the noise shows as differences between neighbours
        spread.append(float(np.median(np.abs(np.diff(levels, axis=-1)))))
    assert spread[0] > 3 * spread[1]
