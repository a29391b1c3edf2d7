import threading

import pytest
import torch

from xray_atlas import XrayAtlasError
from xray_atlas.models import ModelCard, build, load_model, save_model
from xray_atlas.training import CSVLogger, fit, seed_everything
from xray_atlas.training.checkpoint import load_state, save_state


def _data(seed=0, n=512):
    """A linear regression problem: y = A x with noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 64, generator=g)
    a = torch.rand(64, 3, generator=g)
    return x, x @ a + 0.01 * torch.randn(n, 3, generator=g)


def _run(seed=0, epochs=5, lr=3e-3, **kw):
    x, y = _data()
    xv, yv = _data(seed=1, n=128)
    seed_everything(seed)  # the initial weights too
    model, _ = build("fcn", n_channels=64, n_outputs=3, hidden=(32,))

    def train(epoch):
        perm = torch.randperm(x.shape[0])
        return [(x[perm[i : i + 64]], y[perm[i : i + 64]]) for i in range(0, x.shape[0], 64)]

    res = fit(
        model,
        train,
        lambda: [(xv, yv)],
        loss_fn=torch.nn.functional.mse_loss,
        epochs=epochs,
        seed=seed,
        device="cpu",
        lr=lr,
        **kw,
    )
    return model, res


def test_learns_and_reports_events(tmp_path):
    steps, epochs = [], []

    class Rec:
        def on_step_end(self, ev):
            steps.append(ev)

        def on_epoch_end(self, ev):
            epochs.append(ev)

    model, res = _run(epochs=8, callbacks=[Rec(), CSVLogger(tmp_path / "log.csv")])
    assert res.epochs_run == 8 and not res.cancelled
    assert res.history[-1].val_loss < 0.2 * res.history[0].val_loss  # it learns
    assert len(steps) == 8 * 8 and steps[0].steps_per_epoch == 8
    assert epochs[-1].eta_s == pytest.approx(0.0) and epochs[0].samples_per_s > 0
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == 9 and rows[0].startswith("epoch,epochs,train_loss,val_loss")


def test_same_seed_same_numbers():
    _, a = _run(seed=3)
    _, b = _run(seed=3)
    assert [e.val_loss for e in a.history] == [e.val_loss for e in b.history]
    _, c = _run(seed=4)
    assert [e.val_loss for e in a.history] != [e.val_loss for e in c.history]


def test_cancel_within_one_batch_keeps_the_best_checkpoint(tmp_path):
    cancel = threading.Event()
    saved = []

    def on_best(model, ev, outputs):
        assert outputs[0].shape == (128, 3) and torch.equal(outputs[1], _data(seed=1, n=128)[1])
        card = ModelCard(
            architecture="fcn",
            config={"n_channels": 64, "n_outputs": 3, "hidden": [32]},
            task="maps",
            metrics={"val_loss": ev.val_loss},
        )
        save_model(tmp_path / "best", model, card)
        saved.append(ev.epoch)

    class CancelAt:
        def on_step_end(self, ev):
            if ev.epoch == 3 and ev.step == 2:
                cancel.set()

        def on_epoch_end(self, ev):
            pass

    model, res = _run(epochs=10, on_best=on_best, callbacks=[CancelAt()], cancel=cancel)
    assert res.cancelled and res.epochs_run == 2  # stopped in epoch 3, after its 2nd batch
    loaded, card = load_model(tmp_path / "best")
    assert card.metrics["val_loss"] == pytest.approx(res.best_val_loss)
    assert saved == [1, 2]


def test_early_stopping():
    _, res = _run(epochs=50, patience=1, lr=0.5)  # a too-large step makes val loss stall
    assert res.stopped_early and res.epochs_run < 50


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"epochs": 0}, "epochs=0"),
        ({"lr": -1}, "lr=-1"),
        ({"grad_clip": 0}, "grad_clip"),
        ({"patience": 0}, "patience"),
    ],
)
def test_bad_hyperparameters(kw, match):
    with pytest.raises(XrayAtlasError, match=match):
        _run(**kw)


def test_resume_is_the_same_run(tmp_path):
    """4 epochs straight == 2 epochs, a resume file written and read, 2 more (incl. the
    Adam moments, the cosine schedule and torch's random state)."""
    _, straight = _run(epochs=4, schedule="cosine")
    states = []
    with pytest.raises(_Killed):
        _run(epochs=4, schedule="cosine", on_state=states.append, callbacks=[_StopAfter(2)])
    save_state(tmp_path / "r.safetensors", states[-1], settings={"k": 1})
    state, settings = load_state(tmp_path / "r.safetensors")
    assert settings == {"k": 1} and state.epoch == 2 and len(state.history) == 2
    _, rest = _run(epochs=4, schedule="cosine", resume=state)
    assert [e.val_loss for e in rest.history] == [e.val_loss for e in straight.history]
    assert [e.lr for e in rest.history] == [e.lr for e in straight.history]
    with pytest.raises(XrayAtlasError, match="done 4 epochs already"):
        _run(epochs=4, resume=load_state_after(rest, tmp_path))


class _Killed(Exception):
    pass


class _StopAfter:
    def __init__(self, epochs):
        self.epochs = epochs

    def on_step_end(self, ev):
        pass

    def on_epoch_end(self, ev):
        if ev.epoch == self.epochs:
            raise _Killed  # like a killed run: only the files survive


def load_state_after(result, tmp_path):
    from xray_atlas.training import TrainState

    model, _ = _run(epochs=1)
    return TrainState(4, model.state_dict(), {}, {}, torch.get_rng_state(), 1.0, 4, 0, list(result.history))


def test_optimizers_and_schedules():
    for opt in ("adam", "adamw", "sgd", "rmsprop"):
        _, res = _run(epochs=3, optimizer=opt, lr=1e-3)
        assert res.epochs_run == 3
    _, res = _run(epochs=6, schedule="step", lr=1e-2)
    assert [e.lr for e in res.history] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4])
    with pytest.raises(XrayAtlasError, match="optimizer='lbfgs'"):
        _run(optimizer="lbfgs")
