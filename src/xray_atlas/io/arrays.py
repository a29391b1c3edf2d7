"""Plain arrays on disk: ``.npy`` (memory-mapped) and Zarr stores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..cube import SpectralCube, check_energy, linear_energy
from ..errors import XrayAtlasError
from ._metadata import declared

__all__ = ["read_npy", "read_zarr"]


def read_npy(path: str | os.PathLike, *, dataset: str | None = None) -> SpectralCube:
    """Memory-map an (H, W, C) ``.npy`` file. It carries no calibration of its own."""
    path = Path(os.fspath(path))
    if dataset is not None:
        raise XrayAtlasError("dataset= does not apply to .npy files", path=path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise XrayAtlasError(f"not a readable .npy array ({npy_reason(err)})", path=path) from None
    return SpectralCube(arr, path=path)


def npy_reason(err: BaseException) -> str:
    """numpy's reason a .npy file did not load, without its advice to allow pickles (a file
    holding Python objects can run code when loaded; it is never loaded here)."""
    text = str(err)
    if "allow_pickle" in text or "pickle" in text.lower():
        return "it holds Python objects (a pickle), which are never loaded; save a numeric array"
    return text


def read_zarr(path: str | os.PathLike, *, dataset: str | None = None) -> SpectralCube:
    """Open a Zarr array, or a Zarr group laid out like the HDF5 cube (``spectra``, ``energy``;
    the root attributes of docs/dev/contracts.md section 2 as attributes of the group, or of the array,
    and ``live_time_s`` per pixel as an attribute or an (H, W) array of the group)."""
    import zarr

    path = Path(os.fspath(path))
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - zarr raises many types for a bad store
        raise XrayAtlasError(f"not a readable Zarr store ({type(err).__name__})", path=path) from None
    group = None
    if hasattr(node, "shape"):
        arr = node
        if dataset is not None:
            raise XrayAtlasError("dataset= given but the store is a single array", path=path)
    else:
        group = node
        key = dataset or "spectra"
        if key not in group:
            arrays = [k for k, v in group.arrays() if len(v.shape) == 3]
            if dataset is None and len(arrays) == 1:
                key = arrays[0]
            else:
                raise XrayAtlasError(f"no array {key!r} in the Zarr group (3-D arrays: {arrays})", path=path)
        arr = group[key]
    energy = None
    n_channels = arr.shape[-1] if len(arr.shape) == 3 else 0
    if group is not None and "energy" in group and n_channels:
        energy = check_energy(np.asarray(group["energy"]), n_channels, "energy")
    elif n_channels and ("energy_offset_kev" in arr.attrs) != ("energy_gain_kev" in arr.attrs):
        raise XrayAtlasError("attributes energy_offset_kev/energy_gain_kev: only one of the two is present", path=path)
    elif n_channels and "energy_offset_kev" in arr.attrs and "energy_gain_kev" in arr.attrs:
        try:
            energy = linear_energy(
                arr.attrs["energy_offset_kev"],
                arr.attrs["energy_gain_kev"],
                n_channels,
                source="attributes energy_offset_kev/energy_gain_kev",
            )
        except XrayAtlasError as err:
            raise XrayAtlasError(str(err), path=path) from None
    metadata = {}
    if n_channels:
        attrs = group.attrs if group is not None else arr.attrs
        arrays = {k: group[k] for k in ("live_time_s", "real_time_s") if k in group} if group is not None else None
        try:
            metadata = {k: attrs[k] for k in ("tube_kv", "tube_ua", "anode", "fwhm_mnka_ev", "title") if k in attrs}
            metadata.update(declared(attrs, arrays, tuple(arr.shape[:2])))
        except XrayAtlasError as err:
            raise XrayAtlasError(str(err), path=path) from None
    return SpectralCube(arr, energy=energy, metadata=metadata, path=path)
