"""Spectral features for clustering, streamed over the cube: trim, bin, normalise, PCA.

Study 003 dropped 100 channels at each end of the spectrum to get rid of artefact clusters;
binning 8 channels (80 eV, about half the detector FWHM) keeps every peak and cuts the work
eightfold; dividing by the pixel's total and taking the square root makes clusters follow
composition rather than paint thickness or dwell, and evens out Poisson variance; a
randomised PCA fitted on a subsample keeps the structure in a few tens of dimensions.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cube import TILE_BYTES, Progress, SpectralCube
from ..errors import XrayAtlasError
from ..params import Param

__all__ = ["Features", "iter_features", "check_features", "NORMALISATIONS", "FEATURE_PARAMS"]

NORMALISATIONS = ("sqrt-total", "total", "sqrt", "anscombe", "none")

#: Parameters of the feature step, shared by every clustering method (the keyword defaults of
#: :func:`iter_features`; their ranges depend on the cube, so :func:`check_features` checks them).
FEATURE_PARAMS = {
    "trim": Param(100, "channels left out at each end of the spectrum"),
    "bin": Param(8, "neighbouring channels summed into one feature bin"),
    "normalise": Param(
        "sqrt-total", "how each spectrum is scaled before the PCA", choices=NORMALISATIONS, kind="choice"
    ),
    "pca_components": Param(20, "principal components kept as the features"),
}


@dataclass
class Features:
    """The feature map of a cube (trim, bin, normalise, PCA) and the features of its sample.

    Memory does not grow with the pixels times the features: only the sampled pixels'
    features are held (``sample``, rows in the order of the sorted pixel indices
    ``index``), with every pixel's total counts (8 bytes a pixel); every other pixel's
    features are computed tile by tile when needed (:meth:`of`).
    """

    index: np.ndarray
    sample: np.ndarray
    shape: tuple[int, int]
    pca: Any
    channels: slice
    bin: int
    normalise: str
    totals: np.ndarray

    @property
    def n_pixels(self) -> int:
        return int(self.shape[0] * self.shape[1])

    def take(self, pixels: np.ndarray) -> np.ndarray:
        """(N, pca_components) features of ``pixels`` (flat indices), all of them sampled."""
        pixels = np.asarray(pixels)
        at = np.searchsorted(self.index, pixels)
        if pixels.size and (at.max() >= self.index.size or np.any(self.index[at] != pixels)):
            raise XrayAtlasError("pixels outside the features' sample: they are computed by tiles (Features.of)")
        return self.sample[at]

    def binned(self, block: np.ndarray) -> np.ndarray:
        """(..., C) counts -> (N, bins) float32 binned and normalised spectra."""
        return _binned(
            np.asarray(block).reshape(-1, np.asarray(block).shape[-1]), self.channels, self.bin, self.normalise
        )

    def of(self, block: np.ndarray) -> np.ndarray:
        """(..., C) counts of any pixels (a tile) -> (N, pca_components) float32 features."""
        return self.pca.transform(self.binned(block)).astype(np.float32)

    def shares(self, values: np.ndarray) -> np.ndarray:
        """(N, pca_components) features -> (N, bins) float64 binned spectra as shares of their
        counts (rows sum to 1), back through the PCA and the normalisation: what mixes
        linearly when two paints share a pixel."""
        x = self.pca.inverse_transform(np.asarray(values, np.float64))
        if self.normalise in ("sqrt", "sqrt-total"):
            x = np.maximum(x, 0.0) ** 2
        elif self.normalise == "anscombe":
            x = np.maximum((np.maximum(x, 0.0) / 2.0) ** 2 - 3.0 / 8.0, 0.0)
        else:
            x = np.maximum(x, 0.0)
        return x / np.maximum(x.sum(axis=1, keepdims=True), 1e-30)


def _binned(flat: np.ndarray, channels: slice, bin: int, how: str) -> np.ndarray:
    # (N, C) counts -> (N, bins) float32: bin and normalise in float32 and in place, so that
    # memory stays one tile
    n_bins = (channels.stop - channels.start) // bin
    x = flat[:, channels].astype(np.float32).reshape(-1, n_bins, bin).sum(axis=2)
    _normalise(x, how)
    return x


def _normalise(x: np.ndarray, how: str) -> None:
    """Normalise binned spectra (P, bins) in place."""
    if how in ("total", "sqrt-total"):
        x /= np.maximum(x.sum(axis=1, keepdims=True), 1.0)
    if how in ("sqrt", "sqrt-total"):
        np.sqrt(np.maximum(x, 0, out=x), out=x)
    elif how == "anscombe":
        x += 3.0 / 8.0
        np.sqrt(np.maximum(x, 0, out=x), out=x)
        x *= 2.0


def check_features(
    cube: SpectralCube,
    *,
    trim: int = 100,
    bin: int = 8,
    normalise: str = "sqrt-total",
    pca_components: int = 20,
    chosen: bool = True,
) -> None:
    """Check the feature parameters against the cube before any work starts. A
    ``pca_components`` the user ``chosen`` must fit the cube (at most its bins and pixels);
    the default is lowered to fit."""
    c = cube.n_channels
    if not (isinstance(bin, (int, np.integer)) and 1 <= bin <= c // 2):
        raise XrayAtlasError(f"bin={bin} must be a whole number in [1, {c // 2}] (half the cube's {c} channels)")
    if not (isinstance(trim, (int, np.integer)) and trim >= 0 and c - 2 * trim >= 2 * bin):
        raise XrayAtlasError(f"trim={trim} leaves too few of the {c} channels")
    if normalise not in NORMALISATIONS:
        raise XrayAtlasError(f"normalise={normalise!r}; choose one of {', '.join(NORMALISATIONS)}")
    top = min((c - 2 * trim) // bin, cube.height * cube.width) if chosen else np.inf  # PCA keeps at most these
    if not (isinstance(pca_components, (int, np.integer)) and 1 <= pca_components <= top):
        raise XrayAtlasError(
            f"pca_components={pca_components} must be a whole number in [1, {top}] (at most the "
            f"{(c - 2 * trim) // bin} feature bins and the {cube.height * cube.width} pixels)"
        )


def iter_features(
    cube: SpectralCube,
    *,
    trim: int = 100,
    bin: int = 8,
    normalise: str = "sqrt-total",
    pca_components: int = 20,
    n_fit: int = 20000,
    seed: int = 0,
    keep: np.ndarray | None = None,
    tile_bytes: int = TILE_BYTES,
) -> Generator[Progress, None, Features]:
    """Stream the cube once, keeping the binned, normalised spectra of a sample of pixels
    and every pixel's total; fit the PCA on the sample.

    Memory holds one tile and the sample (``n_fit`` and ``keep`` pixels), never the
    features of every pixel: those are computed tile by tile (:meth:`Features.of`).

    Parameters
    ----------
    cube : SpectralCube
    trim : int
        Channels dropped at each end (study 003: 100).
    bin : int
        Channels summed per feature bin.
    normalise : str
        One of :data:`NORMALISATIONS`.
    pca_components : int
        PCA dimensions kept.
    n_fit : int
        Pixels the PCA is fitted on (a random subsample, drawn with ``seed``).
    seed : int
    keep : array of int, optional
        Further pixels (flat indices) whose features the result holds, e.g. those a
        clustering method fits on (:meth:`Features.take`).
    tile_bytes : int
        Bytes of spectra read at once.
    """
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    check_features(cube, trim=trim, bin=bin, normalise=normalise, pca_components=pca_components, chosen=False)
    c = cube.n_channels
    n_pix = cube.height * cube.width
    n_bins = (c - 2 * trim) // bin
    channels = slice(trim, trim + n_bins * bin)
    rng = np.random.default_rng(seed)
    fit_idx = rng.choice(n_pix, size=min(n_fit, n_pix), replace=False)
    index = np.union1d(fit_idx, np.asarray(keep if keep is not None else [], dtype=np.int64)).astype(np.int64)
    if index.size and (index[0] < 0 or index[-1] >= n_pix):
        raise XrayAtlasError(f"keep: pixel indices must lie in 0-{n_pix - 1}")
    sample = np.empty((index.size, n_bins), np.float32)
    totals = np.empty(n_pix, np.float64)
    step = cube.tile_rows(tile_bytes)
    n_tiles = -(-cube.height // step)
    for i, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes)):
        a, b = rows.start * cube.width, rows.stop * cube.width
        flat = block.reshape(-1, c)
        totals[a:b] = flat.sum(axis=1, dtype=np.float64)
        lo, hi = np.searchsorted(index, [a, b])
        if hi > lo:  # only the sampled pixels' spectra are binned and kept
            sample[lo:hi] = _binned(flat[index[lo:hi] - a], channels, bin, normalise)
        yield Progress(i + 1, n_tiles + 1, "features")
    if not np.any(totals > 0):
        raise XrayAtlasError("the cube holds no counts: nothing to cluster", path=cube.path)
    k = int(min(pca_components, n_bins, n_pix))
    fit = sample[np.searchsorted(index, fit_idx)]
    if np.allclose(fit, fit[:1]):
        raise XrayAtlasError("all spectra are identical after normalisation: nothing to cluster", path=cube.path)
    pca = PCA(
        n_components=min(k, fit.shape[0]),
        svd_solver="randomized" if k < min(fit.shape) // 2 else "full",
        random_state=seed,
    )
    # One BLAS thread: float32 sums taken in another order (2 threads against 1) move the
    # components by ~1e-7, which UMAP's map amplifies into other clusters (on the 64 x 64 test
    # painting of 4 paints: 10 against 6). The same clusters on every machine are worth the
    # second this costs on a sample of 20,000 pixels.
    with threadpool_limits(limits=1):
        pca.fit(fit)
        del fit
        values = np.empty((index.size, pca.n_components_), np.float32)
        for a in range(0, index.size, 65536):
            values[a : a + 65536] = pca.transform(sample[a : a + 65536])
    yield Progress(n_tiles + 1, n_tiles + 1, "features")
    return Features(index, values, (cube.height, cube.width), pca, channels, bin, normalise, totals)
