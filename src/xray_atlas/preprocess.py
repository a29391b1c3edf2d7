"""Spectrum preprocessing of study 003 (section 2.4) as reusable steps, each on one spectrum
(C,) or a stack (N, C) with the channel axis last: a channel -> energy calibration from known
peaks, crop to an energy range, mask the edges, replace the edges by an exponential
extrapolation, resample to another channel grid (counts conserved), and Savitzky-Golay
smoothing; :func:`prepare` chains them for a model's grid.
"""

from __future__ import annotations

import numpy as np

from .errors import XrayAtlasError

__all__ = [
    "calibrate",
    "calibrate_to_peaks",
    "line_energy",
    "crop",
    "mask_edges",
    "extrapolate_edges",
    "resample",
    "resample_float32",
    "smooth",
    "prepare",
    "channel_edges",
    "LOW_KEV",
]

#: Below this energy a real detector records its noise peak (a quarter of the counts of the
#: M6 Jetstream spectrum in ../shared/data/real), which no simulated spectrum has; the models
#: see these channels as zero. The lightest line they use, Al Ka, is at 1.49 keV.
LOW_KEV = 0.9


def _rows(spectra) -> tuple[np.ndarray, bool]:
    y = np.asarray(spectra, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise XrayAtlasError(f"spectra: expected (C,) or (N, C), got shape {y.shape}")
    return np.atleast_2d(y), y.ndim == 1


def _energy(energy, n: int) -> np.ndarray:
    e = np.asarray(energy, dtype=np.float64)
    if e.shape != (n,):
        raise XrayAtlasError(f"energy: {e.shape} values for {n} channels")
    if n > 1 and not np.all(np.diff(e) > 0):
        raise XrayAtlasError("energy: must increase channel by channel")
    return e


def calibrate(channels, energies_kev) -> tuple[float, float]:
    """A linear calibration ``E = offset + gain * channel`` fitted (least squares) to peaks
    at known ``channels`` and line ``energies_kev`` (two or more): (offset_kev, gain_kev).
    For a spectrum without one, such as PyMca's XRFSpectrum.mca ("you will need more than
    one peak to calibrate")."""
    ch = np.asarray(channels, dtype=np.float64).ravel()
    e = np.asarray(energies_kev, dtype=np.float64).ravel()
    if ch.size != e.size or ch.size < 2:
        raise XrayAtlasError(f"channels and energies_kev: give two or more pairs (got {ch.size} and {e.size})")
    if np.ptp(ch) == 0:
        raise XrayAtlasError("channels: the peaks must lie at different channels")
    gain, offset = np.polyfit(ch, e, 1)
    if not gain > 0:
        raise XrayAtlasError(f"channels and energies_kev give a gain of {gain:.4g} keV per channel; it must be > 0")
    return float(offset), float(gain)


_GROUPS = {"a": "α", "b": "β", "g": "γ", "l": "ℓ"}


def line_energy(name: str) -> float:
    """Energy (keV, xraylib) of a line group such as ``"Cu Ka"``, ``"Pb-Lb"`` or ``"Fe Kβ"``:
    the intensity-weighted mean of the family's lines of that Siegbahn group (Ka1 and Ka2 for
    Ka), which is where the group's peak stands in a spectrum."""
    from .physics.lines import family_lines

    parts = str(name).replace("-", " ").split()
    if len(parts) != 2 or len(parts[1]) < 2:
        raise XrayAtlasError(f"line {name!r}: write an element and a line group, e.g. 'Cu Ka' or 'Pb Lb'")
    sym, group = parts
    fam, greek = group[0].upper(), _GROUPS.get(group[1].lower(), group[1])
    lines = [ln for ln in family_lines(f"{sym}-{fam}") if ln.label.startswith(fam + greek)]
    if not lines:
        raise XrayAtlasError(f"line {name!r}: xraylib gives {sym} no {fam}{greek} lines")
    w = np.array([ln.relative_intensity for ln in lines])
    return float(np.dot(w, [ln.energy_kev for ln in lines]) / w.sum())


def calibrate_to_peaks(peaks: str) -> tuple[float, float]:
    """(offset_kev, gain_kev) fitted to peaks given as text, ``"1698 Cu Ka, 2036 Zn Ka"``: the
    channel where each peak stands and its line (:func:`line_energy`), two or more."""
    channels, energies = [], []
    for item in (t.strip() for t in str(peaks).replace(";", ",").split(",")):
        if not item:
            continue
        head, _, line = item.partition(" ")
        try:
            channels.append(float(head))
        except ValueError:
            raise XrayAtlasError(f"peaks: {item!r} must start with a channel number, e.g. '1698 Cu Ka'") from None
        energies.append(line_energy(line.strip()))
    if len(channels) < 2:
        raise XrayAtlasError(f"peaks: give two or more, e.g. '1698 Cu Ka, 2036 Zn Ka' (got {len(channels)})")
    return calibrate(channels, energies)


def mask_edges(spectra, energy, lo_kev: float, hi_kev: float = np.inf) -> np.ndarray:
    """Zero the channels below ``lo_kev`` and above ``hi_kev`` (the noise peak, the detector's
    cut-offs) without changing the channel grid. Float32 stays float32 (counts of whole
    cubes go through here), other types become float32 or float64."""
    src = np.asarray(spectra)
    out = np.array(src, dtype=np.result_type(src.dtype, np.float32))
    if out.ndim not in (1, 2):
        raise XrayAtlasError(f"spectra: expected (C,) or (N, C), got shape {out.shape}")
    e = _energy(energy, out.shape[-1])
    out[..., (e < lo_kev) | (e > hi_kev)] = 0
    return out


def crop(spectra, energy, lo_kev: float, hi_kev: float) -> tuple[np.ndarray, np.ndarray]:
    """The channels with ``lo_kev <= E <= hi_kev``: (spectra, energy)."""
    y, one = _rows(spectra)
    e = _energy(energy, y.shape[1])
    if not lo_kev < hi_kev:
        raise XrayAtlasError(f"lo_kev={lo_kev} must be below hi_kev={hi_kev}")
    keep = (e >= lo_kev) & (e <= hi_kev)
    if keep.sum() < 2:
        raise XrayAtlasError(f"no channels in {lo_kev}-{hi_kev} keV (the spectrum spans {e[0]:.2f}-{e[-1]:.2f})")
    out = y[:, keep]
    return (out[0] if one else out), e[keep]


def extrapolate_edges(spectra, energy, *, edge_kev: float = 1.0, fit_kev: float = 1.0) -> np.ndarray:
    """Replace the first and last ``edge_kev`` by an exponential fitted (least squares on
    log counts) to the next ``fit_kev`` inside: the noise peak and the detector's cut-off at
    the ends become a smooth continuation of the continuum (study 003)."""
    y, one = _rows(spectra)
    e = _energy(energy, y.shape[1])
    if edge_kev < 0 or fit_kev <= 0:
        raise XrayAtlasError(f"edge_kev={edge_kev} must be >= 0 and fit_kev={fit_kev} > 0")
    out = y.copy()
    for edge, fit in (
        ((e < e[0] + edge_kev), (e >= e[0] + edge_kev) & (e < e[0] + edge_kev + fit_kev)),
        ((e > e[-1] - edge_kev), (e <= e[-1] - edge_kev) & (e > e[-1] - edge_kev - fit_kev)),
    ):
        if not edge.any():
            continue
        if fit.sum() < 2:
            raise XrayAtlasError(f"fit_kev={fit_kev}: fewer than two channels to fit beside the edge")
        x = e[fit]
        logs = np.log(np.maximum(y[:, fit], 1e-3))
        slope, icpt = np.polyfit(x, logs.T, 1)  # one line per spectrum
        out[:, edge] = np.exp(icpt[:, None] + slope[:, None] * e[edge][None, :])
    return out[0] if one else out


def channel_edges(energy) -> np.ndarray:
    """Channel boundaries (C + 1,) halfway between channel energies."""
    e = np.asarray(energy, dtype=np.float64)
    d = np.diff(e)
    return np.concatenate([[e[0] - d[0] / 2], e[:-1] + d / 2, [e[-1] + d[-1] / 2]])


def resample(spectra, energy, new_energy) -> np.ndarray:
    """Counts on ``new_energy``'s channels: the cumulative counts are interpolated at the new
    channel boundaries, so counts are conserved where the grids overlap (zero outside)."""
    y, one = _rows(spectra)
    e = _energy(energy, y.shape[1])
    ne = np.asarray(new_energy, dtype=np.float64)
    if ne.ndim != 1 or ne.size < 2 or not np.all(np.diff(ne) > 0):
        raise XrayAtlasError("new_energy: must be an increasing 1-D axis of >= 2 channels")
    src, dst = channel_edges(e), channel_edges(ne)
    cum = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)
    pos = np.clip(np.searchsorted(src, dst) - 1, 0, len(src) - 2)
    frac = np.clip((dst - src[pos]) / (src[pos + 1] - src[pos]), 0.0, 1.0)
    at = cum[:, pos] * (1 - frac) + cum[:, pos + 1] * frac
    out = np.diff(at, axis=1)
    return out[0] if one else out


#: Spectra resampled at once by :func:`resample_float32`: its float64 temporaries (about five
#: of spectra x new channels) then stay near 200 MB at 4,096 channels, whatever the batch.
RESAMPLE_ROWS = 1024


def resample_float32(spectra, energy, new_energy, *, rows: int = RESAMPLE_ROWS) -> np.ndarray:
    """:func:`resample` of (N, C) spectra into a float32 (N, C_new) array, ``rows`` spectra at
    a time: the same values, with the float64 temporaries of ``rows`` spectra instead of N
    (a batch of 8,192 spectra put on a 4,096-channel grid at once took 1.3 GB of them)."""
    y = np.asarray(spectra)  # converted to float64 a chunk at a time, by resample
    if y.ndim not in (1, 2):
        raise XrayAtlasError(f"spectra: expected (C,) or (N, C), got shape {y.shape}")
    one, y = y.ndim == 1, np.atleast_2d(y)
    if not (isinstance(rows, (int, np.integer)) and rows >= 1):
        raise XrayAtlasError(f"rows={rows!r} must be a positive integer")
    out = np.empty((y.shape[0], np.asarray(new_energy).shape[0]), np.float32)
    for a in range(0, y.shape[0], rows):
        out[a : a + rows] = resample(y[a : a + rows], energy, new_energy)
    return out[0] if one else out


def smooth(spectra, *, window: int = 11, order: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing along the channels (scipy), for noisy single pixels."""
    from scipy.signal import savgol_filter

    y, one = _rows(spectra)
    if window < 3 or window % 2 == 0 or window > y.shape[1]:
        raise XrayAtlasError(f"window={window} must be odd, >= 3 and at most the {y.shape[1]} channels")
    if not 0 <= order < window:
        raise XrayAtlasError(f"order={order} must be >= 0 and below window={window}")
    out = savgol_filter(y, window, order, axis=1, mode="interp")
    return out[0] if one else out


def prepare(
    spectra,
    energy,
    new_energy,
    *,
    lo_kev: float | None = None,
    hi_kev: float | None = None,
    edge_kev: float = 0.0,
    smooth_window: int = 0,
) -> np.ndarray:
    """Study 003's chain for a model's grid ``new_energy``: crop to ``lo_kev``-``hi_kev`` (default:
    the model's range), extrapolate ``edge_kev`` at both ends, resample, and smooth with a
    Savitzky-Golay window of ``smooth_window`` channels (0: none)."""
    ne = np.asarray(new_energy, dtype=np.float64)
    lo = ne[0] if lo_kev is None else lo_kev
    hi = ne[-1] if hi_kev is None else hi_kev
    y, e = crop(spectra, energy, lo, hi)
    if edge_kev:
        y = extrapolate_edges(y, e, edge_kev=edge_kev)
    y = resample(y, e, ne)
    return smooth(y, window=smooth_window) if smooth_window else y
