"""Running core generators on napari thread workers with a progress bar and a cancel button,
and handing their results to the viewer without freezing it."""

from __future__ import annotations

import contextlib
import gc
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from qtpy.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..cube import Progress
from ..errors import XrayAtlasError
from ._layers import to_hide
from ._notify import notify, notify_error

__all__ = ["JobBar", "Delivery", "set_progress"]

#: Milliseconds between two layers of a delivery. With 0 Qt ran two zero-timers in one pass
#: of the event loop (two layers, 300 ms, between two ticks of a 10 ms timer); 15 ms lets the
#: loop paint and take input between layers, for 0.4 s more over a run's 29 layers.
STEP_MS = 15


@dataclass
class Delivery:
    """What a finished job hands to the viewer: layers, one toast, and details for the log.

    ``on_done`` callbacks of :meth:`JobBar.start` return one. Its layers are added one after
    the other, each over several turns of the event loop (:meth:`JobBar.deliver`; adding a
    run's 13 maps layers at once froze the window for 2.5 s on 2 cores with software OpenGL).
    The first layer goes on top of the layer list and each later one below the earlier ones,
    so that the list reads top-down in delivery order: put the layers to see first. Once all
    are in, the readable-picture rule (:func:`._layers.show_readable`) keeps the delivered
    visible layers in view and hides earlier results, one per turn, and the toast is shown.

    Parameters
    ----------
    viewer : napari.Viewer
    layers : list of (data, kwargs, layer type)
        In the order to add; kwargs as for ``viewer.add_<type>``.
    message : str
        The one notification of the run, in a conservator's words.
    details : list of str
        The run's notes, for the dock's details log.
    hide_cubes : bool
        Whether the cubes' total-counts images are hidden too (under additive maps they wash
        the picture out; under a labels layer they are the picture).
    hide_results : bool
        Whether earlier results are hidden at all (the spectral docks' maps pile up into a
        white canvas; a diffraction reconstruction or an activation map does not).
    """

    viewer: Any
    layers: list = field(default_factory=list)
    message: str = ""
    details: list = field(default_factory=list)
    hide_cubes: bool = True
    hide_results: bool = True


@contextlib.contextmanager
def _without_selecting(layers: Any) -> Iterator[None]:
    """Insert into napari's layer list without selecting each new layer: napari swaps the
    layer controls on every selection, a third of a new layer's cost. The flag is private, so
    it is used only where present, and napari >= 0.9's warning about it is kept quiet."""

    def flag(value: Any = None) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            if value is None:
                return getattr(layers, "_activate_on_insert", None)
            layers._activate_on_insert = value
            return value

    before = flag()
    if before is not None:
        flag(False)
    try:
        yield
    finally:
        if before is not None:
            flag(before)


def freeze_startup_heap() -> None:
    """Move the objects alive now (napari, Qt, torch and this plugin, loaded for good) out of
    the cyclic garbage collector's reach, once per process.

    Python's full collection walks every tracked object; in napari's process with torch
    loaded it took 470-520 ms, and it fell while a run's layers arrived (the longest stalls of
    ``benchmarks/bench_gui_stall.py``). Frozen, a full collection walks only what was made
    since: 80-230 ms. Objects freed by reference counting are freed as before; only cycles
    among the objects alive at this moment stay uncollected.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()


class _Collector:
    """Python's cyclic garbage collector, paused while any delivery is going on.

    A full (generation 2) collection walks every object made since the startup heap was
    frozen (:func:`freeze_startup_heap`), each delivered layer's thousands among them: after
    a maps run, those that fell while the probabilities' layers arrived took 340-620 ms
    (load 5-7 on 2 cores), the longest gaps of that arrival. Paused, none falls in a
    delivery's turns; objects freed by reference counting are freed as before, and the
    collections resume (with the same thresholds) once the last delivery ends.
    """

    pauses = 0
    was_enabled = False

    @classmethod
    def pause(cls) -> None:
        if cls.pauses == 0:
            cls.was_enabled = gc.isenabled()
            gc.disable()
        cls.pauses += 1

    @classmethod
    def resume(cls) -> None:
        cls.pauses = max(cls.pauses - 1, 0)
        if cls.pauses == 0 and cls.was_enabled:
            gc.enable()


def _top_window(widget: QWidget) -> QWidget:
    """The widget at the top of ``widget``'s parents: napari's main window for a dock, floating
    or not (a floating dock keeps the main window as its parent)."""
    while widget.parentWidget() is not None:
        widget = widget.parentWidget()
    return widget


class _RepaintHold(QObject):
    """Holds back a window's repaints: swallows its repaint requests (Qt's ``UpdateRequest``,
    posted to the top-level widget) until :meth:`release`, which posts one. Qt keeps every
    dirty region meanwhile, so the one repaint paints what changed, as Qt would have."""

    def __init__(self, window: QWidget):
        super().__init__()
        self.window = window
        self.swallowed = False
        window.installEventFilter(self)

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.UpdateRequest:
            self.swallowed = True
            return True
        return False

    def release(self) -> None:
        self.window.removeEventFilter(self)
        if self.swallowed:
            QCoreApplication.postEvent(
                self.window, QEvent(QEvent.Type.UpdateRequest), Qt.EventPriority.LowEventPriority.value
            )


_HOLDS: dict[int, _RepaintHold] = {}


def repaint_held(window: QWidget) -> bool:
    """Whether a delivery holds back ``window``'s repaints now."""
    return id(window) in _HOLDS


def _hold_repaint(window: QWidget, hold: bool) -> None:
    """Hold back (or let go) every repaint of ``window``; letting go queues one repaint of
    what changed meanwhile. A window deleted meanwhile (the viewer closed) is left alone."""
    key = id(window)
    with contextlib.suppress(RuntimeError):
        if hold and key not in _HOLDS:
            _HOLDS[key] = _RepaintHold(window)
        elif not hold and key in _HOLDS:
            _HOLDS.pop(key).release()
    if not hold:
        _HOLDS.pop(key, None)


def _overlays_off(layer: Any) -> list:
    """Hide ``layer``'s own overlays before its insert and return those hidden.

    napari makes the visuals of a layer's visible overlays during its insert, shown or not:
    a Labels layer's polygon and brush overlays, a third of its insert (demo viewer, 2
    cores). napari makes them when an overlay turns visible again, so they can come in a
    turn of their own. The overlays are private to napari: without them, nothing is done.
    """
    overlays = getattr(layer, "_overlays", None)
    if overlays is None or not hasattr(overlays, "values"):
        return []
    off = [ov for ov in overlays.values() if getattr(ov, "visible", False)]
    for ov in off:
        ov.visible = False
    return off


def _arrival_turns(window: QWidget, insert: Callable[[], tuple], shown: bool) -> list:
    """One layer's arrival as steps, each for its own turn of the event loop.

    napari inserts a layer and repaints the window in one pass of the event loop: Qt handles
    the repaint that the insert queued before the next timer (on 2 cores with software
    OpenGL, 55-90 ms for an image layer's insert, then 20-30 ms for the canvas and about
    50 ms for Qt's composition of the window). Here the window's repaint is held back from
    the insert on; the layer is inserted hidden (napari neither slices nor draws a hidden
    layer) and without its overlays (:func:`_overlays_off`); its overlays and the layer are
    shown in turns of their own; then the window repaints, once. ``insert`` inserts the
    layer hidden and returns it with the overlays it hid.
    """
    turns: list = []

    def first() -> None:
        _hold_repaint(window, True)
        layer, overlays = insert()
        if overlays:
            turns.insert(0, lambda: [setattr(ov, "visible", True) for ov in overlays])
        if shown:
            turns.insert(len(turns) - 1, lambda: setattr(layer, "visible", True))

    turns.extend([first, lambda: _hold_repaint(window, False)])
    return turns


def set_progress(bar: QProgressBar, value: int, maximum: int | None = None) -> None:
    """Move a progress bar without a synchronous repaint.

    ``QProgressBar.setValue`` repaints at once, and in napari's window (an OpenGL canvas
    composed with the widgets) that repaints the whole window: 50-150 ms a call on a 2-core
    machine, which froze the window while a run's layers arrived. With updates off the value
    changes silently; turning them on again queues an ordinary repaint.
    """
    bar.setUpdatesEnabled(False)
    if maximum is not None:
        bar.setRange(0, maximum)
    bar.setValue(value)
    bar.setUpdatesEnabled(True)


def show_progress(bar: QProgressBar, value: int, maximum: int, text: str) -> None:
    """Show ``bar`` at ``value`` of ``maximum`` (0: busy, no end known) with ``text`` (a
    QProgressBar format): what a :class:`~xray_atlas.napari._training.TrainingStatus` reports."""
    bar.setVisible(True)
    bar.setFormat(text)
    if maximum:
        set_progress(bar, value, maximum)
    else:
        bar.setRange(0, 0)


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
        self.details_button = QPushButton("Details")
        self.details_button.setToolTip("what each run did: its notes, warnings and errors in full")
        self.details_button.clicked.connect(self.show_details)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        row.addWidget(self.details_button)
        self.bar.setVisible(False)
        #: The details log: every run's outcome, notes and errors, newest last.
        self.lines: list[str] = []
        self._dialog: QDialog | None = None
        self._feed: list | None = None  # layers still to add, while a delivery is going on
        self._on_cancel: Callable[[], None] | None = None  # the running job's own way to stop
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
    def alive(self) -> bool:
        """Whether the bar's widgets still exist (a closed dock's are deleted by Qt)."""
        return self._state.alive

    @property
    def busy(self) -> bool:
        """A job runs, or its layers are still being added."""
        return self.worker is not None or self._feed is not None

    # -- the details log -------------------------------------------------------------------
    def log(self, line: str) -> None:
        """Append ``line`` to the details log (shown by the Details button)."""
        self.lines.append(f"{time.strftime('%H:%M:%S')}  {line}")
        if self._dialog is not None:
            self._dialog.findChild(QPlainTextEdit).setPlainText("\n".join(self.lines))

    def show_details(self) -> QDialog:
        """Open (or raise) a window with the details log."""
        if self._dialog is None:
            self._dialog = QDialog(self)
            self._dialog.setWindowTitle("xray-atlas: details")
            text = QPlainTextEdit()
            text.setReadOnly(True)
            QVBoxLayout(self._dialog).addWidget(text)
            self._dialog.resize(640, 360)
        self._dialog.findChild(QPlainTextEdit).setPlainText("\n".join(self.lines) or "nothing has run yet")
        self._dialog.show()
        self._dialog.raise_()
        return self._dialog

    # -- delivering results ------------------------------------------------------------------
    def deliver(self, delivery: Delivery, *, what: str = "") -> None:
        """Add ``delivery``'s layers, each over several event-loop turns; then the readable
        picture, the toast and the log.

        Each layer arrives over several turns of the event loop (:func:`_arrival_turns`):
        napari's insert of the layer, hidden, with the window's repaint held back; its
        overlays, then the layer, shown; then the repaint. Earlier results are hidden the same
        way, one per turn, and the toast comes in a turn of its own. No turn holds more than
        one of these, so the window answers between them; the garbage collector is paused
        meanwhile (:class:`_Collector`)."""
        from napari.layers import Layer

        added: list = []
        self._feed = list(delivery.layers)
        n = len(self._feed)
        self.bar.setRange(0, max(n, 1))
        self.bar.setFormat("adding layers %v/%m")
        state = self._state
        window = _top_window(self)
        turns: list | None = None  # the steps left of the layer arriving
        _Collector.pause()
        ended = []

        def end() -> None:  # every way out: the window repaints, the collector runs again
            _hold_repaint(window, False)
            if not ended:
                ended.append(True)
                _Collector.resume()

        def insert(data: Any, kwargs: dict, kind: str) -> tuple:
            layer = Layer.create(data, kwargs, kind)
            overlays = _overlays_off(layer)
            layers = delivery.viewer.layers
            # on top, then each below the earlier ones: the list reads as delivered. None is
            # selected: selecting swaps napari's layer controls, which made the first layer's
            # turn 490 ms against 55-90 ms for the others (demo viewer, 2 cores)
            at = layers.index(added[-1]) if added and added[-1] in layers else len(layers)
            with _without_selecting(layers):
                layers.insert(at, layer)
            added.append(layer)
            return layer, overlays

        hiding: list | None = None  # earlier results still to hide, once all layers are in

        def step() -> None:
            nonlocal turns, hiding
            if not state.alive or self._feed is None:  # closed, or cancelled (cancel() said so)
                while turns:  # the layer arriving is shown as delivered, and the window repaints
                    turns.pop(0)()
                end()
                return
            if turns is None and self._feed:
                data, kwargs, kind = self._feed.pop(0)
                turns = _arrival_turns(
                    window, partial(insert, data, {**kwargs, "visible": False}, kind), kwargs.get("visible", True)
                )
            if turns:
                try:
                    turns.pop(0)()
                except Exception as err:  # noqa: BLE001 - napari refused the layer: say so, and never leave the window unpainted
                    end()
                    self._feed = turns = None
                    if self.worker is None:
                        self._idle()
                    notify_error(f"{what}: a layer could not be added: {type(err).__name__}: {err}", log=self)
                    self.status.setText(f"{what}: failed")
                    return
                if not turns:  # the layer is in, shown and painted
                    turns = None
                    set_progress(self.bar, len(added))
                    self.status.setText(f"{what}: adding layers {len(added)}/{n}")
                QTimer.singleShot(STEP_MS, step)  # a turn of the loop between two steps: input, ticks
                return
            if hiding is None:  # the readable picture: earlier results hidden, one per turn, unpainted
                shown = [lyr for lyr in added if lyr.visible]
                hide = delivery.hide_results
                hiding = to_hide(delivery.viewer, shown, hide_cubes=delivery.hide_cubes) if hide else []
            if hiding:
                _hold_repaint(window, True)
                hiding.pop(0).visible = False
                QTimer.singleShot(STEP_MS, step)
                return
            if not ended:  # the picture repaints in this turn, the toast comes in the next
                end()
                QTimer.singleShot(STEP_MS, step)
                return
            self._feed = None
            if self.worker is None:
                self._idle()
            self.status.setText(f"{what}: done" if what else "done")
            if delivery.message:
                notify(delivery.message, log=self, details=delivery.details)

        step()

    def start(
        self,
        steps: Generator[Progress, None, Any],
        *,
        what: str,
        on_done: Callable[[Any], Delivery | None],
        on_cancel: Callable[[], None] | None = None,
    ) -> Any:
        """Run ``steps`` on a worker; call ``on_done(result)`` on the main thread when it ends
        and deliver the :class:`Delivery` it returns, if any.

        With ``on_cancel``, Cancel calls it instead of stopping the worker: the job stops
        itself and still returns a result (a batch over a folder returns its report, with
        the scans not done marked cancelled), which ``on_done`` gets."""
        freeze_startup_heap()  # at the first run: napari, Qt and the models it loaded are in
        from napari.qt.threading import create_worker

        if self.busy:
            notify("Another job is running: wait for it or cancel it first")
            return None
        worker = create_worker(_drive, steps, _start_thread=False)
        self.worker = worker
        self._on_cancel = on_cancel
        self.bar.setVisible(True)
        self.bar.setRange(0, 0)
        self.bar.setFormat(f"{what} %p%")
        self.cancel_button.setEnabled(True)
        self.status.setText(what)
        started = time.perf_counter()
        self.log(f"{what}: started")

        def on_yield(p: Progress) -> None:
            if not self.alive:
                return
            set_progress(self.bar, p.done, max(p.total, 1))

        def on_returned(result: Any) -> None:
            if worker.abort_requested or not self.alive:
                return  # cancelled after its last tile: the user said no, so no result
            self.log(f"{what}: computed in {time.perf_counter() - started:.1f} s")
            try:
                delivery = on_done(result)
            except XrayAtlasError as err:
                notify_error(err, log=self)
                return
            if isinstance(delivery, Delivery):
                self.deliver(delivery, what=what)
            else:
                self.status.setText(f"{what}: done")

        def on_error(err: Exception) -> None:
            if not self.alive:
                return
            if isinstance(err, XrayAtlasError):
                notify_error(err, log=self)
            else:
                notify_error(f"{what} failed: {type(err).__name__}: {err}", log=self)
            self.status.setText(f"{what}: failed")

        def on_aborted() -> None:
            if self.alive:
                self.status.setText(f"{what}: cancelled")
                self.log(f"{what}: cancelled")

        state = self._state

        def on_finished() -> None:
            state.worker = None
            if worker.abort_requested:  # its finally clauses run now (a child process stops), not at collection
                with contextlib.suppress(Exception):
                    steps.close()
            if state.alive:
                self._on_cancel = None
            if state.alive and self._feed is None:
                self._idle()

        worker.yielded.connect(on_yield)
        worker.returned.connect(on_returned)
        worker.errored.connect(on_error)
        worker.aborted.connect(on_aborted)
        worker.finished.connect(on_finished)
        worker.start()
        return worker

    def _idle(self) -> None:
        self.bar.setVisible(False)
        self.cancel_button.setEnabled(False)

    def cancel(self) -> None:
        """Stop the job at its next tile, or stop adding its layers."""
        if self.worker is not None and self._on_cancel is not None:
            self._on_cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling: the work already started ends first")
        elif self.worker is not None:
            self.worker.quit()
        elif self._feed is not None:
            self._feed = None  # the next step sees it, lets the window repaint and adds nothing more
            self.status.setText("cancelled; the layers added so far stay")
            self.log("cancelled while adding layers; those added so far stay")
            self._idle()
