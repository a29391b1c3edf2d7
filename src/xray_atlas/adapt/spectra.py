"""The user's XRF instrument, fitted to the sum spectrum of a scan: no labels needed.

A painting's sum spectrum holds the instrument's fingerprints beside the paint's lines: the
tube's own lines and continuum scattered by the paint (anode, voltage, and the optic's band
pass shape them), and the width of every peak (the detector's resolution). The fit models the
measured sum spectrum as a non-negative mix of one net count of each element's line family
(:func:`~xray_atlas.physics.spectra.pure_spectrum`, whose line ratios and escape peaks follow
the instrument) and of the tube spectrum scattered by a light and by a heavy paint matrix
(:func:`~xray_atlas.physics.spectra.simulate`), all for one candidate instrument, and keeps the
instrument whose mix fits best (Poisson-weighted residuals). The paint's composition is free
in every candidate: only the instrument is chosen.

Searched, in this order (each step keeps the others at their best so far):

1. the detector's FWHM at Mn Ka, 125-250 eV (peak widths; 120 eV is the Fano limit);
2. the anode (Rh, W, Mo, Ag, Cu, Cr) and whether a polycapillary optic shapes the beam;
3. the tube voltage, 20-60 kV in 5 kV steps, then 1 kV around the best;
4. the FWHM again, in 5 eV steps.

The energy calibration is the cube's own (a wrong one is fixed first with the Spectrum
inspector's calibration, or ``--offset-kev``/``--gain-kev``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import XrayAtlasError

__all__ = ["XrfInstrument", "XrfFit", "fit_xrf_instrument", "FIT_ANODES"]

#: Tube anodes the fit tries: every anode the physics engine's tube (SpekPy) simulates.
FIT_ANODES = ("Rh", "W", "Mo", "Ag", "Cu", "Cr")
#: Paint matrices whose scatter of the tube spectrum the mix may hold (weight fractions).
_LIGHT_MATRIX = {"Ca": 0.4, "C": 0.12, "O": 0.48}  # chalk
_HEAVY_MATRIX = {"Pb": 0.8, "C": 0.05, "O": 0.15}  # lead white


@dataclass(frozen=True)
class XrfInstrument:
    """A fitted XRF instrument: tube anode and voltage, optic or none, detector resolution."""

    anode: str
    kv: float
    optic: bool
    fwhm_mnka_ev: float

    def as_dict(self) -> dict[str, Any]:
        return {"anode": self.anode, "kv": self.kv, "optic": self.optic, "fwhm_mnka_ev": self.fwhm_mnka_ev}


@dataclass(frozen=True)
class XrfFit:
    """The fit of :func:`fit_xrf_instrument`: the instrument, the measured and the fitted sum
    spectra on the channels fitted, and each candidate's reduced chi-square."""

    instrument: XrfInstrument
    energy: np.ndarray = field(repr=False)
    measured: np.ndarray = field(repr=False)
    fitted: np.ndarray = field(repr=False)
    reduced_chi2: float
    tried: dict = field(default_factory=dict, repr=False)

    @property
    def residual(self) -> np.ndarray:
        """(measured - fitted) / sqrt(fitted), per channel."""
        return (self.measured - self.fitted) / np.sqrt(np.maximum(self.fitted, 1.0))


def _families(max_kev: float) -> list[str]:
    from ..physics.generator import PROBABILITY_ELEMENTS, UNLISTED_ELEMENTS
    from ..physics.lines import atomic_number, family_lines

    out = []
    for el in dict.fromkeys(("Ar", *PROBABILITY_ELEMENTS, *UNLISTED_ELEMENTS)):
        z = atomic_number(el)
        for fam in ("K", "L") if z >= 30 else ("K",):
            name = f"{el}-{fam}"
            try:
                lines = family_lines(name, excitation_kev=max_kev)
            except XrayAtlasError:
                continue
            if lines and 1.0 <= lines[0].energy_kev < max_kev:
                out.append(name)
    return out


def _instrument(cand: XrfInstrument, detector: Any) -> Any:
    from ..physics.reference import M6_OPTIC
    from ..physics.spectra import Instrument
    from ..physics.tube import Tube

    return Instrument(
        tube=Tube(anode=cand.anode, kv=cand.kv),
        detector=replace(detector, fwhm_mnka_ev=cand.fwhm_mnka_ev),
        optic=M6_OPTIC if cand.optic else None,
    )


def _design(cand: XrfInstrument, detector: Any, families: list[str]) -> np.ndarray:
    """(channels, columns): one net count of each family, then the scatter of a light and a
    heavy matrix (each scaled to one count)."""
    from ..physics.materials import compound
    from ..physics.spectra import pure_spectrum, simulate

    inst = _instrument(cand, detector)
    cols = []
    for f in families:
        try:
            cols.append(pure_spectrum(f, instrument=inst))
        except XrayAtlasError:  # a family this tube voltage cannot excite
            continue
    for wt, rho in ((_LIGHT_MATRIX, 2.7), (_HEAVY_MATRIX, 6.1)):
        s = simulate(compound({k: 100 * v for k, v in wt.items()}, density=rho), inst, pileup=False, secondary=False)
        cols.append(s.scatter / max(float(s.scatter.sum()), 1e-30))
    return np.stack(cols, axis=1)


def _score(a: np.ndarray, y: np.ndarray, keep: np.ndarray) -> tuple[float, np.ndarray]:
    from scipy.optimize import nnls

    w = 1.0 / np.sqrt(np.maximum(y[keep], 1.0))  # Poisson weights
    coef, _ = nnls(a[keep] * w[:, None], y[keep] * w, maxiter=20 * a.shape[1])
    fitted = a @ coef
    chi2 = float(np.sum(((y[keep] - fitted[keep]) * w) ** 2)) / max(int(keep.sum()) - a.shape[1], 1)
    return chi2, fitted


def fit_xrf_instrument(
    spectrum: np.ndarray,
    *,
    offset_kev: float,
    gain_kev: float,
    anodes: tuple[str, ...] = FIT_ANODES,
    kv_range: tuple[float, float] = (20.0, 60.0),
    progress: Any = None,
) -> XrfFit:
    """Fit the instrument to a sum spectrum (counts per channel, channel ``i`` at
    ``offset_kev + gain_kev * i``).

    Parameters
    ----------
    spectrum : (C,) array
        The scan's sum spectrum (or any spectrum with tens of thousands of counts and more).
    offset_kev, gain_kev : float
        Its energy calibration.
    anodes : tuple of str
        Anodes to try.
    kv_range : (float, float)
        Tube voltages to try (kV).
    progress : callable, optional
        ``progress(done, total, what)`` after each candidate.

    Returns
    -------
    XrfFit
    """
    from ..physics.detector import Detector

    y = np.asarray(spectrum, dtype=np.float64).ravel()
    if y.ndim != 1 or y.size < 64 or not np.all(np.isfinite(y)) or y.min() < 0:
        raise XrayAtlasError("spectrum: needs at least 64 channels of finite, non-negative counts")
    if y.sum() < 1e4:
        raise XrayAtlasError(f"spectrum: {y.sum():,.0f} counts are too few to fit an instrument (10,000 or more)")
    if not gain_kev > 0:
        raise XrayAtlasError(f"gain_kev={gain_kev} must be > 0 (an energy calibration is needed)")
    unknown = [a for a in anodes if a not in FIT_ANODES]
    if unknown:
        raise XrayAtlasError(f"anodes: {unknown[0]!r} is not one of {', '.join(FIT_ANODES)}")
    energy = offset_kev + gain_kev * np.arange(y.size)
    detector = Detector(n_channels=y.size, gain_kev=gain_kev, offset_kev=offset_kev)
    # fit from 1 keV up to where the counts end (the tube's voltage, or the detector's range)
    top = float(energy[np.nonzero(y > 0)[0][-1]])
    keep = (energy >= 1.0) & (energy <= top)
    families = _families(min(top, kv_range[1]))
    tried: dict = {}
    steps = [0]

    def score(cand: XrfInstrument) -> float:
        if cand not in tried:
            try:
                tried[cand] = _score(_design(cand, detector, families), y, keep)
            except Exception:  # noqa: BLE001 - SpekPy refuses some anode/voltage pairs with a bare Exception
                tried[cand] = (np.inf, np.zeros_like(y))
            steps[0] += 1
            if progress is not None:
                progress(steps[0], None, f"{cand.anode} {cand.kv:g} kV")
        return tried[cand][0]

    best = XrfInstrument("Rh", 50.0 if kv_range[0] <= 50 <= kv_range[1] else kv_range[1], True, 145.0)
    best = min((replace(best, fwhm_mnka_ev=f) for f in (125.0, 140.0, 155.0, 170.0, 200.0, 240.0)), key=score)
    best = min((replace(best, anode=a, optic=o) for a in anodes for o in (False, True)), key=score)
    kvs = np.arange(kv_range[0], kv_range[1] + 1e-9, 5.0)
    best = min((replace(best, kv=float(k)) for k in kvs), key=score)
    fine = np.arange(max(kv_range[0], best.kv - 4), min(kv_range[1], best.kv + 4) + 1e-9, 1.0)
    best = min((replace(best, kv=float(k)) for k in fine), key=score)
    best = min((replace(best, anode=a, optic=o) for a in anodes for o in (False, True)), key=score)
    f0 = best.fwhm_mnka_ev
    best = min(
        (replace(best, fwhm_mnka_ev=float(f)) for f in np.arange(max(125.0, f0 - 20), min(250.0, f0 + 20) + 1e-9, 5.0)),
        key=score,
    )
    chi2, fitted = tried[best]
    return XrfFit(best, energy[keep], y[keep], fitted[keep], chi2, {c: v[0] for c, v in tried.items()})
