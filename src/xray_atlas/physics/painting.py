"""Synthetic painting cubes with their true elemental maps.

This first version paints pigment regions as sums of xraylib line families, each line a
Gaussian whose width follows the Fano-limited resolution of a silicon drift detector,
over a smooth continuum with Rayleigh and Compton peaks of a Rh tube, with Poisson
counting. It is enough to exercise readers, the inspector and the demo; the full
physics engine (matrix absorption, tube spectra, escape and pile-up peaks) replaces the
spectrum model without changing this interface.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import XrayAtlasError
from .lines import family_lines

__all__ = ["Painting", "PIGMENTS", "simple_painting", "fwhm_kev", "family_profile"]

# Fano factor and electron-hole pair energy of silicon (Knoll, Radiation Detection and
# Measurement, 4th ed., ch. 13; PyMca's default Fano factor for Si is also 0.114). The
# electronic noise is then set so that FWHM(Mn Ka, 5.895 keV) = 145 eV, the M6 Jetstream
# detector of study 001.
FANO = 0.114
PAIR_ENERGY_KEV = 0.00364
MNKA_KEV = 5.8951


def _noise_kev(fwhm_mnka_kev: float) -> float:
    var = fwhm_mnka_kev**2 - (2.3548**2) * FANO * PAIR_ENERGY_KEV * MNKA_KEV
    if var <= 0:
        raise XrayAtlasError(f"fwhm_mnka_ev={fwhm_mnka_kev * 1000:g} is below the Fano limit")
    return float(np.sqrt(var))


def fwhm_kev(energy_kev: np.ndarray | float, *, fwhm_mnka_ev: float = 145.0) -> np.ndarray:
    """Detector FWHM (keV) at ``energy_kev``: sqrt(noise^2 + 2.3548^2 F w E)."""
    noise = _noise_kev(fwhm_mnka_ev / 1000.0)
    e = np.asarray(energy_kev, dtype=np.float64)
    return np.sqrt(noise**2 + (2.3548**2) * FANO * PAIR_ENERGY_KEV * e)


def family_profile(line: str, energy: np.ndarray, *, fwhm_mnka_ev: float = 145.0) -> np.ndarray:
    """Detected spectrum of one net count of a line family on the channel grid ``energy``.

    Each line is a Gaussian of unit area times its relative intensity, integrated over
    the channel width, so that the profile sums to 1 where the lines lie inside the grid.
    """
    energy = np.asarray(energy, dtype=np.float64)
    gain = float(np.median(np.diff(energy)))
    prof = np.zeros_like(energy)
    for ln in family_lines(line):
        sigma = fwhm_kev(ln.energy_kev, fwhm_mnka_ev=fwhm_mnka_ev) / 2.3548
        prof += ln.relative_intensity * gain * np.exp(-0.5 * ((energy - ln.energy_kev) / sigma) ** 2) / (
            sigma * np.sqrt(2 * np.pi)
        )
    return prof


#: Pigment name -> (line family -> net counts per pixel at full coverage).
PIGMENTS: dict[str, dict[str, float]] = {
    "lead white": {"Pb-L": 900.0},
    "chalk-gypsum ground": {"Ca-K": 350.0, "S-K": 60.0, "Sr-K": 25.0, "K-K": 20.0},
    "vermilion": {"Hg-L": 700.0, "S-K": 40.0},
    "azurite": {"Cu-K": 800.0},
    "yellow ochre": {"Fe-K": 700.0, "Mn-K": 40.0, "K-K": 30.0},
    "gold leaf": {"Au-L": 1500.0},
    "chrome yellow": {"Cr-K": 400.0, "Pb-L": 600.0},
    "zinc white": {"Zn-K": 600.0},
}


@dataclass
class Painting:
    """A synthetic painting: counts, calibration, true maps and pigment regions."""

    counts: np.ndarray
    energy_offset_kev: float
    energy_gain_kev: float
    maps: dict[str, np.ndarray]
    regions: np.ndarray
    region_names: list[str]
    attrs: dict = field(default_factory=dict)

    @property
    def energy(self) -> np.ndarray:
        return self.energy_offset_kev + self.energy_gain_kev * np.arange(self.counts.shape[2])

    def write(self, path: str | os.PathLike) -> None:
        """Write the cube, its true maps and its region labels to an HDF5 file (CONTRACTS.md 2)."""
        from ..io.hdf5 import write_cube

        write_cube(
            path,
            self.counts,
            energy_offset_kev=self.energy_offset_kev,
            energy_gain_kev=self.energy_gain_kev,
            maps=self.maps,
            attrs={**self.attrs, "region_names": np.array(self.region_names, dtype="S")},
        )
        import h5py

        with h5py.File(path, "r+") as f:
            f.create_dataset("regions", data=self.regions.astype(np.int32))


def _layout(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Region index per pixel: a ground, a sky, a robe, a halo, an ochre field, details."""
    yy, xx = np.mgrid[0:height, 0:width]
    y = yy / height
    x = xx / width
    names = ["chalk-gypsum ground", "azurite", "yellow ochre", "vermilion", "gold leaf", "chrome yellow", "zinc white"]
    reg = np.zeros((height, width), dtype=np.int32)
    wobble = 0.03 * np.sin(2 * np.pi * (x * 3 + rng.uniform()))
    reg[y < 0.35 + wobble] = 1  # sky
    reg[y > 0.8 + wobble] = 2  # ochre ground strip
    cx, cy = 0.5 + rng.uniform(-0.05, 0.05), 0.62
    robe = ((x - cx) / 0.22) ** 2 + ((y - cy) / 0.3) ** 2 < 1
    reg[robe] = 3
    halo = np.abs(np.hypot((x - cx) * width / height, y - 0.25) - 0.12) < 0.03
    reg[halo] = 4
    reg[(np.abs(x - 0.15) < 0.06) & (np.abs(y - 0.6) < 0.12)] = 5
    reg[(np.abs(x - 0.85) < 0.05) & (np.abs(y - 0.55) < 0.1)] = 6
    return reg, names


def simple_painting(
    height: int = 96,
    width: int = 128,
    *,
    n_channels: int = 4096,
    energy_gain_kev: float = 0.01,
    energy_offset_kev: float = 0.0,
    dose: float = 1.0,
    fwhm_mnka_ev: float = 145.0,
    seed: int = 0,
) -> Painting:
    """A small synthetic painting with lead white underneath all pigment regions.

    Parameters
    ----------
    height, width : int
        Size in pixels.
    n_channels : int
        Channels of the spectra.
    energy_gain_kev, energy_offset_kev : float
        Linear calibration.
    dose : float
        Scales all counts (1.0 gives about 2,000-5,000 counts per pixel, like 10-50 ms
        dwell on an M6 Jetstream).
    fwhm_mnka_ev : float
        Detector resolution at Mn Ka.
    seed : int
        Random seed for the layout and the counting noise.
    """
    for name, v in (("height", height), ("width", width), ("n_channels", n_channels)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise XrayAtlasError(f"{name}={v!r} must be a positive integer")
    if n_channels < 16:
        raise XrayAtlasError(f"n_channels={n_channels} is too few for spectra (>= 16)")
    if not dose > 0:
        raise XrayAtlasError(f"dose={dose} must be > 0")
    rng = np.random.default_rng(seed)
    regions, names = _layout(height, width, rng)
    energy = energy_offset_kev + energy_gain_kev * np.arange(n_channels)

    # Coverage of each pigment: 1 inside its region, with brush-like texture.
    texture = 0.75 + 0.25 * rng.random((height, width))
    lines: dict[str, np.ndarray] = {}

    def add(pigment: str, weight: np.ndarray) -> None:
        for line, amount in PIGMENTS[pigment].items():
            lines[line] = lines.get(line, 0) + dose * amount * weight

    add("lead white", np.where(regions == 0, 1.0, 0.35) * texture)
    add("chalk-gypsum ground", np.full((height, width), 0.6))
    for i, name in enumerate(names[1:], start=1):
        add(name, (regions == i) * texture)
    maps = {k: np.asarray(v, dtype=np.float32) for k, v in lines.items()}
    line_names = sorted(maps)
    profiles = np.stack([family_profile(l, energy, fwhm_mnka_ev=fwhm_mnka_ev) for l in line_names])

    # Continuum and Rh K scatter: shape only (the physics engine replaces this).
    e = np.clip(energy, 1e-3, None)
    continuum = np.exp(-((e - 17.0) / 7.0) ** 2) * (1 - np.exp(-((e / 3.0) ** 3)))
    continuum /= continuum.sum()
    sig = fwhm_kev(20.2, fwhm_mnka_ev=fwhm_mnka_ev) / 2.3548
    scatter = np.exp(-0.5 * ((energy - 20.2) / sig) ** 2) + 1.6 * np.exp(-0.5 * ((energy - 18.9) / (2.5 * sig)) ** 2)
    scatter /= max(scatter.sum(), 1e-12)
    background = dose * (900.0 * continuum + 250.0 * scatter)

    counts = np.empty((height, width, n_channels), dtype=np.uint16)
    flat_maps = np.stack([maps[l] for l in line_names], axis=-1)
    for r in range(0, height, 16):
        expect = flat_maps[r : r + 16] @ profiles + background
        counts[r : r + 16] = np.minimum(rng.poisson(expect), np.iinfo(np.uint16).max)
    attrs = {"tube_kv": 50.0, "anode": "Rh", "fwhm_mnka_ev": float(fwhm_mnka_ev), "title": "Synthetic painting"}
    return Painting(counts, float(energy_offset_kev), float(energy_gain_kev), maps, regions, names, attrs)
