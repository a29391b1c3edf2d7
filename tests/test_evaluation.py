"""Map scores (study 001's table) and the per-pixel limit fit."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.evaluation import limit_fit
from xray_atlas.metrics import map_scores, score_table
from xray_atlas.physics.painting import synthetic_painting


def test_scores_by_hand():
    rng = np.random.default_rng(0)
    t = rng.uniform(60, 200, (20, 30))
    s = map_scores({"Fe-K": 2 * t, "Pb-L": t}, {"Fe-K": t, "Pb-L": t}, ["Fe-K", "Pb-L"])
    assert s["Fe-K"]["slope"] == pytest.approx(2.0) and s["Fe-K"]["pearson"] == pytest.approx(1.0)
    assert s["Fe-K"]["mae"] == pytest.approx(t.mean())
    # z = |2t - t| / std(t) = t / std(t): the share of pixels in each bin, by hand
    z = t / t.std()
    expected = [np.mean(z < 1), np.mean((z >= 1) & (z < 2)), np.mean((z >= 2) & (z < 3)), np.mean(z >= 3)]
    np.testing.assert_allclose(s["Fe-K"]["z"], expected)
    assert s["Pb-L"]["ssim"] == pytest.approx(1.0) and s["Pb-L"]["z"] == [1.0, 0.0, 0.0, 0.0]
    assert s["mean"]["slope"] == pytest.approx(1.5)
    # lines whose true maximum is at most 50 counts are left out (issue 4's rule)
    assert "S-K" not in map_scores({"S-K": t / 10}, {"S-K": t / 10}, ["S-K"])
    assert "| model | MAE |" in score_table({"x": s}, ["Fe-K", "Pb-L"])


def test_limit_fit_recovers_noise_free_truth():
    p = synthetic_painting(6, 8, seed=2, layout="random", truth=True)
    p.counts = np.round(p.truth["expected"]).astype(np.uint16)  # no Poisson noise, only rounding
    lines = [k for k, v in p.maps.items() if v.mean() > 100 and not k.endswith("-M")]
    assert len(lines) >= 4
    fit = limit_fit(p, lines)
    for ln in lines:  # within 2 % (measured: 0.1-0.7 %); the fit is biased only by rounding
        assert np.abs(fit[ln] - p.maps[ln]).mean() < 0.02 * p.maps[ln].mean(), ln
    with pytest.raises(XrayAtlasError, match="truth=True"):
        limit_fit(synthetic_painting(4, 4, seed=1), lines)


def test_detectable_elements_follow_the_paint_and_the_dose():
    from xray_atlas.evaluation import detectable_elements
    from xray_atlas.physics.painting import Region, paint, painting_instrument

    reg = np.zeros((4, 6), np.int64)
    reg[:, 3:] = 1
    regions = [Region("red", (("vermilion", 20.0),)), Region("white", (("lead white", 20.0),))]
    elements = ("Hg", "Pb", "Fe", "Ca")
    seen = detectable_elements(paint(reg, regions, seed=0, truth=True), elements)
    assert seen.shape == (4, 6, 4)
    assert seen[:, :3, 0].all() and not seen[:, 3:, 0].any()  # Hg where the vermilion is
    assert seen[:, 3:, 1].all() and not seen[:, :3, 1].any()  # Pb where the lead white is
    assert not seen[..., 2].any()  # no iron in this painting
    # a 10,000-fold shorter dwell: the same paint, too few counts to clear Currie's limit
    faint = paint(reg, regions, instrument=painting_instrument(dwell_ms=0.002), seed=0, truth=True)
    assert not detectable_elements(faint, elements)[..., :2].any()
    with pytest.raises(XrayAtlasError, match="truth=True"):
        detectable_elements(synthetic_painting(4, 4, seed=1), elements)
