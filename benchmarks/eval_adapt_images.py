"""``xray-atlas adapt images`` on instruments the shipped radiograph model was not trained on.

For each instrument (W tube voltage and Al filtration unlike the shipped model's 50 kV behind
0.5 mm Al), 12 labelled reference radiographs (6 per alloy, plates and wedges, seed 1) are
written to a folder; the beam is fitted to them and a model trained for it
(:func:`xray_atlas.adapt.adapt_images`); then the shipped and the adapted models classify 200
fresh plates and 200 fresh wedges of that instrument (seed 2, never seen by the fit).

Usage: ``python benchmarks/eval_adapt_images.py [--instruments 42:1.0,58:0.2] [--n-images 3000]
[--epochs N]``. Prints a table per instrument: fitted beam, residual, time, plate and wedge
accuracy of both models.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from xray_atlas.adapt import adapt_images
from xray_atlas.classify import load_image_model
from xray_atlas.io.images import write_image
from xray_atlas.physics.radiograph import ALLOYS, RadiographConfig, radiograph, radiographs


def reference_folder(root: Path, cfg: RadiographConfig, *, n_per_class: int = 6, seed: int = 1) -> Path:
    """``n_per_class`` radiographs of each alloy, alternately plates and wedges, as TIFF files."""
    rng = np.random.default_rng(seed)
    for label in ALLOYS:
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            r = radiograph(label, config=cfg, kind=("plate", "wedge")[i % 2], rng=rng, output="uint16")
            write_image(root / label / f"{label}-{i}.tif", r.image)
    return root


def accuracy(model, kind: str, cfg: RadiographConfig, *, n: int, seed: int) -> float:
    x, y, _ = radiographs(n, config=RadiographConfig(**{**cfg.__dict__, "kind": kind}), seed=seed)
    return float(np.mean(np.argmax(model(list(x)), axis=1) == y))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", default="42:1.0,58:0.2,45:0.5,55:0.5", help="kV:mm Al, comma separated")
    parser.add_argument("--n-images", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=200)
    args = parser.parse_args(argv)
    shipped = load_image_model(None, device="cpu")
    rows = []
    for spec in args.instruments.split(","):
        kv, mm = (float(v) for v in spec.split(":"))
        cfg = RadiographConfig(kind="both", kv=kv, filters=(("Al", mm),))
        with tempfile.TemporaryDirectory() as tmp:
            refs = reference_folder(Path(tmp) / "refs", cfg)
            t = time.perf_counter()
            made = adapt_images(refs, Path(tmp) / "adapted.safetensors", n_images=args.n_images, epochs=args.epochs)
            seconds = time.perf_counter() - t
            adapted = load_image_model(made.path, device="cpu")
            row = {
                "beam": f"{kv:g} kV, {mm:g} mm Al",
                "fitted": f"{made.instrument.kv:g} kV, {made.instrument.filter_al_mm:g} mm Al",
                "residual": made.instrument.residual,
                "seconds": seconds,
                "refs": made.reference_accuracy,
            }
            for kind in ("plate", "wedge"):
                row[f"shipped {kind}s"] = accuracy(shipped, kind, cfg, n=args.n_test, seed=2)
                row[f"adapted {kind}s"] = accuracy(adapted, kind, cfg, n=args.n_test, seed=2)
        rows.append(row)
        print(" | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
