"""Model files: ``model.safetensors`` + ``card.json`` in a folder, or one ``.safetensors`` file
whose metadata holds the card. Loading rebuilds the model from the registry by name and
loads plain tensors: nothing is unpickled."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import XrayAtlasError
from .registry import build

__all__ = ["ModelCard", "save_model", "load_model"]


@dataclass
class ModelCard:
    """What a model file says about its model (CONTRACTS.md section 7)."""

    architecture: str
    config: dict
    task: str
    inputs: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    training_data: dict = field(default_factory=dict)
    seed: int | None = None
    metrics: dict = field(default_factory=dict)
    package_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=_jsonable)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def save_model(path: str | os.PathLike, model: Any, card: ModelCard) -> Path:
    """Write a model folder (``path``) or a single file (``path`` ending in .safetensors), atomically."""
    from safetensors.torch import save_file

    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise XrayAtlasError("output folder does not exist", path=path.parent)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = card.to_json()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if path.suffix == ".safetensors":
            save_file(tensors, tmp / "m.safetensors", metadata={"card": text})
            os.replace(tmp / "m.safetensors", path)
        else:
            save_file(tensors, tmp / "model.safetensors")
            (tmp / "card.json").write_text(text)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
            tmp = None
    except OSError as err:
        raise XrayAtlasError(f"could not write the model ({err.strerror or err})", path=path) from None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_model(path: str | os.PathLike, *, device: str = "cpu") -> tuple[Any, ModelCard]:
    """Rebuild a model from its file: (module in eval mode, card)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(os.fspath(path))
    try:
        if path.is_dir():
            card_d = json.loads((path / "card.json").read_text())
            weights = path / "model.safetensors"
        else:
            with safe_open(str(path), framework="pt") as f:
                card_d = json.loads((f.metadata() or {})["card"])
            weights = path
        card = ModelCard(**card_d)
        model, _ = build(card.architecture, **card.config)
        model.load_state_dict(load_file(str(weights), device="cpu"))
    except FileNotFoundError:
        raise XrayAtlasError("no model file (expected card.json and model.safetensors)", path=path) from None
    except XrayAtlasError as err:
        raise XrayAtlasError(f"not a loadable model file ({err})", path=path) from None
    except Exception as err:  # noqa: BLE001 - safetensors, json and torch raise many types
        raise XrayAtlasError(f"not a readable model file ({type(err).__name__}: {str(err)[:120]})", path=path) from None
    from ..devices import resolve_device

    return model.to(resolve_device(device)).eval(), card
