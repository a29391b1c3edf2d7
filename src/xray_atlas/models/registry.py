"""Name -> model builder, with each builder's default configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import XrayAtlasError
from ..params import Param, param_for

__all__ = ["register", "build", "available", "Entry"]


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    defaults: dict
    task: str
    doc: str
    training: dict  # the model's own training defaults (optimizer, lr, weight_decay ...), over the task's
    trainable: bool = True  # False for fixed baselines (window sums, least squares)

    @property
    def params(self) -> dict[str, Param]:
        """The model's options as parameters (each declared by its registered default)."""
        return {k: param_for(v) for k, v in self.defaults.items()}


_REGISTRY: dict[str, Entry] = {}  # filled at import by the model modules' @register


def register(
    name: str, *, task: str, training: dict | None = None, trainable: bool = True, **defaults: Any
) -> Callable:
    """Decorator: register ``builder(**config) -> torch.nn.Module`` under ``name``.

    ``task`` is the training task it serves; ``training`` holds its own defaults for the
    training engine (optimizer, lr, weight_decay, batch_size), over the task's; ``trainable``
    is False for baselines whose weights all come from physics (they are listed for
    inference, never trained).
    """

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = Entry(
            name, builder, dict(defaults), task, (builder.__doc__ or "").strip(), dict(training or {}), trainable
        )
        return builder

    return deco


def available(task: str | None = None) -> dict[str, Entry]:
    """Registered models (of one task, if given)."""
    _load_builtin()
    return {k: v for k, v in _REGISTRY.items() if task is None or v.task == task}


def build(name: str, **config: Any) -> tuple[Any, dict]:
    """Build a model by name; returns (module, full configuration)."""
    _load_builtin()
    if name not in _REGISTRY:
        raise XrayAtlasError(f"model={name!r} is unknown; registered: {', '.join(sorted(_REGISTRY)) or 'none'}")
    entry = _REGISTRY[name]
    unknown = sorted(set(config) - set(entry.defaults))
    if unknown:
        raise XrayAtlasError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(entry.defaults))}"
        )
    full = {**entry.defaults, **config}
    return entry.builder(**full), full


def _load_builtin() -> None:
    # Imported here, not at the top: these modules import torch (and torchvision) at theirs,
    # and listing or building a model is the first use of them.
    from . import diffraction, elements, images, spectral, vit1d  # noqa: F401 - they register their builders
