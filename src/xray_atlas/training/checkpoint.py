"""Resume files: the state of a run at the end of an epoch, as safetensors plus JSON.

Tensors (weights, optimiser moments, torch's random state) are stored as safetensors, the
rest (epoch, history, optimiser hyper-parameters, schedule state, the run's settings) as JSON
in its metadata: nothing is unpickled on resume. Writes go to a temporary file renamed over
the old one, so a cancelled or killed run always leaves the previous complete state.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._files import atomic_file
from ..errors import XrayAtlasError
from .loop import EpochEnd, TrainState

__all__ = ["save_state", "load_state"]


def _split(obj: Any, prefix: str, tensors: dict) -> Any:
    """Replace tensors in a nested state dict by references, collecting them in ``tensors``."""
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [_split(k, f"{prefix}.k{i}", tensors), _split(v, f"{prefix}.{i}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, (list, tuple)):
        return {
            "__list__": [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)],
            "tuple": isinstance(obj, tuple),
        }
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    return obj


def _join(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_join(k, tensors): _join(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_join(v, tensors) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
        if "__float__" in obj:
            return float(obj["__float__"])
    return obj


def save_state(path: str | os.PathLike, state: TrainState, *, settings: dict | None = None) -> Path:
    """Write ``state`` (and the run's ``settings``) to ``path`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict = {}
    meta = {
        "epoch": state.epoch,
        "model": _split(state.model, "model", tensors),
        "optimizer": _split(state.optimizer, "optimizer", tensors),
        "schedule": _split(state.schedule, "schedule", tensors),
        "rng": _split(state.rng, "rng", tensors),
        "best_val_loss": _split(state.best_val_loss, "", tensors),
        "best_epoch": state.best_epoch,
        "since_best": state.since_best,
        "history": [_split(asdict(e), "", tensors) for e in state.history],
        "settings": settings or {},
    }
    with atomic_file(path, what="resume state") as tmp:
        save_file(tensors, tmp, metadata={"state": json.dumps(meta)})
    return path


def load_state(path: str | os.PathLike) -> tuple[TrainState, dict]:
    """Read a resume file: (state, settings of the run that wrote it)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise XrayAtlasError("no resume state here (train first; it is written after each epoch)", path=path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - safetensors and json raise many types
        raise XrayAtlasError(f"not a readable resume state ({type(err).__name__})", path=path) from None
    history = [EpochEnd(**_join(e, tensors)) for e in meta["history"]]
    state = TrainState(
        meta["epoch"],
        _join(meta["model"], tensors),
        _join(meta["optimizer"], tensors),
        _join(meta["schedule"], tensors),
        _join(meta["rng"], tensors),
        _join(meta["best_val_loss"], tensors),
        meta["best_epoch"],
        meta["since_best"],
        history,
    )
    return state, meta.get("settings", {})
