"""``xray-atlas adapt images|elements|maps``: fit the user's instrument to data they have and
train a model for it: the radiograph classifier from labelled radiographs, the element and the
map model from a scan's sum spectrum (:mod:`xray_atlas.adapt`, docs/adapt.md)."""

from __future__ import annotations

import argparse
import json

from ..adapt.spectra import FIT_ANODES
from ..devices import DEVICES
from ._common import DATASET_HELP, add_calibration, check_calibration, note_printer, positive_int

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
    q.add_argument(
        "--n-images",
        type=int,
        default=None,
        help="synthetic radiographs to train on (default 3000; 6000 for a detector noisier than 1000 photons per pixel)",
    )
    _shared(
        q,
        base="model whose recipe is followed (default: the shipped radiograph model)",
        epochs="training epochs (default: the base recipe's, at most 12)",
    )
    q.set_defaults(func=run)
    e = what.add_parser(
        "elements",
        help="the element-probability model, from a scan of your instrument (no labels)",
        description="The tube (anode, voltage, optic), the detector's resolution and the scattering angle "
        "are fitted to the scan's sum spectrum (the anode and voltage are taken from the file when it "
        "states them); then the base model is fine-tuned on synthetic spectra of that instrument. The "
        "cube needs an energy calibration (its file's, or --offset-kev/--gain-kev).",
    )
    _scan_options(e)
    e.add_argument("--n-train", type=positive_int, default=32768, help="synthetic spectra per epoch (default 32768)")
    _shared(
        e,
        base="element model to start from (default: the shipped elements-default)",
        epochs="epochs of fine-tuning (default 6)",
    )
    e.set_defaults(func=run_elements)
    m = what.add_parser(
        "maps",
        help="the map model, from a scan of your instrument (no reference maps)",
        description="The instrument is fitted to the scan's sum spectrum as for 'adapt elements'; then the "
        "base map model (on the per-cluster fit) is fine-tuned on synthetic paintings scanned by that "
        "instrument at the scan's counts per pixel. The new model fits every cube with the fitted "
        "instrument. The cube needs an energy calibration (its file's, or --offset-kev/--gain-kev).",
    )
    _scan_options(m)
    m.add_argument("--n-paintings", type=positive_int, default=60, help="synthetic paintings to train on (default 60)")
    _shared(
        m,
        base="map model to start from (default: the shipped maps-fit)",
        epochs="epochs of fine-tuning (default 8)",
    )
    m.set_defaults(func=run_maps)


def _scan_options(p: argparse.ArgumentParser) -> None:
    """CUBE and the options of the kinds fitted to a scan."""
    p.add_argument("cube", metavar="CUBE", help="your scan (any format xray-atlas opens) or a single spectrum")
    p.add_argument("--dataset", help=DATASET_HELP)
    add_calibration(p)
    p.add_argument("--anode", choices=FIT_ANODES, help="the tube's anode, if known (default: the file's, or fitted)")
    p.add_argument("--tube-kv", type=float, help="the tube voltage in kV, if known (default: the file's, or fitted)")
    p.add_argument("--fit-tube", action="store_true", help="fit the anode and voltage even when the file states them")


def _shared(p: argparse.ArgumentParser, *, base: str, epochs: str) -> None:
    """OUT_MODEL and the options both kinds take."""
    p.add_argument("out", metavar="OUT_MODEL", help="the new model: a folder, or a file ending in .safetensors")
    p.add_argument("--base", help=base)
    p.add_argument("--epochs", type=positive_int, help=epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace OUT_MODEL if it is a model")
    p.add_argument("--device", choices=DEVICES, default="auto")


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
    say = note_printer("adapt")
    for note in made.notes:
        say(note)
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


def _adapt_scan(args: argparse.Namespace, adapt, **options) -> object:
    """Open CUBE and run ``adapt`` (:func:`~xray_atlas.adapt.adapt_elements` or
    :func:`~xray_atlas.adapt.adapt_maps`) on it with the shared options; print its notes."""
    from ..io import read
    from ..training import TerminalProgress

    check_calibration(args)
    cube = read(args.cube, dataset=args.dataset, energy_offset_kev=args.offset_kev, energy_gain_kev=args.gain_kev)
    try:
        made = adapt(
            cube,
            args.out,
            base=args.base,
            epochs=args.epochs,
            seed=args.seed,
            overwrite=args.overwrite,
            device=args.device,
            anode=args.anode,
            tube_kv=args.tube_kv,
            from_file=not args.fit_tube,
            callbacks=[TerminalProgress()],
            **options,
        )
    finally:
        cube.close()
    say = note_printer("adapt")
    for note in made.notes:
        say(note)
    return made


def run_elements(args: argparse.Namespace) -> int:
    from ..adapt import adapt_elements

    made = _adapt_scan(args, adapt_elements, n_train=args.n_train)
    print(
        json.dumps(
            {
                "model": str(made.path),
                "instrument": made.instrument.as_dict(),
                "reduced_chi2": round(made.reduced_chi2, 3),
                "val_auc": made.val_auc,
                "found": list(made.found),
                "base_found": list(made.base_found),
            }
        )
    )
    return 0


def run_maps(args: argparse.Namespace) -> int:
    from ..adapt import adapt_maps

    made = _adapt_scan(args, adapt_maps, n_paintings=args.n_paintings)
    print(
        json.dumps(
            {
                "model": str(made.path),
                "instrument": made.instrument.as_dict(),
                "reduced_chi2": round(made.reduced_chi2, 3),
                "validation_mae": round(made.mae, 3),
                "base_validation_mae": round(made.base_mae, 3),
            }
        )
    )
    return 0
