"""Elemental maps by least squares whose line ratios and background are fitted to each
cluster of similar pixels (the ``fit`` map baseline).

The ``lsq`` baseline fits every pixel with one thin-sample spectrum per line family and a
smooth background, so it cannot follow the matrix: under zinc white, Hg La and Lb (above the
Zn K edge, 9.66 keV) are absorbed far more than Hg Ll. A pixel alone has too few counts to
fit such shapes, but a few hundred pixels of the same paint have millions. So:

1. every pixel's least-squares family shares are clustered (k-means);
2. each cluster's summed spectrum is fitted with the families' line groups (K alpha, K beta,
   L alpha, ...) free within a prior on their thin-sample shares, and the smooth background
   (:func:`fit_family_shapes`), which gives the cluster's own family spectra and background;
3. every pixel is fitted with its cluster's spectra, weighted by the cluster's mean
   spectrum (Poisson variance), non-negative, and its net counts are corrected for the
   events lost to pile-up (which take 5 % of a zinc-white pixel's Zn Ka at 20 ms).

Three passes over the cube, each tile by tile, so memory is bounded as for the other models.
"""

from __future__ import annotations

from typing import Generator

import numpy as np

from .cube import TILE_BYTES, Progress, SpectralCube
from .errors import XrayAtlasError

__all__ = ["family_groups", "fit_family_shapes", "iter_cluster_fit_maps", "PILEUP_TIME_S"]

#: Pulse-pair resolving time (s) assumed for the pile-up correction: the physics engine's
#: detector (:class:`xray_atlas.physics.detector.Detector`), typical of SDD pile-up rejectors.
PILEUP_TIME_S = 1e-7


def family_groups(family: str, instrument, *, gap_kev: float = 0.3) -> list[tuple[np.ndarray, float]]:
    """(spectrum (C,) of one net count, share of the family's net counts in a thin sample) of
    each group of ``family``'s lines (lines closer than ``gap_kev`` share a group, with their
    thin-sample ratios), for ``instrument`` (a :class:`~xray_atlas.physics.spectra.Instrument`).
    Empty if the tube excites none."""
    from .physics.lines import atomic_number, parse_line_family
    from .physics.spectra import _line_cross_sections

    sym, fam = parse_line_family(family)
    e0, flux = instrument.excitation(de=0.1)
    rows = sorted((e, float(np.sum(flux * tau)))
                  for f, _, e, tau in _line_cross_sections(atomic_number(sym), tuple(np.round(e0, 6))) if f == fam)
    if not rows:
        return []
    det = instrument.detector
    e = np.array([r[0] for r in rows])
    inten = np.array([r[1] for r in rows]) * det.efficiency(e)
    inten = inten / inten.sum()
    net = inten * det.net_fraction(e)
    out = []
    for idx in np.split(np.arange(e.size), np.flatnonzero(np.diff(e) > gap_kev) + 1):
        if inten[idx].sum() < 1e-3:  # groups under 0.1 % of the family: part of no fit
            continue
        out.append((det.render(e[idx], inten[idx]) / float(np.sum(net[idx])), float(np.sum(net[idx]) / np.sum(net))))
    return out


class _Basis:
    """The thin family spectra, their line groups and the background bumps of one instrument."""

    def __init__(self, n_channels: int, offset_kev: float, gain_kev: float, instrument: dict) -> None:
        from .models.prior import INSTRUMENT_DEFAULTS, PRIOR_FAMILIES, background_basis, instrument_for, pure_matrix

        instrument = {**INSTRUMENT_DEFAULTS, **instrument, "offset_kev": offset_kev, "gain_kev": gain_kev}
        inst = instrument_for(n_channels=n_channels, **instrument)
        self.families = PRIOR_FAMILIES
        self.thin = pure_matrix(PRIOR_FAMILIES, n_channels=n_channels, **instrument).astype(np.float64)
        groups, owner, shares = [], [], []
        for f in PRIOR_FAMILIES:
            for g, share in family_groups(f, inst):
                groups.append(g)
                owner.append(f)
                shares.append(share)
        self.groups = np.stack(groups, axis=1)
        self.thin_shares = np.array(shares)
        self.owner = np.array(owner)
        self.background = background_basis(n_channels, offset_kev, gain_kev).astype(np.float64)


def fit_family_shapes(spectrum: np.ndarray, basis: _Basis, channels: np.ndarray, *,
                      min_share: float = 1e-3, trace_share: float = 3e-4, ratio_sd: float = 0.3) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The family spectra (own line ratios, one net count each) and the background shape
    (unit sum) of a summed ``spectrum`` (C,), fitted on the boolean ``channels``.

    A first Poisson-weighted NNLS with one thin spectrum per family finds the families above
    ``min_share`` of the counts; a second frees their line groups (the other families keep
    their thin spectra) beside the smooth background basis. Families between ``trace_share``
    and ``min_share`` of the counts are returned with their thin spectra."""
    from scipy.optimize import nnls

    s = np.asarray(spectrum, np.float64)
    total = float(s.sum())
    if total <= 0:
        return {}, np.zeros_like(s)
    w = 1.0 / np.sqrt(np.maximum(s[channels], 1.0))
    a1 = np.concatenate([basis.thin, basis.background], axis=1)[channels]
    first, _ = nnls(a1 * w[:, None], s[channels] * w, maxiter=20 * a1.shape[1])
    present = [f for j, f in enumerate(basis.families) if first[j] > min_share * total]
    free = np.isin(basis.owner, present)
    others = [j for j, f in enumerate(basis.families) if f not in present]
    a2 = np.concatenate([basis.groups[:, free], basis.thin[:, others], basis.background], axis=1)
    # a prior on each group's share of its family: the thin sample's, give or take
    # ``ratio_sd`` of it, as extra rows (in standard deviations, like the weighted data rows),
    # so that the matrix moves the ratios where the counts say so, and lines that overlap
    # another family's (K Kb under Ca Ka) cannot trade their counts away
    prior = []
    idx = np.flatnonzero(free)
    for f in present:
        cols = np.flatnonzero(basis.owner[idx] == f)
        if cols.size < 2:
            continue
        share = basis.thin_shares[idx[cols]]
        amount = first[basis.families.index(f)]
        for i, col in enumerate(cols):
            row = np.zeros(a2.shape[1])
            row[cols] = -share[i]
            row[col] += 1.0
            prior.append(row / max(ratio_sd * share[i] * amount, 1e-12))
    design = a2[channels] * w[:, None]
    target = s[channels] * w
    if prior:
        design = np.concatenate([design, np.array(prior)], axis=0)
        target = np.concatenate([target, np.zeros(len(prior))])
    sol, _ = nnls(design, target, maxiter=20 * a2.shape[1])
    k = int(free.sum())
    amps = np.zeros(basis.groups.shape[1])
    amps[free] = sol[:k]
    shapes = {}
    for f in present:
        m = basis.owner == f
        if amps[m].sum() > 0:
            shapes[f] = basis.groups[:, m] @ amps[m] / amps[m].sum()
    for i, j in enumerate(others):  # traces: too few counts for their own ratios, thin ones
        if sol[k + i] > trace_share * total:
            shapes[basis.families[j]] = basis.thin[:, j]
    bg = basis.background @ sol[k + len(others):]
    return shapes, bg / max(float(bg.sum()), 1e-12)


def _nonneg_solve(gram: np.ndarray, rhs: np.ndarray, *, rounds: int = 8) -> np.ndarray:
    """Least squares from normal equations (gram (K, K), rhs (N, K)) with negative
    coefficients dropped and the rest re-solved until none is negative (an active-set
    descent; pixels that share a set of dropped columns are solved together)."""
    n, k = rhs.shape
    out = np.linalg.solve(gram, rhs.T).T if k else rhs.copy()
    active = np.ones((n, k), bool)
    for _ in range(rounds):
        bad = (out < 0) & active
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size == 0:
            break
        active[rows] &= ~bad[rows]
        keys, inverse = np.unique(active[rows], axis=0, return_inverse=True)
        for j, key in enumerate(keys):
            sel = rows[inverse.ravel() == j]
            out[sel] = 0.0
            if key.any():
                sub = gram[np.ix_(key, key)]
                out[np.ix_(sel, np.flatnonzero(key))] = np.linalg.solve(sub, rhs[np.ix_(sel, np.flatnonzero(key))].T).T
    return np.maximum(out, 0.0)


def iter_cluster_fit_maps(cube: SpectralCube, lines: tuple[str, ...], *, n_clusters: int = 12,
                          min_counts: float = 5e5, pileup_time_s: float | None = PILEUP_TIME_S, tile_bytes: int = TILE_BYTES,
                          seed: int = 0, notes: list | None = None,
                          labels_out: list | None = None) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Net counts of ``lines`` for every pixel of a calibrated ``cube`` by the per-cluster fit
    (module docstring). Yields :class:`Progress` per tile of each of the three passes and
    returns line -> (H, W) float32.

    Parameters
    ----------
    n_clusters : int
        Clusters of k-means on the pixels' least-squares shares (fewer if there are fewer
        distinct pixels).
    min_counts : float
        Counts a cluster should hold (fewer clusters for a faint scan).
    pileup_time_s : float or None
        Pulse-pair resolving time for the pile-up correction, applied when the cube's
        metadata states ``live_time_s`` per pixel; None turns it off.
    notes : list, optional
        Receives one-line remarks (clusters, whether pile-up was corrected).
    labels_out : list, optional
        Receives the (H, W) int cluster of every pixel (-1: no counts).
    """
    from sklearn.cluster import KMeans

    from .models.prior import INSTRUMENT_DEFAULTS, PRIOR_FAMILIES, instrument_from_metadata
    from .models.spectral import _lsq_operator
    from .preprocess import LOW_KEV

    if not cube.calibrated:
        raise XrayAtlasError("the per-cluster fit needs an energy calibration and this cube has none", path=cube.path)
    if not (isinstance(n_clusters, (int, np.integer)) and n_clusters >= 1):
        raise XrayAtlasError(f"n_clusters={n_clusters!r} must be a positive integer")
    unknown = [ln for ln in lines if ln not in PRIOR_FAMILIES]
    if unknown:
        raise XrayAtlasError(f"lines: {', '.join(unknown)} not among the physics engine's families")
    h, w, c = cube.height, cube.width, cube.n_channels
    e = np.asarray(cube.energy, np.float64)
    gain = float(e[1] - e[0])
    inst = instrument_from_metadata(cube.metadata)
    channels = e >= LOW_KEV  # the detector's noise peak lies below (preprocess.LOW_KEV)
    basis = _Basis(c, float(e[0]), gain, inst)
    _, full, fams = _lsq_operator(tuple(lines), PRIOR_FAMILIES, c,
                                  {**INSTRUMENT_DEFAULTS, **inst, "offset_kev": float(e[0]), "gain_kev": gain}, 0.75)
    shares_op = full[:, :len(fams)].astype(np.float32)
    shares_op[~channels] = 0.0
    n_tiles = -(-h // cube.tile_rows(tile_bytes))
    total_steps = 3 * n_tiles
    step = 0
    yield Progress(0, total_steps, "maps")

    # pass 1: features = sqrt of each family's share of the pixel's counts
    feats = np.zeros((h * w, len(fams)), np.float32)
    totals = np.zeros(h * w, np.float64)
    for rows, block in cube.iter_tiles(tile_bytes=tile_bytes):
        x = block.reshape(-1, c).astype(np.float32)
        x[:, ~channels] = 0.0
        sl = slice(rows.start * w, rows.stop * w)
        totals[sl] = x.sum(axis=1)
        feats[sl] = np.sqrt(np.maximum(x @ shares_op, 0.0) / np.maximum(totals[sl, None], 1.0))
        step += 1
        yield Progress(step, total_steps, "maps")
    lit = totals > 0
    # a cluster needs the counts to fit its own line ratios: fewer clusters for a faint scan,
    # else k-means splits like pixels by their noise and each fit follows that noise
    k = int(min(n_clusters, max(lit.sum(), 1), max(totals.sum() // min_counts, 1)))
    labels = np.full(h * w, -1, np.int64)
    if lit.any():
        rng = np.random.default_rng(seed)
        idx = np.flatnonzero(lit)
        sample = idx if idx.size <= 50_000 else rng.choice(idx, 50_000, replace=False)
        km = KMeans(n_clusters=min(k, np.unique(feats[sample], axis=0).shape[0]), n_init=3, random_state=seed)
        km.fit(feats[sample])
        labels[idx] = km.predict(feats[idx])
    k = int(labels.max()) + 1

    # pass 2: each cluster's summed spectrum
    sums = np.zeros((k, c), np.float64)
    for rows, block in cube.iter_tiles(tile_bytes=tile_bytes):
        lab = labels[rows.start * w:rows.stop * w]
        x = block.reshape(-1, c)
        for j in np.unique(lab[lab >= 0]):
            sums[j] += x[lab == j].sum(axis=0, dtype=np.float64)
        step += 1
        yield Progress(step, total_steps, "maps")
    sums[:, ~channels] = 0.0

    # each cluster: its family spectra and background, and the (C, K) weighted projection
    ops = []
    for j in range(k):
        shapes, bg = fit_family_shapes(sums[j], basis, channels)
        names = list(shapes)
        a = np.stack([shapes[f] for f in names] + [bg], axis=1)[channels]
        # Poisson weights from the cluster's mean spectrum; a channel empty in the whole cluster
        # counts as one count in it (as in its own fit), not as a near-infinite weight
        wgt = max(float((labels == j).sum()), 1.0) / np.maximum(sums[j, channels], 1.0)
        aw = a * wgt[:, None]
        gram = a.T @ aw
        gram += np.eye(gram.shape[0]) * 1e-9 * np.trace(gram)
        out_cols = [names.index(ln) if ln in names else -1 for ln in lines]
        ops.append((aw.astype(np.float32), gram, out_cols))

    live = (cube.metadata or {}).get("live_time_s")
    try:
        live = float(np.asarray(live).ravel()[0]) if live is not None else None
    except (TypeError, ValueError, IndexError):
        live = None
    correct = pileup_time_s is not None and pileup_time_s > 0 and live is not None and live > 0

    # pass 3: every pixel with its cluster's spectra
    out = np.zeros((h * w, len(lines)), np.float32)
    for rows, block in cube.iter_tiles(tile_bytes=tile_bytes):
        base = rows.start * w
        lab = labels[base:rows.stop * w]
        x = block.reshape(-1, c)
        for j in np.unique(lab[lab >= 0]):
            sel = np.flatnonzero(lab == j)
            aw, gram, out_cols = ops[j]
            rhs = x[sel][:, channels].astype(np.float32) @ aw
            sol = _nonneg_solve(gram, rhs.astype(np.float64))
            for i, col in enumerate(out_cols):
                if col >= 0:
                    out[base + sel, i] = sol[:, col]
        step += 1
        yield Progress(step, total_steps, "maps")
    if correct:
        # a fraction rate x tau of the events pair up, each pair taking two photons from the peaks
        frac = np.minimum(totals / live * pileup_time_s, 0.25)
        out /= (1.0 - 2.0 * frac)[:, None].astype(np.float32)
    if labels_out is not None:
        labels_out.append(labels.reshape(h, w))
    if notes is not None:
        notes.append(f"per-cluster fit: {k} clusters of similar pixels, each with its own line ratios and background"
                     + ("; net counts corrected for pile-up" if correct else ""))
    return {ln: np.ascontiguousarray(out[:, i].reshape(h, w)) for i, ln in enumerate(lines)}
