"""Dataset tools: quadrants, study 002's split, splitting by source image, duplicate detection
across splits, lossless image files."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.imagesets import (
    build_image_folder,
    find_duplicates,
    image_hash,
    quadrants,
    study_split,
    write_classes,
    write_image,
)
from xray_atlas.io.images import read_image


def test_quadrants_and_study_split():
    img = np.arange(7 * 9).reshape(7, 9)
    q = quadrants(img)
    assert [a.shape for a in q] == [(3, 4)] * 4 and q[0][0, 0] == 0 and q[3][-1, -1] == 62
    s = study_split(18)
    # every 3rd (3, 6, ..., 18) to test; of the 12 left every 6th (the 6th and 12th) to val
    assert [i + 1 for i, v in enumerate(s) if v == "test"] == [3, 6, 9, 12, 15, 18]
    assert [i + 1 for i, v in enumerate(s) if v == "val"] == [8, 17] and s.count("train") == 10


def test_build_keeps_the_quarters_of_an_image_together_and_finds_duplicates(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 65535, size=(32, 32), dtype=np.uint16) for _ in range(12)]
    write_classes(tmp_path / "src", imgs, [0, 1] * 6, ("a", "b"))
    counts = build_image_folder(tmp_path / "src", tmp_path / "ds")
    assert sum(sum(c.values()) for c in counts.values()) == 48 and counts["test"] == {"a": 8, "b": 8}
    where = {}
    for f in (tmp_path / "ds").rglob("*_q*.png"):
        where.setdefault(f.stem.split("_q")[0], set()).add(f.relative_to(tmp_path / "ds").parts[0])
    assert len(where) == 12 and all(len(s) == 1 for s in where.values())  # no image in two splits
    one = next((tmp_path / "ds" / "train" / "a").iterdir())
    np.testing.assert_array_equal(read_image(one), read_image(one))  # 16-bit PNG round trip
    assert read_image(one).max() > 255
    assert find_duplicates(tmp_path / "ds") == []
    assert write_image(tmp_path / "scan.001", imgs[0]).name == "scan.001.png"  # dots in a name are kept
    # the study's own rule splits quarters: neighbours of one image land in train and test
    counts_q = build_image_folder(tmp_path / "src", tmp_path / "dq", by="quadrant")
    assert sum(counts_q["test"].values()) == 16
    # a slightly retouched copy of a training image placed in test is found; identical pixels flagged
    src = read_image(one)
    write_image(tmp_path / "ds" / "test" / "a" / "copy", (src * 0.98 + 5).astype(np.float32))
    write_image(tmp_path / "ds" / "val" / "a" / "same", src.astype(np.uint16))
    dups = find_duplicates(tmp_path / "ds")
    pairs = {frozenset((d.first.stem, d.second.stem)) for d in dups}
    assert pairs == {frozenset(p) for p in ((one.stem, "copy"), (one.stem, "same"), ("copy", "same"))}
    assert [d.identical for d in dups if {d.first.stem, d.second.stem} == {one.stem, "same"}] == [True]
    with pytest.raises(XrayAtlasError, match="not empty"):
        build_image_folder(tmp_path / "src", tmp_path / "ds")


def test_difference_hash_ignores_scale_but_not_content():
    rng = np.random.default_rng(1)
    a = rng.random((64, 64))
    b = rng.random((64, 64))
    assert image_hash(a) == image_hash(a * 1000 + 3)
    assert bin(image_hash(a) ^ image_hash(b)).count("1") > 16


def test_write_dataset_moves_the_whole_dataset_into_place(tmp_path):
    from xray_atlas.imagesets import SPLITS, write_dataset

    rng = np.random.default_rng(0)
    images = [rng.random((16, 16)) for _ in range(12)]
    out = tmp_path / "ds"
    out.mkdir()  # an empty folder is taken
    counts = write_dataset(out, images, [k % 2 for k in range(12)], ("a", "b"))
    assert sum(n for split in counts.values() for n in split.values()) == 12
    assert sorted(p.name for p in out.iterdir()) == sorted(SPLITS)
    assert sum(1 for p in out.rglob("*") if p.is_file()) == 12
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # nothing staged is left beside it
