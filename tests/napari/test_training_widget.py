"""The Training dock (issue 7): form from the core's tables; start, live updates, cancel and
resume with real button clicks; the window stays responsive; bad input. Runs train in a child
process, so that torch's compiler stack never enters napari's process (issue 26: triton
imported after napari's OpenGL crashed it; the test extra installs triton on Linux x86-64,
so these tests run with it importable, as PyPI's CUDA torch users do)."""

import sys
import time

import numpy as np
import pytest
import torch
from qtpy.QtCore import QElapsedTimer, Qt, QTimer

from xray_atlas.models import build, load_model
from xray_atlas.models.catalogue import list_models
from xray_atlas.training import EpochEnd, StepEnd, run_files
from xray_atlas.training.checkpoint import load_state
from xray_atlas.training.sources import SyntheticSpectra
from xray_atlas.training.tasks import TASKS

SMALL = {"n_train": 1024, "n_val": 128, "n_channels": 1024, "gain_kev": 0.02}


@pytest.fixture
def training(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Training")
    return widget


def _small_maps(widget, *, epochs=3, n_train=SMALL["n_train"]):
    widget.task_combo.setCurrentText("maps")
    for k, v in {**SMALL, "n_train": n_train}.items():
        widget.source_form.set_value(k, v)
    widget.epochs.setValue(epochs)
    widget.batch_size.setValue(32)
    widget.device_combo.setCurrentText("cpu")


def _events(worker):
    seen = []
    worker.yielded.connect(seen.append)
    return seen


def _wait(qtbot, widget, timeout=120000):
    qtbot.waitUntil(lambda: not widget.busy, timeout=timeout)


def _compiler_modules():
    """torch's compiler stack loaded in this (napari's) process: torch.optim imports dynamo at
    the first step, dynamo imports triton where installed, and triton's LLVM after Mesa's
    (napari's canvas) is a segmentation fault."""
    # a None entry is napari/_guards.keep_triton_out's "not importable" marker, not a module
    return sorted(
        m
        for m, mod in sys.modules.items()
        if mod is not None and m.startswith(("triton", "torch._dynamo", "torch._inductor"))
    )


def test_form_follows_the_task_table(training):
    assert [training.task_combo.itemText(i) for i in range(training.task_combo.count())] == list(TASKS)
    for name, task in TASKS.items():
        training.task_combo.setCurrentText(name)
        assert [training.model_combo.itemText(i) for i in range(training.model_combo.count())] == task.models()
        assert [training.loss_combo.itemText(i) for i in range(training.loss_combo.count())] == list(task.losses)
        source = task.sources[training.source_combo.currentText()]
        assert set(training.source_form.fields) == set(source.parameters(name))
    training.task_combo.setCurrentText("images")
    training.model_combo.setCurrentText("image-fnn")  # study 000 Table 1: SGD, lr 0.01, weight decay 0.001
    assert training.optimizer_combo.currentText() == "sgd" and training.lr.value() == pytest.approx(0.01)
    assert training.weight_decay.value() == pytest.approx(1e-3)
    training.task_combo.setCurrentText("elements")
    training.model_combo.setCurrentText("vit1d")  # study 003: Adam 1e-4, batch 128, 10 epochs
    assert training.lr.value() == pytest.approx(1e-4) and training.batch_size.value() == 128
    training.model_combo.setCurrentText("spectral-cnn")  # its own: 1e-3, batch 256
    assert training.lr.value() == pytest.approx(1e-3) and training.batch_size.value() == 256


def test_start_live_updates_then_resume(viewer, training, qtbot, errors):
    _small_maps(training)
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    worker = training.worker
    assert worker is not None and not training.start_button.isEnabled() and training.cancel_button.isEnabled()
    seen = _events(worker)
    _wait(qtbot, training)
    assert errors() == []
    assert any(isinstance(e, StepEnd) for e in seen) and [e.epoch for e in seen if isinstance(e, EpochEnd)] == [1, 2, 3]
    # live curves and table
    assert training.table.rowCount() == 3 and training.table.item(2, 0).text() == "3"
    assert len(training.val_curve.getData()[0]) == 3 and len(training.step_curve.getData()[0]) >= 3
    assert training.status.text().startswith("done after 3 epochs")
    out = training.last_out
    assert training.resume_button.isEnabled() and training.out_edit.text() == ""
    assert _compiler_modules() == [], "napari's process imported torch's compiler stack (issue 26)"
    # the model loads and beats the untrained one on held-out spectra; it is listed at once
    model, card = load_model(out)
    assert card.task == "maps" and len(card.outputs) == 12
    src = SyntheticSpectra("maps", **SMALL)
    src.prepare(seed=999)
    x, y = (torch.from_numpy(a) for a in src._val)
    torch.manual_seed(1)
    untrained, _ = build("fcn", **card.config)
    with torch.no_grad():
        err, err0 = float((model(x) - y).abs().mean()), float((untrained(x) - y).abs().mean())
    assert err < 0.8 * err0
    assert out.resolve() in [m.path for m in list_models("maps")]
    # resume: two more epochs on the same model and curves, with the run's own settings even
    # though the form has moved on since (it used to fail: "settings differ ...: lr")
    training.epochs.setValue(5)
    training.lr.setValue(0.05)
    qtbot.mouseClick(training.resume_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, training)
    assert training.table.rowCount() == 5 and [int(training.table.item(r, 0).text()) for r in range(5)] == [
        1,
        2,
        3,
        4,
        5,
    ]
    state, settings = load_state(run_files(out)[1])
    assert state.epoch == 5 and settings["epochs"] == 5 and settings["lr"] == pytest.approx(1e-3)
    assert errors() == [] and _compiler_modules() == []


def test_cancel_keeps_the_last_good_model_and_the_window_responsive(viewer, training, qtbot):
    _small_maps(training, epochs=200, n_train=4096)
    gaps = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    seen = _events(training.worker)
    qtbot.waitUntil(lambda: sum(isinstance(e, EpochEnd) for e in seen) >= 2, timeout=120000)
    gaps.clear()  # measure while training is in full swing (data drawn, model stepping, plots updated)
    qtbot.wait(1500)
    timer.stop()
    latency = max(gaps) - 10
    print(f"event-loop latency while training: max {latency} ms, median {np.median(gaps) - 10:.1f} ms")
    assert latency < 100, f"event loop blocked for {latency} ms while training"
    t0 = time.perf_counter()
    qtbot.mouseClick(training.cancel_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, training, timeout=30000)
    assert time.perf_counter() - t0 < 5  # one batch of 32 spectra, not an epoch
    assert training.status.text().startswith("cancelled after")
    done = [e.epoch for e in seen if isinstance(e, EpochEnd)]
    assert 2 <= len(done) < 200
    model, card = load_model(training.last_out)
    assert card.metrics["epoch"] <= done[-1]


def test_bad_input_is_refused_before_any_work(viewer, training, qtbot, errors, tmp_path):
    training.task_combo.setCurrentText("images")
    training.source_form.set_value("root", str(tmp_path))
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    assert training.worker is None and any("not an image dataset" in m for m in errors())
    training.task_combo.setCurrentText("maps")
    (tmp_path / "notes.txt").write_text("x")
    training.out_edit.setText(str(tmp_path / "notes.txt"))
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    assert training.worker is None and any("exists and is not a model" in m for m in errors())
    training.out_edit.setText("")
    training.source_form.set_value("lines", "Fe-K, Xx-K")
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    assert training.worker is None and any("Xx" in m for m in errors())
    assert (tmp_path / "notes.txt").read_text() == "x"
    qtbot.mouseClick(training.resume_button, Qt.MouseButton.LeftButton)  # disabled: nothing to resume
    assert training.worker is None


def test_preparing_data_shows_progress_and_cancels(viewer, training, qtbot):
    """Making 60 paintings takes a minute: the bar counts them and Cancel stops at the next."""
    training.task_combo.setCurrentText("maps")
    training.source_combo.setCurrentText("synthetic-paintings")
    for k, v in {"n_paintings": 60, "height": 8, "width": 8, "n_channels": 1024}.items():
        training.source_form.set_value(k, v)
    training.model_combo.setCurrentText("prior-mlp")
    training.device_combo.setCurrentText("cpu")
    qtbot.mouseClick(training.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: training.bar.value() >= 2 and "preparing data" in training.bar.format(), timeout=60000)
    assert training.bar.maximum() == 60 and training.bar.text().startswith("preparing data: ")
    t0 = time.perf_counter()
    qtbot.mouseClick(training.cancel_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, training, timeout=30000)
    assert time.perf_counter() - t0 < 10  # one painting, not the other fifty
    assert training.status.text().startswith("cancelled after 0 epochs") and "no model" in training.status.text()
    assert not training.last_out.exists()  # nothing written: the run's folder comes after the data
    assert not training.resume_button.isEnabled()  # nothing to resume (it stayed enabled: issue 26)
    qtbot.mouseClick(training.resume_button, Qt.MouseButton.LeftButton)
    assert training.worker is None


def test_closing_the_dock_stops_its_run(viewer, training, qtbot, errors):
    """The dock's job outlives the widget: closing the dock mid-run cancels the child process
    after its batch, and the events still on their way reach neither the dead widget nor
    the user (a late one on a deleted QLabel would raise RuntimeError in Qt's event loop)."""
    _small_maps(training, epochs=50, n_train=8192)
    job, status = training.job, training.training
    seen = _events(training.start())
    qtbot.waitUntil(lambda: any(isinstance(e, StepEnd) for e in seen), timeout=120000)
    run = job.run
    training.close()  # what napari's window does to its docks when it closes
    qtbot.waitUntil(lambda: job.worker is None, timeout=120000)
    assert not job.alive and run.ended is not None
    assert len(status.history) < 50  # stopped, not run to the end
    assert errors() == []
