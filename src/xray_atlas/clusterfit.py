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

A learnt model that corrects the fit (``maps-fit``) is held within the fit's standard errors
(:class:`FitHold`): the fit's values are physics, the correction was learnt on paintings.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import NamedTuple

import numpy as np

from .cube import TILE_BYTES, Progress, SpectralCube
from .errors import XrayAtlasError

__all__ = [
    "ClusterFit",
    "FitHold",
    "HOLD_SE",
    "TileFit",
    "family_groups",
    "fit_family_shapes",
    "iter_cluster_fit_maps",
    "iter_cluster_fit_inputs",
    "PILEUP_TIME_S",
]

#: Pulse-pair resolving time (s) assumed for the pile-up correction: the physics engine's
#: detector (:class:`xray_atlas.physics.detector.Detector`), typical of SDD pile-up rejectors.
PILEUP_TIME_S = 1e-7

#: Standard errors of the per-cluster fit within which :class:`FitHold` keeps a learnt map
#: model, and the calibration drift and relative peak-width error whose effect on each line
#: it allows beside the Poisson errors (chosen on the held-out paintings of
#: benchmarks/eval_maps.py, the fresh paintings of tests/models/test_zoo.py and the M6
#: sample of benchmarks/real_maps.py; the figures are in docs/maps.md).
HOLD_SE = 2.0
DRIFT_EV = 10.0
DRIFT_WIDTH = 0.1

#: A cluster's pixels are expected to hold at most this many times its mean pixel's counts in any
#: channel, for the reduced chi-square's split of the channels (:meth:`ClusterFit._chi2`); a
#: brighter pixel is computed channel by channel instead (the same value, more slowly).
PEAK_HEADROOM = 4.0


def family_groups(family: str, instrument, *, gap_kev: float = 0.3) -> list[tuple[np.ndarray, float]]:
    """(spectrum (C,) of one net count, share of the family's net counts in a thin sample) of
    each group of ``family``'s lines (lines closer than ``gap_kev`` share a group, with their
    thin-sample ratios), for ``instrument`` (a :class:`~xray_atlas.physics.spectra.Instrument`).
    Empty if the tube excites none."""
    from .physics.lines import atomic_number, parse_line_family
    from .physics.spectra import line_cross_sections

    sym, fam = parse_line_family(family)
    e0, flux = instrument.excitation(de=0.1)
    rows = sorted(
        (e, float(np.sum(flux * tau)))
        for f, _, e, tau in line_cross_sections(atomic_number(sym), tuple(np.round(e0, 6)))
        if f == fam
    )
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
    """The thin family spectra, their line groups and the background bumps of one instrument,
    for the prior families and any ``extra`` ones (families of any element xraylib knows)."""

    def __init__(
        self,
        n_channels: int,
        offset_kev: float,
        gain_kev: float,
        instrument: dict,
        extra: tuple[str, ...] = (),
        omit: tuple[str, ...] = (),
    ) -> None:
        from .models.prior import INSTRUMENT_DEFAULTS, PRIOR_FAMILIES, background_basis, instrument_for, pure_matrix

        instrument = {**INSTRUMENT_DEFAULTS, **instrument, "offset_kev": offset_kev, "gain_kev": gain_kev}
        inst = instrument_for(n_channels=n_channels, **instrument)
        # the prior's first, in its order
        self.families = tuple(f for f in dict.fromkeys((*PRIOR_FAMILIES, *extra)) if f not in omit)
        self.thin = pure_matrix(self.families, n_channels=n_channels, **instrument).astype(np.float64)
        groups, owner, shares = [], [], []
        for f in self.families:
            for g, share in family_groups(f, inst):
                groups.append(g)
                owner.append(f)
                shares.append(share)
        self.groups = np.stack(groups, axis=1)
        self.thin_shares = np.array(shares)
        self.owner = np.array(owner)
        self.background = background_basis(n_channels, offset_kev, gain_kev).astype(np.float64)
        e = offset_kev + gain_kev * np.arange(n_channels)
        self.gain_kev = gain_kev
        self.sigma_channels = inst.detector.sigma_kev(np.maximum(e, 0.1)) / gain_kev  # peak width, in channels


def fit_family_shapes(
    spectrum: np.ndarray,
    basis: _Basis,
    channels: np.ndarray,
    *,
    min_share: float = 1e-3,
    trace_share: float = 3e-4,
    ratio_sd: float = 0.3,
    errors: dict | None = None,
    amounts: dict | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The family spectra (own line ratios, one net count each) and the background shape
    (unit sum) of a summed ``spectrum`` (C,), fitted on the boolean ``channels``; ``errors``,
    if given, receives each family's standard error of its net counts in this fit, the line
    ratios free within their prior (so a family whose line can trade counts with another
    family's line, within that prior, gets the error of that trade); ``amounts``, if given,
    receives each returned family's net counts in ``spectrum``.

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
    if amounts is not None:
        for f in shapes:
            m = basis.owner == f
            amounts[f] = float(amps[m].sum()) if f in present else float(sol[k + others.index(basis.families.index(f))])
    if errors is not None:
        # the weighted design's rows are in standard deviations: its inverse normal matrix is the
        # covariance of the amplitudes; a family's net counts are the sum of its groups'
        cov = np.linalg.pinv(design.T @ design, rcond=1e-10, hermitian=True)
        owner = np.concatenate([basis.owner[free], [basis.families[j] for j in others]])
        for f in shapes:
            m = np.flatnonzero(owner == f)
            errors[f] = float(np.sqrt(max(cov[np.ix_(m, m)].sum(), 0.0)))
    bg = basis.background @ sol[k + len(others) :]
    return shapes, bg / max(float(bg.sum()), 1e-12)


def nonneg_solve(gram: np.ndarray, rhs: np.ndarray, *, rounds: int = 8, free: list | None = None) -> np.ndarray:
    """Least squares from normal equations (gram (K, K), rhs (N, K)) with negative
    coefficients dropped and the rest re-solved until none is negative (an active-set
    descent; each round solves the pixels that still have negatives at once, their dropped
    columns replaced by identity rows)."""
    n, k = rhs.shape
    out = np.linalg.solve(gram, rhs.T).T if k else rhs.copy()
    if free is not None:  # the unconstrained solution too (unbiased, unlike the non-negative one)
        free.append(out.copy())
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


_BLAS: list = []


def _one_blas_thread():
    """A context in which BLAS runs on one thread: the chi-square's small products (an (n, m) by
    (m, P) product, matrix-vector products) took five times as long with OpenBLAS waking its
    second thread for each (0.27 s against 0.05 s a pass over the demo painting, 2 cores)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


class TileFit(NamedTuple):
    """The per-cluster fit of one tile's N pixels (:meth:`ClusterFit.tile`)."""

    values: np.ndarray  #: (N, lines) float32 net counts, non-negative
    labels: np.ndarray  #: (N,) cluster of each pixel (-1: no counts)
    totals: np.ndarray  #: (N,) counts above the noise peak
    inputs: np.ndarray | None = None  #: (N, 2 K) the ``fit-mlp`` model's inputs beside the counts
    free: np.ndarray | None = None  #: (N, lines) the unconstrained least-squares values (unbiased)
    errors: np.ndarray | None = None  #: (N, lines) their Poisson standard errors
    #: (N,) float32 reduced chi-square of each pixel's fit (NaN: no counts, or no more than its parameters)
    chi2: np.ndarray | None = None


class ClusterFit:
    """The per-cluster fit of one cube, tile by tile: :meth:`iter_prepare` learns the clusters
    and their spectra from a sample of the cube's tiles, then :meth:`tile` fits any tile's
    pixels. Calibrated cubes only.

    Parameters
    ----------
    cube : SpectralCube
    lines : tuple of str
        The line families whose net counts :meth:`tile` returns: any family xraylib knows;
        those beyond the 44 prior families join the fit of every cluster
        (:attr:`lines` may be changed after :meth:`iter_prepare`).
    n_clusters : int
        Clusters of k-means on the pixels' least-squares shares (fewer if there are fewer
        distinct pixels).
    min_counts : float
        Counts a cluster should hold (fewer clusters for a faint scan).
    sample_pixels : int
        Pixels (stripes of whole rows, evenly spread) that the clusters, their spectra and
        their mean fits are learnt from; every pixel is fitted.
    pileup_time_s : float or None
        Pulse-pair resolving time for the pile-up correction, applied when the cube's
        metadata states ``live_time_s`` per pixel; None turns it off.
    omit : tuple of str
        Families left out of the fit (a what-if: a family the fit lacks shows in its residual
        and in its reduced chi-square, :attr:`TileFit.chi2`); none of ``lines``.
    instrument : dict, optional
        The scanner's prior parameters (``anode``, ``tube_kv``, ``polycapillary``,
        ``fwhm_mnka_ev``: :data:`~xray_atlas.models.prior.INSTRUMENT_DEFAULTS`) when known
        otherwise, e.g. a map model adapted to it; what the cube's metadata states comes first.
    """

    def __init__(
        self,
        cube: SpectralCube,
        lines: tuple[str, ...],
        *,
        n_clusters: int = 12,
        min_counts: float = 5e5,
        sample_pixels: int = 30_000,
        pileup_time_s: float | None = PILEUP_TIME_S,
        tile_bytes: int = TILE_BYTES,
        seed: int = 0,
        omit: tuple[str, ...] = (),
        instrument: dict | None = None,
    ) -> None:
        from .models.prior import INSTRUMENT_DEFAULTS, PRIOR_FAMILIES, instrument_from_metadata, lsq_operator
        from .physics.lines import parse_line_family
        from .preprocess import LOW_KEV

        if not cube.calibrated:
            raise XrayAtlasError(
                "the per-cluster fit needs an energy calibration and this cube has none", path=cube.path
            )
        if not (isinstance(n_clusters, (int, np.integer)) and n_clusters >= 1):
            raise XrayAtlasError(f"n_clusters={n_clusters!r} must be a positive integer")
        lines = tuple("-".join(parse_line_family(ln, parameter="lines")) for ln in lines)
        if isinstance(omit, str):
            omit = (omit,)
        omit = tuple("-".join(parse_line_family(ln, parameter="omit")) for ln in omit)
        both = [ln for ln in lines if ln in omit]
        if both:
            raise XrayAtlasError(f"omit: {', '.join(both)} cannot be left out of the fit and mapped by it (lines)")
        self.cube, self.n_clusters, self.min_counts = cube, int(n_clusters), min_counts
        self.tile_bytes, self.seed = tile_bytes, seed
        c = cube.n_channels
        e = np.asarray(cube.energy, np.float64)
        gain = float(e[1] - e[0])
        unknown = sorted(set(instrument or {}) - set(INSTRUMENT_DEFAULTS))
        if unknown:
            raise XrayAtlasError(
                f"instrument: no parameter(s) {', '.join(unknown)}; it has {', '.join(INSTRUMENT_DEFAULTS)}"
            )
        inst = {**(instrument or {}), **instrument_from_metadata(cube.metadata)}
        self.channels = e >= LOW_KEV  # the detector's noise peak lies below (preprocess.LOW_KEV)
        # families beyond the prior's join the fit of every cluster, so that they are fitted
        # beside their neighbours' lines instead of being read into them
        self.basis = _Basis(
            c, float(e[0]), gain, inst, extra=tuple(ln for ln in lines if ln not in PRIOR_FAMILIES), omit=omit
        )
        self.lines = lines
        # the k-means features: least-squares shares of all the basis families, whichever lines
        # are asked for, so that the clusters do not depend on them
        fams = self.basis.families
        _, full, _ = lsq_operator(
            fams, fams, c, {**INSTRUMENT_DEFAULTS, **inst, "offset_kev": float(e[0]), "gain_kev": gain}, 0.75
        )
        self._shares = full[:, : len(fams)].astype(np.float32)
        self._shares[~self.channels] = 0.0
        self._project = np.concatenate([self._shares, self.channels.astype(np.float32)[:, None]], axis=1)
        self.n_tiles = -(-cube.height // cube.tile_rows(tile_bytes))
        # the sample: the thinnest stripes of rows the storage reads at once (a chunk row, or
        # one row), evenly spread, so that a small area of paint falls in it more often than
        # in a sample of whole tiles of the same size
        self._stripe_bytes = cube.width * c * cube.dtype.itemsize
        stripe = cube.tile_rows(self._stripe_bytes)
        n_stripes = -(-cube.height // stripe)
        self.every = max(1, min(n_stripes, int(n_stripes * stripe * cube.width // max(sample_pixels, 1))))
        self.n_sampled = len(range(0, n_stripes, self.every))
        live = cube.live_time_s  # the median pixel's, when the file gives each pixel's
        live = float(np.median(cube.live_time_map())) if live is not None else None
        self.pileup = pileup_time_s / live if pileup_time_s and live and live > 0 else 0.0  # per count
        self.k = 0
        self.cluster_fits: np.ndarray | None = None  # (k, K) mean per-pixel fit shares, with means=True
        self.cluster_spectra = np.zeros((0, c))
        self.cluster_net = np.zeros((0, len(self.basis.families)))

    def __getstate__(self) -> dict:
        # sent to another process (a block of rows on a dask worker) without its cube, an open
        # file: the receiver sets ``cube`` to its own opening of the same cube
        return {**self.__dict__, "cube": None}

    @property
    def lines(self) -> tuple[str, ...]:
        """The line families whose net counts :meth:`tile` returns; may be changed after
        :meth:`iter_prepare` to any of the fit's families (``basis.families``: the 44 prior
        families and those given when the fit was made)."""
        return self._lines

    @lines.setter
    def lines(self, lines: tuple[str, ...]) -> None:
        unknown = [ln for ln in lines if ln not in self.basis.families]
        if unknown:
            raise XrayAtlasError(
                f"lines: {', '.join(unknown)} not among this fit's families (give them when the fit is made)"
            )
        self._lines = tuple(lines)

    @property
    def n_steps(self) -> int:
        """Steps of :meth:`iter_prepare`: three passes over the sampled stripes (the third
        skipped in one step without ``means``)."""
        return 3 * self.n_sampled

    def _features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # (N, C) float32 counts -> k-means features (sqrt of each family's share), totals (N,)
        both = x @ self._project  # the families' least-squares values and, last, the total
        totals = both[:, -1]
        return np.sqrt(np.maximum(both[:, :-1], 0.0) / np.maximum(totals[:, None], 1.0)), totals

    def _sampled(self):
        for k, (_rows, block) in enumerate(self.cube.iter_tiles(tile_bytes=self._stripe_bytes, every=self.every)):
            yield k, block.reshape(-1, self.cube.n_channels).astype(np.float32)

    def iter_prepare(self, *, means: bool = False) -> Generator[Progress, None, None]:
        """Learn the clusters (pass 1), each cluster's family spectra and background (pass 2)
        and, with ``means``, each cluster's mean per-pixel fit of all 44 families (pass 3),
        from the sampled stripes, yielding :class:`Progress` per stripe (of :attr:`n_steps`)."""
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
            self._km = KMeans(
                n_clusters=min(k, np.unique(feats[sample], axis=0).shape[0]), n_init=3, random_state=self.seed
            ).fit(feats[sample])
        self.k = 0 if self._km is None else int(self._km.n_clusters)
        # the sampled pixels' clusters, kept for the next passes over the same tiles
        labels = np.full(len(totals), -1, np.int64)
        if self._km is not None:
            labels[lit] = self._km.predict(feats[lit])
        del feats

        def sampled_labelled():
            at = 0
            for _, x in self._sampled():
                yield x, labels[at : at + len(x)], totals[at : at + len(x)]
                at += len(x)

        c = self.cube.n_channels
        sums, counts = np.zeros((self.k, c), np.float64), np.zeros(self.k)
        for x, lab, _ in sampled_labelled():
            member = self._members(lab)
            sums += member @ x
            counts += member.sum(axis=1)
            step += 1
            yield Progress(step, n, "maps")
        sums[:, ~self.channels] = 0.0
        self.cluster_spectra = sums  # (k, C): the sampled pixels' summed spectrum of each cluster
        self._ops = []
        self._shapes: list[np.ndarray] = []  # per cluster (C, names + background): one net count each, unit background
        self._chi_ops: list[tuple] = []  # per cluster: what the reduced chi-square's split of the channels needs
        self._var = np.zeros((self.k, len(self.basis.families)))
        self._mean_total = np.ones(self.k)
        self._shape_error = np.zeros((self.k, len(self.basis.families)))  # per count of the cluster
        self.cluster_net = np.zeros((self.k, len(self.basis.families)))  # net counts in cluster_spectra
        for j in range(self.k):
            shape_errors: dict = {}
            net: dict = {}
            shapes, bg = fit_family_shapes(sums[j], self.basis, self.channels, errors=shape_errors, amounts=net)
            for f, v in net.items():
                self.cluster_net[j, self.basis.families.index(f)] = v
            names = list(shapes)
            a = np.stack([shapes[f] for f in names] + [bg], axis=1)
            # Poisson weights from the cluster's mean spectrum; a channel empty in the whole cluster
            # counts as one count in it (as in its own fit), not as a near-infinite weight
            wgt = np.where(self.channels, max(counts[j], 1.0) / np.maximum(sums[j], 1.0), 0.0)
            aw = a * wgt[:, None]
            gram = a.T @ aw
            gram += np.eye(gram.shape[0]) * 1e-9 * np.trace(gram)
            self._ops.append((aw.astype(np.float32), gram, names))
            self._shapes.append(a.astype(np.float32))
            self._chi_ops.append(self._chi2_split(a, aw, gram, sums[j], counts[j]))
            # each family's variance for a pixel of the cluster's mean counts: the fitted ones' from
            # this design; the others' as if their thin spectra were fitted beside it
            missing = [i for i, f in enumerate(self.basis.families) if f not in names]
            full = np.concatenate([a, self.basis.thin[:, missing]], axis=1)
            big = full.T @ (full * wgt[:, None])
            big += np.eye(big.shape[0]) * 1e-9 * np.trace(big)
            var = np.empty(len(self.basis.families))
            var[[self.basis.families.index(f) for f in names]] = np.diag(np.linalg.inv(gram))[: len(names)]
            var[missing] = np.diag(np.linalg.inv(big))[len(names) + 1 :]
            self._var[j] = np.maximum(var, 0.0)
            self._mean_total[j] = float(sums[j].sum()) / max(counts[j], 1.0)
            drift = self._drift_errors(a, aw, gram, sums[j])
            for f, e in shape_errors.items():
                i = names.index(f)
                self._shape_error[j, self.basis.families.index(f)] = np.hypot(e, drift[i]) / max(
                    float(sums[j].sum()), 1.0
                )

        if means:
            from .models.prior import PRIOR_FAMILIES

            fits, tots = np.zeros((self.k, len(PRIOR_FAMILIES))), np.zeros(self.k)
            for x, lab, t in sampled_labelled():
                member = self._members(lab)
                fits += member @ self._fit(x, lab, t, PRIOR_FAMILIES)
                tots += member @ t
                step += 1
                yield Progress(step, n, "maps")
            self.cluster_fits = (fits / np.maximum(tots, 1.0)[:, None]).astype(np.float32)  # shares of the counts
        else:
            step += self.n_sampled
            yield Progress(step, n, "maps")

    def evidence(self) -> tuple[np.ndarray, np.ndarray]:
        """How surely each family is in each cluster (after :meth:`iter_prepare`): (k, F) net
        counts of the families of ``basis.families`` in each cluster's summed spectrum over
        their standard error (Poisson noise, the line ratios free within their prior, a
        calibration drift of ``DRIFT_EV`` and a peak-width error of ``DRIFT_WIDTH``), and
        (k, F) their share of the cluster's counts; 0 for the families a cluster's fit left
        out (below 0.03 % of its counts)."""
        totals = self.cluster_spectra.sum(axis=1)
        se = self._shape_error * totals[:, None] if self.k else np.zeros_like(self.cluster_net)
        z = np.divide(self.cluster_net, se, out=np.zeros_like(self.cluster_net), where=se > 0)
        return z, self.cluster_net / np.maximum(totals, 1.0)[:, None]

    def _members(self, lab: np.ndarray) -> np.ndarray:
        # (N,) clusters -> (k, N) float32 one-hot rows (a pixel without counts, -1, in none), so
        # that sums over each cluster's pixels are one matrix product
        return (lab[None, :] == np.arange(self.k)[:, None]).astype(np.float32)

    def _labels(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # (N, C) float32 counts -> (N,) cluster (-1 for pixels without counts), (N,) totals
        f, t = self._features(x)
        lab = np.full(x.shape[0], -1, np.int64)
        lit = t > 0
        if self._km is not None and lit.any():
            lab[lit] = self._km.predict(f[lit])
        return lab, t

    def _fit(
        self,
        x: np.ndarray,
        lab: np.ndarray,
        totals: np.ndarray,
        lines,
        *,
        free: np.ndarray | None = None,
        chi2: np.ndarray | None = None,
    ) -> np.ndarray:
        # (N, C) float32 counts, their clusters and totals -> (N, len(lines)) net counts; ``free``
        # (N, len(lines)) receives the unconstrained least-squares values, ``chi2`` (N,) each
        # pixel's reduced chi-square (NaN for a pixel without counts)
        out = np.zeros((x.shape[0], len(lines)), np.float32)
        if chi2 is not None:
            chi2[lab < 0] = np.nan
        for j in np.unique(lab[lab >= 0]):
            sel = np.flatnonzero(lab == j)
            aw, gram, names = self._ops[j]
            got: list = []
            xs = x[sel]
            if chi2 is None:
                xa = xs @ aw
            else:  # the products with the channels where every f < 1 come with the fit's own, in one pass
                both = xs @ self._chi_ops[j][0]
                xa, quiet = both[:, : aw.shape[1]], both[:, aw.shape[1] :]
            sol = nonneg_solve(gram, xa.astype(np.float64), free=got if free is not None else None)
            if chi2 is not None:
                with _one_blas_thread():
                    chi2[sel] = self._chi2(xs, sol, j, quiet)
            for i, ln in enumerate(lines):
                if ln in names:
                    out[sel, i] = sol[:, names.index(ln)]
                    if free is not None:
                        free[sel, i] = got[0][:, names.index(ln)]
        if self.pileup:
            lost = self._lost(totals)
            out /= lost
            if free is not None:
                free /= lost
        return out

    def tile(self, block: np.ndarray, *, inputs: bool = False, errors: bool = False, chi2: bool = False) -> TileFit:
        """Fit the pixels of a tile (..., C) (:class:`TileFit`); with ``inputs``, also the
        inputs of the ``fit-mlp`` model, with ``errors`` the unconstrained values and the
        standard errors that :class:`FitHold` needs, with ``chi2`` each pixel's reduced
        chi-square (:func:`xray_atlas.spectrumfit.reduced_chi2`)."""
        from .models.prior import PRIOR_FAMILIES

        x = np.asarray(block, dtype=np.float32).reshape(-1, self.cube.n_channels)  # float32 tiles are not copied
        lab, totals = self._labels(x)
        fams = self.basis.families
        cols = [fams.index(ln) for ln in self.lines]
        good = np.zeros(x.shape[0], np.float32) if chi2 else None
        if not inputs and not errors:
            return TileFit(self._fit(x, lab, totals, self.lines, chi2=good), lab, totals, chi2=good)
        free = np.zeros((x.shape[0], len(fams)), np.float32) if errors else None
        allfit = self._fit(x, lab, totals, fams, free=free, chi2=good)
        extra = None
        if inputs:  # the prior families only, in their order: what the fit-mlp model reads
            prior = allfit[:, : len(PRIOR_FAMILIES)]
            cluster = np.zeros_like(prior)
            lit = lab >= 0
            cluster[lit] = self.cluster_fits[lab[lit]] * totals[lit, None]
            extra = np.concatenate([prior, cluster], axis=1)
        if not errors:
            return TileFit(allfit[:, cols], lab, totals, extra, chi2=good)
        se = np.zeros((lab.size, len(cols)), np.float32)
        lit = lab >= 0
        se[lit] = np.sqrt(self._variance(lab[lit], totals[lit], cols))
        return TileFit(allfit[:, cols], lab, totals, extra, free[:, cols], se, good)

    def _chi2_split(self, a: np.ndarray, aw: np.ndarray, gram: np.ndarray, total: np.ndarray, n_pixels: float) -> tuple:
        # which channels a pixel of this cluster can lift to one expected count ("peak": its mean
        # pixel's fitted spectrum times PEAK_HEADROOM), and on the others ("quiet") the design
        # and its products: (aw beside a on the quiet channels (C, 2 m) float32, a on the peak
        # channels (P, m) float32, the peak channels' indices (P,), the quiet channels' column
        # sums (m,) and Gram matrix (m, m) and the peak channels' column sums (m,), float64)
        mean = np.maximum(np.linalg.solve(gram, aw.T @ total), 0.0) / max(float(n_pixels), 1.0)
        peak = self.channels & (a @ mean * PEAK_HEADROOM >= 1.0)
        quiet = np.where((self.channels & ~peak)[:, None], a, 0.0)
        both = np.ascontiguousarray(np.concatenate([aw, quiet], axis=1), dtype=np.float32)
        q64 = both[:, aw.shape[1] :].astype(np.float64)
        a_peak = a[peak].astype(np.float32)
        return (both, a_peak, np.flatnonzero(peak), q64.sum(axis=0), q64.T @ q64, a_peak.sum(axis=0, dtype=np.float64))

    def _chi2(self, x: np.ndarray, sol: np.ndarray, j: int, xq: np.ndarray) -> np.ndarray:
        # (n, C) counts of pixels of cluster j, their non-negative amplitudes (n, m) and the
        # products of the counts with the design on the quiet channels (n, m) -> (n,) reduced
        # chi-square over the fitted channels: spectrumfit.reduced_chi2 of the counts against
        # the fit, sum((x - f)^2 / max(f, 1)) / (sum(min(f, 1)) - parameters).
        #
        # Computed directly, f = a s on every channel of every pixel (an (n, C) product, then
        # five passes over it) took three times the fit's own time. On the quiet channels,
        # where every f < 1 (a and s are non-negative, so f <= a s_max), max(f, 1) = 1 and the
        # sums are quadratic in s: sum x^2 - 2 s.(a^T x) + s^T (a^T a) s and sum f = s.(column
        # sums of a); only the peak channels (13-19 % of the demo painting's) are computed channel
        # by channel: a fifth of the time (0.05 s against 0.22 s for the demo painting's 12,288
        # pixels, one thread), the same values to 1e-7. A pixel brighter than the split allows
        # is computed directly.
        both, a_peak, peak, colsum, gram_q, colsum_peak = self._chi_ops[j]
        m = sol.shape[1]
        s64 = np.asarray(sol, np.float64)
        if float((both[:, m:] @ s64.max(axis=0).astype(np.float32)).max(initial=0.0)) >= 1.0:
            return self._chi2_direct(x, sol, j)
        chi = np.zeros(x.shape[0])
        expect = s64 @ colsum - np.count_nonzero(sol > 0, axis=1)
        x2 = np.einsum("ij,ij->i", x[:, self._first :], x[:, self._first :]).astype(np.float64)  # every fitted channel
        # a float32 sum of squares is exact for whole counts while it stays under 2^24; above it
        # (a bright pixel) the quiet channels' sum is taken in float64
        big = np.flatnonzero(x2 >= 2.0**24)
        if peak.size:
            xp = np.take(x, peak, axis=1)  # 3.5 times faster than x[:, peak]
            f = sol.astype(np.float32) @ a_peak.T
            d = np.maximum(f, 1.0)
            # sum(min(f, 1)) = sum(f) + P - sum(max(f, 1)), sum(f) from the column sums
            expect += s64 @ colsum_peak + peak.size - d.sum(axis=1, dtype=np.float64)
            x2 -= np.einsum("ij,ij->i", xp, xp)  # exact where x2 is (the others are taken again below)
            f -= xp
            f *= f
            f /= d
            chi += f.sum(axis=1, dtype=np.float64)
        if big.size:
            xb = x[big].astype(np.float64)
            quiet = self.channels.astype(np.float64)
            quiet[peak] = 0.0
            x2[big] = np.einsum("ij,ij,j->i", xb, xb, quiet)
        chi += x2 - 2.0 * np.einsum("ij,ij->i", s64, xq.astype(np.float64)) + np.einsum("ij,jk,ik->i", s64, gram_q, s64)
        chi = np.maximum(chi, 0.0)  # rounding: a sum of squares
        return np.where(expect > 0, chi / np.maximum(expect, 1e-12), np.nan).astype(np.float32)

    def _chi2_direct(self, x: np.ndarray, sol: np.ndarray, j: int) -> np.ndarray:
        # :meth:`_chi2` channel by channel, for pixels brighter than its split allows
        from .spectrumfit import reduced_chi2

        lo = self._first
        fitted = sol.astype(np.float32) @ self._shapes[j][lo:].T
        return reduced_chi2(x[:, lo:], np.maximum(fitted, 0.0), n_parameters=np.count_nonzero(sol > 0, axis=1))

    @property
    def _first(self) -> int:
        # the first fitted channel (those below, the detector's noise peak, are not fitted)
        return int(np.argmax(self.channels)) if self.channels.any() else self.cube.n_channels

    def _drift_errors(self, a: np.ndarray, aw: np.ndarray, gram: np.ndarray, total: np.ndarray) -> np.ndarray:
        # how far each family's net counts in the cluster's summed spectrum ``total`` move when
        # the whole fitted spectrum shifts by DRIFT_EV or its peaks widen by DRIFT_WIDTH: a
        # trace beside a strong peak is then as uncertain as that peak's calibration
        model = a @ np.linalg.solve(gram, aw.T.astype(np.float64) @ total)
        slope = np.gradient(model)
        shift = slope * (DRIFT_EV / 1000.0 / self.basis.gain_kev)
        # a Gaussian's derivative in its width is sigma times its second derivative in energy
        widen = np.gradient(slope) * self.basis.sigma_channels * DRIFT_WIDTH
        moved = np.linalg.solve(gram, aw.T.astype(np.float64) @ np.stack([shift, widen], axis=1))
        return np.hypot(moved[:, 0], moved[:, 1])

    @property
    def shape_errors(self) -> np.ndarray:
        """(k, lines) standard error of each cluster's net counts of each line that comes from
        fitting its line shapes (:func:`fit_family_shapes`), per count of the cluster."""
        return self._shape_error[:, [self.basis.families.index(ln) for ln in self.lines]]

    def _variance(self, lab: np.ndarray, totals: np.ndarray, cols: list[int]) -> np.ndarray:
        # (N,) clusters (>= 0) and counts -> (N, len(cols)) variance of each pixel's net counts
        # of the families ``cols``: Poisson noise through the cluster's weighted fit, whose
        # covariance is the inverse normal matrix for a pixel of the cluster's mean counts and
        # scales with the pixel's counts, divided by the share of events pile-up keeps
        t = np.asarray(totals, np.float32)  # float32 throughout: the maps are float32
        scale = t / self._mean_total.astype(np.float32)[lab] / self._lost(t)[:, 0] ** 2
        return self._var[:, cols].astype(np.float32)[lab] * scale[:, None]

    def shrink(
        self,
        out: np.ndarray,
        labels: np.ndarray,
        totals: np.ndarray,
        *,
        shape: tuple[int, int] | None = None,
        size: int | None = None,
        band_pixels: int = 65536,
    ) -> int:
        """Shrink each pixel's values ``out`` (N, lines) of :attr:`lines`, in place, towards
        its cluster's mean by the share of the cluster's spread that is noise (empirical Bayes,
        the James-Stein estimator with each pixel's own Poisson variance): a pixel keeps
        ``tau2 / (tau2 + s2)`` of its departure from the mean, where ``s2`` is its variance
        from the fit (the errors of :meth:`tile`) and ``tau2`` the cluster's spread beyond the
        mean of those variances. One paint with little true variation is smoothed; a cluster
        that mixes unlike pixels keeps them. A cluster's total is kept (but for values that
        would fall below zero). ``labels`` (N,) are the pixels' clusters (-1: none, left
        alone), ``totals`` (N,) their counts. Returns the number of (cluster, line) pairs
        shrunk.

        Memory: bands of about ``band_pixels`` pixels are worked on at a time (two passes:
        each cluster's spread, then the shrinking), so that the temporaries do not grow with
        the cube; a band's 3 x 3 block means read the unshrunk values of the rows around it."""
        if size is not None:
            if not (isinstance(size, (int, np.integer)) and size >= 1 and size % 2):
                raise XrayAtlasError(f"size={size!r} must be a positive odd number of pixels or None")
            if shape is None or int(np.prod(shape)) != len(labels):
                raise XrayAtlasError(
                    f"shape={shape!r} must be the (H, W) of the {len(labels)} pixels when size is given"
                )
        labels = np.asarray(labels)
        if self.k == 0 or not np.any(labels >= 0):
            return 0
        h, w_ = (int(shape[0]), int(shape[1])) if size is not None else (len(labels), 1)
        r = size // 2 if size is not None else 0
        step = max(1, r, int(band_pixels) // w_)  # a band at least as high as the halo it leaves for the next
        bands = [(r0, min(r0 + step, h)) for r0 in range(0, h, step)]
        cols = [self.basis.families.index(ln) for ln in self.lines]
        n_lines = out.shape[1]
        lit_all = labels >= 0
        n = np.bincount(labels[lit_all], minlength=self.k).astype(np.float64)[: self.k]

        def sums(a: np.ndarray, lab: np.ndarray) -> np.ndarray:  # (m, lines) -> (k, lines) per-cluster sums
            return (self._members(lab) @ a).astype(np.float64)

        cluster_mean = None
        if size is None:  # the centre is the cluster's mean
            acc = np.zeros((self.k, n_lines))
            for r0, r1 in bands:
                sel = r0 + np.flatnonzero(lit_all[r0:r1])
                acc += sums(out[sel], labels[sel])
            cluster_mean = (acc / np.maximum(n, 1)[:, None]).astype(np.float32)

        def band(r0: int, r1: int, above: np.ndarray | None):
            # the lit pixels of rows r0-r1: flat indices, clusters, values, variances, centres,
            # the pixel's own share of its centre; ``above``: the unshrunk rows above r0
            sel = r0 * w_ + np.flatnonzero(lit_all[r0 * w_ : r1 * w_])
            lab, v = labels[sel], out[sel]
            noise = self._variance(lab, totals[sel], cols)
            if size is None:
                return sel, lab, v, noise, cluster_mean[lab], 0.0
            lo, hi = max(r0 - r, 0), min(r1 + r, h)
            vals = np.array(out[lo * w_ : hi * w_], np.float32).reshape(hi - lo, w_, n_lines)
            if above is not None and r0 > lo:
                vals[: r0 - lo] = above[above.shape[0] - (r0 - lo) :]
            labs = labels[lo * w_ : hi * w_].reshape(hi - lo, w_)
            vals[labs < 0] = 0.0
            full = np.pad(vals, ((r, r), (r, r), (0, 0)))
            lab2 = np.pad(labs, r, constant_values=-1)  # beyond the edge: no cluster
            m, s0 = r1 - r0, r0 - lo
            own = labs[s0 : s0 + m]
            acc = np.zeros((m, w_, n_lines), np.float32)
            cnt = np.zeros((m, w_), np.float32)
            for dy in range(size):  # one shifted view per offset: the cost does not grow with k
                for dx in range(size):
                    same = (lab2[s0 + dy : s0 + dy + m, dx : dx + w_] == own).astype(np.float32)
                    cnt += same
                    acc += full[s0 + dy : s0 + dy + m, dx : dx + w_] * same[..., None]
            ok = own.reshape(-1) >= 0
            cnt = cnt.reshape(-1)[ok]
            centre = acc.reshape(-1, n_lines)[ok] / cnt[:, None]
            return sel, lab, v, noise, centre, (1.0 / cnt)[:, None]

        spread, noise_sum, noise_own = (np.zeros((self.k, n_lines)) for _ in range(3))
        for r0, r1 in bands:
            sel, lab, v, noise, centre, extra = band(r0, r1, None)  # nothing shrunk yet
            d = v - centre
            spread += sums(d * d, lab)
            noise_sum += sums(noise, lab)
            noise_own += sums(noise * (1.0 - extra), lab)
        nn = np.maximum(n, 1)[:, None]
        tau2 = np.maximum(spread / nn - noise_own / nn, 0.0)
        tau2[n < 3] = np.inf  # too few pixels to tell spread from noise: left as they are
        above = None
        for r0, r1 in bands:
            sel, lab, v, noise, centre, _ = band(r0, r1, above)
            if r:  # the next band's block means read these rows as they were
                above = np.array(out[max(r1 - r, 0) * w_ : r1 * w_], np.float32).reshape(-1, w_, n_lines)
            d = v - centre
            t2 = tau2.astype(np.float32)[lab]
            with np.errstate(invalid="ignore", divide="ignore"):
                w = np.where(np.isinf(t2) | (noise <= 0), 1.0, t2 / (t2 + noise))  # noise 0: a family left out
            out[sel] = np.maximum(centre + w * d, 0.0)
        return int(np.count_nonzero(np.isfinite(tau2) & (noise_sum / nn > 0)))

    def _lost(self, totals: np.ndarray) -> np.ndarray:
        # (N,) -> (N, 1) share of the peaks' events kept: a fraction rate x tau of the events pair
        # up, each pair taking two photons from the peaks
        return (1.0 - 2.0 * np.minimum(totals * self.pileup, 0.25))[:, None].astype(np.float32)

    def note(self) -> str:
        return f"per-cluster fit: {self.k} clusters of similar pixels, each with its own line ratios and background" + (
            "; net counts corrected for pile-up" if self.pileup else ""
        )


def _iter_fit_cube(
    fit: ClusterFit, *, inputs: bool, notes: list | None, labels_out: list | None
) -> Generator[Progress, None, np.ndarray]:
    # prepare ``fit``, then fit every tile (of its tile_bytes) of its cube: yields Progress per
    # tile read and returns (H * W, lines) net counts, or with ``inputs`` the (H * W, 2 K)
    # inputs of the fit-mlp model
    cube = fit.cube
    total = fit.n_steps + fit.n_tiles
    yield Progress(0, total, "maps")
    for p in fit.iter_prepare(means=inputs):
        yield Progress(p.done, total, "maps")
    h, w = cube.height, cube.width
    out = np.zeros((h * w, 2 * len(fit.basis.families) if inputs else len(fit.lines)), np.float32)
    labels = np.full(h * w, -1, np.int64)
    for k, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=fit.tile_bytes)):
        sl = slice(rows.start * w, rows.stop * w)
        got = fit.tile(block, inputs=inputs)
        out[sl], labels[sl] = (got.inputs if inputs else got.values), got.labels
        yield Progress(fit.n_steps + k + 1, total, "maps")
    if labels_out is not None:
        labels_out.append(labels.reshape(h, w))
    if notes is not None:
        notes.append(fit.note())
    return out


def iter_cluster_fit_maps(
    cube: SpectralCube,
    lines: tuple[str, ...],
    *,
    tile_bytes: int = TILE_BYTES,
    notes: list | None = None,
    labels_out: list | None = None,
    **kw,
) -> Generator[Progress, None, dict[str, np.ndarray]]:
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
    out = yield from _iter_fit_cube(fit, inputs=False, notes=notes, labels_out=labels_out)
    h, w = cube.height, cube.width
    return {ln: np.ascontiguousarray(out[:, i].reshape(h, w)) for i, ln in enumerate(lines)}


def iter_cluster_fit_inputs(
    cube: SpectralCube, *, tile_bytes: int = TILE_BYTES, notes: list | None = None, labels_out: list | None = None, **kw
) -> Generator[Progress, None, np.ndarray]:
    """What the ``fit-mlp`` map model reads beside each pixel's counts, for the whole cube:
    (H * W, 2 K) float32 (:meth:`ClusterFit.tile` with ``inputs``). Options as
    :func:`iter_cluster_fit_maps`."""
    from .models.prior import PRIOR_FAMILIES

    fit = ClusterFit(cube, PRIOR_FAMILIES[:1], tile_bytes=tile_bytes, **kw)
    return (yield from _iter_fit_cube(fit, inputs=True, notes=notes, labels_out=labels_out))


class FitHold:
    """Holds a learnt map model's net counts within ``n_se`` standard errors of the per-cluster
    fit: each pixel's value of each line, and each cluster's total of each line.

    The fit's values are physics with Poisson noise; a correction learnt on paintings may
    shrink that noise but must not erase or invent a line the counts show (on a sample unlike
    the training paintings it did both). Per pixel the value is clipped to the fit's
    +/- ``n_se`` standard errors; per cluster, where the total of a line leaves its
    unconstrained fit's total (unbiased, unlike the non-negative values) by more than
    ``n_se`` standard errors of that total, the excess is taken from its pixels in proportion
    to their counts (the least change in Poisson-weighted squares).

    Call :meth:`pixels` on each tile's predictions, then :meth:`clusters` on all of them
    with every pixel's cluster and counts.
    """

    def __init__(self, fit: ClusterFit, *, n_se: float = HOLD_SE) -> None:
        self.n_se, self._fit = float(n_se), fit
        k, n_lines = max(fit.k, 1), len(fit.lines)
        self._sums = np.zeros((3, k, n_lines))  # per cluster: held values, unconstrained fit, variance
        self.n_pixel_values = 0
        self.n_clusters_moved = 0

    def pixels(self, pred: np.ndarray, tile: TileFit) -> np.ndarray:
        """Clip a tile's (N, lines) predictions to the fit's band."""
        pred = np.nan_to_num(pred, nan=0.0, posinf=0.0, neginf=0.0)
        lo = np.maximum(tile.values - self.n_se * tile.errors, 0.0)
        hi = tile.values + self.n_se * tile.errors
        self.n_pixel_values += int(((pred < lo) | (pred > hi)).sum())
        pred = np.clip(pred, lo, hi)
        member = self._fit._members(tile.labels)
        for i, a in enumerate((pred, tile.free, tile.errors**2)):
            self._sums[i, : member.shape[0]] += member @ a
        return pred

    def partial(self) -> tuple[np.ndarray, int]:
        """What :meth:`pixels` has summed so far (per cluster and line, and the values
        clipped), for :meth:`add` in the process that assembles a cube's blocks of rows."""
        return self._sums.copy(), self.n_pixel_values

    def add(self, partial: tuple[np.ndarray, int]) -> None:
        """Add another hold's :meth:`partial` (one block of rows' pixels of the same fit)."""
        sums, n_values = partial
        if np.shape(sums) != self._sums.shape:
            raise XrayAtlasError(f"partial sums of shape {np.shape(sums)}; this hold's are {self._sums.shape}")
        self._sums += sums
        self.n_pixel_values += int(n_values)

    def clusters(self, out: np.ndarray, labels: np.ndarray, totals: np.ndarray) -> None:
        """Move the clusters' totals of ``out`` (N, lines), in place, into their bands
        (``labels`` and ``totals`` (N,): each pixel's cluster and counts)."""
        if self._fit.k == 0:  # no pixel with counts: nothing to hold
            return
        held, free, var = self._sums
        lit = labels >= 0
        counts = np.bincount(labels[lit], weights=totals[lit], minlength=held.shape[0])
        # the pixels' Poisson errors, and the error of the cluster's line shapes themselves,
        # which moves all its pixels together (scaled from the sample the shapes were fitted on)
        shape = self._fit.shape_errors[: held.shape[0]] * counts[:, None]
        d = held - free
        excess = np.sign(d) * np.maximum(np.abs(d) - self.n_se * np.sqrt(var + shape**2), 0.0)  # (k, lines)
        self.n_clusters_moved = int((excess != 0).any(axis=1).sum())
        if not lit.any() or not np.any(excess):
            return
        per_count = (excess / np.maximum(counts, 1.0)[:, None]).astype(np.float32)
        for a in range(0, len(labels), 65536):  # blocks of pixels: temporaries that do not grow with the cube
            sel = a + np.flatnonzero(lit[a : a + 65536])
            out[sel] = np.maximum(out[sel] - per_count[labels[sel]] * totals[sel, None], 0.0)

    def note(self, n_values: int) -> str:
        return (
            f"learnt values held within {self.n_se:g} standard errors of the per-cluster fit: "
            f"{self.n_pixel_values / max(n_values, 1):.1%} of the pixel values clipped, "
            f"{self.n_clusters_moved} cluster(s) moved"
        )
