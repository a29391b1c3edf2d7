"""Image classification (radiographs, micrographs): preparing an image for a model, loading
image models, class probabilities, and class activation maps.

The preparation is the one the training sources apply (``normalisation`` in the model card):
``"standard"`` scales each image to zero mean and unit variance; ``"open-beam"`` turns a
radiograph into -ln(I / I0) with I0 its open beam, which removes the unknown scale of the file
(docs/dev/contracts.md section 6) but keeps the attenuation a classifier needs to tell alloys apart.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import XrayAtlasError
from .io.images import NORMALISATIONS, prepare_image

__all__ = [
    "NORMALISATIONS",
    "DEFAULT_IMAGE_MODEL",
    "prepare_image",
    "ImageModel",
    "load_image_model",
    "predict_images",
    "activation_map",
    "classify_files",
    "DOMAIN_STATISTICS",
    "image_statistics",
    "domain_ranges",
    "DomainCheck",
    "check_domain",
]

#: The shipped radiograph classifier (classes Al1050, Al2017).
DEFAULT_IMAGE_MODEL = "radiograph-default"


@dataclass
class ImageModel:
    """A loaded image classifier and what its card says about its inputs."""

    module: Any
    name: str
    classes: tuple[str, ...]
    size: int
    normalisation: str
    card: Any = field(repr=False, default=None)

    @property
    def device(self):
        return next(self.module.parameters()).device

    def prepare(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """(N, 1, size, size) float32 inputs."""
        return np.stack([prepare_image(im, size=self.size, normalisation=self.normalisation) for im in images])[:, None]

    def __call__(self, images: Iterable[np.ndarray], *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, k) of 2-D images."""
        import torch

        x = self.prepare(images)
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                logits = self.module(torch.from_numpy(x[i : i + batch_size]).to(self.device))
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out)


def load_image_model(model: str | os.PathLike | None = None, *, device: str = "auto") -> ImageModel:
    """The image classifier ``model``: None (the shipped radiograph model), the name of a shipped
    or trained ``images`` model, or a model file/folder."""
    from .models.catalogue import resolve_model

    found = resolve_model(model, task="images", default=DEFAULT_IMAGE_MODEL, device=device)
    module, card = found.module, found.card
    size = int(card.inputs.get("image_size", card.config.get("image_size", 64)))
    norm = str(card.inputs.get("normalisation", "standard"))
    norm = "open-beam" if norm.startswith("open-beam") else "standard"
    return ImageModel(module, found.name, tuple(card.outputs), size, norm, card)


def predict_images(
    images: Iterable[np.ndarray], model: ImageModel | str | None = None, *, device: str = "auto"
) -> list[dict[str, float]]:
    """Class -> probability for each image."""
    m = model if isinstance(model, ImageModel) else load_image_model(model, device=device)
    probs = m(list(images))
    return [dict(zip(m.classes, map(float, p))) for p in probs]


def activation_map(model: ImageModel, image: np.ndarray, *, class_index: int | None = None) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., ICCV 2017) of one image: where the network's last spatial
    feature maps raise the log-probability of ``class_index`` (default: the predicted class),
    as an (H, W) float32 map in [0, 1] at the image's own size.

    The log-probability (not the raw score) contrasts the class with the others, so a class
    the network recognises as "not the other one" still gets a map. For a network ending in
    global average pooling and one linear layer the map is the class activation map (CAM,
    Zhou et al., CVPR 2016) of that contrast, up to scale.
    """
    import torch
    import torch.nn.functional as F

    maps: list = []

    def keep(_module, _inp, out):
        if isinstance(out, torch.Tensor) and out.ndim == 4 and min(out.shape[-2:]) > 1:
            out.retain_grad()
            maps.append(out)

    # every layer (not containers) but the pooling ones, whose coarser output would only blur the map
    pools = (torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d)
    handles = [
        m.register_forward_hook(keep)
        for m in model.module.modules()
        if not any(True for _ in m.children()) and not isinstance(m, pools)
    ]
    try:
        x = torch.from_numpy(model.prepare([image])).to(model.device)
        with torch.enable_grad():
            logits = model.module(x)
            k = int(logits.argmax(1)) if class_index is None else int(class_index)
            if not 0 <= k < logits.shape[1]:
                raise XrayAtlasError(f"class_index={class_index} is out of range 0-{logits.shape[1] - 1}")
            if not maps:
                raise XrayAtlasError(
                    "this model has no spatial feature maps, so it has no activation map "
                    "(a fully connected network looks at pixels, not feature maps)"
                )
            model.module.zero_grad(set_to_none=True)
            torch.log_softmax(logits, dim=1)[0, k].backward()
    finally:
        for h in handles:
            h.remove()
    last = maps[-1]  # the last spatial activation: (1, C, h, w)
    a, g = last.detach(), last.grad.detach()
    cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))  # (1, 1, h, w)
    h, w = np.asarray(image).shape
    cam = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
    top = float(cam.max())
    return (cam / top if top > 0 else cam).astype(np.float32)


# -- is an image like the model's training images? ------------------------------------------
#: Statistics of a prepared image (what the network sees) whose training range a model card
#: records (``inputs["domain"]``), with what each tells.
DOMAIN_STATISTICS = {
    "mean": "mean intensity",
    "std": "intensity spread (std)",
    "p01": "1st-percentile intensity",
    "p99": "99th-percentile intensity",
    "low_share": "share of background pixels (within 0.05 of the darkest)",
    "edge": "mean step between neighbouring pixels",
}
#: Training quantiles kept as the range, and the slack added on each side (share of the range):
#: a network is not trusted beyond what it saw, but neither is the 0.1 % tail a hard wall.
DOMAIN_QUANTILES = (0.1, 99.9)
DOMAIN_SLACK = 0.1


def image_statistics(prepared: np.ndarray) -> dict[str, Any]:
    """:data:`DOMAIN_STATISTICS` of a prepared image ((S, S), as from :func:`prepare_image`):
    name -> float; of a stack (N, S, S): name -> (N,) array."""
    x = np.asarray(prepared, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise XrayAtlasError(f"prepared: expected (S, S) or (N, S, S), got shape {x.shape}")
    xs = x.reshape(-1, *x.shape[-2:])
    flat = xs.reshape(len(xs), -1)
    p01, p99 = np.percentile(flat, [1.0, 99.0], axis=1)
    out = {
        "mean": flat.mean(axis=1),
        "std": flat.std(axis=1),
        "p01": p01,
        "p99": p99,
        "low_share": (flat <= flat.min(axis=1, keepdims=True) + 0.05).mean(axis=1),
        "edge": 0.5 * (np.abs(np.diff(xs, axis=-1)).mean(axis=(1, 2)) + np.abs(np.diff(xs, axis=-2)).mean(axis=(1, 2))),
    }
    return out if x.ndim == 3 else {k: float(v[0]) for k, v in out.items()}


def domain_ranges(prepared: np.ndarray) -> dict:
    """What a model card records of its training images (``inputs["domain"]``): the
    :data:`DOMAIN_QUANTILES` range of each of :data:`DOMAIN_STATISTICS` over the prepared
    training images ((N, S, S) or (N, 1, S, S))."""
    x = np.asarray(prepared, dtype=np.float32)
    x = x.reshape(-1, *x.shape[-2:])
    if len(x) < 2:
        raise XrayAtlasError(f"domain_ranges needs at least 2 training images, got {len(x)}")
    stats = {}
    for start in range(0, len(x), 4096):  # bounded memory for large training sets
        for k, v in image_statistics(x[start : start + 4096]).items():
            stats.setdefault(k, []).append(np.asarray(v))
    ranges = {k: [float(q) for q in np.percentile(np.concatenate(v), DOMAIN_QUANTILES)] for k, v in stats.items()}
    return {"statistics": ranges, "quantiles": list(DOMAIN_QUANTILES), "n_images": int(len(x))}


@dataclass
class DomainCheck:
    """Whether an image is like the images a model was trained on.

    ``inside`` is False when a reason was found, None when the model's card records nothing
    to compare with (models trained before the cards recorded it), else True.
    """

    inside: bool | None
    reasons: list[str] = field(default_factory=list)
    model: str = ""
    trained_on: str = ""

    @property
    def message(self) -> str:
        """One line for the user ('' when the image is inside the domain)."""
        if self.inside is None:
            return (
                f"{self.model}'s card records no statistics of its training images: "
                "cannot tell whether this image is like them"
            )
        if self.inside:
            return ""
        return (
            f"outside what {self.model} was trained on ({self.trained_on}): "
            + "; ".join(self.reasons)
            + ". Its answer is not to be trusted"
        )


def check_domain(model: ImageModel, image: np.ndarray, *, metadata: dict | None = None) -> DomainCheck:
    """Say whether ``image`` (2-D) is like ``model``'s training images.

    Three sources: the image's own ``metadata`` (a ``classes``/``class`` entry naming only
    classes the model does not know: the napari samples carry one), and each of
    :data:`DOMAIN_STATISTICS` of the prepared image against its range in the card
    (``inputs["domain"]``, widened by :data:`DOMAIN_SLACK`). The card's training source
    names the domain in the message.
    """
    card = model.card
    data = getattr(card, "training_data", {}) or {}
    trained_on = str(data.get("source", "unknown data"))
    check = DomainCheck(True, [], model.name, trained_on)
    named = (metadata or {}).get("classes", (metadata or {}).get("class"))
    if isinstance(named, str):
        named = [named]
    if isinstance(named, (list, tuple)) and named and not set(map(str, named)) & set(model.classes):
        shown = ", ".join(map(str, list(dict.fromkeys(named))[:4])) + (", ..." if len(set(named)) > 4 else "")
        check.reasons.append(f"its metadata names {shown}, none of the model's classes ({', '.join(model.classes)})")
    domain = (getattr(card, "inputs", {}) or {}).get("domain")
    if not isinstance(domain, dict) or not domain.get("statistics"):
        if not check.reasons:
            return DomainCheck(None, [], model.name, trained_on)
    else:
        stats = image_statistics(prepare_image(image, size=model.size, normalisation=model.normalisation))
        for name, (lo, hi) in domain["statistics"].items():
            if name not in stats:
                continue
            slack = DOMAIN_SLACK * max(hi - lo, 1e-6)
            value = stats[name]
            if not lo - slack <= value <= hi + slack:
                check.reasons.append(f"{DOMAIN_STATISTICS.get(name, name)} {value:.3g} (training {lo:.3g} to {hi:.3g})")
    check.inside = not check.reasons
    return check


def classify_files(
    paths: Iterable[str | os.PathLike], model: ImageModel, *, cam_dir: str | os.PathLike | None = None
) -> Iterator[dict]:
    """For each image file: ``{"path", "class", "probabilities"}`` (docs/dev/contracts.md section 4),
    ``"in_domain"`` (:func:`check_domain`: true, false, or null when the card records nothing
    to compare with) and, unless true, ``"domain_note"`` saying why; with ``cam_dir``, also its
    activation map as ``<cam_dir>/<stem>.png`` (8-bit, the map over the image's own size),
    written atomically."""
    from ._files import same_file
    from .io.images import read_image, write_image

    for p in paths:
        img = read_image(p)
        probs = dict(zip(model.classes, map(float, model([img])[0])))
        row = {"path": str(p), "class": max(probs, key=probs.get), "probabilities": probs}
        check = check_domain(model, img)
        row["in_domain"] = check.inside
        if check.inside is not True:
            row["domain_note"] = check.message
        if cam_dir is not None:
            cam = activation_map(model, img, class_index=model.classes.index(row["class"]))
            png = np.round(np.clip(cam, 0, 1) * 255).astype(np.uint8)
            target = Path(cam_dir) / Path(p).stem
            if same_file(target.with_name(target.name + ".png"), p):  # never write over an input
                raise XrayAtlasError("its activation map would replace it; choose another cam_dir", path=p)
            row["cam"] = str(write_image(target, png))
        yield row
