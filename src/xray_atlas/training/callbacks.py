"""Callbacks of the training loop: CSV and TensorBoard logs, a terminal progress bar."""

from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from ..errors import XrayAtlasError
from .loop import EpochEnd, Preparing, StepEnd

__all__ = ["CSVLogger", "TensorBoardLogger", "TerminalProgress", "format_seconds"]


def format_seconds(s: float) -> str:
    """``75.2`` -> ``1:15``; hours when needed."""
    s = max(int(round(s)), 0)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class CSVLogger:
    """Append one row per epoch to a CSV file (metrics as ``metric_<name>`` columns)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_step_end(self, event: StepEnd) -> None:
        pass

    def on_epoch_end(self, event: EpochEnd) -> None:
        row = {k: v for k, v in asdict(event).items() if k != "metrics"}
        row.update({f"metric_{k}": v for k, v in event.metrics.items()})
        header = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if header:
                w.writeheader()
            w.writerow(row)


class TensorBoardLogger:
    """Scalars for TensorBoard (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir: str | os.PathLike):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise XrayAtlasError(
                "TensorBoard logging needs the tensorboard package (pip install tensorboard)", path=log_dir
            ) from None
        self.writer = SummaryWriter(os.fspath(log_dir))
        self._step = 0

    def on_step_end(self, event: StepEnd) -> None:
        self._step += 1
        self.writer.add_scalar("loss/step", event.loss, self._step)

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.writer.add_scalar("loss/train", event.train_loss, event.epoch)
        self.writer.add_scalar("loss/val", event.val_loss, event.epoch)
        self.writer.add_scalar("lr", event.lr, event.epoch)
        for k, v in event.metrics.items():
            self.writer.add_scalar(f"metrics/{k}", v, event.epoch)
        self.writer.flush()


class TerminalProgress:
    """One self-rewriting line per epoch on a terminal (a line per epoch when not a TTY)."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 24, min_interval_s: float = 0.1):
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def on_step_end(self, event: StepEnd) -> None:
        now = time.perf_counter()
        if not self._tty or now - self._last < self.min_interval_s:
            return
        self._last = now
        frac = event.step / event.steps_per_epoch if event.steps_per_epoch > 0 else 0.0
        bar = "#" * int(frac * self.width)
        self.stream.write(
            f"\repoch {event.epoch} [{bar:<{self.width}}] {frac:4.0%} loss {event.loss:.4g} "
            f"{event.samples_per_s:,.0f}/s "
        )
        self.stream.flush()

    def on_prepare(self, event: Preparing) -> None:
        now = time.perf_counter()
        last = event.done == event.total
        if not last and (not self._tty or now - self._last < self.min_interval_s):
            return
        self._last = now
        self.stream.write(
            f"{chr(13) if self._tty else ''}preparing data: {event.done} of {event.total} {event.what}"
            f"{chr(10) if last else ' '}"
        )
        self.stream.flush()

    def on_epoch_end(self, event: EpochEnd) -> None:
        metrics = " ".join(f"{k} {v:.4g}" for k, v in event.metrics.items())
        mark = " *" if event.best else ""
        self.stream.write(
            f"{chr(13) if self._tty else ''}epoch {event.epoch}/{event.epochs} train {event.train_loss:.4g} "
            f"val {event.val_loss:.4g} {metrics} lr {event.lr:.3g} {event.seconds:.1f}s "
            f"ETA {format_seconds(event.eta_s)}{mark}\n"
        )
        self.stream.flush()
