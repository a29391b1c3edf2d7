"""Train and evaluate the image classifiers (study 000's table, issue 9) on CPU.

- ``radiographs``: every registered image model trained on the same synthetic radiographs
  (plates of 1/2/5 mm and 7 cm wedges, Al 1050 / Al 2017, 128-pixel frames resized to 64),
  with its study 000 Table 1 optimiser, learning rate and weight decay, then tested on fresh
  plates and wedges (a seed never used in training): accuracy, AP per class, ROC AUC,
  training time and inference rate.
- ``micrographs``: 8 particle-morphology classes.
- ``imbalance``: Al 2017 at 1:20 in training; plain cross-entropy against class-balanced
  cross-entropy, focal, and class-balanced focal; minority-class AP on a balanced test set.
- ``imbalance-micrographs``: the same comparison with core-shell micrographs rare (1:20).

Usage: ``python benchmarks/eval_images.py radiographs|micrographs|imbalance|imbalance-micrographs [MODEL ...]``.
Prints markdown tables (docs/images.md).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EPOCHS = 12
N_TRAIN = 2000
TEST_SEED = 999


def _train(
    model: str, source: str, params: dict, *, epochs: int = EPOCHS, loss: str | None = None, seed: int = 1, out: Path
) -> float:
    from xray_atlas.training.run import make_config, train

    cfg = make_config(
        "images",
        model=model,
        source=source,
        source_params=params,
        epochs=epochs,
        seed=seed,
        device="cpu",
        patience=0,
        **({"loss": loss} if loss else {}),
    )
    t = time.perf_counter()
    train(cfg, out, overwrite=True, remember=False)
    return time.perf_counter() - t


def _test(path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[dict, float]:
    from xray_atlas.classify import load_image_model
    from xray_atlas.metrics import classification_scores

    m = load_image_model(path, device="cpu")
    t = time.perf_counter()
    p = m(list(images))
    rate = len(images) / (time.perf_counter() - t)
    return classification_scores(p, labels, m.classes), rate


def radiographs(models: list[str]) -> None:
    from xray_atlas.models.registry import available
    from xray_atlas.physics.radiograph import RadiographConfig
    from xray_atlas.physics.radiograph import radiographs as make

    models = models or list(available("images"))
    tests = {
        kind: make(500, config=RadiographConfig(kind=kind), seed=TEST_SEED + i)[:2]
        for i, kind in enumerate(("plate", "wedge"))
    }
    print(f"{N_TRAIN} training radiographs (20 % validation), {EPOCHS} epochs, 500 test plates, 500 test wedges\n")
    print("| model | plates acc | wedges acc | AP Al1050 / Al2017 (plates) | AUC (wedges) | train s | images/s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            out = Path(tmp) / name
            secs = _train(name, "synthetic-radiographs", {"n_images": N_TRAIN, "kind": "both"}, out=out)
            sp, rate = _test(out, *tests["plate"])
            sw, _ = _test(out, *tests["wedge"])
            print(
                f"| {name} | {sp['accuracy']:.3f} | {sw['accuracy']:.3f} | {sp['ap']['Al1050']:.3f} / "
                f"{sp['ap']['Al2017']:.3f} | {sw['mean_auc']:.3f} | {secs:.0f} | {rate:.0f} |",
                flush=True,
            )


def micrographs(models: list[str]) -> None:
    from xray_atlas.physics.micrograph import micrographs as make

    x, y = make(800, seed=TEST_SEED)
    print("1,600 training micrographs (20 % validation), 8 classes, 800 test images\n")
    print("| model | accuracy | mean AP | mean AUC | train s | images/s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in models or ["image-cnn", "resnet18"]:
            out = Path(tmp) / name
            secs = _train(name, "synthetic-micrographs", {"n_images": 1600}, out=out)
            s, rate = _test(out, x, y)
            print(
                f"| {name} | {s['accuracy']:.3f} | {s['mean_ap']:.3f} | {s['mean_auc']:.3f} | {secs:.0f} | "
                f"{rate:.0f} |",
                flush=True,
            )


def _imbalance_rows(
    name: str,
    source: str,
    params: dict,
    test: tuple[np.ndarray, np.ndarray],
    minority: str,
    *,
    epochs: int,
    beta: float = 0.9999,
    seeds: tuple[int, ...] = (1, 2, 3),
) -> None:
    print(f"| loss | class balance beta | {minority} AP (mean +- sd) | {minority} recall | accuracy |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for loss, b in (("cross-entropy", 0.0), ("cross-entropy", beta), ("focal", 0.0), ("focal", beta)):
            aps, recs, accs = [], [], []
            for seed in seeds:
                out = Path(tmp) / f"{loss}-{b}-{seed}"
                _train(name, source, {**params, "class_balance": b}, loss=loss, seed=seed, epochs=epochs, out=out)
                s, _ = _test(out, *test)
                k = list(s["ap"]).index(minority)
                c = np.asarray(s["confusion"])
                aps.append(s["ap"][minority])
                recs.append(c[k, k] / c[k].sum())
                accs.append(s["accuracy"])
            print(
                f"| {loss} | {b:g} | {np.mean(aps):.3f} +- {np.std(aps):.3f} | {np.mean(recs):.3f} | "
                f"{np.mean(accs):.3f} |",
                flush=True,
            )


def imbalance_micrographs(models: list[str]) -> None:
    from xray_atlas.physics.micrograph import micrographs as make

    test = make(800, seed=TEST_SEED)
    name = (models or ["image-cnn"])[0]
    print(
        f"{name}; 3,200 training micrographs (20 % validation, 12 epochs) with core-shell, the class most "
        "confused with others, at 1:20 (17-20 images against about 450 per other class); balanced test "
        "set of 800 images; seeds 1-3\n"
    )
    _imbalance_rows(
        name,
        "synthetic-micrographs",
        {"n_images": 3200, "minority": "core-shell", "minority_ratio": 0.05},
        test,
        "core-shell",
        epochs=EPOCHS,
    )


def imbalance(models: list[str]) -> None:
    from xray_atlas.physics.radiograph import RadiographConfig
    from xray_atlas.physics.radiograph import radiographs as make

    test = make(600, config=RadiographConfig(kind="plate", size=64), seed=TEST_SEED)[:2]
    name = (models or ["image-cnn"])[0]
    print(
        f"{name}; 6,000 training plates (64-pixel frames read at 32, 15 epochs) with Al 2017 at 1:20 "
        "(share 0.048); balanced test set of 600 plates; 3 seeds\n"
    )
    _imbalance_rows(
        name,
        "synthetic-radiographs",
        {"n_images": 6000, "kind": "plate", "frame": 64, "size": 32, "al2017_share": 1 / 21},
        test,
        "Al2017",
        epochs=15,
        beta=0.999,
    )


if __name__ == "__main__":
    part, names = (sys.argv[1] if len(sys.argv) > 1 else "radiographs"), sys.argv[2:]
    {
        "radiographs": radiographs,
        "micrographs": micrographs,
        "imbalance": imbalance,
        "imbalance-micrographs": imbalance_micrographs,
    }[part](names)
