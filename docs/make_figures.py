"""Figures of docs/physics.md: the simulator against the real spectra in ../shared/data/real.

Usage: ``python docs/make_figures.py`` (matplotlib is a dependency since the export, issue 28). Writes
docs/images/physics-steel.png, physics-m6.png and physics-painting.png and prints the
figures quoted in docs/physics.md.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from xray_atlas.io import read  # noqa: E402
from xray_atlas.physics.reference import m6_jetstream_sample, steel_srm1155  # noqa: E402
from xray_atlas.physics.spectra import pure_spectrum, simulate  # noqa: E402
from xray_atlas.unmix import fit_net_counts  # noqa: E402

HERE = Path(__file__).resolve().parent
REAL = HERE.parents[1] / "shared" / "data" / "real"
OUT = HERE / "images"


def steel() -> None:
    mat, inst = steel_srm1155()
    sim = simulate(mat, inst)
    with read(REAL / "Steel.spe") as cube:
        meas = cube.pixel(0, 0).astype(float)
    det = inst.detector
    pure = {f: sim.family_spectrum(f, det) for f in ("Cr-K", "Mn-K", "Fe-K", "Ni-K")}
    pure.update({f: pure_spectrum(f, instrument=inst) for f in ("Cu-K", "V-K", "Ar-K", "Mo-L")})
    fit = fit_net_counts(meas, pure, channels=slice(int(1.5 / det.gain_kev), int(20 / det.gain_kev)))
    scale = fit["Fe-K"] / sim.net["Fe-K"]
    print("Steel.spe, relative to Fe (simulated / measured):")
    for f in ("Cr-K", "Mn-K", "Ni-K"):
        print(f"  {f}: {(sim.net[f] / sim.net['Fe-K']) / (fit[f] / fit['Fe-K']):.3f}")
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.semilogy(det.energy, np.maximum(meas, 0.5), lw=0.7, label="measured: NIST SRM 1155 (Steel.spe)")
    ax.semilogy(det.energy, np.maximum(sim.expected * scale, 0.5), lw=0.9, label="simulated, scaled to Fe K")
    ax.set(
        xlim=(1, 24),
        ylim=(0.5, None),
        xlabel="energy (keV)",
        ylabel="counts per channel",
        title="Stainless steel, 16 keV excitation (instrument of Steel.cfg)",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "physics-steel.png", dpi=90)


def m6() -> None:
    sim, target, meas = m6_jetstream_sample(REAL / "bruker_m6_jetstream_file_example.spx")
    print("M6 Jetstream, simulated / measured counts per band:")
    for a, b in [(1.0, 1.8), (4.3, 6.0), (6.0, 12.0), (12.0, 17.5), (17.5, 21.5), (21.5, 25.0)]:
        k = (sim.energy > a) & (sim.energy < b)
        print(f"  {a:4.1f}-{b:4.1f} keV: {sim.expected[k].sum() / meas[k].sum():.2f}")
    fig, axes = plt.subplots(2, 1, figsize=(10, 7))
    for ax, lim in zip(axes, ((0, 30), (1, 12))):
        ax.semilogy(sim.energy, np.maximum(meas, 0.5), lw=0.6, label="measured: Bruker M6 Jetstream (.spx)")
        ax.semilogy(sim.energy, np.maximum(sim.expected, 0.5), lw=0.9, label="simulated")
        ax.set(xlim=lim, ylim=(0.5, None), xlabel="energy (keV)", ylabel="counts per channel")
    axes[0].set_title("M6 Jetstream spectrum (Rh 50 kV, 28 s) and its simulation")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(OUT / "physics-m6.png", dpi=90)


def painting() -> None:
    from xray_atlas.physics.painting import synthetic_painting

    p = synthetic_painting(96, 128, seed=0)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    axes[0].imshow(p.counts.sum(-1), cmap="gray")
    axes[0].set_title("total counts")
    for ax, line in zip(axes[1:], ("Hg-L", "Cu-K", "Pb-L")):
        ax.imshow(p.maps[line], cmap="magma")
        ax.set_title(f"true {line} net counts")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "physics-painting.png", dpi=80)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    steel()
    m6()
    painting()
