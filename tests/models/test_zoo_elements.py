"""The shipped element-probability model (models/zoo, made by tools/train_zoo.py elements)
against issue 6's targets, on spectra generated afresh with a seed no training run used,
and on the real spectra in ../shared/data/real."""

import numpy as np
import pytest

from xray_atlas.metrics import detection_scores, per_label_auc
from xray_atlas.models import load_model
from xray_atlas.models.catalogue import list_models, zoo_dir
from xray_atlas.physics.generator import (
    PROBABILITY_ELEMENTS,
    UNLISTED_ELEMENTS,
    GeneratorConfig,
    MixedGenerator,
    varied_instruments,
)
from xray_atlas.probabilities import DEFAULT_ELEMENTS_MODEL, load_element_model, present, spectrum_probabilities

PATH = zoo_dir() / f"{DEFAULT_ELEMENTS_MODEL}.safetensors"


@pytest.fixture(scope="module")
def model():
    return load_element_model(device="cpu")


def test_shipped_model_file_and_card(model):
    _, card = load_model(PATH)
    assert model.card.to_json() == card.to_json()  # the loaded model keeps its card
    assert card.task == "elements" and card.architecture == "spectral-cnn"
    assert tuple(card.outputs) == PROBABILITY_ELEMENTS
    # the classes: the default map set, Ti Co Ni As Ag Sn Sb Ba Cd Se Bi P Cl Ar, and Rh
    need = [
        "S",
        "K",
        "Ca",
        "Cr",
        "Mn",
        "Fe",
        "Cu",
        "Zn",
        "Sr",
        "Au",
        "Hg",
        "Pb",
        "Ti",
        "Co",
        "Ni",
        "As",
        "Ag",
        "Sn",
        "Sb",
        "Ba",
        "Cd",
        "Se",
        "Bi",
        "P",
        "Cl",
        "Ar",
        "Rh",
    ]
    assert set(need) <= set(card.outputs)
    assert card.training["seed"] == 20261122 and card.training_data["instruments"] == "varied"
    assert card.training_data["burial"] == 20.0 and card.training_data["cutoff_share"] == 0.15
    assert card.training_data["pair_share"] == 0.3
    assert card.training_data["unlisted"] == list(UNLISTED_ELEMENTS) and card.training_data["unlisted_share"] == 0.3
    # thresholds picked on 32,768 validation spectra: on 4,096 they wander by 0.03-0.14 (sd)
    assert card.training_data["n_val"] == 32768
    assert set(card.thresholds) == set(card.outputs) and all(0.05 <= t <= 0.95 for t in card.thresholds.values())
    assert card.inputs["energy_gain_kev"] == 0.01 and card.inputs["counts"] == [300.0, 3e7]
    assert [m.path for m in list_models("elements") if m.shipped] == [PATH]


@pytest.fixture(scope="module")
def held_out(model):
    """300 spectra with each number of elements 1-9 at single-pixel counts (1e3-3e4)."""
    xs, ys, ks = [], [], []
    for k in range(1, 10):
        gen = MixedGenerator(
            GeneratorConfig(elements=model.elements, n_elements=(k, k), counts=(1e3, 3e4)), varied_instruments()
        )
        b = gen(300, [777, k])
        xs.append(b.spectra)
        ys.append(b.detectable)
        ks.append(np.full(300, k))
    x, y, k = np.concatenate(xs), np.concatenate(ys), np.concatenate(ks)
    return model(x, model.energy), y, k


def test_auc_on_single_pixel_spectra(model, held_out):
    p, y, _ = held_out
    auc = per_label_auc(p, y, model.elements)
    assert np.nanmean(list(auc.values())) >= 0.98  # measured 0.996 (docs/probabilities.md)
    for el in ("Ca", "K", "Sn", "Sb"):  # lines tens of eV apart (study 003's confusions)
        assert auc[el] >= 0.95, (el, auc[el])


def test_precision_with_nine_elements(model, held_out):
    p, y, k = held_out
    thr = [model.thresholds[e] for e in model.elements]
    nine = detection_scores(p[k == 9], y[k == 9], thr)
    assert nine["precision"] >= 0.9 and nine["recall"] >= 0.8


def test_no_copper_from_lead_escape_peaks(model):
    # lead-only spectra at 1e4-1e6 counts: the Pb La Si-escape peak (10.55 - 1.74 = 8.81 keV)
    # sits between Cu Ka (8.05) and Cu Kb (8.90); it must not be read as copper
    gen = MixedGenerator(
        GeneratorConfig(elements=("Pb", "Cu"), n_elements=(1, 1), counts=(1e4, 1e6), air_argon=0.0),
        varied_instruments(),
    )
    b = gen(1000, 99)
    lead = b.presence[:, 0]
    assert lead.sum() > 400
    pb_escape = b.spectra[lead]
    cu = model(pb_escape, model.energy)[:, model.elements.index("Cu")]
    assert (cu >= model.thresholds["Cu"]).mean() <= 0.01
    pb = model(pb_escape, model.energy)[:, model.elements.index("Pb")]
    assert (pb >= model.thresholds["Pb"]).mean() >= 0.99


def test_elements_outside_the_list_are_not_read_as_its_own(model):
    # every spectrum holds one or two elements the model does not report (Mo, Zr, Br, W...,
    # whose lines sit on listed ones': xraylib Mo La 2.29 / S Ka 2.31, Zr La 2.04 / P Ka 2.01,
    # Br Ka 11.92 / Hg Lb 11.82 keV) besides 1-4 listed ones, 1e4-1e6 counts
    gen = MixedGenerator(
        GeneratorConfig(
            elements=model.elements,
            n_elements=(1, 4),
            counts=(1e4, 1e6),
            unlisted=UNLISTED_ELEMENTS,
            unlisted_share=1.0,
        ),
        varied_instruments(),
    )
    b = gen(1500, 4242)
    called = model(b.spectra, model.energy) >= np.array([model.thresholds[e] for e in model.elements])
    false = called & ~b.detectable
    # measured: the model trained without them 1.07 false calls per spectrum (58 % of spectra
    # with one or more); trained with them (tools/train_zoo.py) 0.20 (18 %), recall 0.93
    assert false.sum(1).mean() <= 0.5
    assert (called & b.detectable).sum() / b.detectable.sum() >= 0.85


def test_m6_jetstream_elements_bruker_fits(model, real_data):
    from xray_atlas.io import read
    from xray_atlas.physics.reference import bruker_net_counts

    net, _ = bruker_net_counts(real_data / "bruker_m6_jetstream_file_example.spx")
    strong = {ln.split("-")[0] for ln, v in net.items() if v >= 500}
    assert strong == {"Rh", "Ar", "P", "K", "Ca", "Fe", "Zn", "As", "Sr", "Hg", "Pb"}
    with read(real_data / "bruker_m6_jetstream_file_example.spx") as cube:
        probs = spectrum_probabilities(cube.pixel(0, 0), cube.energy, model)
    found = set(present(probs, model.thresholds))
    # As (1,169 net counts, its Ka 7 eV from Pb La) is not found: docs/probabilities.md#limits
    assert strong - {"As"} <= found, {el: round(probs[el], 3) for el in strong - found}
    assert len(found - strong) <= 1


@pytest.mark.xfail(strict=True, reason="issue 6 target not met: As Ka under Pb La in the M6 spectrum")
def test_m6_jetstream_arsenic(model, real_data):
    from xray_atlas.io import read

    with read(real_data / "bruker_m6_jetstream_file_example.spx") as cube:
        probs = spectrum_probabilities(cube.pixel(0, 0), cube.energy, model)
    assert probs["As"] >= model.thresholds["As"]


def test_xrfspectrum_mca_strong_lines(model, real_data):
    from xray_atlas.io import read

    # the fit list of PyMca's XrfTest.cfg; strong = the strongest line stands >= 300 counts per
    # channel above its flanks in this spectrum (benchmarks/eval_elements.py)
    strong = {"Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "As", "Se", "Sr", "Pb"}
    with read(real_data / "XRFSpectrum.mca") as cube:
        cube = cube.with_calibration(offset_kev=-0.492773, gain_kev=0.00502883)
        probs = spectrum_probabilities(cube.pixel(0, 0), cube.energy, model)
    found = set(present(probs, model.thresholds))
    assert strong <= found, {el: round(probs[el], 3) for el in strong - found}
