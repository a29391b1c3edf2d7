"""Diffraction predictors side by side (issue 8), per span, on held-out images made the way the
study made them (target encodings -> feedback Monte Carlo -> lot-averaged images; seeds no
training run used):

- the shipped model (xray-atlas's Fourier CNN, ``tools/train_zoo.py diffraction``);
- study 004's small and large CNNs, trained here by the same engine on the same cached
  pairs with the study's settings (Adam 1e-3, batch 32, MSE) within a CPU budget
  (``--epochs``, default 5);
- the analytic inverse, on the images as recorded and, for degraded ones, prepared for it
  (log undone, beam stop inpainted).

Conditions: clean; Poisson noise at 100 and at 10 counts per pixel on average; log-scaled with a masked
beam stop (radius 2) at 1,000 counts per pixel. R^2 against the measured and the target
encodings. Held-out images use the study's high-resolution setting by default (96 x 96
lattices, 64 lots of 48 x 48); the models were trained on 64 x 64 lattices with 32 lots of
32 x 32, so this also checks that they read images of another size. Then the study's
reproducibility analysis for one encoding per span. Usage:
``python benchmarks/eval_diffraction.py [--epochs N] [--n 300]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = HERE / "data" / "diffraction-models"
SEED = 20261122


def train_study(span: int, model: str, epochs: int) -> Path:
    from xray_atlas.training import make_config, train

    out = MODELS / f"{model}-span{span}.safetensors"
    if out.exists():
        return out
    MODELS.mkdir(parents=True, exist_ok=True)
    config = make_config(
        "diffraction",
        model=model,
        epochs=epochs,
        patience=0,
        seed=SEED,
        device="cpu",
        source_params={"span": span, "n_images": 8000, "cache": str(ROOT / "out" / "diffraction" / f"span{span}.h5")},
    )
    t = time.perf_counter()
    train(config, out, overwrite=True)
    print(f"  trained {model} span {span}: {epochs} epochs in {time.perf_counter() - t:.0f} s")
    return out


def main() -> None:
    from xray_atlas.diffraction import evaluation_set, load_predictor, reproducibility, score_predictors

    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--spans", default="2,3,4")
    ap.add_argument("--size", type=int, default=96, help="lattice side of the held-out images (study: 96)")
    ap.add_argument("--lot", type=int, default=48, help="lot side (study: 48)")
    ap.add_argument("--lots", type=int, default=64, help="lots per image (study: 64)")
    args = ap.parse_args()
    for span in map(int, args.spans.split(",")):
        preds = {"xray-atlas Fourier CNN (shipped)": load_predictor(f"diffraction-span{span}", span=span, device="cpu")}
        for model in ("cfs-small", "cfs-large"):
            preds[f"study {model}"] = load_predictor(
                str(train_study(span, model, args.epochs)), span=span, device="cpu"
            )
        preds["analytic inverse"] = load_predictor("analytic", span=span)
        t = time.perf_counter()
        data = evaluation_set(span, args.n, size=args.size, lot=args.lot, n_lots=args.lots, seed=SEED + 100 + span)
        print(
            f"\nspan {span} (D = {span * span - 1}): {args.n} held-out {args.lot} x {args.lot} images of "
            f"{args.size} x {args.size} lattices ({args.lots} lots), "
            f"{int(data['converged'].sum())} lattices within 0.03 of their targets ({time.perf_counter() - t:.0f} s)"
        )
        print("| condition | predictor | R^2 (measured) | R^2 (target) | MAE |")
        print("| --- | --- | --- | --- | --- |")
        for r in score_predictors(preds, data):
            print(
                f"| {r['condition']} | {r['predictor']} | {r['r2_measured']:.4f} | {r['r2_target']:.4f} | "
                f"{r['mae']:.4f} |"
            )
        rep = reproducibility(data["images"][0], data["target"][0], span, n=64, seed=SEED)
        q = np.percentile(rep["image_r2"], [5, 50, 95])
        print(
            f"reproducibility (one target, 64 re-simulations): image R^2 median {q[1]:.3f} "
            f"(5-95 %: {q[0]:.3f}-{q[2]:.3f}), encoding within 0.03: {rep['converged'].mean():.0%}"
        )


if __name__ == "__main__":
    main()
