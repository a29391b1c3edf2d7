"""Diffraction predictors, preparation steps, reconstruction and result files."""

import h5py
import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.diffraction import (
    Predictor,
    check_image,
    degrade,
    load_predictor,
    model_input,
    prepare_image,
    reconstruct,
    write_reconstruction,
)
from xray_atlas.metrics import r2_score
from xray_atlas.physics.lattice import diffraction_image, random_couplings, simulate_lattices


@pytest.fixture(scope="module")
def clean():
    """Span-2 lattices (48 x 48) and their lot-averaged images (lots of 24)."""
    made = simulate_lattices(span=2, couplings=random_couplings(2, 24, 11), size=48, sweeps=80, rng=12)
    return made, diffraction_image(made.lattices, lot=24, n_lots=16, rng=13)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.ones((20, 24)), "square"),
        (np.ones((8, 8)), "too small"),
        (np.ones((4, 4, 4)), "2-D"),
        (np.where(np.eye(20) > 0, np.nan, 1.0), "NaN"),
        (-np.ones((20, 20)), "negative"),
        (np.zeros((20, 20)), "all zero"),
    ],
)
def test_bad_images_get_one_line_errors(image, match):
    with pytest.raises(XrayAtlasError, match=match) as err:
        check_image(image)
    assert "\n" not in str(err.value)


def test_model_input_is_scale_free_and_resized():
    img = np.random.default_rng(0).random((24, 24)) + 0.1
    a, b = model_input(img), model_input(img * 1e4)
    assert a.shape == (1, 1, 64, 64) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert abs(float(a.mean()) - 1) < 1e-5


def test_degrade_noise_log_and_beam_stop():
    img = np.full((32, 32), 5.0)
    noisy = degrade(img, 0, counts=100.0)
    assert abs(noisy.mean() - 100) < 3 and 8 < noisy.std() < 12  # Poisson: variance = mean
    stopped = degrade(img, 0, log=True, beam_stop=2)
    assert stopped[16, 16] == 0 and stopped[16, 18] == 0 and stopped[16, 19] > 0
    np.testing.assert_allclose(stopped[0, 0], np.log1p(100.0), rtol=1e-6)
    assert img[16, 16] == 5.0  # the input is left alone


def test_preparation_steps_and_their_stages():
    rng = np.random.default_rng(1)
    img = rng.random((32, 32)) + 1.0
    logged = np.log1p(img)
    back, stages = prepare_image(logged, unlog=True, normalise=True, rescale=64)
    assert [s for s, _ in stages] == ["input", "unlog", "normalise", "rescale"]
    np.testing.assert_allclose(stages[1][1], img, rtol=1e-9)
    assert back.shape == (64, 64) and abs(back.mean() - 1) < 1e-6
    holed = img.copy()
    holed[14:18, 14:18] = np.nan  # NaN pixels are masked and inpainted
    filled, stages = prepare_image(holed)
    assert [s for s, _ in stages] == ["input", "inpaint"] and np.isfinite(filled).all()
    assert abs(filled[14:18, 14:18].mean() - img.mean()) < 0.3
    flat = prepare_image(img + 10.0, tophat=3)[0]
    assert flat.mean() < 1.0  # the top-hat takes away the smooth level
    matched = prepare_image(img**3, match=img)[0]
    assert abs(np.median(matched) - np.median(img / img.mean())) < 0.02
    _, stages = prepare_image(img, mask=np.zeros((32, 32), bool))
    assert [s for s, _ in stages] == ["input"]  # nothing masked: no inpainting step
    with pytest.raises(XrayAtlasError, match="every pixel"):
        prepare_image(img, mask=np.ones((32, 32), bool))
    with pytest.raises(XrayAtlasError, match="mask: shape"):
        prepare_image(img, mask=np.zeros((8, 8), bool))
    with pytest.raises(XrayAtlasError, match="tophat"):
        prepare_image(img, tophat=-1)


def test_analytic_predictor_reads_clean_images(clean):
    made, images = clean
    pred = load_predictor("analytic", span=2).predict(images)
    assert pred.shape == (24, 3)
    assert r2_score(pred, made.encoding) > 0.97
    assert np.allclose(load_predictor("analytic", span=2).predict(images[0] * 123.0), pred[0])
    with pytest.raises(XrayAtlasError, match="span"):
        load_predictor("analytic")


def test_reconstruction_and_result_file(clean, tmp_path):
    made, images = clean
    rec = reconstruct(images[0], Predictor("analytic", 2), seed=1)
    assert rec.lattice.shape == (96, 96) and rec.lattice.dtype == np.uint8
    assert rec.converged and np.abs(rec.measured - rec.encoding).max() <= 0.03 + 1e-6
    assert rec.reconstruction.shape == images[0].shape
    assert rec.image_r2 > 0.3  # same encoding, another lattice: the images agree up to lot noise
    assert rec.residual.shape == images[0].shape
    out = tmp_path / "r.h5"
    write_reconstruction(out, rec)
    with h5py.File(out) as f:  # docs/dev/contracts.md section 3
        assert f["encoding"].shape == (3,) and f["encoding"].dtype == np.float32
        assert f["lattice"].dtype == np.uint8 and f["lattice"].shape == (96, 96)
        assert f["reconstruction"].dtype == np.float32 and f["reconstruction"].ndim == 2
        assert f.attrs["model"] == "analytic" and f.attrs["span"] == 2


def test_unknown_and_wrong_models(tmp_path):
    with pytest.raises(XrayAtlasError, match="neither a model file"):
        load_predictor("no-such-model", span=2)
    with pytest.raises(XrayAtlasError, match="span=5"):
        load_predictor("analytic", span=5)


def test_reproducibility_spread_and_reference_image():
    from xray_atlas.diffraction import reference_image, reproducibility

    made = simulate_lattices(span=2, couplings=[[0.3, -0.2, 0.1]], size=32, sweeps=80, rng=2)
    img = diffraction_image(made.lattices[0], lot=16, n_lots=16, rng=3)
    rep = reproducibility(img, made.encoding[0], 2, n=8, seed=4)
    assert rep["image_r2"].shape == (8,) and rep["converged"].mean() >= 0.75
    assert np.all(rep["image_r2"] < 1.0) and np.median(rep["image_r2"]) > 0.0  # same encoding, similar images
    assert np.all(rep["encoding_error"][rep["converged"]] <= 0.03 + 1e-9)
    ref = reference_image(2)
    assert ref.shape == (32, 32) and np.isfinite(ref).all()
    logged, stages = prepare_image(img, log=True)
    np.testing.assert_allclose(logged, np.log1p(img / img.mean() * 100), rtol=1e-6)


def test_metadata_span():
    from xray_atlas.diffraction import metadata_span

    assert metadata_span({"span": 3, "encoding": [0.1] * 8}) == 3  # the napari sample's layout
    assert metadata_span({"xray_atlas": {"span": np.int64(4)}}) == 4
    assert metadata_span({}) is None and metadata_span(None) is None and metadata_span({"xray_atlas": 1}) is None
    with pytest.raises(XrayAtlasError, match="layer 'x': its metadata span is 5"):
        metadata_span({"span": 5}, name="layer 'x'")
    with pytest.raises(XrayAtlasError, match="not a number"):
        metadata_span({"span": "three"})


def test_resolve_span():
    from xray_atlas.diffraction import resolve_span

    assert resolve_span(3, [2, 4], model=None) == (3, None)  # the user's span wins
    assert resolve_span(None, [4, None, 4], model=None) == (4, None)  # the images agree
    assert resolve_span(None, [None], model="my-model.safetensors") == (None, None)  # the model knows its own
    span, note = resolve_span(None, [], model=None, parameter="--span")
    assert span is None and note.startswith("neither --span nor the images' metadata give the span; using span 2")
    with pytest.raises(XrayAtlasError, match="metadata give different spans; process them separately or give span$"):
        resolve_span(None, [2, 3])
    with pytest.raises(XrayAtlasError, match="the analytic inverse needs the span: give --span 2, 3 or 4"):
        resolve_span(None, [None], model="analytic", parameter="--span")
