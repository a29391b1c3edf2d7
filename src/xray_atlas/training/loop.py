"""The training loop: seeding, device, optional mixed precision, gradient clipping, early
stopping, best-checkpoint saving, cancellation between batches, typed events."""

from __future__ import annotations

import csv
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from ..errors import XrayAtlasError

__all__ = ["fit", "FitResult", "EpochEnd", "StepEnd", "CSVLogger", "Callback", "seed_everything"]


@dataclass(frozen=True)
class StepEnd:
    """After each optimiser step."""

    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    lr: float


@dataclass(frozen=True)
class EpochEnd:
    """After each epoch: losses, metrics, learning rate, throughput and ETA."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    metrics: dict
    lr: float
    seconds: float
    samples_per_s: float
    eta_s: float
    best: bool


@dataclass
class FitResult:
    """How a run ended: epochs done, best validation loss and its epoch, history, whether
    it was cancelled or stopped early."""

    epochs_run: int
    best_val_loss: float
    best_epoch: int
    history: list[EpochEnd] = field(default_factory=list)
    cancelled: bool = False
    stopped_early: bool = False


class Callback(Protocol):
    def on_step_end(self, event: StepEnd) -> None: ...

    def on_epoch_end(self, event: EpochEnd) -> None: ...


class CSVLogger:
    """Append one row per epoch to a CSV file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._header = not self.path.exists()

    def on_step_end(self, event: StepEnd) -> None:
        pass

    def on_epoch_end(self, event: EpochEnd) -> None:
        row = {k: v for k, v in asdict(event).items() if k != "metrics"}
        row.update({f"metric_{k}": v for k, v in event.metrics.items()})
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if self._header:
                w.writeheader()
                self._header = False
            w.writerow(row)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (call before building a model for a reproducible run)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(
    model: Any,
    train_batches: Callable[[int], Iterable[tuple[Any, Any]]],
    val_batches: Callable[[], Iterable[tuple[Any, Any]]],
    *,
    loss_fn: Callable[[Any, Any], Any],
    epochs: int,
    optimizer: Any | None = None,
    lr: float = 1e-3,
    device: str = "auto",
    seed: int = 0,
    grad_clip: float | None = None,
    patience: int | None = None,
    amp: bool = False,
    metrics: Callable[[Any], dict] | None = None,
    on_best: Callable[[Any, EpochEnd], None] | None = None,
    callbacks: Iterable[Callback] = (),
    cancel: threading.Event | None = None,
) -> FitResult:
    """Train ``model``.

    Parameters
    ----------
    train_batches : callable(epoch) -> iterable of (x, y)
        Batches of one epoch (a generator of synthetic data, or a DataLoader).
    val_batches : callable() -> iterable of (x, y)
        Validation batches (the same each call).
    loss_fn : callable(prediction, target) -> scalar tensor
    epochs : int
    optimizer : torch optimiser, optional
        Default Adam(lr).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    seed : int
        Seeds Python, numpy and torch: same seed, same data, CPU -> same numbers.
    grad_clip : float, optional
        Clip the gradient norm.
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs.
    amp : bool
        Mixed precision (bfloat16 autocast) where the device supports it (CUDA).
    metrics : callable(model) -> dict, optional
        Extra validation metrics per epoch.
    on_best : callable(model, event), optional
        Called when the validation loss improves (save the best checkpoint here).
    callbacks : iterable of objects with ``on_step_end`` / ``on_epoch_end``
    cancel : threading.Event, optional
        Checked between batches: when set, the run ends after the current batch (the best
        checkpoint already saved stays intact).
    """
    import torch

    from ..devices import resolve_device

    if not isinstance(epochs, int) or epochs < 1:
        raise XrayAtlasError(f"epochs={epochs!r} must be a positive integer")
    if not lr > 0:
        raise XrayAtlasError(f"lr={lr} must be > 0")
    if grad_clip is not None and not grad_clip > 0:
        raise XrayAtlasError(f"grad_clip={grad_clip} must be > 0")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise XrayAtlasError(f"patience={patience!r} must be a positive integer")
    seed_everything(seed)
    dev = resolve_device(device)
    model.to(dev)
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    use_amp = amp and dev.type == "cuda"
    callbacks = list(callbacks)
    result = FitResult(0, math.inf, -1)
    since_best = 0
    t_start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        total, n_seen, step = 0.0, 0, 0
        source = train_batches(epoch)
        steps_per_epoch = len(source) if hasattr(source, "__len__") else -1
        for x, y in source:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            x, y = x.to(dev), y.to(dev)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = model(x)
            loss = loss_fn(pred.float(), y)
            if not torch.isfinite(loss):
                raise XrayAtlasError(f"the training loss became {loss.item()} at epoch {epoch}, step {step + 1}; "
                                     "lower the learning rate")
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            step += 1
            total += float(loss.detach()) * x.shape[0]
            n_seen += x.shape[0]
            ev = StepEnd(epoch, step, steps_per_epoch, float(loss.detach()), opt.param_groups[0]["lr"])
            for cb in callbacks:
                cb.on_step_end(ev)
        if result.cancelled:
            break
        model.eval()
        with torch.no_grad():
            vl, vn = 0.0, 0
            for x, y in val_batches():
                x, y = x.to(dev), y.to(dev)
                vl += float(loss_fn(model(x).float(), y)) * x.shape[0]
                vn += x.shape[0]
        val_loss = vl / max(vn, 1)
        extra = metrics(model) if metrics is not None else {}
        seconds = time.perf_counter() - t0
        best = val_loss < result.best_val_loss
        elapsed = time.perf_counter() - t_start
        ev = EpochEnd(epoch, epochs, total / max(n_seen, 1), val_loss, extra, opt.param_groups[0]["lr"], seconds,
                      n_seen / max(seconds, 1e-9), elapsed / epoch * (epochs - epoch), best)
        result.history.append(ev)
        result.epochs_run = epoch
        if best:
            result.best_val_loss, result.best_epoch, since_best = val_loss, epoch, 0
            if on_best is not None:
                on_best(model, ev)
        else:
            since_best += 1
        for cb in callbacks:
            cb.on_epoch_end(ev)
        if patience is not None and since_best >= patience:
            result.stopped_early = True
            break
    return result
