"""Record in an image model's card the range of simple statistics of its training images
(``inputs["domain"]``, see :func:`xray_atlas.classify.domain_ranges`), for models trained
before training recorded it (the shipped ``radiograph-default``). The weights are not touched.

The images are made afresh with the project's own training source and the parameters the card
lists under ``training_data``, with another seed, and prepared as the model prepares its inputs.

Usage: ``python tools/add_image_domain.py [MODEL] [--n-images N] [--seed S]``
(MODEL: a model file or folder; default: the shipped radiograph-default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from xray_atlas.classify import domain_ranges
    from xray_atlas.models.catalogue import zoo_dir
    from xray_atlas.models.files import read_card
    from xray_atlas.training.sources import SyntheticMicrographs, SyntheticRadiographs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(zoo_dir() / "radiograph-default.safetensors"))
    ap.add_argument("--n-images", type=int, default=2000, help="training-like images to make (default 2000)")
    ap.add_argument("--seed", type=int, default=20261206)
    args = ap.parse_args(argv)

    path = Path(args.model)
    card = read_card(path)
    if card.task != "images":
        sys.exit(f"{path}: a {card.task!r} model, not an image classifier")
    sources = {s.name: s for s in (SyntheticRadiographs, SyntheticMicrographs)}
    data = dict(card.training_data)
    kind = sources.get(data.pop("source", None))
    if kind is None:
        sys.exit(f"{path}: trained on {card.training_data.get('source')!r}; only synthetic sources can be remade")
    params = {k: v for k, v in data.items() if k in kind.parameters("images")}
    params["n_images"] = args.n_images
    source = kind("images", **params)
    source.prepare(args.seed)
    x = np.concatenate([source._train[0], source._val[0]])
    card.inputs["domain"] = {
        **domain_ranges(x),
        "made_by": "tools/add_image_domain.py",
        "seed": args.seed,
        "source": kind.name,
    }

    text = card.to_json()
    if path.is_dir():
        target = path / "card.json"
        fd, tmp = tempfile.mkstemp(prefix=".card.json.", dir=path)
        os.close(fd)
        Path(tmp).write_text(text)
        os.replace(tmp, target)
    else:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        meta["card"] = text
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            again = load_file(tmp)  # the weights are the same tensors, bit for bit
            assert again.keys() == tensors.keys() and all(bool((again[k] == tensors[k]).all()) for k in tensors)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    print(f"{path}: inputs['domain'] from {len(x)} fresh {kind.name} images (seed {args.seed}):")
    print(json.dumps(card.inputs["domain"]["statistics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
