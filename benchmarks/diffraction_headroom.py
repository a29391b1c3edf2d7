"""How much room is there above the analytic inverse on Poisson-noisy images (issue 8)?

On the held-out images of ``eval_diffraction.py`` (study resolution: 96 x 96 lattices, 64
lots of 48 x 48) with Poisson noise at 100 counts per pixel, learn corrections of the
analytic inverse by 5-fold cross-validation on the held-out set itself (so the learner sees
exactly this distribution, which no shipped model does):

- ridge regression from the D analytic coefficients to the measured encoding (shrinkage);
- ridge regression from the pair correlations at every offset within +-7 (225 features and
  the zero-frequency share);
- gradient-boosted trees on the same features, predicting the analytic inverse's residual.

When the training cache of ``tools/train_zoo.py diffraction`` is present
(``out/diffraction/span{S}.h5``), the two ridge fits are also trained on its 8,000 pairs.
Prints R^2 against the measured encoding. Usage:
``python benchmarks/diffraction_headroom.py [--spans 2,4] [--n 300]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261122  # eval_diffraction.py's held-out seeds
REACH = 7


def correlation_features(images: np.ndarray) -> np.ndarray:
    """(B, (2 REACH + 1)^2 + 1): lot-corrected pair correlations around r = 0 and the
    zero-frequency share of the image."""
    from xray_atlas.physics.lattice import pair_correlations

    L = images.shape[-1]
    offs = [(dx, dy) for dy in range(-REACH, REACH + 1) for dx in range(-REACH, REACH + 1)]
    share = images[:, L // 2, L // 2] / images.sum(axis=(1, 2))
    return np.column_stack([pair_correlations(images, offs), share])


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_predict

    from xray_atlas.diffraction import degrade, evaluation_set
    from xray_atlas.metrics import r2_score
    from xray_atlas.physics.lattice import analytic_encoding, load_dataset

    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", default="2,4")
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()

    def ridge():
        return RidgeCV(alphas=np.logspace(-6, 2, 17))

    print(
        "| span | analytic inverse | ridge on its D coefficients (CV / cache) | ridge on 225 correlations "
        "(CV / cache) | boosted residual (CV) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for span in map(int, args.spans.split(",")):
        data = evaluation_set(span, args.n, size=96, lot=48, n_lots=64, seed=SEED + 100 + span)
        x = degrade(data["images"], np.random.default_rng([0, 1]), counts=100.0)
        y = data["measured"]
        a, f = analytic_encoding(x, span), correlation_features(x)
        cv_a = r2_score(cross_val_predict(ridge(), a, y, cv=5), y)
        cv_f = r2_score(cross_val_predict(ridge(), f, y, cv=5), y)
        res = np.column_stack(
            [
                cross_val_predict(HistGradientBoostingRegressor(max_iter=200), f, y[:, k] - a[:, k], cv=5)
                for k in range(y.shape[1])
            ]
        )
        cache = ROOT / "out" / "diffraction" / f"span{span}.h5"
        ca = cf = "-"
        if cache.exists():
            tr = load_dataset(cache)
            xt = degrade(tr["images"], np.random.default_rng(0), counts=100.0)
            ca = f"{r2_score(ridge().fit(analytic_encoding(xt, span), tr['encoding']).predict(a), y):.5f}"
            cf = f"{r2_score(ridge().fit(correlation_features(xt), tr['encoding']).predict(f), y):.5f}"
        print(
            f"| {span} | {r2_score(a, y):.5f} | {cv_a:.5f} / {ca} | {cv_f:.5f} / {cf} | {r2_score(a + res, y):.5f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
