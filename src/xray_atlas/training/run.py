"""A training run from settings: the task's data source and model, checkpoints, logs, the
model file; in this thread, on a background thread, or in a child process.

Files of a run whose model is ``OUT``: the best model so far (``OUT``, a folder or a
``.safetensors`` file, docs/dev/contracts.md section 7), the state to resume from after the last
complete epoch, and a CSV log: ``OUT/resume.safetensors`` and ``OUT/training.csv`` for a
folder, ``OUT.resume`` and ``OUT.csv`` beside a single file. Each write is atomic, so a
cancelled, failed or killed run leaves the last good model and state loadable.
"""

from __future__ import annotations

import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._processes import start_without_main as _start_without_main
from ..errors import XrayAtlasError
from .loop import OPTIMIZERS, SCHEDULES, EpochEnd, FitResult, Preparing, StepEnd

__all__ = [
    "TrainConfig",
    "make_config",
    "train",
    "check_run",
    "Run",
    "Finished",
    "Failed",
    "Outcome",
    "run_files",
    "HYPERPARAMETERS",
]

#: Hyper-parameter -> (low, high) accepted by :meth:`TrainConfig.check` (0 turns patience and
#: grad_clip off).
HYPERPARAMETERS = {
    "epochs": (1, 100_000),
    "lr": (1e-8, 10.0),
    "weight_decay": (0.0, 1.0),
    "batch_size": (1, 65_536),
    "patience": (0, 100_000),
    "grad_clip": (0.0, 1e6),
    "seed": (0, 2**32 - 1),
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the model card and resume state)."""

    task: str
    source: str
    model: str
    loss: str
    source_params: dict = field(default_factory=dict)
    model_params: dict = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "constant"
    epochs: int = 10
    batch_size: int = 64
    patience: int = 0
    grad_clip: float = 0.0
    device: str = "auto"
    seed: int = 0
    amp: bool = False
    #: start from this model's weights (a file, folder or shipped name of the same architecture
    #: and configuration) instead of random ones: fine-tuning
    init: str | None = None

    def check(self) -> None:
        """Refuse unknown names and out-of-range values, naming the parameter."""
        from ..devices import DEVICES
        from ..models.registry import available
        from .tasks import get_task

        task = get_task(self.task)
        if self.source not in task.sources:
            raise XrayAtlasError(f"source={self.source!r}; task {self.task!r} takes {', '.join(task.sources)}")
        models = {k: e for k, e in available(self.task).items() if e.trainable}
        if self.model not in models:
            raise XrayAtlasError(f"model={self.model!r}; task {self.task!r} trains {', '.join(sorted(models))}")
        if self.loss not in task.losses:
            raise XrayAtlasError(f"loss={self.loss!r}; task {self.task!r} takes {', '.join(task.losses)}")
        if self.optimizer not in OPTIMIZERS:
            raise XrayAtlasError(f"optimizer={self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise XrayAtlasError(f"schedule={self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.device not in DEVICES:
            raise XrayAtlasError(f"device={self.device!r}; choose one of {', '.join(DEVICES)}")
        for name, (lo, hi) in HYPERPARAMETERS.items():
            v = getattr(self, name)
            whole = name in ("epochs", "batch_size", "patience", "seed")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (whole and int(v) != v) or not lo <= v <= hi:
                raise XrayAtlasError(
                    f"{name}={v!r} is out of range [{lo:g}, {hi:g}]" + (" (a whole number)" if whole else "")
                )
        if self.init is not None and (not isinstance(self.init, str) or not self.init.strip()):
            raise XrayAtlasError(f"init={self.init!r} must name a model (a file, folder or shipped name)")
        unknown = sorted(set(self.model_params) - set(models[self.model].defaults))
        if unknown:
            raise XrayAtlasError(f"model {self.model!r} has no option(s) {', '.join(unknown)}")

    def to_dict(self) -> dict:
        return asdict(self)


def make_config(task: str, *, model: str | None = None, source: str | None = None, **settings: Any) -> TrainConfig:
    """A configuration with the task's and the model's defaults, overridden by ``settings``."""
    from .tasks import get_task

    t = get_task(task)
    model = model or t.default_model
    base = {k: v for k, v in t.hyperparameters(model).items() if k in TrainConfig.__dataclass_fields__}
    return TrainConfig(
        task=task,
        source=source or next(iter(t.sources)),
        model=model,
        loss=settings.pop("loss", None) or t.losses[0],
        **{**base, **settings},
    )


def run_files(out: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(model, resume state, CSV log) paths of a run whose model is ``out``."""
    out = Path(out)
    if out.suffix == ".safetensors":
        return out, out.with_name(out.stem + ".resume"), out.with_name(out.stem + ".csv")
    return out, out / "resume.safetensors", out / "training.csv"


def _safetensors_metadata(path: Path) -> dict:
    """The ``__metadata__`` of a safetensors file's header ({} when it is not one): read
    without torch, to tell a file this package wrote from any other."""
    import json
    import struct

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if not 2 <= n <= 100_000_000:
                return {}
            meta = json.loads(f.read(n)).get("__metadata__") or {}
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError, struct.error, AttributeError):
        return {}


def _written_by_a_run(path: Path) -> bool:
    """Whether ``path`` (a run's model, resume state or CSV log) carries the mark of a training
    run of this package: a card or a state in the safetensors metadata, the log's header."""
    if path.suffix == ".csv":
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.readline().startswith("epoch,epochs,train_loss,val_loss,")
        except OSError:
            return False
    meta = _safetensors_metadata(path)
    return "card" in meta or "state" in meta


def _check_output(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse an unusable output before any work starts.

    A run removes only files it can tell it wrote (its own model folder, or a file with its
    mark, :func:`_written_by_a_run`), and those only with ``overwrite``: a user's own
    ``OUT.csv`` or ``OUT.resume`` beside ``OUT.safetensors`` is never touched.
    """
    _, state, log = run_files(out)
    parent = out.parent
    if not parent.is_dir():
        raise XrayAtlasError("output folder does not exist", path=parent)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise XrayAtlasError(f"cannot write here ({err.strerror or err})", path=parent) from None
    if len(os.fsencode(out.name)) > 240:  # OUT.resume, OUT.csv and temporary names must fit too
        raise XrayAtlasError(f"model name is too long ({len(os.fsencode(out.name))} bytes; at most 240)", path=out)
    if out.suffix == ".safetensors":
        for f, what in ((state, "resume state"), (log, "training log")):
            if (f.exists() or f.is_symlink()) and not (f.is_file() and _written_by_a_run(f)):
                raise XrayAtlasError(
                    f"this run would write its {what} here, and this file was not written by a "
                    "training run; it is left alone: move it or choose another model name",
                    path=f,
                )
    if resume:
        if not state.is_file():
            raise XrayAtlasError("no resume state for this model (it is written after each complete epoch)", path=state)
        return
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):  # an empty folder is fine
        is_model = (out.is_dir() and (out / "card.json").is_file()) or (
            out.is_file() and out.suffix == ".safetensors" and _written_by_a_run(out)
        )
        if not is_model:
            raise XrayAtlasError("exists and is not a model; choose another output path", path=out)
        from .._files import writable

        if not writable(out if out.is_file() else out / "card.json"):
            raise XrayAtlasError("a model exists here and is read-only; it is not replaced", path=out)
        if not overwrite:
            raise XrayAtlasError(
                "a model exists here; resume it (--resume) or allow overwriting (--overwrite)", path=out
            )
    elif out.suffix == ".safetensors" and not overwrite:
        for f, what in ((state, "resume state"), (log, "training log")):
            if f.exists():
                raise XrayAtlasError(
                    f"an earlier run's {what} is here; resume it (--resume) or allow overwriting (--overwrite)", path=f
                )


def _check_space(folder: Path, n_params: int) -> None:
    """Refuse a run whose files will not fit on the disk (known once the model is built)."""
    need = n_params * 4 * 5 + 1_000_000  # best weights, resume weights + two Adam moments, logs
    free = shutil.disk_usage(folder).free
    if free < need:
        raise XrayAtlasError(
            f"not enough disk space ({free / 1e6:.0f} MB free, about {need / 1e6:.0f} MB needed)", path=folder
        )


def prepare_run(config: TrainConfig, out: Path, *, resume: bool, overwrite: bool) -> tuple[Any, Any]:
    """Checks that need no data: settings, data source inputs, output path. Returns (task, source)."""
    from .tasks import get_task

    config.check()
    task = get_task(config.task)
    source = task.sources[config.source](config.task, **config.source_params)
    from ..models.registry import available

    size = {**available(config.task)[config.model].defaults, **config.model_params}.get("neighbourhood", 0)
    if size:  # a spatial model: the source must give each pixel's surroundings
        source.use_neighbourhood(int(size), model=config.model)
    from ..models.spectral import CLUSTER_FIT_MODELS

    if config.model in CLUSTER_FIT_MODELS:  # the source must fit each scan by clusters
        source.use_cluster_fit(model=config.model)
    weights = config.model_params.get("weights")
    if weights:  # a user's pretrained weights: refused now, not after the data is made
        from .._files import check_input

        try:
            check_input(weights)
        except XrayAtlasError as err:
            raise XrayAtlasError(f"weights: {err}") from None
    _check_output(out, resume=resume, overwrite=overwrite)
    return task, source


def fit_guard_on_source(model: Any, source: Any, config: TrainConfig, n: int = 50_000) -> None:
    """A prior map model learns what its training inputs look like (about ``n`` of them) before
    training, so that it can tell a spectrum unlike them (models.spectral.FamiliarityGuard)."""
    import torch

    from ..models.spectral import GuardedMapModel, fit_familiarity

    if not any(isinstance(m, GuardedMapModel) for m in model.modules()):
        return
    xs, have = [], 0
    for x, _ in source.train_batches(0, max(config.batch_size, 1024), config.seed):
        xs.append(x if isinstance(x, torch.Tensor) else torch.as_tensor(x))
        have += len(xs[-1])
        if have >= n:
            break
    # a fine-tuned model keeps the standardisation its weights were learnt with
    fit_familiarity(model, torch.cat(xs).float(), standardise=config.init is None)


def check_run(config: TrainConfig, out: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> None:
    """Everything that can be refused before a run starts (settings, inputs, output path)."""
    prepare_run(config, Path(out), resume=resume, overwrite=overwrite)


@dataclass
class Outcome:
    """A finished run: the loop's result, the model path (None when no epoch completed), and
    in a data-parallel run the rank of the process that returns it (rank 0 wrote the files)."""

    result: FitResult
    path: Path | None
    config: TrainConfig
    rank: int = 0


def train(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    callbacks: Iterable[Any] = (),
    cancel: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
    tensorboard: str | os.PathLike | None = None,
    remember: bool = True,
) -> Outcome:
    """Run ``config`` and write the best model to ``out``.

    Parameters
    ----------
    config : TrainConfig
    out : path
        Model folder, or a file ending in ``.safetensors``.
    callbacks : iterable
        Extra ``on_step_end`` / ``on_epoch_end`` listeners (progress bars, queues); those with
        an ``on_prepare`` also hear :class:`Preparing` while the source makes its data.
    cancel : threading.Event, optional
        Set it to stop after the current batch; the last good checkpoint stays. Set while the
        source makes its data, it stops that at the next item and the run ends with nothing
        written.
    resume : bool
        Go on from the state saved after the last complete epoch of this model's run, up to
        ``config.epochs`` in all. The settings must be those of the run (epochs and device aside).
    overwrite : bool
        Replace a model already at ``out``.
    tensorboard : path, optional
        Also log to TensorBoard (needs the tensorboard package).
    remember : bool
        Add the model to the user's trained models, so that every dock lists it. False for
        throw-away runs in temporary folders (benchmarks, the zoo script), which would
        otherwise fill those lists with models that vanish.

    Data-parallel training: started by ``torchrun`` (the environment names this process's
    rank), every process calls ``train`` alike and joins the process group here (leaving it at
    the end); or :func:`~.distributed.launch` starts the processes. ``config.batch_size`` is
    the batch of all processes together, each taking its share; rank 0 alone writes the model,
    the resume state and the logs, and alone hears the callbacks. A cancel during the data's
    preparation is heard by a single process only.
    """
    import torch.distributed as dist

    from .distributed import join_from_environment, leave

    joined = dist.is_available() and dist.is_initialized()
    ranks = join_from_environment(config.device)
    try:
        return _train(
            config,
            Path(out),
            ranks,
            callbacks=callbacks,
            cancel=cancel,
            resume=resume,
            overwrite=overwrite,
            tensorboard=tensorboard,
            remember=remember,
        )
    finally:
        if ranks is not None and not joined:
            leave()


def _start_from(model: Any, full: dict, config: TrainConfig) -> None:
    """Load ``config.init``'s weights into ``model``, refusing a model of another kind."""
    from ..models.catalogue import resolve_model

    found = resolve_model(config.init, task=config.task, default=config.init, device="cpu")
    mine, theirs = _jsonable(full), _jsonable(found.card.config)
    if getattr(model, "cluster_fit", False):
        # a model on the per-cluster fit holds no instrument in its weights: its card's
        # instrument only says which one the cube is fitted with, so it may be another's
        from ..models.prior import INSTRUMENT_DEFAULTS

        mine, theirs = ({k: v for k, v in c.items() if k not in INSTRUMENT_DEFAULTS} for c in (mine, theirs))
    if found.card.architecture != config.model or mine != theirs:
        raise XrayAtlasError(
            f"init: {found.name} is a {found.card.architecture} of another configuration than this run's "
            f"{config.model}; fine-tuning needs the same architecture, channels and outputs",
            path=found.path,
        )
    model.load_state_dict(found.module.state_dict())


def _train(
    config: TrainConfig,
    out: Path,
    ranks: Any,
    *,
    callbacks: Iterable[Any],
    cancel: Any,
    resume: bool,
    overwrite: bool,
    tensorboard: Any,
    remember: bool,
) -> Outcome:
    """:func:`train` in this process, one of ``ranks`` (None: the only one)."""
    from ..models import ModelCard, build, save_model
    from ..models.catalogue import remember as remember_model
    from ..models.registry import available
    from .callbacks import CSVLogger, TensorBoardLogger
    from .checkpoint import load_state, save_state
    from .distributed import agree
    from .loop import fit, seed_everything
    from .losses import get_loss
    from .sources import PreparationCancelled

    main = ranks is None or ranks.main
    rank, world = (ranks.rank, ranks.world) if ranks is not None else (0, 1)
    model_path, state_path, log_path = run_files(out)
    state = None
    failed = None
    try:  # every rank checks; all refuse alike (agree) before rank 0 touches a file
        task, source = prepare_run(config, out, resume=resume, overwrite=overwrite)
        if config.batch_size < world:
            raise XrayAtlasError(
                f"batch_size={config.batch_size} is smaller than the {world} training processes, "
                "which each take a share of every batch"
            )
        if resume:
            state, settings = load_state(state_path)
            ignore = ("epochs", "device", "amp", "processes")
            old = {k: v for k, v in settings.items() if k not in ignore}
            new = {k: v for k, v in _jsonable(config.to_dict()).items() if k not in ignore}
            if "init" not in old and new.get("init") is None:  # a run saved before fine-tuning existed
                new.pop("init", None)
            if old and old != new:
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise XrayAtlasError(f"these settings differ from the run being resumed: {', '.join(diff)}", path=out)
    except Exception as err:  # noqa: BLE001 - raised on every rank by agree()
        failed = err
    agree(failed, ranks)
    extra = [TensorBoardLogger(tensorboard)] if tensorboard is not None and main else []
    callbacks = list(callbacks) if main else []

    def preparing(ev: Preparing) -> None:
        for cb in callbacks:
            if hasattr(cb, "on_prepare"):
                cb.on_prepare(ev)

    # a cancel heard by one rank alone would leave the others waiting for it
    source.watch(progress=preparing, cancel=cancel if ranks is None else None)
    failed = None
    try:
        source.prepare(config.seed)
        seed_everything(config.seed)
        accepts = available(config.task)[config.model].defaults
        fixed = {k: v for k, v in source.model_inputs().items() if k in accepts}
        model, full = build(config.model, **{**config.model_params, **fixed})
        if config.init is not None and state is None:  # a resumed run has its own weights
            _start_from(model, full, config)
        fit_guard_on_source(model, source, config)
        n_params = sum(p.numel() for p in model.parameters())
        _check_space(out.parent, n_params)
        if ranks is not None and not len(
            source.train_batches(1, config.batch_size, config.seed, rank=rank, world=world)
        ):
            raise XrayAtlasError(f"too little training data for {world} processes: each needs a share of a batch")
    except PreparationCancelled:
        return Outcome(FitResult(0, math.inf, 0, cancelled=True), None, config)
    except Exception as err:  # noqa: BLE001 - raised on every rank by agree()
        failed = err
    agree(failed, ranks)
    if main:
        if out.suffix != ".safetensors":
            if out.is_dir() and not resume and overwrite:
                for f in (model_path / "card.json", model_path / "model.safetensors", state_path, log_path):
                    f.unlink(missing_ok=True)
            out.mkdir(exist_ok=True)
        elif not resume:
            for f in (state_path, log_path):  # an earlier run's, allowed by --overwrite (_check_output)
                if f.is_file() and _written_by_a_run(f):
                    f.unlink()
    settings = _jsonable(config.to_dict())
    if ranks is not None:
        settings["processes"] = world  # the batch is the same; how it was shared, for the card

    def on_best(m: Any, ev: EpochEnd, outputs: tuple[Any, Any]) -> None:
        card = ModelCard(
            architecture=config.model,
            config=full,
            task=config.task,
            inputs=source.input_contract(),
            outputs=list(source.outputs),
            training_data=source.describe(),
            seed=config.seed,
            metrics={"epoch": ev.epoch, "val_loss": ev.val_loss, **ev.metrics},
            training=settings,
            thresholds=_thresholds(task, outputs, source.outputs),
        )
        save_model(model_path, m, card)

    result = fit(
        model,
        lambda epoch: source.train_batches(epoch, config.batch_size, config.seed, rank=rank, world=world),
        lambda: source.val_batches(max(config.batch_size, 256)),
        loss_fn=get_loss(config.loss, weights=source.class_weights()),
        epochs=config.epochs,
        optimizer=config.optimizer,
        lr=config.lr,
        weight_decay=config.weight_decay,
        schedule=config.schedule,
        device=config.device,
        seed=config.seed,
        grad_clip=config.grad_clip or None,
        patience=config.patience or None,
        amp=config.amp,
        metrics=task.metrics,
        on_best=on_best,
        on_state=lambda s: save_state(state_path, s, settings=settings),
        resume=state,
        callbacks=[CSVLogger(log_path), *extra, *callbacks] if main else [],
        cancel=cancel,
        ranks=ranks,
    )
    saved = model_path.exists() and (model_path.is_file() or (model_path / "card.json").is_file())
    if saved and remember and main:
        remember_model(model_path)
    return Outcome(result, model_path if saved else None, config, rank)


def _thresholds(task: Any, outputs: tuple[Any, Any], names: Any) -> dict:
    """The task's decision thresholds, chosen on the validation outputs (logits, targets) of
    the epoch just ended (none for most tasks)."""
    import torch

    logits, targets = outputs
    if task.thresholds is None or not len(logits):
        return {}
    return task.thresholds(torch.sigmoid(logits.float()).numpy(), targets.numpy(), list(names))


def _jsonable(d: dict) -> dict:
    import json

    return json.loads(json.dumps(d, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


# -- background runs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Finished:
    """The run ended (completed, stopped early or cancelled)."""

    result: FitResult
    path: str | None


@dataclass(frozen=True)
class Failed:
    """The run stopped on an error; ``message`` is one line."""

    message: str


class _ToQueue:
    def __init__(self, q: Any):
        self.q = q

    def on_step_end(self, event: StepEnd) -> None:
        self.q.put(event)

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.q.put(event)

    def on_prepare(self, event: Preparing) -> None:
        self.q.put(event)


def _execute(config: TrainConfig, out: str, resume: bool, overwrite: bool, q: Any, cancel: Any) -> None:
    try:
        outcome = train(config, out, callbacks=[_ToQueue(q)], cancel=cancel, resume=resume, overwrite=overwrite)
        q.put(Finished(outcome.result, str(outcome.path) if outcome.path else None))
    except XrayAtlasError as err:
        q.put(Failed(str(err)))
    except Exception as err:  # noqa: BLE001 - reported to the user, not raised in a thread
        q.put(Failed(f"training failed: {type(err).__name__}: {err}"))


def _child(config: dict, out: str, resume: bool, overwrite: bool, q: Any, cancel: Any, nice: int = 0) -> None:
    if nice and hasattr(os, "nice"):  # before torch starts its threads, which inherit it
        os.nice(nice)
    _execute(TrainConfig(**config), out, resume, overwrite, q, cancel)


class Run:
    """A training run in the background, reporting through a queue.

    Parameters
    ----------
    config : TrainConfig
    out : path
    resume, overwrite : bool
        As for :func:`train`.
    mode : {"auto", "thread", "process"}
        ``process`` trains in a spawned child process: its memory (a GPU's too) is returned
        to the system when the run ends, and torch's compiler stack (``torch._dynamo``, which
        every optimiser step imports, and with it triton where installed) stays out of the
        caller's process. A GUI must use it: triton imported into a process that has loaded
        Mesa's OpenGL (napari's canvas) crashes it. ``auto`` trains in a child process when
        the device is a GPU and on a thread otherwise.
    nice : int
        With a child process: lower its scheduling priority by this much (POSIX ``nice``), so
        that a GUI in this process gets the CPU it needs to answer input at once while the run
        takes all the rest; 0 leaves it equal.

    Everything that can be refused without data is refused here, in the caller's thread.
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | os.PathLike,
        *,
        resume: bool = False,
        overwrite: bool = False,
        mode: str = "auto",
        nice: int = 0,
    ):
        from ..devices import resolve_device

        if mode not in ("auto", "thread", "process"):
            raise XrayAtlasError(f"mode={mode!r}; choose auto, thread or process")
        if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
            raise XrayAtlasError(f"nice={nice!r}; give a whole number from 0 to 19")
        check_run(config, out, resume=resume, overwrite=overwrite)
        if mode == "auto":
            mode = "process" if resolve_device(config.device).type != "cpu" else "thread"
        self.config, self.out, self.mode = config, str(out), mode
        self.resume, self.overwrite, self.nice = resume, overwrite, nice
        self._worker: Any = None
        self.ended: Finished | Failed | None = None
        if mode == "process":
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            self._queue, self._cancel = ctx.Queue(), ctx.Event()
        else:
            self._queue, self._cancel = queue.Queue(), threading.Event()

    def start(self) -> Run:
        args = (self.resume, self.overwrite, self._queue, self._cancel)
        if self.mode == "process":
            import multiprocessing as mp

            self._worker = mp.get_context("spawn").Process(
                target=_child, args=(self.config.to_dict(), self.out, *args, self.nice), daemon=True
            )
            _start_without_main(self._worker)
        else:
            self._worker = threading.Thread(
                target=_execute, args=(self.config, self.out, *args), daemon=True, name="xray-atlas-training"
            )
            self._worker.start()
        return self

    def cancel(self) -> None:
        """Stop after the current batch."""
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def events(self, *, step_interval_s: float = 0.05, poll_s: float = 0.05) -> Iterator[Any]:
        """Events until the run ends: :class:`StepEnd` (at most one per ``step_interval_s``),
        :class:`EpochEnd`, then one :class:`Finished` or :class:`Failed`."""
        last_step = 0.0
        while True:
            try:
                ev = self._queue.get(timeout=poll_s)
            except queue.Empty:
                if self._worker is not None and not self._worker.is_alive():
                    try:  # a last event may have arrived just before the end
                        ev = self._queue.get(timeout=poll_s)
                    except queue.Empty:
                        code = getattr(self._worker, "exitcode", None)
                        self.ended = Failed(
                            "the training process ended unexpectedly" + (f" (exit code {code})" if code else "")
                        )
                        yield self.ended
                        return
                else:
                    yield None  # lets a caller check for its own cancellation
                    continue
            if isinstance(ev, StepEnd):
                now = time.perf_counter()
                if now - last_step < step_interval_s and ev.step != ev.steps_per_epoch:
                    continue
                last_step = now
            if isinstance(ev, (Finished, Failed)):
                self.ended = ev
                self.join()
                yield ev
                return
            yield ev

    def join(self, timeout: float | None = None) -> None:
        if self._worker is not None:
            self._worker.join(timeout)
