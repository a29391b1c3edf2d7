"""Training tasks: each is a registration of its data sources, losses, metrics and default
hyper-parameters; models come from the model registry by task name. The dock and the
``train`` command read this table, so a new task appears in both (docs/dev/architecture.md rule 7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import XrayAtlasError
from .sources import (
    CubeMaps,
    DataSource,
    ImageFolder,
    SyntheticDiffraction,
    SyntheticMicrographs,
    SyntheticPaintings,
    SyntheticRadiographs,
    SyntheticSpectra,
)

__all__ = ["Task", "TASKS", "register_task", "get_task", "CONTRACT_TASKS"]

#: The task names of docs/dev/contracts.md section 4, all registered below.
CONTRACT_TASKS = ("maps", "elements", "diffraction", "images")


@dataclass(frozen=True)
class Task:
    """A trainable task.

    Attributes
    ----------
    name, title : str
    sources : dict
        Data source name -> :class:`~.sources.DataSource` subclass (the first is the default).
    losses : tuple of str
        Names in :data:`~.losses.LOSSES` (the first is the default).
    metrics : callable(predictions, targets) -> dict
        Validation metrics, on numpy arrays.
    defaults : dict
        Default hyper-parameters (the studies' settings); a model's own training defaults
        (:func:`~xray_atlas.models.register`) win over them.
    default_model : str
    thresholds : callable(probabilities, targets, names) -> dict, optional
        Multi-label tasks: per-output decision thresholds chosen on the validation data,
        written to the model card with the best model.
    """

    name: str
    title: str
    sources: dict[str, type[DataSource]]
    losses: tuple[str, ...]
    metrics: Callable[[Any, Any], dict]
    default_model: str
    defaults: dict = field(default_factory=dict)
    thresholds: Callable[[Any, Any, Any], dict] | None = None

    def models(self) -> list[str]:
        from ..models import available

        return sorted(k for k, e in available(self.name).items() if e.trainable)

    def hyperparameters(self, model: str | None = None) -> dict:
        """The defaults for ``model`` (or the default model): task settings, then the model's."""
        from ..models.registry import available

        entry = available(self.name).get(model or self.default_model)
        return {**self.defaults, **(entry.training if entry is not None else {})}


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task to :data:`TASKS` (its models register with ``task=<name>`` in the registry)."""
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise XrayAtlasError(f"task={name!r} is not available; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def _torch_metrics(fn: Callable[[Any, Any], dict]) -> Callable[[Any, Any], dict]:
    def metrics(pred: Any, target: Any) -> dict:
        return fn(pred.numpy(), target.numpy())

    return metrics


def _regression(pred: Any, target: Any) -> dict:
    from ..metrics import regression_summary

    return regression_summary(pred, target)


def _multilabel(pred: Any, target: Any) -> dict:
    from ..metrics import multilabel_summary

    return multilabel_summary(pred, target)


def _encoding(pred: Any, target: Any) -> dict:
    from ..metrics import encoding_summary

    return encoding_summary(pred, target)


def _thresholds(prob: Any, target: Any, names: Any) -> dict:
    from ..metrics import best_thresholds

    return best_thresholds(prob, target, names)


def _multiclass(pred: Any, target: Any) -> dict:
    from ..metrics import multiclass_summary

    return multiclass_summary(pred, target)


# Study 001: Adam lr 1e-3, early stopping on validation loss. Its adaptive L1 is offered but not the
# default: on random spectra most lines are absent in most spectra, and an L1 loss then fits the
# median, zero (docs/training.md: Pearson -0.03 after 5 epochs against 0.996 with L2).
register_task(
    Task(
        "maps",
        "Elemental maps (net counts per line family)",
        {SyntheticSpectra.name: SyntheticSpectra, SyntheticPaintings.name: SyntheticPaintings, CubeMaps.name: CubeMaps},
        ("l2", "adaptive-l1", "l1"),
        _torch_metrics(_regression),
        "fcn",
        {
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "schedule": "constant",
            "epochs": 50,
            "batch_size": 256,
            "patience": 10,
            "grad_clip": 0.0,
        },
    )
)
# Study 003: Adam lr 1e-4, BCE, 10 epochs, batch 128.
register_task(
    Task(
        "elements",
        "Element presence (multi-label classification)",
        {SyntheticSpectra.name: SyntheticSpectra},
        ("bce", "focal"),
        _torch_metrics(_multilabel),
        "spectral-cnn",
        {
            "optimizer": "adam",
            "lr": 1e-4,
            "weight_decay": 0.0,
            "schedule": "constant",
            "epochs": 10,
            "batch_size": 128,
            "patience": 5,
            "grad_clip": 1.0,
        },
        thresholds=_thresholds,
    )
)
# Study 004: Adam (Keras defaults, lr 1e-3), MSE, batch 32, 100 epochs, 20 % validation.
register_task(
    Task(
        "diffraction",
        "Diffraction images -> correlation (CFS) encoding",
        {SyntheticDiffraction.name: SyntheticDiffraction},
        ("l2", "l1"),
        _torch_metrics(_encoding),
        "cfs-small",
        {
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 0.0,
            "schedule": "constant",
            "epochs": 100,
            "batch_size": 32,
            "patience": 15,
            "grad_clip": 0.0,
        },
    )
)
register_task(
    Task(
        "images",
        "Image classification (radiographs, microscope images)",
        {
            ImageFolder.name: ImageFolder,
            SyntheticRadiographs.name: SyntheticRadiographs,
            SyntheticMicrographs.name: SyntheticMicrographs,
        },
        ("cross-entropy", "focal"),
        _torch_metrics(_multiclass),
        "image-cnn",
        {
            "optimizer": "adam",
            "lr": 1e-3,
            "weight_decay": 1e-4,
            "schedule": "cosine",
            "epochs": 30,
            "batch_size": 32,
            "patience": 10,
            "grad_clip": 5.0,
        },
    )
)
