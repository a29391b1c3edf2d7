"""HDF5 spectral cubes: the layout of docs/dev/contracts.md section 2, or any file with one 3-D dataset."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..cube import SpectralCube, check_energy, linear_energy
from ..errors import XrayAtlasError
from ._metadata import declared
from .results import atomic_h5

__all__ = ["read_hdf5", "write_cube"]

_ROOT_ATTRS = ("tube_kv", "tube_ua", "anode", "fwhm_mnka_ev", "title")  # and those of _metadata.declared


def _numeric_datasets(f: h5py.File) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []

    def visit(_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "uif":
            found.append(obj)

    f.visititems(visit)
    return found


def _pick_dataset(f: h5py.File, path: Path, dataset: str | None) -> h5py.Dataset:
    if dataset is not None:
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            raise XrayAtlasError(f"dataset={dataset!r} does not exist in the file", path=path)
        return obj
    if isinstance(f.get("spectra"), h5py.Dataset):
        return f["spectra"]
    cubes = [d for d in _numeric_datasets(f) if d.ndim == 3]
    if len(cubes) == 1:
        return cubes[0]
    if not cubes:
        others = ", ".join(f"{d.name} {d.shape}" for d in _numeric_datasets(f)[:5]) or "none"
        raise XrayAtlasError(f"no 3-D numeric dataset (numeric datasets found: {others})", path=path)
    names = ", ".join(d.name for d in cubes)
    raise XrayAtlasError(f"several 3-D datasets ({names}); choose one with dataset=", path=path)


def _attr_float(attrs: Any, key: str) -> float | None:
    if key not in attrs:
        return None
    value = attrs[key]
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        raise XrayAtlasError(f"attribute {key!r} = {value!r} is not a number") from None


def read_hdf5(path: str | os.PathLike, *, dataset: str | None = None) -> SpectralCube:
    """Open an HDF5 cube lazily (the file stays open until :meth:`SpectralCube.close`).

    Calibration comes from ``/energy`` if present, else from the ``energy_offset_kev`` /
    ``energy_gain_kev`` attributes of the dataset (or of the file root). Without either
    the cube opens uncalibrated. Root attributes of docs/dev/contracts.md section 2 go into the
    metadata; ``live_time_s`` (and ``real_time_s``) may also be an (H, W) root dataset of
    seconds per pixel, which stays on disk.
    """
    path = Path(os.fspath(path))
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        # another process has it open for writing (HDF5's file lock, EAGAIN): the data may be fine
        if err.errno in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock file" in str(err).lower():
            raise XrayAtlasError(
                "the file is locked: another program has it open for writing; wait until it is "
                "closed (it is in use, not necessarily damaged)",
                path=path,
            ) from None
        reason = str(err).split("(")[0].strip().rstrip(",") or "unreadable"
        raise XrayAtlasError(f"not a readable HDF5 file ({reason}; truncated or corrupt?)", path=path) from None
    try:
        ds = _pick_dataset(f, path, dataset)
        if ds.ndim != 3:
            raise XrayAtlasError(
                f"dataset {ds.name} is {ds.ndim}-D with shape {ds.shape}; a spectral cube is (height, width, channels)",
                path=path,
            )
        if ds.dtype.kind not in "uif":
            raise XrayAtlasError(f"dataset {ds.name} has non-numeric dtype {ds.dtype}", path=path)
        n_channels = ds.shape[2]
        energy = None
        offset = gain = None
        if isinstance(f.get("energy"), h5py.Dataset):
            try:
                energy = check_energy(f["energy"][()], n_channels, "/energy")
            except XrayAtlasError as err:
                raise XrayAtlasError(str(err), path=path) from None
        else:
            try:
                for attrs in (ds.attrs, f.attrs):
                    offset = _attr_float(attrs, "energy_offset_kev")
                    gain = _attr_float(attrs, "energy_gain_kev")
                    if offset is not None or gain is not None:
                        break
            except XrayAtlasError as err:
                raise XrayAtlasError(str(err), path=path) from None
            source = "attributes energy_offset_kev/energy_gain_kev"
            if (offset is None) != (gain is None):
                raise XrayAtlasError(f"{source}: only one of the two is present", path=path)
            if offset is not None:
                try:
                    energy = linear_energy(offset, gain, n_channels, source=source)
                except XrayAtlasError as err:
                    raise XrayAtlasError(str(err), path=path) from None
        metadata = {k: _plain(f.attrs[k]) for k in _ROOT_ATTRS if k in f.attrs}
        try:  # pixel size and times checked, a time per pixel from a root dataset kept lazy
            datasets = {k: f[k] for k in ("live_time_s", "real_time_s") if isinstance(f.get(k), h5py.Dataset)}
            metadata.update(declared(f.attrs, datasets, ds.shape[:2]))
        except XrayAtlasError as err:
            raise XrayAtlasError(str(err), path=path) from None
        metadata["dataset"] = ds.name
        maps = {}
        if isinstance(f.get("maps"), h5py.Group):
            for name, obj in f["maps"].items():
                if isinstance(obj, h5py.Dataset) and obj.shape == ds.shape[:2]:
                    maps[name] = obj
        return SpectralCube(ds, energy=energy, metadata=metadata, reference_maps=maps, path=path, closer=f.close)
    except BaseException:
        f.close()
        raise


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_cube(
    path: str | os.PathLike,
    counts: np.ndarray,
    *,
    energy_offset_kev: float,
    energy_gain_kev: float,
    maps: dict[str, np.ndarray] | None = None,
    attrs: dict[str, Any] | None = None,
    chunk_pixels: int = 8,
    compression: str | None = None,
    extra: dict[str, np.ndarray] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a cube in the layout of docs/dev/contracts.md section 2, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.h5`` file; written to a temporary file first, then renamed.
    counts : (H, W, C) array
        Photon counts.
    energy_offset_kev, energy_gain_kev : float
        Linear calibration.
    maps : dict, optional
        Line name -> (H, W) reference net counts, stored as ``/maps/<line>`` (float32).
    attrs : dict, optional
        Root attributes (``tube_kv``, ``title`` ...).
    chunk_pixels : int
        Chunks hold whole spectra of ``chunk_pixels`` x ``chunk_pixels`` pixels, so that
        reading one pixel or a tile of rows touches few chunks.
    compression : str, optional
        h5py compression filter (``"gzip"``, ``"lzf"``); none by default for speed.
    extra : dict, optional
        Further root datasets (e.g. ``regions`` of a synthetic painting).
    overwrite : bool
        Whether an existing file may be replaced (a read-only one never is).
    """
    counts = np.asarray(counts)
    if counts.ndim != 3:
        raise XrayAtlasError(f"counts must be (H, W, C), got shape {counts.shape}")
    linear_energy(energy_offset_kev, energy_gain_kev, counts.shape[2])
    h, w, c = counts.shape
    chunks = (min(chunk_pixels, h), min(chunk_pixels, w), c)
    with atomic_h5(path, overwrite=overwrite) as f:
        ds = f.create_dataset("spectra", data=counts, chunks=chunks, compression=compression)
        ds.attrs["energy_offset_kev"] = float(energy_offset_kev)
        ds.attrs["energy_gain_kev"] = float(energy_gain_kev)
        for name, m in (maps or {}).items():
            m = np.asarray(m, dtype=np.float32)
            if m.shape != (h, w):
                raise XrayAtlasError(f"maps[{name!r}] has shape {m.shape}, expected {(h, w)}")
            f.create_dataset(f"maps/{name}", data=m)
        for name, data in (extra or {}).items():
            f.create_dataset(name, data=np.asarray(data))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return Path(path)
