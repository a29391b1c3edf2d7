"""The per-pixel physical limit of elemental maps on synthetic paintings: the Poisson-weighted
non-negative least-squares fit that knows the simulator's true spectra (:func:`limit_fit`).
Scores are :func:`xray_atlas.metrics.map_scores`."""

from __future__ import annotations

import numpy as np

from .errors import XrayAtlasError

__all__ = ["limit_fit"]


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
