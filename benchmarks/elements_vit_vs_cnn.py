"""Study 003's ViT (``vit1d``) against xray-atlas's spectral CNN at the same training budget.

Both are trained by the project's training engine on the shipped recipe's data (that of
``tools/train_zoo.py elements``: 29 elements, 300-3e7 counts, five instruments, the same
augmentations and seed; BCE, Adam, cosine schedule, batch 256), each at its registered
learning rate (the CNN 1e-3, the ViT study 003's 1e-4), on the same number of spectra,
``--epochs`` x ``--per-epoch``, each with its own per-element thresholds chosen on the same
4,096 validation spectra. They are then scored on 2,700 held-out single-pixel spectra
(``eval_elements.held_out``: 1e3-3e4 counts, 1-9 elements, a seed no training run uses) and on
the real M6 and XRFSpectrum.mca spectra. Per-epoch figures go to the terminal and to a CSV
beside each model.

The ViT trains at about 100 spectra/s on 2 CPU cores (80 s an epoch of 8,192 with its
validation pass; 11 spectra/s before its attention lost the dropout that study 003 does not
have): the shipped budget (40 x 32,768) takes about 4 hours there.

Usage: ``python benchmarks/elements_vit_vs_cnn.py [--epochs 8] [--per-epoch 8192] [--device auto]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))


def main(argv=None) -> int:
    from eval_elements import MCA_STRONG, held_out, real_spectra
    from train_zoo import ELEMENTS_SEED, ELEMENTS_SOURCE

    from xray_atlas.metrics import detection_scores, per_label_auc
    from xray_atlas.probabilities import load_element_model, present
    from xray_atlas.training import TerminalProgress, make_config, train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--per-epoch", type=int, default=8192)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="vit-vs-cnn-"))
    rows = []
    for arch in ("spectral-cnn", "vit1d"):
        config = make_config(
            "elements",
            model=arch,
            loss="bce",
            epochs=args.epochs,
            patience=args.epochs,
            seed=ELEMENTS_SEED,
            device=args.device,
            batch_size=256,
            schedule="cosine",
            source_params={**ELEMENTS_SOURCE, "n_train": args.per_epoch, "n_val": 4096},
        )
        t = time.perf_counter()
        print(f"training {arch} in {tmp}", flush=True)
        train(config, tmp / f"{arch}.safetensors", callbacks=[TerminalProgress()], remember=False)
        took = time.perf_counter() - t
        model = load_element_model(tmp / f"{arch}.safetensors", device="cpu")
        els = model.elements
        thr = [model.thresholds[e] for e in els]
        x, y, k = held_out(model, per_count=300)
        p = model(x, model.energy)
        auc = per_label_auc(p, y, els)
        nine = detection_scores(p[k == 9], y[k == 9], thr)
        allk = detection_scores(p, y, thr)
        real = real_spectra(model)
        m6, net = real["m6"]
        strong = [e for e, v in net.items() if v >= 500 and e in els]
        m6_found = [e for e in strong if m6[e] >= model.thresholds[e]]
        m6_extra = [e for e in present(m6, model.thresholds) if e not in strong]
        mca_found = [e for e in MCA_STRONG if real["mca"][e] >= model.thresholds[e]]
        rows.append(
            (
                arch,
                took,
                np.nanmean(list(auc.values())),
                min(auc.values()),
                allk,
                nine,
                f"{len(m6_found)} of {len(strong)}" + (f" (+{', '.join(m6_extra)})" if m6_extra else ""),
                f"{len(mca_found)} of {len(MCA_STRONG)}",
                m6["As"],
            )
        )
    print(f"{args.epochs} epochs x {args.per_epoch} spectra each, 2,700 held-out single-pixel spectra")
    print(
        "| model | training (s) | mean AUC | lowest AUC | precision / recall (all) | precision / recall "
        "(9 elements) | M6 found | mca strong found | M6 P(As) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for arch, took, mauc, lo, a, n, m6s, mcas, p_as in rows:
        print(
            f"| {arch} | {took:.0f} | {mauc:.4f} | {lo:.3f} | {a['precision']:.3f} / {a['recall']:.3f} | "
            f"{n['precision']:.3f} / {n['recall']:.3f} | {m6s} | {mcas} | {p_as:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
