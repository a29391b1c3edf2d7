"""Bruker ``.bcf`` spectrum images and ``.spx`` single spectra, read through rosettasciio."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..cube import SpectralCube
from ..errors import XrayAtlasError

__all__ = ["read_bruker"]


def _energy_axis(axes: list[dict]) -> dict:
    for ax in axes:
        if str(ax.get("units", "")).lower() == "kev" or ax.get("name") == "Energy":
            return ax
    raise KeyError("energy axis")


def read_bruker(path: str | os.PathLike, *, dataset: str | None = None) -> SpectralCube:
    """Open a Bruker file. ``.bcf`` cubes stay lazy (dask); ``.spx`` becomes a 1 x 1 x C cube."""
    from rsciio.bruker import file_reader

    path = Path(os.fspath(path))
    if dataset is not None:
        raise XrayAtlasError("dataset= does not apply to Bruker files", path=path)
    try:
        signals = file_reader(str(path), lazy=True)
    except Exception as err:  # rosettasciio raises TypeError, ValueError, struct.error ... for bad files
        reason = str(err).replace(f"file '{path}' ", "").replace(str(path), "the file")
        raise XrayAtlasError(f"not a readable Bruker file ({reason})", path=path) from None
    spectral = [s for s in signals if any(a.get("name") == "Energy" for a in s["axes"])]
    if not spectral:
        raise XrayAtlasError("the Bruker file holds no spectrum or spectrum image", path=path)
    sig = spectral[0]
    data: Any = sig["data"]
    if data.ndim == 1:
        data = np.asarray(data).reshape(1, 1, -1)
    elif data.ndim != 3:
        raise XrayAtlasError(f"Bruker data have shape {data.shape}; expected a spectrum or (H, W, C) image", path=path)
    ax = _energy_axis(sig["axes"])
    meta = sig.get("metadata", {})
    metadata: dict[str, Any] = {"title": meta.get("General", {}).get("title", path.stem)}
    acq = meta.get("Acquisition_instrument", {})
    for inst in acq.values():
        det = inst.get("Detector", {}).get("EDS", {})
        if "live_time" in det:
            metadata["live_time_s"] = float(det["live_time"])
        if "beam_energy" in inst:
            metadata["tube_kv"] = float(inst["beam_energy"])
    return SpectralCube(
        data,
        offset_kev=float(ax.get("offset", 0.0)),
        gain_kev=float(ax.get("scale", 1.0)),
        metadata=metadata,
        path=path,
    )
