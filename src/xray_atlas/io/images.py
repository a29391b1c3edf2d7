"""Reading 2-D grayscale images (docs/dev/contracts.md section 6): TIFF, PNG, JPEG, BMP via Pillow;
``.npy``; HDF5 ``/image``. RGB is converted to luminance."""

from __future__ import annotations

import os

import numpy as np

from ..errors import XrayAtlasError

__all__ = ["read_image"]


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
