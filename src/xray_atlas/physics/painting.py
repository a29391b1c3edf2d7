"""Synthetic paintings: pigment layers over a ground, scanned pixel by pixel, with their truth.

A painting is a set of regions, each a stack of paint layers (pigments of
:data:`.materials.PIGMENTS`) over a common ground. Every region's spectrum comes from the
physics model (:func:`.spectra.simulate`: tube, matrix absorption, secondary fluorescence,
scatter, detector), computed at a few paint thicknesses; within a region the paint
thickness varies like brushwork and each pixel's expected spectrum and true net counts are
interpolated in thickness. Poisson counting at the pixel's dwell time gives the cube.

Layouts come from layered shapes (:func:`shapes_layout`) or from any grayscale image
(:func:`image_layout`), whose gray levels pick the pigments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import XrayAtlasError
from .lines import DEFAULT_MAP_LINES
from .materials import Material, compound, pigment
from .spectra import Instrument, Layer, simulate
from .tube import Tube

__all__ = [
    "Painting",
    "Region",
    "paint",
    "shapes_layout",
    "image_layout",
    "random_layout",
    "random_sample",
    "synthetic_painting",
    "painting_instrument",
    "SAMPLE_MATRICES",
]

#: Pigments a random layout paints with (grounds and metal leaf excepted).
PAINT_PIGMENTS = (
    "lead white",
    "vermilion",
    "azurite",
    "malachite",
    "yellow ochre",
    "red ochre",
    "raw umber",
    "zinc white",
    "chrome yellow",
    "smalt",
    "lead-tin yellow",
    "naples yellow",
    "cadmium yellow",
    "cadmium red",
    "titanium white",
    "ultramarine",
    "prussian blue",
    "cobalt blue",
    "emerald green",
    "orpiment",
    "bone black",
    "barium white",
    "bismuth white",
    "verdigris",
    "chromium oxide green",
    "lead red",
)


@dataclass(frozen=True)
class Region:
    """A region of a painting: paint layers (pigment name or a :class:`.materials.Material`,
    thickness in um), top first."""

    name: str
    layers: tuple[tuple[str | Material, float], ...]

    def __post_init__(self) -> None:
        for pig, t in self.layers:
            _material(pig)
            if not t > 0:
                raise XrayAtlasError(f"region {self.name!r}: layer {pig!r} needs a thickness > 0 um, got {t}")


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
    #: With ``paint(..., truth=True)``: ``expected`` (H, W, C) noise-free counts and
    #: ``family_spectra``, per region a dict family -> (C,) spectrum of one net count with the
    #: region's own line ratios (middle thickness): what a per-pixel limit fit may know.
    truth: dict | None = None

    @property
    def energy(self) -> np.ndarray:
        return self.energy_offset_kev + self.energy_gain_kev * np.arange(self.counts.shape[2])

    def write(self, path: str | os.PathLike, *, overwrite: bool = True) -> None:
        """Write the cube (docs/dev/contracts.md section 2) with ``/maps``, ``/regions`` and ``region_names``
        (an existing file is replaced only with ``overwrite``)."""
        from ..io.hdf5 import write_cube

        write_cube(
            path,
            self.counts,
            energy_offset_kev=self.energy_offset_kev,
            energy_gain_kev=self.energy_gain_kev,
            maps=self.maps,
            attrs={**self.attrs, "region_names": np.array(self.region_names, dtype="S")},
            extra={"regions": self.regions.astype(np.int32)},
            overwrite=overwrite,
        )


def painting_instrument(
    *,
    dwell_ms: float = 20.0,
    n_channels: int = 4096,
    gain_kev: float = 0.01,
    offset_kev: float = 0.0,
    fwhm_mnka_ev: float = 145.0,
    anode: str = "Rh",
    tube_kv: float = 50.0,
    optic: bool = True,
    scatter_deg: float = 90.0,
) -> Instrument:
    """A macro-XRF scanner, by default M6 Jetstream-like: Rh tube 50 kV 600 uA, polycapillary,
    145 eV SDD, ``dwell_ms`` per pixel. ``anode``, ``tube_kv``, ``optic`` and ``scatter_deg``
    describe another scanner as the instrument fit does (:func:`.reference.scanner`)."""
    from dataclasses import replace

    from .detector import Detector
    from .reference import scanner

    if not dwell_ms > 0:
        raise XrayAtlasError(f"dwell_ms={dwell_ms} must be > 0")
    det = Detector(
        n_channels=n_channels, gain_kev=gain_kev, offset_kev=offset_kev, fwhm_mnka_ev=fwhm_mnka_ev, step_height=3e-4
    )
    inst = replace(
        scanner(anode, tube_kv, det, optic=optic, scatter_deg=scatter_deg),
        tube=Tube(anode, tube_kv, current_ua=600.0),
        live_time_s=dwell_ms / 1000.0,
    )
    if not optic:
        return inst
    # the polycapillary's band pass lowers the count rate; keep ~150 kcps on lead white
    return replace(inst, geometry=replace(inst.geometry, intensity_scale=inst.geometry.intensity_scale * 1.9))


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, scale: float) -> np.ndarray:
    """Smooth random texture in [0, 1] (Gaussian-filtered white noise)."""
    from scipy.ndimage import gaussian_filter

    t = gaussian_filter(rng.standard_normal(shape), sigma=max(scale, 0.5), mode="wrap")
    t -= t.min()
    return t / max(t.max(), 1e-12)


def shapes_layout(height: int, width: int, *, seed: int = 0) -> tuple[np.ndarray, list[Region]]:
    """A small devotional panel: sky, a robe with a gold halo, an ochre ground strip, details.

    Returns the region index of each pixel and the regions (index 0 is bare ground with its
    lead-white priming).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    y, x = yy / height, xx / width
    regions = [
        Region("lead white priming", (("lead white", 30.0),)),
        Region("azurite sky", (("azurite", 40.0), ("lead white", 30.0))),
        Region("ochre foreground", (("yellow ochre", 50.0), ("lead white", 30.0))),
        Region("vermilion robe", (("vermilion", 25.0), ("lead white", 30.0))),
        Region("gold halo", (("gold leaf", 0.5), ("red ochre", 20.0))),
        Region(
            "malachite and lead-tin yellow sleeve",
            (("malachite", 30.0), ("lead-tin yellow", 15.0), ("lead white", 30.0)),
        ),
        Region("umber shadow", (("raw umber", 30.0), ("lead white", 30.0))),
        Region("zinc white retouching", (("zinc white", 20.0), ("vermilion", 25.0), ("lead white", 30.0))),
    ]
    reg = np.zeros((height, width), dtype=np.int32)
    wobble = 0.03 * np.sin(2 * np.pi * (x * 3 + rng.uniform()))
    reg[y < 0.35 + wobble] = 1
    reg[y > 0.82 + wobble] = 2
    cx = 0.5 + rng.uniform(-0.05, 0.05)
    robe = ((x - cx) / 0.22) ** 2 + ((y - 0.62) / 0.3) ** 2 < 1
    reg[robe] = 3
    reg[np.abs(np.hypot((x - cx) * width / height, y - 0.25) - 0.12) < 0.03] = 4
    reg[(np.abs(x - 0.15) < 0.07) & (np.abs(y - 0.6) < 0.12)] = 5
    reg[robe & (x > cx + 0.08) & (y > 0.7)] = 6
    reg[(np.abs(x - cx + 0.05) < 0.04) & (np.abs(y - 0.55) < 0.04)] = 7
    return reg, regions


def _material(layer: str | Material) -> Material:
    return pigment(layer) if isinstance(layer, str) else layer


#: Matrices of the random samples (:func:`random_sample`): mass fractions, density.
SAMPLE_MATRICES = {
    "organic": ({"C": 0.5, "O": 0.43, "H": 0.07}, 1.3),
    "carbonate": ({"Ca": 0.4, "C": 0.12, "O": 0.48}, 2.7),
    "gypsum": ({"Ca": 0.233, "S": 0.186, "O": 0.558, "H": 0.023}, 2.3),
    "apatite": ({"Ca": 0.399, "P": 0.185, "O": 0.414, "H": 0.002}, 3.1),
    "silicate": ({"Si": 0.22, "Al": 0.21, "O": 0.56, "H": 0.01}, 2.6),
}


def random_sample(rng: np.random.Generator, *, name: str = "sample") -> Material:
    """A material unlike paint: a random mixture of the :data:`SAMPLE_MATRICES` with one to
    eight elements of the physics engine's default set at 0.01-15 % by mass (log-uniform), as
    bone, stone, plaster, soil or a glaze residue present themselves to an XRF scanner."""
    from .generator import DEFAULT_ELEMENTS

    keys = list(SAMPLE_MATRICES)
    picks = rng.choice(len(keys), size=int(rng.integers(1, 3)), replace=False)
    weights = rng.dirichlet(np.ones(picks.size))
    fr: dict[str, float] = {}
    density = 0.0
    for k, w in zip(picks, weights):
        comp, rho = SAMPLE_MATRICES[keys[k]]
        density += w * rho
        for sym, f in comp.items():
            fr[sym] = fr.get(sym, 0.0) + w * f
    elements = [e for e in DEFAULT_ELEMENTS if e != "Ar"]  # argon is the air's, never the sample's
    traces = rng.choice(len(elements), size=int(rng.integers(1, 9)), replace=False)
    amounts = np.exp(rng.uniform(np.log(1e-4), np.log(0.15), traces.size))
    amounts *= min(1.0, 0.5 / amounts.sum())
    scale = 1.0 - amounts.sum()
    fr = {k: v * scale for k, v in fr.items()}
    for j, a in zip(traces, amounts):
        fr[elements[j]] = fr.get(elements[j], 0.0) + float(a)
    label = f"{name}: " + ", ".join(f"{elements[j]} {a:.2%}" for j, a in zip(traces, amounts))
    return compound(fr, density=density, name=label)


def random_layout(
    height: int,
    width: int,
    *,
    seed: int = 0,
    n_regions: tuple[int, int] = (4, 8),
    wash_share: float = 0.0,
    sample_share: float = 0.0,
) -> tuple[np.ndarray, list[Region]]:
    """Blobs of random paint: 4-8 regions (the arg-max of smooth random fields), each one or
    two layers of random pigments, 5-60 um thick, over a lead-white priming or straight on the
    ground. For training and held-out evaluation paintings that share no layout.

    A ``wash_share`` of the regions are instead washes: one to three pigments 0.05-2 um thick
    straight on the ground, whose elements show as traces on a spectrum the ground dominates
    (an abraded passage, a glaze, a sample that is not a painting at all). A ``sample_share``
    are a thick :func:`random_sample` instead (what the ground is then does not matter)."""
    for name, share in (("wash_share", wash_share), ("sample_share", sample_share)):
        if not 0.0 <= share <= 1.0:
            raise XrayAtlasError(f"{name}={share} must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    k = int(rng.integers(n_regions[0], n_regions[1] + 1))
    fields = np.stack(
        [_smooth_noise((height, width), rng, scale=max(height, width) / rng.uniform(6, 14)) for _ in range(k)]
    )
    reg = np.argmax(fields, axis=0).astype(np.int32)
    regions = []
    for i in range(k):
        if sample_share and rng.random() < sample_share:
            mat = random_sample(rng, name=f"region {i}")
            regions.append(Region(mat.name, ((mat, 3000.0),)))
            continue
        if wash_share and rng.random() < wash_share:
            picks = rng.choice(len(PAINT_PIGMENTS), size=int(rng.integers(1, 4)), replace=False)
            layers = [(PAINT_PIGMENTS[j], float(np.exp(rng.uniform(np.log(0.05), np.log(2.0))))) for j in picks]
            regions.append(Region(f"region {i}: wash of " + ", ".join(p for p, _ in layers), tuple(layers)))
            continue
        n_layers = int(rng.integers(1, 3))
        picks = rng.choice(len(PAINT_PIGMENTS), size=n_layers, replace=False)
        layers = [(PAINT_PIGMENTS[j], float(rng.uniform(5, 60))) for j in picks]
        if rng.random() < 0.7 and "lead white" not in [p for p, _ in layers]:
            layers.append(("lead white", 30.0))
        regions.append(Region(f"region {i}: " + " over ".join(p for p, _ in layers), tuple(layers)))
    return reg, regions


def image_layout(image: np.ndarray, pigments: list[str] | None = None) -> tuple[np.ndarray, list[Region]]:
    """Regions from a grayscale image: gray levels split into as many bands as ``pigments``.

    Each band is painted with one pigment (30 um) over lead white; the darkest band gets the
    first pigment.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=-1)
    if img.ndim != 2 or min(img.shape) < 2:
        raise XrayAtlasError(f"image must be a 2-D grayscale (or RGB) picture, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise XrayAtlasError("image contains NaN or infinite values")
    pigments = pigments or ["raw umber", "vermilion", "azurite", "yellow ochre", "lead white"]
    edges = np.quantile(img, np.linspace(0, 1, len(pigments) + 1)[1:-1])
    reg = np.searchsorted(edges, img, side="right").astype(np.int32)
    regions = [Region(p, ((p, 30.0), ("lead white", 30.0)) if p != "lead white" else ((p, 60.0),)) for p in pigments]
    return reg, regions


def paint(
    regions_map: np.ndarray,
    regions: list[Region],
    *,
    instrument: Instrument | None = None,
    ground: str = "chalk ground",
    thickness_variation: float = 0.35,
    seed: int = 0,
    title: str = "Synthetic painting",
    truth: bool = False,
    pixel_size_um: float = 500.0,
) -> Painting:
    """Scan a painting: expected spectra from the physics model, then Poisson counts.

    Parameters
    ----------
    regions_map : (H, W) int
        Index into ``regions`` per pixel.
    regions : list of Region
    instrument : Instrument, optional
        Default :func:`painting_instrument` (M6-like, 20 ms per pixel).
    ground : str
        Pigment of the (infinitely thick) ground under every region.
    thickness_variation : float
        Relative spread of the paint thickness (brushwork), 0-0.9.
    seed : int
    truth : bool
        Keep the noise-free cube and the regions' family spectra (:attr:`Painting.truth`).
    pixel_size_um : float
        Scan step, written as the file's ``pixel_size_um``; 500 um is a macro-XRF scan of a
        whole painting (the M6's spot is about 100 um, its steps 100-1000 um).
    """
    from .generator import poisson

    reg = np.asarray(regions_map)
    if reg.ndim != 2 or reg.dtype.kind not in "iu":
        raise XrayAtlasError(f"regions_map must be a 2-D integer array, got {reg.dtype} {reg.shape}")
    if reg.size and (reg.min() < 0 or reg.max() >= len(regions)):
        raise XrayAtlasError(f"regions_map holds indices {reg.min()}-{reg.max()} but there are {len(regions)} regions")
    if not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise XrayAtlasError(f"pixel_size_um={pixel_size_um} must be a positive number of micrometres")
    if not (0 <= thickness_variation < 0.9):
        raise XrayAtlasError(f"thickness_variation={thickness_variation} must lie in [0, 0.9)")
    inst = instrument or painting_instrument()
    ground_layer = Layer(pigment(ground))
    rng = np.random.default_rng(seed)
    h, w = reg.shape
    c = inst.detector.n_channels
    # brushwork: smooth thickness texture in [1 - v, 1 + v], and a mild dose texture
    tex = 1 + thickness_variation * (2 * _smooth_noise((h, w), rng, scale=max(h, w) / 40) - 1)
    factors = np.array([1 - thickness_variation, 1.0, 1 + thickness_variation])
    expected = np.empty((h, w, c), np.float32)
    lines = set(DEFAULT_MAP_LINES)
    sims = []
    for region in regions:
        per_t = []
        for f in factors:
            stack = [Layer(_material(p), t * f) for p, t in region.layers] + [ground_layer]
            per_t.append(simulate(stack, inst))
        sims.append(per_t)
        for s in per_t:
            lines |= {k for k, v in s.net.items() if v > 0.05}
    lines = sorted(lines)
    # per pixel: which of the region's three thicknesses bracket its texture, and the weight
    n_t = factors.size
    t = tex.ravel()
    hi = (t > 1).astype(np.int64) + 1
    lo = hi - 1
    wgt = ((t - factors[lo]) / (factors[hi] - factors[lo])).astype(np.float32)
    row_lo = reg.ravel() * n_t + lo
    row_hi = reg.ravel() * n_t + hi
    table = np.stack([s.expected for per_t in sims for s in per_t]).astype(np.float32)  # (R * 3, C)
    flat_exp = expected.reshape(-1, c)
    for a in range(0, flat_exp.shape[0], 1024):  # blocks keep the temporaries small
        sl = slice(a, a + 1024)
        flat_exp[sl] = table[row_lo[sl]] * (1 - wgt[sl, None]) + table[row_hi[sl]] * wgt[sl, None]
    maps = {}
    for line in lines:
        v = np.array([s.net.get(line, 0.0) for per_t in sims for s in per_t])
        maps[line] = (v[row_lo] * (1 - wgt) + v[row_hi] * wgt).reshape(h, w).astype(np.float32)
    flat = expected.reshape(-1, c)
    counts = np.empty(flat.shape, np.float32)
    for a in range(0, flat.shape[0], 256):  # cache-sized blocks: 4x faster than one big draw
        counts[a : a + 256] = poisson(flat[a : a + 256], rng)
    counts = counts.reshape(expected.shape)
    if counts.max() > np.iinfo(np.uint16).max:
        raise XrayAtlasError("counts exceed uint16; lower the dwell time")
    det = inst.detector
    attrs = {
        "tube_kv": float(inst.tube.kv),
        "tube_ua": float(inst.tube.current_ua),
        "anode": inst.tube.anode,
        "live_time_s": float(inst.live_time_s),
        "fwhm_mnka_ev": float(det.fwhm_mnka_ev),
        "title": title,
        "region_layers": repr([(r.name, r.layers) for r in regions]),
        "ground": ground,
        "pixel_size_um": float(pixel_size_um),
    }
    kept = None
    if truth:
        fams = [
            {f: per_t[1].family_spectrum(f, det).astype(np.float32) for f, v in per_t[1].net.items() if v > 0}
            for per_t in sims
        ]
        kept = {"expected": expected, "family_spectra": fams}
    return Painting(
        counts.astype(np.uint16),
        float(det.offset_kev),
        float(det.gain_kev),
        maps,
        reg.astype(np.int32),
        [r.name for r in regions],
        attrs,
        kept,
    )


def synthetic_painting(
    height: int = 96,
    width: int = 128,
    *,
    seed: int = 0,
    dwell_ms: float = 20.0,
    image: np.ndarray | None = None,
    n_channels: int = 4096,
    layout: str = "shapes",
    ground: str = "chalk ground",
    truth: bool = False,
) -> Painting:
    """The default synthetic painting (``layout="shapes"``), blobs of random paint
    (``layout="random"``), or one laid out from ``image`` (then ``height`` and ``width``
    follow the image)."""
    for name, v in (("height", height), ("width", width)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise XrayAtlasError(f"{name}={v!r} must be a positive integer")
    if layout not in ("shapes", "random"):
        raise XrayAtlasError(f"layout={layout!r}; choose shapes or random")
    if not isinstance(n_channels, (int, np.integer)) or not 16 <= n_channels <= 65536:
        raise XrayAtlasError(f"n_channels={n_channels!r} must be a whole number in [16, 65536]")
    from ..devices import check_memory

    h, w = np.shape(image)[:2] if image is not None else (height, width)
    # float64 counts, expected counts and a Poisson draw of the whole cube at once
    check_memory(3 * 8.0 * h * w * n_channels, f"a {h} x {w} x {n_channels} painting (height, width, channels)")
    inst = painting_instrument(dwell_ms=dwell_ms, n_channels=n_channels)
    if image is not None:
        reg, regions = image_layout(image)
    elif layout == "random":
        reg, regions = random_layout(height, width, seed=seed)
    else:
        reg, regions = shapes_layout(height, width, seed=seed)
    return paint(reg, regions, instrument=inst, seed=seed, ground=ground, truth=truth)
