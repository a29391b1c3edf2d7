"""What the training engine spends between epochs, beside the epochs themselves.

After an epoch whose validation loss improves, the engine saves the model with its card; for
the element task the card holds per-element decision thresholds picked on the validation
spectra. Until 2026-11-23 those were picked after a second pass of the model over the
validation spectra; they now come from the pass the loop has just made.

Measures, in one run, on the shipped element recipe (``tools/train_zoo.py``: spectral CNN,
32,768 validation spectra, batch 256) with fewer training spectra per epoch:

- each epoch's own time (training and the validation pass);
- the time between epochs (checkpoint with thresholds, resume state): wall time from one
  epoch's end to the next, less the next epoch's own time;
- as the baseline, what the former second pass cost: the model over the same validation
  spectra again, plus the threshold search, timed on the trained model.

Usage: ``python benchmarks/bench_epoch_overhead.py [--epochs 4] [--per-epoch 8192]``.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--per-epoch", type=int, default=8192, help="training spectra per epoch (shipped: 32,768)")
    args = ap.parse_args(argv)

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from train_zoo import ELEMENTS_SEED, ELEMENTS_SOURCE

    from xray_atlas.metrics import best_thresholds
    from xray_atlas.models import load_model
    from xray_atlas.training import make_config, train
    from xray_atlas.training.sources import SyntheticSpectra

    cfg = make_config(
        "elements",
        model="spectral-cnn",
        loss="bce",
        epochs=args.epochs,
        seed=ELEMENTS_SEED,
        device="cpu",
        batch_size=256,
        schedule="cosine",
        source_params={**ELEMENTS_SOURCE, "n_train": args.per_epoch, "n_val": 32768},
    )
    ends: list[tuple[float, float, bool]] = []

    class Clock:
        def on_step_end(self, ev):
            pass

        def on_epoch_end(self, ev):
            ends.append((time.perf_counter(), ev.seconds, ev.best))

    tmp = Path(tempfile.mkdtemp(prefix="bench-epoch-"))
    try:
        out = train(cfg, tmp / "m.safetensors", callbacks=[Clock()], remember=False)
        # between epoch k's end and epoch k+1's end: the work after epoch k, then epoch k+1
        between = [b[0] - a[0] - b[1] for a, b in zip(ends, ends[1:]) if a[2]]
        model, card = load_model(out.path, device="cpu")
        src = SyntheticSpectra("elements", **cfg.source_params)
        src.prepare(seed=cfg.seed)
        model.eval()
        t = time.perf_counter()
        probs, targets = [], []
        with torch.inference_mode():
            for x, y in src.val_batches(256):
                probs.append(torch.sigmoid(model(x).float()))
                targets.append(y)
        best_thresholds(torch.cat(probs).numpy(), torch.cat(targets).numpy(), card.outputs)
        second = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    epoch = statistics.median(e[1] for e in ends)
    now = statistics.median(between)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"{args.epochs} epochs of {args.per_epoch:,} training + 32,768 validation spectra")
    print(f"epoch's own time (median): {epoch:.2f} s")
    print(f"between epochs after an improving one (median of {len(between)}): {now:.2f} s")
    print(f"baseline, the former second validation pass + threshold search: {second:.2f} s")
    print(
        f"between epochs, former / now: {(now + second) / now:.1f}x; "
        f"share of an epoch of {args.per_epoch:,}: {second / (epoch + now + second):.0%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
