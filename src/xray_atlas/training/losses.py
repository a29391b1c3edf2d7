"""Losses by name, for the tasks' tables (the dock's and the CLI's choices)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LOSSES", "get_loss", "adaptive_l1", "focal"]


def adaptive_l1(pred: Any, target: Any) -> Any:
    """Study 001's adaptive L1, mean(|y - yhat| / sqrt(max(y, 1))): the error in units of
    the Poisson noise of the target, so weak and strong lines weigh alike."""
    return ((target - pred).abs() / target.clamp_min(1.0).sqrt()).mean()


def l1(pred: Any, target: Any) -> Any:
    return (target - pred).abs().mean()


def l2(pred: Any, target: Any) -> Any:
    return ((target - pred) ** 2).mean()


def bce(pred: Any, target: Any) -> Any:
    """Binary cross-entropy on logits (multi-label presence)."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(pred, target.float())


def _class_weights(weights: Any, pred: Any) -> Any:
    import torch

    return None if weights is None else torch.as_tensor(weights, dtype=pred.dtype, device=pred.device)


def cross_entropy(pred: Any, target: Any, *, weights: Any = None) -> Any:
    """Cross-entropy on logits against class indices; ``weights`` per class (the weighted
    mean over the batch, as torch's)."""
    import torch.nn.functional as F

    return F.cross_entropy(pred, target.long(), weight=_class_weights(weights, pred))


def focal(pred: Any, target: Any, *, gamma: float = 2.0, weights: Any = None) -> Any:
    """Focal loss (Lin et al. 2017) on logits: binary per label for float targets of the
    logits' shape (multi-label), multi-class for integer class indices, with optional
    ``weights`` per class (multi-class: the weighted mean over the batch)."""
    import torch
    import torch.nn.functional as F

    if target.dtype in (torch.int64, torch.int32) and target.ndim == pred.ndim - 1:
        logp = F.log_softmax(pred, dim=1).gather(1, target.long()[:, None]).squeeze(1)
        per = -((1 - logp.exp()) ** gamma) * logp
        w = _class_weights(weights, pred)
        if w is None:
            return per.mean()
        w = w[target.long()]
        return (w * per).sum() / w.sum()
    t = target.float()
    ce = F.binary_cross_entropy_with_logits(pred, t, reduction="none")
    p_t = torch.exp(-ce)
    return ((1 - p_t) ** gamma * ce).mean()


#: Name -> loss(prediction, target).
LOSSES: dict[str, Callable[[Any, Any], Any]] = {
    "adaptive-l1": adaptive_l1,
    "l1": l1,
    "l2": l2,
    "bce": bce,
    "focal": focal,
    "cross-entropy": cross_entropy,
}


def get_loss(name: str, *, weights: Any = None) -> Callable[[Any, Any], Any]:
    """The loss ``name``; ``weights`` (one per class) for the classification losses."""
    from functools import partial

    from ..errors import XrayAtlasError

    if name not in LOSSES:
        raise XrayAtlasError(f"loss={name!r}; choose one of {', '.join(LOSSES)}")
    if weights is None:
        return LOSSES[name]
    if name not in ("cross-entropy", "focal"):
        raise XrayAtlasError(f"loss={name!r} takes no class weights (class_balance); use cross-entropy or focal")
    return partial(LOSSES[name], weights=weights)
