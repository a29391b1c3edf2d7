"""Clustering methods on spectral features: UMAP + HDBSCAN, and a self-organising map.

Both fit on a subsample and then label every pixel, so time and memory grow with the
subsample, not with the cube. Each method comes in two parts: which pixels it fits on
(``*_sample``, drawn with the seed before any counts are read, so that the features pass
keeps just those), and the fit, which returns an :class:`Assigner`: the labels of any tile's
features, and, once every pixel has its label, the final numbering
(:func:`xray_atlas.cluster.iter_cluster` streams the cube through it).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from ..cube import Progress
from ..devices import DEVICES
from ..errors import XrayAtlasError
from ..params import Param
from .blends import confirm, find_blends, join_continua, join_pieces, mixture_pairs, mixture_weight, resolve
from .features import Features

__all__ = [
    "umap_hdbscan",
    "som",
    "UMAP_HDBSCAN_PARAMS",
    "SOM_PARAMS",
    "check_umap_hdbscan",
    "check_som",
    "umap_hdbscan_sample",
    "som_sample",
    "Assigner",
]


class Assigner:
    """A fitted method: labels tile by tile, then the final numbering.

    :meth:`assign` gives each pixel of a tile an id (>= 0; -1 for noise); :meth:`finish`,
    given the ids of every pixel, returns the label of each id (-1 for noise) and the
    method's details. Ids are what the method assigns directly (a SOM's nodes, an
    HDBSCAN cluster), so that sums over ids made while streaming give each label's sums.
    """

    def __init__(
        self,
        assign: Callable[[np.ndarray], np.ndarray],
        finish: Callable[[np.ndarray], tuple[np.ndarray, dict]],
        n_ids: int,
    ) -> None:
        self._assign, self._finish, self.n_ids = assign, finish, int(n_ids)

    def assign(self, values: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N,) int32 ids in [-1, n_ids)."""
        return np.asarray(self._assign(values)).astype(np.int32)

    def finish(self, ids: np.ndarray) -> tuple[np.ndarray, dict]:
        """Every pixel's id (P,) -> label of each id (n_ids,) int32 (-1: noise), details."""
        lut, info = self._finish(ids)
        return np.asarray(lut, np.int32), info


# The methods' parameters, declared for the command line and the forms (the keyword defaults
# of the functions below; tests/cluster/test_cluster.py checks that they agree). Their valid
# ranges depend on the cube, so check_umap_hdbscan and check_som check them.
#: Parameters of :func:`umap_hdbscan` (study 003's names).
UMAP_HDBSCAN_PARAMS = {
    "n_fit": Param(5000, "pixels embedded by UMAP (a random subsample)"),
    "n_neighbors": Param(30, "UMAP's n_neighbors"),
    "min_dist": Param(0.0, "UMAP's min_dist"),
    "n_components": Param(2, "UMAP's embedding dimensions"),
    "min_samples": Param(10, "HDBSCAN's min_samples"),
    "min_cluster_size": Param(
        0.01, "HDBSCAN's min_cluster_size: a share of the embedded pixels if below 1, else a number of pixels"
    ),
    "assign_neighbors": Param(15, "each pixel takes the majority label of this many nearest embedded pixels"),
    "unblend_clusters": Param(
        True,
        "give a cluster of pixels mixing two paints (its spectrum a blend of theirs, on the canvas between them) "
        "to those two paints",
        kind="bool",
    ),
}

#: Parameters of :func:`som`.
SOM_PARAMS = {
    "rows": Param(16, "rows of the map's nodes"),
    "cols": Param(16, "columns of the map's nodes"),
    "epochs": Param(10, "passes over the training pixels"),
    "batch_size": Param(4096, "pixels per update"),
    "lr": Param((0.5, 0.02), "learning rate, first and last (decaying exponentially)", kind="numbers"),
    "sigma": Param(
        (None, 0.3), "neighbourhood width in nodes, first (none: half the larger side) and last", kind="numbers"
    ),
    "n_fit": Param(50000, "pixels the map trains on (a random subsample)"),
    "n_clusters": Param(
        "auto",
        "clusters the nodes are joined into: auto (neighbouring nodes within Poisson noise joined, blends "
        "given to their paints, paints with no gap between them joined), none (one per node) or a number",
        kind="string",
    ),
    "device": Param("auto", "where the map trains", choices=DEVICES, kind="choice"),
}


def _check_int(name: str, value: object, lo: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lo:
        raise XrayAtlasError(f"{name}={value!r} must be an integer >= {lo}")
    return int(value)


def check_umap_hdbscan(
    n_pix: int,
    *,
    n_fit: int = 5000,
    n_neighbors: int = 30,
    min_dist: float = 0.0,
    n_components: int = 2,
    min_samples: int = 10,
    min_cluster_size: float = 0.01,
    assign_neighbors: int = 15,
    unblend_clusters: bool = True,
    seed: int = 0,
) -> tuple[int, int]:
    """Check :func:`umap_hdbscan`'s parameters for ``n_pix`` pixels; returns (fitted pixels, min cluster size)."""
    n_fit = _check_int("n_fit", n_fit, 10)
    n_neighbors = _check_int("n_neighbors", n_neighbors, 2)
    _check_int("n_components", n_components, 1)
    if not (isinstance(min_dist, (int, float, np.floating)) and np.isfinite(min_dist)):
        raise XrayAtlasError(f"min_dist={min_dist} must lie in [0, 1]")
    if not (
        isinstance(min_cluster_size, (int, float, np.number)) and np.isfinite(min_cluster_size) and min_cluster_size > 0
    ):
        raise XrayAtlasError(
            f"min_cluster_size={min_cluster_size} must be a share of the pixels in (0, 1) or a number of pixels >= 2"
        )
    _check_int("min_samples", min_samples, 1)
    _check_int("assign_neighbors", assign_neighbors, 1)
    if not isinstance(unblend_clusters, (bool, np.bool_)):
        raise XrayAtlasError(f"unblend_clusters={unblend_clusters!r} must be True or False")
    if not (0 <= min_dist <= 1):
        raise XrayAtlasError(f"min_dist={min_dist} must lie in [0, 1]")
    m = min(n_fit, n_pix)
    if m <= n_neighbors:
        raise XrayAtlasError(f"{n_pix} pixels are too few for n_neighbors={n_neighbors}; lower it")
    if n_components >= m - 1:
        raise XrayAtlasError(f"n_components={n_components} must be below {m - 1} (the fitted pixels less one)")
    mcs = int(round(min_cluster_size * m)) if min_cluster_size < 1 else int(min_cluster_size)
    if mcs < 2 or mcs > m:
        raise XrayAtlasError(
            f"min_cluster_size={min_cluster_size} gives {mcs} of {m} fitted pixels; need 2-{m}: "
            f"for a small cube give a number of pixels, e.g. min_cluster_size={max(2, m // 10)} "
            f"(--param min_cluster_size={max(2, m // 10)} on the command line)"
        )
    return m, mcs


def umap_hdbscan_sample(n_pix: int, *, seed: int = 0, **params) -> np.ndarray:
    """The pixels :func:`umap_hdbscan` embeds (flat indices), drawn with ``seed``."""
    m, _ = check_umap_hdbscan(n_pix, **params)
    return np.sort(np.random.default_rng(seed).choice(n_pix, size=m, replace=False))


def umap_hdbscan(
    features: Features,
    *,
    n_fit: int = 5000,
    n_neighbors: int = 30,
    min_dist: float = 0.0,
    n_components: int = 2,
    min_samples: int = 10,
    min_cluster_size: float = 0.01,
    assign_neighbors: int = 15,
    unblend_clusters: bool = True,
    seed: int = 0,
) -> Generator[Progress, None, tuple[np.ndarray, dict]]:
    """UMAP of a pixel subsample, HDBSCAN on the embedding, blends given to their paints,
    every pixel labelled by its neighbours.

    Parameters (study 003's names)
    ----------
    n_fit : int
        Pixels embedded by UMAP (a random subsample).
    n_neighbors, min_dist, n_components : UMAP parameters (study: 30, 0.0, 1).
    min_samples : int
        HDBSCAN's ``min_samples`` (study: 10).
    min_cluster_size : float
        HDBSCAN's ``min_cluster_size``: an integer count, or a fraction of ``n_fit`` if < 1
        (study: 2,500 of its 182,000 pixels, i.e. 1.4 %).
    assign_neighbors : int
        Every pixel takes the majority label of this many nearest subsample pixels in PCA
        space (noise counts as a label of its own).
    unblend_clusters : bool
        HDBSCAN's clusters whose mean spectrum is a mixture of two others'
        (:func:`~xray_atlas.cluster.blends.mixture_pairs`) and that lie where those two meet
        on the canvas (:func:`~xray_atlas.cluster.blends.confirm`, which picks the pair) are
        blends, no clusters of their own: each of their pixels joins the part that holds
        most of its area (issue 31); and clusters that are pieces of one paint, cut along its
        thickness, are joined (:func:`~xray_atlas.cluster.blends.join_pieces`). False keeps
        HDBSCAN's clusters as they are (the behaviour before).

    Yields Progress; returns an :class:`Assigner` (ids: the clusters, -1 for noise); its
    details hold HDBSCAN's own labels of the fitted pixels and the blends
    (cluster -> its two parts, HDBSCAN's numbers).
    """
    import warnings

    import hdbscan
    import umap
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
    from threadpoolctl import threadpool_limits

    n_pix = features.n_pixels
    kw = {
        "n_fit": n_fit,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "n_components": n_components,
        "min_samples": min_samples,
        "min_cluster_size": min_cluster_size,
        "assign_neighbors": assign_neighbors,
        "unblend_clusters": unblend_clusters,
    }
    m, mcs = check_umap_hdbscan(n_pix, **kw)
    idx = umap_hdbscan_sample(n_pix, seed=seed, **kw)
    x = features.take(idx)
    yield Progress(1, 3, "umap")
    # exact neighbours from scikit-learn: UMAP then skips pynndescent and its long first
    # compile; one BLAS thread, as for the features (features.py), for the same neighbours
    # on every machine
    with threadpool_limits(limits=1):
        dist, ind = NearestNeighbors(n_neighbors=n_neighbors).fit(x).kneighbors(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "n_jobs overridden by random_state"
        emb = umap.UMAP(
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            n_components=n_components,
            n_epochs=200,
            random_state=seed,
            precomputed_knn=(ind, dist, None),
        ).fit_transform(x)
    yield Progress(2, 3, "hdbscan")
    found = hdbscan.HDBSCAN(min_samples=min_samples, min_cluster_size=mcs).fit_predict(emb).astype(np.int32)
    knn = KNeighborsClassifier(n_neighbors=min(assign_neighbors, m)).fit(x, found)
    yield Progress(3, 3, "hdbscan")
    k = int(found.max()) + 1
    info = {"fit_pixels": idx, "embedding": emb, "min_cluster_size": mcs, "hdbscan_labels": found}
    if not unblend_clusters or k < 3:
        return Assigner(knn.predict, lambda ids: (np.arange(k), {**info, "blends": {}}), k)
    # candidate blends: each of their pixels gets one of two extra ids, by the part that holds
    # most of its area; finish() keeps those that lie where their parts meet
    share = features.shares(x)
    totals = features.totals[idx]
    means = np.stack([share[found == i].mean(axis=0) for i in range(k)])
    group_totals = np.array([totals[found == i].mean() for i in range(k)])
    return _blend_assigner(knn.predict, features, k, _blend_options(means), means, group_totals, info)


def _blend_options(means: np.ndarray) -> dict[int, list[tuple[int, int]]]:
    """Candidate blends among clusters of mean spectra ``means`` (K, B) and the pairs of parts
    each may have, for :func:`~.blends.confirm`: :func:`~.blends.find_blends`' greedy parts
    first (a candidate there is no part of another), then every other pair its mean is a
    mixture of (:func:`~.blends.mixture_pairs`), of which the canvas picks; the most clearly
    mixed candidates first."""
    found = find_blends(means)
    pairs = mixture_pairs(means)
    options = {c: [found[c]] if c in found else [] for c in [*pairs, *found]}
    for c, ps in pairs.items():
        options[c] += [p for p in ps if p not in options[c]]
    return options


def _blend_assigner(
    predict: Callable[[np.ndarray], np.ndarray],
    features: Features,
    k: int,
    options: dict[int, list[tuple[int, int]]],
    means: np.ndarray,
    group_totals: np.ndarray,
    info: dict,
) -> Assigner:
    """An :class:`Assigner` over clusters 0..k-1 (``predict``: features -> cluster) whose
    candidate blends (``options``: candidate -> pairs of parts, the one to split by first)
    have their pixels take ids k + 2j or k + 2j + 1, by which of the first pair's parts holds
    most of the pixel's area; ``finish`` confirms the candidates that lie where their parts
    meet (:func:`~.blends.confirm`) and gives each side's pixels to a part; the rest stay
    clusters. Labels 0..K-1 in cluster order."""
    cands = sorted(options)
    slot = {c: j for j, c in enumerate(cands)}
    split = {c: options[c][0] for c in cands}

    def assign(values: np.ndarray) -> np.ndarray:
        ids = np.asarray(predict(values)).astype(np.int32)
        for c in cands:
            rows = np.flatnonzero(ids == c)
            if rows.size:
                a, b = split[c]
                wa = mixture_weight(features.shares(values[rows]), means[a], means[b], group_totals[a], group_totals[b])
                ids[rows] = k + 2 * slot[c] + (wa < 0.5)
        return ids

    def nearest(p: int, parts: tuple[int, int]) -> int:
        """The one of ``parts`` whose mean spectrum is nearest ``p``'s (Poisson-weighted)."""
        if p in parts:
            return p
        w = 1.0 / np.maximum(means[p], 1e-6)  # blends' floor of a bin's share
        return min(parts, key=lambda q: float(np.sum(w * (means[q] - means[p]) ** 2)))

    def finish(ids: np.ndarray) -> tuple[np.ndarray, dict]:
        base = np.concatenate([np.arange(k), np.repeat(np.array(cands, np.int64), 2)]).astype(np.int64)
        image = np.where(ids >= 0, base[np.maximum(ids, 0)], -1).reshape(features.shape)
        blends = confirm(image, options)
        to = base.copy()
        for c, parts in blends.items():
            # each side's pixels to the part holding most of their area; where the canvas chose
            # other parts than the split's, to the new part nearest the split's
            a, b = split[c]
            to[k + 2 * slot[c]], to[k + 2 * slot[c] + 1] = nearest(a, parts), nearest(b, parts)
        # pieces of one paint, cut along its thickness, are one
        paints = [c for c in range(k) if c not in blends]
        root = join_pieces(image, paints, info["hdbscan_labels"], features.take(info["fit_pixels"]))[:k]
        to = np.where(to >= 0, root[np.maximum(to, 0)], -1)
        pieces = {int(c): int(root[c]) for c in paints if root[c] != c}
        kept = np.setdiff1d(np.arange(k), [*blends, *pieces])
        remap = np.full(k, -1)
        remap[kept] = np.arange(kept.size)
        return remap[to], {**info, "blend_candidates": options, "blends": blends, "pieces": pieces}

    return Assigner(assign, finish, k + 2 * len(cands))


def check_som(
    n_pix: int,
    *,
    rows: int = 16,
    cols: int = 16,
    epochs: int = 10,
    batch_size: int = 4096,
    lr: tuple[float, float] = (0.5, 0.02),
    sigma: tuple = (None, 0.3),
    n_fit: int = 50000,
    n_clusters: int | str | None = "auto",
    device: str = "auto",
    seed: int = 0,
) -> int | str | None:
    """Check :func:`som`'s parameters for ``n_pix`` pixels."""
    from ..devices import resolve_device

    rows = _check_int("rows", rows, 1)
    cols = _check_int("cols", cols, 1)
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("n_fit", n_fit, 1)
    if rows * cols > n_pix:
        raise XrayAtlasError(f"rows x cols = {rows * cols} nodes but only {n_pix} pixels")
    if len(lr) != 2 or not (lr[0] > 0 and lr[1] > 0):
        raise XrayAtlasError(f"lr={lr} must be two positive numbers (start, end)")
    if len(sigma) != 2 or not (sigma[1] > 0) or (sigma[0] is not None and not sigma[0] > 0):
        raise XrayAtlasError(f"sigma={sigma} must be (start or None, end > 0)")
    resolve_device(device)
    return _n_clusters(n_clusters, rows * cols)


def _n_clusters(value: int | str | None, n_nodes: int) -> int | str | None:
    """'auto', None (one cluster per node) or a count of at most the number of nodes."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise XrayAtlasError(f"n_clusters={value!r} must be 'auto', None or a whole number") from None
    if not 1 <= k <= n_nodes:
        raise XrayAtlasError(f"n_clusters={k} must lie in 1-{n_nodes} (the map's nodes)")
    return k


def _join_nodes(codebook: np.ndarray, used: np.ndarray, n_clusters: int) -> np.ndarray:
    """Ward clustering of the used nodes' codebooks into ``n_clusters`` groups (-1: unused)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    out = np.full(codebook.shape[0], -1)
    out[used] = (
        fcluster(linkage(codebook[used], method="ward"), t=min(int(n_clusters), used.size), criterion="maxclust") - 1
    )
    return out


#: Grid neighbours closer than this many times a pixel's Poisson noise are one paint
#: (``som``'s ``n_clusters="auto"``).
JOIN_NOISE = 3.0
#: A node is dense with at least this share of the used nodes' mean hits (or MIN_SHARE of
#: the pixels: a map may give a whole small paint one node).
DENSE = 0.5
#: Smallest paint, as a share of the fitted pixels (as umap-hdbscan's min_cluster_size).
MIN_SHARE = 0.01


def _join_on_map(
    codebook: np.ndarray,
    hits: np.ndarray,
    node_totals: np.ndarray,
    sigma: float,
    features: Features,
    shape: tuple[int, int],
) -> tuple[np.ndarray, dict[int, tuple[int, int]], np.ndarray]:
    """The nodes' paints from the density of pixels on the map, the candidate blends among
    them, and each node's part.

    The map puts many nodes where pixels are dense (a paint, along its thickness) and few on
    the sparse blends between paints. Dense nodes (:data:`DENSE` of the used nodes' mean
    hits, or :data:`MIN_SHARE` of the pixels) that are grid neighbours (8-connected) and whose
    codebooks differ by less than :data:`JOIN_NOISE` times a pixel's Poisson noise ``sigma``
    are one paint; a paint needs :data:`MIN_SHARE` of the pixels. Every other node joins the paint of the nearest codebook.
    A paint whose mean spectrum is a mixture of two others' is a candidate blend
    (:func:`_blend_options`). Returns each node's paint, the candidates with the pairs of
    parts each may have, and a function that gives, for the confirmed blends and their parts,
    each node's cluster (its own paint, or for a blend's node the part that holds most of
    its area)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows, cols = shape
    n_nodes = rows * cols
    used = hits > 0
    dense = hits >= min(DENSE * hits[used].mean(), MIN_SHARE * hits.sum())
    g = np.arange(n_nodes).reshape(rows, cols)
    pairs = np.concatenate(
        [
            np.stack([p.ravel(), q.ravel()], axis=1)
            for p, q in ((g[:, :-1], g[:, 1:]), (g[:-1], g[1:]), (g[:-1, :-1], g[1:, 1:]), (g[:-1, 1:], g[1:, :-1]))
        ]
    )
    near = np.linalg.norm(codebook[pairs[:, 0]] - codebook[pairs[:, 1]], axis=1) < JOIN_NOISE * sigma
    keep = near & dense[pairs[:, 0]] & dense[pairs[:, 1]]
    graph = coo_matrix((np.ones(keep.sum()), (pairs[keep, 0], pairs[keep, 1])), shape=(n_nodes, n_nodes))
    _, comp = connected_components(graph, directed=False)
    size = np.bincount(comp, weights=hits)
    big = dense & (size[comp] >= MIN_SHARE * hits.sum())
    if not big.any():
        big = hits == hits.max()
    # paints numbered 0..k-1; every other node joins the nearest paint's node
    _, paint = np.unique(comp[big], return_inverse=True)
    group = np.full(n_nodes, -1)
    group[big] = paint
    rest = np.flatnonzero(~big)
    bign = np.flatnonzero(big)
    group[rest] = group[bign[np.argmin(((codebook[rest, None] - codebook[None, bign]) ** 2).sum(axis=2), axis=1)]]
    k = int(group.max()) + 1
    share = features.shares(codebook)
    w = np.maximum(hits, 1e-9).astype(np.float64)
    means = np.stack([np.average(share[group == i], axis=0, weights=w[group == i]) for i in range(k)])
    means /= means.sum(axis=1, keepdims=True)
    totals = np.array([np.average(node_totals[group == i], weights=w[group == i]) for i in range(k)])
    options = _blend_options(means) if k >= 3 else {}

    def parts(blends: dict[int, tuple[int, int]]) -> np.ndarray:
        # each node of a blend to the part that holds most of its area
        return resolve(group, share, blends, means, totals) if blends else group.copy()

    return group, options, parts


def _kmeanspp(x, k: int, gen):
    """k-means++ seeding: each new node drawn with probability proportional to D^2, so small
    spectral groups get a node of their own instead of all nodes landing in the big regions."""
    import torch

    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centres = [x[first]]
    d2 = ((x - centres[0]) ** 2).sum(dim=1)
    for _ in range(1, k):
        p = (d2 / d2.sum().clamp_min(1e-30)).cpu()
        nxt = (
            int(torch.multinomial(p, 1, generator=gen))
            if float(p.sum()) > 0
            else int(torch.randint(n, (1,), generator=gen))
        )
        centres.append(x[nxt])
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(dim=1))
    return torch.stack(centres).clone()


def som_sample(n_pix: int, *, seed: int = 0, n_fit: int = 50000, **params) -> np.ndarray:
    """The pixels :func:`som` trains on (flat indices), drawn with ``seed``; the same pixels
    decide its number of clusters (``n_clusters="auto"``)."""
    return np.random.default_rng(seed).choice(n_pix, size=min(n_fit, n_pix), replace=False)


def som(
    features: Features,
    *,
    rows: int = 16,
    cols: int = 16,
    epochs: int = 10,
    batch_size: int = 4096,
    lr: tuple[float, float] = (0.5, 0.02),
    sigma: tuple[float | None, float] = (None, 0.3),
    n_fit: int = 50000,
    n_clusters: int | str | None = "auto",
    device: str = "auto",
    seed: int = 0,
) -> Generator[Progress, None, tuple[np.ndarray, dict]]:
    """A batched self-organising map on torch (GPU when present), then its nodes clustered.

    The two-level scheme of Vesanto and Alhoniemi (IEEE Trans. Neural Netw. 11, 586, 2000):
    a map with more nodes than the image has materials (16 x 16: nodes then hold one paint
    each), whose nodes are then joined. ``n_clusters="auto"`` decides the count from the data
    (issue 31): grid neighbours where pixels are dense and whose codebooks lie within
    :data:`JOIN_NOISE` times a pixel's Poisson noise are one paint, the sparse nodes between
    paints go to the nearest paint, and paints that are blends of two others where those
    meet are given to them (:func:`_join_on_map`, :mod:`~xray_atlas.cluster.blends`), and
    paints whose pixels leave no gap between them (one paint along its thickness) are joined
    (:func:`~.blends.join_continua`); a whole number joins the nodes by Ward's clustering
    into that many groups. Study 003's plain 3 x 3 map is ``rows=3, cols=3, n_clusters=None``.

    Parameters
    ----------
    rows, cols : int
        Grid of nodes (study 003: 3 x 3; 8 x 8 before issue 31). Nodes are seeded k-means++ style, so that small
        spectral groups get a node of their own.
    epochs : int
        Passes over the fitted pixels.
    batch_size : int
        Pixels per batch-SOM update.
    lr : (start, end)
        Learning rate, decaying exponentially.
    sigma : (start, end)
        Neighbourhood width in grid units; start None = half the grid's larger side.
    n_fit : int
        Pixels the map is trained on (a random subsample).
    n_clusters : 'auto', int or None
        Clusters the nodes are joined into ('auto': decided from the data, see above); None
        keeps one cluster per node.
    device : str
        ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    """
    import torch

    from ..devices import resolve_device

    n_pix = features.n_pixels
    n_clusters = check_som(
        n_pix,
        rows=rows,
        cols=cols,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        sigma=sigma,
        n_fit=n_fit,
        n_clusters=n_clusters,
        device=device,
    )
    n_nodes = rows * cols
    dev = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    idx = som_sample(n_pix, seed=seed, n_fit=n_fit)
    x = torch.from_numpy(features.take(idx)).to(dev)
    grid = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij"), -1).reshape(-1, 2)
    grid_d2 = torch.cdist(grid.float(), grid.float()).pow(2).to(dev)  # (nodes, nodes)
    w = _kmeanspp(x, n_nodes, gen)  # codebook (nodes, D), spread over the data
    s0 = sigma[0] if sigma[0] is not None else max(rows, cols) / 2.0
    s1 = sigma[1]
    steps = epochs * -(-x.shape[0] // batch_size)
    step = 0
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen).to(dev)
        for a in range(0, x.shape[0], batch_size):
            frac = step / max(steps - 1, 1)
            s = s0 * (s1 / s0) ** frac
            eta = lr[0] * (lr[1] / lr[0]) ** frac
            xb = x[perm[a : a + batch_size]]  # (B, D)
            bmu = torch.cdist(xb, w).argmin(dim=1)  # (B,)
            h = torch.exp(-grid_d2[bmu] / (2 * s * s))  # (B, nodes)
            num = h.T @ xb  # (nodes, D)
            den = h.sum(dim=0)[:, None]  # (nodes, 1)
            target = num / den.clamp_min(1e-12)
            w += eta * (den > 1e-6) * (target - w)
            step += 1
        yield Progress(epoch + 1, epochs + 1, "som")
    codebook = w.cpu().numpy()
    wt = torch.from_numpy(codebook).to(dev)

    def nearest(values: np.ndarray) -> np.ndarray:
        out = np.empty(values.shape[0], np.int32)
        for a in range(0, values.shape[0], 65536):
            xb = torch.from_numpy(np.ascontiguousarray(values[a : a + 65536])).to(dev)
            out[a : a + 65536] = torch.cdist(xb, wt).argmin(dim=1).cpu().numpy()
        return out

    joined = x_fit = nodes_fit = None
    if n_clusters == "auto":  # the count from the data: the nodes' groups that noise cannot join
        x_fit = features.take(idx)
        sigma = 0.5 / np.sqrt(max(float(np.median(features.totals[idx])), 1.0))
        nodes_fit = nearest(x_fit)
        hits = np.bincount(nodes_fit, minlength=n_nodes)
        node_totals = np.bincount(nodes_fit, weights=features.totals[idx], minlength=n_nodes) / np.maximum(hits, 1)
        joined = _join_on_map(codebook, hits, node_totals, sigma, features, (rows, cols))

    def finish(node_of: np.ndarray) -> tuple[np.ndarray, dict]:
        cluster_of_node = np.arange(n_nodes)
        used = np.unique(node_of)
        extra = {}
        if joined is not None:
            group, candidates, parts = joined
            blends = confirm(group[node_of].reshape(features.shape), candidates)
            is_blend = np.isin(group, list(blends))
            cluster_of_node = parts(blends)
            # blends' pixels, given to their parts, would fill the gap between those parts
            to = join_continua(
                np.where(is_blend[nodes_fit], -1, cluster_of_node[nodes_fit]), x_fit, int(cluster_of_node.max()) + 1
            )
            cluster_of_node = np.where(cluster_of_node >= 0, to[np.maximum(cluster_of_node, 0)], -1)
            extra = {"blend_candidates": candidates, "blends": blends}
        elif n_clusters is not None and used.size > 1:
            cluster_of_node = _join_nodes(codebook, used, n_clusters)
        # renumber by size, largest first, skipping nodes no pixel chose
        per_node = np.bincount(node_of, minlength=n_nodes)
        chosen = per_node > 0
        counts = np.bincount(
            cluster_of_node[chosen], weights=per_node[chosen], minlength=max(cluster_of_node.max(), 0) + 1
        ).astype(np.int64)
        kept = np.flatnonzero(counts > 0)
        order = kept[np.argsort(-counts[kept])]
        remap = np.full(max(cluster_of_node.max(), 0) + 1, -1)
        remap[order] = np.arange(order.size)
        node_cluster = np.where(cluster_of_node >= 0, remap[np.maximum(cluster_of_node, 0)], -1)
        return node_cluster, {
            "codebook": codebook,
            "node_of_pixel": node_of,
            "cluster_of_node": node_cluster,
            **extra,
        }

    yield Progress(epochs + 1, epochs + 1, "som")
    return Assigner(nearest, finish, n_nodes)
