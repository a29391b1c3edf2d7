"""The training step both adaptations share: train a plan's run in a temporary folder, then
let the adaptation's own ``finish`` check and write the model."""

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
