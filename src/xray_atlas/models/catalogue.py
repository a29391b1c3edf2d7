"""Which model files exist for a task: the shipped zoo, and the models this user trained.

Trained models are remembered in ``<user folder>/trained.json`` (written atomically) and
models saved under ``<user folder>/models/`` are found by looking, so a model trained in the
dock or by ``xray-atlas train`` appears at once in every dock's model list. The user folder
is ``$XRAY_ATLAS_HOME``, else ``$XDG_DATA_HOME/xray-atlas``, else ``~/.local/share/xray-atlas``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import XrayAtlasError
from .files import ModelCard, read_card

__all__ = [
    "ModelInfo",
    "ResolvedModel",
    "list_models",
    "find_model",
    "resolve_model",
    "model_name",
    "remember",
    "user_dir",
    "zoo_dir",
    "default_model_path",
    "TASK_WORDS",
]

#: Each task in a user's words, for messages.
TASK_WORDS = {
    "maps": "elemental maps",
    "elements": "element probabilities",
    "diffraction": "diffraction images",
    "images": "image classification",
}


@dataclass(frozen=True)
class ModelInfo:
    """A model file and its card; ``shipped`` for the package's own zoo."""

    name: str
    path: Path
    card: ModelCard
    shipped: bool


def user_dir() -> Path:
    """The per-user folder for trained models (not created here)."""
    if os.environ.get("XRAY_ATLAS_HOME"):
        return Path(os.environ["XRAY_ATLAS_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "xray-atlas"


def zoo_dir() -> Path:
    """The models shipped inside the package."""
    return Path(__file__).resolve().parent / "zoo"


def default_model_path(task: str, model: str) -> Path:
    """A new path in the user folder for a model being trained: ``<task>-<model>-<time>``."""
    folder = user_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{task}-{model}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{task}-{model}-{stamp}-{n}"
    return path


def _index() -> Path:
    return user_dir() / "trained.json"


def _remembered() -> list[str]:
    try:
        data = json.loads(_index().read_text())
        return [str(p) for p in data.get("models", [])]
    except (OSError, ValueError, AttributeError):
        return []


def remember(path: str | os.PathLike) -> None:
    """Add a trained model to the user's list (no-op if it is there already)."""
    path = str(Path(path).resolve())
    known = _remembered()
    if path in known:
        return
    folder = user_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".trained.", dir=folder)
        with os.fdopen(fd, "w") as f:
            json.dump({"models": known + [path]}, f, indent=1)
        os.replace(tmp, _index())
    except OSError as err:
        raise XrayAtlasError(f"could not record the trained model ({err.strerror or err})", path=_index()) from None


def _candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if (p.is_dir() and (p / "card.json").is_file()) or (p.is_file() and p.suffix == ".safetensors")
    )


def list_models(task: str | None = None) -> list[ModelInfo]:
    """Shipped models first, then trained ones (newest last); files that vanished or do not
    read are skipped."""
    out: list[ModelInfo] = []
    seen: set[Path] = set()
    groups = [(p, True) for p in _candidates(zoo_dir())]
    groups += [(Path(p), False) for p in _remembered()] + [(p, False) for p in _candidates(user_dir() / "models")]
    for path, shipped in groups:
        path = path.resolve()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        try:
            card = read_card(path)
        except XrayAtlasError:
            continue
        if task is None or card.task == task:
            out.append(ModelInfo(path.name if not path.suffix else path.stem, path, card, shipped))
    return out


def model_name(path: str | os.PathLike) -> str:
    """A model's name as the lists show it: a folder's name, a file's stem."""
    path = Path(path)
    return path.stem if path.suffix else path.name


def find_model(model: str | os.PathLike | None, *, task: str, default: str, also: tuple[str, ...] = ()) -> Path:
    """The file of ``model`` for ``task``: None means ``default`` (a shipped or trained model's
    name), else a model name of this task or any model file or folder. ``also`` names what the
    caller accepts besides files (baselines), for the message when nothing matches."""
    infos = list_models()
    named = {i.name: i.path for i in infos if i.card.task == task}
    if model is None:
        if default not in named:
            raise XrayAtlasError(
                f"the default {TASK_WORDS.get(task, task)} model {default!r} is not installed "
                f"(models/zoo); train one with xray-atlas train {task}"
            )
        return named[default]
    path = named.get(str(model)) or Path(model)
    if not path.exists():
        words = TASK_WORDS.get(task, task)
        known = f"{words} models: {', '.join([*named, *also]) or 'none installed'}"
        other = next((i for i in infos if i.name == str(model)), None)
        if other is not None:
            raise XrayAtlasError(
                f"model={str(model)!r} is a model for {TASK_WORDS.get(other.card.task, other.card.task)}, "
                f"not {words} ({known})"
            )
        raise XrayAtlasError(f"model={str(model)!r} is neither a model file nor a known name ({known})")
    from .._files import check_input

    return check_input(path, folder_ok=True)  # a FIFO would block the reader


@dataclass(frozen=True)
class ResolvedModel:
    """A loaded model: the module (eval mode, on ``device``), its card, its file and its name."""

    module: Any
    card: ModelCard
    path: Path
    name: str
    device: Any


def resolve_model(
    model: str | os.PathLike | None, *, task: str, default: str, device: str = "auto", also: tuple[str, ...] = ()
) -> ResolvedModel:
    """Find (:func:`find_model`) and load the model ``model`` of ``task``; refuse a model file
    of another task. What is the task's own (channels, span, calibration) is checked by the
    caller on the card."""
    from ..devices import resolve_device
    from .files import load_model

    path = find_model(model, task=task, default=default, also=also)
    dev = resolve_device(device)
    module, card = load_model(path, device=str(dev.type))
    if card.task != task:
        raise XrayAtlasError(f"this model is for the {card.task!r} task, not {TASK_WORDS.get(task, task)}", path=path)
    return ResolvedModel(module, card, path, model_name(path), dev)
