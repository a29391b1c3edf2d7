"""X-ray tube spectra from SpekPy (Poludniowski et al., Phys. Med. Biol. 66, 2021, 'SpekPy v2.0').

SpekPy models bremsstrahlung and characteristic emission of W, Mo, Rh and Ag anodes (and
more) from first-principles cross sections, with the tube window and any filter applied.
Spectra are cached per setting, in each process and in the user's cache folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import XrayAtlasError

__all__ = ["Tube", "tube_spectrum"]

ANODES = ("Rh", "W", "Mo", "Ag", "Cu", "Cr")


@dataclass(frozen=True)
class Tube:
    """An X-ray tube.

    Parameters
    ----------
    anode : str
        Target element: Rh (MA-XRF scanners such as the M6 Jetstream), W, Mo, Ag, Cu, Cr.
    kv : float
        Tube voltage in kV.
    current_ua : float
        Tube current in microampere.
    window_be_um : float
        Beryllium exit window in micrometre.
    takeoff_deg : float
        Anode take-off angle in degrees.
    filters : tuple of (symbol or formula, thickness in mm)
        Primary beam filters, e.g. ``(("Al", 0.1),)``.
    """

    anode: str = "Rh"
    kv: float = 50.0
    current_ua: float = 600.0
    window_be_um: float = 100.0
    takeoff_deg: float = 20.0
    filters: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.anode not in ANODES:
            raise XrayAtlasError(f"anode={self.anode!r}; supported anodes: {', '.join(ANODES)}")
        if not (5.0 <= self.kv <= 150.0):
            raise XrayAtlasError(f"kv={self.kv} must lie in 5-150 kV")
        if not self.current_ua > 0:
            raise XrayAtlasError(f"current_ua={self.current_ua} must be > 0")
        if self.window_be_um < 0 or not (1.0 <= self.takeoff_deg <= 90.0):
            raise XrayAtlasError("window_be_um must be >= 0 and takeoff_deg within 1-90 degrees")
        for f in self.filters:
            if len(f) != 2 or not f[1] >= 0:
                raise XrayAtlasError(f"filters entry {f!r} must be (material, thickness_mm >= 0)")


@lru_cache(maxsize=32)
def _spekpy(
    anode: str, kv: float, window_be_um: float, takeoff_deg: float, filters: tuple[tuple[str, float], ...], de: float
) -> tuple[np.ndarray, np.ndarray]:
    # SpekPy takes ~1.7 s to import and set up its tables in each process, for a spectrum that
    # depends on nothing but these settings and its version: kept in the user's cache folder
    from importlib.metadata import version

    from .._cache import cached_arrays

    key = ("spekpy", version("spekpy"), anode, kv, window_be_um, takeoff_deg, filters, de)
    got = cached_arrays("tube", key, lambda: _run_spekpy(anode, kv, window_be_um, takeoff_deg, filters, de))
    return got["k"], got["f"]


def _run_spekpy(
    anode: str, kv: float, window_be_um: float, takeoff_deg: float, filters: tuple[tuple[str, float], ...], de: float
) -> dict[str, np.ndarray]:
    import spekpy

    try:
        s = spekpy.Spek(kvp=kv, th=takeoff_deg, dk=de, targ=anode)
    except Exception as err:  # noqa: BLE001 - spekpy raises plain Exception (Rh above 50 kV, for one)
        msg = " ".join(str(err).split())
        raise XrayAtlasError(f"SpekPy does not simulate a {anode} tube at {kv:g} kV ({msg})") from None
    if window_be_um > 0:
        s.filter("Be", window_be_um / 1000.0)
    for matl, mm in filters:
        if mm > 0:
            try:
                s.filter(matl, mm)
            except Exception as err:  # noqa: BLE001 - spekpy raises plain Exception
                raise XrayAtlasError(f"filters: SpekPy does not know material {matl!r} ({err})") from None
    k, f = s.get_spectrum(edges=False)
    return {"k": np.asarray(k, dtype=np.float64), "f": np.asarray(f, dtype=np.float64)}


def tube_spectrum(tube: Tube, *, de: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Photon spectrum of a tube: bin centres (keV) and photons per keV per second per steradian.

    SpekPy returns fluence per mAs per cm^2 at 1 m, i.e. per steradian x 1e-4; this is
    scaled by the tube current.

    Parameters
    ----------
    tube : Tube
    de : float
        Energy bin width in keV.
    """
    if not (0.005 <= de <= 1.0):
        raise XrayAtlasError(f"de={de} keV must lie in 0.005-1")
    k, f = _spekpy(
        tube.anode, float(tube.kv), float(tube.window_be_um), float(tube.takeoff_deg), tuple(tube.filters), float(de)
    )
    per_sr_per_mas = f * 1e4  # cm^2 at 1 m -> per steradian
    return k.copy(), per_sr_per_mas * (tube.current_ua * 1e-3)
