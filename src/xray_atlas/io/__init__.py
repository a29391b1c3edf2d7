"""Reading spectral cubes and writing result files.

One entry point, :func:`read`, picks the reader from the file name. Each format family
has a module of its own: :mod:`.hdf5`, :mod:`.arrays` (``.npy`` and Zarr), :mod:`.bruker`
(``.bcf``/``.spx`` through rosettasciio), :mod:`.pymca` (``.mca``/``.spe``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from ..cube import SpectralCube
from ..errors import XrayAtlasError

__all__ = ["read", "can_read", "READERS", "SUFFIXES"]


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
    ".mca": _pymca,
    ".spe": _pymca,
}
SUFFIXES = tuple(READERS)


def can_read(path: str | os.PathLike) -> bool:
    """Whether :func:`read` has a reader for this file name (the file is not opened)."""
    return Path(os.fspath(path)).suffix.lower() in READERS


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
        PyMca ``.mca``/``.spe``. Single spectra open as 1 x 1 x C cubes.
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
        raise XrayAtlasError(
            f"unknown file type {suffix or '(no suffix)'!r}; readable: {', '.join(SUFFIXES)}", path=p
        )
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
