"""Scores of predictions against truth: regression of net counts, multi-label presence,
multi-class images (numpy arrays, one row per sample), and elemental maps as in study 001:
per line SSIM (explicit data range: the true map's maximum), Pearson r, slope of
yhat = a * y through the origin, the share of pixels whose |z| = |yhat - y| / std(y) falls in
0-1, 1-2, 2-3 and > 3, and the mean absolute error (:func:`map_scores`)."""

from __future__ import annotations

import numpy as np

from .errors import XrayAtlasError

__all__ = [
    "mae",
    "pearson",
    "slope_through_origin",
    "r2_score",
    "mean_auc",
    "per_label_auc",
    "best_thresholds",
    "detection_scores",
    "reliability",
    "f1_at",
    "accuracy",
    "classification_scores",
    "regression_summary",
    "encoding_summary",
    "multilabel_summary",
    "multiclass_summary",
    "map_scores",
    "score_table",
    "Z_BINS",
]


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


def r2_score(pred, target) -> float:
    """Coefficient of determination averaged over the columns that vary (scikit-learn's
    ``r2_score(..., multioutput="uniform_average")``); a 1-D pair is one column."""
    p, t = _pair(pred, target)
    if t.ndim == 1:
        p, t = p[:, None], t[:, None]
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    ok = ss_tot > 0
    return float(np.mean(1 - ss_res[ok] / ss_tot[ok])) if ok.any() else float("nan")


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


def per_label_auc(scores, labels, names) -> dict:
    """Name -> ROC AUC of each label (NaN where ``labels`` hold one class only)."""
    from sklearn.metrics import roc_auc_score

    s, y = np.asarray(scores, float), np.asarray(labels).astype(bool)
    return {
        n: float(roc_auc_score(y[:, j], s[:, j])) if 0 < y[:, j].sum() < len(y) else float("nan")
        for j, n in enumerate(names)
    }


def best_thresholds(probabilities, labels, names, *, floor: float = 0.05) -> dict:
    """Name -> the decision threshold that maximises the label's F1 on these (validation)
    data; 0.5 where a label has no positive example. ``floor`` keeps a threshold from
    falling to where noise alone would pass it."""
    p, y = np.asarray(probabilities, float), np.asarray(labels).astype(bool)
    grid = np.linspace(floor, 0.95, 91)
    out = {}
    for j, n in enumerate(names):
        if not y[:, j].any():
            out[n] = 0.5
            continue
        hit = p[:, j][None, :] >= grid[:, None]
        tp = (hit & y[:, j]).sum(1)
        f1 = 2 * tp / np.maximum(hit.sum(1) + y[:, j].sum(), 1)
        out[n] = float(grid[int(np.argmax(f1))])
    return out


def detection_scores(probabilities, labels, thresholds=None) -> dict:
    """Accuracy, precision, recall and F1 of calls ``p >= threshold`` (one per column, or 0.5),
    pooled over the labels (micro average)."""
    p, y = np.asarray(probabilities, float), np.asarray(labels).astype(bool)
    t = 0.5 if thresholds is None else np.asarray(thresholds, float)[None, :]
    hit = p >= t
    tp, fp, fn = (hit & y).sum(), (hit & ~y).sum(), (~hit & y).sum()
    prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {
        "accuracy": float((hit == y).mean()),
        "precision": float(prec),
        "recall": float(rec),
        "f1": float(2 * tp / max(2 * tp + fp + fn, 1)),
    }


def reliability(probabilities, labels, *, bins: int = 10) -> dict:
    """How far probabilities can be read as frequencies, pooled over all labels: for each of
    ``bins`` equal bins of [0, 1], the mean probability (``predicted``), the share of true
    labels (``observed``) and the number of values (``count``; empty bins give NaN), and the
    expected calibration error ``ece`` = sum over bins of count / N * |observed - predicted|
    (Naeini et al., AAAI 2015)."""
    p = np.asarray(probabilities, float).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if p.shape != y.shape:
        raise XrayAtlasError(f"probabilities ({p.size} values) and labels ({y.size}) differ in size")
    if not isinstance(bins, int) or bins < 1:
        raise XrayAtlasError(f"bins={bins!r} must be a positive integer")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # the same binning as scikit-learn's calibration_curve(strategy="uniform")
    idx = np.searchsorted(edges[1:-1], p)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(idx, p, bins) / count
        observed = np.bincount(idx, y, bins) / count
    filled = count > 0
    ece = float((count[filled] * np.abs(observed[filled] - predicted[filled])).sum() / max(p.size, 1))
    return {"edges": edges, "predicted": predicted, "observed": observed, "count": count, "ece": ece}


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
    return {
        "mae": float(np.mean(mae(p, t))),
        "pearson": _nanmean(pearson(p[:, used], t[:, used])),
        "slope": _nanmean(slope_through_origin(p[:, used], t[:, used])),
    }


def encoding_summary(pred, target) -> dict:
    """R^2 (averaged over outputs) and MAE of predicted correlation encodings."""
    return {"r2": r2_score(pred, target), "mae": float(np.mean(mae(pred, target)))}


def multilabel_summary(logits, labels) -> dict:
    prob = 1.0 / (1.0 + np.exp(-np.asarray(logits, float)))
    return {
        "auc": mean_auc(prob, labels),
        "f1": f1_at(prob, labels),
        "accuracy": float(((prob >= 0.5) == np.asarray(labels).astype(bool)).mean()),
    }


def classification_scores(probs, classes, names) -> dict:
    """Study 000's summary of a classifier on a test set: accuracy, average precision and
    ROC AUC per class (one against the rest; NaN for a class absent from ``classes``), their
    means, and the confusion matrix (rows: true class, columns: predicted).

    Parameters
    ----------
    probs : (N, k) array
        Class probabilities (or any scores that rank alike).
    classes : (N,) int array
        True class indices.
    names : sequence of k str
    """
    from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(classes).astype(int)
    k = len(names)
    if p.ndim != 2 or p.shape != (len(y), k):
        raise XrayAtlasError(f"probs: expected shape ({len(y)}, {k}), got {p.shape}")
    ap, auc = {}, {}
    for j, name in enumerate(names):
        hit = y == j
        ok = 0 < hit.sum() < len(y)
        ap[name] = float(average_precision_score(hit, p[:, j])) if ok else float("nan")
        auc[name] = float(roc_auc_score(hit, p[:, j])) if ok else float("nan")
    return {
        "accuracy": accuracy(p, y),
        "ap": ap,
        "auc": auc,
        "mean_ap": _nanmean(np.array(list(ap.values()))),
        "mean_auc": _nanmean(np.array(list(auc.values()))),
        "confusion": confusion_matrix(y, p.argmax(1), labels=list(range(k))).tolist(),
    }


def multiclass_summary(logits, classes) -> dict:
    """Accuracy and the mean one-against-the-rest ROC AUC of a validation pass."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(1, keepdims=True))
    scores = classification_scores(z / z.sum(1, keepdims=True), classes, [str(j) for j in range(z.shape[1])])
    return {"accuracy": scores["accuracy"], "mean_auc": scores["mean_auc"]}


Z_BINS = (1.0, 2.0, 3.0)


def _ssim(pred: np.ndarray, true: np.ndarray, data_range: float) -> float:
    from skimage.metrics import structural_similarity

    win = min(7, *(s if s % 2 else s - 1 for s in true.shape))
    return float(structural_similarity(true, pred, data_range=data_range, win_size=max(win, 3)))


def map_scores(pred: dict, true: dict, lines, *, min_max: float = 50.0) -> dict:
    """Per-line scores of predicted (H, W) maps; lines whose true maximum is at most
    ``min_max`` counts are skipped (the issue's rule), and ``"mean"`` averages the others."""
    out: dict = {}
    for ln in lines:
        t = np.asarray(true[ln], np.float64)
        p = np.asarray(pred[ln], np.float64)
        if t.shape != p.shape:
            raise XrayAtlasError(f"{ln}: predicted map {p.shape} and true map {t.shape} differ")
        if not t.max() > min_max:
            continue
        sd = t.std()
        z = np.abs(p - t) / sd if sd > 0 else np.zeros_like(t)
        tc, pc = t - t.mean(), p - p.mean()
        den = np.sqrt((tc**2).sum() * (pc**2).sum())
        edges = np.histogram(z, bins=[0, *Z_BINS, np.inf])[0] / z.size
        out[ln] = {
            "mae": float(np.abs(p - t).mean()),
            "ssim": _ssim(p, t, float(t.max())),
            "pearson": float((tc * pc).sum() / den) if den > 0 else float("nan"),
            "slope": float((p * t).sum() / (t**2).sum()),
            "z": [float(v) for v in edges],
        }
    if out:
        keys = ("mae", "ssim", "pearson", "slope")
        out["mean"] = {k: float(np.nanmean([v[k] for v in out.values()])) for k in keys}
        out["mean"]["z"] = [float(v) for v in np.mean([v["z"] for k, v in out.items() if k != "mean"], axis=0)]
    return out


def score_table(rows: dict, lines, *, caption: str = "") -> str:
    """Markdown table: one row per model with the means over lines and the |z| bins."""
    head = (
        "| model | MAE | SSIM | Pearson | slope | abs z 0-1 | 1-2 | 2-3 | > 3 |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    body = ""
    for name, s in rows.items():
        m = s["mean"]
        z = m["z"]
        body += (
            f"| {name} | {m['mae']:.2f} | {m['ssim']:.3f} | {m['pearson']:.3f} | {m['slope']:.3f} | "
            f"{100 * z[0]:.1f} % | {100 * z[1]:.1f} % | {100 * z[2]:.1f} % | {100 * z[3]:.1f} % |\n"
        )
    return (caption + "\n\n" if caption else "") + head + body
