"""Image classification: preparing images, a CI-sized radiograph classifier trained with the
training engine (study 000's plate target), activation-map files, pretrained weights. The
shipped model and its activation maps: tests/models/test_zoo_images.py."""

from pathlib import Path

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.classify import activation_map, classify_files, load_image_model, predict_images, prepare_image
from xray_atlas.physics.radiograph import RadiographConfig, radiograph, radiographs


@pytest.fixture(scope="module")
def plates_model(tmp_path_factory):
    from xray_atlas.training.run import make_config, train

    # 3,000 small radiographs, 15 epochs (~30 s on 2 cores): the network first has to find
    # detectors for the -ln T levels, which takes ~1,000 steps (fewer stalled at 60-75 %)
    out = tmp_path_factory.mktemp("img") / "plates"
    cfg = make_config(
        "images",
        model="image-cnn",
        source="synthetic-radiographs",
        epochs=15,
        seed=3,
        device="cpu",
        source_params={"n_images": 3000, "kind": "plate", "frame": 64, "size": 32},
    )
    train(cfg, out)
    return load_image_model(out, device="cpu")


def test_prepare_image():
    rng = np.random.default_rng(0)
    img = rng.random((40, 60)) * 100
    x = prepare_image(img, size=16)
    assert x.shape == (16, 16) and abs(float(x.mean())) < 1e-5 and float(x.std()) == pytest.approx(1, abs=1e-4)
    r = radiograph("Al1050", config=RadiographConfig(size=64), rng=1, output="float").image
    a = prepare_image(r, size=32, normalisation="open-beam")
    np.testing.assert_allclose(prepare_image(r * 977.0, size=32, normalisation="open-beam"), a, atol=1e-5)
    assert a.min() >= 0 and a.max() > 0.3  # -ln(I / I0): open beam 0, the plate above
    with pytest.raises(XrayAtlasError, match="2-D image"):
        prepare_image(np.zeros((3, 8, 8)), size=8)
    with pytest.raises(XrayAtlasError, match="NaN"):
        prepare_image(np.full((8, 8), np.nan), size=8)
    with pytest.raises(XrayAtlasError, match="normalisation='log'"):
        prepare_image(img, size=8, normalisation="log")


def test_small_training_reaches_the_plate_target(plates_model):
    # issue 9: >= 99 % on simulated plates of 1, 2 and 5 mm (fresh seed, another frame size)
    x, y, _ = radiographs(300, config=RadiographConfig(kind="plate", size=80), seed=777)
    probs = plates_model(list(x))
    assert probs.shape == (300, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y).mean() >= 0.99
    rows = predict_images(x[:2], plates_model)
    assert set(rows[0]) == {"Al1050", "Al2017"}


def test_classify_files_and_cam_png(plates_model, tmp_path):
    from PIL import Image

    from xray_atlas.imagesets import write_image

    r = radiograph("Al2017", config=RadiographConfig(kind="plate", size=64), rng=5, output="uint16")
    f = write_image(tmp_path / "plate", r.image)
    (tmp_path / "cams").mkdir()  # not tmp_path itself: plate.png's map would replace plate.png (issue 27)
    (row,) = classify_files([f], plates_model, cam_dir=tmp_path / "cams")
    assert row["class"] == "Al2017" and row["probabilities"]["Al2017"] > 0.5
    with Image.open(row["cam"]) as im:
        assert im.size == (64, 64) and im.mode == "L"


def test_fnn_has_no_activation_map_and_bad_models_are_refused(tmp_path):
    from xray_atlas.classify import ImageModel
    from xray_atlas.models import build

    fnn, _ = build("image-fnn", image_size=16, n_outputs=2)
    m = ImageModel(fnn, "fnn", ("a", "b"), 16, "standard")
    with pytest.raises(XrayAtlasError, match="no spatial feature maps"):
        activation_map(m, np.random.default_rng(0).random((16, 16)))
    with pytest.raises(XrayAtlasError, match="neither a model file nor a known name \\(image classification models: "):
        load_image_model(tmp_path / "none")
    from xray_atlas.models.catalogue import zoo_dir

    with pytest.raises(XrayAtlasError, match="not image classification"):
        load_image_model(zoo_dir() / "elements-default.safetensors")


def test_user_supplied_pretrained_weights(tmp_path):
    import torch

    from xray_atlas.models import build
    from xray_atlas.models.images import import_torchvision

    rgb = import_torchvision().models.resnet18(weights=None)  # an ImageNet-shaped net: 3 channels, 1000 classes
    torch.save(rgb.state_dict(), tmp_path / "r18.pth")
    gray, _ = build("resnet18", n_outputs=2, weights=str(tmp_path / "r18.pth"))
    torch.testing.assert_close(gray.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(gray.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert gray.fc.weight.shape == (2, 512)  # the head for another class count keeps its own start
    (tmp_path / "bad.pth").write_bytes(b"not a state dict")
    with pytest.raises(XrayAtlasError, match="not a torch state dict"):
        build("resnet18", weights=str(tmp_path / "bad.pth"))


# -- issue 26 item 9: confident answers outside a model's domain ------------------------------
def _samples():
    """The images of the napari samples 'radiographs' and 'micrographs' (same code, no Qt)."""
    from xray_atlas.napari._sample_data import micrograph_sample, radiograph_sample

    ((radio, _, _),) = radiograph_sample()
    ((micro, meta, _),) = micrograph_sample()
    return radio, micro, meta["metadata"]


def test_shipped_radiograph_model_says_what_is_outside_its_domain():
    from xray_atlas.classify import DOMAIN_STATISTICS, check_domain

    model = load_image_model(None, device="cpu")
    domain = model.card.inputs["domain"]  # recorded by tools/add_image_domain.py, weights unchanged
    assert set(domain["statistics"]) == set(DOMAIN_STATISTICS) and domain["n_images"] >= 1000
    radio, micro, _ = _samples()
    assert [check_domain(model, im).inside for im in radio] == [True, True]
    checks = [check_domain(model, im) for im in micro]  # the model called all 8 "Al1050 p=1.000"
    assert [c.inside for c in checks] == [False] * 8
    assert all("outside what radiograph-default was trained on (synthetic-radiographs)" in c.message for c in checks)
    assert all("share of background pixels" in c.message for c in checks)
    # fresh radiographs of another seed and frame size are inside
    x, _, _ = radiographs(40, config=RadiographConfig(kind="both", size=96), seed=4321)
    assert sum(check_domain(model, im).inside for im in x) == 40


def test_domain_check_uses_the_image_metadata_and_says_when_it_cannot_tell():
    from dataclasses import replace

    from xray_atlas.classify import check_domain, domain_ranges, image_statistics

    model = load_image_model(None, device="cpu")
    radio, micro, meta = _samples()
    check = check_domain(model, radio[0], metadata={"classes": meta["classes"]})
    assert check.inside is False
    assert "its metadata names spheres-small, spheres-large, rods, cubes, ..." in check.message
    assert check_domain(model, radio[0], metadata={"class": "Al2017"}).inside is True
    blind = replace(
        model, card=replace(model.card, inputs={k: v for k, v in model.card.inputs.items() if k != "domain"})
    )
    unknown = check_domain(blind, micro[0])
    assert unknown.inside is None and "records no statistics" in unknown.message
    # the statistics themselves: a stack gives one value per image, equal to the single-image ones
    x = np.stack([prepare_image(im, size=32) for im in micro[:3]])
    stack, one = image_statistics(x), image_statistics(x[1])
    assert all(stack[k].shape == (3,) and stack[k][1] == pytest.approx(one[k]) for k in one)
    d = domain_ranges(x)
    assert d["n_images"] == 3 and all(lo <= hi for lo, hi in d["statistics"].values())
    with pytest.raises(XrayAtlasError, match="at least 2"):
        domain_ranges(x[:1])


def test_training_records_the_domain_in_the_card(plates_model):
    domain = plates_model.card.inputs["domain"]
    lo, hi = domain["statistics"]["low_share"]
    assert domain["n_images"] == 2400 and 0 < lo < hi <= 1  # 3,000 made, 20 % held out


def test_classify_image_command_flags_micrographs(tmp_path, capsys):
    import json

    from xray_atlas.cli import main
    from xray_atlas.imagesets import write_image

    radio, micro, _ = _samples()
    plate = write_image(tmp_path / "plate", radio[0])
    grains = write_image(tmp_path / "grains", micro[0])
    assert main(["classify-image", str(plate), str(grains)]) == 0
    out, err = capsys.readouterr()
    rows = {Path(r["path"]).stem: r for r in map(json.loads, out.splitlines())}
    assert rows["plate"]["in_domain"] is True and "domain_note" not in rows["plate"]
    assert rows["grains"]["in_domain"] is False and "outside what radiograph-default" in rows["grains"]["domain_note"]
    assert err.count("warning") == 1 and "grains" in err
