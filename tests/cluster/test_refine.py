"""Refining clusters by hand: split, merge, reassign a painted region, undo; with known answers
from a synthetic painting whose true pigment regions are the starting clusters."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from xray_atlas import SpectralCube, XrayAtlasError
from xray_atlas.cluster import cluster_spectra
from xray_atlas.cluster.refine import Refined, Refinement, merge, reassign, split

TILE = 40 * 4096 * 8  # a few cube rows, or 40 pixels of a cluster, per tile: the tiled paths run


@pytest.fixture(scope="module")
def painting():
    from xray_atlas.physics.painting import synthetic_painting

    # 20 x 24 pixels; regions 0 (ground, 117 px), 1 (165 px), 2 (65 px), 3 (88 px), 4-7 small
    return synthetic_painting(20, 24, seed=5)


@pytest.fixture(scope="module")
def cube(painting):
    return SpectralCube(painting.counts, offset_kev=painting.energy_offset_kev, gain_kev=painting.energy_gain_kev)


@pytest.fixture(scope="module")
def start(cube, painting):
    """The true regions as clusters 0..7, and their mean spectra."""
    labels = painting.regions.astype(np.int32)
    spectra, _ = cluster_spectra(cube, labels)
    return labels, spectra


def mean_of(painting, mask):
    """Reference: the plain numpy mean of the pixels' counts."""
    return painting.counts[mask].astype(np.float64).mean(axis=0)


def test_merge_takes_the_lowest_number_and_the_weighted_mean(start, painting):
    labels, spectra = start
    before = labels.copy()
    r = merge(labels, spectra, [3, 1])
    np.testing.assert_array_equal(labels, before)  # the input is not touched
    union = (painting.regions == 1) | (painting.regions == 3)
    assert r.n_clusters == 7 and r.touched == (1,)
    np.testing.assert_array_equal(r.labels == 1, union)
    # clusters above the removed 3 shift down by one: old 4 is now 3, old 7 is now 6
    np.testing.assert_array_equal(r.labels == 3, painting.regions == 4)
    np.testing.assert_array_equal(r.labels == 6, painting.regions == 7)
    np.testing.assert_allclose(r.spectra[1], mean_of(painting, union), rtol=1e-5)
    np.testing.assert_allclose(r.spectra[3], spectra[4])
    assert r.sizes.tolist() == [117, 165 + 88, 65, 16, 20, 7, 2]
    assert r.labels.dtype == np.int32


def test_split_recovers_two_merged_recipes(start, painting, cube):
    labels, spectra = start
    merged = merge(labels, spectra, [1, 2])  # two paints (165 and 65 px) in one cluster
    r = split(merged.labels, merged.spectra, cube, 1, k=2, seed=0, tile_bytes=TILE)
    inside = merged.labels == 1
    # the true regions inside the merged cluster against the two parts
    ari = adjusted_rand_score(painting.regions[inside], r.labels[inside])
    assert ari == pytest.approx(1.0)  # measured 1.0: the two paints differ in every pixel
    # the larger part (region 1, 165 px) keeps number 1, the other is appended as 7
    assert r.n_clusters == 8 and r.touched == (1, 7)
    np.testing.assert_array_equal(r.labels == 1, painting.regions == 1)
    np.testing.assert_array_equal(r.labels == 7, painting.regions == 2)
    np.testing.assert_allclose(r.spectra[7], mean_of(painting, painting.regions == 2), rtol=1e-5)
    np.testing.assert_allclose(r.spectra[1], mean_of(painting, painting.regions == 1), rtol=1e-5)
    np.testing.assert_array_equal(r.labels[~inside], merged.labels[~inside])  # nothing else moves
    # the same seed gives the same split
    again = split(merged.labels, merged.spectra, cube, 1, k=2, seed=0)
    np.testing.assert_array_equal(again.labels, r.labels)


def test_split_the_noise_makes_new_clusters(start, painting, cube):
    labels, spectra = start
    noisy = np.where(np.isin(painting.regions, [2, 3]), -1, labels)  # regions 2 and 3 unassigned
    kept = np.unique(noisy[noisy >= 0])
    noisy = np.searchsorted(kept, noisy).astype(np.int32)
    noisy[np.isin(painting.regions, [2, 3])] = -1
    r = split(noisy, spectra[kept], cube, -1, k=2, seed=1, tile_bytes=TILE)
    assert r.n_clusters == kept.size + 2 and (r.labels >= 0).all()
    assert adjusted_rand_score(painting.regions.ravel(), r.labels.ravel()) == pytest.approx(1.0)


def test_reassign_a_painted_region(start, painting, cube):
    labels, spectra = start
    mask = np.zeros(labels.shape, bool)
    mask[8:12, 4:11] = True  # over regions 0, 3 and 5
    for target in (2, None, -1):
        r = reassign(labels, spectra, cube, mask, target, tile_bytes=TILE)
        expected = labels.copy()
        expected[mask] = {2: 2, None: 8, -1: -1}[target]
        np.testing.assert_array_equal(r.labels, expected)
        # reference: every cluster's mean computed afresh from all its pixels
        ref, sizes = cluster_spectra(cube, r.labels)
        # atol: subtracting a sum leaves float residues of ~1e-9 counts where the mean is 0
        np.testing.assert_allclose(r.spectra, ref, rtol=1e-4, atol=1e-6)
        assert r.sizes.tolist() == sizes.tolist()
        assert set(r.touched) >= {0, 3, 5}


def test_reassign_that_empties_a_cluster_removes_it(start, painting, cube):
    labels, spectra = start
    r = reassign(labels, spectra, cube, painting.regions == 6, 3)  # region 6 (20 px) joins 3
    assert r.n_clusters == 7
    np.testing.assert_array_equal(r.labels == 6, painting.regions == 7)  # old 7 shifts down
    np.testing.assert_allclose(r.spectra[3], mean_of(painting, np.isin(painting.regions, [3, 6])), rtol=1e-5)
    # a cluster left with under half its pixels is read again, not subtracted
    mask = (painting.regions == 1) & (np.arange(24)[None, :] > 2)
    r = reassign(labels, spectra, cube, mask, 0, tile_bytes=TILE)
    np.testing.assert_allclose(r.spectra[1], mean_of(painting, r.labels == 1), rtol=1e-5)


def test_undo_restores_each_step(start, cube):
    labels, spectra = start
    hist = Refinement(labels, spectra, depth=2)
    first = hist.current
    a = hist.apply(merge(hist.labels, hist.spectra, [0, 1]))
    hist.apply(split(hist.labels, hist.spectra, cube, 0, k=2, seed=0))
    hist.apply(merge(hist.labels, hist.spectra, [2, 3]))
    assert hist.n_undo == 2  # depth 2: the oldest step is forgotten
    hist.undo()
    back = hist.undo()
    np.testing.assert_array_equal(back.labels, a.labels)
    np.testing.assert_array_equal(back.spectra, a.spectra)
    with pytest.raises(XrayAtlasError, match="nothing to undo"):
        hist.undo()
    assert not np.array_equal(back.labels, first.labels)
    # the history holds its own read-only copies
    with pytest.raises(ValueError):
        hist.labels[0, 0] = 5


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda l, s, c: merge(l, s, [1]), "two or more"),
        (lambda l, s, c: merge(l, s, [1, 9]), "clusters=9 must be a cluster 0..7"),
        (lambda l, s, c: merge(l, s, [-1, 2]), "clusters=-1"),
        (lambda l, s, c: split(l, s, c, 8, k=2), "cluster=8 must be -1"),
        (lambda l, s, c: split(l, s, c, 1, k=1), "k=1 must be"),
        (lambda l, s, c: split(l, s, c, 7, k=3), "holds 2 pixels: too few to split into k=3"),
        (lambda l, s, c: split(l[:5], s, c, 1, k=2), "labels are 5 x 24, the cube 20 x 24"),
        (lambda l, s, c: split(l, s[:, :10], c, 1, k=2), "spectra have 10 channels"),
        (lambda l, s, c: split(l, s[:3], c, 1, k=2), "labels hold 0..7"),
        (lambda l, s, c: reassign(l, s, c, np.zeros((3, 3), bool), 1), "mask has shape"),
        (lambda l, s, c: reassign(l, s, c, np.zeros(l.shape, bool), 1), "mask selects no pixel"),
        (lambda l, s, c: reassign(l, s, c, l == 1, 1), "only pixels already in cluster 1"),
        (lambda l, s, c: reassign(l, s, c, l == 1, 12), "cluster=12"),
        (lambda l, s, c: Refinement(l, s, depth=0), "depth=0"),
    ],
)
def test_bad_input_names_the_parameter(start, cube, call, match):
    labels, spectra = start
    with pytest.raises(XrayAtlasError, match=match):
        call(labels, spectra, cube)


def test_split_of_identical_spectra_is_refused():
    counts = np.full((4, 5, 512), 6, "u2")
    cube = SpectralCube(counts, offset_kev=0.0, gain_kev=0.02)
    labels = np.zeros((4, 5), np.int32)
    with pytest.raises(XrayAtlasError, match="identical"):
        split(labels, counts[:1, 0].astype(np.float32), cube, 0, k=2)


def test_refined_is_returned_not_stored(start):
    labels, spectra = start
    r = merge(labels, spectra, [0, 1])
    assert isinstance(r, Refined) and r.labels is not labels
