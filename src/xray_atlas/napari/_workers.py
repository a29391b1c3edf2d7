"""Running core generators on napari thread workers with a progress bar and a cancel button."""

from __future__ import annotations

from typing import Any, Callable, Generator

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ..cube import Progress
from ..errors import XrayAtlasError

__all__ = ["JobBar"]


def _drive(steps: Generator[Progress, None, Any]) -> Generator[Progress, None, Any]:
    return (yield from steps)


class _State:
    def __init__(self) -> None:
        self.alive = True
        self.worker: Any = None

    def die(self, *_: Any) -> None:
        self.alive = False
        if self.worker is not None:
            self.worker.quit()


class JobBar(QWidget):
    """A progress bar, a status line and a Cancel button that run one job at a time.

    A job is a core generator yielding :class:`~xray_atlas.cube.Progress` and returning
    its result; the worker checks for cancellation at every yield, so a cancelled job
    stops at the next tile and its ``on_done`` is never called (no half layer).
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.status = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        self.bar.setVisible(False)
        # A dock closed with its viewer mid-job: stop the job and ignore its last signals.
        # The state lives outside the QObject, since PyQt drops slots of a dying object.
        self._state = _State()
        self.destroyed.connect(self._state.die)

    @property
    def worker(self) -> Any:
        return self._state.worker

    @worker.setter
    def worker(self, value: Any) -> None:
        self._state.worker = value

    @property
    def _alive(self) -> bool:
        return self._state.alive

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(self, steps: Generator[Progress, None, Any], *, what: str,
              on_done: Callable[[Any], None]) -> Any:
        """Run ``steps`` on a worker; call ``on_done(result)`` on the main thread when it ends."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error, show_info

        if self.worker is not None:
            show_info("xray-atlas: another job is running; wait or cancel it first")
            return None
        worker = create_worker(_drive, steps, _start_thread=False)
        self.worker = worker
        self.bar.setVisible(True)
        self.bar.setRange(0, 0)
        self.bar.setFormat(f"{what} %p%")
        self.cancel_button.setEnabled(True)
        self.status.setText(what)

        def on_yield(p: Progress) -> None:
            if not self._alive:
                return
            self.bar.setRange(0, max(p.total, 1))
            self.bar.setValue(p.done)

        def on_returned(result: Any) -> None:
            if worker.abort_requested or not self._alive:
                return  # cancelled after its last tile: the user said no, so no result
            try:
                on_done(result)
            except XrayAtlasError as err:
                show_error(str(err))
            self.status.setText(f"{what}: done")

        def on_error(err: Exception) -> None:
            if not self._alive:
                return
            show_error(str(err) if isinstance(err, XrayAtlasError) else f"{what} failed: {type(err).__name__}: {err}")
            self.status.setText(f"{what}: failed")

        def on_aborted() -> None:
            if self._alive:
                self.status.setText(f"{what}: cancelled")

        state = self._state

        def on_finished() -> None:
            state.worker = None
            if not state.alive:
                return
            self.bar.setVisible(False)
            self.cancel_button.setEnabled(False)

        worker.yielded.connect(on_yield)
        worker.returned.connect(on_returned)
        worker.errored.connect(on_error)
        worker.aborted.connect(on_aborted)
        worker.finished.connect(on_finished)
        worker.start()
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
