"""``xray-atlas adapt images`` on instruments the shipped radiograph model was not trained on.

For each instrument (W tube voltage and Al filtration unlike the shipped model's 50 kV behind
0.5 mm Al), 12 labelled reference radiographs (6 per alloy, plates and wedges, seed 1) are
written to a folder; the beam is fitted to them and a model trained for it
(:func:`xray_atlas.adapt.adapt_images`); then the shipped and the adapted models classify 200
fresh plates and 200 fresh wedges of that instrument (seed 2, never seen by the fit).

With ``--detectors``, each instrument is also given detectors unlike the shipped model's
(2,000-50,000 photons per pixel, 0.3-1.2 px blur): ``photons:blur`` pairs, each varying by
x/÷1.3 and +-0.2 px from image to image; ``--beam-only`` then also trains a model for the
fitted beam with the training's default detector (what ``adapt images`` did before it read
the detector), to show what reading it is worth. ``--output uint8`` writes the references as
8-bit images (16-bit by default): a quiet detector's noise then hides under one grey level and
only its blur is read, off the objects' edges.

Usage: ``python benchmarks/eval_adapt_images.py [--instruments 42:1.0,58:0.2] [--n-images 3000]
[--epochs N] [--detectors 80:0.8,20000:3.5] [--beam-only] [--output uint8]``. Prints a table per instrument:
fitted beam (and detector), residual, time, plate and wedge accuracy of each model.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from xray_atlas.adapt import adapt_images, finish_image_adaptation, plan_image_adaptation
from xray_atlas.adapt._run import train_and_finish
from xray_atlas.classify import load_image_model
from xray_atlas.io.images import write_image
from xray_atlas.physics.radiograph import ALLOYS, RadiographConfig, radiograph, radiographs
from xray_atlas.training.sources import SyntheticRadiographs


def reference_folder(
    root: Path, cfg: RadiographConfig, *, n_per_class: int = 6, seed: int = 1, output: str = "uint16"
) -> Path:
    """``n_per_class`` radiographs of each alloy, alternately plates and wedges, as TIFF files."""
    rng = np.random.default_rng(seed)
    for label in ALLOYS:
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            r = radiograph(label, config=cfg, kind=("plate", "wedge")[i % 2], rng=rng, output=output)
            write_image(root / label / f"{label}-{i}.tif", r.image)
    return root


def accuracy(model, kind: str, cfg: RadiographConfig, *, n: int, seed: int) -> float:
    x, y, _ = radiographs(n, config=RadiographConfig(**{**cfg.__dict__, "kind": kind}), seed=seed)
    return float(np.mean(np.argmax(model(list(x)), axis=1) == y))


def beam_only(refs: Path, out: Path, **options) -> Path:
    """A model for the fitted beam trained with the default detector (the detector not read)."""
    plan = plan_image_adaptation(refs, **options)
    params = {
        k: SyntheticRadiographs.PARAMS[k].default
        for k in ("photons_low", "photons_high", "blur_low_px", "blur_high_px")
    }
    config = dataclasses.replace(plan.config, source_params={**plan.config.source_params, **params})
    made = train_and_finish(
        dataclasses.replace(plan, config=config),
        out,
        finish_image_adaptation,
        overwrite=False,
        callbacks=(),
        cancel=None,
    )
    return made.path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", default="42:1.0,58:0.2,45:0.5,55:0.5", help="kV:mm Al, comma separated")
    parser.add_argument("--n-images", type=int, default=None, help="default: adapt images' own")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--detectors", default="", help="photons:blur px, comma separated (default: the training's)")
    parser.add_argument("--beam-only", action="store_true", help="also train for the beam alone (default detector)")
    parser.add_argument("--output", default="uint16", choices=("uint16", "uint8", "float"), help="the references' type")
    args = parser.parse_args(argv)
    shipped = load_image_model(None, device="cpu")
    rows = []
    detectors = [tuple(float(v) for v in d.split(":")) for d in args.detectors.split(",") if d] or [None]
    for spec, detector in ((s, d) for s in args.instruments.split(",") for d in detectors):
        kv, mm = (float(v) for v in spec.split(":"))
        noise = {}
        if detector is not None:
            photons, blur = detector
            noise = {"photons": (photons / 1.3, photons * 1.3), "blur_px": (max(blur - 0.2, 0.0), blur + 0.2)}
        cfg = RadiographConfig(kind="both", kv=kv, filters=(("Al", mm),), **noise)
        with tempfile.TemporaryDirectory() as tmp:
            refs = reference_folder(Path(tmp) / "refs", cfg, output=args.output)
            t = time.perf_counter()
            made = adapt_images(refs, Path(tmp) / "adapted.safetensors", n_images=args.n_images, epochs=args.epochs)
            seconds = time.perf_counter() - t
            adapted = load_image_model(made.path, device="cpu")
            beam = made.instrument
            row = {
                "beam": f"{kv:g} kV, {mm:g} mm Al"
                + (f", {detector[0]:g} photons, {detector[1]:g} px" if detector else ""),
                "fitted": f"{beam.kv:g} kV, {beam.filter_al_mm:g} mm Al"
                + (f", {beam.photons:.0f} photons" if beam.photons else ", photons not read")
                + (f", {beam.blur_px:.2f} px" if beam.blur_px is not None else ", blur not read"),
                "residual": made.instrument.residual,
                "seconds": seconds,
                "refs": made.reference_accuracy,
            }
            for kind in ("plate", "wedge"):
                row[f"shipped {kind}s"] = accuracy(shipped, kind, cfg, n=args.n_test, seed=2)
                row[f"adapted {kind}s"] = accuracy(adapted, kind, cfg, n=args.n_test, seed=2)
            if args.beam_only:
                opts = {"n_images": args.n_images, "epochs": args.epochs}
                only = load_image_model(beam_only(refs, Path(tmp) / "beam-only.safetensors", **opts), device="cpu")
                for kind in ("plate", "wedge"):
                    row[f"beam-only {kind}s"] = accuracy(only, kind, cfg, n=args.n_test, seed=2)
        rows.append(row)
        print(" | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
