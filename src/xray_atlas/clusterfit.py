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

__all__ = ["ClusterFit", "family_groups", "fit_family_shapes", "iter_cluster_fit_maps", "iter_cluster_fit_inputs",
           "PILEUP_TIME_S"]

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
    descent; each round solves the pixels that still have negatives at once, their dropped
    columns replaced by identity rows)."""
    n, k = rhs.shape
    out = np.linalg.solve(gram, rhs.T).T if k else rhs.copy()
    active = np.ones((n, k), bool)
    eye = np.eye(k)
    for _ in range(rounds):
        bad = (out < 0) & active
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size == 0:
            break
        active[rows] &= ~bad[rows]
        m = active[rows].astype(np.float64)  # (R, K)
        g = gram[None] * m[:, :, None] * m[:, None, :] + eye[None] * (1.0 - m)[:, :, None]
        out[rows] = np.linalg.solve(g, (rhs[rows] * m)[..., None])[..., 0] * m
    return np.maximum(out, 0.0)


class ClusterFit:
    """The per-cluster fit of one cube, tile by tile: :meth:`iter_prepare` learns the clusters
    and their spectra from a sample of the cube's tiles, then :meth:`tile` fits any tile's
    pixels. Calibrated cubes only.

    Parameters
    ----------
    cube : SpectralCube
    lines : tuple of str
        The line families whose net counts :meth:`tile` returns (of the 44 prior families).
    n_clusters : int
        Clusters of k-means on the pixels' least-squares shares (fewer if there are fewer
        distinct pixels).
    min_counts : float
        Counts a cluster should hold (fewer clusters for a faint scan).
    sample_pixels : int
        Pixels (whole tiles of them, evenly spread) that the clusters, their spectra and their
        mean fits are learnt from; every pixel is fitted.
    pileup_time_s : float or None
        Pulse-pair resolving time for the pile-up correction, applied when the cube's
        metadata states ``live_time_s`` per pixel; None turns it off.
    """

    def __init__(self, cube: SpectralCube, lines: tuple[str, ...], *, n_clusters: int = 12, min_counts: float = 5e5,
                 sample_pixels: int = 60_000, pileup_time_s: float | None = PILEUP_TIME_S,
                 tile_bytes: int = TILE_BYTES, seed: int = 0) -> None:
        from .models.prior import INSTRUMENT_DEFAULTS, PRIOR_FAMILIES, instrument_from_metadata
        from .models.spectral import _lsq_operator
        from .preprocess import LOW_KEV

        if not cube.calibrated:
            raise XrayAtlasError("the per-cluster fit needs an energy calibration and this cube has none",
                                 path=cube.path)
        if not (isinstance(n_clusters, (int, np.integer)) and n_clusters >= 1):
            raise XrayAtlasError(f"n_clusters={n_clusters!r} must be a positive integer")
        unknown = [ln for ln in lines if ln not in PRIOR_FAMILIES]
        if unknown:
            raise XrayAtlasError(f"lines: {', '.join(unknown)} not among the physics engine's families")
        self.cube, self.lines, self.n_clusters, self.min_counts = cube, tuple(lines), int(n_clusters), min_counts
        self.tile_bytes, self.seed = tile_bytes, seed
        c = cube.n_channels
        e = np.asarray(cube.energy, np.float64)
        gain = float(e[1] - e[0])
        inst = instrument_from_metadata(cube.metadata)
        self.channels = e >= LOW_KEV  # the detector's noise peak lies below (preprocess.LOW_KEV)
        self.basis = _Basis(c, float(e[0]), gain, inst)
        _, full, fams = _lsq_operator(self.lines, PRIOR_FAMILIES, c,
                                      {**INSTRUMENT_DEFAULTS, **inst, "offset_kev": float(e[0]), "gain_kev": gain}, 0.75)
        self._shares = full[:, :len(fams)].astype(np.float32)
        self._shares[~self.channels] = 0.0
        self._project = np.concatenate([self._shares, self.channels.astype(np.float32)[:, None]], axis=1)
        n_tiles = -(-cube.height // cube.tile_rows(tile_bytes))
        self.every = max(1, min(n_tiles, int(n_tiles * cube.tile_rows(tile_bytes) * cube.width // max(sample_pixels, 1))))
        self.n_sampled = len(range(0, n_tiles, self.every))
        self.n_tiles = n_tiles
        live = (cube.metadata or {}).get("live_time_s")
        try:
            live = float(np.asarray(live).ravel()[0]) if live is not None else None
        except (TypeError, ValueError, IndexError):
            live = None
        self.pileup = pileup_time_s / live if pileup_time_s and live and live > 0 else 0.0  # per count
        self.k = 0
        self.cluster_fits: np.ndarray | None = None  # (k, K) mean per-pixel fit shares, with means=True

    @property
    def n_steps(self) -> int:
        """Tiles :meth:`iter_prepare` reads (two or three passes over the sampled tiles)."""
        return 3 * self.n_sampled

    def _features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # (N, C) float32 counts -> k-means features (sqrt of each family's share), totals (N,)
        both = x @ self._project  # the families' least-squares values and, last, the total
        totals = both[:, -1]
        return np.sqrt(np.maximum(both[:, :-1], 0.0) / np.maximum(totals[:, None], 1.0)), totals

    def _sampled(self):
        for k, (rows, block) in enumerate(self.cube.iter_tiles(tile_bytes=self.tile_bytes, every=self.every)):
            yield k, block.reshape(-1, self.cube.n_channels).astype(np.float32)

    def iter_prepare(self, *, means: bool = False) -> Generator[Progress, None, None]:
        """Learn the clusters (pass 1), each cluster's family spectra and background (pass 2)
        and, with ``means``, each cluster's mean per-pixel fit of all 44 families (pass 3),
        from the sampled tiles, yielding :class:`Progress` per tile (of :attr:`n_steps`)."""
        from sklearn.cluster import KMeans

        n, step = self.n_steps, 0
        feats, totals = [], []
        for _, x in self._sampled():
            f, t = self._features(x)
            feats.append(f)
            totals.append(t)
            step += 1
            yield Progress(step, n, "maps")
        feats, totals = np.concatenate(feats), np.concatenate(totals)
        lit = totals > 0
        # a cluster needs the counts to fit its own line ratios: fewer clusters for a faint scan,
        # else k-means splits like pixels by their noise and each fit follows that noise
        share = self.cube.height * self.cube.width / max(len(totals), 1)
        k = int(min(self.n_clusters, max(lit.sum(), 1), max(totals.sum() * share // self.min_counts, 1)))
        self._km = None
        if lit.any():
            rng = np.random.default_rng(self.seed)
            idx = np.flatnonzero(lit)
            sample = idx if idx.size <= 50_000 else rng.choice(idx, 50_000, replace=False)
            self._km = KMeans(n_clusters=min(k, np.unique(feats[sample], axis=0).shape[0]), n_init=3,
                              random_state=self.seed).fit(feats[sample])
        self.k = 0 if self._km is None else int(self._km.n_clusters)

        c = self.cube.n_channels
        sums, counts = np.zeros((self.k, c), np.float64), np.zeros(self.k)
        for _, x in self._sampled():
            lab, _ = self._labels(x)
            for j in np.unique(lab[lab >= 0]):
                sums[j] += x[lab == j].sum(axis=0, dtype=np.float64)
                counts[j] += float((lab == j).sum())
            step += 1
            yield Progress(step, n, "maps")
        sums[:, ~self.channels] = 0.0
        self._ops = []
        for j in range(self.k):
            shapes, bg = fit_family_shapes(sums[j], self.basis, self.channels)
            names = list(shapes)
            a = np.stack([shapes[f] for f in names] + [bg], axis=1)
            # Poisson weights from the cluster's mean spectrum; a channel empty in the whole cluster
            # counts as one count in it (as in its own fit), not as a near-infinite weight
            wgt = np.where(self.channels, max(counts[j], 1.0) / np.maximum(sums[j], 1.0), 0.0)
            aw = a * wgt[:, None]
            gram = a.T @ aw
            gram += np.eye(gram.shape[0]) * 1e-9 * np.trace(gram)
            self._ops.append((aw.astype(np.float32), gram, names))

        if means:
            from .models.prior import PRIOR_FAMILIES

            fits, tots = np.zeros((self.k, len(PRIOR_FAMILIES))), np.zeros(self.k)
            for _, x in self._sampled():
                lab, t = self._labels(x)
                values = self._fit(x, lab, t, PRIOR_FAMILIES)
                for j in np.unique(lab[lab >= 0]):
                    fits[j] += values[lab == j].sum(axis=0, dtype=np.float64)
                    tots[j] += t[lab == j].sum(dtype=np.float64)
                step += 1
                yield Progress(step, n, "maps")
            self.cluster_fits = (fits / np.maximum(tots, 1.0)[:, None]).astype(np.float32)  # shares of the counts
        else:
            step += self.n_sampled
            yield Progress(step, n, "maps")

    def _labels(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # (N, C) float32 counts -> (N,) cluster (-1 for pixels without counts), (N,) totals
        f, t = self._features(x)
        lab = np.full(x.shape[0], -1, np.int64)
        lit = t > 0
        if self._km is not None and lit.any():
            lab[lit] = self._km.predict(f[lit])
        return lab, t

    def _fit(self, x: np.ndarray, lab: np.ndarray, totals: np.ndarray, lines) -> np.ndarray:
        # (N, C) float32 counts, their clusters and totals -> (N, len(lines)) net counts
        out = np.zeros((x.shape[0], len(lines)), np.float32)
        for j in np.unique(lab[lab >= 0]):
            sel = np.flatnonzero(lab == j)
            aw, gram, names = self._ops[j]
            sol = _nonneg_solve(gram, (x[sel] @ aw).astype(np.float64))
            for i, ln in enumerate(lines):
                if ln in names:
                    out[sel, i] = sol[:, names.index(ln)]
        if self.pileup:
            # a fraction rate x tau of the events pair up, each pair taking two photons from the peaks
            out /= (1.0 - 2.0 * np.minimum(totals * self.pileup, 0.25))[:, None].astype(np.float32)
        return out

    def tile(self, block: np.ndarray, *, inputs: bool = False):
        """Fit the pixels of a tile (..., C): (N, lines) float32 net counts and (N,) clusters;
        with ``inputs``, also the (N, 2K) inputs of the ``fit-mlp`` model (the pixel's fit of
        the 44 families, then its cluster's mean fit scaled to the pixel's counts)."""
        from .models.prior import PRIOR_FAMILIES

        x = np.asarray(block, dtype=np.float32).reshape(-1, self.cube.n_channels)  # float32 tiles are not copied
        lab, totals = self._labels(x)
        if not inputs:
            return self._fit(x, lab, totals, self.lines), lab
        allfit = self._fit(x, lab, totals, PRIOR_FAMILIES)
        cluster = np.zeros_like(allfit)
        lit = lab >= 0
        cluster[lit] = self.cluster_fits[lab[lit]] * totals[lit, None]
        cols = [PRIOR_FAMILIES.index(ln) for ln in self.lines]
        return allfit[:, cols], lab, np.concatenate([allfit, cluster], axis=1)

    def note(self) -> str:
        return (f"per-cluster fit: {self.k} clusters of similar pixels, each with its own line ratios and background"
                + ("; net counts corrected for pile-up" if self.pileup else ""))


def iter_cluster_fit_maps(cube: SpectralCube, lines: tuple[str, ...], *, tile_bytes: int = TILE_BYTES,
                          notes: list | None = None, labels_out: list | None = None,
                          **kw) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Net counts of ``lines`` for every pixel of a calibrated ``cube`` by the per-cluster fit
    (module docstring; options of :class:`ClusterFit`). Yields :class:`Progress` per tile
    read and returns line -> (H, W) float32.

    Parameters
    ----------
    notes : list, optional
        Receives one-line remarks (clusters, whether pile-up was corrected).
    labels_out : list, optional
        Receives the (H, W) int cluster of every pixel (-1: no counts).
    """
    fit = ClusterFit(cube, lines, tile_bytes=tile_bytes, **kw)
    total = fit.n_steps + fit.n_tiles
    yield Progress(0, total, "maps")
    for p in fit.iter_prepare():
        yield Progress(p.done, total, "maps")
    h, w = cube.height, cube.width
    out = np.zeros((h * w, len(lines)), np.float32)
    labels = np.full(h * w, -1, np.int64)
    for k, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes)):
        sl = slice(rows.start * w, rows.stop * w)
        out[sl], labels[sl] = fit.tile(block)
        yield Progress(fit.n_steps + k + 1, total, "maps")
    if labels_out is not None:
        labels_out.append(labels.reshape(h, w))
    if notes is not None:
        notes.append(fit.note())
    return {ln: np.ascontiguousarray(out[:, i].reshape(h, w)) for i, ln in enumerate(lines)}


def iter_cluster_fit_inputs(cube: SpectralCube, *, tile_bytes: int = TILE_BYTES, notes: list | None = None,
                            labels_out: list | None = None, **kw) -> Generator[Progress, None, np.ndarray]:
    """What the ``fit-mlp`` map model reads beside each pixel's counts, for the whole cube:
    (H * W, 2 K) float32 (:meth:`ClusterFit.tile` with ``inputs``). Options as
    :func:`iter_cluster_fit_maps`."""
    from .models.prior import PRIOR_FAMILIES

    fit = ClusterFit(cube, PRIOR_FAMILIES[:1], tile_bytes=tile_bytes, **kw)
    total = fit.n_steps + fit.n_tiles
    yield Progress(0, total, "maps")
    for p in fit.iter_prepare(means=True):
        yield Progress(p.done, total, "maps")
    h, w = cube.height, cube.width
    out = np.zeros((h * w, 2 * len(PRIOR_FAMILIES)), np.float32)
    labels = np.full(h * w, -1, np.int64)
    for k, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes)):
        sl = slice(rows.start * w, rows.stop * w)
        _, labels[sl], out[sl] = fit.tile(block, inputs=True)
        yield Progress(fit.n_steps + k + 1, total, "maps")
    if labels_out is not None:
        labels_out.append(labels.reshape(h, w))
    if notes is not None:
        notes.append(fit.note())
    return out
