"""Evaluate an element-probability model on held-out spectra and on the real spectra.

- Synthetic, single-pixel counts (1e3-3e4 per spectrum), all five training instruments, a
  seed never used in training: per-element ROC AUC; accuracy, precision, recall and F1
  against the number of elements in the spectrum (study 003's figures 25-26), at 0.5 and at
  the model's own thresholds; the confusable Ca / K / Sn / Sb; Cu false calls on lead-rich
  spectra without copper (the Pb L escape peaks).
- The same at a held-out instrument: an M4-like W tube at 30 kV with a 135 eV detector.
- The same with self-absorption: layers of a paint matrix from 1 mg/cm^2 to 1 g/cm^2, whose
  line ratios (La/Lb, Ka/Kb) move from the thin-sample values.
- Real spectra: the M6 Jetstream spectrum against Bruker's embedded fit, PyMca's
  XRFSpectrum.mca and Steel.spe against their fit lists; for the M6 arsenic, an ideal fit's
  evidence and the model on Poisson draws of our simulation of that sample.
- Elements outside the model's list (``UNLISTED_ELEMENTS``): false calls per spectrum where
  one of them is seen, and which elements their lines are read as.
- Calibration: how far a probability reads as a frequency (reliability bins, expected
  calibration error), pooled and per element.

Writes docs/images/elements-roc.png, elements-by-count.png and elements-reliability.png
(matplotlib).
Usage: ``python benchmarks/eval_elements.py [MODEL]`` (default: the shipped model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "real"
IMAGES = HERE.parent / "docs" / "images"
SEED = 31337
#: Elements whose strongest line stands >= 300 counts per channel above its flanks in
#: XRFSpectrum.mca (PyMca's fit list: Ni Zn Co Sr Ca Mn As Cd Pb Tl Ar Ti Fe V Sb Cu Se Cr).
MCA_STRONG = ("Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "As", "Se", "Sr", "Pb")
MCA_FIT = MCA_STRONG + ("Ca", "Cd", "Tl", "Ar", "Sb")
MCA_CALIBRATION = (-0.492773, 0.00502883)  # keV, keV per channel (PyMca XrfTest.cfg)
#: Steel.spe (NIST SRM 1155): the elements of PyMca's Steel.cfg fit list that the model knows
#: (W, the steel's other alloying element, is not one of its 29).
STEEL_FIT = ("Cr", "Mn", "Fe", "Ni", "Cu", "V", "As", "Pb")


def held_out(model, *, per_count: int = 1000, instruments=None, seed: int = SEED, thickness=None):
    """Spectra with 1..9 elements, ``per_count`` of each, and their detectable labels."""
    from xray_atlas.physics.generator import GeneratorConfig, MixedGenerator, varied_instruments

    insts = instruments or varied_instruments()
    xs, ys, ks = [], [], []
    for k in range(1, 10):
        gen = MixedGenerator(
            GeneratorConfig(elements=model.elements, n_elements=(k, k), counts=(1e3, 3e4), thickness=thickness), insts
        )
        b = gen(per_count, [seed, k])
        xs.append(b.spectra)
        ys.append(b.detectable)
        ks.append(np.full(per_count, k))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ks)


def lead_without_copper(model, n: int = 2000):
    """Lead-rich spectra (Pb the strongest element, 1e4-1e6 counts) without copper."""
    from xray_atlas.physics.generator import GeneratorConfig, MixedGenerator, varied_instruments

    others = tuple(e for e in model.elements if e not in ("Cu", "Pb"))
    gen = MixedGenerator(
        GeneratorConfig(elements=("Pb",) + others, n_elements=(1, 3), counts=(1e4, 1e6)), varied_instruments()
    )
    rng = np.random.default_rng(SEED + 1)
    b = gen(4 * n, rng)
    lead = b.detectable[:, 0] & (b.net[:, list(gen.families).index("Pb-L")] > 0.5 * b.net.sum(1))
    spectra = b.spectra[lead][:n]
    return spectra


def unlisted_calls(model, n: int = 20000) -> tuple[tuple, dict]:
    """False calls per spectrum on held-out spectra (2-7 elements, 1e3-1e6 counts) that hold
    none of ``UNLISTED_ELEMENTS``, and per unlisted element on those that hold it alone of
    them where it is seen: (mean false calls, recall, the three elements most often called)."""
    from xray_atlas.physics.generator import UNLISTED_ELEMENTS, GeneratorConfig, MixedGenerator, varied_instruments

    els, extra = model.elements, UNLISTED_ELEMENTS
    gen = MixedGenerator(
        GeneratorConfig(elements=extra + els, n_elements=(2, 7), counts=(1e3, 1e6)), varied_instruments()
    )
    b = gen(n, SEED + 5)
    thr = np.array([model.thresholds[e] for e in els])
    y = b.detectable[:, len(extra) :]
    called = model(b.spectra, model.energy) >= thr
    false = called & ~y
    alone = b.presence[:, : len(extra)].sum(1) == 1

    def row(r: np.ndarray) -> tuple:
        top = np.argsort(false[r].sum(0))[::-1][:3]
        return (
            false[r].sum(1).mean(),
            (called & y)[r].sum() / max(y[r].sum(), 1),
            [(els[j], false[r][:, j].mean()) for j in top],
            int(r.sum()),
        )

    none = ~b.presence[:, : len(extra)].any(1)
    return row(none), {e: row(alone & b.detectable[:, j]) for j, e in enumerate(extra)}


def real_spectra(model) -> dict:
    from xray_atlas.io import read
    from xray_atlas.physics.reference import bruker_net_counts
    from xray_atlas.probabilities import spectrum_probabilities

    out = {}
    m6 = REAL / "bruker_m6_jetstream_file_example.spx"
    net, _ = bruker_net_counts(m6)
    with read(m6) as cube:
        p = spectrum_probabilities(cube.pixel(0, 0), cube.energy, model)
    out["m6"] = (p, {ln.split("-")[0]: v for ln, v in net.items()})
    with read(REAL / "XRFSpectrum.mca") as cube:
        cube = cube.with_calibration(offset_kev=MCA_CALIBRATION[0], gain_kev=MCA_CALIBRATION[1])
        p = spectrum_probabilities(cube.pixel(0, 0), cube.energy, model)
    out["mca"] = p
    with read(REAL / "Steel.spe") as cube:  # calibrated from Steel.cfg beside it
        out["steel"] = spectrum_probabilities(cube.pixel(0, 0), cube.energy, model)
    return out


def m6_sample() -> tuple:
    """Our simulation of the M6 sample with Bruker's fitted amounts, its target and the measured
    spectrum (``physics.reference.m6_jetstream_sample``), made once for both checks below."""
    from xray_atlas.physics.reference import m6_jetstream_sample

    return m6_jetstream_sample(REAL / "bruker_m6_jetstream_file_example.spx")


def m6_arsenic_evidence(sample: tuple) -> dict:
    """As in the M6 spectrum, as an ideal fit sees it: Poisson-weighted least squares over
    9-15 keV with only the families Bruker fitted there (Zn-K, As-K, Sr-K, Hg-L, Pb-L, each
    with the line ratios our physics engine gives the simulated M6 sample) and a smooth
    background; returns family -> (net counts, z = counts / standard error) for the real
    spectrum and the net counts the same fit reads from the noise-free simulation."""
    from xray_atlas.models.prior import background_basis
    from xray_atlas.physics.detector import Detector
    from xray_atlas.physics.reference import M6_DETECTOR

    sim, _, measured = sample
    gain = float(sim.energy[1] - sim.energy[0])
    det = Detector(n_channels=sim.energy.size, gain_kev=gain, offset_kev=float(sim.energy[0]), **M6_DETECTOR)
    fams = ("Zn-K", "As-K", "Sr-K", "Hg-L", "Pb-L")
    band = (sim.energy > 9.0) & (sim.energy < 15.0)
    bg = background_basis(sim.energy.size, float(sim.energy[0]), gain, spacing_kev=0.5)[band]
    bg = bg[:, np.abs(bg).sum(0) > 1e-6]  # only the bumps inside the band; every family keeps its column
    a = np.concatenate([np.stack([sim.family_spectrum(f, det) for f in fams], 1)[band], bg], 1)
    y = measured.astype(float)[band]
    w = 1 / np.sqrt(np.maximum(y, 1))
    pinv = np.linalg.pinv(a * w[:, None])
    est, se = pinv @ (y * w), np.sqrt((pinv**2).sum(1))
    ideal = pinv @ (sim.expected[band] * w)
    return {f: (est[i], est[i] / se[i], ideal[i]) for i, f in enumerate(fams)}


def m6_simulated_arsenic(model, sample: tuple, draws: int = 32) -> tuple[float, np.ndarray]:
    """P(As) of our noise-free simulation of the M6 sample (Bruker's fitted amounts) and of
    ``draws`` Poisson draws of it: how often the model finds the As that the fit put in."""
    from xray_atlas.probabilities import spectrum_probabilities

    sim = sample[0]
    rng = np.random.default_rng(SEED + 4)
    clean = spectrum_probabilities(sim.expected.astype(float), sim.energy, model)["As"]
    drawn = [
        spectrum_probabilities(rng.poisson(sim.expected).astype(float), sim.energy, model)["As"] for _ in range(draws)
    ]
    return clean, np.array(drawn)


def main(argv=None) -> int:
    from xray_atlas.metrics import detection_scores, per_label_auc, reliability
    from xray_atlas.physics.detector import Detector
    from xray_atlas.physics.spectra import Instrument
    from xray_atlas.physics.tube import Tube
    from xray_atlas.probabilities import load_element_model, present

    argv = sys.argv[1:] if argv is None else argv
    model = load_element_model(argv[0] if argv else None, device="cpu")
    els = model.elements
    thr = np.array([model.thresholds[e] for e in els])
    x, y, k = held_out(model)
    p = model(x, model.energy)
    auc = per_label_auc(p, y, els)
    print(f"model {model.name}: {len(x)} held-out spectra, 1e3-3e4 counts, 1-9 elements, five instruments")
    print(
        f"mean AUC {np.nanmean(list(auc.values())):.4f}; lowest: "
        + ", ".join(f"{e} {auc[e]:.3f}" for e in sorted(auc, key=auc.get)[:6])
    )
    print("confusable: " + ", ".join(f"{e} {auc[e]:.4f}" for e in ("Ca", "K", "Sn", "Sb")))
    print("| elements | accuracy | precision | recall | F1 | precision (0.5) | recall (0.5) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    by_count = []
    for n in range(1, 10):
        m = k == n
        a, b = detection_scores(p[m], y[m], thr), detection_scores(p[m], y[m])
        by_count.append(a)
        print(
            f"| {n} | {a['accuracy']:.4f} | {a['precision']:.4f} | {a['recall']:.4f} | {a['f1']:.4f} | "
            f"{b['precision']:.4f} | {b['recall']:.4f} |"
        )
    rel = reliability(p, y, bins=10)
    print(
        f"calibration, all elements pooled: expected calibration error {rel['ece']:.4f}; "
        "P bin: mean P -> share present (values)"
    )
    print(
        "  "
        + ", ".join(
            f"{a:.1f}-{b:.1f}: {m:.3f} -> {o:.3f} ({c})"
            for a, b, m, o, c in zip(rel["edges"], rel["edges"][1:], rel["predicted"], rel["observed"], rel["count"])
            if c
        )
    )
    print(
        "  per element, ECE: " + ", ".join(f"{e} {reliability(p[:, j], y[:, j])['ece']:.4f}" for j, e in enumerate(els))
    )
    lead = lead_without_copper(model)
    pc = model(lead, model.energy)[:, els.index("Cu")]
    print(
        f"Cu called on {int((pc >= model.thresholds['Cu']).sum())} of {len(lead)} lead-rich spectra without copper "
        f"(median P(Cu) {np.median(pc):.4f})"
    )

    def summary(what: str, **held) -> tuple[np.ndarray, np.ndarray]:
        """Score 300 held-out spectra per element count; print mean AUC, precision, recall."""
        xs, ys, _ = held_out(model, per_count=300, **held)
        ps = model(xs, model.energy)
        d = detection_scores(ps, ys, thr)
        print(
            f"{what}: mean AUC {np.nanmean(list(per_label_auc(ps, ys, els).values())):.4f}, precision "
            f"{d['precision']:.4f}, recall {d['recall']:.4f}",
            end="",
        )
        return ps, ys

    w30 = Instrument(tube=Tube(anode="W", kv=30.0), detector=Detector(fwhm_mnka_ev=135.0))
    summary("held-out instrument (W 30 kV, 135 eV)", instruments=(w30,), seed=SEED + 2)
    print()
    pt, yt = summary(
        "thick and thin layers (1 mg/cm^2 to 1 g/cm^2 of a paint matrix, self-absorbed)",
        seed=SEED + 3,
        thickness=(1e-3, 1.0),
    )
    lead = yt[:, els.index("Pb")]
    print(f"; As where Pb is seen: AUC {per_label_auc(pt[lead], yt[lead], els)['As']:.4f} ({int(lead.sum())} spectra)")

    base, per = unlisted_calls(model)
    print(
        f"elements outside the model's list (held-out, 2-7 elements, 1e3-1e6 counts): without them "
        f"{base[0]:.3f} false calls per spectrum ({base[3]} spectra, recall {base[1]:.3f}); with one of them seen:"
    )
    print(
        "  " + "; ".join(f"{e} {r[0]:.2f} ({', '.join(f'{x} {v:.2f}' for x, v in r[2][:2])})" for e, r in per.items())
    )
    real = real_spectra(model)
    sample = m6_sample()
    probs, net = real["m6"]
    strong = [e for e, v in net.items() if v >= 500 and e in els]
    print(
        "M6 Jetstream (Bruker fit >= 500 net counts): "
        + ", ".join(
            f"{e} {net[e]:.0f} -> {probs[e]:.3f}{'' if probs[e] >= model.thresholds[e] else ' MISSED'}" for e in strong
        )
    )
    print(
        "  an ideal fit of the real spectrum over 9-15 keV with Bruker's families there (net counts, z; "
        "the same fit of the noise-free simulation): "
        + ", ".join(f"{f} {c:.0f} ({z:.1f}; sim {s:.0f})" for f, (c, z, s) in m6_arsenic_evidence(sample).items())
    )
    clean, drawn = m6_simulated_arsenic(model, sample)
    print(
        f"  our simulation of the sample with Bruker's amounts: P(As) {clean:.2f} noise-free; {len(drawn)} Poisson "
        f"draws {drawn.min():.2f}-{drawn.max():.2f} (median {np.median(drawn):.2f}), As called in "
        f"{int((drawn >= model.thresholds['As']).sum())}"
    )
    extra = [e for e in present(probs, model.thresholds) if e not in strong]
    print(
        "  also called present: "
        + (", ".join(f"{e} {probs[e]:.3f} (Bruker {net.get(e, 0):.0f})" for e in extra) or "none")
    )

    def calls(probs: dict, names, listed) -> tuple[str, str]:
        """'El P' for ``names`` (MISSED below the threshold); those called outside ``listed``."""
        found = ", ".join(f"{e} {probs[e]:.3f}{'' if probs[e] >= model.thresholds[e] else ' MISSED'}" for e in names)
        extra = [e for e in present(probs, model.thresholds) if e not in listed]
        return found, "  called present outside the fit list: " + (
            ", ".join(f"{e} {probs[e]:.3f}" for e in extra) or "none"
        )

    mp = real["mca"]
    found, outside = calls(mp, MCA_STRONG, MCA_FIT)
    print("XRFSpectrum.mca strong lines: " + found)
    print("  weaker lines of the fit list: " + ", ".join(f"{e} {mp[e]:.3f}" for e in MCA_FIT if e not in MCA_STRONG))
    print(outside)
    found, outside = calls(real["steel"], STEEL_FIT, STEEL_FIT)
    print("Steel.spe fit list: " + found)
    print(outside)

    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no figures")
        return 0
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    IMAGES.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for j, e in enumerate(els):
        if 0 < y[:, j].sum() < len(y):
            fpr, tpr, _ = roc_curve(y[:, j], p[:, j])
            ax.plot(fpr, tpr, lw=1, label=f"{e} {auc[e]:.3f}", alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{model.name}: ROC per element, single-pixel counts")
    ax.legend(fontsize=6, ncol=3, loc="lower right")
    fig.tight_layout()
    fig.savefig(IMAGES / "elements-roc.png", dpi=90)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for key in ("accuracy", "precision", "recall", "f1"):
        ax.plot(range(1, 10), [r[key] for r in by_count], marker="o", label=key)
    ax.set_xlabel("elements in the spectrum")
    ax.set_ylim(0.8, 1.0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{model.name}: detection against the number of elements")
    fig.tight_layout()
    fig.savefig(IMAGES / "elements-by-count.png", dpi=90)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    filled = rel["count"] > 0
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    ax.plot(rel["predicted"][filled], rel["observed"][filled], marker="o", label=f"pooled, ECE {rel['ece']:.3f}")
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("share of spectra with the element")
    ax.set_title(f"{model.name}: reliability, single-pixel counts", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMAGES / "elements-reliability.png", dpi=90)
    print(
        f"wrote {IMAGES / 'elements-roc.png'}, {IMAGES / 'elements-by-count.png'} and "
        f"{IMAGES / 'elements-reliability.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
