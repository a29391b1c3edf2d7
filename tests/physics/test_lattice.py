"""Lattices, their CFS encoding and diffraction images (docs/dev/contracts.md section 5)."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.physics.lattice import (
    analytic_encoding,
    correlations,
    diffraction_image,
    iter_lattices,
    load_dataset,
    make_dataset,
    offsets,
    random_couplings,
    save_dataset,
    simulate_lattices,
)


def test_offsets_follow_the_contract_order():
    assert offsets(2) == [(1, 0), (0, 1), (1, 1)]  # docs/dev/contracts.md: S = 2 gives (1,0), (0,1), (1,1)
    assert len(offsets(3)) == 8 and len(offsets(4)) == 15
    assert offsets(3)[:3] == [(1, 0), (2, 0), (0, 1)]  # dy outer, dx inner


def test_correlations_of_analytic_patterns():
    y, x = np.mgrid[:12, :12]
    checker = ((x + y) % 2).astype(np.uint8)
    np.testing.assert_allclose(correlations(checker, 2), [-1, -1, 1])
    columns = (x % 2).astype(np.uint8)  # stripes along y: equal down a column, opposite across
    np.testing.assert_allclose(correlations(columns, 2), [-1, 1, -1])
    # diagonal lines x - y = 0 mod 3 (m = 1/3): a(1,1) = 1, other offsets see no partner,
    # a = (0 - m^2) / (m (1 - m)) = -1/2; the anti-diagonal pattern tells (1,1) from (1,-1)
    diag = ((x - y) % 3 == 0).astype(np.uint8)
    np.testing.assert_allclose(correlations(diag, 2), [-0.5, -0.5, 1.0])
    anti = ((x + y) % 3 == 0).astype(np.uint8)
    np.testing.assert_allclose(correlations(anti, 2), [-0.5, -0.5, -0.5])
    np.testing.assert_array_equal(correlations(np.ones((8, 8)), 2), 0)  # no variance: defined as 0


def test_image_is_the_contract_formula_and_the_inverse_is_exact_on_a_whole_lattice():
    rng = np.random.default_rng(0)
    lat = (rng.random((16, 16)) < 0.4).astype(np.uint8)
    img = diffraction_image(lat)
    m = lat.mean()
    want = np.fft.fftshift(np.abs(np.fft.fft2(lat - m)) ** 2 / 16**2)
    np.testing.assert_allclose(img, want, rtol=1e-5, atol=1e-6)
    assert img.shape == (16, 16) and np.argmin(img) == 8 * 16 + 8  # zero frequency at (L//2, L//2), |0|^2 = 0
    # Wiener-Khinchin: the inverse transform of the image is the periodic pair correlation
    for span in (2, 3, 4):
        np.testing.assert_allclose(analytic_encoding(img, span, window="periodic"), correlations(lat, span), atol=1e-6)
    # a lot at a chosen position with periodic wrap, as a window of the lattice
    one = diffraction_image(lat, lot=6, n_lots=1, rng=np.random.default_rng(5))
    start = np.random.default_rng(5).integers(0, 16, size=(1, 1, 2))[0, 0]
    win = np.roll(lat, (-start[0], -start[1]), axis=(0, 1))[:6, :6] - m
    np.testing.assert_allclose(one, np.fft.fftshift(np.abs(np.fft.fft2(win)) ** 2 / 36), rtol=1e-5, atol=1e-6)


def test_fixed_couplings_order_the_lattice_and_hold_the_concentration():
    j = np.zeros((3, 3))
    j[0, 0] = 0.4  # ferro along x
    j[1, :2] = [-0.4, -0.4]  # antiferro along x and y: checkerboard-like
    batch = simulate_lattices(span=2, couplings=j, size=32, sweeps=100, rng=1)
    assert batch.lattices.dtype == np.uint8 and batch.lattices.shape == (3, 32, 32)
    np.testing.assert_allclose(batch.lattices.mean(axis=(1, 2)), 0.5, atol=2 / 32)
    np.testing.assert_allclose(batch.encoding, correlations(batch.lattices, 2))
    assert batch.encoding[0, 0] > 0.2 and abs(batch.encoding[0, 1]) < 0.1
    assert batch.encoding[1, 0] < -0.2 and batch.encoding[1, 1] < -0.2 and batch.encoding[1, 2] > 0.1
    assert np.abs(batch.encoding[2]).max() < 0.1  # no coupling: no correlation (noise ~ 1/32)


def test_feedback_reaches_realisable_targets_within_the_tolerance():
    made = simulate_lattices(span=3, couplings=random_couplings(3, 6, 2), size=48, sweeps=150, rng=3)
    batch = simulate_lattices(span=3, target=made.encoding, size=48, rng=4, max_sweeps=2000)
    assert batch.converged.all()
    assert np.all(batch.error <= 0.03)
    np.testing.assert_allclose(batch.encoding, correlations(batch.lattices, 3))
    np.testing.assert_array_equal(batch.target, made.encoding)
    steps = list(iter_lattices(span=2, target=[0.0, 0.0, 0.0], size=16, rng=0, max_sweeps=8))
    assert steps and steps[-1].total == 8


def test_analytic_inverse_on_lot_images_tracks_the_lattice():
    made = simulate_lattices(span=2, couplings=random_couplings(2, 64, 7), size=64, sweeps=100, rng=8)
    img = diffraction_image(made.lattices, lot=32, n_lots=32, rng=9)
    est = analytic_encoding(img, 2)
    assert np.abs(est - made.encoding).mean() < 0.02
    assert np.corrcoef(est[:, 0], made.encoding[:, 0])[0, 1] > 0.99


def test_dataset_round_trip(tmp_path):
    data = make_dataset(span=2, n=20, size=16, lot=8, n_lots=4, sweeps=20, seed=1, batch=8)
    assert data["images"].shape == (20, 8, 8) and data["encoding"].shape == (20, 3)
    save_dataset(tmp_path / "d.h5", data)
    back = load_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(back["images"], data["images"])
    assert back["settings"]["span"] == 2 and back["settings"]["seed"] == 1
    with pytest.raises(XrayAtlasError, match="not a diffraction dataset"):
        (tmp_path / "bad.h5").write_bytes(b"nope")
        load_dataset(tmp_path / "bad.h5")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"span": 5, "couplings": [0, 0, 0]}, "span=5"),
        ({"span": 2, "couplings": [0, 0]}, "needs 3 values"),
        ({"span": 2}, "either target"),
        ({"span": 2, "couplings": [0, 0, 0], "target": [0, 0, 0]}, "either target"),
        ({"span": 2, "couplings": [0, np.nan, 0]}, "finite"),
        ({"span": 4, "couplings": np.zeros(15), "size": 6}, "size=6"),
        ({"span": 2, "couplings": [0, 0, 0], "concentration": 1.0}, "concentration"),
    ],
)
def test_bad_simulation_input(kwargs, match):
    with pytest.raises(XrayAtlasError, match=match):
        simulate_lattices(**kwargs)


def test_bad_lattices_and_images():
    with pytest.raises(XrayAtlasError, match="square"):
        correlations(np.zeros((4, 5)), 2)
    with pytest.raises(XrayAtlasError, match="lot=40"):
        diffraction_image(np.zeros((16, 16)), lot=40)
    with pytest.raises(XrayAtlasError, match="square"):
        analytic_encoding(np.ones((8, 9)), 2)
