"""Model files: ``model.safetensors`` + ``card.json`` in a folder, or one ``.safetensors`` file
whose metadata holds the card. Loading rebuilds the model from the registry by name and
loads plain tensors: nothing is unpickled."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._files import atomic_file, atomic_folder
from .._version import __version__
from ..errors import XrayAtlasError
from .registry import build

__all__ = ["ModelCard", "save_model", "load_model", "read_card", "check_card"]


@dataclass
class ModelCard:
    """What a model file says about its model (docs/dev/contracts.md section 7)."""

    architecture: str
    config: dict
    task: str
    inputs: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    training_data: dict = field(default_factory=dict)
    seed: int | None = None
    metrics: dict = field(default_factory=dict)
    package_version: str = __version__
    training: dict = field(default_factory=dict)  # hyper-parameters of the run that made it
    thresholds: dict = field(default_factory=dict)  # output -> decision threshold (multi-label tasks)
    recipe: dict = field(default_factory=dict)  # the shipped models' tools/train_zoo.py recipe

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
    try:
        if path.suffix == ".safetensors":
            with atomic_file(path, what="model") as tmp:
                save_file(tensors, tmp, metadata={"card": text})
        elif path.is_dir():
            # An existing model folder (a training run's checkpoint): replace the weights, then
            # the card, each atomically, keeping the run's other files (log, resume state).
            ours = {"card.json", "model.safetensors", "resume.safetensors", "training.csv"}
            if not (path / "card.json").is_file() and any(p.name not in ours for p in path.iterdir()):
                raise XrayAtlasError("this folder exists and is not a model folder; choose another path", path=path)
            with atomic_file(path / "model.safetensors", what="model") as tmp:
                save_file(tensors, tmp)
            with atomic_file(path / "card.json", what="model") as tmp:
                Path(tmp).write_text(text)
        else:
            with atomic_folder(path, what="model") as tmpdir:
                save_file(tensors, tmpdir / "model.safetensors")
                (tmpdir / "card.json").write_text(text)
    except OSError as err:
        raise XrayAtlasError(f"could not write the model ({err.strerror or err})", path=path) from None
    return path


def read_card(path: str | os.PathLike) -> ModelCard:
    """The card of a model file or folder, without loading its weights."""
    from safetensors import safe_open

    path = Path(os.fspath(path))
    try:
        if path.is_dir():
            card_d = json.loads((path / "card.json").read_text())
        else:
            with safe_open(str(path), framework="pt") as f:
                card_d = json.loads((f.metadata() or {})["card"])
        return ModelCard(**card_d)
    except FileNotFoundError:
        raise XrayAtlasError("no model file (expected card.json and model.safetensors)", path=path) from None
    except Exception as err:  # noqa: BLE001 - safetensors and json raise many types
        raise XrayAtlasError(f"not a readable model file ({type(err).__name__}: {str(err)[:120]})", path=path) from None


def check_card(card: ModelCard, path: str | os.PathLike) -> None:
    """Refuse a card that disagrees with the network it describes (its ``config``, which the
    weights must fit): a wrong number or list of outputs, or a wrong channel count, would
    otherwise give mislabelled results or fail only after the whole computation."""
    cfg = card.config if isinstance(card.config, dict) else {}
    outputs = list(card.outputs or [])
    n_out = cfg.get("n_outputs")
    if outputs and isinstance(n_out, int) and len(outputs) != n_out:
        raise XrayAtlasError(
            f"the card lists {len(outputs)} outputs but the network has {n_out}; the card does not match the weights",
            path=path,
        )
    n_in, n_cfg = (card.inputs or {}).get("n_channels"), cfg.get("n_channels")
    if n_in is not None and n_cfg is not None and int(n_in) != int(n_cfg):
        raise XrayAtlasError(
            f"the card's inputs say n_channels={n_in} but the network takes {n_cfg}; the card "
            "does not match the weights",
            path=path,
        )


def load_model(path: str | os.PathLike, *, device: str = "cpu") -> tuple[Any, ModelCard]:
    """Rebuild a model from its file: (module in eval mode, card)."""
    from safetensors.torch import load_file

    path = Path(os.fspath(path))
    card = read_card(path)
    check_card(card, path)
    weights = path / "model.safetensors" if path.is_dir() else path
    try:
        model, _ = build(card.architecture, **card.config)
        state = load_file(str(weights), device="cpu")
        # files saved before the map models had a familiarity guard load with it switched off
        missing = {k: v for k, v in model.state_dict().items() if k not in state and "guard." in k}
        model.load_state_dict({**missing, **state})
    except FileNotFoundError:
        raise XrayAtlasError("no model file (expected card.json and model.safetensors)", path=path) from None
    except XrayAtlasError as err:
        raise XrayAtlasError(f"not a loadable model file ({err})", path=path) from None
    except Exception as err:  # noqa: BLE001 - safetensors, json and torch raise many types
        raise XrayAtlasError(f"not a readable model file ({type(err).__name__}: {str(err)[:120]})", path=path) from None
    from ..devices import resolve_device

    return model.to(resolve_device(device)).eval(), card
