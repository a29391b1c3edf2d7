"""The training loop: seeding, device, optional mixed precision, gradient clipping, early
stopping, best-checkpoint and resume-state hooks, cancellation between batches, typed events.

It knows nothing of tasks, data sets or GUIs (docs/dev/architecture.md rule 4): batches come from
callables, results leave through ``on_*`` callbacks and hooks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import XrayAtlasError

__all__ = [
    "fit",
    "FitResult",
    "EpochEnd",
    "StepEnd",
    "Preparing",
    "TrainState",
    "Callback",
    "seed_everything",
    "OPTIMIZERS",
    "SCHEDULES",
]

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
    ranks: Any = None,
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
    ranks : :class:`~.distributed.Ranks`, optional
        Data-parallel training in a process group this process has joined
        (:mod:`.distributed`). Every rank calls ``fit`` alike, with ``train_batches`` giving its
        own share of each batch (the same number of batches on every rank); the model is
        wrapped in DistributedDataParallel, which averages the gradients. Losses, throughput
        and validation are over all ranks (each validates every ``world``-th batch), and the
        results are the same on every rank; ``metrics``, ``on_best``, ``on_state`` and the
        callbacks run on rank 0 only. A cancel on any rank stops all after the same batch.
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
    if ranks is not None and ranks.world < 2:
        ranks = None
    if ranks is not None:
        from .distributed import rank_device

        dev = rank_device(device, ranks.local_rank)
    else:
        dev = resolve_device(device)
    model.to(dev)
    opt = (
        make_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=weight_decay)
        if isinstance(optimizer, str)
        else optimizer
    )
    sched = make_schedule(schedule, opt, epochs=epochs)
    use_amp = amp and dev.type == "cuda"
    callbacks = list(callbacks)
    # decided alike on every rank: the validation outputs are gathered when either wants them
    keep = metrics is not None or on_best is not None
    if ranks is not None and not ranks.main:
        callbacks, on_best, on_state = [], None, None
    result = FitResult(0, math.inf, -1)
    since_best, first = 0, 1
    if resume is not None:
        if resume.epoch >= epochs:
            raise XrayAtlasError(
                f"epochs={epochs}: the run to resume has done {resume.epoch} epochs already; ask for more"
            )
        model.load_state_dict(resume.model)
        opt.load_state_dict(resume.optimizer)
        if sched is not None and resume.schedule:
            sched.load_state_dict(resume.schedule)
        torch.set_rng_state(resume.rng)
        result = FitResult(resume.epoch, resume.best_val_loss, resume.best_epoch, list(resume.history))
        since_best, first = resume.since_best, resume.epoch + 1
    net = model
    if ranks is not None:
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        # DDP starts every rank from rank 0's weights. Buffers are not sent at every step (most
        # are fixed operators; BatchNorm's running statistics are made rank 0's before each
        # validation instead, _same_buffers); torch 2.13 renamed the switch.
        new = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        net = DistributedDataParallel(
            model,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            **{"forward_sync_buffers" if new else "broadcast_buffers": False},
        )
        _same_buffers(model)  # before torch 2.13, broadcast_buffers=False left them out of DDP's first sync
    t_start = time.perf_counter()
    for epoch in range(first, epochs + 1):
        if ranks is not None:  # dropout and the like: other draws on each rank, reproducible per epoch
            torch.manual_seed(_rank_seed(seed, ranks.rank, epoch))
        model.train()
        t0 = time.perf_counter()
        total, n_seen, step = 0.0, 0, 0
        source = train_batches(epoch)
        steps_per_epoch = len(source) if hasattr(source, "__len__") else -1
        for x, y in source:
            if ranks is None and cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            x, y = x.to(dev), y.to(dev)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                pred = net(x)
            loss = loss_fn(pred.float(), y)
            if ranks is None:
                value, n_step, stop = float(loss.detach()), x.shape[0], False
            else:  # the loss of the whole batch, and a cancel on any rank, known to all alike
                value, n_step, stop = _reduce_step(loss, x.shape[0], cancel, dev)
            if not math.isfinite(value):
                raise XrayAtlasError(
                    f"the training loss became {value} at epoch {epoch}, step {step + 1}; lower the learning rate"
                )
            loss.backward()
            if grad_clip is not None:  # on the averaged gradients: the same on every rank
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            step += 1
            total += value * n_step
            n_seen += n_step
            ev = StepEnd(
                epoch,
                step,
                steps_per_epoch,
                value,
                opt.param_groups[0]["lr"],
                n_seen / max(time.perf_counter() - t0, 1e-9),
            )
            for cb in callbacks:
                cb.on_step_end(ev)
            if stop:
                result.cancelled = True
                break
        if result.cancelled or (ranks is None and cancel is not None and cancel.is_set()):
            result.cancelled = True
            break
        model.eval()
        if ranks is not None:
            _same_buffers(model)
        preds, targets = [], []
        with torch.no_grad():
            vl, vn = 0.0, 0
            for j, (x, y) in enumerate(val_batches()):
                if ranks is not None and j % ranks.world != ranks.rank:
                    continue
                x, y = x.to(dev), y.to(dev)
                p = model(x).float()
                vl += float(loss_fn(p, y)) * x.shape[0]
                vn += x.shape[0]
                if keep:
                    preds.append((j, p.cpu()))
                    targets.append(y.cpu())
        if ranks is not None:
            vl, vn = _sum_over_ranks([vl, vn], dev)
            if keep:
                preds, targets = _gather_outputs(preds, targets, ranks)
        val_loss = vl / max(vn, 1)
        preds = [p for _, p in preds]
        outputs = (torch.cat(preds), torch.cat(targets)) if preds else (torch.empty(0), torch.empty(0))
        extra = metrics(*outputs) if metrics is not None and preds else {}
        lr_now = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step(val_loss) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else sched.step()
        seconds = time.perf_counter() - t0
        best = val_loss < result.best_val_loss
        elapsed = time.perf_counter() - t_start
        done_here = epoch - first + 1
        ev = EpochEnd(
            epoch,
            epochs,
            total / max(n_seen, 1),
            val_loss,
            extra,
            lr_now,
            seconds,
            n_seen / max(seconds, 1e-9),
            elapsed / done_here * (epochs - epoch),
            best,
        )
        result.history.append(ev)
        result.epochs_run = epoch
        failed = None
        try:
            if best:
                result.best_val_loss, result.best_epoch, since_best = val_loss, epoch, 0
                if on_best is not None:
                    on_best(model, ev, outputs)
            else:
                since_best += 1
            if on_state is not None:
                on_state(
                    TrainState(
                        epoch,
                        model.state_dict(),
                        opt.state_dict(),
                        sched.state_dict() if sched is not None else {},
                        torch.get_rng_state(),
                        result.best_val_loss,
                        result.best_epoch,
                        since_best,
                        list(result.history),
                    )
                )
            for cb in callbacks:
                cb.on_epoch_end(ev)
        except Exception as err:  # noqa: BLE001 - raised on every rank by agree()
            if ranks is None:
                raise
            failed = err
        if ranks is not None:
            from .distributed import agree

            # rank 0 has written this epoch's files (or failed to): the others wait for it here
            agree(failed, ranks)
        if patience is not None and since_best >= patience:
            result.stopped_early = True
            break
    return result


def _rank_seed(seed: int, rank: int, epoch: int) -> int:
    """Torch's seed for ``rank`` in ``epoch`` of a data-parallel run."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _reduce_step(loss: Any, n: int, cancel: threading.Event | None, dev: Any) -> tuple[float, int, bool]:
    """(mean loss of the whole batch, its size, whether a rank was cancelled) over all ranks."""
    import torch
    import torch.distributed as dist

    t = torch.zeros(3, dtype=torch.float64, device=dev)
    t[0] = loss.detach().double() * n
    t[1] = n
    t[2] = float(cancel is not None and cancel.is_set())
    dist.all_reduce(t)
    total, size, stop = t.tolist()
    return total / max(size, 1.0), int(size), stop > 0


def _sum_over_ranks(values: list[float], dev: Any) -> list[float]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return t.tolist()


def _same_buffers(model: Any) -> None:
    """Give every rank rank 0's buffers (BatchNorm's running statistics drift apart, each rank
    seeing its own share of the batches), so all validate, and rank 0 saves, one model."""
    import torch.distributed as dist

    for b in model.buffers():
        dist.broadcast(b.data, src=0)


def _gather_outputs(preds: list, targets: list, ranks: Any) -> tuple[list, list]:
    """Rank 0 gets every rank's validation outputs, in the order of the batches; the others
    get empty lists."""
    import torch.distributed as dist

    mine = [(j, p, t) for (j, p), t in zip(preds, targets)]
    every: list | None = [None] * ranks.world if ranks.main else None
    dist.gather_object(mine, every, dst=0)
    if not ranks.main:
        return [], []
    items = sorted((item for part in every for item in part), key=lambda item: item[0])
    return [(j, p) for j, p, _ in items], [t for _, _, t in items]
