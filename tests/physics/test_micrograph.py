"""Synthetic micrographs: every class renders, seeds reproduce, classes differ in what a
classifier should see (particle size and coverage), bad names are refused."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.physics.micrograph import MORPHOLOGIES, micrograph, micrographs


def _coverage(img):
    # share of pixels darker than the background's lower tail: particle coverage
    bg = np.median(img)
    return float((img < bg - 3 * np.std(img[img > bg])).mean())


def test_classes_render_reproducibly_and_differ():
    cov = {}
    for m in MORPHOLOGIES:
        a = micrograph(m, size=96, rng=5)
        assert a.shape == (96, 96) and a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_array_equal(a, micrograph(m, size=96, rng=5))
        cov[m] = np.mean([_coverage(micrograph(m, size=96, rng=s)) for s in range(4)])
    assert cov["porous"] > cov["spheres-small"] and cov["spheres-large"] > cov["aggregates"] * 0.5
    x, y = micrographs(16, size=64, seed=1)
    assert x.shape == (16, 64, 64) and np.bincount(y, minlength=8).tolist() == [2] * 8
    with pytest.raises(XrayAtlasError, match="morphology='stars'"):
        micrograph("stars")


def test_class_shares_make_a_minority():
    share = np.ones(8)
    share[MORPHOLOGIES.index("core-shell")] = 0.05  # 1:20 against each other class
    _, y = micrographs(1200, size=32, seed=2, balance=share)
    n = np.bincount(y, minlength=8)
    # expected 8 core-shell images of 1,200 (0.05 / 7.05 share); binomial sd 2.8
    assert 1 <= n[MORPHOLOGIES.index("core-shell")] <= 18
    assert n.min() == n[MORPHOLOGIES.index("core-shell")] and n.max() < 200
    with pytest.raises(XrayAtlasError, match="balance"):
        micrographs(10, size=32, balance=[1, 1])
