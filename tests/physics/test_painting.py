import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.io import read
from xray_atlas.physics.lines import DEFAULT_MAP_LINES
from xray_atlas.physics.painting import (
    Region,
    image_layout,
    paint,
    random_layout,
    random_sample,
    shapes_layout,
    synthetic_painting,
)


@pytest.fixture(scope="module")
def small():
    return synthetic_painting(24, 32, seed=3)


def test_truth_maps_counts_and_regions(small, tmp_path):
    p = small
    assert set(DEFAULT_MAP_LINES) <= set(p.maps)
    totals = p.counts.sum(-1)
    assert 1500 < totals.mean() < 6000  # study 001: 1,500-6,000 counts per pixel at 10-50 ms
    # a line family's window follows its true map (Hg La1 9.99 keV; Cu Ka 8.05 keV)
    e = p.energy
    for line, lo, hi in (("Hg-L", 9.85, 10.15), ("Cu-K", 7.95, 8.15)):
        win = p.counts[..., (e > lo) & (e < hi)].sum(-1).ravel()
        assert np.corrcoef(win, p.maps[line].ravel())[0, 1] > 0.9, line
    robe = p.regions == p.region_names.index("vermilion robe")
    assert p.maps["Hg-L"][robe].mean() > 100 * p.maps["Hg-L"][~robe].mean()
    p.write(tmp_path / "p.h5")
    with read(tmp_path / "p.h5") as cube:
        np.testing.assert_array_equal(cube.pixel(5, 6), p.counts[5, 6])
        np.testing.assert_allclose(cube.reference_maps["Pb-L"][()], p.maps["Pb-L"])
        assert cube.metadata["tube_kv"] == 50.0


def test_same_seed_same_painting():
    a, b = synthetic_painting(6, 6, seed=1), synthetic_painting(6, 6, seed=1)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert not np.array_equal(a.counts, synthetic_painting(6, 6, seed=2).counts)


def test_layout_from_an_image():
    img = np.tile(np.linspace(0, 1, 20), (10, 1))
    reg, regions = image_layout(img, ["azurite", "vermilion"])
    assert reg[:, 0].max() == 0 and reg[:, -1].min() == 1
    p = paint(reg, regions, seed=0)
    assert p.maps["Cu-K"][:, :5].mean() > 10 * p.maps["Cu-K"][:, -5:].mean()
    assert p.maps["Hg-L"][:, -5:].mean() > 10 * p.maps["Hg-L"][:, :5].mean()


def test_shapes_layout_uses_every_region():
    reg, regions = shapes_layout(96, 128)
    assert set(np.unique(reg)) == set(range(len(regions)))


def test_washes_leave_the_ground_dominant_with_traces():
    # without washes the layout is the one it always was (held-out paintings stay the same)
    plain, same = random_layout(16, 16, seed=5), random_layout(16, 16, seed=5, wash_share=0.0)
    assert plain[1] == same[1] and np.array_equal(plain[0], same[0])
    reg, regions = random_layout(16, 16, seed=5, wash_share=1.0)
    assert all(r.name.startswith(f"region {i}: wash of") for i, r in enumerate(regions))
    assert all(0.05 <= t <= 2.0 and 1 <= len(r.layers) <= 3 for r in regions for _, t in r.layers)  # no priming
    # a 1 um vermilion wash on chalk: Ca dominates, Hg is a trace; 30 um of it hides the ground
    thin = paint(np.zeros((4, 4), int), [Region("wash", (("vermilion", 1.0),))], seed=0, ground="chalk ground")
    thick = paint(np.zeros((4, 4), int), [Region("paint", (("vermilion", 30.0),))], seed=0, ground="chalk ground")
    assert thin.maps["Ca-K"].mean() > 3 * thin.maps["Hg-L"].mean() > 0
    assert thick.maps["Hg-L"].mean() > 10 * thick.maps["Ca-K"].mean()


def test_random_samples_are_thick_matrices_with_traces():
    rng = np.random.default_rng(3)
    mats = [random_sample(rng) for _ in range(20)]
    for m in mats:
        assert abs(sum(f for _, f in m.fractions) - 1) < 1e-9 and 1.2 < m.density < 3.2
        assert m.fraction("Ar") == 0  # argon comes from the air, not the sample
    reg, regions = random_layout(16, 16, seed=5, sample_share=1.0)
    assert all(len(r.layers) == 1 and r.layers[0][1] == 3000.0 for r in regions)
    # a thick sample hides the ground: a gypsum ground adds no S to a sample without S
    mat = next(m for m in mats if m.fraction("S") == 0 and m.fraction("Pb") > 0)
    p = paint(np.zeros((2, 2), int), [Region("s", ((mat, 3000.0),))], seed=0, ground="gypsum ground")
    assert p.maps["Pb-L"].mean() > 10 and p.maps.get("S-K", np.zeros(1)).mean() < 1


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: random_layout(4, 4, sample_share=-0.1), "sample_share=-0.1"),
        (lambda: random_layout(4, 4, wash_share=1.5), "wash_share=1.5"),
        (lambda: synthetic_painting(0, 4), "height=0"),
        (lambda: paint(np.zeros((3, 3), int) + 5, [Region("a", (("azurite", 10.0),))]), "indices 5-5"),
        (lambda: Region("a", (("azurite", -1.0),)), "thickness"),
        (lambda: Region("a", (("no such pigment", 1.0),)), "unknown"),
        (lambda: image_layout(np.zeros(5)), "2-D"),
        (
            lambda: paint(np.zeros((2, 2), int), [Region("a", (("azurite", 10.0),))], thickness_variation=2),
            "thickness_variation",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(XrayAtlasError, match=match):
        call()
