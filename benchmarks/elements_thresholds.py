"""How settled are an element model's decision thresholds?

Each element's threshold is the one with the best F1 on the validation spectra (training
engine, :func:`xray_atlas.metrics.best_thresholds`). This script draws ``--draws`` further
validation sets of ``--n`` spectra exactly as the model's training run drew its own (source
parameters from the model card, only the seed differs), picks the thresholds on each and on
all of them together, and prints per element the model's threshold, the spread over the
draws and the pooled value; then the F1 that each choice gives on an independent test draw
of the same distribution.

Usage: ``python benchmarks/elements_thresholds.py [MODEL] [--n 4096] [--draws 8]``.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> int:
    from xray_atlas.metrics import best_thresholds, f1_at
    from xray_atlas.probabilities import load_element_model
    from xray_atlas.training.sources import SyntheticSpectra

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None)
    parser.add_argument("--n", type=int, default=4096, help="validation spectra per draw")
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args(argv)

    model = load_element_model(args.model, device="cpu")
    card = model.card
    if card.training_data.get("source") != SyntheticSpectra.name:
        print(
            f"model {model.name} was trained on {card.training_data.get('source')!r}, not on "
            f"{SyntheticSpectra.name!r}: no further validation sets can be drawn for it"
        )
        return 2
    params = {k: v for k, v in card.training_data.items() if k != "source"}
    params["elements"] = ", ".join(params["elements"])
    source = SyntheticSpectra("elements", **{**params, "n_val": 16})
    source.prepare(card.seed)
    els = list(source.outputs)

    def draw(i: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = source._draw(args.n, np.random.default_rng([card.seed + 1000 + i, 2**31 - 1]))
        return model(x, model.energy), y.astype(bool)

    sets = [draw(i) for i in range(args.draws)]
    each = np.array([[best_thresholds(p, y, els)[e] for e in els] for p, y in sets])
    pooled = best_thresholds(np.concatenate([p for p, _ in sets]), np.concatenate([y for _, y in sets]), els)
    print(
        f"model {model.name}: thresholds picked on {card.training_data['n_val']} validation spectra; "
        f"{args.draws} further draws of {args.n}"
    )
    print("| element | model | draws: min-max | sd | pooled |")
    print("| --- | --- | --- | --- | --- |")
    for j, e in enumerate(els):
        print(
            f"| {e} | {model.thresholds[e]:.2f} | {each[:, j].min():.2f}-{each[:, j].max():.2f} | "
            f"{each[:, j].std():.3f} | {pooled[e]:.2f} |"
        )
    print(
        f"sd over the draws: median {np.median(each.std(0)):.3f}, range {each.std(0).min():.3f}-{each.std(0).max():.3f}"
    )

    p, y = draw(args.draws)  # an independent test draw

    def macro_f1(t: np.ndarray) -> float:
        return float(np.mean([f1_at(p[:, j], y[:, j], t[j]) for j in range(len(els))]))

    f1 = [macro_f1(t) for t in each]
    print(
        f"macro F1 on a further {args.n}: model's thresholds "
        f"{macro_f1(np.array([model.thresholds[e] for e in els])):.4f}; pooled "
        f"{macro_f1(np.array([pooled[e] for e in els])):.4f}; one draw's {min(f1):.4f}-{max(f1):.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
