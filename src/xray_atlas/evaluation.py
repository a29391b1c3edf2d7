"""Ground truth on synthetic paintings: the per-pixel physical limit of elemental maps, the
Poisson-weighted non-negative least-squares fit that knows the simulator's true spectra
(:func:`limit_fit`; scores are :func:`xray_atlas.metrics.map_scores`), and which elements each
pixel shows above the detection limit (:func:`detectable_elements`)."""

from __future__ import annotations

import numpy as np

from .errors import XrayAtlasError

__all__ = ["detectable_elements", "limit_fit"]


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


def detectable_elements(painting, elements) -> np.ndarray:
    """(H, W, E) bool: which of ``elements`` each pixel of a synthetic painting (made with
    ``truth=True``) shows above Currie's detection limit, the labels element-presence models
    are trained on (:mod:`xray_atlas.physics.generator`).

    An element is detectable in a pixel when one of its line families clears
    L_D = 2.71 + 4.65 sqrt(B) (L. A. Currie, Anal. Chem. 40, 586, 1968) in the channels where
    the family's own spectrum (its region's line ratios) stands above half its peak: the signal
    is the pixel's true net counts of the family in those channels, B all other expected counts
    there. Noise-free, so the label does not depend on the Poisson draw.
    """
    from .physics.generator import detection_limit
    from .physics.lines import parse_line_family

    if painting.truth is None:
        raise XrayAtlasError("painting: make it with truth=True (paint(..., truth=True))")
    exp = painting.truth["expected"]
    h, w, c = exp.shape
    cs = np.concatenate([np.zeros((h * w, 1)), np.cumsum(exp.reshape(-1, c), axis=1, dtype=np.float64)], axis=1)
    reg = painting.regions.ravel()
    col = {el: i for i, el in enumerate(elements)}
    out = np.zeros((h * w, len(elements)), bool)
    for r, fams in enumerate(painting.truth["family_spectra"]):
        pix = np.flatnonzero(reg == r)
        for fam, unit in fams.items():
            el, _ = parse_line_family(fam)
            if el not in col or pix.size == 0 or fam not in painting.maps:  # maps skip the faintest families
                continue
            win = unit >= 0.5 * unit.max()
            # the windows' runs of channels, each summed from the cumulative counts
            edges = np.flatnonzero(np.diff(np.concatenate([[0], win.astype(np.int8), [0]])))
            inside = sum(cs[pix, b] - cs[pix, a] for a, b in zip(edges[::2], edges[1::2]))
            signal = painting.maps[fam].ravel()[pix] * float(unit[win].sum())
            other = np.maximum(inside - signal, 0.0)
            out[pix, col[el]] |= signal >= detection_limit(other)
    return out.reshape(h, w, len(elements))
