"""Expected XRF spectra of layered samples, and pure line-family spectra.

The model (primary fluorescence; Sherman, Spectrochim. Acta 7, 283, 1955, in the layered
form of de Boer, X-Ray Spectrom. 19, 145, 1990):

- the tube spectrum (SpekPy) lights a stack of homogeneous layers at ``incidence_deg``; the
  first layer is the air between the instrument and the sample, whose Ar emits its K lines;
- each layer absorbs and emits: for a line of energy E1 excited at E0,
  I = G S(E0) w tau(E0) / sin(psi_in) * A_above * (1 - exp(-chi m)) / chi, with
  chi = mu(E0)/sin(psi_in) + mu(E1)/sin(psi_out), m the mass thickness, tau the
  fluorescence production cross section with cascade (xraylib, Kissel);
- Rayleigh and Compton scatter of the whole tube spectrum (xraylib differential cross
  sections with form factors and incoherent scattering functions), the Compton peak
  Doppler-broadened;
- the detector (:mod:`.detector`): window and sensor efficiency, Gaussian peaks with tail
  and step, Si escape peaks, pile-up; Poisson counting on request.

Secondary fluorescence (Cr in steel excited by Fe and Ni lines) is included within each
layer, not across layers. Not modelled: tertiary fluorescence, diffraction peaks of crystalline grains, surface roughness, the tube's focal spot and
polycapillary transmission. ``net`` counts follow docs/dev/contracts.md: full-energy peaks only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import XrayAtlasError
from .detector import Detector
from .lines import line_macros, symbol
from .materials import AIR, Material, mass_attenuation
from .tube import Tube, tube_spectrum

__all__ = [
    "Layer",
    "Geometry",
    "Instrument",
    "Simulation",
    "simulate",
    "pure_spectrum",
    "scatter_geometry",
    "DEFAULT_INSTRUMENT",
]

ELECTRON_KEV = 510.99895
#: Elements lighter than Na emit lines below 1 keV that air and the window absorb.
MIN_Z = 11


@dataclass(frozen=True)
class Layer:
    """A homogeneous layer; ``thickness_um=None`` means infinitely thick."""

    material: Material
    thickness_um: float | None = None

    def __post_init__(self) -> None:
        if self.thickness_um is not None and not self.thickness_um > 0:
            raise XrayAtlasError(f"layer {self.material.name!r}: thickness_um={self.thickness_um} must be > 0")

    @property
    def mass_thickness(self) -> float:
        return np.inf if self.thickness_um is None else self.material.density * self.thickness_um * 1e-4


@dataclass(frozen=True)
class Geometry:
    """Beam and detector angles to the sample surface, air path, and the intensity scale.

    ``intensity_scale`` lumps the tube emission captured by the optics and the detector's
    solid angle; its default makes a lead-white paint give ~150,000 counts per second at
    50 kV and 600 uA, so that 10-50 ms per pixel gives the 1,500-6,000 counts of study 001.
    """

    incidence_deg: float = 45.0
    exit_deg: float = 45.0
    air_mm: float = 10.0
    intensity_scale: float = 1.1e-6
    doppler: float = 0.011  # Compton Doppler sigma as a fraction of the energy (light matrices)

    @property
    def scatter_deg(self) -> float:
        return self.incidence_deg + self.exit_deg

    def __post_init__(self) -> None:
        for name in ("incidence_deg", "exit_deg"):
            if not (0 < getattr(self, name) <= 90):
                raise XrayAtlasError(f"{name}={getattr(self, name)} must lie in (0, 90] degrees")
        if self.air_mm < 0 or not self.intensity_scale > 0 or self.doppler < 0:
            raise XrayAtlasError("air_mm and doppler must be >= 0 and intensity_scale > 0")


def scatter_geometry(scatter_deg: float) -> Geometry:
    """The geometry with beam and detector ``scatter_deg`` degrees apart: 90 is the default
    45/45 geometry; wider angles keep the beam normal to the surface and tilt the detector
    (``exit_deg = scatter_deg - 90``), as macro-XRF scanners do."""
    if not 90.0 <= float(scatter_deg) < 180.0:
        raise XrayAtlasError(f"scatter_deg={scatter_deg} must lie in [90, 180) degrees")
    if float(scatter_deg) == 90.0:
        return Geometry()
    return Geometry(incidence_deg=90.0, exit_deg=float(scatter_deg) - 90.0)


@dataclass(frozen=True)
class Optic:
    """Transmission of a focusing optic (polycapillary): a smooth band pass.

    T(E) = 1 / (1 + exp((E - high_kev) / high_width_kev)) / (1 + exp((low_kev - E) / low_width_kev)).
    Polycapillaries pass 3-15 keV well and lose transmission at higher energies, where the
    critical angle of total reflection falls below the capillary's bending.
    """

    high_kev: float = 19.0
    high_width_kev: float = 1.0
    low_kev: float = 0.0
    low_width_kev: float = 0.5

    def transmission(self, energy_kev: np.ndarray) -> np.ndarray:
        e = np.asarray(energy_kev, dtype=np.float64)
        hi = 1.0 / (1.0 + np.exp(np.clip((e - self.high_kev) / self.high_width_kev, -60, 60)))
        lo = 1.0 / (1.0 + np.exp(np.clip((self.low_kev - e) / self.low_width_kev, -60, 60)))
        return hi * lo


@dataclass(frozen=True)
class Instrument:
    """Tube, detector, geometry and live time of one measurement."""

    tube: Tube = field(default_factory=Tube)
    detector: Detector = field(default_factory=Detector)
    geometry: Geometry = field(default_factory=Geometry)
    live_time_s: float = 1.0
    tube_de_kev: float = 0.05
    optic: Optic | None = None
    monochromatic_kev: float | None = None
    monochromatic_flux: float = 1e10

    def __post_init__(self) -> None:
        if not self.live_time_s > 0:
            raise XrayAtlasError(f"live_time_s={self.live_time_s} must be > 0")
        if self.monochromatic_kev is not None and not (1.0 < self.monochromatic_kev <= 150.0):
            raise XrayAtlasError(f"monochromatic_kev={self.monochromatic_kev} must lie in (1, 150] keV")

    def excitation(self, de: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Incident photons: energies (keV) and photons per keV per second per steradian.

        The tube spectrum through the optic, or one line of ``monochromatic_flux`` photons
        per second when ``monochromatic_kev`` is set (synchrotron or monochromator beams).
        """
        de = self.tube_de_kev if de is None else de
        if self.monochromatic_kev is not None:
            e0, flux = np.array([float(self.monochromatic_kev)]), np.array([self.monochromatic_flux / de])
        else:
            e0, flux = tube_spectrum(self.tube, de=de)
        if self.optic is not None:
            flux = flux * self.optic.transmission(e0)
        return e0, flux


DEFAULT_INSTRUMENT = Instrument()


@dataclass
class Simulation:
    """An expected spectrum and its parts.

    Attributes
    ----------
    energy : (C,) keV
    expected : (C,) expected counts (all parts, pile-up applied)
    fluorescence, scatter : (C,) the parts before pile-up
    net : dict line family -> expected net counts (full-energy peaks)
    lines : list of (family, IUPAC line, energy keV, net counts)
    """

    energy: np.ndarray
    expected: np.ndarray
    fluorescence: np.ndarray
    scatter: np.ndarray
    net: dict[str, float]
    lines: list[tuple[str, str, float, float]]

    def family_spectrum(self, family: str, detector: Detector) -> np.ndarray:
        """Spectrum of one net count of ``family`` with this sample's own line ratios (matrix included)."""
        rows = [(e, n) for fam, _, e, n in self.lines if fam == family and n > 0]
        if not rows:
            raise XrayAtlasError(f"family={family!r} has no counts in this simulation")
        e = np.array([r[0] for r in rows])
        net = np.array([r[1] for r in rows])
        absorbed = net / detector.net_fraction(e)
        return detector.render(e, absorbed) / net.sum()

    def sample(self, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Poisson counts drawn from the expected spectrum."""
        rng = np.random.default_rng(rng)
        return rng.poisson(np.maximum(self.expected, 0)).astype(np.int64)


@lru_cache(maxsize=2048)
def line_cross_sections(z: int, grid: tuple[float, ...]) -> tuple[tuple[str, str, float, np.ndarray], ...]:
    """(family, IUPAC, energy, tau(E0) in cm^2/g) of every line of element z on the grid."""
    import xraylib

    e0 = np.asarray(grid)
    out = []
    for iupac, shell, macro in line_macros():
        try:
            energy = xraylib.LineEnergy(z, macro)
        except ValueError:
            continue
        if energy <= 0.9:
            continue
        tau = np.zeros(e0.size)
        for i, e in enumerate(e0):
            try:
                tau[i] = xraylib.CS_FluorLine_Kissel_Cascade(z, macro, float(e))
            except ValueError:
                tau[i] = 0.0
        if tau.any():
            out.append((shell[0], iupac, float(energy), tau))
    return tuple(out)


@lru_cache(maxsize=2048)
def _scatter_cross_sections(z: int, grid: tuple[float, ...], theta_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Rayleigh and Compton differential cross sections (cm^2/g/sr) on the grid, xraylib."""
    import xraylib

    ray = np.array([xraylib.DCS_Rayl(z, float(e), theta_rad) for e in grid])
    com = np.array([xraylib.DCS_Compt(z, float(e), theta_rad) for e in grid])
    return ray, com


def _stack(layers: list[Layer], geometry: Geometry) -> list[Layer]:
    if not layers:
        raise XrayAtlasError("layers: give at least one layer")
    for i, lay in enumerate(layers[:-1]):
        if lay.thickness_um is None:
            raise XrayAtlasError(f"layers[{i}] is infinitely thick but is not the last layer")
    air = [Layer(AIR, geometry.air_mm * 1000.0)] if geometry.air_mm > 0 else []
    return air + list(layers)


def simulate(
    layers: list[Layer] | Material,
    instrument: Instrument = DEFAULT_INSTRUMENT,
    *,
    scatter: bool = True,
    pileup: bool = True,
    secondary: bool = True,
) -> Simulation:
    """Expected spectrum of a layered sample.

    Parameters
    ----------
    layers : list of Layer, or Material
        Top to bottom; the last may be infinitely thick. A Material is one thick layer.
    instrument : Instrument
    scatter : bool
        Include Rayleigh and Compton scatter of the tube spectrum.
    pileup : bool
        Include sum peaks (detector ``pileup_time_s``).
    secondary : bool
        Include secondary fluorescence (lines of one element exciting another) within each
        layer (exact for thick layers; see the comment in the code for thin ones).
    """
    if isinstance(layers, Material):
        layers = [Layer(layers)]
    geo, det = instrument.geometry, instrument.detector
    stack = _stack(list(layers), geo)
    e0, flux = instrument.excitation()
    keep = e0 > 0.5
    e0, flux = e0[keep], flux[keep]
    grid = tuple(np.round(e0, 6))
    s_in, s_out = np.sin(np.radians(geo.incidence_deg)), np.sin(np.radians(geo.exit_deg))
    photons = flux * instrument.tube_de_kev * instrument.live_time_s * geo.intensity_scale  # per bin
    mu_in = [mass_attenuation(lay.material, e0) for lay in stack]

    def depth_factor(i: int, e1: np.ndarray | float, mu_out_layers: list[np.ndarray | float]) -> np.ndarray:
        """A_above * (1 - exp(-chi m)) / chi for layer i, emitted energy e1 (array over E0)."""
        chi = mu_in[i] / s_in + mu_out_layers[i] / s_out
        m = stack[i].mass_thickness
        layer = 1.0 / chi if np.isinf(m) else -np.expm1(-chi * m) / chi
        return _above(stack, i, mu_in, mu_out_layers, s_in, s_out) * layer

    # -- fluorescence -----------------------------------------------------------------
    per_line: dict[tuple[str, str], list] = {}
    for i, lay in enumerate(stack):
        for z, w in lay.material.fractions:
            if z < MIN_Z:
                continue
            for fam, iupac, energy, tau in line_cross_sections(z, grid):
                mu_out = [float(mass_attenuation(l.material, np.array([energy]))[0]) for l in stack]
                inten = float(np.sum(photons * w * tau / s_in * depth_factor(i, energy, mu_out)))
                if secondary and lay.material is not AIR:
                    # the semi-infinite solution; a finite layer keeps the share of it that its
                    # primary depth profile keeps (1 - exp(-chi m)): exact for thick layers,
                    # an approximation for thin ones (which lose excitation from neighbours)
                    chi = mu_in[i] / s_in + mu_out[i] / s_out
                    keep = 1.0 if np.isinf(lay.mass_thickness) else -np.expm1(-chi * lay.mass_thickness)
                    sec = _secondary_per_photon(lay.material, z, w, iupac, energy, grid, s_in, s_out)
                    inten += float(np.sum(photons * sec * keep * _above(stack, i, mu_in, mu_out, s_in, s_out)))
                key = (f"{symbol(z)}-{fam}", iupac)
                if key in per_line:
                    per_line[key][1] += inten
                else:
                    per_line[key] = [energy, inten]
    keys = list(per_line)
    energies = np.array([per_line[k][0] for k in keys])
    emitted = np.array([per_line[k][1] for k in keys])
    absorbed = emitted * det.efficiency(energies) if keys else emitted
    fluo = det.render(energies, absorbed) if keys else np.zeros(det.n_channels)
    net_lines = absorbed * det.net_fraction(energies) if keys else emitted
    net: dict[str, float] = {}
    lines = []
    for (fam, iupac), e, n in zip(keys, energies, net_lines):
        net[fam] = net.get(fam, 0.0) + float(n)
        lines.append((fam, iupac, float(e), float(n)))

    # -- scatter -------------------------------------------------------------------------
    scat = np.zeros(det.n_channels)
    if scatter:
        theta = np.radians(geo.scatter_deg)
        e_compton = e0 / (1 + (e0 / ELECTRON_KEV) * (1 - np.cos(theta)))
        ray_total = np.zeros_like(e0)
        com_total = np.zeros_like(e0)
        mu_com = [mass_attenuation(l.material, e_compton) for l in stack]
        for i, lay in enumerate(stack):
            dcs_r = np.zeros_like(e0)
            dcs_c = np.zeros_like(e0)
            for z, w in lay.material.fractions:
                r, c = _scatter_cross_sections(z, grid, float(theta))
                dcs_r += w * r
                dcs_c += w * c
            # 4 pi: the intensity scale holds Omega / (4 pi) for isotropic emission
            ray_total += photons * 4 * np.pi * dcs_r / s_in * depth_factor(i, e0, mu_in)
            com_total += photons * 4 * np.pi * dcs_c / s_in * depth_factor(i, e_compton, mu_com)
        hist = det.histogram(e0, ray_total * det.efficiency(e0))
        compton = det.histogram(e_compton, com_total * det.efficiency(e_compton))
        hist += _doppler_broaden(compton, det, geo.doppler)
        scat = det.render_histogram(hist)
    expected = fluo + scat
    if pileup:
        expected = det.pileup(expected, live_time_s=instrument.live_time_s)
    return Simulation(det.energy, expected, fluo, scat, net, lines)


def _above(stack: list[Layer], i: int, mu_in: list[np.ndarray], mu_out: list, s_in: float, s_out: float) -> np.ndarray:
    """exp(-sum over the layers above i of chi m), over the E0 grid."""
    total = np.zeros_like(mu_in[0])
    for j in range(i):
        total += (mu_in[j] / s_in + mu_out[j] / s_out) * stack[j].mass_thickness
    return np.exp(-total)


@lru_cache(maxsize=200000)
def _tau_at(z: int, iupac: str, energy: float) -> float:
    import xraylib

    try:
        return float(xraylib.CS_FluorLine_Kissel_Cascade(z, getattr(xraylib, f"{iupac}_LINE"), energy))
    except ValueError:
        return 0.0


@lru_cache(maxsize=256)
def _secondary_sources(material: Material, grid: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines of a material that can excite others: energies (S,), w tau(E0) (S, G), mu(E_j) (S,)."""
    energies, prod = [], []
    for z_j, w_j in material.fractions:
        if z_j < MIN_Z:
            continue
        for _, _, e_j, tau_j in line_cross_sections(z_j, grid):
            energies.append(e_j)
            prod.append(w_j * tau_j)
    if not energies:
        return np.zeros(0), np.zeros((0, len(grid))), np.zeros(0)
    e = np.array(energies)
    p = np.array(prod)
    keep = p.sum(axis=1) > 1e-6 * p.sum(axis=1).max()  # negligible sources out
    return e[keep], p[keep], mass_attenuation(material, e[keep])


@lru_cache(maxsize=50000)
def _secondary_per_photon(
    material: Material,
    z_i: int,
    w_i: float,
    iupac_i: str,
    e_i: float,
    grid: tuple[float, ...],
    s_in: float,
    s_out: float,
) -> np.ndarray:
    """Secondary fluorescence of line i in a semi-infinite homogeneous layer, per incident
    photon in each E0 bin.

    Every line j of the layer, produced by the primary beam at mass depth x, is absorbed at
    x' with the kernel (1/2) E1(mu_j |x - x'|) (isotropic emission); the double depth
    integral has the closed form
    (1 / (a + b)) [ln(1 + a / mu_j) / a + ln(1 + b / mu_j) / b], a = mu(E0) / sin psi_in,
    b = mu(E_i) / sin psi_out (Shiraiwa and Fujino, Jpn. J. Appl. Phys. 5, 886, 1966).
    """
    mu0 = mass_attenuation(material, np.asarray(grid))
    e_src, p_src, m_src = _secondary_sources(material, grid)
    sel = np.flatnonzero(e_src > e_i)
    if sel.size == 0:
        return np.zeros_like(mu0)
    t = np.array([_tau_at(z_i, iupac_i, round(float(e), 6)) for e in e_src[sel]])
    ok = t > 0
    if not ok.any():
        return np.zeros_like(mu0)
    sel, t = sel[ok], t[ok]
    a = (mu0 / s_in)[None, :]
    b = float(mass_attenuation(material, np.array([e_i]))[0]) / s_out
    m = m_src[sel][:, None]
    geom = (np.log1p(a / m) / a + np.log1p(b / m) / b) / (a + b)  # (S, G)
    return 0.5 * w_i / s_in * np.einsum("s,sg,sg->g", t, p_src[sel], geom)


def _doppler_broaden(hist: np.ndarray, det: Detector, doppler: float, bands: int = 8) -> np.ndarray:
    """Gaussian blur of sigma = doppler x E, applied band by band along the energy axis."""
    from scipy.ndimage import gaussian_filter1d

    if doppler <= 0 or not hist.any():
        return hist
    out = np.zeros_like(hist)
    edges = np.linspace(0, hist.size, bands + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        part = np.zeros_like(hist)
        part[a:b] = hist[a:b]
        centre = det.offset_kev + det.gain_kev * 0.5 * (a + b)
        out += gaussian_filter1d(part, max(doppler * max(centre, 0.1) / det.gain_kev, 0.1), mode="constant")
    return out


@lru_cache(maxsize=512)
def _pure(line: str, detector: Detector, instrument: Instrument) -> np.ndarray:
    from .lines import atomic_number, parse_line_family

    sym, fam = parse_line_family(line)
    z = atomic_number(sym)
    e0, flux = instrument.excitation(de=0.1)
    grid = tuple(np.round(e0, 6))
    rows = [(e, float(np.sum(flux * tau))) for f, _, e, tau in line_cross_sections(z, grid) if f == fam]
    if not rows:
        raise XrayAtlasError(
            f"line={line!r}: the excitation ({e0.max():g} keV at most) excites no {fam} lines of {sym}"
        )
    e = np.array([r[0] for r in rows])
    inten = np.array([r[1] for r in rows]) * detector.efficiency(e)
    absorbed = inten / inten.sum()
    spec = detector.render(e, absorbed)
    return spec / float(np.sum(absorbed * detector.net_fraction(e)))


def pure_spectrum(
    line: str, detector: Detector | None = None, *, tube: Tube | None = None, instrument: Instrument | None = None
) -> np.ndarray:
    """Detected spectrum of one net count of a line family (thin sample, no matrix).

    Line ratios follow the excitation (``instrument``, else ``tube``, else the default
    tube) and the detector's efficiency; escape peaks, tails and steps come with it. Used by
    the prior layer of the map models and by the least-squares baselines.
    """
    inst = instrument or Instrument(tube=tube or Tube())
    return _pure(line, detector or inst.detector, inst).copy()
