"""Scores of predictions against truth: regression of net counts, multi-label presence,
multi-class images. Inputs are numpy arrays (or anything ``np.asarray`` takes), one row per
sample."""

from __future__ import annotations

import numpy as np

__all__ = ["mae", "pearson", "slope_through_origin", "mean_auc", "f1_at", "accuracy", "regression_summary",
           "multilabel_summary", "multiclass_summary"]


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred shape {p.shape} != target shape {t.shape}")
    return p, t


def mae(pred, target) -> np.ndarray:
    """Mean absolute error per output column."""
    p, t = _pair(pred, target)
    return np.abs(p - t).mean(axis=0)


def pearson(pred, target) -> np.ndarray:
    """Pearson r per column (NaN where a column is constant)."""
    p, t = _pair(pred, target)
    pc, tc = p - p.mean(0), t - t.mean(0)
    den = np.sqrt((pc**2).sum(0) * (tc**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pc * tc).sum(0) / den, np.nan)


def slope_through_origin(pred, target) -> np.ndarray:
    """Least-squares slope of pred = s * target per column (1 is unbiased)."""
    p, t = _pair(pred, target)
    den = (t**2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (p * t).sum(0) / den, np.nan)


def mean_auc(scores, labels) -> float:
    """ROC AUC averaged over the labels that have both classes in ``labels``."""
    from sklearn.metrics import roc_auc_score

    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    aucs = [roc_auc_score(y[:, j], s[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")


def f1_at(probabilities, labels, threshold: float = 0.5) -> float:
    """Micro-averaged F1 of ``probabilities >= threshold``."""
    p = np.asarray(probabilities) >= threshold
    y = np.asarray(labels).astype(bool)
    tp, fp, fn = (p & y).sum(), (p & ~y).sum(), (~p & y).sum()
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def accuracy(logits, classes) -> float:
    """Fraction of rows whose arg-max is the class index."""
    return float((np.asarray(logits).argmax(1) == np.asarray(classes)).mean())


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def regression_summary(pred, target, *, min_mean: float = 1.0) -> dict:
    """MAE over all outputs; Pearson r and slope averaged over the outputs whose mean target
    is at least ``min_mean`` (an output that is all but absent has no meaningful slope)."""
    t = np.asarray(target, dtype=np.float64)
    used = t.mean(axis=0) >= min_mean
    p = np.asarray(pred, dtype=np.float64)
    return {"mae": float(np.mean(mae(p, t))), "pearson": _nanmean(pearson(p[:, used], t[:, used])),
            "slope": _nanmean(slope_through_origin(p[:, used], t[:, used]))}


def multilabel_summary(logits, labels) -> dict:
    prob = 1.0 / (1.0 + np.exp(-np.asarray(logits, float)))
    return {"auc": mean_auc(prob, labels), "f1": f1_at(prob, labels),
            "accuracy": float(((prob >= 0.5) == np.asarray(labels).astype(bool)).mean())}


def multiclass_summary(logits, classes) -> dict:
    return {"accuracy": accuracy(logits, classes)}
