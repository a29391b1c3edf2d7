"""The steps every adaptation shares: refuse the output before any work, make the plan, train
its run in a temporary folder, then let the adaptation's own ``finish`` check and write the
model."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import XrayAtlasError


def train_and_finish(
    plan: Any, out: str | os.PathLike, finish: Callable[..., Any], *, overwrite: bool, callbacks: Any, cancel: Any
) -> Any:
    """Train ``plan.config`` (:func:`xray_atlas.training.train`) into a temporary file, then
    ``finish(plan, trained, out, overwrite=overwrite)``; nothing is written if cancelled before
    an epoch completed."""
    from ..training import train

    with tempfile.TemporaryDirectory(prefix="xray-atlas-adapt-") as tmp:
        outcome = train(
            plan.config, Path(tmp) / "adapted.safetensors", callbacks=list(callbacks), cancel=cancel, remember=False
        )
        if outcome.result.cancelled and outcome.result.best_epoch is None:
            raise XrayAtlasError("adapt was cancelled before an epoch completed; nothing written", path=out)
        return finish(plan, outcome.path, out, overwrite=overwrite)


def adapt_with(
    plan: Callable[..., Any],
    finish: Callable[..., Any],
    source: Any,
    out: str | os.PathLike,
    *,
    overwrite: bool,
    callbacks: Any,
    cancel: Any,
    **options: Any,
) -> Any:
    """``finish`` of ``plan(source, **options)`` trained (:func:`train_and_finish`), after
    ``out`` is checked (never the input, never a file that is not a model unless ``overwrite``)."""
    from .._files import check_destination

    out = Path(os.fspath(out))
    given = source if isinstance(source, (str, os.PathLike)) else getattr(source, "path", None)
    check_destination(out, inputs=(given,) if given else (), overwrite=overwrite, folder_ok=True)
    return train_and_finish(
        plan(source, **options), out, finish, overwrite=overwrite, callbacks=callbacks, cancel=cancel
    )


def fine_tune_config(
    task: str,
    source: str,
    settings: dict,
    *,
    init: str,
    epochs: int,
    seed: int,
    device: str,
    source_params: dict,
) -> Any:
    """The training run that fine-tunes a base model (``settings``: its card's training
    settings, whose architecture, loss and optimiser are kept) from its own weights ``init``,
    at a third of its learning rate, on ``source`` with ``source_params``."""
    from ..training import make_config

    keep = ("model", "loss", "optimizer", "weight_decay", "schedule", "batch_size", "grad_clip", "model_params")
    return make_config(
        task,
        source=source,
        **{k: settings[k] for k in keep if k in settings},
        init=init,
        lr=float(settings.get("lr", 1e-3)) / 3,
        epochs=int(epochs),
        patience=0,
        seed=int(seed),
        device=device,
        source_params=source_params,
    )
