"""Element probability maps: streaming per pixel, per region and per cluster, preprocessing
onto the model's grid, and the shipped model on a painting from the painting simulator
(another code path than the random spectra it was trained on)."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.cube import SpectralCube, run_to_end
from xray_atlas.probabilities import (
    LOW_KEV,
    iter_probabilities,
    load_element_model,
    predict_probabilities,
    present,
    spectrum_probabilities,
)


@pytest.fixture(scope="module")
def model():
    return load_element_model(device="cpu")


@pytest.fixture(scope="module")
def painting():
    from xray_atlas.physics.painting import synthetic_painting

    return synthetic_painting(24, 32, seed=4242, layout="random", truth=True)


@pytest.fixture(scope="module")
def cube(painting):
    return SpectralCube(painting.counts, offset_kev=painting.energy_offset_kev, gain_kev=painting.energy_gain_kev)


def test_prepare_masks_the_noise_peak_and_rebins_other_grids(model):
    rng = np.random.default_rng(0)
    x = rng.poisson(5.0, size=(3, model.energy.size)).astype(np.float32)
    same = model.prepare(x, model.energy)
    assert np.all(same[:, model.energy < LOW_KEV] == 0)
    np.testing.assert_array_equal(same[:, model.energy >= LOW_KEV], x[:, model.energy >= LOW_KEV])
    # a 5 eV grid from -0.49 keV (PyMca's XRFSpectrum.mca): counts above the mask are conserved
    e5 = -0.492773 + 0.00502883 * np.arange(4096)
    y = rng.poisson(3.0, size=(2, 4096)).astype(np.float32)
    z = model.prepare(y, e5)
    assert z.shape == (2, model.energy.size)
    in_range = (e5 >= LOW_KEV) & (e5 <= model.energy[-1])
    np.testing.assert_allclose(z.sum(1), y[:, in_range].sum(1), rtol=2e-3)
    assert np.all(z[:, model.energy > e5[-1] + 0.01] == 0)


def test_a_run_returns_its_notes_and_leaves_the_model_as_loaded(model, painting):
    """Issue 30 item 3, the stale-notes bug: the notes of a run were appended to the model, which
    the Element probabilities dock keeps for the next run (and a batch for the next cube)."""
    import dataclasses

    # the detector's own grid: 1% wider channels than the model's, so a note says it is resampled
    other = SpectralCube(painting.counts, offset_kev=0.0, gain_kev=painting.energy_gain_kev * 1.01)
    same = SpectralCube(painting.counts, offset_kev=painting.energy_offset_kev, gain_kev=painting.energy_gain_kev)
    loaded = list(model.notes)
    first, second = (run_to_end(iter_probabilities(other, model, elements=("Pb", "Ca"))) for _ in range(2))
    assert model.notes == loaded == []
    assert first.notes == second.notes and len(first.notes) == 1 and first.notes[0].startswith("resampled")
    assert first.elements == ("Pb", "Ca") and list(first.probabilities) == ["Pb", "Ca"]
    assert first.model == model.name and first.thresholds == {el: model.thresholds[el] for el in ("Pb", "Ca")}
    np.testing.assert_array_equal(first.probabilities["Pb"], second.probabilities["Pb"])
    # the next cube, on the model's grid, carries no note of the one before
    assert not any(n.startswith("resampled") for n in run_to_end(iter_probabilities(same, model)).notes)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.notes = ()


def test_pixels_regions_and_clusters(model, cube):
    h, w = cube.height, cube.width
    pix = run_to_end(iter_probabilities(cube, model)).probabilities
    assert set(pix) == set(model.elements)
    assert all(p.shape == (h, w) and p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1 for p in pix.values())
    # one pixel through the stream equals the model on that spectrum alone
    one = spectrum_probabilities(cube.pixel(5, 7), cube.energy, model)
    assert one["Ca"] == pytest.approx(float(pix["Ca"][5, 7]), abs=1e-5)

    k = 5  # 24 x 32 is not a multiple of 5: the last blocks are partial
    reg = run_to_end(iter_probabilities(cube, model, region=k, elements=("Pb", "Ca"), tile_bytes=1 << 16)).probabilities
    assert set(reg) == {"Pb", "Ca"}
    counts = np.asarray(cube.counts, dtype=np.float64)
    for by, bx in ((0, 0), (4, 6)):  # a whole block and the bottom-right partial one
        block = counts[by * k : (by + 1) * k, bx * k : (bx + 1) * k]
        expect = model(block.sum(axis=(0, 1))[None, :], cube.energy)[0, model.elements.index("Pb")]
        got = reg["Pb"][by * k : (by + 1) * k, bx * k : (bx + 1) * k]
        assert np.all(got == got.flat[0]) and got.flat[0] == pytest.approx(expect, abs=1e-5)

    labels = np.full((h, w), -1, np.int64)
    labels[:, : w // 2] = 3
    labels[: h // 2, w // 2 :] = 8
    clu = run_to_end(iter_probabilities(cube, model, labels=labels, tile_bytes=1 << 16)).probabilities
    assert np.all(clu["Fe"][labels < 0] == 0)
    for lab in (3, 8):
        expect = model(counts[labels == lab].sum(0)[None, :], cube.energy)[0]
        for j, el in enumerate(model.elements):
            assert np.allclose(clu[el][labels == lab], expect[j], atol=1e-5)


def test_shipped_model_finds_the_painting_pigments(model, painting, cube):
    # the painting simulator (physics/painting.py) makes layered paints, not the training
    # generator's random spectra: where a pigment's element gives >= 300 net counts in its
    # strongest family within a 3 x 3 block the block is called, where it gives none it is not
    k = 3
    probs = predict_probabilities(cube, model.name, device="cpu", region=k).probabilities
    h, w = cube.height, cube.width
    checked = []
    for el in ("Pb", "Hg", "Fe", "Cu", "Ca", "Zn"):
        fams = [ln for ln in painting.maps if ln.split("-")[0] == el]
        if not fams:
            continue
        net = np.max([painting.maps[f] for f in fams], axis=0)
        # sums over the same blocks the region run adds up (aligned at 0, partial at the edges)
        block = np.add.reduceat(np.add.reduceat(net, np.arange(0, h, k), axis=0), np.arange(0, w, k), axis=1)
        block = np.repeat(np.repeat(block, k, axis=0), k, axis=1)[:h, :w]
        rich, none = block >= 300, block == 0
        call = probs[el] >= model.thresholds[el]
        if rich.sum() >= 10 * k * k:
            assert call[rich].mean() >= 0.9, (el, call[rich].mean())
            checked.append(el)
        if none.sum() >= 10 * k * k:
            assert call[none].mean() <= 0.1, (el, call[none].mean())
    assert len(checked) >= 3


def test_count_level_beyond_training_is_scaled_down(model):
    # a cluster sum of 1e9 counts: the same call as the spectrum at the training maximum
    from xray_atlas.physics.generator import GeneratorConfig, SpectrumGenerator

    b = SpectrumGenerator(GeneratorConfig(elements=("Fe", "Pb", "Ca"), n_elements=(1, 3), counts=(1e6, 1e6)))(
        4, 1, noise=False
    )
    big = model(b.spectra * 1e3, model.energy)
    at_max = model(b.spectra * (model.max_counts / b.spectra.sum(1, keepdims=True)), model.energy)
    np.testing.assert_allclose(big, at_max, atol=1e-3)  # float32 sums of 4096 channels


def test_bad_input(model, cube, painting, tmp_path):
    uncal = SpectralCube(painting.counts)
    with pytest.raises(XrayAtlasError, match="no energy calibration"):
        run_to_end(iter_probabilities(uncal, model))
    short = SpectralCube(painting.counts[..., :512], offset_kev=0.0, gain_kev=0.01)
    with pytest.raises(XrayAtlasError, match="ends at 5.11 keV"):
        run_to_end(iter_probabilities(short, model))
    with pytest.raises(XrayAtlasError, match="region=0 must be a positive integer"):
        run_to_end(iter_probabilities(cube, model, region=0))
    with pytest.raises(XrayAtlasError, match="elements: U not among"):
        run_to_end(iter_probabilities(cube, model, elements=("U",)))
    with pytest.raises(XrayAtlasError, match="labels: shape"):
        run_to_end(iter_probabilities(cube, model, labels=np.zeros((3, 3), int)))
    with pytest.raises(XrayAtlasError, match="every pixel is noise"):
        run_to_end(iter_probabilities(cube, model, labels=np.full((cube.height, cube.width), -1)))
    # a name of another task's model is refused with what it is (models.catalogue.find_model)
    with pytest.raises(XrayAtlasError, match="'maps-default' is a model for elemental maps, not element probabilities"):
        load_element_model("maps-default")
    with pytest.raises(XrayAtlasError, match="neither a model file nor a known name"):
        load_element_model(tmp_path / "nothing")


def test_present_applies_each_threshold():
    assert present({"Fe": 0.9, "Cu": 0.4, "Pb": 0.35}, {"Fe": 0.5, "Cu": 0.5, "Pb": 0.3}) == ["Fe", "Pb"]
