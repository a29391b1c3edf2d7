"""Silicon drift detector: resolution, peak shape, efficiency, escape and pile-up peaks.

Defaults describe the M6 Jetstream class of scanner of study 001 (4096 channels of 10 eV,
145 eV FWHM at Mn Ka, 450 um Si sensor, 12.5 um Be window). Every hand-set number is a
parameter; its source is given where it is defined.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from scipy.special import erfc

from ..errors import XrayAtlasError

__all__ = ["Detector", "MNKA_KEV", "SI_KA_KEV", "SI_KB_KEV", "escape_fraction"]

MNKA_KEV = 5.8951  # xraylib LineEnergy(25, KL3_LINE)
SI_KA_KEV = 1.7398  # xraylib LineEnergy(14, KL3_LINE)
SI_KB_KEV = 1.8359  # xraylib LineEnergy(14, KM3_LINE)
SI_K_EDGE_KEV = 1.8389  # xraylib EdgeEnergy(14, K_SHELL)
SQRT2 = np.sqrt(2.0)


@lru_cache(maxsize=1)
def _si_constants() -> tuple[float, float, float]:
    import xraylib

    omega = xraylib.FluorYield(14, xraylib.K_SHELL)
    jump = xraylib.JumpFactor(14, xraylib.K_SHELL)
    ka_share = xraylib.RadRate(14, xraylib.KL3_LINE) + xraylib.RadRate(14, xraylib.KL2_LINE)
    return omega, jump, ka_share


def escape_fraction(energy_kev: np.ndarray | float) -> np.ndarray:
    """Fraction of photons absorbed in a thick Si sensor whose Si K photon escapes.

    Reed and Ware, J. Phys. E 5, 582 (1972), normal incidence:
    f = (omega_K / 2) (1 - 1/r_K) [1 - (mu_K / mu_E) ln(1 + mu_E / mu_K)], with mu the Si
    photo-absorption at the incident energy E and at Si Ka, r_K the K jump ratio and omega_K
    the fluorescence yield (all from xraylib). Zero below the Si K edge.
    """
    import xraylib

    e = np.atleast_1d(np.asarray(energy_kev, dtype=np.float64))
    omega, jump, _ = _si_constants()
    mu_k = xraylib.CS_Photo(14, SI_KA_KEV)
    out = np.zeros_like(e)
    above = e > SI_K_EDGE_KEV
    for i in np.flatnonzero(above):
        mu_e = xraylib.CS_Photo(14, float(e[i]))
        out[i] = 0.5 * omega * (1 - 1 / jump) * (1 - (mu_k / mu_e) * np.log1p(mu_e / mu_k))
    return out if np.ndim(energy_kev) else out[0]


@dataclass(frozen=True)
class Detector:
    """An energy-dispersive Si detector and its multichannel analyser.

    Parameters
    ----------
    n_channels : int
        Channels of the spectrum.
    gain_kev, offset_kev : float
        Calibration ``E[i] = offset + gain * i``.
    fwhm_mnka_ev : float
        Resolution at Mn Ka (5.895 keV). The electronic noise is derived from it and the
        Fano factor.
    fano : float
        Fano factor of Si: 0.114 (PyMca's default; measured 0.11-0.12, Knoll ch. 13).
    pair_energy_ev : float
        Energy per electron-hole pair in Si: 3.85 eV (the value PyMca uses).
    window_be_um, sensor_um : float
        Be entrance window and sensitive Si thickness in micrometre.
    tail_area, tail_slope : float
        Short low-energy tail from incomplete charge collection: area relative to the
        Gaussian and decay length in units of sigma (PyMca's ``st_arearatio`` 0.05 and
        ``st_sloperatio`` 0.5 in the Steel.cfg fit of ../shared/data/real).
    step_height : float
        Flat shelf below each peak, height relative to the Gaussian peak height
        (PyMca's ``step_heightratio``, 1e-4 in that fit).
    escape : bool
        Add Si escape peaks.
    pileup_time_s : float
        Pulse-pair resolving time of the pile-up rejector; 0 disables sum peaks.
    """

    n_channels: int = 4096
    gain_kev: float = 0.01
    offset_kev: float = 0.0
    fwhm_mnka_ev: float = 145.0
    fano: float = 0.114
    pair_energy_ev: float = 3.85
    window_be_um: float = 12.5
    sensor_um: float = 450.0
    tail_area: float = 0.05
    tail_slope: float = 0.5
    step_height: float = 1e-4
    escape: bool = True
    pileup_time_s: float = 1e-7

    def __post_init__(self) -> None:
        if not isinstance(self.n_channels, (int, np.integer)) or self.n_channels < 16:
            raise XrayAtlasError(f"n_channels={self.n_channels!r} must be an integer >= 16")
        if not (0 < self.gain_kev <= 1.0):
            raise XrayAtlasError(f"gain_kev={self.gain_kev} must lie in (0, 1] keV per channel")
        if not np.isfinite(self.offset_kev):
            raise XrayAtlasError(f"offset_kev={self.offset_kev} must be finite")
        if not (0 < self.fano < 1) or not (self.pair_energy_ev > 0):
            raise XrayAtlasError("fano must lie in (0, 1) and pair_energy_ev be > 0")
        if self.fano_fwhm_kev(MNKA_KEV) >= self.fwhm_mnka_ev / 1000:
            raise XrayAtlasError(
                f"fwhm_mnka_ev={self.fwhm_mnka_ev} is below the Fano limit "
                f"({self.fano_fwhm_kev(MNKA_KEV) * 1000:.0f} eV)"
            )
        for name in ("window_be_um", "sensor_um", "tail_area", "step_height", "pileup_time_s"):
            if getattr(self, name) < 0:
                raise XrayAtlasError(f"{name}={getattr(self, name)} must be >= 0")
        if not self.tail_slope > 0:
            raise XrayAtlasError(f"tail_slope={self.tail_slope} must be > 0")

    # -- calibration -----------------------------------------------------------------
    @property
    def energy(self) -> np.ndarray:
        """Energy of each channel (keV)."""
        return self.offset_kev + self.gain_kev * np.arange(self.n_channels)

    def with_calibration(self, *, offset_kev: float | None = None, gain_kev: float | None = None) -> Detector:
        """The same detector with a drifted or new calibration."""
        return replace(
            self,
            offset_kev=self.offset_kev if offset_kev is None else offset_kev,
            gain_kev=self.gain_kev if gain_kev is None else gain_kev,
        )

    # -- resolution ------------------------------------------------------------------
    def fano_fwhm_kev(self, energy_kev: np.ndarray | float) -> np.ndarray:
        return 2.3548 * np.sqrt(self.fano * self.pair_energy_ev * 1e-3 * np.asarray(energy_kev, dtype=np.float64))

    @property
    def noise_fwhm_kev(self) -> float:
        """Electronic noise (FWHM, keV) that gives ``fwhm_mnka_ev`` at Mn Ka."""
        return float(np.sqrt((self.fwhm_mnka_ev / 1000) ** 2 - self.fano_fwhm_kev(MNKA_KEV) ** 2))

    def fwhm_kev(self, energy_kev: np.ndarray | float) -> np.ndarray:
        """FWHM(E) = sqrt(noise^2 + 2.3548^2 F eps E), keV."""
        return np.sqrt(self.noise_fwhm_kev**2 + self.fano_fwhm_kev(energy_kev) ** 2)

    def sigma_kev(self, energy_kev: np.ndarray | float) -> np.ndarray:
        return self.fwhm_kev(energy_kev) / 2.3548

    # -- efficiency --------------------------------------------------------------------
    def efficiency(self, energy_kev: np.ndarray) -> np.ndarray:
        """Fraction of photons at the window that are absorbed in the sensor (Be + Si, xraylib)."""
        import xraylib

        e = np.atleast_1d(np.asarray(energy_kev, dtype=np.float64))
        be = np.array([xraylib.CS_Total(4, float(v)) for v in e]) * 1.848 * self.window_be_um * 1e-4
        si = np.array([xraylib.CS_Photo(14, float(v)) for v in e]) * 2.33 * self.sensor_um * 1e-4
        return np.exp(-be) * -np.expm1(-si)

    # -- rendering ---------------------------------------------------------------------
    def peak_shapes(
        self, centres_kev: np.ndarray, areas: np.ndarray, *, width_scale: float | np.ndarray = 1.0, chunk: int = 256
    ) -> np.ndarray:
        """Spectrum (C,) of Gaussian peaks of the given areas (counts), with tail and step.

        The Gaussian of each peak holds its ``area``; tail and step add to it (PyMca's
        convention, where the fitted area is the Gaussian's).
        """
        centres = np.atleast_1d(np.asarray(centres_kev, dtype=np.float64))
        areas = np.atleast_1d(np.asarray(areas, dtype=np.float64))
        x = self.energy[None, :]
        g = self.gain_kev
        out = np.zeros(self.n_channels)
        keep = (areas != 0) & (centres > self.energy[0] - 1.0) & (centres < self.energy[-1] + 1.0)
        centres, areas = centres[keep], areas[keep]
        sig_all = self.sigma_kev(np.maximum(centres, 0.05)) * width_scale
        for s in range(0, centres.size, chunk):
            c = centres[s : s + chunk, None]
            a = areas[s : s + chunk, None]
            sig = np.broadcast_to(sig_all, centres.shape)[s : s + chunk, None]
            d = x - c
            spec = _shape(d, sig, self.tail_area, self.tail_slope)
            if self.step_height > 0:
                spec = spec + self.step_height / (sig * np.sqrt(2 * np.pi)) * 0.5 * erfc(d / (SQRT2 * sig))
            out += (a * g * spec).sum(axis=0)
        return out

    def response_matrix(self):
        """Sparse (C, C) matrix: column j is the spectrum of one photon absorbed at channel j's energy.

        It holds the full-energy peak with tail and step (weight 1 - escape fraction) and the
        Si Ka/Kb escape peaks. Built once per detector setting (about a second) and cached.
        """
        return _response_matrix(self)

    def render(self, energies_kev: np.ndarray, absorbed: np.ndarray) -> np.ndarray:
        """Spectrum (C,) of photons absorbed at arbitrary energies, through :meth:`response_matrix`.

        Each energy is split linearly between its two neighbouring channels (a 10 eV step
        under a >= 40 eV sigma, so the peak shape is kept).
        """
        return self.render_histogram(self.histogram(energies_kev, absorbed))

    def histogram(self, energies_kev: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Photons at arbitrary energies binned on the channel grid (linear split, no response)."""
        e = np.atleast_1d(np.asarray(energies_kev, dtype=np.float64))
        n = np.atleast_1d(np.asarray(counts, dtype=np.float64))
        pos = (e - self.offset_kev) / self.gain_kev
        ok = (pos >= 0) & (pos <= self.n_channels - 1) & (n != 0)
        pos, n = pos[ok], n[ok]
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        hist = np.bincount(lo, n * (1 - frac), minlength=self.n_channels)
        hi = np.minimum(lo + 1, self.n_channels - 1)
        hist += np.bincount(hi, n * frac, minlength=self.n_channels)
        return hist[: self.n_channels]

    def render_histogram(self, hist: np.ndarray) -> np.ndarray:
        """Detector response applied to photons absorbed per channel energy."""
        out = self.response_matrix() @ hist
        if self.step_height > 0:
            # shelf below each full-energy peak: height ratio x Gaussian height, every channel below
            per_photon = _step_per_photon(self)
            shelf = np.cumsum((hist * per_photon)[::-1])[::-1]
            out += np.concatenate([shelf[1:], [0.0]]) + 0.5 * hist * per_photon
        return out

    def net_fraction(self, energies_kev: np.ndarray) -> np.ndarray:
        """Fraction of absorbed photons that land in the full-energy peak (1 - escape)."""
        e = np.atleast_1d(np.asarray(energies_kev, dtype=np.float64))
        return 1 - escape_fraction(e) if self.escape else np.ones_like(e)

    def detect_lines(
        self, energies_kev: np.ndarray, absorbed: np.ndarray, *, width_scale: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render photons absorbed in the sensor at ``energies_kev``.

        Returns
        -------
        spectrum : (C,) expected counts (full-energy peaks, tails, steps, escape peaks)
        net : (L,) expected counts in each line's full-energy peak (escape excluded)
        """
        e = np.atleast_1d(np.asarray(energies_kev, dtype=np.float64))
        n = np.atleast_1d(np.asarray(absorbed, dtype=np.float64))
        f = escape_fraction(e) if self.escape else np.zeros_like(e)
        net = n * (1 - f)
        spectrum = self.peak_shapes(e, net, width_scale=width_scale)
        if self.escape and np.any(f > 0):
            _, _, ka_share = _si_constants()
            esc = n * f
            m = esc > 0
            spectrum += self.peak_shapes(
                np.concatenate([e[m] - SI_KA_KEV, e[m] - SI_KB_KEV]),
                np.concatenate([esc[m] * ka_share, esc[m] * (1 - ka_share)]),
                width_scale=width_scale,
            )
        return spectrum, net

    def pileup(self, spectrum: np.ndarray, *, live_time_s: float) -> np.ndarray:
        """Add sum peaks: a fraction rate x tau of the events pair up (pulse-pair model).

        Each pile-up event takes two photons out of their channels and puts one at the
        sum of their energies (the self-convolution of the spectrum).
        """
        if self.pileup_time_s <= 0 or live_time_s <= 0:
            return spectrum
        total = float(spectrum.sum())
        if total <= 0:
            return spectrum
        rate = total / live_time_s
        frac = min(rate * self.pileup_time_s, 0.5)
        p = spectrum / total
        nfft = 1 << int(np.ceil(np.log2(2 * p.size)))
        conv = np.fft.irfft(np.fft.rfft(p, nfft) ** 2, nfft)[: 2 * p.size]
        # channel i + j holds E_i + E_j - offset: shift by offset/gain channels
        idx = np.arange(p.size) - self.offset_kev / self.gain_kev
        summed = np.interp(idx, np.arange(conv.size), np.maximum(conv, 0), left=0.0, right=0.0)
        return spectrum * (1 - 2 * frac) + frac * total * summed


@lru_cache(maxsize=16)
def _response_matrix(det: Detector):
    """Peaks (Gaussian + tail) and escape peaks on a local window of each column; the step
    shelf, which reaches down to channel 0, is added by :meth:`Detector.render` as a
    cumulative sum instead of filling the matrix."""
    from scipy import sparse

    e = det.energy
    c = det.n_channels
    sig_max = float(det.sigma_kev(max(e[-1], 0.05)))
    lo_w = int(np.ceil((12 * sig_max) / det.gain_kev))  # the tail decays within a few sigma
    hi_w = int(np.ceil((6 * sig_max) / det.gain_kev))
    offsets = np.arange(-lo_w, hi_w + 1)
    f = _channel_escape(det)
    _, _, ka_share = _si_constants()
    rows, cols, vals = [], [], []
    col_idx = np.arange(c)
    for centre_shift, weight in ((0.0, 1 - f), (SI_KA_KEV, f * ka_share), (SI_KB_KEV, f * (1 - ka_share))):
        centres = e - centre_shift
        use = (weight > 0) & (centres > e[0] - 6 * sig_max)
        if not use.any():
            continue
        cen = centres[use]
        base = np.rint((cen - det.offset_kev) / det.gain_kev).astype(np.int64)
        ch = base[:, None] + offsets[None, :]
        ok = (ch >= 0) & (ch < c)
        d = (det.offset_kev + det.gain_kev * ch) - cen[:, None]
        sig = det.sigma_kev(np.maximum(cen, 0.05))[:, None]
        val = weight[use][:, None] * det.gain_kev * _shape(d, sig, det.tail_area, det.tail_slope)
        rows.append(ch[ok])
        cols.append(np.broadcast_to(col_idx[use][:, None], ch.shape)[ok])
        vals.append(val[ok])
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(c, c))


@lru_cache(maxsize=16)
def _channel_escape(det: Detector) -> np.ndarray:
    """Escape fraction at each channel's energy (xraylib calls: computed once per detector)."""
    return escape_fraction(np.maximum(det.energy, 0.05)) if det.escape else np.zeros(det.n_channels)


@lru_cache(maxsize=16)
def _step_per_photon(det: Detector) -> np.ndarray:
    """Height of the step shelf per absorbed photon at each channel's energy."""
    sig = det.sigma_kev(np.maximum(det.energy, 0.05))
    return det.step_height * det.gain_kev / (sig * np.sqrt(2 * np.pi)) * (1 - _channel_escape(det))


def _shape(d: np.ndarray, sig: np.ndarray, tail_area: float, tail_slope: float) -> np.ndarray:
    """Gaussian of unit area plus a low-energy exponential tail (PyMca's short tail), per keV."""
    out = np.exp(-0.5 * (d / sig) ** 2) / (sig * np.sqrt(2 * np.pi))
    if tail_area > 0:
        beta = tail_slope * sig
        arg = d / beta + 0.5 * (sig / beta) ** 2
        out = out + tail_area * np.exp(np.minimum(arg, 50)) * erfc(d / (SQRT2 * sig) + sig / (SQRT2 * beta)) / (
            2 * beta
        )
    return out
