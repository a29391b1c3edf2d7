"""Make the radiograph classifier fit the user's instrument, from a handful of labelled images.

At one tube voltage a plate's attenuation level encodes both its alloy and its thickness, and
only for the exact beam (docs/images.md): a model trained for 50 kV behind 0.5 mm Al calls
every 1 and 5 mm Al 1050 plate Al 2017 on a 45 or 55 kV beam. Here the beam is fitted to the
user's own labelled radiographs, and a model trained for that beam.

1. :func:`measure_radiograph`: each reference image's open-beam-normalised levels (-ln I/I0):
   a plate's interior median; a wedge's median level, which stands for half its height
   (the study's objects: plates of 1, 2 or 5 mm, a 7 cm wedge rising to 10 mm;
   docs/dev/contracts.md section 6). The detector's noise and blur are not fitted: the
   synthetic training images span 2,000-50,000 photons per pixel and 0.3-1.2 px.
2. :func:`fit_radiograph_instrument`: the tube voltage and aluminium filtration whose levels
   (:func:`~xray_atlas.physics.radiograph.attenuation_levels`) best match the measured ones
   for each image's known alloy, on a grid, then refined.
3. :func:`adapt_images`: a model of the base model's recipe trained on synthetic radiographs
   of the fitted beam, checked on the reference images, written with the instrument in its card.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class RadiographInstrument:
    """A fitted beam: W tube voltage and aluminium filtration (the scintillator is taken as
    given, from the base model's recipe), with the fit's mean absolute residual in ln(level)."""

    kv: float
    filter_al_mm: float
    scintillator_um: float
    residual: float
    n_images: int

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
    from skimage.measure import label as connected

    from ..physics.radiograph import open_beam_log

    raw = np.asarray(image, dtype=np.float64)
    level = open_beam_log(raw).astype(np.float64)
    if float(np.ptp(level)) < 0.05:
        raise XrayAtlasError("no object in the open beam (the image is nearly uniform)", path=path)
    background = level < threshold_otsu(level)
    bg = level[background]
    spread = 1.4826 * float(np.median(np.abs(bg - np.median(bg))))  # noise and the beam's unevenness
    # the object: everything clearly above the open beam's noise, its largest connected part
    edge = max(0.02, 5 * spread)
    parts = connected(level > edge)
    if parts.max() == 0:
        raise XrayAtlasError("no object in the open beam", path=path)
    biggest = np.argmax(np.bincount(parts.ravel())[1:]) + 1
    obj = parts == biggest
    # keep the blurred edges out: the open beam is up to 50x brighter than the object, so even
    # 2 % of it leaking in at 2 sigma of the blur lowers a level by 6 %: only the inner half of
    # the object is read, at least 4 pixels in
    depth = distance_transform_edt(obj)
    interior = depth >= max(4.0, 0.5 * float(depth.max()))
    # the open beam behind the object: a quadratic surface fitted to the intensity around it
    # (a tube's heel effect and the distance make it uneven by several per cent)
    clear = ~binary_dilation(obj, iterations=3)  # clear of the object's blurred edge
    yy, xx = np.mgrid[0 : raw.shape[0], 0 : raw.shape[1]] / max(raw.shape)
    basis = np.stack([np.ones_like(yy), yy, xx, yy * yy, xx * xx, yy * xx], axis=-1)
    coef, *_ = np.linalg.lstsq(basis[clear], raw[clear], rcond=None)
    open_beam = basis[interior] @ coef
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
    return ReferenceImage(Path(os.fspath(path)), label, kind, levels, edge)


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
    return RadiographInstrument(
        kv=float(kv),
        filter_al_mm=round(float(f), 3),
        scintillator_um=float(scintillator_um),
        residual=float(residual),
        n_images=len(refs),
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
    n_images: int = 3000,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
) -> ImageAdaptationPlan:
    """Read and measure the references, fit the beam, and set up the training run
    (parameters as :func:`adapt_images`). Seconds: no training here."""
    from ..classify import load_image_model
    from ..training import make_config

    if not 100 <= int(n_images) <= 10**6:
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
    if instrument.residual > 0.05:
        notes.append(
            "the levels fit poorly (residual over 0.05): the objects may not be the study's "
            "1, 2, 5 mm plates or 10 mm wedge, or the labels may be wrong"
        )
    source = {
        **{k: v for k, v in settings.get("source_params", {}).items() if k in ("kind", "frame", "size")},
        "n_images": int(n_images),
        "kv": instrument.kv,
        "filter_al_mm": instrument.filter_al_mm,
        "scintillator_um": scint,
        # tolerate the fit's own error: a 1 kV, 0.05 mm uncertainty moves levels by ~2 %
        "kv_spread": 1.0,
        "filter_spread_mm": 0.05,
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
    n_images: int = 3000,
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
    n_images : int
        Synthetic radiographs of the fitted beam to train on (20 % validation).
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
