"""Diffraction images -> correlation (CFS) encodings -> lattices -> images again (study 004).

A predictor (a trained network, or the analytic inverse of :func:`analytic_encoding`) reads
the encoding from an image; :func:`reconstruct` then steers a Monte Carlo lattice to that
encoding, simulates its diffraction image and scores it against the input (R^2 of the
mean-normalised images). Experimental images go through optional preparation steps first
(:data:`PREPARATION_STEPS`). docs/dev/contracts.md section 5 fixes the encoding and the image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import XrayAtlasError
from .metrics import mae, r2_score
from .physics.lattice import (
    SPANS,
    analytic_encoding,
    diffraction_image,
    iter_lattices,
    random_couplings,
    simulate_lattices,
)

__all__ = [
    "MODEL_SIZE",
    "check_image",
    "image_span",
    "metadata_span",
    "resolve_span",
    "model_input",
    "degrade",
    "PREPARATION_STEPS",
    "prepare_image",
    "reference_image",
    "Predictor",
    "load_predictor",
    "default_model_name",
    "Reconstruction",
    "reconstruct",
    "iter_reconstruct",
    "write_reconstruction",
    "DIFFRACTION_BASELINES",
    "CONDITIONS",
    "evaluation_set",
    "score_predictors",
    "reproducibility",
]

#: Side of the image the networks see (the study's 64 x 64).
MODEL_SIZE = 64
MIN_SIZE = 16
#: Predictors that need no training.
DIFFRACTION_BASELINES = ("analytic",)


def default_model_name(span: int) -> str:
    """The shipped model for a span."""
    return f"diffraction-span{span}"


def image_span(path) -> int | None:
    """The span an image file declares (HDF5 attribute ``span`` on /image or the root), or None."""
    if Path(path).suffix.lower() not in (".h5", ".hdf5"):
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for obj in (f.get("image"), f):
                if obj is not None and "span" in obj.attrs:
                    try:
                        span = int(np.asarray(obj.attrs["span"]).reshape(-1)[0])
                    except (TypeError, ValueError, IndexError):
                        raise XrayAtlasError(
                            f"its span attribute is {obj.attrs['span']!r}, not 2, 3 or 4", path=path
                        ) from None
                    if span not in SPANS:
                        raise XrayAtlasError(f"its span attribute is {span}, not 2, 3 or 4", path=path)
                    return span
    except OSError as err:
        raise XrayAtlasError(f"not a readable HDF5 file ({err})", path=path) from None
    return None


def metadata_span(metadata: Any, *, name: str = "image") -> int | None:
    """The span an image's metadata declares (key ``span``, at the top or under ``xray_atlas``),
    or None when it declares none.

    The napari sample and images read from HDF5 files carry it; a dock or script then need not
    ask for it (a span-3 image read at span 2 gives 3 encoding values instead of 8).
    """
    if not isinstance(metadata, dict):
        return None
    value = metadata.get("span")
    if value is None and isinstance(metadata.get("xray_atlas"), dict):
        value = metadata["xray_atlas"].get("span")
    if value is None:
        return None
    try:
        span = int(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        raise XrayAtlasError(f"{name}: its metadata span {value!r} is not a number") from None
    if span not in SPANS:
        raise XrayAtlasError(f"{name}: its metadata span is {span}, not 2, 3 or 4")
    return span


def resolve_span(
    span: int | None, image_spans: Iterable[int | None], *, model: str | None = None, parameter: str = "span"
) -> tuple[int | None, str | None]:
    """The span to reconstruct a set of images with, and a note for the user (or None).

    Parameters
    ----------
    span : int or None
        The span the user gave; it wins over the images' own.
    image_spans : iterable of int or None
        The span each image declares (:func:`image_span`, :func:`metadata_span`), None where
        it declares none.
    model : str, optional
        The model to load (:func:`load_predictor`): a trained model knows its span, the shipped
        ones (None) fall back to span 2, the ``"analytic"`` inverse needs one.
    parameter : str
        How the user gives the span, named in the messages (the command line's ``--span``).

    Returns
    -------
    span, note
        The given span, else the one the images agree on, else None (the model's); the note
        says when the shipped models' span 2 is assumed.

    Raises
    ------
    XrayAtlasError
        The images declare different spans and none was given; the analytic inverse without a span.
    """
    declared = {s for s in image_spans if s is not None}
    if span is None and len(declared) > 1:
        raise XrayAtlasError(f"the images' metadata give different spans; process them separately or give {parameter}")
    span = span or (declared.pop() if declared else None)
    note = None
    if span is None and model in (None, "analytic"):
        if model == "analytic":
            raise XrayAtlasError(f"the analytic inverse needs the span: give {parameter} 2, 3 or 4")
        note = (
            f"neither {parameter} nor the images' metadata give the span; using span 2 "
            f"(give {parameter} 3 or 4 for longer-range encodings)"
        )
    return span, note


def check_image(image, *, name: str = "image") -> np.ndarray:
    """A square 2-D image of at least 16 x 16 finite pixels, as float64; else a clear error."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise XrayAtlasError(f"{name}: a diffraction image must be 2-D, got shape {a.shape}")
    if a.shape[0] != a.shape[1]:
        raise XrayAtlasError(f"{name}: a diffraction image must be square, got {a.shape[0]} x {a.shape[1]}")
    if a.shape[0] < MIN_SIZE:
        raise XrayAtlasError(f"{name}: {a.shape[0]} x {a.shape[1]} is too small (at least {MIN_SIZE} x {MIN_SIZE})")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise XrayAtlasError(f"{name}: pixels must be real numbers, got {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise XrayAtlasError(
            f"{name}: {int((~np.isfinite(a)).sum())} pixels are NaN or infinite; "
            "mask them and inpaint (prepare_image(..., mask=...)) first"
        )
    if a.min() < 0:
        raise XrayAtlasError(f"{name}: negative intensities (min {a.min():.3g}); a diffraction image is >= 0")
    if a.max() <= 0:
        raise XrayAtlasError(f"{name}: the image is all zero")
    return a


def model_input(images, size: int = MODEL_SIZE) -> np.ndarray:
    """Images as the networks see them: (B, 1, size, size) float32, resampled to ``size``
    and divided by their mean, so any intensity scale gives the same input.

    An L x L image samples the structure factor at k = 2 pi n / L around zero frequency (at
    L//2); resampling keeps zero frequency at size//2 and reads the image as periodic in k
    (which it is), so images of any lot size land on the same k grid and the inverse
    transform of the result is still the pair correlation in lattice units. Larger images
    are box-averaged first.
    """
    from scipy.ndimage import uniform_filter1d

    x = np.asarray(images, dtype=np.float32)
    x = x[None] if x.ndim == 2 else x
    L = x.shape[-1]
    if size != L:
        if size < L:
            w = int(round(L / size))
            if w > 1:
                x = uniform_filter1d(uniform_filter1d(x, w, axis=1, mode="wrap"), w, axis=2, mode="wrap")
        pos = L // 2 + (np.arange(size) - size // 2) * (L / size)
        lo = np.floor(pos).astype(np.int64)
        f = (pos - lo).astype(np.float32)
        lo, hi = lo % L, (lo + 1) % L
        x = x[:, lo] * (1 - f)[None, :, None] + x[:, hi] * f[None, :, None]
        x = x[:, :, lo] * (1 - f)[None, None, :] + x[:, :, hi] * f[None, None, :]
    mean = x.mean(axis=(1, 2), keepdims=True)
    return np.ascontiguousarray((x / np.maximum(mean, 1e-12))[:, None], dtype=np.float32)


def degrade(images, rng, *, counts=None, log: bool = False, beam_stop: int = 0) -> np.ndarray:
    """Images as an instrument might record them (for training and evaluation).

    Parameters
    ----------
    images : (B, L, L) or (L, L)
    rng : Generator or int
    counts : float or (B,) array, optional
        Mean counts per pixel: Poisson noise at that level.
    log : bool
        Log scaling, log(1 + I / mean(I) * 100), as viewers and some detectors store images.
    beam_stop : int
        Radius in pixels of a disc at zero frequency set to 0 (the beam stop's shadow).
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    x = np.array(images, dtype=np.float64, copy=True)
    one = x.ndim == 2
    x = x[None] if one else x
    if counts is not None:
        c = np.broadcast_to(np.asarray(counts, dtype=np.float64), (x.shape[0],))
        if np.any(c <= 0):
            raise XrayAtlasError(f"counts={counts} must be > 0")
        mean = x.mean(axis=(1, 2), keepdims=True)
        x = gen.poisson(x / np.maximum(mean, 1e-300) * c[:, None, None]).astype(np.float64)
    if log:
        x = _log_scale(x)
    if beam_stop > 0:
        x[:, _disc(x.shape[-1], beam_stop)] = 0.0
    return (x[0] if one else x).astype(np.float32)


def _log_scale(x: np.ndarray) -> np.ndarray:
    """log(1 + 100 I / mean(I)) per image (over the last two axes)."""
    return np.log1p(x / np.maximum(x.mean(axis=(-2, -1), keepdims=True), 1e-300) * 100.0)


def _disc(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] - size // 2
    return yy * yy + xx * xx <= radius * radius


# -- preparation of experimental images --------------------------------------------------------
def _unlog(img: np.ndarray, _: Any) -> np.ndarray:
    return np.expm1(np.clip(img, 0, 700))


def _log(img: np.ndarray, _: Any) -> np.ndarray:
    return _log_scale(img)


def _tophat(img: np.ndarray, radius: Any) -> np.ndarray:
    from skimage.morphology import disk, white_tophat

    return white_tophat(img, disk(int(radius)))


def _inpaint(img: np.ndarray, mask: Any) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    return np.maximum(inpaint_biharmonic(img, mask), 0)


def _match(img: np.ndarray, reference: Any) -> np.ndarray:
    from skimage.exposure import match_histograms

    ref = np.asarray(reference, dtype=np.float64)
    return match_histograms(img / img.mean(), ref / ref.mean())


def _normalise(img: np.ndarray, _: Any) -> np.ndarray:
    return img / img.mean()


def _rescale(img: np.ndarray, size: Any) -> np.ndarray:
    return model_input(img, int(size))[0, 0].astype(np.float64)


#: Optional steps in the order :func:`prepare_image` applies them: name -> (what it does, function).
PREPARATION_STEPS = {
    "unlog": ("undo a log scaling (exp(I) - 1)", _unlog),
    "log": ("log scaling, log(1 + 100 I / mean(I))", _log),
    "inpaint": ("fill masked pixels (beam stop, Bragg peaks) by biharmonic inpainting", _inpaint),
    "tophat": ("white top-hat with a disc of this radius: removes smooth background", _tophat),
    "match": ("match the intensity histogram to a reference (training) image", _match),
    "normalise": ("divide by the mean intensity", _normalise),
    "rescale": ("resize to size x size pixels", _rescale),
}


def check_tophat(tophat: int, shape: tuple[int, ...]) -> None:
    """Refuse a top-hat radius below 0 or beyond half the image side (a larger disc only
    costs memory and time: the structuring element grows with the radius squared)."""
    top = min(shape[:2]) // 2
    if not 0 <= tophat <= top:
        raise XrayAtlasError(
            f"tophat={tophat} must lie in [0, {top}] (half the side of the {shape[0]} x {shape[1]} image)"
        )


def prepare_image(
    image,
    *,
    unlog: bool = False,
    log: bool = False,
    mask=None,
    tophat: int = 0,
    match=None,
    normalise: bool = False,
    rescale: int | None = None,
) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Apply the chosen preparation steps; returns the image and every stage, for display.

    Parameters
    ----------
    image : (L, L) array; masked pixels may be NaN (they are added to ``mask``).
    unlog, log : bool
        Undo a log scaling (before anything else), or apply one.
    mask : (L, L) bool, optional
        Pixels to inpaint (no step when none is set).
    tophat : int
        Disc radius of the top-hat (0: off).
    match : (M, M) array, optional
        Reference image for histogram matching.
    normalise : bool
    rescale : int, optional
    """
    a = np.asarray(image, dtype=np.float64)
    nan = ~np.isfinite(a) if a.ndim == 2 else None
    if nan is not None and nan.any():
        mask = nan if mask is None else (np.asarray(mask, bool) | nan)
        a = np.where(nan, 0.0, a)
    a = check_image(a)
    check_tophat(tophat, a.shape)
    if rescale is not None and rescale < MIN_SIZE:
        raise XrayAtlasError(f"rescale={rescale} must be >= {MIN_SIZE}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != a.shape:
            raise XrayAtlasError(f"mask: shape {mask.shape} differs from the image's {a.shape}")
        if mask.all():
            raise XrayAtlasError("mask: every pixel is masked; nothing to inpaint from")
        mask = mask if mask.any() else None
    args = {
        "unlog": unlog or None,
        "log": log or None,
        "inpaint": mask,
        "tophat": tophat or None,
        "match": match,
        "normalise": normalise or None,
        "rescale": rescale,
    }
    stages = [("input", a)]
    for name, (_, fn) in PREPARATION_STEPS.items():
        if args[name] is None:
            continue
        a = fn(a, args[name])
        stages.append((name, a))
    return a, stages


def reference_image(span: int, *, seed: int = 0) -> np.ndarray:
    """A clean simulated image like the shipped models' training images (64 x 64 lattice,
    32 lots of 32 x 32), for histogram matching."""
    rng = np.random.default_rng(seed)
    batch = simulate_lattices(span=span, couplings=random_couplings(span, 1, rng), size=64, sweeps=150, rng=rng)
    return diffraction_image(batch.lattices[0], lot=32, n_lots=32, rng=rng)


# -- predictors ----------------------------------------------------------------------------
@dataclass
class Predictor:
    """Image -> encoding, for one span: a trained network or the analytic inverse."""

    name: str
    span: int
    module: Any = None  # torch module, None for the analytic inverse
    card: Any = None
    device: str = "cpu"

    def predict(self, images, *, batch_size: int = 256) -> np.ndarray:
        """(L, L) or (B, L, L) images -> (D,) or (B, D) encodings."""
        x = np.asarray(images)
        one = x.ndim == 2
        imgs = [check_image(i, name=f"image {k}") for k, i in enumerate(x[None] if one else x)]
        if self.module is None:
            out = np.stack([analytic_encoding(i, self.span) for i in imgs])
        else:
            import torch

            size = int(self.card.config.get("image_size", MODEL_SIZE))
            # images beyond the sizes met in training (lot/2 to 1.5 lot) are first brought to the
            # training size on the k grid (box-averaged): a finer k sampling than the model saw
            # is what it does not read well
            lot = int(self.card.inputs.get("lot", 0) or 0)
            imgs = [model_input(i, lot)[0, 0] if lot and i.shape[0] > 1.5 * lot else i for i in imgs]
            rows = []
            with torch.no_grad():
                for a in range(0, len(imgs), batch_size):
                    xb = torch.from_numpy(np.concatenate([model_input(i, size) for i in imgs[a : a + batch_size]]))
                    rows.append(self.module(xb.to(self.device)).float().cpu().numpy())
            out = np.concatenate(rows).astype(np.float64)
        return out[0] if one else out


def load_predictor(model: str | None = None, *, span: int | None = None, device: str = "cpu") -> Predictor:
    """The predictor named ``model`` (a registered/remembered name, a model file, or
    ``"analytic"``); omitted: the shipped model for ``span``.

    A model trained for another span than the one asked for is refused.
    """
    if span is not None and span not in SPANS:
        raise XrayAtlasError(f"span={span!r} must be one of {', '.join(map(str, SPANS))}")
    if model == "analytic":
        if span is None:
            raise XrayAtlasError("the analytic inverse needs the span (2, 3 or 4)")
        return Predictor("analytic", span)
    if model is None:
        model = default_model_name(span or 2)
    from .models.catalogue import resolve_model

    found = resolve_model(model, task="diffraction", default=model, device=device, also=tuple(DIFFRACTION_BASELINES))
    module, card, path = found.module, found.card, found.path
    trained_span = int(card.inputs.get("span", 0))
    if span is not None and trained_span != span:
        raise XrayAtlasError(
            f"this model was trained for span {trained_span} (D = {SPANS.get(trained_span)}), "
            f"not span {span} (D = {SPANS[span]})",
            path=path,
        )
    return Predictor(found.name, trained_span, module, card, str(found.device))


@dataclass
class Reconstruction:
    """The result of :func:`reconstruct` (docs/dev/contracts.md section 3 plus what the dock shows)."""

    encoding: np.ndarray  # (D,) predicted
    lattice: np.ndarray  # (N, N) uint8
    reconstruction: np.ndarray  # (L, L) float32, re-simulated image on the input's scale
    measured: np.ndarray  # (D,) encoding measured on the lattice
    converged: bool
    image_r2: float
    span: int
    model: str
    stages: list = field(default_factory=list)

    @property
    def residual(self) -> np.ndarray:
        """Input (normalised) minus the reconstruction (normalised): both have mean 1."""
        return (
            self.stages[-1][1] / self.stages[-1][1].mean() - self.reconstruction / self.reconstruction.mean()
        ).astype(np.float32)


def reconstruct(image, predictor: Predictor, **kwargs) -> Reconstruction:
    """Predict the encoding of ``image``, simulate a lattice with it and its image; the
    parameters are those of :func:`iter_reconstruct`."""
    from .cube import run_to_end

    return run_to_end(iter_reconstruct(image, predictor, **kwargs))


def iter_reconstruct(
    image,
    predictor: Predictor,
    *,
    lattice_size: int | None = None,
    n_lots: int = 64,
    seed: int = 0,
    max_sweeps: int = 1500,
    stages: list | None = None,
):
    """Generator form of :func:`reconstruct` (yields Monte Carlo progress, returns the
    :class:`Reconstruction`).

    The lattice is at least twice the image side (lots of the image's size are windows of it);
    the re-simulated image has the input's size and mean. ``stages`` are the preparation
    stages that led to ``image`` (kept for display).
    """
    img = check_image(image)
    enc = predictor.predict(img)
    L = img.shape[0]
    n = lattice_size or max(96, 2 * L)
    if n < L:
        raise XrayAtlasError(f"lattice_size={n} must be at least the image side {L}")
    # a prediction can leave the realisable range a little: the Monte Carlo then stops at its cap
    batch = yield from iter_lattices(
        span=predictor.span, target=np.clip(enc, -0.99, 0.99), size=n, rng=seed, max_sweeps=max_sweeps
    )
    sim = diffraction_image(batch.lattices[0], lot=L, n_lots=n_lots, rng=seed)
    sim = sim / sim.mean() * img.mean()
    return Reconstruction(
        enc.astype(np.float32),
        batch.lattices[0],
        sim.astype(np.float32),
        batch.encoding[0].astype(np.float32),
        bool(batch.converged[0]),
        r2_score(sim.ravel() / sim.mean(), img.ravel() / img.mean()),
        predictor.span,
        predictor.name,
        list(stages or [("input", img)]),
    )


def write_reconstruction(path, rec: Reconstruction, *, overwrite: bool = True) -> None:
    """Result file of docs/dev/contracts.md section 3: /encoding, /lattice, /reconstruction; root
    attrs ``model``, ``span``, ``image_r2``; /measured_encoding beside. An existing file is
    replaced only with ``overwrite``."""
    from .io.results import atomic_h5

    with atomic_h5(path, overwrite=overwrite) as f:
        f.create_dataset("encoding", data=rec.encoding.astype(np.float32))
        f.create_dataset("lattice", data=rec.lattice.astype(np.uint8), compression="gzip")
        f.create_dataset("reconstruction", data=rec.reconstruction.astype(np.float32))
        f.create_dataset("measured_encoding", data=rec.measured.astype(np.float32))
        f.attrs["model"] = rec.model
        f.attrs["span"] = rec.span
        f.attrs["image_r2"] = rec.image_r2
        f.attrs["lattice_converged"] = rec.converged


# -- evaluation ----------------------------------------------------------------------------
#: Image conditions of the evaluation: name -> degrade() options (counts per pixel, log, beam stop).
CONDITIONS = {
    "clean": {},
    "poisson-100": {"counts": 100.0},
    "poisson-10": {"counts": 10.0},
    "log + beam stop": {"counts": 1000.0, "log": True, "beam_stop": 2},
}


def evaluation_set(span: int, n: int, *, size: int = 64, lot: int = 32, n_lots: int = 32, seed: int = 0) -> dict:
    """Held-out images made the way the study made them: target encodings (measured on
    lattices of random couplings, so they are realisable), lattices steered to them by the
    feedback Monte Carlo, lot-averaged images. Returns images, measured and target encodings."""
    rng = np.random.default_rng(seed)
    source = simulate_lattices(span=span, couplings=random_couplings(span, n, rng), size=size, sweeps=150, rng=rng)
    steered = simulate_lattices(span=span, target=source.encoding, size=size, rng=rng)
    images = diffraction_image(steered.lattices, lot=lot, n_lots=n_lots, rng=rng).reshape(n, lot, lot)
    return {"images": images, "measured": steered.encoding, "target": steered.target, "converged": steered.converged}


def score_predictors(predictors: dict, data: dict, *, seed: int = 0, conditions: dict | None = None) -> list[dict]:
    """Encoding R^2 (against the measured and the target encodings) and MAE of each predictor
    under each image condition; the analytic inverse is also scored on degraded images
    prepared for it (log undone, beam stop inpainted), since that is how one would use it."""
    rows = []
    for cond, opts in (conditions or CONDITIONS).items():
        imgs = degrade(data["images"], np.random.default_rng([seed, len(rows)]), **opts) if opts else data["images"]
        variants = {"": imgs}
        if opts.get("log") or opts.get("beam_stop"):
            prepared = []
            for img in imgs:
                mask = _disc(img.shape[-1], opts.get("beam_stop", 0)) if opts.get("beam_stop") else None
                prepared.append(prepare_image(img, unlog=bool(opts.get("log")), mask=mask)[0])
            variants[" (prepared)"] = np.stack(prepared)
        for name, pred in predictors.items():
            for tag, x in variants.items():
                if tag and pred.module is not None:
                    continue  # networks read the images as recorded
                est = pred.predict(x)
                rows.append(
                    {
                        "condition": cond,
                        "predictor": name + tag,
                        "r2_measured": r2_score(est, data["measured"]),
                        "r2_target": r2_score(est, data["target"]),
                        "mae": float(np.mean(mae(est, data["measured"]))),
                    }
                )
    return rows


def reproducibility(
    image, encoding, span: int, *, n: int = 64, size: int | None = None, n_lots: int = 32, seed: int = 0
) -> dict:
    """Study 004's reproducibility analysis: steer ``n`` fresh lattices to one ``encoding``,
    image each like ``image`` (same lot size) and score them against it. The spread of the
    image R^2 is the floor that no predictor can beat: two lattices with the same encoding do
    not give the same image.

    Returns {"image_r2": (n,), "encoding_error": (n,) largest |measured - encoding|,
    "converged": (n,) bool}.
    """
    img = check_image(image)
    L = img.shape[0]
    enc = np.asarray(encoding, dtype=np.float64)
    batch = simulate_lattices(span=span, target=np.broadcast_to(enc, (n, enc.size)), size=size or 2 * L, rng=seed)
    sims = diffraction_image(batch.lattices, lot=L, n_lots=n_lots, rng=seed + 1)
    ref = img.ravel() / img.mean()
    r2 = np.array([r2_score(s.ravel() / s.mean(), ref) for s in sims])
    return {"image_r2": r2, "encoding_error": np.abs(batch.encoding - enc).max(axis=1), "converged": batch.converged}
