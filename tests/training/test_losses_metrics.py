import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xray_atlas import XrayAtlasError, metrics
from xray_atlas.training.losses import LOSSES, adaptive_l1, focal, get_loss


def test_adaptive_l1_by_hand():
    # study 001: mean(|y - yhat| / sqrt(max(y, 1))); y = 0 uses the floor 1
    y = torch.tensor([[0.0, 4.0, 100.0]])
    p = torch.tensor([[2.0, 2.0, 90.0]])
    assert float(adaptive_l1(p, y)) == pytest.approx((2 / 1 + 2 / 2 + 10 / 10) / 3)


def test_focal_reduces_to_cross_entropy_at_gamma_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g)
    labels = (torch.rand(16, 5, generator=g) > 0.5).float()
    assert float(focal(logits, labels, gamma=0.0)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, labels))
    )
    classes = torch.randint(0, 5, (16,), generator=g)
    assert float(focal(logits, classes, gamma=0.0)) == pytest.approx(float(F.cross_entropy(logits, classes)), rel=1e-6)
    # easy examples weigh less: focal < cross-entropy for gamma > 0
    assert float(focal(logits, classes)) < float(F.cross_entropy(logits, classes))


def test_loss_table():
    assert {"adaptive-l1", "l1", "l2", "bce", "focal", "cross-entropy"} <= set(LOSSES)
    with pytest.raises(XrayAtlasError, match="loss='huber'"):
        get_loss("huber")


def test_metrics_reference_values():
    t = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    p = 2 * t  # perfectly correlated, slope 2 through the origin
    np.testing.assert_allclose(metrics.pearson(p, t), [1.0, 1.0])
    np.testing.assert_allclose(metrics.slope_through_origin(p, t), [2.0, 2.0])
    np.testing.assert_allclose(metrics.mae(p, t), [2.0, 4.0])
    # AUC: scores rank positives above negatives perfectly -> 1; reversed -> 0
    y = np.array([[1], [0], [1], [0]])
    assert metrics.mean_auc(np.array([[0.9], [0.1], [0.8], [0.2]]), y) == 1.0
    assert metrics.mean_auc(np.array([[0.1], [0.9], [0.2], [0.8]]), y) == 0.0
    # F1 by hand: tp 1, fp 1, fn 1 -> 2/(2+1+1)
    assert metrics.f1_at(np.array([[0.9, 0.9, 0.1]]), np.array([[1, 0, 1]])) == pytest.approx(0.5)
    assert metrics.accuracy(np.array([[2.0, 1.0], [0.0, 1.0]]), np.array([0, 0])) == 0.5


def test_r2_score_matches_scikit_learn():
    from sklearn.metrics import r2_score as sk

    rng = np.random.default_rng(2)
    t = rng.normal(size=(50, 4))
    p = t + rng.normal(scale=0.3, size=t.shape)
    assert metrics.r2_score(p, t) == pytest.approx(sk(t, p), rel=1e-12)
    assert metrics.r2_score(t, t) == 1.0
    assert metrics.r2_score(p[:, 0], t[:, 0]) == pytest.approx(sk(t[:, 0], p[:, 0]), rel=1e-12)
    s = metrics.encoding_summary(p, t)
    assert s["r2"] == pytest.approx(sk(t, p), rel=1e-12) and s["mae"] == pytest.approx(np.abs(p - t).mean())


def test_per_label_auc_thresholds_and_detection_scores():
    from xray_atlas.metrics import best_thresholds, detection_scores, per_label_auc

    y = np.array([[1, 0], [1, 0], [0, 0], [0, 1]], bool)
    p = np.array([[0.9, 0.2], [0.35, 0.1], [0.3, 0.3], [0.1, 0.8]])
    auc = per_label_auc(p, y, ["Fe", "Cu"])
    assert auc == {"Fe": 1.0, "Cu": 1.0}  # every positive above every negative
    assert np.isnan(per_label_auc(p, np.zeros_like(y), ["Fe", "Cu"])["Fe"])  # one class only
    thr = best_thresholds(p, y, ["Fe", "Cu"])
    assert 0.30 < thr["Fe"] <= 0.35 and 0.3 < thr["Cu"] <= 0.8  # the F1-best cut between the classes
    assert best_thresholds(p, np.zeros_like(y), ["Fe", "Cu"]) == {"Fe": 0.5, "Cu": 0.5}
    # at 0.5: Fe (0.9) and Cu (0.8) called, Fe (0.35) missed -> tp 2, fp 0, fn 1
    d = detection_scores(p, y)
    assert d["precision"] == 1.0 and d["recall"] == pytest.approx(2 / 3) and d["f1"] == pytest.approx(0.8)
    d = detection_scores(p, y, [thr["Fe"], thr["Cu"]])
    assert d["recall"] == 1.0 and d["precision"] == 1.0 and d["accuracy"] == 1.0


def test_reliability_against_scikit_learn_and_by_hand():
    from sklearn.calibration import calibration_curve

    from xray_atlas.metrics import reliability

    rng = np.random.default_rng(0)
    p = rng.uniform(size=(4000, 3))
    y = rng.uniform(size=p.shape) < p**2  # overconfident below 1: true frequency p^2
    r = reliability(p, y, bins=10)
    # reference: scikit-learn's curve over the same pooled values, equal-width bins
    true, pred = calibration_curve(y.ravel(), p.ravel(), n_bins=10, strategy="uniform")
    filled = r["count"] > 0
    np.testing.assert_allclose(r["observed"][filled], true, rtol=1e-12)
    np.testing.assert_allclose(r["predicted"][filled], pred, rtol=1e-12)
    assert r["count"].sum() == p.size
    # analytic: E|p - p^2| for p uniform on [0, 1] is 1/2 - 1/3 = 1/6 (binning and sampling aside)
    assert r["ece"] == pytest.approx(1 / 6, abs=0.01)
    # by hand: p 0.9 for four labels of which two are true -> one bin, |0.5 - 0.9|
    r = reliability([0.9, 0.9, 0.9, 0.9], [1, 0, 1, 0], bins=5)
    assert r["ece"] == pytest.approx(0.4) and r["count"].tolist() == [0, 0, 0, 0, 4]
    assert np.isnan(r["observed"][0])
    with pytest.raises(XrayAtlasError, match="bins=0"):
        reliability(p, y, bins=0)
    with pytest.raises(XrayAtlasError, match="differ in size"):
        reliability(p, y[:10])


def test_class_weights_in_the_losses():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.5], [0.1, 0.2]])
    target = torch.tensor([0, 1, 1, 0])
    w = np.array([0.25, 1.75], np.float32)
    expect = F.cross_entropy(logits, target, weight=torch.from_numpy(w))
    torch.testing.assert_close(get_loss("cross-entropy", weights=w)(logits, target), expect)
    # focal at gamma 0 with class weights is the weighted cross-entropy (same weighted mean)
    torch.testing.assert_close(focal(logits, target, gamma=0.0, weights=w), expect)
    # at gamma 2: the weighted mean of the per-example focal terms
    per = torch.stack([focal(logits[[i]], target[[i]]) for i in range(4)])
    wt = torch.from_numpy(w)[target]
    torch.testing.assert_close(get_loss("focal", weights=w)(logits, target), (wt * per).sum() / wt.sum())
    with pytest.raises(XrayAtlasError, match="takes no class weights"):
        get_loss("l2", weights=w)


def test_class_balanced_weights_follow_the_effective_number():
    from xray_atlas.training.sources import SyntheticMicrographs

    src = SyntheticMicrographs("images", n_images=40, frame=32, size=16, class_balance=0.99)
    src.prepare(0)
    n = np.bincount(src._train[1], minlength=8).astype(float)
    # Cui et al., CVPR 2019: weight 1 / E_n with E_n = (1 - beta^n) / (1 - beta), normalised to sum k
    inv = (1 - 0.99) / (1 - 0.99**n)
    np.testing.assert_allclose(src.class_weights(), inv / inv.sum() * 8, rtol=1e-5)
    assert SyntheticMicrographs("images", n_images=40).class_weights() is None  # beta 0: off
    # a rare class (1:20) gets the largest weight, about 20 x at beta 0.9999
    rare = SyntheticMicrographs(
        "images", n_images=840, frame=32, size=16, class_balance=0.9999, minority="rods", minority_ratio=0.05
    )
    rare.prepare(1)
    w = rare.class_weights()
    assert np.argmax(w) == 2 and 8 < w[2] / np.median(w) < 60
    with pytest.raises(XrayAtlasError, match="minority='stars'; choose one of none, spheres-small"):
        SyntheticMicrographs("images", minority="stars")
    with pytest.raises(XrayAtlasError, match="minority_ratio=0 is out of range"):
        SyntheticMicrographs("images", minority_ratio=0)


def test_classification_scores_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 1, 1, 0])
    s = metrics.classification_scores(probs, y, ("a", "b"))
    assert s["accuracy"] == 0.5 and s["confusion"] == [[1, 1], [1, 1]]
    # class b ranked 0.7 (b), 0.55 (a), 0.4 (b), 0.1 (a): AP = (1/1 + 2/3) / 2, AUC = 3/4
    assert s["ap"]["b"] == pytest.approx((1 + 2 / 3) / 2) and s["auc"]["b"] == pytest.approx(0.75)
    with pytest.raises(XrayAtlasError, match="expected shape"):
        metrics.classification_scores(probs[:, :1], y, ("a", "b"))
