"""Refining clusters by hand: split one, merge several, give a painted region a cluster, undo.

A conservator knows which regions of a painting should differ. These functions change a
clustering the way they ask and return new labels with the mean spectra and sizes that go
with them; the input is never changed. :class:`Refinement` keeps the current clustering and
an undo history of earlier ones.

Labels follow :class:`~xray_atlas.cluster.ClusterResult`: (H, W) int32, clusters 0..K-1,
-1 for noise; ``spectra`` (K, C) are the clusters' mean raw spectra.

Numbering rule (compact and stable): clusters are always numbered 0..K-1 without gaps, and
a change keeps every untouched cluster's relative order.

* :func:`split`: the largest part keeps the split cluster's number; the other parts are
  appended as K, K+1, ... largest first (parts of the noise are all appended).
* :func:`merge`: the merged cluster takes the lowest of the merged numbers; the others are
  removed and the numbers above each shift down by one.
* :func:`reassign`: the region joins an existing cluster, the noise (-1) or a new cluster
  appended as K; a cluster left without pixels is removed and the numbers above it shift down.

Mean spectra are updated only for the clusters a change touches, reading only the touched
pixels from the cube, tile by tile (bounded memory, as everywhere in :mod:`xray_atlas.cube`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cube import TILE_BYTES, Progress, SpectralCube, run_to_end
from ..errors import XrayAtlasError
from . import sum_by_group
from .features import check_features, iter_features

__all__ = ["Refined", "Refinement", "iter_split", "split", "merge", "iter_reassign", "reassign", "DEPTH"]

#: Undo steps a :class:`Refinement` keeps by default: each holds one (H, W) int32 labels array.
DEPTH = 20


@dataclass(frozen=True)
class Refined:
    """A clustering after a change.

    Attributes
    ----------
    labels : (H, W) int32
        Clusters 0..K-1, -1 for noise.
    spectra : (K, C) float32
        Mean raw spectrum of each cluster.
    sizes : (K,) int64
        Pixels of each cluster.
    touched : tuple of int
        Numbers (in ``labels``) of the clusters whose pixels changed.
    """

    labels: np.ndarray
    spectra: np.ndarray
    sizes: np.ndarray
    touched: tuple = ()

    @property
    def n_clusters(self) -> int:
        return int(self.spectra.shape[0])


# -- checks -------------------------------------------------------------------------------


def _check_state(labels: Any, spectra: Any) -> tuple[np.ndarray, np.ndarray]:
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "iu":
        raise XrayAtlasError(f"labels must be an (H, W) integer array; got {lab.ndim}-D {lab.dtype}")
    spec = np.asarray(spectra)
    if spec.ndim != 2:
        raise XrayAtlasError(f"spectra must be (clusters, channels); got shape {spec.shape}")
    if lab.size and (lab.min() < -1 or lab.max() >= spec.shape[0]):
        raise XrayAtlasError(
            f"labels hold {int(lab.min())}..{int(lab.max())}; expected -1 (noise) or "
            f"0..{spec.shape[0] - 1} for the {spec.shape[0]} clusters of spectra"
        )
    return lab, spec


def _check_cube(cube: Any, lab: np.ndarray, spec: np.ndarray) -> None:
    if not isinstance(cube, SpectralCube):
        raise XrayAtlasError(f"cube must be a SpectralCube; got {type(cube).__name__}")
    if lab.shape != (cube.height, cube.width):
        raise XrayAtlasError(f"labels are {lab.shape[0]} x {lab.shape[1]}, the cube {cube.height} x {cube.width}")
    if spec.shape[1] != cube.n_channels:
        raise XrayAtlasError(f"spectra have {spec.shape[1]} channels, the cube {cube.n_channels}")


def _check_cluster(name: str, value: Any, k: int, *, noise: bool) -> int:
    lo = -1 if noise else 0
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value < k:
        what = "-1 (noise) or " if noise else ""
        raise XrayAtlasError(f"{name}={value!r} must be {what}a cluster 0..{k - 1}")
    return int(value)


def _sizes(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels[labels >= 0].ravel(), minlength=k).astype(np.int64)


def _compact(labels: np.ndarray, spectra: np.ndarray, sizes: np.ndarray, touched: list[int]) -> Refined:
    """Drop clusters without pixels, renumbering the rest 0..K-1 in their order."""
    keep = np.flatnonzero(sizes > 0)
    if keep.size == sizes.size:
        return Refined(labels, spectra.astype(np.float32), sizes, tuple(sorted(set(touched))))
    new_of = np.full(sizes.size + 1, -1, np.int32)  # index 0 is the noise (-1)
    new_of[keep + 1] = np.arange(keep.size, dtype=np.int32)
    labels = new_of[labels + 1]
    moved = tuple(sorted({int(new_of[t + 1]) for t in touched if sizes[t] > 0}))
    return Refined(labels, spectra[keep].astype(np.float32), sizes[keep], moved)


# -- reading the pixels of a mask ---------------------------------------------------------------


class _Pixels:
    """The pixels of ``mask`` as a lazy (N, 1, C) array, in row-major order.

    Reading pixels a..b reads only the cube rows that hold them, a cube tile at a time, and
    only the columns between their leftmost and rightmost; consecutive reads walk down the
    cube, so a pass over all N pixels reads each of those rows about once.
    """

    def __init__(self, cube: SpectralCube, mask: np.ndarray, tile_bytes: int):
        self.cube = cube
        self.ys, self.xs = np.nonzero(mask)
        c = cube.n_channels
        self.shape = (int(self.ys.size), 1, c)
        self.dtype = cube.dtype
        self.ndim = 3
        self.tile_rows = cube.tile_rows(tile_bytes)

    def __getitem__(self, index: Any) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        rows, channels = index[0], (index[2] if len(index) > 2 else slice(None))
        if isinstance(rows, (int, np.integer)):
            rows = slice(int(rows), int(rows) + 1)
        a, b, _ = rows.indices(self.shape[0])
        ys, xs = self.ys[a:b], self.xs[a:b]
        n_ch = len(range(*channels.indices(self.shape[2]))) if isinstance(channels, slice) else len(channels)
        out = np.empty((ys.size, 1, n_ch), self.dtype)
        done = 0
        counts = self.cube.counts
        while done < ys.size:
            r0 = int(ys[done])
            r1 = r0 + self.tile_rows
            stop = done + int(np.searchsorted(ys[done:], r1, side="left"))
            part_x = xs[done:stop]
            c0, c1 = int(part_x.min()), int(part_x.max()) + 1
            r_last = int(ys[stop - 1]) + 1
            block = counts[r0:r_last, c0:c1, channels]
            if hasattr(block, "compute"):  # dask
                block = block.compute()
            block = np.asarray(block)
            out[done:stop, 0] = block[ys[done:stop] - r0, part_x - c0]
            done = stop
        if len(index) > 1 and not (isinstance(index[1], slice) and index[1] == slice(None)):
            out = out[:, index[1]]
        return out


def _pixel_cube(cube: SpectralCube, mask: np.ndarray, tile_bytes: int) -> SpectralCube:
    """A cube of the pixels of ``mask`` (N x 1), read lazily from ``cube``."""
    return SpectralCube(
        _Pixels(cube, mask, tile_bytes), energy=cube.energy if cube.calibrated else None, path=cube.path, name=cube.name
    )


def _iter_sums(
    cube: SpectralCube, mask: np.ndarray, groups: np.ndarray, n_groups: int, what: str, tile_bytes: int
) -> Generator[Progress, None, np.ndarray]:
    """(n_groups, C) float64 summed spectra of the pixels of ``mask`` by ``groups`` (the
    group of each of those pixels, in row-major order), streamed."""
    sums = np.zeros((n_groups, cube.n_channels))
    if not mask.any():
        return sums
    pix = _pixel_cube(cube, mask, tile_bytes)
    step = pix.tile_rows(tile_bytes)
    n = -(-pix.height // step)
    for i, (rows, block) in enumerate(pix.iter_tiles(tile_bytes=tile_bytes)):
        sum_by_group(sums, groups[rows], block.reshape(-1, cube.n_channels), dtype=np.float64)
        yield Progress(i + 1, n, what)
    return sums


# -- split --------------------------------------------------------------------------------


def iter_split(
    labels: Any,
    spectra: Any,
    cube: SpectralCube,
    cluster: int,
    *,
    k: int = 2,
    seed: int = 0,
    trim: int = 100,
    bin: int = 8,
    normalise: str = "sqrt-total",
    pca_components: int = 20,
    n_fit: int = 20000,
    tile_bytes: int = TILE_BYTES,
) -> Generator[Progress, None, Refined]:
    """Split one cluster into ``k`` by k-means on its own pixels' spectral features.

    The features (trim, bin, normalise, PCA: :func:`~xray_atlas.cluster.features.iter_features`)
    are computed for the cluster's pixels only, so the PCA describes the differences within
    the cluster, not across the painting. k-means (scikit-learn, k-means++ seeding, 10 starts)
    is fitted on up to ``n_fit`` of them and labels all. Arguments are checked before the
    generator starts.

    Parameters
    ----------
    labels : (H, W) int array
        Clusters 0..K-1, -1 for noise.
    spectra : (K, C) array
        Mean spectrum of each cluster.
    cube : SpectralCube
        The cube the clusters were found in.
    cluster : int
        The cluster to split, or -1 to cluster the noise pixels (all parts are then new clusters).
    k : int
        Parts, at least 2.
    seed : int
        Seed of the PCA's subsample and of k-means.
    trim, bin, normalise, pca_components : feature parameters
        As in :func:`~xray_atlas.cluster.iter_cluster`; use those of the original run.
    n_fit : int
        Pixels k-means is fitted on (a random subsample).

    Yields
    ------
    Progress
    Returns
    -------
    Refined
        Numbered as in the module's rule: the largest part keeps ``cluster``.
    """
    lab, spec = _check_state(labels, spectra)
    _check_cube(cube, lab, spec)
    cluster = _check_cluster("cluster", cluster, spec.shape[0], noise=True)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2:
        raise XrayAtlasError(f"k={k!r} must be a whole number >= 2")
    if not isinstance(n_fit, (int, np.integer)) or n_fit < k:
        raise XrayAtlasError(f"n_fit={n_fit!r} must be a whole number >= k")
    mask = lab == cluster
    n = int(mask.sum())
    if n < k:
        raise XrayAtlasError(f"cluster={cluster} holds {n} pixels: too few to split into k={k}")
    pix = _pixel_cube(cube, mask, tile_bytes)
    check_features(pix, trim=trim, bin=bin, normalise=normalise, pca_components=pca_components, chosen=False)
    return _iter_split(
        lab,
        spec,
        cube,
        cluster,
        mask,
        pix,
        int(k),
        int(seed),
        {"trim": trim, "bin": bin, "normalise": normalise, "pca_components": pca_components},
        int(n_fit),
        tile_bytes,
    )


def _iter_split(
    lab: np.ndarray,
    spec: np.ndarray,
    cube: SpectralCube,
    cluster: int,
    mask: np.ndarray,
    pix: SpectralCube,
    k: int,
    seed: int,
    feat_kw: dict,
    n_fit: int,
    tile_bytes: int,
) -> Generator[Progress, None, Refined]:
    import warnings

    from sklearn.cluster import KMeans

    # the PCA's sample holds the features of up to n_fit of the cluster's pixels; every
    # pixel's features are computed again tile by tile to label it (memory: one tile)
    feats = yield from iter_features(pix, seed=seed, n_fit=max(n_fit, k), tile_bytes=tile_bytes, **feat_kw)
    fit = feats.sample
    yield Progress(0, 1, "k-means")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct points than k: the empty parts are dropped below
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(fit)
    part = np.empty(pix.height, np.int64)
    for rows, block in pix.iter_tiles(tile_bytes=tile_bytes):
        part[rows] = km.predict(feats.of(block))
    yield Progress(1, 1, "k-means")
    counts = np.bincount(part, minlength=k)
    order = [int(p) for p in np.argsort(-counts, kind="stable") if counts[p] > 0]
    if len(order) < 2:
        raise XrayAtlasError(f"cluster={cluster}: its pixels' spectra do not differ enough to split")
    sums = yield from _iter_sums(cube, mask, part, k, "cluster spectra", tile_bytes)
    k_old = spec.shape[0]
    number = {}
    nxt = k_old
    for i, p in enumerate(order):
        if i == 0 and cluster >= 0:
            number[p] = cluster
        else:
            number[p] = nxt
            nxt += 1
    new_spec = np.zeros((nxt, spec.shape[1]), np.float32)
    new_spec[:k_old] = spec
    for p, num in number.items():
        new_spec[num] = sums[p] / counts[p]
    out = lab.astype(np.int32, copy=True)
    to = np.full(k, -1, np.int32)
    for p, num in number.items():
        to[p] = num
    out[mask] = to[part]
    return _compact(out, new_spec, _sizes(out, nxt), list(number.values()))


def split(labels: Any, spectra: Any, cube: SpectralCube, cluster: int, **kwargs: Any) -> Refined:
    """Split one cluster into ``k``; see :func:`iter_split`."""
    return run_to_end(iter_split(labels, spectra, cube, cluster, **kwargs))


# -- merge --------------------------------------------------------------------------------


def merge(labels: Any, spectra: Any, clusters: Any) -> Refined:
    """Merge clusters into one; no pixel is read (the mean of the union is the size-weighted
    mean of the means).

    Parameters
    ----------
    labels : (H, W) int array
        Clusters 0..K-1, -1 for noise.
    spectra : (K, C) array
        Mean spectrum of each cluster.
    clusters : sequence of int
        Two or more distinct clusters 0..K-1. They become the lowest of them; the numbers
        above each removed one shift down by one.

    Returns
    -------
    Refined
    """
    lab, spec = _check_state(labels, spectra)
    k = spec.shape[0]
    try:
        chosen = sorted({_check_cluster("clusters", c, k, noise=False) for c in clusters})
    except TypeError:
        raise XrayAtlasError(f"clusters={clusters!r} must be a sequence of cluster numbers") from None
    if len(chosen) < 2:
        raise XrayAtlasError(f"clusters={list(clusters)!r}: choose two or more different clusters to merge")
    sizes = _sizes(lab, k)
    target = chosen[0]
    w = sizes[chosen].astype(np.float64)
    new_spec = spec.astype(np.float32, copy=True)
    if w.sum() > 0:
        new_spec[target] = (w[:, None] * spec[chosen].astype(np.float64)).sum(axis=0) / w.sum()
    to = np.arange(k, dtype=np.int32)
    to[chosen] = target
    out = np.where(lab >= 0, to[np.maximum(lab, 0)], -1).astype(np.int32)
    new_sizes = sizes.copy()
    new_sizes[target] = sizes[chosen].sum()
    new_sizes[chosen[1:]] = 0
    return _compact(out, new_spec, new_sizes, [target])


# -- reassign -----------------------------------------------------------------------------


def iter_reassign(
    labels: Any, spectra: Any, cube: SpectralCube, mask: Any, cluster: int | None, *, tile_bytes: int = TILE_BYTES
) -> Generator[Progress, None, Refined]:
    """Give the pixels of a (painted) region one cluster.

    Only the region's pixels are read: each cluster they leave loses their sum, the cluster
    they join gains it. A cluster left with less than half its pixels has its mean read again
    from its remaining pixels instead (subtracting most of a mean loses precision).

    Parameters
    ----------
    labels : (H, W) int array
        Clusters 0..K-1, -1 for noise.
    spectra : (K, C) array
        Mean spectrum of each cluster.
    cube : SpectralCube
    mask : (H, W) bool array
        The region.
    cluster : int or None
        An existing cluster 0..K-1, -1 for noise, or None for a new cluster (numbered K).

    Returns
    -------
    Refined
        Numbered as in the module's rule.
    """
    lab, spec = _check_state(labels, spectra)
    _check_cube(cube, lab, spec)
    k = spec.shape[0]
    target = k if cluster is None else _check_cluster("cluster", cluster, k, noise=True)
    m = np.asarray(mask)
    if m.shape != lab.shape:
        raise XrayAtlasError(f"mask has shape {m.shape}, expected {lab.shape} (the labels')")
    m = m.astype(bool)
    moved = m & (lab != target)
    if not moved.any():
        where = "no pixel" if not m.any() else f"only pixels already in cluster {target}"
        raise XrayAtlasError(f"mask selects {where}: nothing to reassign")
    return _iter_reassign(lab, spec, cube, moved, target, tile_bytes)


def _iter_reassign(
    lab: np.ndarray, spec: np.ndarray, cube: SpectralCube, moved: np.ndarray, target: int, tile_bytes: int
) -> Generator[Progress, None, Refined]:
    k = spec.shape[0]
    n_k = k + 1 if target == k else k
    sizes = _sizes(lab, k)
    src = lab[moved]  # old cluster of each moved pixel, row-major like the pixel cube
    sums = yield from _iter_sums(cube, moved, src + 1, k + 1, "region spectra", tile_bytes)  # 0: noise
    n_src = np.bincount(src + 1, minlength=k + 1)
    out = lab.astype(np.int32, copy=True)
    out[moved] = target
    new_sizes = _sizes(out, n_k)
    new_spec = np.zeros((n_k, spec.shape[1]), np.float64)
    new_spec[:k] = spec
    touched = [target] if target >= 0 else []
    again = []
    for c in np.flatnonzero(n_src[1:]):
        touched.append(int(c))
        left = new_sizes[c]
        if left == 0:
            continue
        if 2 * left < sizes[c]:
            again.append(int(c))
        else:
            new_spec[c] = np.maximum(sizes[c] * spec[c].astype(np.float64) - sums[c + 1], 0.0) / left
    if target >= 0:
        gained = sums.sum(axis=0)
        had = sizes[target] if target < k else 0
        base = had * spec[target].astype(np.float64) if target < k else 0.0
        new_spec[target] = (base + gained) / (had + moved.sum())
    if again:
        sel = np.isin(out, again)
        group = np.searchsorted(again, out[sel])
        resum = yield from _iter_sums(cube, sel, group, len(again), "cluster spectra", tile_bytes)
        for i, c in enumerate(again):
            new_spec[c] = resum[i] / new_sizes[c]
    return _compact(out, new_spec, new_sizes, touched)


def reassign(labels: Any, spectra: Any, cube: SpectralCube, mask: Any, cluster: int | None, **kwargs: Any) -> Refined:
    """Give a region one cluster; see :func:`iter_reassign`."""
    return run_to_end(iter_reassign(labels, spectra, cube, mask, cluster, **kwargs))


# -- undo history ---------------------------------------------------------------------------


class Refinement:
    """The current clustering and the earlier ones to go back to.

    Parameters
    ----------
    labels : (H, W) int array
        Clusters 0..K-1, -1 for noise.
    spectra : (K, C) array
        Mean spectrum of each cluster.
    depth : int
        Undo steps kept; the oldest is forgotten beyond it. Each step holds one (H, W) int32
        labels array and the (K, C) spectra.

    Examples
    --------
    >>> r = Refinement(result.labels, result.spectra)          # doctest: +SKIP
    >>> r.apply(merge(r.labels, r.spectra, [0, 2]))             # doctest: +SKIP
    >>> r.undo()                                                # doctest: +SKIP
    """

    def __init__(self, labels: Any, spectra: Any, *, depth: int = DEPTH):
        if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
            raise XrayAtlasError(f"depth={depth!r} must be a whole number >= 1")
        lab, spec = _check_state(labels, spectra)
        self._current = self._frozen(Refined(lab, spec, _sizes(lab, spec.shape[0])))
        self._history: deque[Refined] = deque(maxlen=int(depth))

    @staticmethod
    def _frozen(state: Refined) -> Refined:
        """Own, read-only copies: the history must not change when a caller edits its arrays."""
        arrays = []
        for a, dtype in ((state.labels, np.int32), (state.spectra, np.float32), (state.sizes, np.int64)):
            a = np.array(a, dtype=dtype, copy=True)
            a.setflags(write=False)
            arrays.append(a)
        return Refined(*arrays, touched=state.touched)

    @property
    def current(self) -> Refined:
        """The current clustering (read-only arrays)."""
        return self._current

    @property
    def labels(self) -> np.ndarray:
        return self._current.labels

    @property
    def spectra(self) -> np.ndarray:
        return self._current.spectra

    @property
    def sizes(self) -> np.ndarray:
        return self._current.sizes

    @property
    def n_undo(self) -> int:
        """Changes that :meth:`undo` can take back."""
        return len(self._history)

    def apply(self, refined: Refined) -> Refined:
        """Make ``refined`` current, keeping the present clustering for :meth:`undo`."""
        if not isinstance(refined, Refined):
            raise XrayAtlasError(f"refined must be a Refined; got {type(refined).__name__}")
        if refined.labels.shape != self.labels.shape:
            raise XrayAtlasError(f"refined labels are {refined.labels.shape}, the clustering's {self.labels.shape}")
        self._history.append(self._current)
        self._current = self._frozen(refined)
        return self._current

    def undo(self) -> Refined:
        """Go back to the clustering before the last change; returns it."""
        if not self._history:
            raise XrayAtlasError("nothing to undo")
        self._current = self._history.pop()
        return self._current
