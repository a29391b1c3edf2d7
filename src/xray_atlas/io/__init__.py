"""Reading spectral cubes and writing result files.

One entry point, :func:`read`, picks the reader from the file name. Each format family
has a module of its own: :mod:`.hdf5`, :mod:`.arrays` (``.npy`` and Zarr), :mod:`.bruker`
(``.bcf``/``.spx`` through rosettasciio), :mod:`.ripple` (``.rpl`` + ``.raw`` through rosettasciio),
:mod:`.pymca` (``.mca``/``.spe``). Every reader puts what the file states about the scan into
the cube's ``metadata`` under the names of docs/dev/contracts.md section 2 (``pixel_size_um``,
``live_time_s``, ``tube_kv`` ...; see :mod:`._metadata`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cube import SpectralCube
from ..errors import XrayAtlasError

__all__ = ["read", "can_read", "probe", "READERS", "SUFFIXES"]


def _hdf5(path: Path, **kw: Any) -> SpectralCube:
    from .hdf5 import read_hdf5

    return read_hdf5(path, **kw)


def _npy(path: Path, **kw: Any) -> SpectralCube:
    from .arrays import read_npy

    return read_npy(path, **kw)


def _zarr(path: Path, **kw: Any) -> SpectralCube:
    from .arrays import read_zarr

    return read_zarr(path, **kw)


def _bruker(path: Path, **kw: Any) -> SpectralCube:
    from .bruker import read_bruker

    return read_bruker(path, **kw)


def _ripple(path: Path, **kw: Any) -> SpectralCube:
    from .ripple import read_ripple

    return read_ripple(path, **kw)


def _pymca(path: Path, **kw: Any) -> SpectralCube:
    from .pymca import read_pymca

    return read_pymca(path, **kw)


#: File-name suffix -> reader. Both the command line and the napari reader use it.
READERS: dict[str, Callable[..., SpectralCube]] = {
    ".h5": _hdf5,
    ".hdf5": _hdf5,
    ".hdf": _hdf5,
    ".nxs": _hdf5,
    ".npy": _npy,
    ".zarr": _zarr,
    ".bcf": _bruker,
    ".spx": _bruker,
    ".rpl": _ripple,
    ".mca": _pymca,
    ".spe": _pymca,
}
SUFFIXES = tuple(READERS)


def can_read(path: str | os.PathLike) -> bool:
    """Whether :func:`read` has a reader for this file name (the file is not opened)."""
    return Path(os.fspath(path)).suffix.lower() in READERS


#: Result-file groups/datasets (docs/dev/contracts.md section 3) that open as layers.
RESULT_KEYS = ("maps", "probabilities", "labels")


def probe(path: str | os.PathLike) -> str | None:
    """What a file holds, from its headers only (no array data is read).

    Returns
    -------
    {"cube", "results", "image"} or None
        ``"cube"``: :func:`read` can open it (HDF5 with ``/spectra`` or a single 3-D numeric
        dataset, a 3-D numeric ``.npy``, a Zarr array or group of that layout, or a Bruker,
        ripple or PyMca file by its name); ``"results"``: an HDF5 result file of docs/dev/contracts.md section 3
        (``/maps``, ``/probabilities`` or ``/labels``, 2-D); ``"image"``: an HDF5 2-D image
        (``/image``, docs/dev/contracts.md section 6, e.g. a diffraction image with its ``span``);
        None: none of these (or unreadable). Never raises.
    """
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    try:
        if suffix not in READERS or not p.exists():
            return None
        if READERS[suffix] in (_bruker, _ripple, _pymca):  # formats no other reader claims: read() names the problem
            return "cube" if p.is_file() else None
        if READERS[suffix] is _hdf5:
            return _probe_hdf5(p) if p.is_file() else None
        if suffix == ".npy":
            return _probe_npy(p) if p.is_file() else None
        return _probe_zarr(p)
    except Exception:  # noqa: BLE001 - a probe answers "not ours", it never raises
        return None


def _numeric(dtype: Any) -> bool:
    return getattr(dtype, "kind", "") in "uif" and getattr(dtype, "kind", "") != ""


def _probe_hdf5(p: Path) -> str | None:
    import h5py

    with h5py.File(p, "r") as f:
        spectra = f.get("spectra")
        if isinstance(spectra, h5py.Dataset):
            return "cube" if spectra.ndim == 3 and _numeric(spectra.dtype) else None
        cubes: list = []
        f.visititems(
            lambda _n, o: cubes.append(o) if isinstance(o, h5py.Dataset) and o.ndim == 3 and _numeric(o.dtype) else None
        )
        if len(cubes) == 1:
            return "cube"
        if cubes:  # several cubes: the reader needs dataset=, which napari cannot pass
            return None
        for key in RESULT_KEYS:
            obj = f.get(key)
            if isinstance(obj, h5py.Group) and any(isinstance(d, h5py.Dataset) and d.ndim == 2 for d in obj.values()):
                return "results"
            if isinstance(obj, h5py.Dataset) and obj.ndim == 2 and _numeric(obj.dtype):
                return "results"
        image = f.get("image")
        if isinstance(image, h5py.Dataset) and image.ndim == 2 and _numeric(image.dtype):
            return "image"
    return None


def _probe_npy(p: Path) -> str | None:
    import numpy as np

    with open(p, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        shape, _fortran, dtype = read_header.get(version, np.lib.format.read_array_header_2_0)(fh)
    return "cube" if len(shape) == 3 and _numeric(dtype) else None


def _probe_zarr(p: Path) -> str | None:
    import zarr

    node = zarr.open(str(p), mode="r")
    if hasattr(node, "shape"):
        return "cube" if len(node.shape) == 3 and _numeric(node.dtype) else None
    if "spectra" in node:
        arr = node["spectra"]
        return "cube" if hasattr(arr, "shape") and len(arr.shape) == 3 and _numeric(arr.dtype) else None
    cubes = [k for k, v in node.arrays() if len(v.shape) == 3 and _numeric(v.dtype)]
    return "cube" if len(cubes) == 1 else None


def read(
    path: str | os.PathLike,
    *,
    dataset: str | None = None,
    energy_offset_kev: float | None = None,
    energy_gain_kev: float | None = None,
) -> SpectralCube:
    """Open a spectral cube without loading it.

    Parameters
    ----------
    path : str or os.PathLike
        HDF5 (``.h5``/``.hdf5``), ``.npy``, Zarr (``.zarr``), Bruker ``.bcf``/``.spx``,
        ripple ``.rpl`` (with its ``.raw`` beside it), PyMca ``.mca``/``.spe``. Single spectra
        open as 1 x 1 x C cubes.
    dataset : str, optional
        HDF5 or Zarr dataset to read when the file holds several 3-D datasets.
    energy_offset_kev, energy_gain_kev : float, optional
        Energy calibration ``E[i] = offset + gain * i`` that replaces the file's own.

    Returns
    -------
    SpectralCube

    Raises
    ------
    XrayAtlasError
        With a one-line message naming the file and the problem.
    """
    p = Path(os.fspath(path))
    suffix = p.suffix.lower()
    if suffix not in READERS:
        raise XrayAtlasError(f"unknown file type {suffix or '(no suffix)'!r}; readable: {', '.join(SUFFIXES)}", path=p)
    from .._files import check_input

    check_input(p, folder_ok=suffix == ".zarr")
    cube = READERS[suffix](p, dataset=dataset)
    if energy_offset_kev is not None or energy_gain_kev is not None:
        if energy_offset_kev is None or energy_gain_kev is None:
            raise XrayAtlasError("give both energy_offset_kev and energy_gain_kev", path=p)
        try:
            cube = cube.with_calibration(offset_kev=energy_offset_kev, gain_kev=energy_gain_kev)
        except XrayAtlasError as err:
            raise XrayAtlasError(str(err), path=p) from None
    return cube
