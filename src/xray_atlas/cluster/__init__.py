"""Clustering the pixels of a cube by their spectra.

Two tables, :data:`METHODS` and :data:`PARAMS`, map a name to its function and its declared
parameters (:func:`parameter_table`); the command line (``xray-atlas cluster --method``) and
the napari dock both read them, so a new method appears in both.

Memory is bounded whatever the cube's size (issues 31 and 33): a first pass over the cube's
tiles keeps the features of the pixels the PCA and the method fit on (drawn with the seed
before any counts are read) and every pixel's total; the method fits on those alone; a
second pass computes each tile's features, labels its pixels and sums their spectra. Only
per-pixel scalars (totals, labels) grow with the cube (docs/dev/memory.md).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..cube import TILE_BYTES, Progress, SpectralCube, run_to_end
from ..errors import XrayAtlasError
from ..params import Param, table_defaults
from .features import FEATURE_PARAMS, NORMALISATIONS, Features, check_features, iter_features
from .methods import (
    SOM_PARAMS,
    UMAP_HDBSCAN_PARAMS,
    Assigner,
    check_som,
    check_umap_hdbscan,
    som,
    som_sample,
    umap_hdbscan,
    umap_hdbscan_sample,
)

__all__ = [
    "METHODS",
    "ClusterResult",
    "iter_cluster",
    "iter_cluster_in_child",
    "sum_by_group",
    "FittedClustering",
    "RowIds",
    "iter_fit",
    "iter_assign_rows",
    "assemble",
    "cluster_cube",
    "method_parameters",
    "parameter_table",
    "cluster_spectra",
    "NORMALISATIONS",
]

#: Method name -> function(features, **params) yielding Progress and returning an
#: :class:`~xray_atlas.cluster.methods.Assigner` (labels of any tile's features).
METHODS: dict[str, Callable[..., Generator[Progress, None, Assigner]]] = {
    "umap-hdbscan": umap_hdbscan,
    "som": som,
}

#: Method name -> its parameter check (run before any work, so bad input fails at once).
CHECKS: dict[str, Callable[..., Any]] = {"umap-hdbscan": check_umap_hdbscan, "som": check_som}

#: Method name -> function(n_pixels, seed=, **params) giving the pixels (flat indices) it fits
#: on, whose features the first pass keeps.
SAMPLES: dict[str, Callable[..., Any]] = {
    "umap-hdbscan": umap_hdbscan_sample,
    "som": som_sample,
}

#: Method name -> its parameters (:class:`~xray_atlas.params.Param`), declared beside it.
PARAMS: dict[str, dict[str, Param]] = {"umap-hdbscan": UMAP_HDBSCAN_PARAMS, "som": SOM_PARAMS}

#: Parameters of the feature step, shared by every method (name -> default).
FEATURE_PARAMETERS = table_defaults(FEATURE_PARAMS)


def parameter_table(method: str) -> dict[str, Param]:
    """The parameters of a method (the feature step's first), for the command line and forms."""
    if method not in METHODS:
        raise XrayAtlasError(f"method={method!r}; choose one of {', '.join(METHODS)}")
    return {**FEATURE_PARAMS, **PARAMS[method]}


def method_parameters(method: str) -> dict[str, Any]:
    """Default parameters of a method (the feature step's first)."""
    return table_defaults(parameter_table(method))


@dataclass
class ClusterResult:
    """Labels (H, W) int32 with -1 for noise, mean spectra (K, C), sizes (K,), and details."""

    labels: np.ndarray
    spectra: np.ndarray
    sizes: np.ndarray
    method: str
    params: dict
    info: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.spectra.shape[0])

    @property
    def accumulated(self) -> np.ndarray:
        """(K, C) summed spectrum of each cluster: counts of a whole region, for element
        identification at region-level statistics."""
        return self.spectra * self.sizes[:, None].astype(np.float32)


def sum_by_group(sums: np.ndarray, groups: np.ndarray, flat: np.ndarray, *, dtype: Any = np.float32) -> None:
    """Add each pixel's spectrum (the rows of ``flat``, (N, C)) to ``sums[group]`` ((K, C), in
    place); pixels of a negative group (noise) are left out. One matrix product of a one-hot
    (K, pixels) matrix of ``dtype`` and the spectra, per tile."""
    ok = groups >= 0
    m = int(ok.sum())
    if not (len(sums) and m):
        return
    onehot = np.zeros((len(sums), m), dtype)
    onehot[groups[ok], np.arange(m)] = 1.0
    sums += onehot @ (flat if m == len(groups) else flat[ok]).astype(dtype)


def iter_cluster_spectra(
    cube: SpectralCube, labels: np.ndarray, *, tile_bytes: int = TILE_BYTES
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray]]:
    """Mean raw spectrum and size of each cluster (labels >= 0), streamed over the cube."""
    lab = np.asarray(labels).reshape(cube.height, cube.width)
    k = int(lab.max()) + 1 if lab.size and lab.max() >= 0 else 0
    sums = np.zeros((k, cube.n_channels))
    sizes = np.bincount(lab[lab >= 0].ravel(), minlength=k) if k else np.zeros(0, int)
    step = cube.tile_rows(tile_bytes)
    n = -(-cube.height // step)
    for i, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes)):
        sum_by_group(sums, lab[rows].ravel(), block.reshape(-1, cube.n_channels))
        yield Progress(i + 1, n, "cluster spectra")
    return (sums / np.maximum(sizes, 1)[:, None]).astype(np.float32), sizes


def cluster_spectra(cube: SpectralCube, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean spectrum and size of each cluster; see :func:`iter_cluster_spectra`."""
    return run_to_end(iter_cluster_spectra(cube, labels))


@dataclass
class FittedClustering:
    """A clustering fitted on its sample (:func:`iter_fit`): what labels any block of rows
    (:func:`iter_assign_rows`) and, given every block's ids, makes the result
    (:func:`finish`). Picklable (with cloudpickle, as dask sends it to the workers): the
    feature map (its PCA and the sample's features) and the method's
    :class:`~xray_atlas.cluster.methods.Assigner`."""

    method: str
    params: dict  #: the feature step's and the method's parameters, and the seed
    features: Features
    assigner: Assigner


@dataclass
class RowIds:
    """What :func:`iter_assign_rows` gives for a block of rows: every pixel's id (rows x W,
    flat, int32, -1 for noise) and each id's summed spectrum (float64) and pixel count; the
    sums and counts of blocks add up."""

    ids: np.ndarray
    sums: np.ndarray
    sizes: np.ndarray


def _checked(
    cube: SpectralCube, method: str, tile_bytes: int, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The feature step's parameters and the method's, checked against the cube."""
    defaults = method_parameters(method)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise XrayAtlasError(
            f"unknown parameter(s) for method {method!r}: {', '.join(unknown)}; known: {', '.join(sorted(defaults))}"
        )
    if not (isinstance(tile_bytes, (int, np.integer)) and tile_bytes >= 1):
        raise XrayAtlasError(f"tile_bytes={tile_bytes!r} must be a positive number of bytes")
    params = dict(params)
    chosen = "pca_components" in params
    feat_kw = {k: params.pop(k, FEATURE_PARAMETERS[k]) for k in FEATURE_PARAMETERS}
    check_features(cube, **feat_kw, chosen=chosen)
    CHECKS[method](cube.height * cube.width, **params)
    return feat_kw, params


def iter_cluster(
    cube: SpectralCube, method: str = "umap-hdbscan", *, seed: int = 0, tile_bytes: int = TILE_BYTES, **params: Any
) -> Generator[Progress, None, ClusterResult]:
    """Cluster every pixel in two passes over the cube's tiles (``tile_bytes`` at a time):
    the features of a sample and every pixel's total, then, after the method's fit on the
    sample, each tile's labels and spectra. Memory holds a tile, the sample and a few
    numbers per pixel, never the pixels' spectra or features.

    Parameters are checked here, before the generator starts, so that bad input fails at
    once (in the command line, and in napari before a worker is started).
    """
    feat_kw, params = _checked(cube, method, tile_bytes, params)
    return _iter_cluster(cube, method, seed, feat_kw, params, int(tile_bytes))


def iter_cluster_in_child(
    cube: SpectralCube,
    method: str = "umap-hdbscan",
    *,
    seed: int = 0,
    tile_bytes: int = TILE_BYTES,
    nice: int = 0,
    **params: Any,
) -> Generator[Progress, None, ClusterResult]:
    """:func:`iter_cluster` in a spawned child process, for a GUI's worker thread.

    UMAP's and HDBSCAN's compiled (numba) loops hold Python's GIL for up to 0.66 s at a time
    (docs/benchmarks.md): on a thread of napari's process they froze its window. In a child
    process they freeze nothing, and closing the generator (Cancel) ends the child at once.
    The child opens the cube again from its file (HDF5 dataset, .npy memory map) or gets a
    copy of counts held in memory (:func:`xray_atlas._processes.cube_source`); counts that
    cannot go to another process (a dask array over local functions) are clustered by
    :func:`iter_cluster` on the calling thread. The labels and spectra equal
    :func:`iter_cluster`'s. Parameters as :func:`iter_cluster`'s, checked here before any
    process starts; ``nice`` lowers the child's priority (0 to 19).
    """
    from .._processes import cube_source, iter_in_child

    _checked(cube, method, tile_bytes, params)
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
        raise XrayAtlasError(f"nice={nice!r}; give a whole number from 0 to 19")
    source = cube_source(cube)
    if not source.portable:
        return iter_cluster(cube, method, seed=seed, tile_bytes=tile_bytes, **params)
    job = (source, method, seed, int(tile_bytes), params)
    return iter_in_child(_cluster_source, job, what=f"{method} clustering", nice=nice)


def _cluster_source(
    source: Any, method: str, seed: int, tile_bytes: int, params: dict
) -> Generator[Progress, None, ClusterResult]:
    """The child's side of :func:`iter_cluster_in_child`."""
    cube = source.open()
    try:
        return (yield from iter_cluster(cube, method, seed=seed, tile_bytes=tile_bytes, **params))
    finally:
        cube.close()


def iter_fit(
    cube: SpectralCube, method: str = "umap-hdbscan", *, seed: int = 0, tile_bytes: int = TILE_BYTES, **params: Any
) -> Generator[Progress, None, FittedClustering]:
    """The first pass of :func:`iter_cluster` and the method's fit on the sample, as a
    :class:`FittedClustering` that labels blocks of rows anywhere (``xray-atlas batch cluster
    --split-rows``). Parameters as :func:`iter_cluster`'s, checked before the generator starts."""
    feat_kw, params = _checked(cube, method, tile_bytes, params)
    return _iter_fit(cube, method, seed, feat_kw, params, int(tile_bytes))


def _iter_fit(
    cube: SpectralCube, method: str, seed: int, feat_kw: dict, params: dict, tile_bytes: int
) -> Generator[Progress, None, FittedClustering]:
    keep = SAMPLES[method](cube.height * cube.width, seed=seed, **params)
    feats: Features = yield from iter_features(cube, seed=seed, keep=keep, tile_bytes=tile_bytes, **feat_kw)
    fitted: Assigner = yield from METHODS[method](feats, seed=seed, **params)
    return FittedClustering(method, {**feat_kw, **params, "seed": seed}, feats, fitted)


def _iter_cluster(
    cube: SpectralCube, method: str, seed: int, feat_kw: dict, params: dict, tile_bytes: int
) -> Generator[Progress, None, ClusterResult]:
    fit = yield from _iter_fit(cube, method, seed, feat_kw, params, tile_bytes)
    got = yield from iter_assign_rows(cube, fit, tile_bytes=tile_bytes)
    return assemble(cube, fit, [got])


def iter_assign_rows(
    cube: SpectralCube, fit: FittedClustering, rows: slice | None = None, *, tile_bytes: int = TILE_BYTES
) -> Generator[Progress, None, RowIds]:
    """Second pass, over the tiles of a block of ``rows`` (all for None): every pixel's
    features and id, and the summed spectrum and size of each id."""
    rows = cube.check_rows(rows)
    if (cube.height, cube.width) != tuple(fit.features.shape):
        raise XrayAtlasError(
            f"the cube has {cube.height} x {cube.width} pixels; the clustering was fitted on "
            f"{fit.features.shape[0]} x {fit.features.shape[1]}",
            path=cube.path,
        )
    fitted = fit.assigner
    n = fitted.n_ids
    ids = np.empty((rows.stop - rows.start) * cube.width, np.int32)
    sums = np.zeros((n, cube.n_channels))
    sizes = np.zeros(n, np.int64)
    n_tiles = -(-(rows.stop - rows.start) // cube.tile_rows(tile_bytes))
    for i, (tile, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes, rows=rows)):
        a, b = (tile.start - rows.start) * cube.width, (tile.stop - rows.start) * cube.width
        flat = block.reshape(-1, cube.n_channels)
        tid = fitted.assign(fit.features.of(flat))
        ids[a:b] = tid
        sum_by_group(sums, tid, flat)
        if n:
            sizes += np.bincount(tid[tid >= 0], minlength=n)
        yield Progress(i + 1, n_tiles, "assign")
    return RowIds(ids, sums, sizes)


def assemble(cube: SpectralCube, fit: FittedClustering, parts: list[RowIds]) -> ClusterResult:
    """The result of ``fit`` from the :class:`RowIds` of blocks that cover the cube's rows in
    order: labels (the method's final numbering of the ids) and each label's mean spectrum
    (the blocks' sums added in float64)."""
    ids = parts[0].ids if len(parts) == 1 else np.concatenate([p.ids for p in parts])
    if ids.size != cube.height * cube.width:
        raise XrayAtlasError(
            f"the blocks of rows hold {ids.size} pixels; the cube has {cube.height} x {cube.width}", path=cube.path
        )
    sums = parts[0].sums if len(parts) == 1 else np.sum([p.sums for p in parts], axis=0)
    sizes = parts[0].sizes if len(parts) == 1 else np.sum([p.sizes for p in parts], axis=0)
    feats = fit.features
    lut, info = fit.assigner.finish(ids)
    labels = np.where(ids >= 0, lut[np.maximum(ids, 0)] if lut.size else -1, -1).astype(np.int32)
    del ids
    labels = labels.reshape(cube.height, cube.width)
    # each label's spectra are the sums over the ids it joins (a SOM's nodes), added in float64
    k = int(lut.max()) + 1 if lut.size and lut.max() >= 0 else 0
    spectra = np.zeros((k, cube.n_channels))
    counts = np.zeros(k, np.int64)
    for i in np.flatnonzero(lut >= 0):
        spectra[lut[i]] += sums[i]
        counts[lut[i]] += sizes[i]
    spectra = (spectra / np.maximum(counts, 1)[:, None]).astype(np.float32)
    if "codebook" in info:  # SOM nodes back in spectral space: binned, normalised spectra
        info["codebook_spectra"] = feats.pca.inverse_transform(info["codebook"]).astype(np.float32)
        ch = feats.channels
        info["codebook_energy_kev"] = cube.energy[ch].reshape(-1, feats.bin).mean(axis=1)
    return ClusterResult(labels, spectra, counts, fit.method, dict(fit.params), {**info, "features": feats})


def cluster_cube(cube: SpectralCube, method: str = "umap-hdbscan", **params: Any) -> ClusterResult:
    """Cluster a cube; see :func:`iter_cluster` and :data:`METHODS`."""
    return run_to_end(iter_cluster(cube, method, **params))
