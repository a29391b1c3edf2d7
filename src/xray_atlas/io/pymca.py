"""PyMca single-spectrum text files: ``.mca`` (one or two columns, or SPEC ``@A`` lines) and ``.spe``.

Calibration, in order of precedence: the file's own (``#@CALIB`` in ``.mca``; ``$ENER_FIT:``
or ``$MCA_CAL:`` in ``.spe``), else the ``[detector] zero / gain`` of a PyMca fit
configuration with the same stem beside the file (``Steel.spe`` + ``Steel.cfg``). Without
either the spectrum opens uncalibrated (channel axis).

Live and real time come from the file's own header (``#@CTIME preset live real`` in SPEC
``.mca``, ``$MEAS_TIM: live real`` in ``.spe``), never from the ``.cfg``: its
``[concentrations] time`` and ``[tube]`` are settings of PyMca's quantification and tube
calculator, which one configuration shares among many spectra.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import numpy as np

from ..cube import SpectralCube, check_energy
from ..errors import XrayAtlasError

__all__ = ["read_pymca", "parse_mca", "parse_spe", "parse_times", "read_pymca_cfg_calibration"]


def _numbers(tokens: list[str], path: Path, line_no: int) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        raise XrayAtlasError(f"line {line_no}: non-numeric value among {' '.join(tokens[:4])!r}", path=path) from None


def parse_mca(text: str, path: Path) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """Counts and optional quadratic calibration (a, b, c) of a PyMca ``.mca`` text."""
    rows: list[list[float]] = []
    spec_data: list[float] = []
    calib = None
    in_spec = False
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#@CALIB"):
            vals = _numbers(line.split()[1:4], path, no)
            if len(vals) >= 2:
                calib = (vals[0], vals[1], vals[2] if len(vals) > 2 else 0.0)
            continue
        if line.startswith("#"):
            if spec_data and line.startswith("#S"):
                break  # only the first spectrum of a SPEC file
            continue
        if line.startswith("@A"):
            in_spec = True
            line = line[2:]
        if in_spec:
            cont = line.endswith("\\")
            spec_data += _numbers(line.rstrip("\\").split(), path, no)
            in_spec = cont
            continue
        rows.append(_numbers(line.replace(",", " ").split(), path, no))
    if spec_data:
        counts = np.asarray(spec_data)
    elif rows:
        widths = {len(r) for r in rows}
        if widths == {1}:
            counts = np.asarray([r[0] for r in rows])
        elif widths == {2}:
            counts = np.asarray([r[1] for r in rows])
        else:
            raise XrayAtlasError(
                f"rows have {sorted(widths)} columns; expected one (counts) or two (channel, counts)", path=path
            )
    else:
        raise XrayAtlasError("no spectrum data found", path=path)
    return counts, calib


def parse_spe(text: str, path: Path) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """Counts and optional calibration of a ``.spe`` text (``$DATA:`` and ``$ENER_FIT:``/``$MCA_CAL:``)."""
    sections: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("$"):
            current = line.rstrip(":").lstrip("$").upper()
            sections[current] = []
        elif current is not None and line:
            sections[current].append(line)
    if "DATA" not in sections or not sections["DATA"]:
        raise XrayAtlasError("no $DATA: section", path=path)
    head = sections["DATA"][0].split()
    values = _numbers(" ".join(sections["DATA"][1:]).split(), path, 0)
    if len(head) == 2:
        first, last = (int(float(v)) for v in head)
        n = last - first + 1
        if n <= 0 or len(values) < n:
            raise XrayAtlasError(f"$DATA: announces channels {first}-{last} but holds {len(values)} values", path=path)
        values = values[:n]
    calib = None
    if sections.get("ENER_FIT"):
        v = _numbers(sections["ENER_FIT"][0].split()[:3], path, 0)
        calib = (v[0], v[1], v[2] if len(v) > 2 else 0.0)
    elif len(sections.get("MCA_CAL", [])) >= 2:
        toks = [t for t in sections["MCA_CAL"][1].split() if t.lower() not in ("kev", "ev")]
        v = _numbers(toks[:3], path, 0)
        calib = (v[0], v[1], v[2] if len(v) > 2 else 0.0)
    return np.asarray(values), calib


def parse_times(text: str, *, spe: bool) -> dict[str, float]:
    """``live_time_s`` / ``real_time_s`` a spectrum text states (of its first spectrum):
    ``#@CTIME preset live real`` (SPEC ``.mca``) or ``$MEAS_TIM:`` then ``live real`` (``.spe``).
    Values that are not positive numbers (0 for "not recorded") are left out."""
    from ._metadata import positive

    values: list[str] = []
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.strip()
        if not spe and line.startswith("#@CTIME"):
            values = line.split()[2:4]  # after the preset time
            break
        if spe and line.upper().startswith("$MEAS_TIM"):
            values = next((nxt.split()[:2] for nxt in lines if nxt.strip()), [])
            break
    out = {}
    for name, value in zip(("live_time_s", "real_time_s"), values):
        if positive(value) is not None:
            out[name] = positive(value)
    return out


def read_pymca_cfg_calibration(cfg: Path) -> tuple[float, float, float] | None:
    """``(zero, gain, 0)`` from the ``[detector]`` section of a PyMca fit configuration."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(cfg.read_text(errors="replace"))
        det = parser["detector"]
        return (float(det["zero"]), float(det["gain"]), 0.0)
    except (configparser.Error, KeyError, ValueError):
        return None


def read_pymca(path: str | os.PathLike, *, dataset: str | None = None) -> SpectralCube:
    """Open a PyMca ``.mca`` or ``.spe`` single spectrum as a 1 x 1 x C cube."""
    path = Path(os.fspath(path))
    if dataset is not None:
        raise XrayAtlasError("dataset= does not apply to .mca/.spe files", path=path)
    try:
        text = path.read_text(errors="strict")
    except UnicodeDecodeError:
        raise XrayAtlasError("not a text spectrum (binary content)", path=path) from None
    parse = parse_spe if path.suffix.lower() == ".spe" else parse_mca
    counts, calib = parse(text, path)
    if counts.size < 2:
        raise XrayAtlasError(f"spectrum has {counts.size} channel(s); need at least 2", path=path)
    metadata: dict = {"title": path.stem, **parse_times(text, spe=parse is parse_spe)}
    if calib is None:
        cfg = path.with_suffix(".cfg")
        if cfg.is_file():
            calib = read_pymca_cfg_calibration(cfg)
            if calib is not None:
                metadata["calibration_source"] = cfg.name
    energy = None
    if calib is not None:
        a, b, c = calib
        ch = np.arange(counts.size, dtype=np.float64)
        try:
            energy = check_energy(a + b * ch + c * ch**2, counts.size, "calibration")
        except XrayAtlasError as err:
            raise XrayAtlasError(str(err), path=path) from None
    dtype = np.int64 if np.all(counts == np.round(counts)) else np.float64
    return SpectralCube(counts.astype(dtype).reshape(1, 1, -1), energy=energy, metadata=metadata, path=path)
