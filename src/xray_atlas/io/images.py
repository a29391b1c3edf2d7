"""2-D grayscale images (docs/dev/contracts.md section 6): reading TIFF, PNG, JPEG, BMP via
Pillow, ``.npy`` and HDF5 ``/image`` (RGB converted to luminance); writing them without losing
their values; preparing them as the image models see them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import XrayAtlasError

__all__ = ["read_image", "write_image", "prepare_image", "find_images", "IMAGE_SUFFIXES", "NORMALISATIONS"]

#: File suffixes read as images (docs/dev/contracts.md section 6).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".h5", ".hdf5", ".bmp")
#: How :func:`prepare_image` scales an image for the image models.
NORMALISATIONS = ("standard", "open-beam")


def find_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The image files named by ``paths``: a file as given, a folder's files with an image
    suffix (:data:`IMAGE_SUFFIXES`, any case), searched through its subfolders, in sorted order.

    Raises
    ------
    XrayAtlasError
        A folder without images (naming it).
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise XrayAtlasError("no images in this folder", path=p)
            files += found
        else:
            files.append(p)
    return files


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A 2-D float32 image; a clear error naming the file otherwise."""
    from .._files import check_input
    from .arrays import npy_reason

    path = check_input(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            img = np.load(path, allow_pickle=False)
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                if "image" not in f:
                    raise XrayAtlasError("no /image dataset in this HDF5 file", path=path)
                img = f["image"][()]
        else:
            from PIL import Image

            with Image.open(path) as im:
                if im.mode in ("RGB", "RGBA", "P", "CMYK", "LA"):
                    im = im.convert("L")
                img = np.asarray(im)
    except XrayAtlasError:
        raise
    except FileNotFoundError:
        raise XrayAtlasError("no such file", path=path) from None
    except Exception as err:  # noqa: BLE001 - Pillow, numpy and h5py raise many types
        reason = npy_reason(err) if suffix == ".npy" else f"{type(err).__name__}: {str(err)[:80]}"
        raise XrayAtlasError(f"not a readable image ({reason})", path=path) from None
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if img.ndim != 2 or min(img.shape) < 2:
        raise XrayAtlasError(f"expected a 2-D image, got shape {img.shape}", path=path)
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise XrayAtlasError("the image has NaN or infinite pixels", path=path)
    return img


def write_image(path: str | os.PathLike, img: np.ndarray) -> Path:
    """Write an image without losing its values, atomically: 8- and 16-bit integers as PNG,
    anything else as ``.npy``. ``path`` names the file without its suffix, which is appended
    (so a name with dots, ``scan.001``, keeps them); returns the path written."""
    from PIL import Image

    from .._files import atomic_file

    img = np.asarray(img)
    path = Path(path)
    path = path.with_name(path.name + (".png" if img.dtype in (np.uint8, np.uint16) else ".npy"))
    with atomic_file(path, suffix=path.suffix) as tmp:
        if path.suffix == ".png":
            Image.fromarray(img).save(tmp, format="PNG")
        else:
            np.save(tmp, img.astype(np.float32))
    return path


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


def prepare_image(img: np.ndarray, *, size: int, normalisation: str = "standard") -> np.ndarray:
    """A 2-D image as the image models see it: (size, size) float32.

    Parameters
    ----------
    img : (H, W) array
    size : int
        Side after resizing (bilinear with antialiasing).
    normalisation : {"standard", "open-beam"}
        Zero mean and unit std per image, or -ln(I / I0) of a radiograph
        (:func:`xray_atlas.physics.radiograph.open_beam_log`).
    """
    img = np.asarray(img)
    if img.ndim != 2 or min(img.shape) < 4:
        raise XrayAtlasError(f"image: expected a 2-D image of at least 4 x 4 pixels, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise XrayAtlasError("image: NaN or infinite pixels")
    if normalisation == "standard":
        out = _resize(img.astype(np.float32), size)
        return ((out - out.mean()) / max(float(out.std()), 1e-12)).astype(np.float32)
    if normalisation == "open-beam":
        from ..physics.radiograph import open_beam_log

        return _resize(open_beam_log(img), size)
    raise XrayAtlasError(f"normalisation={normalisation!r}; choose one of {', '.join(NORMALISATIONS)}")
