"""Training runs of the registered tasks: files, determinism, cancel, resume, background
runs, bad input (issue 7)."""

import json
import os
import threading

import numpy as np
import pytest
import torch

from xray_atlas import XrayAtlasError
from xray_atlas.io.hdf5 import write_cube
from xray_atlas.models import build, load_model
from xray_atlas.models.catalogue import list_models
from xray_atlas.training import Failed, Finished, Run, StepEnd, check_run, make_config, run_files, train
from xray_atlas.training.sources import SyntheticSpectra
from xray_atlas.training.tasks import TASKS

SMALL = {"n_train": 1024, "n_val": 128, "n_channels": 1024, "gain_kev": 0.02}


def _maps_config(**kw):
    settings = dict(
        epochs=3, device="cpu", batch_size=32, source_params=dict(SMALL), model_params={"hidden": (256, 64)}
    )
    settings.update(kw)
    return make_config("maps", **settings)


def _held_out_mae(model, n=256):
    src = SyntheticSpectra("maps", **SMALL)
    src.prepare(seed=12345)  # a seed no run below uses
    x, y = src._val
    with torch.no_grad():
        return float((model(torch.from_numpy(x)) - torch.from_numpy(y)).abs().mean())


def test_maps_run_writes_a_model_that_beats_the_untrained_one(tmp_path):
    out = tmp_path / "maps-model"
    outcome = train(_maps_config(), out)
    assert outcome.path == out and outcome.result.epochs_run == 3
    model, card = load_model(out)
    assert card.task == "maps" and card.outputs == [
        "S-K",
        "K-K",
        "Ca-K",
        "Cr-K",
        "Mn-K",
        "Fe-K",
        "Cu-K",
        "Zn-K",
        "Sr-K",
        "Au-L",
        "Hg-L",
        "Pb-L",
    ]
    assert card.inputs["n_channels"] == 1024 and card.inputs["energy_gain_kev"] == 0.02
    assert card.training_data["source"] == "synthetic-spectra" and card.seed == 0
    assert card.metrics["epoch"] == outcome.result.best_epoch and "pearson" in card.metrics
    assert card.training["lr"] == 1e-3 and card.package_version and card.thresholds == {}
    torch.manual_seed(0)
    untrained, _ = build("fcn", **card.config)
    trained, fresh = _held_out_mae(model), _held_out_mae(untrained)
    assert trained < 0.6 * fresh  # measured: 82 against 195 counts
    _, state, log = run_files(out)
    assert state.is_file() and len(log.read_text().splitlines()) == 4
    assert [m.path for m in list_models("maps") if not m.shipped] == [out.resolve()]  # listed at once
    assert [m for m in list_models("elements") if not m.shipped] == []


def test_a_throw_away_run_is_not_listed(tmp_path):
    outcome = train(_maps_config(epochs=1), tmp_path / "bench.safetensors", remember=False)
    assert outcome.path.is_file()
    assert [m for m in list_models("maps") if not m.shipped] == []


def test_same_seed_same_metrics_twice(tmp_path):
    a = train(_maps_config(epochs=2), tmp_path / "a").result
    b = train(_maps_config(epochs=2), tmp_path / "b").result
    assert [(e.train_loss, e.val_loss, e.metrics) for e in a.history] == [
        (e.train_loss, e.val_loss, e.metrics) for e in b.history
    ]


def test_cancel_within_one_batch_then_resume(tmp_path):
    out = tmp_path / "m.safetensors"
    cancel = threading.Event()
    seen = []

    class CancelInEpoch3:
        def on_step_end(self, ev):
            seen.append((ev.epoch, ev.step))
            if ev.epoch == 3 and ev.step == 2:
                cancel.set()

        def on_epoch_end(self, ev):
            pass

    res = train(_maps_config(epochs=5), out, callbacks=[CancelInEpoch3()], cancel=cancel).result
    assert res.cancelled and res.epochs_run == 2 and seen[-1] == (3, 2)  # not one batch more
    model, card = load_model(out)  # the last good checkpoint, intact
    assert card.metrics["epoch"] == res.best_epoch <= 2
    # resume goes on from epoch 3 to 5 and gives the uninterrupted run's numbers
    resumed = train(_maps_config(epochs=5), out, resume=True).result
    straight = train(_maps_config(epochs=5), tmp_path / "s").result
    assert [e.epoch for e in resumed.history] == [1, 2, 3, 4, 5]
    assert [e.val_loss for e in resumed.history] == [e.val_loss for e in straight.history]
    with pytest.raises(XrayAtlasError, match="differ from the run being resumed: lr"):
        train(_maps_config(epochs=6, lr=1e-2), out, resume=True)


def test_background_thread_run_reports_events(tmp_path):
    run = Run(_maps_config(epochs=2), tmp_path / "bg", mode="thread").start()
    events = [e for e in run.events() if e is not None]
    assert isinstance(events[-1], Finished) and events[-1].path == str(tmp_path / "bg")
    assert any(isinstance(e, StepEnd) for e in events)
    assert [e.epoch for e in events if type(e).__name__ == "EpochEnd"] == [1, 2]


@pytest.mark.slow
def test_child_process_run_and_cancel(tmp_path, monkeypatch):
    """The dock's path (a spawned child process, whose memory is returned when it ends) on CPU,
    started from a script without an ``if __name__ == "__main__"`` guard, as napari's examples
    are: the child must not run that script again (it would open a second viewer)."""
    import sys
    import types

    script = tmp_path / "script.py"
    script.write_text(f"open({str(tmp_path / 'executions')!r}, 'a').write('x')\n")
    main = types.ModuleType("__main__")  # what `python script.py` leaves in sys.modules
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    with pytest.raises(XrayAtlasError, match="nice=-1"):
        Run(_maps_config(), tmp_path / "child", mode="process", nice=-1)
    run = Run(_maps_config(epochs=50), tmp_path / "child", mode="process", nice=5).start()
    assert sys.modules["__main__"] is main
    epochs = 0
    for ev in run.events():
        if type(ev).__name__ == "EpochEnd":
            epochs += 1
            if epochs == 1:  # the child gave up 5 steps of priority (the Training dock's 10)
                assert os.getpriority(os.PRIO_PROCESS, run._worker.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 5
            run.cancel()
        if isinstance(ev, (Finished, Failed)):
            break
    assert isinstance(ev, Finished) and ev.result.cancelled and epochs >= 1
    assert ev.result.epochs_run < 50 and not run.running
    load_model(tmp_path / "child")
    assert not (tmp_path / "executions").exists()


def test_elements_and_images_tasks_train(tmp_path):
    cfg = make_config(
        "elements",
        epochs=2,
        device="cpu",
        lr=1e-3,
        batch_size=64,
        source_params={**SMALL, "n_train": 1024, "n_val": 256, "elements": "Ca, Fe, Cu, Pb"},
        model_params={"depth": 1},
    )
    out = train(cfg, tmp_path / "el")
    _, card = load_model(out.path)
    assert card.outputs == ["Ca", "Fe", "Cu", "Pb"] and {"auc", "f1"} <= set(card.metrics)
    assert card.architecture == "spectral-cnn"  # the task's default
    # decision thresholds chosen on the validation spectra go into the card (not for other tasks)
    assert set(card.thresholds) == set(card.outputs) and all(0.05 <= t <= 0.95 for t in card.thresholds.values())
    # ... from the saved model's own outputs on them (the loop's validation pass, not a second one)
    src = SyntheticSpectra("elements", **cfg.source_params)
    src.prepare(seed=cfg.seed)
    x, y = src._val
    model, _ = load_model(out.path)
    with torch.no_grad():
        prob = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    from xray_atlas.metrics import best_thresholds

    assert card.thresholds == pytest.approx(best_thresholds(prob, y, card.outputs))

    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, n in (("train", 64), ("val", 16)):
        for cls in ("disc", "bar"):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(n):
                cy, cx = rng.integers(10, 22, 2)
                shape = (
                    (yy - cy) ** 2 + (xx - cx) ** 2 < 30 if cls == "disc" else (abs(xx - cx) < 2) & (abs(yy - cy) < 9)
                )
                img = (rng.uniform(50, 200) * (1 + shape) + rng.normal(0, 5, (32, 32))).clip(0, 255).astype(np.uint8)
                Image.fromarray(img).save(tmp_path / "imgs" / split / cls / f"{i}.png")
    cfg = make_config(
        "images",
        epochs=10,
        batch_size=16,
        device="cpu",
        source_params={"root": str(tmp_path / "imgs"), "size": 32},
        model_params={"width": 8},
    )
    res = train(cfg, tmp_path / "img-model").result
    best = max(e.metrics["accuracy"] for e in res.history)
    assert best >= 0.9  # discs against bars, 32 validation images (measured: 1.0 from epoch 4)
    assert load_model(tmp_path / "img-model")[1].outputs == ["bar", "disc"]


def test_every_task_lists_models_sources_and_losses():
    for task in TASKS.values():
        assert task.models() and task.sources and task.losses
        assert task.default_model in task.models()
        cfg = make_config(task.name)
        assert cfg.loss == task.losses[0]
    assert make_config("images", model="image-fnn").optimizer == "sgd"  # study 000 Table 1: FNN SGD lr 0.01
    assert make_config("images", model="image-fnn").lr == 0.01


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"epochs": 0}, "epochs=0 is out of range"),
        ({"lr": 50.0}, "lr=50.0 is out of range"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"optimizer": "lbfgs"}, "optimizer='lbfgs'"),
        ({"loss": "bce"}, "loss='bce'; task 'maps' takes"),
        ({"source_params": {"tube_kv": 500}}, "tube_kv=500 is out of range"),
        ({"source_params": {"counts_min": 5000, "counts_max": 100}}, "counts_min=5000 is above counts_max"),
        ({"source_params": {"lines": "Fe-Q"}}, "Fe-Q"),
        ({"source_params": {"voltage": 3}}, "no parameter\\(s\\) voltage"),
        ({"model_params": {"depth": 3}}, "no option\\(s\\) depth"),
    ],
)
def test_bad_settings_are_refused_before_any_work(tmp_path, kw, match):
    with pytest.raises(XrayAtlasError, match=match):
        check_run(_maps_config(**kw), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bad_inputs_and_outputs(tmp_path):
    # a cube without reference maps for the supervised maps task
    write_cube(tmp_path / "nomaps.h5", np.ones((4, 4, 64), np.uint16), energy_offset_kev=0, energy_gain_kev=0.1)
    with pytest.raises(XrayAtlasError, match="nomaps.h5: this cube has no reference maps"):
        check_run(
            make_config("maps", source="cubes", source_params={"cubes": str(tmp_path / "nomaps.h5")}), tmp_path / "m"
        )
    # a folder that is not an image dataset
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    with pytest.raises(XrayAtlasError, match="notes: not an image dataset"):
        check_run(make_config("images", source_params={"root": str(tmp_path / "notes")}), tmp_path / "m")
    # output paths: missing folder, a file in the way, an existing model without --overwrite
    with pytest.raises(XrayAtlasError, match="output folder does not exist"):
        check_run(_maps_config(), tmp_path / "nope" / "m")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(XrayAtlasError, match="exists and is not a model"):
        check_run(_maps_config(), tmp_path / "file.txt")
    train(_maps_config(epochs=1), tmp_path / "done")
    before = (tmp_path / "done" / "model.safetensors").read_bytes()
    with pytest.raises(XrayAtlasError, match="a model exists here"):
        check_run(_maps_config(), tmp_path / "done")
    with pytest.raises(XrayAtlasError, match="no resume state"):
        check_run(_maps_config(), tmp_path / "fresh", resume=True)
    assert (tmp_path / "done" / "model.safetensors").read_bytes() == before


def test_disk_full_is_refused_before_training(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    with pytest.raises(XrayAtlasError, match="not enough disk space"):
        train(_maps_config(), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_cubes_with_reference_maps_train(tmp_path):
    from xray_atlas.physics.painting import synthetic_painting

    p = synthetic_painting(30, 40, seed=3, n_channels=1024)
    p.write(tmp_path / "p.h5")
    cfg = make_config(
        "maps",
        source="cubes",
        epochs=2,
        device="cpu",
        model_params={"hidden": (32,)},
        source_params={"cubes": str(tmp_path / "p.h5"), "stride": 2, "lines": "Pb-L, Fe-K"},
    )
    out = train(cfg, tmp_path / "cm")
    card = load_model(out.path)[1]
    assert card.outputs == ["Pb-L", "Fe-K"] and card.training_data["stride"] == 2
    # leave-one-cube-out: the validation pixels are exactly the last cube's
    synthetic_painting(20, 24, seed=4, n_channels=1024).write(tmp_path / "q.h5")
    from xray_atlas.training.sources import CubeMaps

    src = CubeMaps(
        "maps", cubes=f"{tmp_path / 'p.h5'},{tmp_path / 'q.h5'}", stride=2, validation="last cube", lines="Pb-L"
    )
    src.prepare(seed=0)
    assert src._val[0].shape == (10 * 12, 1024) and src._train[0].shape == (15 * 20, 1024)
    with pytest.raises(XrayAtlasError, match="needs at least two cubes"):
        CubeMaps("maps", cubes=str(tmp_path / "p.h5"), validation="last cube")
    assert json.loads((tmp_path / "cm" / "card.json").read_text())["inputs"]["n_channels"] == 1024


def test_disk_full_mid_run_keeps_the_last_good_model(tmp_path, monkeypatch):
    """A write that fails half-way (ENOSPC) ends the run with one clear error; the model of
    the earlier epoch stays intact and loadable, and no temporary file is left behind."""
    import errno

    import safetensors.torch as st

    out = tmp_path / "m"
    real = st.save_file
    calls = {"n": 0}

    def failing(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1 wrote the model and the resume state; then the disk fills
            with open(filename, "wb") as f:
                f.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(st, "save_file", failing)
    with pytest.raises(XrayAtlasError, match="could not write the model \\(No space left on device\\)"):
        train(_maps_config(epochs=3), out)
    monkeypatch.setattr(st, "save_file", real)
    model, card = load_model(out)
    assert card.metrics["epoch"] == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "card.json",
        "model.safetensors",
        "resume.safetensors",
        "training.csv",
    ]


def test_tensorboard_logging(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(XrayAtlasError, match="needs the tensorboard package"):
            train(_maps_config(epochs=1), tmp_path / "m", tensorboard=tmp_path / "tb")
        assert not (tmp_path / "m").exists()
        return
    train(_maps_config(epochs=1), tmp_path / "m", tensorboard=tmp_path / "tb")
    assert any((tmp_path / "tb").iterdir())


def test_data_preparation_reports_progress_and_stops_on_cancel(tmp_path):
    from xray_atlas.training import Preparing, TerminalProgress

    def config(n):
        return make_config(
            "maps",
            model="prior-mlp",
            source="synthetic-paintings",
            epochs=1,
            device="cpu",
            source_params={"n_paintings": n, "height": 8, "width": 8, "n_channels": 1024},
        )

    seen = []

    class Listener:
        def on_prepare(self, ev):
            seen.append(ev)

        def on_step_end(self, ev):
            pass

        def on_epoch_end(self, ev):
            pass

    import io

    log = io.StringIO()
    out = train(config(3), tmp_path / "done", callbacks=[Listener(), TerminalProgress(log)])
    assert out.path is not None
    assert [(e.done, e.total, e.what) for e in seen] == [(k, 3, "paintings") for k in range(4)]
    assert "preparing data: 3 of 3 paintings" in log.getvalue()
    # a cancel during the preparation stops it at the next painting and writes nothing
    cancel, seen = threading.Event(), []

    class CancelAtTheSecond(Listener):
        def on_prepare(self, ev):
            seen.append(ev)
            if ev.done == 1:
                cancel.set()

    out = train(config(40), tmp_path / "cancelled.safetensors", callbacks=[CancelAtTheSecond()], cancel=cancel)
    assert out.result.cancelled and out.result.epochs_run == 0 and out.path is None
    assert [e.done for e in seen] == [0, 1] and all(isinstance(e, Preparing) for e in seen)
    assert not (tmp_path / "cancelled.safetensors").exists()
    # a background run passes the events on
    run = Run(config(2), tmp_path / "bg", mode="thread").start()
    events = [e for e in run.events() if e is not None]
    assert [e.done for e in events if isinstance(e, Preparing)] == [0, 1, 2]
    assert isinstance(events[-1], Finished)


def test_synthetic_paintings_source_and_prior_models(tmp_path):
    from xray_atlas.training.sources import SyntheticPaintings

    src = SyntheticPaintings("maps", n_paintings=2, height=12, width=16, n_channels=1024, lines="Pb-L, Fe-K, Hg-L")
    src.prepare(seed=3)
    x, y = src._train
    assert x.shape == (2 * 12 * 16, 1024) and y.shape == (384, 3) and x.dtype == np.uint16
    vx, vy = src._val
    assert vx.shape == (192, 1024) and not np.array_equal(vx, x[:192])  # a painting of its own
    assert y[:, 0].max() > 50  # lead white in most random layouts
    counts = np.percentile(x.sum(1, dtype=np.float64), [0.1, 99.9])
    np.testing.assert_allclose(src.input_contract()["total_counts"], counts)  # for the model card
    with pytest.raises(XrayAtlasError, match="dwell_ms_min=50 is above dwell_ms_max=10"):
        SyntheticPaintings("maps", dwell_ms_min=50, dwell_ms_max=10)
    # a spatial model's source gives each pixel with the mean spectrum of its 3 x 3 block
    src.use_neighbourhood(3, model="spatial-prior-mlp")
    src.prepare(seed=3)
    xs, ys = src._train
    assert xs.shape == (384, 2, 1024) and np.array_equal(ys, y)
    np.testing.assert_allclose(src.input_contract()["total_counts"], counts, rtol=1e-3)  # the pixel's own (float16)
    np.testing.assert_array_equal(xs[:, 0], x)
    first = x[:192].reshape(12, 16, 1024).astype(np.float64)
    np.testing.assert_allclose(xs[16 * 5 + 7, 1], first[4:7, 6:9].mean((0, 1)), rtol=2e-3, atol=1e-3)  # inside
    np.testing.assert_allclose(xs[0, 1], first[[0, 0, 1]][:, [0, 0, 1]].mean((0, 1)), rtol=2e-3, atol=1e-3)  # corner
    # the model on the per-cluster fit: each pixel's counts, then its painting's fit inputs
    src.neighbourhood = 0
    src.use_cluster_fit(model="fit-mlp")
    src.prepare(seed=3)
    xf, yf = src._train
    assert xf.shape == (384, 1024 + 88) and np.array_equal(yf, y)
    np.testing.assert_array_equal(xf[:, :1024], x)
    np.testing.assert_allclose(src.input_contract()["total_counts"], counts, rtol=1e-3)  # the counts only
    # Pb-L's column of the fit inputs (float16) against the painting's truth: a fit, near it
    from xray_atlas.models.prior import PRIOR_FAMILIES

    pb = xf[:, 1024 + PRIOR_FAMILIES.index("Pb-L")].astype(np.float64)
    lit = y[:, 0] > 200
    assert np.median(np.abs(pb[lit] - y[lit, 0]) / y[lit, 0]) < 0.15
    for model in ("prior-mlp", "fcn+", "spatial-prior-mlp", "fit-mlp"):
        cfg = make_config(
            "maps",
            model=model,
            source="synthetic-paintings",
            epochs=1,
            device="cpu",
            source_params={"n_paintings": 1, "height": 8, "width": 8, "n_channels": 1024},
        )
        out = train(cfg, tmp_path / model)
        m, card = load_model(out.path)
        limits = [b for n, b in m.named_buffers() if n.endswith("guard.limits")]
        assert model == "fcn+" or (limits and torch.isfinite(limits[0]).all())  # fitted to the training inputs
        assert card.config["gain_kev"] == 0.04 and card.config["polycapillary"] is True
        assert card.config["lines"] == list(card.outputs)
        lo, hi = card.inputs["total_counts"]
        assert 0 < lo < hi


def test_a_run_can_start_from_a_trained_model_of_its_kind(tmp_path):
    """``init``: the weights of a model of the same architecture and configuration, loaded
    before the first step; any other model is refused by name before training starts."""
    first = train(_maps_config(epochs=1), tmp_path / "first")
    start, _ = load_model(first.path)
    # zero steps' worth of learning: lr at its floor, so the weights after one epoch are the start's
    tuned = train(_maps_config(epochs=1, lr=1e-8, init=str(first.path)), tmp_path / "tuned")
    model, card = load_model(tuned.path)
    assert card.training["init"] == str(first.path)
    for (k, a), b in zip(start.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k
    with pytest.raises(XrayAtlasError, match="init: .* another configuration"):
        train(_maps_config(epochs=1, init=str(first.path), model_params={"hidden": (128,)}), tmp_path / "other")
    with pytest.raises(XrayAtlasError, match="elements|element probabilities"):
        train(_maps_config(epochs=1, init="elements-default"), tmp_path / "wrong-task")
    assert not (tmp_path / "other").exists() and not (tmp_path / "wrong-task").exists()
