"""Clustering quality on a synthetic painting with realistic counts, and bad input."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from xray_atlas import SpectralCube, XrayAtlasError
from xray_atlas.cluster import METHODS, cluster_cube, cluster_spectra, method_parameters
from xray_atlas.cluster.features import iter_features
from xray_atlas.cube import run_to_end


@pytest.fixture(scope="module")
def painting():
    from xray_atlas.physics.painting import synthetic_painting

    return synthetic_painting(48, 64, seed=11)  # 20 ms per pixel: ~1,500-4,500 counts


@pytest.fixture(scope="module")
def cube(painting):
    return SpectralCube(painting.counts, offset_kev=painting.energy_offset_kev, gain_kev=painting.energy_gain_kev)


@pytest.mark.parametrize("method", list(METHODS))
def test_default_settings_find_the_pigment_regions(cube, painting, method):
    result = cluster_cube(cube, method)
    ari = adjusted_rand_score(painting.regions.ravel(), result.labels.ravel())
    assert ari >= 0.9, (method, ari)  # issue target, against the true pigment regions
    assert result.labels.shape == (48, 64) and result.labels.dtype == np.int32
    assert result.spectra.shape == (result.n_clusters, 4096)
    assert result.sizes.sum() + (result.labels < 0).sum() == 48 * 64
    k0 = result.labels == 0
    np.testing.assert_allclose(result.accumulated[0], painting.counts[k0].sum(0), rtol=1e-4)


def test_cluster_spectra_are_the_mean_of_their_pixels(cube, painting):
    labels = np.where(painting.regions == 3, 0, np.where(painting.regions == 1, 1, -1))
    spectra, sizes = cluster_spectra(cube, labels)
    np.testing.assert_allclose(spectra[0], painting.counts[painting.regions == 3].mean(0), rtol=1e-5)
    assert sizes.tolist() == [(painting.regions == 3).sum(), (painting.regions == 1).sum()]


def test_som_codebook_spectra(cube):
    result = cluster_cube(cube, "som", rows=3, cols=3, n_clusters=None)
    books = result.info["codebook_spectra"]
    assert books.shape == (9, (4096 - 200) // 8)
    assert result.info["codebook_energy_kev"].shape == (books.shape[1],)
    # each node's codebook spectrum resembles the normalised mean of its pixels (Pearson > 0.9)
    node = result.info["node_of_pixel"]
    feats = result.info["features"]
    values = feats.of(cube.counts)  # every pixel's features, computed here (the clustering keeps a sample's)
    for k in np.unique(node)[:3]:
        mean = feats.pca.inverse_transform(values[node == k]).mean(axis=0)
        assert np.corrcoef(mean, books[k])[0, 1] > 0.9


def test_same_seed_same_labels(cube):
    a = cluster_cube(cube, "som", seed=4)
    b = cluster_cube(cube, "som", seed=4)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_features_trim_and_bin(cube, painting):
    f = run_to_end(iter_features(cube, trim=100, bin=8, pca_components=5, n_fit=500, keep=np.array([7, 3000])))
    assert f.channels == slice(100, 100 + (4096 - 200) // 8 * 8)
    assert f.sample.shape == (f.index.size, 5) and 500 <= f.index.size <= 502 and {7, 3000} <= set(f.index)
    # the sample's features are those of the same pixels computed tile by tile
    flat = painting.counts.reshape(-1, 4096)
    np.testing.assert_allclose(f.take(np.array([3000, 7])), f.of(flat[[3000, 7]]), rtol=1e-5, atol=1e-6)
    binned = flat[7, 100 : 100 + 487 * 8].astype(np.float64).reshape(487, 8).sum(axis=1)
    np.testing.assert_allclose(f.binned(flat[7]), np.sqrt(binned / binned.sum())[None], rtol=1e-5)  # sqrt-total
    np.testing.assert_allclose(f.totals, flat.sum(axis=1))
    with pytest.raises(XrayAtlasError, match="outside the features' sample"):
        f.take(np.array([int(np.setdiff1d(np.arange(48 * 64), f.index)[0])]))


def test_parameters_table():
    assert method_parameters("som")["rows"] == 16 and method_parameters("som")["n_clusters"] == "auto"
    # the PCA's and UMAP's dimensions are separate parameters
    assert method_parameters("umap-hdbscan")["n_components"] == 2
    assert method_parameters("umap-hdbscan")["pca_components"] == 20
    assert method_parameters("umap-hdbscan")["n_neighbors"] == 30  # study 003


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "kmeans"}, "method='kmeans'"),
        ({"method": "som", "rows": 100, "cols": 100}, "10000 nodes but only 3072 pixels"),
        ({"method": "som", "n_clusters": 1000}, "n_clusters=1000 must lie in 1-256"),
        ({"method": "som", "n_clusters": "many"}, "n_clusters='many'"),
        ({"method": "som", "rows": 0}, "rows=0"),
        ({"method": "umap-hdbscan", "n_neighbors": 1}, "n_neighbors=1"),
        ({"method": "umap-hdbscan", "min_cluster_size": 10**6}, "min_cluster_size"),
        ({"method": "umap-hdbscan", "min_dist": 2.0}, "min_dist=2.0"),
        ({"method": "umap-hdbscan", "unblend_clusters": "yes"}, "unblend_clusters='yes'"),
        ({"method": "som", "normalise": "log"}, "normalise='log'"),
        ({"method": "som", "trim": 3000}, "trim=3000"),
        ({"method": "som", "colour": 1}, "unknown parameter"),
        ({"method": "som", "device": "tpu"}, "device='tpu'"),
    ],
)
def test_bad_parameters(cube, kwargs, match):
    with pytest.raises(XrayAtlasError, match=match):
        cluster_cube(cube, **kwargs)


def test_more_clusters_than_pixels_and_degenerate_cubes():
    tiny = SpectralCube(np.random.default_rng(0).poisson(5, (2, 3, 512)).astype("u2"), offset_kev=0, gain_kev=0.02)
    with pytest.raises(XrayAtlasError, match="256 nodes but only 6 pixels"):
        cluster_cube(tiny, "som")
    with pytest.raises(XrayAtlasError, match="too few for n_neighbors"):
        cluster_cube(tiny, "umap-hdbscan")
    zeros = SpectralCube(np.zeros((20, 20, 512), "u2"), offset_kev=0, gain_kev=0.02)  # >= 256 nodes
    with pytest.raises(XrayAtlasError, match="no counts"):
        cluster_cube(zeros, "som")
    flat = SpectralCube(np.full((20, 20, 512), 7, "u2"), offset_kev=0, gain_kev=0.02)
    with pytest.raises(XrayAtlasError, match="identical"):
        cluster_cube(flat, "som")


def test_study_plain_3x3_map(cube, painting):
    """Study 003's SOM: 3 x 3 nodes, one cluster per node."""
    result = cluster_cube(cube, "som", rows=3, cols=3, n_clusters=None)
    assert result.n_clusters <= 9
    assert adjusted_rand_score(painting.regions.ravel(), result.labels.ravel()) > 0.8
