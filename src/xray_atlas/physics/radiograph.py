"""X-ray absorption images (radiographs) of aluminium alloy plates and wedges (study 000).

An energy-integrating flat-panel image of a plate or wedge of Al 1050 or Al 2017 lying in the
open beam of a tungsten tube at 50 kV: the tube spectrum from SpekPy, Beer-Lambert attenuation
per energy with xraylib cross sections, a CsI scintillator that absorbs and weighs each photon
by its energy, quantum noise, a detector blur, an uneven open beam and a dark offset when the
image is not flat-fielded, and an arbitrary output scale (float, 16 or 8 bit), as
docs/dev/contracts.md section 6 describes real radiographs.

The physics a classifier must live with: at one tube voltage a 2017 plate of thickness t
attenuates about like a 1050 plate of ~1.3 t (Cu raises mu/rho), so a single image of a plate
of unknown thickness is ambiguous. The classes separate when the thicknesses are known (1, 2 and
5 mm here: the six -ln T levels do not coincide), along a wedge of known slope (the gradient of
-ln T is mu rho times the slope), or with a second tube voltage (mu(2017) / mu(1050) falls with
energy, so the 2017 plate that matches a 1050 plate at 50 kV attenuates 2-3 % less at 80 kV).
See docs/images.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import XrayAtlasError
from .materials import Material, compound, mass_attenuation
from .tube import Tube, tube_spectrum

__all__ = [
    "ALLOYS",
    "DEFAULT_FILTERS",
    "alloy",
    "RadiographConfig",
    "Radiograph",
    "radiograph",
    "radiographs",
    "transmission",
    "attenuation_levels",
    "open_beam_log",
]

#: Class names (docs/dev/contracts.md section 6).
ALLOYS = ("Al1050", "Al2017")

# Composition limits in wt % (Aluminum Association registration: 1050 >= 99.50 Al, Si <= 0.25,
# Fe <= 0.40; 2017 Cu 3.5-4.5, Mg 0.4-0.8, Mn 0.4-1.0, Si 0.2-0.8, Fe <= 0.7) and densities in
# g/cm^3 (ASM Handbook vol. 2: 2.705 and 2.79).
_LIMITS = {
    "Al1050": {"Si": (0.0, 0.25), "Fe": (0.0, 0.40), "Cu": (0.0, 0.05)},
    "Al2017": {"Cu": (3.5, 4.5), "Mg": (0.4, 0.8), "Mn": (0.4, 1.0), "Si": (0.2, 0.8), "Fe": (0.0, 0.7)},
}
_DENSITY = {"Al1050": 2.705, "Al2017": 2.79}
_MAX_OTHER = {"Al1050": 0.5}  # wt % of all minor elements together (1050: Al >= 99.50)
#: Beam filtration after the tube's 0.8 mm Be window: 0.5 mm Al, a lab source's usual inherent filter.
DEFAULT_FILTERS = (("Al", 0.5),)


def alloy(name: str, *, rng: np.random.Generator | None = None) -> Material:
    """An alloy's material: minor elements drawn within their limits, or at mid-range
    when ``rng`` is None; aluminium makes up the rest."""
    if name not in _LIMITS:
        raise XrayAtlasError(f"alloy={name!r}; choose one of {', '.join(ALLOYS)}")
    wt = {el: (rng.uniform(lo, hi) if rng is not None else (lo + hi) / 2) for el, (lo, hi) in _LIMITS[name].items()}
    cap = _MAX_OTHER.get(name, 100.0)
    if sum(wt.values()) > cap:
        wt = {el: v * cap / sum(wt.values()) for el, v in wt.items()}
    wt["Al"] = 100.0 - sum(wt.values())
    return compound(wt, density=_DENSITY[name], name=name)


@dataclass(frozen=True)
class RadiographConfig:
    """How radiographs are made.

    Parameters
    ----------
    size : int
        Image side in pixels.
    field_mm : float
        Side of the imaged field in mm (the object lies inside it with open beam around).
    kind : {"plate", "wedge", "both"}
        Object shape; "both" draws one of the two per image.
    thicknesses_mm : tuple of float
        Plate thicknesses (study 000: 1, 2 and 5 mm), each made within +-``thickness_tolerance``.
    wedge_length_mm, wedge_max_mm : float
        The wedge rises from 0 to ``wedge_max_mm`` over its length (study 000: a 7 cm wedge).
    kv : float or tuple of float
        Tube voltage(s); two values give a dual-energy (2, size, size) image.
    kv_spread, filter_spread_mm : float
        Per image, the voltage varies by up to +-``kv_spread`` kV (in 0.5 kV steps) and the
        thickness of the first filter by up to +-``filter_spread_mm`` (0.05 mm steps): an
        instrument known only roughly, for training a model that tolerates it.
    photons : (float, float)
        Range of photons per pixel in the open beam (log-uniform); sets the quantum noise.
    blur_px : (float, float)
        Range of the detector's Gaussian blur sigma in pixels.
    flat_field_share : float
        Share of images that are flat-fielded (no open-beam gradient, no dark offset).
    scintillator_um : float
        CsI thickness of the energy-integrating detector.
    filters : tuple of (material, mm)
        Beam filters after the tube's 0.8 mm Be window (default :data:`DEFAULT_FILTERS`).
    """

    size: int = 128
    field_mm: float = 100.0
    kind: str = "plate"
    thicknesses_mm: tuple[float, ...] = (1.0, 2.0, 5.0)
    thickness_tolerance: float = 0.02
    wedge_length_mm: float = 70.0
    wedge_max_mm: float = 10.0
    kv: float | tuple[float, ...] = 50.0
    kv_spread: float = 0.0
    filter_spread_mm: float = 0.0
    photons: tuple[float, float] = (2e3, 5e4)
    blur_px: tuple[float, float] = (0.3, 1.2)
    flat_field_share: float = 0.5
    scintillator_um: float = 150.0
    filters: tuple[tuple[str, float], ...] = DEFAULT_FILTERS

    def check(self) -> RadiographConfig:
        if not 16 <= self.size <= 4096:
            raise XrayAtlasError(f"size={self.size} must lie in 16-4096 pixels")
        if self.kind not in ("plate", "wedge", "both"):
            raise XrayAtlasError(f"kind={self.kind!r}; choose plate, wedge or both")
        if not self.thicknesses_mm or min(self.thicknesses_mm) <= 0:
            raise XrayAtlasError(f"thicknesses_mm={self.thicknesses_mm} must be > 0")
        if self.wedge_length_mm >= self.field_mm * 0.95:
            raise XrayAtlasError(f"wedge_length_mm={self.wedge_length_mm} must fit in field_mm={self.field_mm}")
        if not 0 < self.photons[0] <= self.photons[1]:
            raise XrayAtlasError(f"photons={self.photons} must be an increasing range > 0")
        if not 0 <= self.blur_px[0] <= self.blur_px[1]:
            raise XrayAtlasError(f"blur_px={self.blur_px} must be an increasing range >= 0")
        return self


@dataclass
class Radiograph:
    """An image and what it shows."""

    image: np.ndarray  # (size, size) or (n_kv, size, size), in its output dtype
    alloy: str
    kind: str
    thickness_mm: float  # plate thickness, or the wedge's maximum
    material: Material


@lru_cache(maxsize=512)
def _weights(kv: float, scint_um: float, filters: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Energies (keV) and the detector signal per energy bin in the open beam (normalised):
    photons x CsI absorption x photon energy (an energy-integrating scintillator)."""
    e, n = tube_spectrum(Tube(anode="W", kv=kv, window_be_um=800.0, takeoff_deg=12.0, filters=filters), de=0.5)
    keep = (e >= 5.0) & (n > 0)
    e, n = e[keep], n[keep]
    air = compound({"N": 0.755, "O": 0.232, "Ar": 0.013}, density=1.205e-3)
    n = n * np.exp(-mass_attenuation(air, e) * air.density * 50.0)  # 50 cm source-detector air path
    csi = compound("CsI", density=4.51)
    absorbed = 1.0 - np.exp(-mass_attenuation(csi, e) * csi.density * scint_um * 1e-4)
    w = n * absorbed * e
    return e, w / w.sum()


def transmission(
    material: Material,
    thickness_mm: np.ndarray,
    *,
    kv: float = 50.0,
    scintillator_um: float = 150.0,
    filters: tuple = DEFAULT_FILTERS,
) -> np.ndarray:
    """Detector signal behind ``thickness_mm`` of ``material`` relative to the open beam
    (polychromatic Beer-Lambert, so it includes beam hardening)."""
    e, w = _weights(float(kv), float(scintillator_um), tuple(filters))
    t = np.asarray(thickness_mm, dtype=np.float64)
    grid = np.linspace(0.0, max(float(t.max(initial=0.0)), 1e-3) * 1.001, 513)  # mm
    mu = mass_attenuation(material, e) * material.density / 10.0  # 1/mm
    table = np.exp(-np.outer(grid, mu)) @ w
    return np.interp(t, grid, table)


def attenuation_levels(
    thickness_mm: np.ndarray,
    *,
    kv: float,
    filter_al_mm: float,
    scintillator_um: float = 150.0,
) -> dict[str, np.ndarray]:
    """-ln T of each alloy of :data:`ALLOYS` (mid-range composition) at ``thickness_mm``, for
    a beam through ``filter_al_mm`` of aluminium: what an open-beam-normalised radiograph
    reads behind a plate of that thickness (beam hardening included).

    The filter is applied to the tube's spectrum here rather than inside SpekPy, so that one
    SpekPy spectrum per voltage serves every filtration (an instrument fit tries hundreds).
    """
    e, w = _weights(float(kv), float(scintillator_um), ())
    al = alloy("Al1050")
    w = w * np.exp(-mass_attenuation(compound({"Al": 100.0}, density=2.699), e) * 2.699 * float(filter_al_mm) / 10.0)
    w = w / w.sum()
    t = np.atleast_1d(np.asarray(thickness_mm, dtype=np.float64))
    out = {}
    for name in ALLOYS:
        mat = al if name == "Al1050" else alloy(name)
        mu = mass_attenuation(mat, e) * mat.density / 10.0  # 1/mm
        out[name] = -np.log(np.exp(-np.outer(t, mu)) @ w)
    return out


def _thickness_map(cfg: RadiographConfig, kind: str, t_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Thickness (mm) per pixel of a plate or wedge at a random position and rotation."""
    n, px = cfg.size, cfg.field_mm / cfg.size
    yy, xx = (np.mgrid[0:n, 0:n] + 0.5) * px
    angle = rng.uniform(0, np.pi)
    if kind == "plate":
        a, b = rng.uniform(0.25, 0.6, size=2) * cfg.field_mm  # sides
    else:
        a, b = cfg.wedge_length_mm, rng.uniform(0.15, 0.3) * cfg.field_mm
    # keep the rotated rectangle inside the field, open beam around it
    half_x = 0.5 * (abs(a * np.cos(angle)) + abs(b * np.sin(angle)))
    half_y = 0.5 * (abs(a * np.sin(angle)) + abs(b * np.cos(angle)))
    margin = 0.03 * cfg.field_mm
    cx = rng.uniform(half_x + margin, max(cfg.field_mm - half_x - margin, half_x + margin))
    cy = rng.uniform(half_y + margin, max(cfg.field_mm - half_y - margin, half_y + margin))
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)  # along the length
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    # area fraction of each pixel inside the object (4 x 4 supersampling of the edges)
    inside = np.zeros((n, n))
    for oy in (-0.375, -0.125, 0.125, 0.375):
        for ox in (-0.375, -0.125, 0.125, 0.375):
            du = ox * px * np.cos(angle) + oy * px * np.sin(angle)
            dv = -ox * px * np.sin(angle) + oy * px * np.cos(angle)
            inside += (np.abs(u + du) <= a / 2) & (np.abs(v + dv) <= b / 2)
    inside /= 16.0
    if kind == "plate":
        return inside * t_mm
    direction = 1.0 if rng.random() < 0.5 else -1.0
    ramp = np.clip(0.5 + direction * u / a, 0.0, 1.0) * t_mm
    return inside * ramp


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img, sigma, mode="nearest") if sigma > 0 else img


def radiograph(
    alloy_name: str,
    *,
    config: RadiographConfig | None = None,
    kind: str | None = None,
    thickness_mm: float | None = None,
    rng: np.random.Generator | int | None = None,
    output: str | None = None,
) -> Radiograph:
    """One simulated radiograph.

    Parameters
    ----------
    alloy_name : {"Al1050", "Al2017"}
    config : RadiographConfig, optional
    kind : {"plate", "wedge"}, optional
        Default: the config's (a random one of the two for "both").
    thickness_mm : float, optional
        Plate thickness (default: one of the config's, within its tolerance) or the wedge's
        maximum (default: the config's).
    rng : Generator or int, optional
    output : {"float", "uint16", "uint8"}, optional
        The image's type and scale (default: random, as real files come in any of them).
    """
    cfg = (config or RadiographConfig()).check()
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    kind = kind or (cfg.kind if cfg.kind != "both" else ("plate", "wedge")[int(rng.integers(2))])
    if kind not in ("plate", "wedge"):
        raise XrayAtlasError(f"kind={kind!r}; choose plate or wedge")
    if thickness_mm is None:
        thickness_mm = (
            float(rng.choice(cfg.thicknesses_mm)) * (1 + rng.uniform(-1, 1) * cfg.thickness_tolerance)
            if kind == "plate"
            else cfg.wedge_max_mm
        )
    if not thickness_mm > 0:
        raise XrayAtlasError(f"thickness_mm={thickness_mm} must be > 0")
    mat = alloy(alloy_name, rng=rng)
    t = _thickness_map(cfg, kind, float(thickness_mm), rng)
    kvs = cfg.kv if isinstance(cfg.kv, tuple) else (cfg.kv,)
    if cfg.kv_spread > 0:
        shift = round(rng.uniform(-cfg.kv_spread, cfg.kv_spread) * 2) / 2
        kvs = tuple(k + shift for k in kvs)
    filters = cfg.filters
    if cfg.filter_spread_mm > 0 and filters:
        (matl, mm), *rest = filters
        mm = max(round((mm + rng.uniform(-cfg.filter_spread_mm, cfg.filter_spread_mm)) * 20) / 20, 0.0)
        filters = ((matl, mm), *rest)
    photons = float(np.exp(rng.uniform(*np.log(cfg.photons))))
    sigma = rng.uniform(*cfg.blur_px)
    flat = rng.random() < cfg.flat_field_share
    n = cfg.size
    if flat:
        gain, dark = np.ones((n, n)), 0.0
    else:  # an uneven open beam (heel effect, distance) and a dark offset
        yy, xx = np.mgrid[0:n, 0:n] / n - 0.5
        gx, gy, r2 = rng.uniform(-0.08, 0.08, size=3)
        gain = 1.0 + gx * xx + gy * yy + r2 * (xx**2 + yy**2)
        dark = rng.uniform(0.0, 0.02)
    planes = []
    for kv in kvs:
        signal = transmission(mat, t, kv=kv, scintillator_um=cfg.scintillator_um, filters=filters)
        quanta = rng.poisson(photons * signal * gain) / photons  # quantum noise of the open-beam photons
        planes.append(_blur(quanta, sigma) + dark)
    img = np.stack(planes) if len(planes) > 1 else planes[0]
    output = output or ("float", "uint16", "uint8")[int(rng.integers(3))]
    if output == "float":
        img = (img * rng.uniform(0.5, 2.0)).astype(np.float32)
    elif output in ("uint16", "uint8"):
        top = 65535 if output == "uint16" else 255
        img = np.clip(np.round(img / max(float(img.max()), 1e-12) * top * rng.uniform(0.7, 0.98)), 0, top)
        img = img.astype(output)
    else:
        raise XrayAtlasError(f"output={output!r}; choose float, uint16 or uint8")
    return Radiograph(img, alloy_name, kind, float(thickness_mm), mat)


def radiographs(
    n: int,
    *,
    config: RadiographConfig | None = None,
    seed: int = 0,
    balance: tuple[float, float] = (0.5, 0.5),
    progress=None,
) -> tuple[np.ndarray, np.ndarray, list[Radiograph]]:
    """``n`` radiographs with class indices into :data:`ALLOYS` (share per class ``balance``):
    images as float32 (n, size, size) in their raw scale, labels, and the records.
    ``progress(done, n)`` is called after every 64 and after the last."""
    if n < 1:
        raise XrayAtlasError(f"n={n} must be >= 1")
    rng = np.random.default_rng(seed)
    p = np.asarray(balance, float) / float(np.sum(balance))
    labels = rng.choice(len(ALLOYS), size=n, p=p)
    recs = []
    for i, k in enumerate(labels, start=1):
        recs.append(radiograph(ALLOYS[k], config=config, rng=rng))
        if progress is not None and (i % 64 == 0 or i == n):
            progress(i, n)
    return np.stack([r.image.astype(np.float32) for r in recs]), labels.astype(np.int64), recs


def open_beam_log(img: np.ndarray, *, quantile: float = 0.97) -> np.ndarray:
    """-ln(I / I0) of a radiograph with open beam around the object, I0 being the image's
    ``quantile`` (the open beam; a real detector's dark level is unknown and left in). The
    result does not depend on the image's scale (8 or 16 bit, float) and is clipped to [0, 8]."""
    img = np.asarray(img, dtype=np.float64)
    top = np.quantile(img, quantile, axis=(-2, -1), keepdims=True)
    i0 = np.maximum(top, 1e-12)
    return np.clip(-np.log(np.maximum(img, i0 * 1e-4) / i0), 0.0, 8.0).astype(np.float32)
