"""The per-cluster fit's reduced chi-square (``/fit/reduced_chi2``): the figures of "How well
the fit explains the counts" in docs/maps.md.

1. The demo painting (96 x 128 x 4096, seed 0, 20 ms): the median reduced chi-square of the
   default model's fit over the painting and in each painted region, with every element in
   the fit, and with Hg-L left out of it (``ClusterFit(omit=("Hg-L",))``): the vermilion robe
   against the rest.
2. Where the excess above 1 comes from: each region's chi-square summed per 1 keV band over
   its pixels, against its Poisson expectation; the bands that hold most of the excess.
3. The same painting layout simulated without pile-up (the detector's pulse-pair resolving
   time set to 0; 48 x 64 to keep it quick): the median without the sum peaks the fit lacks.
4. The time the chi-square adds on the demo painting: the fit of every tile (one BLAS thread and
   the default), and whole ``maps-fit`` runs in one process, alternating with and without it
   (``iter_maps(..., chi2=False)``), median of each, wall and CPU seconds.

Usage: ``python benchmarks/goodness_of_fit.py [--runs N]`` (default 5 runs each way).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np


def region_medians(chi2: np.ndarray, regions: np.ndarray, names: list[str]) -> dict[str, float]:
    return {name: float(np.nanmedian(chi2[regions == r])) for r, name in enumerate(names) if (regions == r).any()}


def fit_chi2(cube, omit=()) -> tuple[np.ndarray, object]:
    from xray_atlas.clusterfit import ClusterFit
    from xray_atlas.cube import run_to_end

    fit = ClusterFit(cube, ("Pb-L",), omit=omit)
    run_to_end(fit.iter_prepare())
    out = np.full(cube.height * cube.width, np.nan, np.float32)
    w = cube.width
    for rows, block in cube.iter_tiles():
        out[rows.start * w : rows.stop * w] = fit.tile(block, chi2=True).chi2
    return out.reshape(cube.height, cube.width), fit


def excess_bands(cube, fit, mask: np.ndarray, *, every: int = 3) -> list[tuple[float, float, float]]:
    """(band start keV, chi-square, expectation) of each 1 keV band, summed over every
    ``every``-th pixel of ``mask``."""
    from xray_atlas.spectrumfit import fit_pixels

    chi = np.zeros(cube.n_channels)
    exp = np.zeros(cube.n_channels)
    for y, x in np.argwhere(mask)[::every]:
        sf = fit_pixels(fit, cube.pixel(int(y), int(x)))
        c = sf.channels
        chi[c] += ((sf.measured - sf.fitted) ** 2 / np.maximum(sf.fitted, 1.0))[c]
        exp[c] += np.minimum(sf.fitted, 1.0)[c]
    band = np.floor(cube.energy).astype(int)
    return [
        (float(b), float(chi[band == b].sum()), float(exp[band == b].sum()))
        for b in np.unique(band)
        if exp[band == b].sum() > 0
    ]


def main(argv: list[str]) -> None:
    import h5py

    from xray_atlas.cube import SpectralCube, run_to_end
    from xray_atlas.inference import iter_maps, load_map_model
    from xray_atlas.io import read
    from xray_atlas.napari._sample_data import ensure_demo_painting
    from xray_atlas.physics.painting import paint, painting_instrument, shapes_layout

    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 5
    path = ensure_demo_painting()
    with h5py.File(path, "r") as f:
        regions = f["regions"][()]
        names = [n.decode() for n in f.attrs["region_names"]]
    cube = read(path)

    print("1. demo painting, median reduced chi-square of the per-cluster fit")
    full, fit = fit_chi2(cube)
    lacking, _ = fit_chi2(cube, omit=("Hg-L",))
    print(f"   every element in the fit: painting {np.nanmedian(full):.3f}; without Hg-L: {np.nanmedian(lacking):.3f}")
    a, b = region_medians(full, regions, names), region_medians(lacking, regions, names)
    for name in a:
        print(f"   {name:42s} {a[name]:7.3f} {b[name]:8.3f}")
    robe = regions == names.index("vermilion robe")
    outside = ~np.isin(regions, [names.index("vermilion robe"), names.index("zinc white retouching")])
    print(
        f"   without Hg-L: vermilion robe {np.nanmedian(lacking[robe]):.2f}, outside the two vermilion regions "
        f"{np.nanmedian(lacking[outside]):.2f} ({np.nanmedian(lacking[robe]) / np.nanmedian(lacking[outside]):.1f} x)"
    )

    print("2. where the excess above 1 lies (every third pixel of the region; bands holding >= 10 % of it)")
    for name in ("azurite sky", "zinc white retouching", "vermilion robe", "malachite and lead-tin yellow sleeve"):
        rows = excess_bands(cube, fit, regions == names.index(name))
        chi, exp = sum(r[1] for r in rows), sum(r[2] for r in rows)
        excess = chi - exp
        print(f"   {name}: chi-square / expectation {chi / exp:.3f}")
        for lo, c, e in rows:
            if c - e >= 0.1 * excess:
                print(
                    f"      {lo:4.0f}-{lo + 1:.0f} keV: {c / e:6.2f} x its expectation, {100 * (c - e) / excess:3.0f} % "
                    "of the excess"
                )

    print("3. the demo layout at 48 x 64, with and without pile-up in the simulation")
    reg, regs = shapes_layout(48, 64, seed=0)
    inst = painting_instrument()
    for label, instrument in (
        ("with pile-up", inst),
        ("without", replace(inst, detector=replace(inst.detector, pileup_time_s=0.0))),
    ):
        p = paint(reg, regs, instrument=instrument, seed=0)
        c = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs))
        chi, _ = fit_chi2(c)
        print(
            f"   {label}: median {np.nanmedian(chi):.3f}; per region "
            + ", ".join(f"{k} {v:.2f}" for k, v in region_medians(chi, p.regions, p.region_names).items())
        )

    print(f"4. the time it adds on the demo painting, {runs} runs each way, alternating (wall and CPU seconds)")
    from threadpoolctl import threadpool_limits

    for threads in (1, None):  # one BLAS thread: CPU time without the spinning of idle BLAS threads
        tiles = {True: [], False: []}
        with threadpool_limits(threads):
            for _ in range(runs):
                for on in (False, True):
                    t, c = time.perf_counter(), time.process_time()
                    for _, block in cube.iter_tiles():
                        fit.tile(block, chi2=on)
                    tiles[on].append((time.perf_counter() - t, time.process_time() - c))
        report(f"   the fit of every tile ({'one thread' if threads else 'default threads'})", tiles)
    whole = {True: [], False: []}
    for _ in range(runs):
        for on in (False, True):
            model = load_map_model(None, cube, device="cpu")
            t, c = time.perf_counter(), time.process_time()
            done = run_to_end(iter_maps(cube, model, chi2=on))
            whole[on].append((time.perf_counter() - t, time.process_time() - c))
            assert (done.reduced_chi2 is not None) == on
    report("   maps-fit, the whole run (xray-atlas maps without reading and writing files)", whole)


def report(what: str, times: dict) -> None:
    for k, label in ((0, "wall"), (1, "CPU")):
        off = float(np.median([t[k] for t in times[False]]))
        on = float(np.median([t[k] for t in times[True]]))
        print(
            f"{what}, {label}: without the chi-square {off:.2f} s, with it {on:.2f} s: {on - off:+.2f} s "
            f"({100 * (on - off) / off:+.1f} %); runs without "
            + ", ".join(f"{t[k]:.2f}" for t in times[False])
            + "; with "
            + ", ".join(f"{t[k]:.2f}" for t in times[True])
        )


if __name__ == "__main__":
    main(sys.argv[1:])
