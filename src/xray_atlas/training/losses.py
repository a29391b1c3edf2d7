"""Losses by name, for the tasks' tables (the dock's and the CLI's choices)."""

from __future__ import annotations

from typing import Any, Callable

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


def cross_entropy(pred: Any, target: Any) -> Any:
    """Cross-entropy on logits against class indices."""
    import torch.nn.functional as F

    return F.cross_entropy(pred, target.long())


def focal(pred: Any, target: Any, *, gamma: float = 2.0) -> Any:
    """Focal loss (Lin et al. 2017) on logits: binary per label for float targets of the
    logits' shape (multi-label), multi-class for integer class indices."""
    import torch
    import torch.nn.functional as F

    if target.dtype in (torch.int64, torch.int32) and target.ndim == pred.ndim - 1:
        logp = F.log_softmax(pred, dim=1).gather(1, target.long()[:, None]).squeeze(1)
        return (-(1 - logp.exp()) ** gamma * logp).mean()
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


def get_loss(name: str) -> Callable[[Any, Any], Any]:
    from ..errors import XrayAtlasError

    if name not in LOSSES:
        raise XrayAtlasError(f"loss={name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]
