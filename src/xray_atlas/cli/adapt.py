"""``xray-atlas adapt images``: fit the user's beam to labelled radiographs and train a
classifier for it (:mod:`xray_atlas.adapt`, docs/adapt.md)."""

from __future__ import annotations

import argparse
import json
import sys

from ..devices import DEVICES

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "adapt",
        help="make a model fit your instrument",
        description="Fits your instrument to data you have, trains a model for it and writes it; "
        "prints one JSON line (the model, the fitted instrument, its accuracy on your references).",
    )
    what = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    q = what.add_parser(
        "images",
        help="the radiograph classifier, from labelled radiographs of your instrument",
        description="REFERENCES holds <class>/<image>: 3-10 radiographs per class (Al1050, Al2017) of the "
        "study's plates (1, 2, 5 mm) or 10 mm wedges, any scale. The tube voltage and filtration are fitted "
        "to their attenuation levels, then a model is trained on synthetic radiographs of that beam.",
    )
    q.add_argument("references", metavar="REFERENCES", help="folder of <class>/<image>")
    q.add_argument("out", metavar="OUT_MODEL", help="the new model: a folder, or a file ending in .safetensors")
    q.add_argument("--base", help="model whose recipe is followed (default: the shipped radiograph model)")
    q.add_argument("--n-images", type=int, default=3000, help="synthetic radiographs to train on (default 3000)")
    q.add_argument("--epochs", type=int, help="training epochs (default: the base recipe's, at most 12)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true", help="replace OUT_MODEL if it is a model")
    q.add_argument("--device", choices=DEVICES, default="auto")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..adapt import adapt_images
    from ..training import TerminalProgress

    made = adapt_images(
        args.references,
        args.out,
        base=args.base,
        n_images=args.n_images,
        epochs=args.epochs,
        seed=args.seed,
        overwrite=args.overwrite,
        device=args.device,
        callbacks=[TerminalProgress()],
    )
    for note in made.notes:
        print(f"xray-atlas adapt: {note}", file=sys.stderr)
    print(
        json.dumps(
            {
                "model": str(made.path),
                "instrument": made.instrument.as_dict(),
                "reference_accuracy": made.reference_accuracy,
                "base_reference_accuracy": made.base_accuracy,
            }
        )
    )
    return 0
