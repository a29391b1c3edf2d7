"""The cluster-count decision (issue 31): blends of two paints are no clusters of their own,
a paint mixed at another ratio is; on small paintings with a known number of paints."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from xray_atlas import SpectralCube
from xray_atlas.cluster import cluster_cube
from xray_atlas.cluster.blends import confirm, find_blends, mixture_weight


def _peaks(*heights):
    """A binned spectrum of Gaussian lines at bins 20, 50, 80, 110 over a flat background, as shares."""
    x = np.arange(140)
    s = 0.2 + sum(h * np.exp(-0.5 * ((x - c) / 3.0) ** 2) for h, c in zip(heights, (20, 50, 80, 110)))
    return s / s.sum()


def test_find_blends_a_mixture_and_not_a_paint():
    a, b, c = _peaks(5, 0, 0, 0), _peaks(0, 5, 0, 0), _peaks(0, 0, 3, 4)
    blend = 0.4 * a + 0.6 * b
    assert find_blends(np.stack([a, b, c, blend])) == {3: (0, 1)}
    # three paints, none a mixture of the others: no blend, however close two of them are
    assert find_blends(np.stack([a, b, c, _peaks(0, 0, 4, 3)])) == {}
    # a share of one part outside (0.1, 0.9) is that part, not a blend
    assert find_blends(np.stack([a, b, c, 0.97 * a + 0.03 * b])) == {}


def test_mixture_weight_counts_area_not_counts():
    a, b = _peaks(5, 0, 0, 0), _peaks(0, 5, 0, 0)
    # a pixel half of each paint, where paint a gives 3x the counts of b: 3/4 of its counts
    # come from a, but half its area
    share = (0.75 * a + 0.25 * b)[None]
    np.testing.assert_allclose(mixture_weight(share, a, b, 3000.0, 1000.0), [0.5], atol=1e-6)


def test_confirm_a_band_between_its_parts_not_a_region_of_its_own():
    lab = np.zeros((20, 30), int)
    lab[:, 15:] = 1
    lab[:, 14:16] = 2  # a band along the border of 0 and 1
    lab[5:12, 22:28] = 3  # a region of its own inside 1
    assert confirm(lab, {2: (0, 1), 3: (0, 1)}) == {2}


def _painting(recipes, width_px=14, height=36, counts=3000, seed=0):
    """Stripes of recipes left to right, the paint's thickness a smooth texture over a 3x range
    (as benchmarks/cluster_validation.py's), and a band of blends 6 pixels wide at every border
    (the majority paint's share 0.5-1); truth: each pixel's majority paint. 2048 channels of 20 eV."""
    from scipy.ndimage import gaussian_filter

    from xray_atlas.physics.materials import pigment
    from xray_atlas.physics.painting import painting_instrument
    from xray_atlas.physics.spectra import Layer, simulate

    inst = painting_instrument(n_channels=2048, gain_kev=0.02)
    ground = Layer(pigment("chalk ground"))
    factors = np.array([1 / np.sqrt(3), 1.0, np.sqrt(3)])
    table = np.stack(
        [
            np.stack([simulate([Layer(m, t * f) for m, t in layers] + [ground], inst).expected for f in factors])
            for layers in recipes
        ]
    )  # (recipes, thicknesses, channels)
    table *= counts / table.sum(axis=2).mean()
    k = len(recipes)
    w = k * width_px
    rng = np.random.default_rng(seed)
    tex = gaussian_filter(rng.standard_normal((height, w)), 3, mode="wrap")
    pos = (tex - tex.min()) / np.ptp(tex) * 2  # 0..2 along the thicknesses, interpolated between them
    lo = np.minimum(pos.astype(int), 1)
    f = (pos - lo)[..., None]

    def spectra(recipe):  # (height, w) recipe index -> (height, w, channels)
        return table[recipe, lo] * (1 - f) + table[recipe, lo + 1] * f

    # the borders wobble from row to row, so that the blends' shares vary continuously
    x = np.arange(w)[None, :] + 0.5 + 1.5 * np.sin(np.arange(height) * 0.7)[:, None]
    own = np.clip((x // width_px).astype(int), 0, k - 1)
    # distance to the nearest border; within 3 pixels, a blend with the neighbour across it
    frac = x / width_px - own
    other = np.where(frac < 0.5, own - 1, own + 1)
    dist = np.minimum(frac, 1 - frac) * width_px
    inside = (other >= 0) & (other < k) & (dist < 3)
    wmaj = np.where(inside, 0.5 + 0.5 * dist / 3, 1.0)
    other = np.clip(other, 0, k - 1)
    expected = spectra(own) * wmaj[..., None] + spectra(other) * (1 - wmaj[..., None])
    counts_ = rng.poisson(expected).astype(np.uint16)
    cube = SpectralCube(counts_, offset_kev=0.0, gain_kev=0.02)
    return cube, own


def _mix(a, fa, b):
    from xray_atlas.physics.materials import mix, pigment

    return mix([(pigment(a), fa), (pigment(b), 1 - fa)], name=f"{a} {fa:.0%} + {b}")


def _paints(n):
    from xray_atlas.physics.materials import pigment

    three = [
        ((pigment("vermilion"), 30.0),),
        ((_mix("azurite", 0.3, "lead white"), 40.0),),  # a ratio-only pair: Cu/Pb 2.3x apart
        ((pigment("yellow ochre"), 40.0),),
        ((_mix("azurite", 0.5, "lead white"), 40.0),),
    ]
    five = three[:3] + [((pigment("lead white"), 40.0),), three[3], ((pigment("zinc white"), 30.0),)]
    return three if n == 4 else five


@pytest.fixture(scope="module", params=[4, 6], ids=["4 paints", "6 paints"])
def painting(request):
    return _painting(_paints(request.param)), request.param


@pytest.mark.parametrize("method", ["umap-hdbscan", "som"])
def test_the_count_is_the_number_of_paints(painting, method):
    """Blends at every border, thickness 3x, a ratio-only pair; with six paints the second of
    the pair also mixes (spectrally) lead white and the first, but it is a region of its own."""
    (cube, truth), n = painting
    result = cluster_cube(cube, method)
    assert result.n_clusters == n, (method, result.n_clusters, result.info.get("blends"))
    # the validation set's truth: each pixel's majority paint
    assert adjusted_rand_score(truth.ravel(), result.labels.ravel()) > 0.9
