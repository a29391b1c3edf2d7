"""Ripple spectrum images: a ``.rpl`` text header beside a ``.raw`` file of counts (the Lispix
format of NIST, exported by Bruker Esprit/M6, Oxford INCA and HyperSpy), read through
rosettasciio as a dask array on a memory map of the ``.raw``: nothing is read until asked for.

The header's keys: ``width``, ``height``, ``depth`` (channels), ``offset`` (bytes before the
data), ``data-length``, ``data-type``, ``byte-order``, ``record-by`` (``vector``: whole spectra
one after the other; ``image``: one plane per channel). Energy: HyperSpy's ``depth-scale``,
``depth-origin`` and ``depth-units`` (eV or keV), else the standard's ``ev-per-chan`` with
channel 0 at ``depth-origin`` (0 when absent). Pixel size: ``width-scale``/``height-scale`` with
their units; ``live-time`` (s), ``beam-energy`` (kV) and ``detector-peak-width-ev`` when present.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..cube import TILE_BYTES, SpectralCube
from ..errors import XrayAtlasError
from ._metadata import energy_factor_kev, length_um, positive

__all__ = ["read_ripple"]


def _raw_of(path: str | os.PathLike) -> Path:
    """The ``.raw`` beside a ``.rpl`` header, named as rosettasciio looks for it (same stem,
    ``.raw`` or ``.RAW``); refused, naming the expected file, when there is none."""
    path = Path(os.fspath(path))
    for ext in (".raw", ".RAW"):
        candidate = Path(str(path)[:-4] + ext)
        if candidate.exists():
            from .._files import check_input

            return check_input(candidate)
    raise XrayAtlasError(f"no .raw data file beside the header (expected {path.stem}.raw)", path=path)


def _reason(err: BaseException) -> str:
    if isinstance(err, KeyError):
        return f"the header lacks the key {err.args[0]!r}" if err.args else "a key is missing"
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]


def read_ripple(path: str | os.PathLike, *, dataset: str | None = None) -> SpectralCube:
    """Open a ``.rpl`` + ``.raw`` spectrum image lazily as an (H, W, C) cube.

    Raises
    ------
    XrayAtlasError
        Naming the file: no ``.raw`` beside it, a header rosettasciio cannot parse, a header
        whose sizes disagree with the ``.raw`` length, or data that are not a spectrum image.
    """
    from rsciio.ripple import file_reader

    path = Path(os.fspath(path))
    if dataset is not None:
        raise XrayAtlasError("dataset= does not apply to ripple files", path=path)
    if path.suffix not in (".rpl", ".RPL"):  # rosettasciio's own rule for the header's name
        raise XrayAtlasError(
            "rosettasciio reads ripple headers named .rpl or .RPL; rename the header (and its .raw) to match", path=path
        )
    raw = _raw_of(path)
    try:
        # parses the header and lays a dask graph over the .raw; no data are read
        info: dict[str, Any] = dict(file_reader(str(path), lazy=True)[0]["original_metadata"])
    except Exception as err:  # noqa: BLE001 - rosettasciio raises OSError, KeyError, ValueError, TypeError ... for bad headers
        raise XrayAtlasError(f"not a readable ripple header ({_reason(err)})", path=path) from None
    try:
        h, w, c = (int(info[k]) for k in ("height", "width", "depth"))
        offset, itemsize = int(info["offset"]), int(info["data-length"])
    except (KeyError, TypeError, ValueError) as err:
        raise XrayAtlasError(f"not a readable ripple header ({_reason(err)})", path=path) from None
    record = info.get("record-by")
    if record not in ("vector", "image"):
        raise XrayAtlasError(
            f"the header says record-by {record!r}: one image, not a spectrum image (record-by vector or image)",
            path=path,
        )
    if min(h, w, c) < 1 or offset < 0:
        raise XrayAtlasError(
            f"the header announces {h} x {w} pixels x {c} channels at offset {offset}; sizes must be >= 1", path=path
        )
    expected = offset + h * w * c * itemsize
    size = raw.stat().st_size
    if size != expected:
        raise XrayAtlasError(
            f"the header announces {h} x {w} pixels x {c} channels of {itemsize} bytes ({expected} bytes with the "
            f"{offset}-byte offset) but {raw.name} holds {size} bytes: wrong sizes, data-length or offset in the "
            "header, or a truncated .raw",
            path=path,
        )
    # tiles of whole rows (cube.TILE_BYTES), whole spectra: reading a tile or one pixel takes
    # views of the memory map, never a chunk of the cube's size
    rows = max(1, min(h, TILE_BYTES // max(w * c * itemsize, 1)))
    full = (h, w, c) if record == "vector" else (c, h, w)
    spec = (rows, -1, -1) if record == "vector" else (-1, rows, -1)
    chunks = tuple(s for s, n in zip(spec, full) if n > 1)  # rosettasciio drops axes of length 1
    try:
        data = file_reader(str(path), lazy=True, rpl_info=info, chunks=chunks or "auto")[0]["data"]
    except Exception as err:  # noqa: BLE001 - as above
        raise XrayAtlasError(f"not a readable ripple header ({_reason(err)})", path=path) from None
    data = data.reshape(full)
    if record == "image":
        import dask.array as da

        data = da.moveaxis(data, 0, -1)
    offset_kev, gain_kev, source = _calibration(info)
    metadata: dict[str, Any] = {"title": str(info.get("title") or path.stem), "raw_file": raw.name}
    if source:
        metadata["calibration_source"] = source
    x_um = length_um(info.get("width-scale"), info.get("width-units")) if w > 1 else None
    y_um = length_um(info.get("height-scale"), info.get("height-units")) if h > 1 else None
    if x_um or y_um:
        metadata["pixel_size_um"] = x_um or y_um
        if x_um and y_um and abs(x_um - y_um) > 1e-6 * x_um:
            metadata["pixel_size_y_um"] = y_um
    for key, name in (
        ("live-time", "live_time_s"),
        ("beam-energy", "tube_kv"),
        ("detector-peak-width-ev", "fwhm_mnka_ev"),
        ("energy-resolution", "fwhm_mnka_ev"),
    ):
        value = positive(info.get(key))
        if value is not None and name not in metadata:
            metadata[name] = value
    return SpectralCube(data, offset_kev=offset_kev, gain_kev=gain_kev, metadata=metadata, path=path)


def _calibration(info: dict) -> tuple[float | None, float | None, str | None]:
    """(offset keV, gain keV, where from) of the header; (None, None, None) when it states no
    energy axis (the cube opens uncalibrated)."""
    units = info.get("depth-units")
    if "depth-scale" in info:  # HyperSpy's keys win over ev-per-chan, as in rosettasciio
        factor, gain = energy_factor_kev(units), positive(info.get("depth-scale"))
        if factor is None or gain is None:
            return None, None, None
        return float(info.get("depth-origin", 0.0)) * factor, gain * factor, f"depth-scale/depth-origin ({units})"
    ev = positive(info.get("ev-per-chan"))
    if ev is None:
        return None, None, None
    origin_factor = energy_factor_kev(units) or 1e-3  # the axis is in eV unless depth-units says otherwise
    if "depth-origin" in info:
        return float(info["depth-origin"]) * origin_factor, ev * 1e-3, "ev-per-chan and depth-origin"
    return 0.0, ev * 1e-3, "ev-per-chan (no offset in the header: channel 0 taken as 0 keV)"
