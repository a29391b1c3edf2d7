"""A training run followed from napari: the run in a child process, its events on a napari
worker, and the state the Training dock draws (:class:`TrainingStatus`), kept apart from the
dock as careamics-napari keeps its training status.

The run is always a spawned child process, on CPU as on a GPU: the first optimiser step
imports ``torch._dynamo`` and, where torch ships it (every CUDA build from PyPI), triton,
whose LLVM crashes a process that has loaded Mesa's (napari's canvas); the child also gives
its memory back when the run ends. Cancel sets the run's flag, checked between batches.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from psygnal import Signal

from ..errors import XrayAtlasError
from ..training import EpochEnd, Failed, Finished, Preparing, Run, StepEnd, TrainConfig, run_files

__all__ = ["TrainingJob", "TrainingStatus"]

#: Scheduling priority the training process gives up (POSIX nice): napari's event loop, at 0,
#: then wins the CPU whenever it needs it, and training still takes every idle cycle.
NICE = 10


class TrainingStatus:
    """What is known of the current (or last) run, updated from its events.

    Signals
    -------
    progress(value, maximum, format)
        The bar: ``maximum`` 0 is a busy bar; ``format`` as QProgressBar takes it.
    steps_changed()
        A batch's loss was added to :attr:`steps`.
    epochs_changed()
        An epoch ended (:attr:`history`), or the history was cleared.
    text(str)
        One line on where the run stands.
    failed(str)
        The run failed; the message names what.
    running(bool)
        A run began or ended.
    """

    progress = Signal(int, int, str)
    steps_changed = Signal()
    epochs_changed = Signal()
    text = Signal(str)
    failed = Signal(str)
    running = Signal(bool)

    def __init__(self) -> None:
        self.history: list[EpochEnd] = []
        self.steps: tuple[list[float], list[float]] = ([], [])  # (fractional epoch, batch loss)
        self.epochs = 0  # of the current run, for the bar

    def clear(self) -> None:
        self.history = []
        self.steps = ([], [])
        self.epochs_changed.emit()

    def apply(self, ev: Any) -> None:
        """Take one of the run's events."""
        if isinstance(ev, Preparing):
            self.progress.emit(ev.done, max(ev.total, 1), f"preparing data: %v of %m {ev.what}")
        elif isinstance(ev, StepEnd):
            n = max(ev.steps_per_epoch, 1)
            self.progress.emit((ev.epoch - 1) * n + ev.step, self.epochs * n, f"epoch {ev.epoch}: %p%")
            if math.isfinite(ev.loss) and ev.loss > 0:
                self.steps[0].append(ev.epoch - 1 + ev.step / n)
                self.steps[1].append(ev.loss)
                self.steps_changed.emit()
        elif isinstance(ev, EpochEnd):
            self.history.append(ev)
            self.epochs_changed.emit()
            self.text.emit(
                f"epoch {ev.epoch}/{ev.epochs}: train {ev.train_loss:.4g}, validation {ev.val_loss:.4g}"
                f"{' (best)' if ev.best else ''}; {ev.samples_per_s:,.0f} samples/s; "
                f"ETA {ev.eta_s:.0f} s"
            )
        elif isinstance(ev, Finished):
            r = ev.result
            how = "cancelled" if r.cancelled else "stopped early" if r.stopped_early else "done"
            where = f"best model (epoch {r.best_epoch}) at {ev.path}" if ev.path else "no epoch completed, no model"
            self.text.emit(f"{how} after {r.epochs_run} epochs; {where}")
        elif isinstance(ev, Failed):
            self.failed.emit(ev.message)


def _follow(run: Run):
    """Worker body: start the run and pass its events on (None when idle keeps the worker
    responsive to quitting)."""
    run.start()
    try:
        for ev in run.events():
            if ev is not None:
                yield ev
    finally:
        if run.ended is None:  # the worker was quit (dock closed): stop the run too
            run.cancel()


class TrainingJob:
    """Starts, follows and stops one run at a time, reporting to ``status``.

    It outlives the dock's C++ object: :meth:`close` (the dock's ``destroyed``) cancels the
    run and drops the events still on their way.
    """

    def __init__(self, status: TrainingStatus) -> None:
        self.status = status
        self.worker: Any = None
        self.run: Run | None = None
        self.last_out: Path | None = None
        self.last_config: TrainConfig | None = None
        self.alive = True

    @property
    def busy(self) -> bool:
        return self.worker is not None

    @property
    def resumable(self) -> bool:
        """Whether the last run left a state to go on from (written after each complete epoch)."""
        return self.last_out is not None and self.last_config is not None and run_files(self.last_out)[1].is_file()

    def start(self, config: TrainConfig, out: Path, *, resume: bool) -> Any:
        """Start ``config`` into ``out`` (going on from its last epoch with ``resume``); the
        napari worker, or :class:`XrayAtlasError` for a run that cannot start."""
        from napari.qt.threading import create_worker

        if self.busy:
            raise XrayAtlasError("a training run is going on: cancel it first")
        # never on a thread (see the module's docstring); niced, so that the window answers first
        run = Run(config, out, resume=resume, mode="process", nice=NICE)
        self.run, self.last_out, self.last_config = run, out, config
        status = self.status
        status.epochs = config.epochs
        if not resume:
            status.clear()
        status.progress.emit(0, 0, "starting the training process…")
        status.text.emit(f"{'resuming' if resume else 'training'} {config.model} on {config.device} -> {out}")
        status.running.emit(True)
        worker = create_worker(_follow, run, _start_thread=False)
        self.worker = worker
        worker.yielded.connect(lambda ev: status.apply(ev) if self.alive else None)
        worker.errored.connect(lambda err: status.failed.emit(f"training failed: {err}") if self.alive else None)
        worker.finished.connect(self._finished)
        worker.start()
        return worker

    def cancel(self) -> bool:
        """Stop after the current batch (the best model so far stays); whether a run was going."""
        if self.run is None:
            return False
        self.run.cancel()
        return True

    def close(self, *_: Any) -> None:
        """The dock is gone: stop the run, and let nothing reach the dock any more."""
        self.alive = False
        self.cancel()

    def _finished(self) -> None:
        self.worker, self.run = None, None
        if self.alive:
            self.status.running.emit(False)
