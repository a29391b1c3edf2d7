"""The shipped map models (models/zoo, made by tools/train_zoo.py) on a freshly
generated painting whose layout and seed no training run used (issue 4's accuracy rule:
lines with a true maximum above 50 counts, against the Poisson-weighted NNLS that knows the
simulator's spectra)."""

import numpy as np
import pytest

from xray_atlas.cube import SpectralCube
from xray_atlas.evaluation import limit_fit
from xray_atlas.inference import DEFAULT_MAPS_MODEL, UNCALIBRATED_MAPS_MODEL, predict_maps
from xray_atlas.metrics import map_scores
from xray_atlas.models import load_model
from xray_atlas.models.catalogue import list_models, zoo_dir
from xray_atlas.physics.lines import DEFAULT_MAP_LINES
from xray_atlas.physics.painting import synthetic_painting

PATH = zoo_dir() / f"{UNCALIBRATED_MAPS_MODEL}.safetensors"  # the prior MLP, maps-default
SPATIAL = zoo_dir() / "maps-spatial.safetensors"
FIT = zoo_dir() / f"{DEFAULT_MAPS_MODEL}.safetensors"  # the default, maps-fit


def test_shipped_model_file_and_card():
    model, card = load_model(PATH)
    assert card.task == "maps" and set(DEFAULT_MAP_LINES) <= set(card.outputs)
    # made by tools/train_zoo.py from the project's own training code
    assert card.training["seed"] == 20261122 and card.training["loss"] == "adaptive-l1"
    assert card.training_data["source"] == "synthetic-paintings"
    assert (card.training_data["n_paintings"], card.training_data["stride"]) == (500, 2)
    assert {k: card.inputs[k] for k in ("n_channels", "energy_offset_kev", "energy_gain_kev")} == {
        "n_channels": 4096,
        "energy_offset_kev": 0.0,
        "energy_gain_kev": 0.01,
    }
    lo, hi = card.inputs["total_counts"]  # the training pixels' (5-40 ms dwell), 0.1th-99.9th percentile
    assert 100 < lo < 1000 < 3000 < hi < 30000
    assert sorted(m.path for m in list_models("maps") if m.shipped) == sorted([PATH, SPATIAL, FIT])
    limits = [b for n, b in model.named_buffers() if n.endswith("guard.limits")][0]
    assert 0.5 < float(limits[0]) < float(limits[1]) < 5  # familiarity guard fitted on its training data


@pytest.fixture(scope="module")
def scores():
    """Scores on three fresh paintings (seeds no training run used), averaged over lines."""
    out = []
    for seed in (4242, 4243, 4244):
        p = synthetic_painting(40, 48, seed=seed, layout="random", truth=True)
        cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev)
        lines = [ln for ln in DEFAULT_MAP_LINES if p.maps.get(ln, np.zeros(1)).max() > 50]
        assert len(lines) >= 3
        shipped = predict_maps(cube, "maps-default", device="cpu").maps
        spatial = predict_maps(cube, "maps-spatial", device="cpu").maps
        lsq = predict_maps(cube, "lsq", device="cpu").maps
        # the scan's live time: the per-cluster fit corrects for pile-up with it
        timed = SpectralCube(
            p.counts,
            offset_kev=p.energy_offset_kev,
            gain_kev=p.energy_gain_kev,
            metadata={"live_time_s": p.attrs["live_time_s"]},
        )
        fit = predict_maps(timed, "maps-fit", device="cpu").maps
        limit = map_scores(limit_fit(p, lines), p.maps, lines)
        out.append(
            (
                map_scores(shipped, p.maps, lines)["mean"],
                map_scores(lsq, p.maps, lines)["mean"],
                limit["mean"],
                map_scores(spatial, p.maps, lines)["mean"],
            )
        )
        FIT_SCORES.append((map_scores(fit, p.maps, lines), limit, lines))
    return out


# maps-fit's worst line on these paintings, measured (2026-11-23) with the hold on the fit and the
# shrink to each pixel's cluster within its 3 x 3 block: 1.08 x the limit's MAE, 17 of 17 lines
# within 1.1 x (not shrunk: 1.135 x, 16 of 17; the 512-512 model before it, not shrunk: 1.08 and
# 17); on the eight paintings of benchmarks/eval_maps.py 39 of 39 lines, the worst 0.88 x
RATIO_BOUND = 1.1
FIT_SCORES: list = []  # per painting: (maps-fit's scores, the limit's, the lines), filled with `scores`


def test_shipped_model_against_the_limit_averaged_over_lines(scores):
    # measured when shipped: MAE / limit 0.96, 1.03, 1.02; slope 1.005, 0.985, 0.957;
    # SSIM 0.973, 0.975, 0.981 against the limit's 0.918, 0.962, 0.951. Per line the ratio
    # ranges 0.2-1.7 (docs/maps.md), so the per-line 1.1 is not claimed here.
    mae = sum(s["mae"] for s, _, _, _ in scores)
    assert mae <= 1.1 * sum(lim["mae"] for _, _, lim, _ in scores)
    for s, lsq, lim, _ in scores:
        assert 0.95 <= s["slope"] <= 1.05
        assert s["ssim"] >= lim["ssim"] - 0.02
        assert s["mae"] < 0.6 * lsq["mae"]  # the learnt correction is worth it


def test_shipped_spatial_model_against_the_limit(scores):
    # the 5 x 5 spatial model (tools/train_zoo.py maps-spatial) on the same fresh paintings
    model, card = load_model(SPATIAL)
    assert card.architecture == "spatial-prior-mlp" and card.config["neighbourhood"] == 5
    assert card.training_data["stride"] == 2 and card.training["seed"] == 20261122
    assert sum(sp["mae"] for *_, sp in scores) <= 1.1 * sum(lim["mae"] for _, _, lim, _ in scores)
    # slope averaged over the paintings (one of them alone is at 0.949)
    assert 0.95 <= np.mean([sp["slope"] for *_, sp in scores]) <= 1.05
    for _, lsq, lim, sp in scores:
        assert sp["ssim"] >= lim["ssim"] - 0.02 and sp["mae"] < 0.6 * lsq["mae"]


@pytest.mark.parametrize("model", [UNCALIBRATED_MAPS_MODEL, "maps-spatial"])
def test_shipped_models_say_when_pixels_hold_far_more_counts_than_they_saw(model, real_data):
    """A fresh painting at 20 ms is the shipped models' kind of pixel; the real M6 spectrum (a
    28 s, 1.09 million-count accumulation, docs/maps.md "Beyond paintings") is not, and the
    note says so: the familiarity guard, which sees only shares of the counts, cannot."""
    from xray_atlas.io import read

    p = synthetic_painting(16, 24, seed=4245, layout="random", truth=True)
    done = predict_maps(
        SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev), model, device="cpu"
    )
    assert not any("counts of the model's training pixels" in n for n in done.notes)
    with read(real_data / "bruker_m6_jetstream_file_example.spx") as cube:
        done = predict_maps(cube, model, device="cpu")
    assert any(
        n.startswith("100.0% of the pixels hold over three times the counts") and "--model maps-fit" in n
        for n in done.notes
    ), done.notes


def test_shipped_fit_model_against_the_limit_line_by_line(scores):
    """maps-fit (tools/train_zoo.py maps-fit): the MLP on the per-cluster fit, on the same fresh
    paintings, held to the issue's rule for every line."""
    model, card = load_model(FIT)
    assert card.architecture == "fit-mlp" and card.training["seed"] == 20261122
    assert tuple(card.config["hidden"]) == (256, 256) and card.training["loss"] == "l1"
    assert (card.training_data["n_paintings"], card.training_data["stride"]) == (300, 2)
    ratios = [fit[ln]["mae"] / lim[ln]["mae"] for fit, lim, lines in FIT_SCORES for ln in lines]
    assert max(ratios) <= RATIO_BOUND, ratios
    assert len(ratios) == 17
    for fit, lim, _ in FIT_SCORES:
        assert 0.95 <= fit["mean"]["slope"] <= 1.05 and fit["mean"]["ssim"] >= lim["mean"]["ssim"] - 0.02


def _bone_cube():
    """A calcium-phosphate sample with traces (bone, stone: nothing like a paint stack), 64
    pixels of 1,500 counts from the physics engine, and its true net counts."""
    from xray_atlas.physics.materials import compound
    from xray_atlas.physics.painting import painting_instrument
    from xray_atlas.physics.spectra import Layer, simulate

    fractions = {
        "Ca": 0.36,
        "P": 0.17,
        "O": 0.42,
        "H": 0.005,
        "C": 0.03,
        "K": 0.004,
        "Fe": 0.0015,
        "Zn": 0.0012,
        "Sr": 0.002,
        "Hg": 0.0008,
        "Pb": 0.001,
    }
    sim = simulate([Layer(compound(fractions, density=2.0, name="bone"))], painting_instrument(), pileup=True)
    scale = 1500.0 / sim.expected.sum()
    counts = np.random.default_rng(0).poisson(np.broadcast_to(sim.expected * scale, (8, 8, sim.expected.size)))
    truth = {k: v * scale * 64 for k, v in sim.net.items()}
    return SpectralCube(counts.astype(np.float32), energy=sim.energy), truth


def test_shipped_fit_model_keeps_the_traces_of_a_sample_unlike_paintings():
    """The learnt correction, trained on paint stacks, erased trace lines on such a sample
    (docs/maps.md "Beyond paintings"); held to the per-cluster fit's errors it keeps them.
    Measured (2026-11-23, the adaptive-L1 model; the L1 model shipped since gives the same
    within 0.01 held), median relative error over the lines with >= 300 counts: held 0.17,
    not held 0.47 (Hg-L and Pb-L read 0, K-K 3 of 498); maps-default 0.99."""
    cube, truth = _bone_cube()
    strong = [ln for ln in DEFAULT_MAP_LINES if truth.get(ln, 0) >= 300]
    assert len(strong) == 7  # K, Ca, Fe, Zn, Sr, Hg, Pb

    def error(maps):
        return [abs(float(maps[ln].sum()) - truth[ln]) / truth[ln] for ln in strong]

    done = predict_maps(cube, "maps-fit", device="cpu")
    held = done.maps
    assert np.median(error(held)) < 0.3 and max(error(held)) < 0.6, dict(zip(strong, error(held)))
    assert any("standard errors of the per-cluster fit" in n for n in done.notes)
    free = predict_maps(cube, "maps-fit", device="cpu", hold_se=None).maps
    assert np.median(error(free)) > 0.4  # what the hold is for


def test_shipped_fit_model_on_the_real_m6_spectrum(real_data):
    """The real M6 accumulation (1.09 million counts, a calcium phosphate with traces) against
    Bruker's own fit: measured (2026-11-23) median relative error 0.15 (not held: 1.00, with
    K-K, Zn-K, Hg-L and Pb-L read as 0)."""
    from xray_atlas.io import read
    from xray_atlas.physics.reference import bruker_net_counts

    path = real_data / "bruker_m6_jetstream_file_example.spx"
    bruker, _ = bruker_net_counts(path)
    with read(path) as cube:
        maps = predict_maps(cube, "maps-fit", device="cpu").maps
    strong = [ln for ln in DEFAULT_MAP_LINES if bruker.get(ln, 0) >= 500]
    err = [abs(float(maps[ln].sum()) - bruker[ln]) / bruker[ln] for ln in strong]
    assert np.median(err) < 0.3, dict(zip(strong, err))
    for ln in ("Fe-K", "Zn-K", "Sr-K"):
        assert float(maps[ln].sum()) == pytest.approx(bruker[ln], rel=0.3), ln


def test_shipped_fit_model_on_empty_pixels():
    # no pixel with counts: no cluster, nothing to hold, zeros (not NaN)
    empty = SpectralCube(np.zeros((3, 4, 4096), np.float32), offset_kev=0.0, gain_kev=0.01)
    done = predict_maps(empty, "maps-fit", device="cpu")
    assert all(np.isfinite(m).all() and m.max() == 0 for m in done.maps.values())
    assert any("0 cluster(s) moved" in n for n in done.notes)
