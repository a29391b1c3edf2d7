"""Acquisition metadata in the names of docs/dev/contracts.md section 2, from what each format states.

Files and rosettasciio give lengths in µm, mm or nm and energies in eV or keV; a cube's
``metadata`` holds ``pixel_size_um`` (µm, the step between columns; ``pixel_size_y_um`` too
when the rows' step differs), ``live_time_s`` and ``real_time_s`` (seconds per pixel: a number
when every pixel has the same, or an (H, W) array), and ``tube_kv`` (kV).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import XrayAtlasError

#: Length units (lower case, as files write them) -> micrometres.
_LENGTH_UM = {
    "µm": 1.0,
    "μm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "nm": 1e-3,
    "cm": 1e4,
    "m": 1e6,
}
#: Energy units -> keV.
_ENERGY_KEV = {"kev": 1.0, "ev": 1e-3}


def positive(value: Any) -> float | None:
    """``value`` as a float if it is a finite number > 0, else None: vendor files write 0 or -1
    for what was not recorded (rosettasciio PR 471: a Bruker file with beam energy -1)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def length_um(value: Any, units: Any) -> float | None:
    """A length in ``units`` (µm, um, mm, nm ...) as µm; None for pixels, undefined units or
    a value that is not a positive number."""
    factor = _LENGTH_UM.get(str(units or "").strip().lower())
    v = positive(value)
    return None if factor is None or v is None else v * factor


def energy_factor_kev(units: Any) -> float | None:
    """keV per unit of an energy axis (``keV`` 1, ``eV`` 0.001); None when the unit is not an energy."""
    return _ENERGY_KEV.get(str(units or "").strip().lower())


def checked_number(value: Any, name: str, *, unit: str) -> float:
    """A metadata number a cube file declares in the contract's names (HDF5/Zarr attributes):
    refused, naming it, unless one finite number > 0."""
    try:
        arr = np.asarray(value)
        if arr.size != 1:
            raise ValueError
        v = float(arr.reshape(-1)[0])
    except (TypeError, ValueError):
        raise XrayAtlasError(f"attribute {name!r} = {value!r} is not a number ({unit})") from None
    if not (math.isfinite(v) and v > 0):
        raise XrayAtlasError(f"attribute {name!r} = {v} must be a finite number > 0 ({unit})")
    return v


def per_pixel_or_number(value: Any, name: str, shape: tuple[int, int], *, source: str = "attribute") -> Any:
    """A time per pixel: one checked number, or an (H, W) numeric array kept as it is (lazy
    datasets stay lazy; their values are checked where they are used). ``source``
    (attribute, dataset) names where it came from in messages."""
    if np.ndim(value) < 2:
        return checked_number(value, name, unit="s")
    if tuple(np.shape(value)) != tuple(shape):
        raise XrayAtlasError(
            f"{source} {name!r} has shape {tuple(np.shape(value))}; expected one number or the pixels' {tuple(shape)}"
        )
    dtype = np.dtype(value.dtype) if hasattr(value, "dtype") else np.asarray(value).dtype
    if dtype.kind not in "uif":
        raise XrayAtlasError(f"{source} {name!r} holds {dtype} values; expected seconds as numbers")
    return value if hasattr(value, "dtype") else np.asarray(value, dtype=np.float64)


def declared(attrs: Any, arrays: Any, shape: tuple[int, int]) -> dict[str, Any]:
    """The contract's scan metadata a cube file declares (HDF5 root attributes, Zarr attributes),
    checked: ``pixel_size_um``, ``pixel_size_y_um`` (µm) as numbers > 0; ``live_time_s``,
    ``real_time_s`` as one number > 0 or an (H, W) array, from an attribute or from a dataset
    of that name in ``arrays`` (kept lazy)."""
    out: dict[str, Any] = {}
    for key in ("pixel_size_um", "pixel_size_y_um"):
        if key in attrs:
            out[key] = checked_number(attrs[key], key, unit="µm")
    for key in ("live_time_s", "real_time_s"):
        in_attrs, in_arrays = key in attrs, arrays is not None and key in arrays
        if in_attrs and in_arrays:
            raise XrayAtlasError(f"{key} is both an attribute and a dataset; keep one")
        if in_attrs:
            out[key] = per_pixel_or_number(attrs[key], key, shape)
        elif in_arrays:
            value = arrays[key]
            if not hasattr(value, "shape") or not hasattr(value, "dtype"):
                raise XrayAtlasError(f"{key} is not a dataset of seconds per pixel")
            out[key] = per_pixel_or_number(value, key, shape, source="dataset")
    return out
