"""Which clusters are blends of two others: the cluster-count decision (issue 31).

Where two paints meet, or one is glazed thinly over another, a pixel's spectrum is a
mixture of both: its expected counts are ``w * A + (1 - w) * B`` for the area share ``w``.
A painting's blends are a large share of its pixels (a third on issue 31's hidden painting),
dense enough that density clustering and self-organising maps give them clusters of their
own, one per pair of paints that meet: UMAP + HDBSCAN found 17-29 clusters for 9-16
recipes on the validation set's tuning part (docs/clustering.md).

A blend cluster's mean spectrum (as a share of its counts) lies on the segment between two
other clusters' means: :func:`find_blends` fits every cluster's mean as a mixture of every
pair of the others, weighted by the inverse of the mean (Poisson: a bin's variance is its
expectation), and calls it a candidate when the best mixture, with both parts at least
``t_range[0]``, leaves a fraction ``rho_max`` or less of the misfit of its nearest single
cluster. On the tuning part blends scored 0.003-0.06 and most paints 0.2 and more; but a
paint mixed at a ratio between two others' (cadmium yellow and lead white at 32 %, with lead
white and the 51 % paint present) scored 0.012: spectra alone cannot tell it from a blend.
:func:`confirm` then keeps the candidates that lie where their parts meet on the canvas.
In :func:`find_blends` the most clearly mixed cluster is taken first and no longer serves
as a part, until none is left; but when the canvas then shows such a cluster is a paint,
the bands along its borders are left with the wrong parts and fail the canvas test (on
validation seed 4005, 2 of the 13 candidates that were blend bands passed it). So :func:`mixture_pairs` keeps every pair each
cluster is a mixture of, and :func:`confirm` takes, in order of the spectral fit, the first
pair the canvas shows. Each of a blend's pixels goes to the part that holds the larger share
of its area (:func:`mixture_weight`; the truth of the validation set: the majority paint).

A paint whose thickness varies is not a blend but may still come as several clusters: a
layer 3x thicker in one place than another changes its line ratios (self-absorption; the
layers below shine through less), smoothly, and a map's chain of nodes along it can be cut
where neighbours lie further apart than the Poisson noise (on the validation set's tuning
part, one paint of seed 1003 came as four clusters). Two distinct paints are apart: between
them lie only the blends where they meet, few pixels against each paint's own.
:func:`join_continua` joins the clusters whose pixels leave no gap between them.
"""

from __future__ import annotations

import numpy as np

from ..errors import XrayAtlasError

__all__ = [
    "find_blends",
    "mixture_pairs",
    "mixture_weight",
    "resolve",
    "confirm",
    "valley_share",
    "join_continua",
    "join_pieces",
    "contacts",
    "RHO_MAX",
    "CONTACT_MIN",
    "BAND_DEPTH",
    "VALLEY_MIN",
    "PIECE_CONTACT",
    "PIECE_VALLEY",
]

#: Largest misfit of a blend's mixture, as a share of its nearest single cluster's misfit.
RHO_MAX = 0.1
#: Smallest share of a blend's border that its two parts make up (:func:`confirm`).
CONTACT_MIN = 0.5
#: A blend is a band thinner than its parts (:func:`confirm`): its pixels' 90th-percentile
#: distance to its edge stays under this share of its thicker part's, or under
#: ``BAND_DEPTH[1]`` pixels. On the 24 cubes of the clustering validation's tuning part and
#: seed 3006 (docs/clustering.md), the 123 bands confirmed before had depths of 1-8 px and 4-73 %
#: of their thicker part's; the 4 paints confirmed as bands, 2-21 px and 50-164 %. Neither
#: figure alone parts them; together they free three of the four and lose one band (62 %).
BAND_DEPTH = (0.5, 4.0)
#: Two paints are one when their pixels' density between them, along the line through their
#: means, keeps at least this share of the smaller peak (:func:`join_continua`).
VALLEY_MIN = 0.7
#: Two of umap-hdbscan's clusters are pieces of one paint when this share of the smaller
#: one's contacts are with the other and their pixels leave less than a clear gap
#: (:func:`join_pieces`). On the 48 cubes of the clustering validation's tuning part, pairs
#: of one paint had contact shares up to 1.0, pairs of two paints up to 0.735
#: (docs/clustering.md); 0.1 keeps a retouching-like island whose spectrum stands apart.
PIECE_CONTACT = 0.75
#: Smallest :func:`valley_share` of two pieces of one paint (:func:`join_pieces`).
PIECE_VALLEY = 0.1
#: Floor of a bin's expected share in the Poisson weights, so that empty bins do not dominate.
_FLOOR = 1e-6


def _mix(m: np.ndarray, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best t in [0, 1] and weighted misfit of ``m ~ t a + (1 - t) b`` for rows of a, b (or pixels m)."""
    d = a - b
    t = np.clip(np.sum(w * d * (m - b), axis=-1) / np.maximum(np.sum(w * d * d, axis=-1), 1e-30), 0.0, 1.0)
    r = m - (t[..., None] * a + (1 - t[..., None]) * b)
    return t, np.sum(w * r * r, axis=-1)


def find_blends(
    means: np.ndarray, *, rho_max: float = RHO_MAX, t_range: tuple[float, float] = (0.1, 0.9)
) -> dict[int, tuple[int, int]]:
    """Clusters whose mean spectrum is a mixture of two other clusters'.

    Parameters
    ----------
    means : (K, B) array
        Each cluster's mean spectrum as a share of its counts (rows sum to 1; binned).
    rho_max : float
        Largest misfit of the mixture as a share of the misfit of the nearest single cluster.
    t_range : (low, high)
        The mixture's share of the first part must lie in this range (both parts present).

    Returns
    -------
    dict
        Blend cluster -> (part a, part b), parts never blends themselves.
    """
    means = np.asarray(means, np.float64)
    k = means.shape[0]
    blends: dict[int, tuple[int, int]] = {}
    while True:
        keep = [i for i in range(k) if i not in blends]
        if len(keep) < 3:
            return _final_parts(means, blends, t_range)
        best = None
        for c in keep:
            others = np.array([j for j in keep if j != c])
            w = 1.0 / np.maximum(means[c], _FLOOR)
            single = np.min(np.sum(w * (means[c] - means[others]) ** 2, axis=1))
            ia, ib = np.triu_indices(others.size, 1)
            t, r = _mix(means[c], means[others[ia]], means[others[ib]], w)
            ok = (t >= t_range[0]) & (t <= t_range[1])
            if not ok.any() or single <= 0:
                continue
            j = int(np.argmin(np.where(ok, r, np.inf)))
            rho = float(r[j] / single)
            if best is None or rho < best[0]:
                best = (rho, c, int(others[ia[j]]), int(others[ib[j]]))
        if best is None or best[0] > rho_max:
            return _final_parts(means, blends, t_range)
        blends[best[1]] = (best[2], best[3])


def _final_parts(
    means: np.ndarray, blends: dict[int, tuple[int, int]], t_range: tuple[float, float]
) -> dict[int, tuple[int, int]]:
    # a part found a blend later is replaced: each blend's parts, the best pair of the final paints
    paints = np.array([i for i in range(means.shape[0]) if i not in blends])
    out = {}
    for c, (a, b) in blends.items():
        if a in blends or b in blends:
            w = 1.0 / np.maximum(means[c], _FLOOR)
            ia, ib = np.triu_indices(paints.size, 1)
            t, r = _mix(means[c], means[paints[ia]], means[paints[ib]], w)
            j = int(np.argmin(np.where((t >= t_range[0]) & (t <= t_range[1]), r, r + np.max(r) + 1)))
            a, b = int(paints[ia[j]]), int(paints[ib[j]])
        out[c] = (a, b)
    return out


def mixture_pairs(
    means: np.ndarray, *, rho_max: float = RHO_MAX, t_range: tuple[float, float] = (0.1, 0.9)
) -> dict[int, list[tuple[int, int]]]:
    """Every pair of other clusters each cluster's mean spectrum is a mixture of, best first.

    The test of :func:`find_blends` (misfit of the mixture at most ``rho_max`` of the nearest
    single cluster's, both parts' shares in ``t_range``), without its greedy choice: a cluster
    taken there as a blend no longer serves as a part, and when the canvas then shows it is a
    paint, the blends it is a part of are left with the wrong parts. :func:`confirm` chooses
    among these pairs the one the canvas shows.

    Returns
    -------
    dict
        Cluster -> [(part a, part b), ...] by increasing misfit; clusters with no pair left
        out; the clusters in order of their best pair's misfit (the most clearly mixed first).
    """
    means = np.asarray(means, np.float64)
    k = means.shape[0]
    out: dict[int, tuple[float, list[tuple[int, int]]]] = {}
    for c in range(k):
        others = np.array([j for j in range(k) if j != c])
        if others.size < 2:
            break
        w = 1.0 / np.maximum(means[c], _FLOOR)
        single = np.min(np.sum(w * (means[c] - means[others]) ** 2, axis=1))
        if single <= 0:
            continue
        ia, ib = np.triu_indices(others.size, 1)
        t, r = _mix(means[c], means[others[ia]], means[others[ib]], w)
        ok = np.flatnonzero((t >= t_range[0]) & (t <= t_range[1]) & (r <= rho_max * single))
        if ok.size:
            ok = ok[np.argsort(r[ok], kind="stable")]
            out[c] = (float(r[ok[0]] / single), [(int(others[ia[j]]), int(others[ib[j]])) for j in ok])
    return {c: ps for c, (_, ps) in sorted(out.items(), key=lambda item: item[1][0])}


def mixture_weight(share: np.ndarray, a: np.ndarray, b: np.ndarray, total_a: float, total_b: float) -> np.ndarray:
    """Area share of part ``a`` in pixels of spectra ``share`` (N, B), mixtures of ``a`` and ``b``.

    The fit gives part a's share t of the pixel's *counts*; a paint that gives more counts per
    pixel (``total_a`` against ``total_b``) takes more of them than of the area:
    w = t N_b / (t N_b + (1 - t) N_a)."""
    w = 1.0 / np.maximum(0.5 * (a + b), _FLOOR)
    t, _ = _mix(np.asarray(share, np.float64), a[None], b[None], w)
    return t * total_b / np.maximum(t * total_b + (1 - t) * total_a, 1e-30)


def resolve(
    labels: np.ndarray,
    share: np.ndarray,
    blends: dict[int, tuple[int, int]],
    means: np.ndarray,
    group_totals: np.ndarray,
) -> np.ndarray:
    """Labels with every blend's pixels given to the part holding most of their area.

    ``labels`` (N,) of pixels with spectra ``share`` (N, B, shares of counts); ``means``
    (K, B) and ``group_totals`` (K,) are each cluster's mean share spectrum and mean counts.
    Parts are never blends (:func:`find_blends`), so one pass resolves every pixel."""
    out = np.array(labels, copy=True)
    for c, (a, b) in blends.items():
        rows = np.flatnonzero(labels == c)
        if rows.size:
            wa = mixture_weight(share[rows], means[a], means[b], group_totals[a], group_totals[b])
            out[rows] = np.where(wa >= 0.5, a, b)
    return out


def contacts(labels: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts of 4-neighbour pixel pairs between clusters 0..k-1 of a (H, W) labels
    image, both ways (noise, -1, left out)."""
    lab = np.asarray(labels)
    touch = np.zeros(k * k, np.int64)
    for a, b in [(lab[:, :-1], lab[:, 1:]), (lab[:-1, :], lab[1:, :])]:
        m = (a != b) & (a >= 0) & (b >= 0)
        touch += np.bincount(a[m].astype(np.int64) * k + b[m], minlength=k * k)
        touch += np.bincount(b[m].astype(np.int64) * k + a[m], minlength=k * k)
    return touch.reshape(k, k)


def confirm(
    labels: np.ndarray,
    candidates: dict[int, tuple[int, int] | list[tuple[int, int]]],
    *,
    contact_min: float = CONTACT_MIN,
) -> dict[int, tuple[int, int]]:
    """The candidate blends that lie where their parts meet, and their parts.

    A paint mixed at a ratio between two others' (a ratio-only pair with one of its
    pigments also present on its own) passes :func:`find_blends`' spectral test, but it is a
    region of its own, not a band along the border of its parts. A candidate is confirmed
    when at least ``contact_min`` of its pixels' contacts (4-neighbours) with other clusters
    are with its two parts (or with other candidates of the same parts: a band may come as
    several clusters), each part has at least a quarter of the contacts with the parts, and
    it is a band, thinner than its parts (:data:`BAND_DEPTH`): a paint that borders only the
    two paints it is spectrally a mixture of is as thick as they are.

    A candidate may come with several pairs of parts (:func:`mixture_pairs`, best spectral
    fit first): the first pair the canvas confirms is its parts. Candidates are taken in the
    order given; a confirmed blend is no part of a later one, and a part of a confirmed blend
    is no blend.

    Parameters
    ----------
    labels : (H, W) int array
        Every pixel's cluster (candidates' pixels still as the candidate), -1 for noise.
    candidates : dict
        Candidate cluster -> (part a, part b) (from :func:`find_blends`) or a list of such
        pairs (from :func:`mixture_pairs`).

    Returns
    -------
    dict
        Confirmed blend -> (part a, part b).
    """
    lab = np.asarray(labels)
    if not candidates or lab.ndim != 2:
        return {}
    options = {c: [tuple(p)] if np.ndim(p[0]) == 0 else [tuple(q) for q in p] for c, p in candidates.items()}
    k = int(max(lab.max(), max(max(max(q) for q in p) for p in options.values()), max(options))) + 1
    touch = contacts(lab, k)
    from scipy.ndimage import distance_transform_edt

    def depth(clusters: list[int]) -> float:
        """90th percentile of the clusters' pixels' distance to their edge (pixels)."""
        mask = np.isin(lab, clusters)
        return float(np.percentile(distance_transform_edt(mask)[mask], 90)) if mask.any() else 0.0

    def borders(total: int, with_a: int, with_b: int) -> bool:
        both = with_a + with_b
        return bool(total) and both >= contact_min * total and min(with_a, with_b) >= 0.25 * both

    depths: dict[tuple[int, ...], float] = {}

    def is_band(c: int, a: int, b: int) -> bool:
        # a band may come as several clusters along its two parts' segment (along it, or a
        # half beside each part): those count as band, and the pieces are tested together too
        same = [d for d, ps in options.items() if d != c and d not in parts_of and {a, b} in map(set, ps)]
        both = touch[c, a] + touch[c, b]
        piece = bool(touch[c].sum()) and both + touch[c, same].sum() >= contact_min * touch[c].sum()
        piece = piece and min(touch[c, a], touch[c, b]) >= 0.25 * both
        joined = [d for d in same if touch[c, d]]  # pieces of one band touch each other
        outside = touch[[c, *joined]].sum(axis=0)
        outside[[c, *joined]] = 0  # contacts between the pieces are inside the band
        band = tuple(sorted([c, *joined])) if not piece else (c,)
        if not (piece or (joined and borders(outside.sum(), outside[a], outside[b]))):
            return False
        for key in (band, (a,), (b,)):
            if key not in depths:
                depths[key] = depth(list(key))
        return depths[band] < max(BAND_DEPTH[1], BAND_DEPTH[0] * max(depths[(a,)], depths[(b,)]))

    out: dict[int, tuple[int, int]] = {}
    parts_of: set[int] = set()  # parts of confirmed blends: paints
    for c, ps in options.items():
        if c in parts_of:
            continue
        for a, b in ps:
            if a not in out and b not in out and is_band(c, a, b):
                out[int(c)] = (int(a), int(b))
                parts_of.update((a, b))
                break
    return out


def valley_share(xa: np.ndarray, xb: np.ndarray, *, bins: int = 15) -> float:
    """How deep the gap between two groups of pixels is: 1 for one continuum, near 0 apart.

    Both groups' features (rows) are projected on the line through their means (``xa``'s
    at 0, ``xb``'s at 1) and histogrammed in ``bins`` bins over -0.25..1.25; the result is the
    emptiest bin between the two peaks as a share of the smaller peak. The projection makes
    the test one-dimensional, as dip-means' (Kalogeratos and Likas, NIPS 2012), and the share
    makes it free of the scale: noise that blurs two paints into each other fills the gap."""
    xa, xb = np.asarray(xa, np.float64), np.asarray(xb, np.float64)
    if xa.ndim != 2 or xb.ndim != 2 or xa.shape[1] != xb.shape[1] or not (len(xa) and len(xb)):
        raise XrayAtlasError("xa, xb: two non-empty (N, D) arrays of the same D")
    ma, mb = xa.mean(axis=0), xb.mean(axis=0)
    d = mb - ma
    t = (np.concatenate([xa, xb]) - ma) @ d / max(float(d @ d), 1e-30)
    h, edges = np.histogram(t, bins=bins, range=(-0.25, 1.25))
    centre = 0.5 * (edges[:-1] + edges[1:])
    ia = int(np.argmax(np.where(centre < 0.5, h, -1)))
    ib = int(np.argmax(np.where(centre >= 0.5, h, -1)))
    return float(h[ia : ib + 1].min() / max(min(h[ia], h[ib]), 1))


def join_continua(labels: np.ndarray, x: np.ndarray, n_labels: int, *, valley_min: float = VALLEY_MIN) -> np.ndarray:
    """The cluster each cluster joins: pairs whose pixels leave no gap between them are one.

    Every pair of clusters whose :func:`valley_share` is at least ``valley_min`` is one
    paint, and pairs chain (a paint cut in three along its thickness: the thin and the thick
    piece are apart, each joins the middle one). On the validation set's tuning part (16
    cubes, som) ``valley_min`` 0.5-0.95 gave ARI medians 0.80-0.81 against 0.79 without it,
    and from 0.7 up the best worst case, 0.72 against 0.70 (docs/clustering.md).

    Parameters
    ----------
    labels : (N,) int array
        The cluster of each pixel, 0..n_labels-1; -1 for pixels that do not count (blends
        given to their parts would fill the gap between those parts).
    x : (N, D) array
        The pixels' features.
    n_labels : int
        Number of clusters.
    valley_min : float
        Smallest :func:`valley_share` of a pair that is one paint.

    Returns
    -------
    (n_labels,) int array
        The cluster each cluster is joined into (itself when it joins none), the smallest
        label of its group.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(x) != labels.size:
        raise XrayAtlasError("labels: one label for each row of x")
    present = [c for c in range(int(n_labels)) if np.count_nonzero(labels == c) >= 2]
    rows = {c: np.asarray(x)[labels == c] for c in present}
    return _chain(int(n_labels), present, lambda a, b: valley_share(rows[a], rows[b]) >= valley_min)


def join_pieces(
    labels: np.ndarray,
    paints: list[int],
    fit_labels: np.ndarray,
    x: np.ndarray,
    *,
    contact_min: float = PIECE_CONTACT,
    valley_min: float = PIECE_VALLEY,
) -> np.ndarray:
    """The cluster each cluster joins: pieces of one paint, cut along its thickness, are one.

    Two distinct paints meet across the blends of their border, which HDBSCAN makes clusters
    of their own; two pieces of one paint, cut where its spectrum drifts with its thickness,
    touch directly, and the smaller piece's border lies mostly along the other. Two of
    ``paints`` are one when at least ``contact_min`` of the smaller one's contacts with other
    clusters on the canvas are with the other, and their fitted pixels leave no clear gap
    between them (:func:`valley_share` at least ``valley_min``: a small region of a distinct
    paint inside another, a retouching, is kept). Pairs chain.

    Parameters
    ----------
    labels : (H, W) int array
        Every pixel's cluster, blends not yet given to their parts; -1 for noise.
    paints : list of int
        The clusters that may join (confirmed blends left out).
    fit_labels : (N,) int array
        The fitted pixels' clusters.
    x : (N, D) array
        The fitted pixels' features.

    Returns
    -------
    (K,) int array
        For every cluster 0..K-1 (K = labels.max() + 1) the cluster it joins (itself when it
        joins none), the smallest of its group.
    """
    lab = np.asarray(labels)
    fit_labels = np.asarray(fit_labels)
    if lab.ndim != 2 or fit_labels.ndim != 1 or len(x) != fit_labels.size:
        raise XrayAtlasError("labels: a (H, W) image; fit_labels: one label for each row of x")
    k = int(max(lab.max(), max(paints, default=-1))) + 1
    touch = contacts(lab, k)
    rows = {c: np.asarray(x)[fit_labels == c] for c in paints}

    def one(a: int, b: int) -> bool:
        share = touch[a, b] / max(min(touch[a].sum(), touch[b].sum()), 1)
        return bool(share >= contact_min) and valley_share(rows[a], rows[b]) >= valley_min

    return _chain(k, [c for c in paints if len(rows[c]) >= 2], one)


def _chain(n: int, clusters: list[int], one) -> np.ndarray:
    """For clusters 0..n-1, the smallest cluster of each one's group: every pair of
    ``clusters`` for which ``one(a, b)`` holds is one group, and pairs chain (a union-find;
    ``one`` is not asked about pairs already in one group)."""
    root = np.arange(n)

    def find(c: int) -> int:
        while root[c] != c:
            c = int(root[c])
        return c

    for i, a in enumerate(clusters):
        for b in clusters[i + 1 :]:
            ra, rb = find(a), find(b)
            if ra != rb and one(a, b):
                root[max(ra, rb)] = min(ra, rb)
    return np.array([find(c) for c in range(n)], dtype=np.int64)
