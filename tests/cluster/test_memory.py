"""Clustering in bounded memory (issues 31 and 33): two passes over small tiles, the same labels."""

import tracemalloc

import numpy as np
import pytest

from xray_atlas import SpectralCube, XrayAtlasError
from xray_atlas.cluster import cluster_cube

#: A small SOM, so that a run takes a second or two; trim and bin keep 60 feature bins of 256 channels.
SMALL_SOM = {"rows": 2, "cols": 2, "epochs": 1, "n_fit": 2000, "n_clusters": None, "trim": 8, "bin": 4}


def three_paints(h: int, w: int, *, c: int = 256, seed: int = 0) -> SpectralCube:
    """Three bands of rows, each a paint with its own peak on a flat background, Poisson counts."""
    rng = np.random.default_rng(seed)
    ch = np.arange(c)
    shapes = np.stack([0.2 + 30 * np.exp(-0.5 * ((ch - p) / 3.0) ** 2) for p in (60, 120, 180)])
    band = np.repeat(np.arange(h) * 3 // h, w).reshape(h, w)
    lam = shapes[band] * (1 + 0.2 * rng.random((h, w, 1)))
    return SpectralCube(rng.poisson(lam).astype(np.uint16), offset_kev=0.0, gain_kev=0.02)


def peak_bytes(cube: SpectralCube, **params) -> tuple[int, np.ndarray]:
    tracemalloc.start()
    try:
        result = cluster_cube(cube, "som", **params)
        return tracemalloc.get_traced_memory()[1], result.labels
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_pixels_spectra():
    # both cubes have more pixels than the PCA's (20,000) and the SOM's (2,000 + 3,000)
    # samples, so the samples are the same size and only per-pixel numbers may grow
    cluster_cube(three_paints(40, 40), "som", **SMALL_SOM)  # imports and first-call caches outside the count
    small, big = three_paints(160, 160), three_paints(320, 160)
    p_small, lab_small = peak_bytes(small, tile_bytes=65536, **SMALL_SOM)
    p_big, lab_big = peak_bytes(big, tile_bytes=65536, **SMALL_SOM)
    per_pixel = (p_big - p_small) / (320 * 160 - 160 * 160)
    # measured: 19 bytes per pixel (its total, id and label; peaks 22.5 and 23.0 MB); the
    # in-memory path of b3fe581 (all pixels' binned spectra, then their features) grew by
    # 1,650 bytes per pixel (peaks 42 and 84 MB)
    assert per_pixel < 64, per_pixel
    assert [np.unique(lab).size for lab in (lab_small, lab_big)] == [3, 3]


def test_tiles_do_not_change_the_labels_or_spectra():
    cube = three_paints(96, 40, seed=3)
    one = cluster_cube(cube, "som", seed=5, **SMALL_SOM)  # the whole cube in one tile: the in-memory path
    rows = cluster_cube(cube, "som", seed=5, tile_bytes=1, **SMALL_SOM)  # a row per tile
    np.testing.assert_array_equal(one.labels, rows.labels)
    np.testing.assert_array_equal(one.sizes, rows.sizes)
    np.testing.assert_allclose(one.spectra, rows.spectra, rtol=1e-6)
    counts = np.asarray(cube.counts)
    for k in range(one.n_clusters):
        np.testing.assert_allclose(one.spectra[k], counts[one.labels == k].mean(axis=0), rtol=1e-5)


@pytest.mark.parametrize("method", ["som", "umap-hdbscan"])
def test_tiles_do_not_change_the_default_clustering(method):
    """tests/cluster/test_cluster.py's 48 x 64 painting (seed 11), default settings: ten tiles
    give the labels of one (the count decision of issue 31 reads every pixel's id in finish)."""
    from xray_atlas.physics.painting import synthetic_painting

    p = synthetic_painting(48, 64, seed=11)
    cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev)
    tiled = cluster_cube(cube, method, tile_bytes=64 * 4096 * 2 * 5)  # 5 rows per tile: 10 tiles
    whole = cluster_cube(cube, method)
    np.testing.assert_array_equal(tiled.labels, whole.labels)
    assert tiled.sizes.tolist() == whole.sizes.tolist()


def test_bad_tile_bytes():
    with pytest.raises(XrayAtlasError, match="tile_bytes=0"):
        cluster_cube(three_paints(9, 9), "som", tile_bytes=0, **SMALL_SOM)
