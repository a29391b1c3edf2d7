"""Scoring elemental maps against the truth, and the per-pixel physical limit.

The tables follow study 001: per line SSIM (explicit data range: the true map's maximum),
Pearson r, slope of yhat = a * y through the origin, and the share of pixels whose
|z| = |yhat - y| / std(y) falls in 0-1, 1-2, 2-3 and > 3; plus the mean absolute error.
The limit is the Poisson-weighted non-negative least-squares fit that knows the simulator's
true spectra (:func:`limit_fit`).
"""

from __future__ import annotations

import numpy as np

from .errors import XrayAtlasError

__all__ = ["map_scores", "limit_fit", "score_table", "Z_BINS"]

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
        out[ln] = {"mae": float(np.abs(p - t).mean()), "ssim": _ssim(p, t, float(t.max())),
                   "pearson": float((tc * pc).sum() / den) if den > 0 else float("nan"),
                   "slope": float((p * t).sum() / (t**2).sum()),
                   "z": [float(v) for v in edges]}
    if out:
        keys = ("mae", "ssim", "pearson", "slope")
        out["mean"] = {k: float(np.nanmean([v[k] for v in out.values()])) for k in keys}
        out["mean"]["z"] = [float(v) for v in np.mean([v["z"] for k, v in out.items() if k != "mean"], axis=0)]
    return out


def limit_fit(painting, lines) -> dict:
    """Poisson-weighted NNLS of every pixel of a synthetic painting made with ``truth=True``,
    knowing what the simulator knows: each region's family spectra (its own line ratios), the
    true background (everything but the fluorescence of those families) and the true variance."""
    from scipy.optimize import nnls

    if painting.truth is None:
        raise XrayAtlasError("painting: make it with truth=True (paint(..., truth=True))")
    exp = painting.truth["expected"]
    h, w, c = exp.shape
    counts = painting.counts.reshape(-1, c).astype(np.float64)
    exp = exp.reshape(-1, c).astype(np.float64)
    reg = painting.regions.ravel()
    out = {ln: np.zeros(h * w, np.float32) for ln in lines}
    for r, fams in enumerate(painting.truth["family_spectra"]):
        pix = np.flatnonzero(reg == r)
        if pix.size == 0 or not fams:
            continue
        names = list(fams)
        a = np.stack([fams[f] for f in names], axis=1).astype(np.float64)  # (C, F)
        true_net = np.stack([painting.maps.get(f, np.zeros((h, w))).ravel()[pix] for f in names], axis=1)
        background = exp[pix] - true_net @ a.T
        used = a.sum(1) > 1e-9 * a.sum()
        for i, p in enumerate(pix):
            wgt = 1.0 / np.sqrt(np.maximum(exp[p, used], 1.0))
            sol, _ = nnls(a[used] * wgt[:, None], (counts[p, used] - background[i, used]) * wgt)
            for j, f in enumerate(names):
                if f in out:
                    out[f][p] = sol[j]
    return {ln: v.reshape(h, w) for ln, v in out.items()}


def score_table(rows: dict, lines, *, caption: str = "") -> str:
    """Markdown table: one row per model with the means over lines and the |z| bins."""
    head = ("| model | MAE | SSIM | Pearson | slope | abs z 0-1 | 1-2 | 2-3 | > 3 |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    body = ""
    for name, s in rows.items():
        m = s["mean"]
        z = m["z"]
        body += (f"| {name} | {m['mae']:.2f} | {m['ssim']:.3f} | {m['pearson']:.3f} | {m['slope']:.3f} | "
                 f"{100 * z[0]:.1f} % | {100 * z[1]:.1f} % | {100 * z[2]:.1f} % | {100 * z[3]:.1f} % |\n")
    return (caption + "\n\n" if caption else "") + head + body
