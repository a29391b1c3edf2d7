"""What caps the per-pixel element AUC on the shifted instruments of ``eval_adapt_elements.py``
(issue 32): the AUC of two oracle detectors beside the shipped model's, on the very paintings,
labels and elements that benchmark scores.

An oracle here is a per-pixel detector handed what no model has: the pixel's true, noise-free
expected spectrum less the element's own lines (its background ``b``: scatter, continuum, every
other element's lines, escape and sum peaks), and the element's true line shape ``u`` (the unit
spectrum of each of its line families, taken from the region holding most of that family). It
sees the pixel's Poisson counts ``n`` and scores, taking the maximum over the element's families:

win
    ``(N - B) / sqrt(B)``: the counts in the channels where the family stands above half its
    peak (the label's window, for the reference region's shape) less the true background there, in units of its Poisson sd.
glrt
    ``sqrt(2 max_{a >= 0} LLR(a))`` with ``LLR(a) = sum_c n_c log(1 + a u_c / b_c) - a sum_c u_c``:
    the Poisson likelihood ratio of ``b + a u`` against ``b``, amplitude free (where the slope at
    ``a = 0`` is negative, the score test ``g0 / sqrt(I0)``, below zero, instead).

Both count the element's photons against a known background, so their AUC is what a
counting-type detector that knew the background exactly would reach: an upper bound for models
that must infer the background from the spectrum, not a proof that no detector does better (the
labels are a threshold on the true net counts in one window, which the oracles do not know; the
best statistic for such labels need not be either of these, and the more sensitive one can score
lower: Pb under orpiment on the Mo tube, labelled by Pb La alone, under As Ka).

Argon: its lines come from the air in the beam path, the same net counts in every pixel (13.2
in the label's window on the copper tube's test painting). Whether that clears Currie's limit
depends only on the background under it: under vermilion the Hg M lines raise it (7.0 counts,
limit 15.0) and Ar is "absent", elsewhere (1.1-3.2 counts, limit 7.6-11.0) "present". The label
follows the paint, not argon: argon's counts alone cannot rank it (the oracles partly do, through
the background they are handed). Hence the means are printed with and without Ar.

Paintings, seeds, labels (:func:`xray_atlas.evaluation.detectable_elements`) and scored elements
(20 pixels or more on each side, the anode left out) are ``eval_adapt_elements.py``'s: its
scoring painting (seed 4200 + k, 48 x 64) for instrument k, scored with its ``aucs``.

Usage: ``python benchmarks/element_auc_ceiling.py [--only K ...] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_adapt_elements import aucs, scan, shifted_instruments  # noqa: E402

SIZE = (48, 64)  # eval_adapt_elements.py's painting size (not --quick)
BELOW = 0.99  # per-element rows printed where an oracle is below this


def glrt(n: np.ndarray, b: np.ndarray, u: np.ndarray, iters: int = 60) -> np.ndarray:
    """Per row of ``n`` (P, C) counts over true background ``b`` (P, C) and line shape ``u`` (C,):
    ``sqrt(2 max_{a>=0} LLR(a))`` where the slope at ``a = 0`` is positive, else the (negative)
    score statistic. Newton steps on ``a``, never below a tenth of the last."""
    su = u.sum()
    b = np.maximum(b, 1e-9)
    ub = u[None, :] / b
    g0 = (n * ub).sum(1) - su  # dLLR/da at a = 0
    i0 = (n * ub**2).sum(1)
    a = np.maximum((n - b) @ u / max(float(u @ u), 1e-30), 1e-6)
    for _ in range(iters):
        r = 1.0 + a[:, None] * ub
        g = (n * ub / r).sum(1) - su
        hh = (n * (ub / r) ** 2).sum(1)  # -d2LLR/da2 >= 0
        a = np.maximum(a + g / np.maximum(hh, 1e-30), a / 10)
    llr = np.maximum((n * np.log1p(a[:, None] * ub)).sum(1) - a * su, 0.0)
    return np.where(g0 > 0, np.sqrt(2 * llr), g0 / np.sqrt(np.maximum(i0, 1e-30)))


def oracle_scores(painting, elements) -> dict:
    """{element: {"win": (P,), "glrt": (P,)}} for the elements of ``elements`` with a line family in
    ``painting.maps``; ``painting`` made with ``truth=True``."""
    from xray_atlas.physics.lines import parse_line_family

    h, w, c = painting.counts.shape
    n_all = painting.counts.reshape(h * w, c).astype(np.float64)
    exp = painting.truth["expected"].reshape(h * w, c)
    reg = painting.regions.ravel()
    spectra = painting.truth["family_spectra"]  # per region {family: unit spectrum}
    by_el: dict[str, list[str]] = {}
    for fam in sorted({f for d in spectra for f in d if f in painting.maps}):
        by_el.setdefault(parse_line_family(fam)[0], []).append(fam)
    out = {}
    for el, fams in by_el.items():
        if el not in elements:
            continue
        win_best = np.full(h * w, -np.inf)
        glrt_best = np.full(h * w, -np.inf)
        for fam in fams:
            holders = [r for r, d in enumerate(spectra) if fam in d and (reg == r).any()]
            ref = max(holders, key=lambda r: float(painting.maps[fam].ravel()[reg == r].sum()))
            u = spectra[ref][fam].astype(np.float64)
            keep = u >= 1e-3 * u.max()
            # the true background on these channels: expected counts less all of the element's lines
            b = exp[:, keep].astype(np.float64)
            for r, d in enumerate(spectra):
                pix = reg == r
                for g in fams:
                    if g in d and pix.any():
                        b[pix] -= painting.maps[g].ravel()[pix, None] * d[g][keep].astype(np.float64)
            b = np.maximum(b, 0.0)
            n, uk = n_all[:, keep], u[keep]
            win = uk >= 0.5 * u.max()
            nw, bw = n[:, win].sum(1), b[:, win].sum(1)
            win_best = np.maximum(win_best, (nw - bw) / np.sqrt(np.maximum(bw, 1.0)))
            glrt_best = np.maximum(glrt_best, glrt(n, b, uk))
        out[el] = {"win": win_best, "glrt": glrt_best}
    return out


def argon_by_region(painting) -> list[dict]:
    """Per region holding Ar-K: its true net counts in the label's window, the other expected
    counts there, Currie's limit over them and the share of pixels labelled (medians)."""
    from xray_atlas.physics.generator import detection_limit

    if "Ar-K" not in painting.maps:
        return []
    h, w, c = painting.counts.shape
    exp = painting.truth["expected"].reshape(h * w, c)
    reg = painting.regions.ravel()
    rows = []
    for r, d in enumerate(painting.truth["family_spectra"]):
        pix = reg == r
        if "Ar-K" not in d or not pix.any():
            continue
        unit = d["Ar-K"]
        win = unit >= 0.5 * unit.max()
        net = painting.maps["Ar-K"].ravel()[pix] * float(unit[win].sum())
        other = np.maximum(exp[pix][:, win].sum(1) - net, 0.0)
        rows.append(
            {
                "region": painting.region_names[r],
                "pixels": int(pix.sum()),
                "ar_net": round(float(np.median(net)), 1),
                "background": round(float(np.median(other)), 1),
                "limit": round(float(np.median(detection_limit(other))), 1),
                "labelled": round(float((net >= detection_limit(other)).mean()), 3),
            }
        )
    return rows


def main(argv=None) -> int:
    import torch
    from sklearn.metrics import roc_auc_score

    from xray_atlas.evaluation import detectable_elements
    from xray_atlas.probabilities import load_element_model

    torch.set_num_threads(1)
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--only", type=int, nargs="*", help="indices of the instruments to run (default: all)")
    a.add_argument("--json", type=Path, help="write the per-instrument results here")
    args = a.parse_args(argv)
    base = load_element_model(None, device="cpu")
    elements = list(base.elements)
    rows = []
    t_all = time.perf_counter()
    for k, (name, inst) in enumerate(shifted_instruments().items()):
        if args.only and k not in args.only:
            continue
        t0 = time.perf_counter()
        painting = scan(inst, 4200 + k, SIZE)
        shipped = aucs(base, painting, inst.tube.anode)  # the benchmark's scored elements
        y = detectable_elements(painting, elements).reshape(-1, len(elements))
        oracles = oracle_scores(painting, list(shipped))
        per_el = {}
        for el, auc in shipped.items():
            label = y[:, elements.index(el)]
            per_el[el] = {
                "positives": int(label.sum()),
                "shipped": round(auc, 4),
                "win": round(float(roc_auc_score(label, oracles[el]["win"])), 4),
                "glrt": round(float(roc_auc_score(label, oracles[el]["glrt"])), 4),
            }
        means = {}
        for key in ("shipped", "win", "glrt"):
            means[key] = round(float(np.mean([v[key] for v in per_el.values()])), 4)
            no_ar = [v[key] for e, v in per_el.items() if e != "Ar"]
            means[f"{key}_no_ar"] = round(float(np.mean(no_ar)), 4) if "Ar" in per_el else means[key]
        rows.append(
            {
                "instrument": name,
                "seed": 4200 + k,
                "elements": len(per_el),
                "ar_scored": "Ar" in per_el,
                "means": means,
                "per_element": per_el,
                "argon_by_region": argon_by_region(painting),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(f"{name}: {len(per_el)} elements, {rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    seconds = round(time.perf_counter() - t_all, 1)

    print("mean AUC over the scored elements: shipped / oracle win / oracle glrt (without Ar)")
    print(f"{'instrument':<64} {'n':>2}  {'shipped':>15}  {'win':>15}  {'glrt':>15}")
    for row in rows:
        m = row["means"]
        cells = [
            f"{m[k]:.4f} ({m[k + '_no_ar']:.4f})" if row["ar_scored"] else f"{m[k]:.4f}"
            for k in ("shipped", "win", "glrt")
        ]
        print(f"{row['instrument']:<64} {row['elements']:>2}  " + "  ".join(f"{c:>15}" for c in cells))
    print(f"\nelements where an oracle is below {BELOW}: shipped / win / glrt (positives)")
    for row in rows:
        low = {e: v for e, v in row["per_element"].items() if min(v["win"], v["glrt"]) < BELOW}
        for e, v in low.items():
            print(
                f"{row['instrument']:<64} {e:<3} {v['shipped']:.4f} / {v['win']:.4f} / {v['glrt']:.4f}"
                f" ({v['positives']})"
            )
    for row in rows:
        if row["ar_scored"]:
            print(f"\nAr on {row['instrument']} (medians per region):")
            for r in row["argon_by_region"]:
                print(
                    f"  {r['region']:<64} net {r['ar_net']:>5}  background {r['background']:>5}"
                    f"  limit {r['limit']:>5}  labelled {r['labelled']:.3f}"
                )
    print(f"\n{seconds} s")
    if args.json:
        args.json.write_text(json.dumps({"seconds": seconds, "instruments": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
