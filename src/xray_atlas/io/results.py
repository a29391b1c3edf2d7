"""Result files (docs/dev/contracts.md section 3), written atomically.

A result is written to a temporary file in the destination folder and renamed over the
destination only when complete, so a cancelled or failed run never leaves a half-written
file, and an input file is never opened for writing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .._files import atomic_file
from .._files import check_destination as _check
from ..cube import MAP_UNITS
from ..errors import XrayAtlasError

__all__ = ["atomic_h5", "check_destination", "write_results", "read_results", "MAP_UNITS"]


def check_destination(
    path: str | os.PathLike, *, inputs: tuple[str | os.PathLike, ...] = (), overwrite: bool = True
) -> Path:
    """Refuse an output path that cannot be written, that is one of ``inputs``, that is
    read-only, or that exists when ``overwrite`` is False (:func:`xray_atlas._files.check_destination`).

    Called by every writer, and by the command line before any work starts.
    """
    return _check(path, inputs=inputs, overwrite=overwrite)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[h5py.File]:
    """Open a temporary HDF5 file beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = check_destination(path, overwrite=overwrite)
    with atomic_file(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


def write_results(
    path: str | os.PathLike,
    *,
    maps: dict[str, np.ndarray] | None = None,
    probabilities: dict[str, np.ndarray] | None = None,
    labels: np.ndarray | None = None,
    cluster_spectra: np.ndarray | None = None,
    energy: np.ndarray | None = None,
    region_spectra: dict[str, np.ndarray] | None = None,
    encoding: np.ndarray | None = None,
    lattice: np.ndarray | None = None,
    reconstruction: np.ndarray | None = None,
    reduced_chi2: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
    units: str | None = None,
    pixel_size_um: float | None = None,
    inputs: tuple[str | os.PathLike, ...] = (),
    overwrite: bool = True,
) -> Path:
    """Write a result file in the layout of docs/dev/contracts.md section 3.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.h5`` file.
    maps : dict, optional
        Line family (``"Fe-K"``) -> (H, W) net counts, written as ``/maps/<line>`` float32.
    probabilities : dict, optional
        Element symbol -> (H, W) probabilities in [0, 1], ``/probabilities/<Symbol>``.
    labels : (H, W) array, optional
        Cluster labels, -1 for noise, written as int32.
    cluster_spectra : (K, C) array, optional
        Mean spectrum of each cluster.
    energy : (C,) array, optional
        Energy of each channel of the spectra (keV), written as ``/energy``; without it a
        spectrum's channels have no energy (a cube without calibration).
    region_spectra : dict, optional
        Name -> (C,) spectrum of a region or pinned pixel, ``/region_spectra/<name>``.
    encoding, lattice, reconstruction : array, optional
        Diffraction results (docs/dev/contracts.md section 3).
    reduced_chi2 : (H, W) array, optional
        The fit's reduced chi-square of each pixel, ``/fit/reduced_chi2`` float32 (a fit-based
        map model's goodness of fit, :func:`xray_atlas.spectrumfit.reduced_chi2`); NaN where it
        is not defined (a pixel without counts), never infinite or negative; the shape of the
        maps.
    attrs : dict, optional
        Root attributes, e.g. ``model``.
    units : {"counts", "counts/s"}, optional
        What ``maps`` hold: net counts, or net counts per second of live time (root attribute
        ``units``). With maps, None means ``"counts"``, the contract's default.
    pixel_size_um : float, optional
        The cube's pixel size in µm (root attribute ``pixel_size_um``), when it is known.
    inputs : tuple of path-like
        Files the result was computed from; writing over one of them is refused.
    overwrite : bool
        Whether an existing file may be replaced (a read-only one never is).
    """
    path = check_destination(path, inputs=inputs, overwrite=overwrite)
    items: list[tuple[str, np.ndarray]] = []
    shape2d: tuple[int, ...] | None = None

    def add_2d(group: str, table: dict[str, np.ndarray] | None, check01: bool = False) -> None:
        nonlocal shape2d
        for name, value in (table or {}).items():
            if not name or "/" in name:
                raise XrayAtlasError(f"{group} name {name!r} is not a valid dataset name")
            arr = np.asarray(value, dtype=np.float32)
            if arr.ndim != 2:
                raise XrayAtlasError(f"{group}[{name!r}] must be 2-D (H, W), got shape {arr.shape}")
            if shape2d is not None and arr.shape != shape2d:
                raise XrayAtlasError(f"{group}[{name!r}] has shape {arr.shape}, others have {shape2d}")
            shape2d = arr.shape
            if not np.all(np.isfinite(arr)):
                raise XrayAtlasError(f"{group}[{name!r}] contains NaN or infinite values")
            if check01 and (arr.min() < 0 or arr.max() > 1):
                raise XrayAtlasError(f"{group}[{name!r}] must lie in [0, 1]")
            items.append((f"{group}/{name}", arr))

    add_2d("maps", maps)
    add_2d("probabilities", probabilities, check01=True)
    if reduced_chi2 is not None:
        chi = np.asarray(reduced_chi2, dtype=np.float32)
        if chi.ndim != 2:
            raise XrayAtlasError(f"reduced_chi2 must be 2-D (H, W), got shape {chi.shape}")
        if shape2d is not None and chi.shape != shape2d:
            raise XrayAtlasError(f"reduced_chi2 has shape {chi.shape}, the maps {shape2d}")
        if np.isinf(chi).any() or (chi < 0).any():  # NaN compares False: allowed, it means "not defined"
            raise XrayAtlasError("reduced_chi2 contains infinite or negative values")
        items.append(("fit/reduced_chi2", chi))
    if labels is not None:
        lab = np.asarray(labels)
        if lab.ndim != 2 or lab.dtype.kind not in "iu":
            raise XrayAtlasError(f"labels must be a 2-D integer array, got {lab.dtype} {lab.shape}")
        items.append(("labels", lab.astype(np.int32)))
    if cluster_spectra is not None:
        cs = np.asarray(cluster_spectra, dtype=np.float32)
        if cs.ndim != 2:
            raise XrayAtlasError(f"cluster_spectra must be (K, C), got shape {cs.shape}")
        items.append(("cluster_spectra", cs))
    n_channels = {name: arr.shape[-1] for name, arr in items if name == "cluster_spectra"}
    for name, value in (region_spectra or {}).items():
        if not name or "/" in name:
            raise XrayAtlasError(f"region_spectra name {name!r} is not a valid dataset name")
        spec = np.asarray(value, dtype=np.float32)
        if spec.ndim != 1:
            raise XrayAtlasError(f"region_spectra[{name!r}] must be 1-D (C,), got shape {spec.shape}")
        items.append((f"region_spectra/{name}", spec))
        n_channels[f"region_spectra[{name!r}]"] = spec.shape[0]
    if energy is not None:
        e = np.asarray(energy, dtype=np.float64).reshape(-1)
        if not n_channels:
            raise XrayAtlasError("energy is the axis of spectra: give cluster_spectra or region_spectra with it")
        for what, c in n_channels.items():
            if c != e.shape[0]:
                raise XrayAtlasError(f"energy has {e.shape[0]} channels and {what} {c}")
        if not np.all(np.isfinite(e)):
            raise XrayAtlasError("energy contains NaN or infinite values")
        items.append(("energy", e))
    if encoding is not None:
        items.append(("encoding", np.asarray(encoding, dtype=np.float32).reshape(-1)))
    if lattice is not None:
        items.append(("lattice", np.asarray(lattice, dtype=np.uint8)))
    if reconstruction is not None:
        items.append(("reconstruction", np.asarray(reconstruction, dtype=np.float32)))
    if not items:
        raise XrayAtlasError(
            "nothing to write: no maps, probabilities, labels, spectra or diffraction results", path=path
        )
    root = dict(attrs or {})
    # the keyword wins; a caller that passes them among ``attrs`` gets them checked all the same
    units = root.pop("units", None) if units is None else units
    pixel_size_um = root.pop("pixel_size_um", None) if pixel_size_um is None else pixel_size_um
    if isinstance(units, bytes):
        units = units.decode()
    if units is not None or maps:
        units = "counts" if units is None else units
        if units not in MAP_UNITS:
            raise XrayAtlasError(f"units={units!r} must be one of {', '.join(MAP_UNITS)}")
        root["units"] = units
    if pixel_size_um is not None:
        try:
            size = float(pixel_size_um)
        except (TypeError, ValueError):
            size = float("nan")
        if not (np.isfinite(size) and size > 0):
            raise XrayAtlasError(f"pixel_size_um={pixel_size_um!r} must be a finite number > 0 (µm)")
        root["pixel_size_um"] = size
    with atomic_h5(path, overwrite=overwrite) as f:
        for name, arr in items:
            f.create_dataset(name, data=arr)
        for k, v in root.items():
            f.attrs[k] = v
    return path


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a result file back into a dict of numpy arrays (groups become dicts).

    ``out["attrs"]`` holds the root attributes; ``pixel_size_um`` (float, µm) and ``units``
    (str) are there when the file states them, as plain Python values.
    """
    path = Path(os.fspath(path))
    try:
        with h5py.File(path, "r") as f:
            out: dict[str, Any] = {"attrs": dict(f.attrs)}
            attrs = out["attrs"]
            if "pixel_size_um" in attrs:
                try:
                    attrs["pixel_size_um"] = float(np.asarray(attrs["pixel_size_um"]).reshape(-1)[0])
                except (TypeError, ValueError, IndexError):
                    raise XrayAtlasError(
                        f"attribute pixel_size_um = {attrs['pixel_size_um']!r} is not a number", path=path
                    ) from None
            if isinstance(attrs.get("units"), bytes):
                attrs["units"] = attrs["units"].decode("utf-8", "replace")
            elif "units" in attrs:
                attrs["units"] = str(attrs["units"])
            for key, obj in f.items():
                if isinstance(obj, h5py.Group):
                    out[key] = {k: v[()] for k, v in obj.items() if isinstance(v, h5py.Dataset)}
                else:
                    out[key] = obj[()]
            return out
    except OSError:
        raise XrayAtlasError("not a readable HDF5 result file", path=path) from None
