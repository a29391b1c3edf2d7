"""Bruker ``.bcf`` spectrum images and ``.spx`` single spectra, read through rosettasciio.

Metadata (docs/formats.md): ``tube_kv`` from the beam energy; ``pixel_size_um`` from the
scan's step (``DX``/``DY`` in µm; the rows' step as ``pixel_size_y_um`` when it differs);
``live_time_s`` and ``real_time_s`` of a ``.spx`` spectrum. A ``.bcf`` records no live time per
pixel that rosettasciio exposes (rosettasciio issue 17): its real time per pixel comes from
the line counters and the pixel time (as rosettasciio's ``calc_real_time`` sums them), and a
live time the file gives, that of the whole scan's sum spectrum, is kept as ``scan_live_time_s``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..cube import SpectralCube
from ..errors import XrayAtlasError
from ._metadata import length_um, positive

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
    except Exception as err:  # noqa: BLE001 - rosettasciio raises TypeError, ValueError, struct.error ... for bad files
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
    single = sig["data"].ndim == 1
    for inst in meta.get("Acquisition_instrument", {}).values():
        det = inst.get("Detector", {}).get("EDS", {})
        live, real = positive(det.get("live_time")), positive(det.get("real_time"))
        if single:  # one spectrum: its times are the pixel's
            if live is not None:
                metadata["live_time_s"] = live
            if real is not None:
                metadata["real_time_s"] = real
        elif live is not None:  # the sum spectrum's: the whole scan's, not a pixel's
            metadata["scan_live_time_s"] = live
        if positive(inst.get("beam_energy")) is not None:
            metadata["tube_kv"] = float(inst["beam_energy"])
    if not single:
        metadata.update(_scan_metadata(sig, data.shape[:2]))
    return SpectralCube(
        data,
        offset_kev=float(ax.get("offset", 0.0)),
        gain_kev=float(ax.get("scale", 1.0)),
        metadata=metadata,
        path=path,
    )


def _scan_metadata(sig: dict, shape: tuple[int, int]) -> dict[str, Any]:
    """Pixel size and real time per pixel of a ``.bcf`` spectrum image."""
    out: dict[str, Any] = {}
    original = sig.get("original_metadata", {})
    nav = {a.get("name"): a for a in sig["axes"] if a.get("navigate")}
    units = (nav.get("width") or nav.get("height") or {}).get("units")
    # the microscope's DX/DY: rosettasciio gives the width axis DY's scale as well
    sem = original.get("Microscope", {}) or {}
    x_um = length_um(sem.get("DX", (nav.get("width") or {}).get("scale")), units)
    y_um = length_um(sem.get("DY", (nav.get("height") or {}).get("scale")), units)
    if x_um or y_um:
        out["pixel_size_um"] = x_um or y_um
        if x_um and y_um and abs(x_um - y_um) > 1e-6 * x_um:
            out["pixel_size_y_um"] = y_um
    dsp = original.get("DSP Configuration", {}) or {}
    lines = original.get("Line counter")
    try:
        per_line = float(dsp["LineAverage"]) * float(dsp["PixelAverage"]) * float(dsp["PixelTime"]) * 1e-6
        counts = np.asarray(lines, dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return out
    if counts.shape == (shape[0],) and per_line > 0 and np.all(counts >= 0) and np.any(counts > 0):
        rows = counts * per_line
        out["real_time_s"] = float(rows[0]) if np.all(rows == rows[0]) else np.broadcast_to(rows[:, None], shape)
    return out
