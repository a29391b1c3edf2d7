"""Make the radiograph classifier fit the user's instrument, from a handful of labelled images.

At one tube voltage a plate's attenuation level encodes both its alloy and its thickness, and
only for the exact beam (docs/images.md): a model trained for 50 kV behind 0.5 mm Al calls
every 1 and 5 mm Al 1050 plate Al 2017 on a 45 or 55 kV beam. Here the beam is fitted to the
user's own labelled radiographs, and a model trained for that beam.

1. :func:`measure_radiograph`: each reference image's open-beam-normalised levels (-ln I/I0):
   a plate's interior median; a wedge's median level, which stands for half its height
   (the study's objects: plates of 1, 2 or 5 mm, a 7 cm wedge rising to 10 mm;
   docs/dev/contracts.md section 6); :func:`measure_detector`: the detector's quantum noise
   and blur, from how the open beam's noise varies with the distance between pixels.
2. :func:`fit_radiograph_instrument`: the tube voltage and aluminium filtration whose levels
   (:func:`~xray_atlas.physics.radiograph.attenuation_levels`) best match the measured ones
   for each image's known alloy, on a grid, then refined.
3. :func:`adapt_images`: a model of the base model's recipe trained on synthetic radiographs
   of the fitted beam and detector, checked on the reference images, written with the instrument in its card.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import XrayAtlasError

__all__ = [
    "ReferenceImage",
    "RadiographInstrument",
    "AdaptedImageModel",
    "ImageAdaptationPlan",
    "read_references",
    "measure_radiograph",
    "measure_detector",
    "fit_radiograph_instrument",
    "predicted_levels",
    "plan_image_adaptation",
    "finish_image_adaptation",
    "adapt_images",
]

#: The study's objects (docs/dev/contracts.md section 6).
PLATE_MM = (1.0, 2.0, 5.0)
WEDGE_MAX_MM = 10.0
#: A wedge is read at its median level: the inner band of the object that is read (clear of
#: the blurred edges) is trimmed alike at both ends of the ramp, so its median stands for half
#: the wedge's height, plus half the thickness lost at the thin end below the object's edge
#: level (other shares move with the pixel size: a fifth from the thick end read 2-5 % low).
#: The ranges searched (a lab W tube; no filter up to 4 mm Al).
KV_RANGE = (30.0, 120.0)
FILTER_RANGE = (0.0, 4.0)


@dataclass(frozen=True)
class ReferenceImage:
    """One labelled radiograph of the user's instrument and what was read off it."""

    path: Path
    label: str
    kind: str  # "plate" or "wedge"
    levels: tuple[float, ...]  # -ln(I / I0): a plate's or a wedge's median level
    edge_level: float  # the level from which pixels count as the object
    side_px: float = 0.0  # sqrt(height x width)
    photons: float | None = None  # the detector's, when :func:`measure_detector` could read it
    blur_px: float | None = None


@dataclass(frozen=True)
class RadiographInstrument:
    """A fitted beam: W tube voltage and aluminium filtration (the scintillator is taken as
    given, from the base model's recipe), with the fit's mean absolute residual in ln(level);
    and the detector: the median open-beam photons per pixel over the ``detector_images``
    references where the noise could be read, and the median blur (pixels of the references)
    over the ``blur_images`` where the blur could be (from the noise, or from the edge where
    the noise is hidden); None: none."""

    kv: float
    filter_al_mm: float
    scintillator_um: float
    residual: float
    n_images: int
    photons: float | None = None
    blur_px: float | None = None
    detector_images: int = 0
    blur_images: int = 0

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class AdaptedImageModel:
    """What :func:`adapt_images` made: the model file, the fitted beam, and the accuracy on the
    reference images of the adapted model and of the base model."""

    path: Path
    instrument: RadiographInstrument
    reference_accuracy: float
    base_accuracy: float
    notes: list[str] = field(default_factory=list)


def read_references(folder: str | os.PathLike) -> list[tuple[Path, str, np.ndarray]]:
    """The labelled images of ``folder``: ``<class>/<image>`` for the classes Al1050 and Al2017.

    Raises
    ------
    XrayAtlasError
        Naming the folder or file: no such folder, fewer than two classes, a class that is not
        an alloy the classifier knows, a class without images, an unreadable image.
    """
    from ..io.images import IMAGE_SUFFIXES, read_image
    from ..physics.radiograph import ALLOYS

    root = Path(os.fspath(folder))
    if not root.is_dir():
        raise XrayAtlasError("reference folder not found", path=root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise XrayAtlasError(
            f"needs a subfolder per class ({' and '.join(ALLOYS)}) holding its images; found "
            f"{len(classes)} class folder{'s' if len(classes) != 1 else ''}",
            path=root,
        )
    unknown = [c for c in classes if c not in ALLOYS]
    if unknown:
        raise XrayAtlasError(f"class folder {unknown[0]!r} is not one of {', '.join(ALLOYS)}", path=root)
    out = []
    for label in classes:
        files = sorted(
            p for p in (root / label).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise XrayAtlasError(f"no images in class folder {label!r}", path=root / label)
        for path in files:
            img = read_image(path)
            if img.ndim != 2:
                raise XrayAtlasError(f"a radiograph must be one grey image; this one has shape {img.shape}", path=path)
            out.append((path, label, img))
    return out


def measure_radiograph(image: np.ndarray, *, path: str | os.PathLike = "image", label: str = "") -> ReferenceImage:
    """Read a plate's or wedge's attenuation level off an image with open beam around the object."""
    from scipy.ndimage import binary_dilation, distance_transform_edt
    from skimage.filters import threshold_otsu

    from ..physics.radiograph import open_beam_log

    raw = np.asarray(image, dtype=np.float64)
    level = open_beam_log(raw).astype(np.float64)
    if float(np.ptp(level)) < 0.05:
        raise XrayAtlasError("no object in the open beam (the image is nearly uniform)", path=path)
    background = level < threshold_otsu(level)
    spread = _robust_sigma(level[background])  # noise and the beam's unevenness
    # the object: everything clearly above the open beam's noise, its largest connected part
    edge = max(0.02, 5 * spread)
    obj = _largest_part(level > edge)
    if not obj.any():
        raise XrayAtlasError("no object in the open beam", path=path)
    # keep the blurred edges out: the open beam is up to 50x brighter than the object, so even
    # 2 % of it leaking in at 2 sigma of the blur lowers a level by 6 %: only the inner half of
    # the object is read, at least 4 pixels in
    depth = distance_transform_edt(obj)
    interior = depth >= max(4.0, 0.5 * float(depth.max()))
    # the open beam behind the object: a quadratic surface fitted to the intensity around it
    # (a tube's heel effect and the distance make it uneven by several per cent)
    clear = ~binary_dilation(obj, iterations=3)  # clear of the object's blurred edge
    open_beam = _open_beam_surface(raw, clear)[interior]
    if np.any(open_beam <= 0):
        raise XrayAtlasError("cannot find the open beam around the object", path=path)
    values = np.sort(-np.log(np.maximum(raw[interior], 1e-12) / open_beam))
    if values.size < 25:
        raise XrayAtlasError("the object is too small to read its level (under 25 pixels inside)", path=path)
    q25, q50, q75 = np.quantile(values, (0.25, 0.5, 0.75))
    # a plate is flat inside; a wedge's quartiles lie at about 2.5 and 7.5 mm (ratio ~0.4)
    if q25 > 0.8 * q75:
        kind, levels = "plate", (float(q50),)
    else:
        kind = "wedge"
        levels = (float(q50),)
    photons, blur = measure_detector(image)
    side = float(np.sqrt(raw.shape[0] * raw.shape[1]))
    return ReferenceImage(Path(os.fspath(path)), label, kind, levels, edge, side, photons, blur)


#: Lags (pixels) of the open beam's variogram, and the blurs (Gaussian sigma, pixels) tried.
LAGS = (1, 2, 3, 4, 6, 8, 12)
BLURS = np.round(np.arange(0.0, 6.0 + 1e-9, 0.05), 2)


@cache
def _unit_variogram(sigma: float) -> np.ndarray:
    """Half the mean squared difference of pixels ``LAGS`` apart along a row, for white noise of
    unit variance blurred by scipy.ndimage.gaussian_filter(sigma) (as the physics engine and a
    scintillator's light spread blur it): s0 (s0 - s_d), s_d the 1-D kernel's autocorrelation."""
    if sigma <= 0:
        k = np.ones(1)
    else:
        x = np.arange(-int(4.0 * sigma + 0.5), int(4.0 * sigma + 0.5) + 1)
        k = np.exp(-0.5 * (x / sigma) ** 2)
        k /= k.sum()
    s = [float(np.sum(k[d:] * k[: k.size - d])) if d < k.size else 0.0 for d in range(max(LAGS) + 1)]
    return np.array([s[0] * (s[0] - s[d]) for d in LAGS])


def _robust_sigma(x: np.ndarray) -> float:
    """The standard deviation of Gaussian values, from their median absolute deviation."""
    return 1.4826 * float(np.median(np.abs(x - np.median(x))))


def _largest_part(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of ``mask`` (all False if it has none)."""
    from skimage.measure import label as connected

    parts = connected(mask)
    if parts.max() == 0:
        return np.zeros(mask.shape, bool)
    return parts == np.argmax(np.bincount(parts.ravel())[1:]) + 1


def _open_beam_surface(raw: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """The open beam behind the whole image: a quadratic surface fitted to the ``clear``
    pixels' intensity (a tube's heel effect and the distance make it uneven by several per cent)."""
    yy, xx = np.mgrid[0 : raw.shape[0], 0 : raw.shape[1]] / max(raw.shape)
    basis = np.stack([np.ones_like(yy), yy, xx, yy * yy, xx * xx, yy * xx], axis=-1)
    coef, *_ = np.linalg.lstsq(basis[clear], raw[clear], rcond=None)
    return basis @ coef


def measure_detector(image: np.ndarray) -> tuple[float | None, float | None]:
    """The detector's quantum noise and blur, read off the open beam around the object.

    Blurred quantum noise is correlated over a few pixels: the mean squared difference between
    pixels ``d`` apart grows with ``d`` as the blur kernel sets, and its level is set by the
    number of photons. Both are fitted to the open beam's variogram (after the beam's smooth
    unevenness is removed), with an integer image's rounding (1/12 grey level squared) added.

    Returns
    -------
    photons : float or None
        Open-beam photons per pixel that give the noise measured before the blur: the relative
        variance of the unblurred noise is ``1 / photons``.
    blur_px : float or None
        Gaussian sigma of the blur in pixels (0-6; under ~0.4 px it barely correlates
        neighbours and reads as 0-0.4).

    Where the noise is hidden under one grey level (8-bit images of a quiet detector), the
    photons are None and the blur is read off the object's edge instead (:func:`_edge_blur`).
    Both are None with too little open beam (under 500 pixels clear of the object) or a blur
    beyond the 6 px searched.

    Only blur after the quantum noise (the scintillator's) is seen in the noise; a focal
    spot's blur, which blurs the object but not the noise, is not (the edge sees both).
    """
    from scipy.ndimage import binary_dilation, binary_erosion, uniform_filter
    from skimage.filters import threshold_otsu

    from ..physics.radiograph import open_beam_log

    raw = np.asarray(image, dtype=np.float64)
    level = open_beam_log(raw).astype(np.float64)
    # the object and everything it touches, a wedge's thin end included: what stands above the
    # open beam's noise once smoothed over 5 x 5 pixels
    smooth = uniform_filter(level, 5)
    background = smooth[level < threshold_otsu(level)] if np.ptp(level) > 0 else smooth.ravel()
    obj = _largest_part(smooth > np.median(background) + 5 * _robust_sigma(background) + 1e-9)
    # clear of the object's blurred edge (up to 3 sigma of a 4 px blur) and of the image's border
    clear = binary_erosion(~binary_dilation(obj, iterations=12), iterations=2, border_value=0)
    if clear.sum() < 500:
        return None, None
    beam = _open_beam_surface(raw, clear)
    grey = float(np.median(beam[clear]))  # the open beam's level, in the image's units
    if not grey > 0:
        return None, None
    relative = raw / np.where(clear, beam, grey) - 1.0
    # integer grey levels, whatever the type they were read as (PNG and TIFF read as float32)
    integer = bool(np.all(raw[clear] == np.round(raw[clear])))
    step = 1.0 / grey if integer else 0.0  # one grey level, relative to the open beam
    gamma = []
    for d in LAGS:
        diffs = []
        for axis in (0, 1):
            r, m = np.moveaxis(relative, axis, 0), np.moveaxis(clear, axis, 0)
            diffs.append((r[d:] - r[:-d])[m[d:] & m[:-d]])
        diff = np.concatenate(diffs)
        # what is left of the object or of dust: differences far beyond the noise
        keep = np.abs(diff) <= max(6 * _robust_sigma(diff), 3 * step, 1e-12)
        gamma.append(0.5 * float(np.mean(diff[keep] ** 2)))
    gamma = np.asarray(gamma)
    if integer and np.sqrt(gamma[-1]) < step:  # noise under one grey level: rounding hides it
        return None, _edge_blur(raw, level, beam, clear)
    rounding = step**2 / 12
    weight = 1.0 / np.maximum(gamma, 1e-30)  # each lag's relative misfit
    best = (np.inf, 0.0, 0.0)
    for sigma in BLURS:
        unit = _unit_variogram(float(sigma))
        variance = max(float(np.sum(weight**2 * unit * (gamma - rounding)) / np.sum(weight**2 * unit**2)), 0.0)
        misfit = float(np.sum((weight * (gamma - rounding - variance * unit)) ** 2))
        if misfit < best[0]:
            best = (misfit, float(sigma), variance)
    _, sigma, variance = best
    if not variance > 0 or sigma >= BLURS[-1]:  # no noise left, or a blur beyond what is tried
        return None, None
    return 1.0 / variance, sigma


def _edge_blur(raw: np.ndarray, level: np.ndarray, beam: np.ndarray, clear: np.ndarray) -> float | None:
    """The blur (Gaussian sigma, pixels) read off the object's edge: the edge-spread function.

    The object is where the 3 x 3-smoothed level stands above Otsu's threshold; every pixel
    within 10 px of its outline gets its signed distance to it (-0.5 and +0.5 on either side),
    and the image over the open beam, averaged in 0.05 px bins of that distance, is fitted by
    a step blurred by a Gaussian (two levels by least squares, the blur and the step's
    position, within 1.5 px of the outline, on grids). Pixels within 8 px of the image's border
    are left out. On the physics engine's plates and wedges (128 px, 8-bit and float) it read
    blurs of 0.8-4 px within 0.3 px and 0.3 px as 0.4-0.6 (benchmarks/eval_detector_reading.py).
    None without a clear edge: under 200 object pixels, or the best blur on the grid's end.
    """
    from scipy.ndimage import distance_transform_edt, uniform_filter
    from scipy.special import ndtr
    from skimage.filters import threshold_otsu

    smooth = uniform_filter(level, 3)
    if not np.ptp(smooth) > 0:
        return None
    obj = _largest_part(smooth > threshold_otsu(smooth))
    if obj.sum() < 200 or not clear.any():
        return None
    rel = raw / np.where(clear, beam, np.median(beam[clear]))
    signed = np.where(obj, 0.5 - distance_transform_edt(obj), distance_transform_edt(~obj) - 0.5)
    inner = np.zeros_like(obj)
    inner[8:-8, 8:-8] = True
    near = inner & (np.abs(signed) <= 10)
    if near.sum() < 100:
        return None
    bins, where = np.unique(np.round(signed[near] / 0.05).astype(np.int64), return_inverse=True)
    weight = np.bincount(where).astype(np.float64)
    profile = np.bincount(where, weights=rel[near]) / weight
    d = bins * 0.05
    root_w = np.sqrt(weight)  # each bin weighted by its pixels
    target = profile * root_w
    best = (np.inf, None)
    for sigma in np.arange(0.2, 6.0 + 1e-9, 0.1):
        for shift in np.arange(-1.5, 1.5 + 1e-9, 0.1):
            step = ndtr((d - shift) / sigma)
            a = np.stack([root_w, step * root_w], axis=1)
            coef = np.linalg.lstsq(a, target, rcond=None)[0]
            misfit = float(np.sum((a @ coef - target) ** 2))
            if misfit < best[0]:
                best = (misfit, float(sigma))
    sigma = best[1]
    return None if sigma is None or sigma >= 6.0 - 1e-9 else round(sigma, 2)


#: Dark offsets (share of the open beam) a level may carry: an image that is not
#: flat-fielded keeps its detector's dark signal, which lowers the high levels most.
DARK = np.linspace(0.0, 0.02, 5)


def predicted_levels(
    refs: list[ReferenceImage], *, kv: float, filter_al_mm: float, scintillator_um: float = 150.0
) -> np.ndarray:
    """The level each reference image would read under this beam: a plate at the nearest of
    the study's thicknesses for its alloy, a wedge at its median, each with the dark offset
    (0-2 % of the open beam) that brings it nearest to the measured level."""
    from ..physics.radiograph import attenuation_levels

    half = WEDGE_MAX_MM / 2
    table = attenuation_levels(
        [*PLATE_MM, half - 0.5, half, half + 0.5],
        kv=kv,
        filter_al_mm=filter_al_mm,
        scintillator_um=scintillator_um,
    )
    n = len(PLATE_MM)
    out = []
    for ref in refs:
        levels = table[ref.label]
        if ref.kind == "wedge":  # its median, shifted by half the thin end lost below the edge level
            lost = ref.edge_level / levels[0] * PLATE_MM[0]  # mm, on the 1 mm plate's slope
            levels = np.array([levels[n + 1] + 0.5 * lost * (levels[n + 2] - levels[n])])
        else:
            levels = levels[:n]
        t = np.exp(-levels)[:, None]
        candidates = -np.log((t + DARK) / (1 + DARK)).ravel()  # (levels x dark offsets)
        out.append(candidates[np.argmin(np.abs(np.log(candidates) - np.log(ref.levels[0])))])
    return np.asarray(out)


def _misfit(refs: list[ReferenceImage], kv: float, filter_al_mm: float, scintillator_um: float) -> float:
    """Mean absolute ln(measured / predicted level) over the references."""
    predicted = predicted_levels(refs, kv=kv, filter_al_mm=filter_al_mm, scintillator_um=scintillator_um)
    return float(np.mean(np.abs(np.log([r.levels[0] for r in refs]) - np.log(predicted))))


def fit_radiograph_instrument(
    refs: list[ReferenceImage],
    *,
    scintillator_um: float = 150.0,
    kv_range: tuple[float, float] = KV_RANGE,
    filter_range: tuple[float, float] = FILTER_RANGE,
) -> RadiographInstrument:
    """The W-tube voltage and aluminium filtration whose attenuation levels best match
    ``refs`` (a grid of 2.5 kV by 0.25 mm, then 0.5 kV by 0.05 mm around its best point).

    Voltage and filtration both harden the beam, so different pairs can fit equally well:
    any of them reproduces the levels, which is what tells the alloys apart.
    """
    if not refs:
        raise XrayAtlasError("refs: no reference images")
    kvs = np.arange(kv_range[0], kv_range[1] + 1e-9, 2.5)
    filters = np.arange(filter_range[0], filter_range[1] + 1e-9, 0.25)
    best = min((_misfit(refs, kv, f, scintillator_um), kv, f) for kv in kvs for f in filters)
    _, kv0, f0 = best
    kvs = np.arange(max(kv_range[0], kv0 - 2.5), min(kv_range[1], kv0 + 2.5) + 1e-9, 0.5)
    filters = np.arange(max(filter_range[0], f0 - 0.25), min(filter_range[1], f0 + 0.25) + 1e-9, 0.05)
    residual, kv, f = min((_misfit(refs, kv, f, scintillator_um), kv, f) for kv in kvs for f in filters)
    read = [r.photons for r in refs if r.photons is not None]
    blurs = [r.blur_px for r in refs if r.blur_px is not None]
    return RadiographInstrument(
        kv=float(kv),
        filter_al_mm=round(float(f), 3),
        scintillator_um=float(scintillator_um),
        residual=float(residual),
        n_images=len(refs),
        photons=float(np.median(read)) if read else None,
        blur_px=float(np.median(blurs)) if blurs else None,
        detector_images=len(read),
        blur_images=len(blurs),
    )


#: Synthetic images trained on by default, and for a detector read under
#: ``N_IMAGES_NOISY_BELOW`` open-beam photons per pixel of the training frame (docs/adapt.md).
N_IMAGES = 3000
N_IMAGES_NOISY = 6000
N_IMAGES_NOISY_BELOW = 1000.0

#: Margins around the detector's readings for the training images, beyond the lowest and the
#: highest reading: on the physics engine's own float and 16-bit images (50-50,000 photons,
#: 0.3-4 px; benchmarks/eval_detector_reading.py) the median reading of 6 images was within
#: 0.82-1.38 x of the photons and 0.52 px of the blur (a 4 px blur reads 3.5-3.8).
PHOTON_MARGIN = 1.5
BLUR_MARGIN_PX = 0.3


def _detector_ranges(
    refs: list[ReferenceImage], frame: int
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """The open-beam photons and the blur of the training images (simulated ``frame`` pixels
    wide) that cover the references' detector readings; each None when fewer than a third of
    the references (and fewer than 2) could be read for it. A reference ``side_px`` wide is
    brought to the frame's scale: a pixel of the frame holds (side / frame)^2 of its pixels'
    photons, and its blur shrinks by frame / side."""

    def enough(n: int) -> bool:
        return n >= max(2, len(refs) / 3)

    photons = [r.photons * (r.side_px / frame) ** 2 for r in refs if r.photons is not None and r.side_px > 0]
    blurs = [r.blur_px * frame / r.side_px for r in refs if r.blur_px is not None and r.side_px > 0]
    return (
        (max(min(photons) / PHOTON_MARGIN, 10.0), max(photons) * PHOTON_MARGIN) if enough(len(photons)) else None,
        (max(min(blurs) - BLUR_MARGIN_PX, 0.0), max(blurs) + BLUR_MARGIN_PX) if enough(len(blurs)) else None,
    )


def _accuracy(model: Any, refs: list[tuple[Path, str, np.ndarray]]) -> float:
    probs = model([img for _, _, img in refs])
    predicted = [model.classes[int(i)] for i in np.argmax(probs, axis=1)]
    return float(np.mean([p == label for p, (_, label, _) in zip(predicted, refs)]))


@dataclass(frozen=True)
class ImageAdaptationPlan:
    """What :func:`plan_image_adaptation` found: the references, the fitted beam, and the
    training run that makes a model for it (run it with :func:`xray_atlas.training.train`, or
    in a child process as the napari dock does, then :func:`finish_image_adaptation`)."""

    references: Path
    images: list[tuple[Path, str, np.ndarray]] = field(repr=False)
    instrument: RadiographInstrument
    measured: list[ReferenceImage]
    config: Any  # TrainConfig
    base: Any = field(repr=False)  # the base ImageModel
    notes: list[str] = field(default_factory=list)


def plan_image_adaptation(
    references: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    n_images: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> ImageAdaptationPlan:
    """Read and measure the references, fit the beam, and set up the training run
    (parameters as :func:`adapt_images`). Seconds: no training here."""
    from ..classify import load_image_model
    from ..training import make_config

    if n_images is not None and not 100 <= int(n_images) <= 10**6:
        raise XrayAtlasError(f"n_images={n_images} must lie in 100-1,000,000")
    if epochs is not None and not 1 <= int(epochs) <= 1000:
        raise XrayAtlasError(f"epochs={epochs} must lie in 1-1,000")
    images = read_references(references)
    refs = [measure_radiograph(img, path=path, label=label) for path, label, img in images]
    base_model = load_image_model(base, device="cpu")
    settings = dict(base_model.card.training or {})
    scint = float(settings.get("source_params", {}).get("scintillator_um", 150.0))
    instrument = fit_radiograph_instrument(refs, scintillator_um=scint)
    notes = [
        f"fitted beam: W {instrument.kv:g} kV behind {instrument.filter_al_mm:g} mm Al "
        f"(mean ln-level residual {instrument.residual:.3f} over {len(refs)} images)"
    ]
    source_params = settings.get("source_params", {})
    frame = int(source_params.get("frame", 128))
    photons, blur = _detector_ranges(refs, frame)
    from ..training.sources import SyntheticRadiographs

    defaults = {k: p.default for k, p in SyntheticRadiographs.PARAMS.items()}
    read_photons = photons is not None
    if photons is None:
        photons = tuple(source_params.get(k, defaults[k]) for k in ("photons_low", "photons_high"))
    if blur is None:
        blur = tuple(source_params.get(k, defaults[k]) for k in ("blur_low_px", "blur_high_px"))
        blur_note = f"a blur of {blur[0]:g}-{blur[1]:g} px kept (read on {instrument.blur_images} images only)"
    else:
        blur_note = (
            f"a blur of {instrument.blur_px:.1f} px (median of {instrument.blur_images} images); training images "
            f"of {frame} px span {blur[0]:.1f}-{blur[1]:.1f} px"
        )
    if read_photons:
        notes.append(
            f"detector: about {instrument.photons:,.0f} photons per pixel in the open beam (median of "
            f"{instrument.detector_images} images; training images span {photons[0]:,.0f}-{photons[1]:,.0f}) "
            f"and {blur_note}"
        )
    else:
        notes.append(
            "the detector's noise could be read on "
            + (
                f"{instrument.detector_images} of {len(refs)} images only"
                if instrument.detector_images
                else "none of them"
            )
            + " (8-bit images of a quiet detector hide it under one grey level): training keeps "
            + f"{photons[0]:,.0f}-{photons[1]:,.0f} photons per pixel; "
            + ("read off the objects' edges, " if instrument.blur_images else "")
            + blur_note
        )
    if instrument.residual > 0.05:
        notes.append(
            "the levels fit poorly (residual over 0.05): the objects may not be the study's "
            "1, 2, 5 mm plates or 10 mm wedge, or the labels may be wrong"
        )
    if n_images is None:
        # a detector noisier than the base recipe's quietest needs more images to learn the
        # levels under its noise (80 photons: plates 0.95-0.975 with 3,000, 1.000 with 6,000)
        noisy = read_photons and photons[0] * PHOTON_MARGIN < N_IMAGES_NOISY_BELOW  # the lowest reading
        n_images = N_IMAGES_NOISY if noisy else N_IMAGES
        if n_images == N_IMAGES_NOISY:
            notes.append(f"a noisy detector: {n_images:,} synthetic images instead of {N_IMAGES:,}")
    source = {
        **{k: v for k, v in settings.get("source_params", {}).items() if k in ("kind", "frame", "size")},
        "n_images": int(n_images),
        "kv": instrument.kv,
        "filter_al_mm": instrument.filter_al_mm,
        "scintillator_um": scint,
        # tolerate the fit's own error: a 1 kV, 0.05 mm uncertainty moves levels by ~2 %
        "kv_spread": 1.0,
        "filter_spread_mm": 0.05,
        "photons_low": round(float(photons[0]), 1),
        "photons_high": round(float(photons[1]), 1),
        "blur_low_px": round(float(blur[0]), 2),
        "blur_high_px": round(float(blur[1]), 2),
    }
    keep = ("model", "loss", "optimizer", "lr", "weight_decay", "schedule", "batch_size", "grad_clip", "model_params")
    config = make_config(
        "images",
        source="synthetic-radiographs",
        **{k: settings[k] for k in keep if k in settings},
        epochs=int(epochs) if epochs is not None else min(int(settings.get("epochs", 12)), 12),
        patience=0,
        seed=int(seed),
        device=device,
        source_params=source,
    )
    return ImageAdaptationPlan(Path(os.fspath(references)), images, instrument, refs, config, base_model, notes)


def finish_image_adaptation(
    plan: ImageAdaptationPlan, trained: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False
) -> AdaptedImageModel:
    """Check the model ``trained`` for ``plan`` on the reference images and write it to ``out``
    with the fitted beam and both accuracies in its card; the user's model list shows it."""
    from .._files import check_destination
    from ..classify import load_image_model
    from ..models import load_model, save_model
    from ..models.catalogue import remember

    out = Path(os.fspath(out))
    check_destination(out, inputs=(plan.references,), overwrite=overwrite, folder_ok=True)
    model, card = load_model(trained)
    adapted = load_image_model(trained, device="cpu")
    accuracy, base_accuracy = _accuracy(adapted, plan.images), _accuracy(plan.base, plan.images)
    card.training_data = {
        **card.training_data,
        "instrument": plan.instrument.as_dict(),
        "references": str(plan.references.resolve()),
        "base": plan.base.name,
    }
    card.metrics = {**card.metrics, "reference_accuracy": accuracy, "base_reference_accuracy": base_accuracy}
    save_model(out, model, card)
    remember(out)
    notes = [
        *plan.notes,
        f"reference images: accuracy {accuracy:.2f} (base model {plan.base.name}: {base_accuracy:.2f})",
    ]
    return AdaptedImageModel(out, plan.instrument, accuracy, base_accuracy, notes)


def adapt_images(
    references: str | os.PathLike,
    out: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    n_images: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    device: str = "auto",
    callbacks: list[Any] = (),
    cancel: Any = None,
) -> AdaptedImageModel:
    """Fit the beam to the labelled radiographs of ``references`` and train a classifier for it.

    Parameters
    ----------
    references : path
        Folder of ``<class>/<image>`` (3-10 radiographs per class from the user's instrument,
        plates and/or wedges, any scale).
    out : path
        The new model: a folder, or a file ending in ``.safetensors``.
    base : str or path, optional
        The model whose recipe (architecture, image size, training settings) is followed
        (default: the shipped ``radiograph-default``); its accuracy on the references is reported.
    n_images : int, optional
        Synthetic radiographs of the fitted beam to train on (20 % validation). Default 3,000,
        or 6,000 when the detector reads under 1,000 photons per pixel at the training frame.
    epochs : int, optional
        Default: the base recipe's, at most 12.
    overwrite : bool
        Replace ``out`` if it exists (never a file that is not a model).
    callbacks, cancel
        As :func:`xray_atlas.training.train` takes them (progress; a threading.Event to stop).

    Returns
    -------
    AdaptedImageModel
    """
    from ._run import adapt_with

    return adapt_with(
        plan_image_adaptation,
        finish_image_adaptation,
        references,
        out,
        overwrite=overwrite,
        callbacks=callbacks,
        cancel=cancel,
        base=base,
        n_images=n_images,
        epochs=epochs,
        seed=seed,
        device=device,
    )
