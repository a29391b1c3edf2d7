"""Image datasets on disk for classification (docs/dev/contracts.md section 6): building the ImageFolder
layout ``root/{train,val,test}/<class>/<image>`` from one folder per class, study 002's
quadrant crops and its split (every 3rd image to test, every 6th of the rest to validation),
and duplicate detection across the splits.

Study 002 split the quadrants themselves, so the four quarters of one micrograph could land in
training and test at once, and a test score then partly measures memory of the same sample.
:func:`build_image_folder` splits whole source images by default (``by="image"``: the
quarters of an image stay together) and offers the study's rule as ``by="quadrant"``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import XrayAtlasError
from .io.images import write_image

__all__ = [
    "SPLITS",
    "quadrants",
    "study_split",
    "image_hash",
    "Duplicate",
    "find_duplicates",
    "build_image_folder",
    "write_image",
    "write_classes",
    "write_dataset",
]

SPLITS = ("train", "val", "test")


def quadrants(img: np.ndarray) -> list[np.ndarray]:
    """The four quarters of an image (top-left, top-right, bottom-left, bottom-right); an odd
    row or column in the middle is dropped so the quarters are equal."""
    img = np.asarray(img)
    if img.ndim != 2 or min(img.shape) < 4:
        raise XrayAtlasError(f"image: expected a 2-D image of at least 4 x 4 pixels, got shape {img.shape}")
    h, w = img.shape[0] // 2, img.shape[1] // 2
    return [img[:h, :w], img[:h, -w:], img[-h:, :w], img[-h:, -w:]]


def study_split(n: int) -> list[str]:
    """Study 002's split of ``n`` items in order: every 3rd to test, then every 6th of those
    left to validation, the rest to training."""
    if n < 0:
        raise XrayAtlasError(f"n={n} must be >= 0")
    out = ["test" if (i + 1) % 3 == 0 else "" for i in range(n)]
    rest = [i for i in range(n) if not out[i]]
    for j, i in enumerate(rest):
        out[i] = "val" if (j + 1) % 6 == 0 else "train"
    return out


def image_hash(img: np.ndarray, *, bits: int = 8) -> int:
    """Difference hash (dHash): the signs of horizontal gradients of the image shrunk to
    ``bits`` x (``bits`` + 1); near-identical images (re-encoded, rescaled, slightly
    retouched) differ in few bits."""
    from PIL import Image

    a = np.asarray(img, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    a8 = np.zeros(a.shape, np.uint8) if hi <= lo else np.round((a - lo) / (hi - lo) * 255).astype(np.uint8)
    small = np.asarray(Image.fromarray(a8).resize((bits + 1, bits), Image.Resampling.BOX), dtype=np.int16)
    diff = (small[:, 1:] > small[:, :-1]).ravel()
    return int(sum(1 << i for i, b in enumerate(diff) if b))


@dataclass(frozen=True)
class Duplicate:
    """Two images that are the same (``distance`` 0 and ``identical``) or nearly the same."""

    first: Path
    second: Path
    distance: int  # differing hash bits
    identical: bool  # same pixels


def find_duplicates(
    root: str | os.PathLike, *, max_distance: int = 3, across_splits_only: bool = True
) -> list[Duplicate]:
    """Pairs of images in an ImageFolder dataset whose difference hashes differ in at most
    ``max_distance`` of 64 bits; by default only pairs in different splits (the ones that
    leak test images into training)."""
    from .io.images import IMAGE_SUFFIXES, read_image

    root = Path(root)
    files = sorted(
        p
        for s in SPLITS
        if (root / s).is_dir()
        for p in (root / s).rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise XrayAtlasError("no images under train/, val/ or test/", path=root)
    hashes, digests = [], []
    for f in files:
        img = read_image(f)
        hashes.append(image_hash(img))
        digests.append(hashlib.sha1(np.ascontiguousarray(img).tobytes() + str(img.shape).encode()).hexdigest())
    split = np.array([f.relative_to(root).parts[0] for f in files])
    h = np.array(hashes, dtype=np.uint64)
    out = []
    for i in range(len(files) - 1):  # one vectorised row of the distance matrix at a time
        dist = np.unpackbits((h[i + 1 :] ^ h[i]).view(np.uint8).reshape(-1, 8), axis=1).sum(1)
        hit = dist <= max_distance
        if across_splits_only:
            hit &= split[i + 1 :] != split[i]
        for j in np.flatnonzero(hit) + i + 1:
            out.append(Duplicate(files[i], files[j], int(dist[j - i - 1]), digests[i] == digests[j]))
    return out


def build_image_folder(
    source: str | os.PathLike, out: str | os.PathLike, *, split_quadrants: bool = True, by: str = "image"
) -> dict[str, dict[str, int]]:
    """Build ``out/{train,val,test}/<class>/`` from ``source/<class>/<images>``.

    Parameters
    ----------
    source : path
        One folder per class holding its images (any format of docs/dev/contracts.md section 6).
    out : path
        A new or empty folder.
    split_quadrants : bool
        Cut each image into its four quarters (study 002), discarding the full image.
    by : {"image", "quadrant"}
        Split whole source images (their quarters stay in one split), or the quarters
        themselves in order, as study 002 did.

    Returns
    -------
    dict
        split -> class -> number of images written.
    """
    from .io.images import IMAGE_SUFFIXES, read_image

    if by not in ("image", "quadrant"):
        raise XrayAtlasError(f"by={by!r}; choose image or quadrant")
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise XrayAtlasError("not a folder", path=source)
    classes = sorted(d.name for d in source.iterdir() if d.is_dir())
    if len(classes) < 2:
        raise XrayAtlasError("expected one folder per class (at least two) holding its images", path=source)
    if out.exists() and any(out.iterdir()):
        raise XrayAtlasError("the output folder is not empty", path=out)
    counts = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    plan: list[tuple[str, str, np.ndarray, str]] = []
    for c in classes:
        files = sorted(p for p in (source / c).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise XrayAtlasError(f"no images in {c}/", path=source)
        pieces = []  # (source index, name, image)
        for k, f in enumerate(files):
            img = _read_raw(f, read_image)
            parts = quadrants(img) if split_quadrants else [img]
            pieces += [(k, f"{f.stem}_q{q}" if split_quadrants else f.stem, p) for q, p in enumerate(parts)]
        if by == "image":
            per_image = study_split(len(files))
            splits = [per_image[k] for k, _, _ in pieces]
        else:
            splits = study_split(len(pieces))
        plan += [(s, c, p, name) for s, (_, name, p) in zip(splits, pieces)]
    for s in SPLITS:
        for c in classes:
            (out / s / c).mkdir(parents=True, exist_ok=True)
    for s, c, p, name in plan:
        write_image(out / s / c / name, p)
        counts[s][c] += 1
    return counts


def _read_raw(path: Path, read_image) -> np.ndarray:
    """An image in its own integer type where it has one (so PNGs stay 8 or 16 bit)."""
    if path.suffix.lower() in (".png", ".tif", ".tiff", ".bmp"):
        from PIL import Image

        try:
            with Image.open(path) as im:
                if im.mode in ("L", "I;16", "I;16B", "I;16L"):
                    return np.asarray(im).copy()
        except OSError:
            pass  # read_image names the file and the problem
    return read_image(path)


def write_classes(
    root: str | os.PathLike, images: Iterable[np.ndarray], labels: Iterable[int], classes: tuple[str, ...]
) -> Path:
    """Write images into ``root/<class>/<index>`` (the input of :func:`build_image_folder`)."""
    root = Path(root)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
    for i, (img, k) in enumerate(zip(images, labels)):
        write_image(root / classes[int(k)] / f"{i:05d}", img)
    return root


def write_dataset(
    out: str | os.PathLike,
    images: Iterable[np.ndarray],
    labels: Iterable[int],
    classes: tuple[str, ...],
    *,
    split_quadrants: bool = False,
) -> dict[str, dict[str, int]]:
    """Write labelled images as the dataset ``out/{train,val,test}/<class>/``
    (:func:`write_classes`, then :func:`build_image_folder`), staged beside ``out`` and moved
    into place at the end, so a failure leaves no half dataset. ``out`` must not exist or be an
    empty folder. Returns the images per split and class."""
    import tempfile

    out = Path(out)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        write_classes(Path(tmp) / "classes", images, labels, classes)
        staged = Path(tmp) / "dataset"
        counts = build_image_folder(Path(tmp) / "classes", staged, split_quadrants=split_quadrants)
        if out.exists():
            out.rmdir()
        os.replace(staged, out)
    return counts
