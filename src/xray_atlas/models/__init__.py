"""Models: a registry of builders, and model files (safetensors weights + a JSON card).

Every model is built by name from a registered builder with a default configuration, so a
model file needs no pickled code: its card names the builder and its configuration, and the
weights are plain tensors (docs/dev/contracts.md section 7).
"""

from __future__ import annotations

from .files import ModelCard, load_model, save_model
from .registry import available, build, register

__all__ = ["register", "build", "available", "save_model", "load_model", "ModelCard"]
