"""The training loop: seeding, device, optional mixed precision, gradient clipping, early
stopping, best-checkpoint and resume-state hooks, cancellation between batches, typed events.

It knows nothing of tasks, data sets or GUIs (ARCHITECTURE.md rule 4): batches come from
callables, results leave through ``on_*`` callbacks and hooks.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from ..errors import XrayAtlasError

__all__ = ["fit", "FitResult", "EpochEnd", "StepEnd", "Preparing", "TrainState", "Callback", "seed_everything",
           "OPTIMIZERS", "SCHEDULES"]

#: Optimiser name -> torch class name (the dock's and the CLI's choices).
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
#: Learning-rate schedules, stepped once per epoch.
SCHEDULES = ("constant", "cosine", "step", "plateau")


@dataclass(frozen=True)
class Preparing:
    """While a data source makes its data, before the first step: ``done`` of ``total``
    ``what`` (paintings, cubes, batches of lattices)."""

    done: int
    total: int
    what: str


@dataclass(frozen=True)
class StepEnd:
    """After each optimiser step."""

    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    lr: float
    samples_per_s: float


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


@dataclass
class TrainState:
    """Everything needed to go on from the end of an epoch: weights, optimiser and schedule
    state, torch's random state, and the run's bookkeeping (see :mod:`.checkpoint`)."""

    epoch: int
    model: dict
    optimizer: dict
    schedule: dict
    rng: Any
    best_val_loss: float
    best_epoch: int
    since_best: int
    history: list[EpochEnd]


class Callback(Protocol):
    def on_step_end(self, event: StepEnd) -> None: ...

    def on_epoch_end(self, event: EpochEnd) -> None: ...


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (call before building a model for a reproducible run)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(name: str, params: Any, *, lr: float, weight_decay: float = 0.0) -> Any:
    """An optimiser by name (:data:`OPTIMIZERS`)."""
    import torch

    if name not in OPTIMIZERS:
        raise XrayAtlasError(f"optimizer={name!r}; choose one of {', '.join(OPTIMIZERS)}")
    kw: dict = {"lr": lr, "weight_decay": weight_decay}
    if name == "sgd":
        kw["momentum"] = 0.9
    cls = getattr(torch.optim, OPTIMIZERS[name])
    params = list(params)
    if name in ("adam", "adamw"):
        # The fused kernel steps the 4096 x 512 layer 2.5x faster on CPU than the default
        # per-tensor loop (docs/benchmarks.md); older torch builds lack it on CPU.
        try:
            return cls(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            pass
    return cls(params, **kw)


def make_schedule(name: str, optimizer: Any, *, epochs: int) -> Any | None:
    """A per-epoch learning-rate schedule by name (:data:`SCHEDULES`); ``constant`` is None."""
    import torch

    if name not in SCHEDULES:
        raise XrayAtlasError(f"schedule={name!r}; choose one of {', '.join(SCHEDULES)}")
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(epochs // 3, 1), gamma=0.1)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2)
    return None


def fit(
    model: Any,
    train_batches: Callable[[int], Iterable[tuple[Any, Any]]],
    val_batches: Callable[[], Iterable[tuple[Any, Any]]],
    *,
    loss_fn: Callable[[Any, Any], Any],
    epochs: int,
    optimizer: str | Any = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    device: str = "auto",
    seed: int = 0,
    grad_clip: float | None = None,
    patience: int | None = None,
    amp: bool = False,
    metrics: Callable[[Any, Any], dict] | None = None,
    on_best: Callable[[Any, EpochEnd, tuple[Any, Any]], None] | None = None,
    on_state: Callable[[TrainState], None] | None = None,
    resume: TrainState | None = None,
    callbacks: Iterable[Callback] = (),
    cancel: threading.Event | None = None,
) -> FitResult:
    """Train ``model``.

    Parameters
    ----------
    train_batches : callable(epoch) -> iterable of (x, y)
        Batches of one epoch (a generator of synthetic data, or a DataLoader). Make them a
        function of the epoch number for runs that resume exactly.
    val_batches : callable() -> iterable of (x, y)
        Validation batches (the same each call).
    loss_fn : callable(prediction, target) -> scalar tensor
    epochs : int
        Total epochs (a resumed run goes on up to this number).
    optimizer : str or torch optimiser
        A name of :data:`OPTIMIZERS` (built with ``lr`` and ``weight_decay``) or an instance.
    schedule : str
        Per-epoch learning-rate schedule, one of :data:`SCHEDULES`.
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
    metrics : callable(predictions, targets) -> dict, optional
        Validation metrics per epoch, from all validation predictions and targets (CPU tensors).
    on_best : callable(model, event, outputs), optional
        Called when the validation loss improves (save the best checkpoint here). ``outputs``
        is ``(predictions, targets)``, the validation pass just made (CPU tensors), so that
        what is derived from it (decision thresholds) needs no second pass.
    on_state : callable(TrainState), optional
        Called at the end of every epoch with the state to resume from.
    resume : TrainState, optional
        Go on from this state (weights, optimiser, schedule, random state, history).
    callbacks : iterable of objects with ``on_step_end`` / ``on_epoch_end``
    cancel : threading.Event, optional
        Checked between batches: when set, the run ends after the current batch (checkpoints
        already saved stay intact).
    """
    import torch

    from ..devices import resolve_device

    if not isinstance(epochs, int) or epochs < 1:
        raise XrayAtlasError(f"epochs={epochs!r} must be a positive integer")
    if not lr > 0:
        raise XrayAtlasError(f"lr={lr} must be > 0")
    if not weight_decay >= 0:
        raise XrayAtlasError(f"weight_decay={weight_decay} must be >= 0")
    if grad_clip is not None and not grad_clip > 0:
        raise XrayAtlasError(f"grad_clip={grad_clip} must be > 0")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise XrayAtlasError(f"patience={patience!r} must be a positive integer")
    seed_everything(seed)
    dev = resolve_device(device)
    model.to(dev)
    opt = make_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=weight_decay) \
        if isinstance(optimizer, str) else optimizer
    sched = make_schedule(schedule, opt, epochs=epochs)
    use_amp = amp and dev.type == "cuda"
    callbacks = list(callbacks)
    result = FitResult(0, math.inf, -1)
    since_best, first = 0, 1
    if resume is not None:
        if resume.epoch >= epochs:
            raise XrayAtlasError(f"epochs={epochs}: the run to resume has done {resume.epoch} epochs already; "
                                 "ask for more")
        model.load_state_dict(resume.model)
        opt.load_state_dict(resume.optimizer)
        if sched is not None and resume.schedule:
            sched.load_state_dict(resume.schedule)
        torch.set_rng_state(resume.rng)
        result = FitResult(resume.epoch, resume.best_val_loss, resume.best_epoch, list(resume.history))
        since_best, first = resume.since_best, resume.epoch + 1
    t_start = time.perf_counter()
    for epoch in range(first, epochs + 1):
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
            value = float(loss.detach())
            total += value * x.shape[0]
            n_seen += x.shape[0]
            ev = StepEnd(epoch, step, steps_per_epoch, value, opt.param_groups[0]["lr"],
                         n_seen / max(time.perf_counter() - t0, 1e-9))
            for cb in callbacks:
                cb.on_step_end(ev)
        if result.cancelled or (cancel is not None and cancel.is_set()):
            result.cancelled = True
            break
        model.eval()
        preds, targets = [], []
        keep = metrics is not None or on_best is not None
        with torch.no_grad():
            vl, vn = 0.0, 0
            for x, y in val_batches():
                x, y = x.to(dev), y.to(dev)
                p = model(x).float()
                vl += float(loss_fn(p, y)) * x.shape[0]
                vn += x.shape[0]
                if keep:
                    preds.append(p.cpu())
                    targets.append(y.cpu())
        val_loss = vl / max(vn, 1)
        outputs = (torch.cat(preds), torch.cat(targets)) if preds else (torch.empty(0), torch.empty(0))
        extra = metrics(*outputs) if metrics is not None and preds else {}
        lr_now = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step(val_loss) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else sched.step()
        seconds = time.perf_counter() - t0
        best = val_loss < result.best_val_loss
        elapsed = time.perf_counter() - t_start
        done_here = epoch - first + 1
        ev = EpochEnd(epoch, epochs, total / max(n_seen, 1), val_loss, extra, lr_now, seconds,
                      n_seen / max(seconds, 1e-9), elapsed / done_here * (epochs - epoch), best)
        result.history.append(ev)
        result.epochs_run = epoch
        if best:
            result.best_val_loss, result.best_epoch, since_best = val_loss, epoch, 0
            if on_best is not None:
                on_best(model, ev, outputs)
        else:
            since_best += 1
        if on_state is not None:
            on_state(TrainState(epoch, model.state_dict(), opt.state_dict(),
                                sched.state_dict() if sched is not None else {}, torch.get_rng_state(),
                                result.best_val_loss, result.best_epoch, since_best, list(result.history)))
        for cb in callbacks:
            cb.on_epoch_end(ev)
        if patience is not None and since_best >= patience:
            result.stopped_early = True
            break
    return result
