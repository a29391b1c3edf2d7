"""Clustering the pixels of a cube by their spectra.

One table, :data:`METHODS`, maps a name to its function and its parameters; the command
line (``xray-atlas cluster --method``) and the napari dock both read it, so a new method
appears in both.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

import numpy as np

from ..cube import TILE_BYTES, Progress, SpectralCube, run_to_end
from ..errors import XrayAtlasError
from .features import NORMALISATIONS, Features, check_features, iter_features
from .methods import check_som, check_umap_hdbscan, som, umap_hdbscan

__all__ = ["METHODS", "ClusterResult", "iter_cluster", "cluster_cube", "method_parameters", "cluster_spectra",
           "NORMALISATIONS"]

#: Method name -> function(features, **params) yielding Progress and returning (labels, info).
METHODS: dict[str, Callable[..., Generator[Progress, None, tuple[np.ndarray, dict]]]] = {
    "umap-hdbscan": umap_hdbscan,
    "som": som,
}

#: Method name -> its parameter check (run before any work, so bad input fails at once).
CHECKS: dict[str, Callable[..., Any]] = {"umap-hdbscan": check_umap_hdbscan, "som": check_som}

#: Parameters of the feature step, shared by every method.
FEATURE_PARAMETERS = {"trim": 100, "bin": 8, "normalise": "sqrt-total", "pca_components": 20}


def method_parameters(method: str) -> dict[str, Any]:
    """Default parameters of a method (the feature step's first), for forms and ``--help``."""
    if method not in METHODS:
        raise XrayAtlasError(f"method={method!r}; choose one of {', '.join(METHODS)}")
    sig = inspect.signature(METHODS[method])
    own = {k: p.default for k, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY and k != "seed"}
    return {**FEATURE_PARAMETERS, **own}


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


def iter_cluster_spectra(cube: SpectralCube, labels: np.ndarray, *,
                         tile_bytes: int = TILE_BYTES) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray]]:
    """Mean raw spectrum and size of each cluster (labels >= 0), streamed over the cube."""
    lab = np.asarray(labels).reshape(cube.height, cube.width)
    k = int(lab.max()) + 1 if lab.size and lab.max() >= 0 else 0
    sums = np.zeros((k, cube.n_channels))
    sizes = np.bincount(lab[lab >= 0].ravel(), minlength=k) if k else np.zeros(0, int)
    step = cube.tile_rows(tile_bytes)
    n = -(-cube.height // step)
    for i, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes)):
        tl = lab[rows].ravel()
        flat = block.reshape(-1, cube.n_channels)
        ok = tl >= 0
        if k and ok.any():
            onehot = np.zeros((k, int(ok.sum())), np.float32)
            onehot[tl[ok], np.arange(int(ok.sum()))] = 1.0
            sums += onehot @ flat[ok].astype(np.float32)
        yield Progress(i + 1, n, "cluster spectra")
    return (sums / np.maximum(sizes, 1)[:, None]).astype(np.float32), sizes


def cluster_spectra(cube: SpectralCube, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean spectrum and size of each cluster; see :func:`iter_cluster_spectra`."""
    return run_to_end(iter_cluster_spectra(cube, labels))


def iter_cluster(cube: SpectralCube, method: str = "umap-hdbscan", *, seed: int = 0,
                 **params: Any) -> Generator[Progress, None, ClusterResult]:
    """Cluster every pixel: features (one pass), the method, mean spectra (second pass).

    Parameters are checked here, before the generator starts, so that bad input fails at
    once (in the command line, and in napari before a worker is started).
    """
    defaults = method_parameters(method)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise XrayAtlasError(f"unknown parameter(s) for method {method!r}: {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(defaults))}")
    params = dict(params)
    chosen = "pca_components" in params
    feat_kw = {k: params.pop(k, FEATURE_PARAMETERS[k]) for k in FEATURE_PARAMETERS}
    check_features(cube, **feat_kw, chosen=chosen)
    CHECKS[method](cube.height * cube.width, **params)
    return _iter_cluster(cube, method, seed, feat_kw, params)


def _iter_cluster(cube: SpectralCube, method: str, seed: int, feat_kw: dict,
                  params: dict) -> Generator[Progress, None, ClusterResult]:
    feats: Features = yield from iter_features(cube, seed=seed, **feat_kw)
    labels, info = yield from METHODS[method](feats, seed=seed, **params)
    labels = labels.reshape(cube.height, cube.width)
    if "codebook" in info:  # SOM nodes back in spectral space: binned, normalised spectra
        info["codebook_spectra"] = feats.pca.inverse_transform(info["codebook"]).astype(np.float32)
        ch = feats.channels
        info["codebook_energy_kev"] = cube.energy[ch].reshape(-1, feats.bin).mean(axis=1)
    spectra, sizes = yield from iter_cluster_spectra(cube, labels)
    return ClusterResult(labels, spectra, sizes, method, {**feat_kw, **params, "seed": seed},
                         {**info, "features": feats})


def cluster_cube(cube: SpectralCube, method: str = "umap-hdbscan", **params: Any) -> ClusterResult:
    """Cluster a cube; see :func:`iter_cluster` and :data:`METHODS`."""
    return run_to_end(iter_cluster(cube, method, **params))
