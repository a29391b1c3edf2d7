"""Reading 2-D images (docs/dev/contracts.md section 6), and bad image files."""

import h5py
import numpy as np
import pytest
from PIL import Image

from xray_atlas import XrayAtlasError
from xray_atlas.io.images import read_image


def test_formats_and_rgb(tmp_path):
    img = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000
    Image.fromarray(img).save(tmp_path / "a.tif")
    np.save(tmp_path / "a.npy", img)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["image"] = img
    for name in ("a.tif", "a.npy", "a.h5"):
        np.testing.assert_array_equal(read_image(tmp_path / name), img.astype(np.float32))
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "g.png")
    np.testing.assert_allclose(read_image(tmp_path / "g.png"), round(0.587 * 200), atol=1)  # ITU-R 601 luma


def test_bad_images_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image")
    np.save(tmp_path / "cube.npy", np.zeros((4, 4, 7)))  # (H, W, 3 or 4) would be RGB(A)
    np.save(tmp_path / "nan.npy", np.full((4, 4), np.nan))
    with h5py.File(tmp_path / "noimage.h5", "w") as f:
        f["spectra"] = np.zeros((2, 2))
    for name, match in (
        ("junk.png", "not a readable image"),
        ("cube.npy", "expected a 2-D image"),
        ("nan.npy", "the image has NaN"),
        ("noimage.h5", "no /image dataset"),
        ("missing.png", "no such file"),
    ):
        with pytest.raises(XrayAtlasError, match=f"{name}: {match}"):
            read_image(tmp_path / name)


def test_find_images(tmp_path):
    from xray_atlas.io.images import find_images

    (tmp_path / "set" / "sub").mkdir(parents=True)
    for name in ("b.PNG", "a.tif", "sub/c.npy", "notes.txt"):
        (tmp_path / "set" / name).write_bytes(b"")
    lone = tmp_path / "lone.h5"
    # a file is taken as given (read_image judges it), a folder gives its images, subfolders too
    assert find_images([lone, tmp_path / "set"]) == [
        lone,
        tmp_path / "set" / "a.tif",
        tmp_path / "set" / "b.PNG",
        tmp_path / "set" / "sub" / "c.npy",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(XrayAtlasError, match="empty: no images in this folder"):
        find_images([tmp_path / "empty"])
