"""The shipped radiograph classifier (tools/train_zoo.py images) on freshly simulated
radiographs it never saw: other seeds, other frame sizes, every file type."""

import numpy as np
import pytest

from xray_atlas.classify import DEFAULT_IMAGE_MODEL, activation_map, load_image_model, prepare_image
from xray_atlas.physics.radiograph import RadiographConfig, radiograph, radiographs


@pytest.fixture(scope="module")
def model():
    return load_image_model(device="cpu")


def test_card(model):
    assert model.name == DEFAULT_IMAGE_MODEL and model.classes == ("Al1050", "Al2017")
    assert model.normalisation == "open-beam" and model.size == 64


@pytest.mark.parametrize("kind, frame, target", [("plate", 128, 0.99), ("wedge", 128, 0.97), ("plate", 200, 0.99)])
def test_accuracy_on_fresh_radiographs(model, kind, frame, target):
    # issue 9 targets: plates of 1 / 2 / 5 mm >= 99 %, 7 cm wedges >= 97 %; 200-pixel frames
    # (finer pixels than in training) are resized like any user's image
    x, y, _ = radiographs(200, config=RadiographConfig(kind=kind, size=frame), seed=4000 + frame)
    assert (model(list(x)).argmax(1) == y).mean() >= target


def test_activation_maps_fall_on_the_object(model):
    from scipy.ndimage import binary_dilation

    cfg = RadiographConfig(kind="plate", size=96, flat_field_share=1.0)
    share, area = [], []
    for seed in range(8):
        r = radiograph(("Al1050", "Al2017")[seed % 2], config=cfg, rng=seed, output="float")
        cam = activation_map(model, r.image)
        assert cam.shape == (96, 96) and cam.min() >= 0 and cam.max() == pytest.approx(1)
        obj = binary_dilation(prepare_image(r.image, size=96, normalisation="open-beam") > 0.2, iterations=4)
        share.append(cam[obj].sum() / cam.sum())
        area.append(obj.mean())
    # the plate (with its edges) covers 13-32 % of the frame and holds most of the map's weight
    assert np.mean(share) > 2 * np.mean(area) and np.mean(share) > 0.5, (share, area)
