"""Clustering on paintings unlike the generator's defaults: a validation set and its evaluation (issue 31).

The set is drawn from the physics engine (:func:`xray_atlas.physics.spectra.simulate`), one
cube per seed, each unlike :func:`~xray_atlas.physics.painting.synthetic_painting`'s defaults:

- 4-16 paint recipes; each a paint layer of one or two pigments mixed at a random mass
  ratio, 10-60 um thick, over lead white or straight on a chalk or gypsum ground; distinct
  recipes differ in their set of elements, except *ratio-only pairs* (about a third of the
  recipes): the same pigments mixed at a ratio 2-3x apart (e.g. azurite and lead white,
  Cu/Pb ratios twice apart);
- the paint's thickness varying 3x within each recipe (brushwork: a smooth texture, the
  spectra interpolated between thicknesses 0.58x, 1x and 1.73x the recipe's);
- blends: where two recipes' smooth fields come close, a pixel's expected spectrum is a
  mixture of both (the majority recipe's weight 0.5-1); 20-40 % of the pixels;
- 2,000-10,000 counts per pixel on average (log-uniform);
- 6,000-30,000 pixels (``--large`` adds cubes of 100,000+ pixels);
- shifted instruments: anode (Rh, Mo, W), 25-50 kV, detector resolution 125-180 eV at Mn
  K-alpha, 2-20 mm of air, 4096 channels of 10 eV or 2048 of 20 eV.

Truth is each pixel's recipe; a blend counts as its majority recipe (weight >= 0.5). The
adjusted Rand index (ARI) is reported over all pixels and over the pure pixels (no blend).
Noise (-1) counts as one label of its own.

**Seeds, tuning and held-out**: the tuning part is the only cubes looked at while the features
and the cluster-count decision are changed. Seeds 0-9 were the first tuning part; seeds
1000-1005, the first held-out part, were run once for issue 31's first report and, spent,
joined the tuning part (issue 31, second round: som's count decision); seeds 2000-2007, the
second held-out part, were run once for that round's report and joined it too, and so did
3000-3007, the third, run once on the unchanged code and then looked into (issue 31, third
round: blend bands tested for their depth), and 4000-4007, the fourth, run once for that
round's report (issue 31, third round), and 5000-5007, the fifth, run once for the fourth
round's report (blends' parts picked on the canvas), and 6000-6007, the sixth, run once for
the fifth round's report (pieces of one paint joined). The held-out part is now seeds
7000-7007 (the same generator settings): never generated, looked at or run while tuning, run
once for the report (``--part held-out``); nothing is to be tuned on them afterwards. The rule: whoever tunes again moves the spent held-out seeds into the tuning part
and draws a new held-out part (8000-..., and so on) before looking at any result. The large
cubes (``--large``) follow the same rule: 500 is tuning, 2500 held out (1500, never reported, is
no longer drawn).

Methods evaluated, each in a fresh process per method (times include imports; memory is the
process's peak resident size over one cube, VmHWM reset before each cube):

- ``umap-hdbscan`` and ``som`` with default parameters (``xray_atlas.cluster.cluster_cube``
  of the code on ``PYTHONPATH``: run once with this branch's ``src`` and once with the
  previous release's, ``--release PATH/src``);
- ``kmeans-true-k``: scikit-learn k-means (10 restarts) told the true number of recipes, on
  the previous release's features (100 channels trimmed at each end, 8-channel bins, square
  root of the pixel's share of its counts, 20 PCA components), fitted on the same 20,000-pixel
  sample and applied to every pixel.

Usage::

    python benchmarks/cluster_validation.py [--part tuning|held-out] [--large]
        [--release /path/to/previous/src] [--methods umap-hdbscan,som,kmeans-true-k] [--json OUT]

Cubes are written once to benchmarks/data/clustval/. Set OMP_NUM_THREADS=1 and
NUMBA_NUM_THREADS=1 for comparable one-core timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "clustval"
SEEDS = {
    "tuning": list(range(10))
    + list(range(1000, 1006))
    + list(range(2000, 2008))
    + list(range(3000, 3008))
    + list(range(4000, 4008))
    + list(range(5000, 5008))
    + list(range(6000, 6008)),
    "held-out": list(range(7000, 7008)),
}
LARGE_SEEDS = {"tuning": [500], "held-out": [2500]}

#: Pigments recipes draw from (no metal leaf, no grounds).
PIGMENTS = (
    "lead white",
    "vermilion",
    "azurite",
    "yellow ochre",
    "red ochre",
    "raw umber",
    "zinc white",
    "chrome yellow",
    "smalt",
    "lead-tin yellow",
    "naples yellow",
    "cadmium yellow",
    "titanium white",
    "ultramarine",
    "prussian blue",
    "cobalt blue",
    "emerald green",
    "orpiment",
    "bone black",
    "barium white",
    "bismuth white",
    "chromium oxide green",
)
THICKNESS_FACTORS = np.array([1 / np.sqrt(3), 1.0, np.sqrt(3)])  # 3x from thinnest to thickest


def _elements(material, floor: float = 0.005) -> frozenset:
    """Elements an XRF scanner sees in a material: Z >= 13 at >= 0.5 % by mass."""
    return frozenset(z for z, f in material.fractions if z >= 13 and f >= floor)


def _recipes(rng: np.random.Generator, k: int):
    """k recipes: (name, layers, ratio-pair partner or -1)."""
    from xray_atlas.physics.materials import mix, pigment

    out, seen = [], []
    while len(out) < k:
        if out and len(out) < k and rng.random() < 0.35:
            # a ratio-only partner of an earlier two-pigment recipe
            pairable = [i for i, r in enumerate(out) if r["parts"][1] is not None and r["pair"] < 0]
            if pairable:
                i = int(rng.choice(pairable))
                base = out[i]
                f = base["frac"]
                odds = f / (1 - f) * (rng.uniform(2.0, 3.0) ** (1 if f < 0.5 else -1))
                frac = odds / (1 + odds)
                a, b = base["parts"]
                mat = mix([(pigment(a), frac), (pigment(b), 1 - frac)], name=f"{a} {frac:.0%} + {b}")
                layers = ((mat, base["t"]),) + base["layers"][1:]
                out.append(
                    {"name": mat.name, "layers": layers, "parts": (a, b), "frac": frac, "t": base["t"], "pair": i}
                )
                base["pair"] = len(out) - 1
                continue
        two = rng.random() < 0.6
        picks = [PIGMENTS[j] for j in rng.choice(len(PIGMENTS), size=2 if two else 1, replace=False)]
        frac = float(rng.uniform(0.2, 0.8)) if two else 1.0
        mat = (
            mix([(pigment(picks[0]), frac), (pigment(picks[1]), 1 - frac)], name=f"{picks[0]} {frac:.0%} + {picks[1]}")
            if two
            else pigment(picks[0])
        )
        t = float(rng.uniform(10, 60))
        layers = ((mat, t),)
        if rng.random() < 0.5 and "lead white" not in picks:
            layers += ((pigment("lead white"), 30.0),)
        els = frozenset().union(*[_elements(m if not isinstance(m, str) else pigment(m)) for m, _ in layers])
        if els in seen or not els:
            continue  # recipes differ in their elements unless they are a ratio-only pair
        seen.append(els)
        out.append(
            {"name": mat.name, "layers": layers, "parts": (picks[0], picks[1] if two else None), "frac": frac, "t": t}
            | {"pair": -1}
        )
    return out


def _instrument(rng: np.random.Generator):
    from dataclasses import replace

    from xray_atlas.physics.detector import Detector
    from xray_atlas.physics.reference import M6_OPTIC
    from xray_atlas.physics.spectra import Instrument
    from xray_atlas.physics.tube import Tube

    anode = str(rng.choice(["Rh", "Rh", "Mo", "W"]))
    kv = float(rng.uniform(25, 50))
    fwhm = float(rng.uniform(125, 180))
    air = float(rng.uniform(2, 20))
    n_ch, gain = (4096, 0.01) if rng.random() < 0.6 else (2048, 0.02)
    det = Detector(n_channels=n_ch, gain_kev=gain, offset_kev=float(rng.uniform(-0.05, 0.05)), fwhm_mnka_ev=fwhm)
    inst = Instrument(Tube(anode, kv, current_ua=600.0), det, live_time_s=0.02, optic=M6_OPTIC)
    inst = replace(inst, geometry=replace(inst.geometry, air_mm=air))
    return inst, {"anode": anode, "kv": round(kv, 1), "fwhm_ev": round(fwhm), "air_mm": round(air, 1), "channels": n_ch}


def make_cube(seed: int, *, large: bool = False) -> dict:
    """One validation painting: counts (H, W, C) uint16, truth (H, W), pure mask, description."""
    from scipy.ndimage import gaussian_filter

    from xray_atlas.physics.generator import poisson
    from xray_atlas.physics.materials import pigment
    from xray_atlas.physics.spectra import Layer, simulate

    rng = np.random.default_rng(seed)
    k = int(rng.integers(4, 17))
    n_pix = int(rng.uniform(100_000, 160_000)) if large else int(np.exp(rng.uniform(np.log(6000), np.log(30000))))
    aspect = rng.uniform(0.6, 1.6)
    h = max(int(round(np.sqrt(n_pix * aspect))), 16)
    w = max(n_pix // h, 16)
    inst, desc = _instrument(rng)
    ground = str(rng.choice(["chalk ground", "gypsum ground"]))
    recipes = _recipes(rng, k)
    # layout: cells around k points kept apart (every recipe gets its region), their borders
    # warped by smooth noise; where the two nearest cells come close, a blend of both
    cell = np.sqrt(h * w / k)
    pts: list[np.ndarray] = []
    while len(pts) < k:
        p = rng.uniform((0, 0), (h, w))
        if all(np.hypot(*(p - q)) > 0.6 * cell for q in pts) or rng.random() < 0.02:
            pts.append(p)
    yy, xx = np.mgrid[0:h, 0:w]
    fields = []
    for py, px in pts:
        warp = gaussian_filter(rng.standard_normal((h, w)), cell / 4, mode="wrap")
        fields.append(-np.hypot(yy - py, xx - px) * rng.uniform(0.8, 1.25) + 0.15 * cell * warp / warp.std())
    fields = np.stack(fields)
    order = np.argsort(-fields, axis=0)
    top, second = order[0], order[1]
    margin = np.take_along_axis(fields, order[:1], 0)[0] - np.take_along_axis(fields, order[1:2], 0)[0]
    blend_share = float(rng.uniform(0.2, 0.4))
    edge = np.quantile(margin, blend_share)
    wmaj = np.where(margin < edge, 0.5 + 0.5 * margin / max(edge, 1e-9), 1.0).astype(np.float32)
    # thickness texture: 3x from thinnest to thickest within every recipe
    tex = gaussian_filter(rng.standard_normal((h, w)), max(h, w) / 30, mode="wrap")
    tex = (tex - tex.min()) / max(np.ptp(tex), 1e-12)  # 0..1 -> log-thickness across the 3 factors
    ground_layer = Layer(pigment(ground))
    table = np.stack(
        [
            simulate(
                [Layer(m if not isinstance(m, str) else pigment(m), t * f) for m, t in r["layers"]] + [ground_layer],
                inst,
            ).expected
            for r in recipes
            for f in THICKNESS_FACTORS
        ]
    ).astype(np.float32)  # (k * 3, C)
    # counts per pixel: the cube's mean total is drawn in 2,000-10,000
    mean_counts = float(np.exp(rng.uniform(np.log(2000), np.log(10000))))
    pos = tex.ravel() * 2  # 0..2 along the thickness factors
    lo = np.minimum(pos.astype(int), 1)
    fw = (pos - lo).astype(np.float32)[:, None]
    c = table.shape[1]
    flat_top, flat_sec, flat_w = top.ravel(), second.ravel(), wmaj.ravel()[:, None]

    def expected(sl):
        def of(reg):
            return table[reg[sl] * 3 + lo[sl]] * (1 - fw[sl]) + table[reg[sl] * 3 + lo[sl] + 1] * fw[sl]

        return of(flat_top) * flat_w[sl] + of(flat_sec) * (1 - flat_w[sl])

    probe = rng.choice(h * w, size=min(2000, h * w), replace=False)
    scale_counts = mean_counts / float(np.mean([expected(slice(i, i + 1)).sum() for i in probe]))
    counts = np.empty((h * w, c), np.uint16)
    for a in range(0, h * w, 2048):
        sl = slice(a, a + 2048)
        counts[sl] = np.minimum(poisson(expected(sl) * scale_counts, rng), 65535)
    det = inst.detector
    return {
        "counts": counts.reshape(h, w, c),
        "truth": top.astype(np.int32),
        "pure": wmaj == 1.0,
        "offset": float(det.offset_kev),
        "gain": float(det.gain_kev),
        "desc": {
            **desc,
            "seed": seed,
            "recipes": int(np.unique(top).size),  # the recipes some pixel holds the majority of
            "ratio_pairs": sum(r["pair"] >= 0 for r in recipes) // 2,
            "pixels": h * w,
            "shape": [h, w],
            "blend_share": round(1 - float((wmaj == 1).mean()), 2),
            "mean_counts": round(mean_counts),
            "ground": ground,
            "recipe_names": [
                " over ".join(m if isinstance(m, str) else m.name for m, _ in r["layers"]) for r in recipes
            ],
        },
    }


def cube_path(seed: int, large: bool = False) -> Path:
    return DATA / f"{'large' if large else 'cube'}_{seed}.h5"


def ensure_cube(seed: int, large: bool = False) -> Path:
    """Write the cube of ``seed`` once (counts, truth, pure mask and description)."""
    from xray_atlas.io.hdf5 import write_cube

    path = cube_path(seed, large)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cube = make_cube(seed, large=large)
        write_cube(
            path,
            cube["counts"],
            energy_offset_kev=cube["offset"],
            energy_gain_kev=cube["gain"],
            attrs={"title": f"validation painting {seed}", "description": json.dumps(cube["desc"])},
            extra={"regions": cube["truth"], "pure": cube["pure"].astype(np.uint8)},
        )
    return path


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident size (Linux >= 4.0)
    except OSError:
        pass


def _kmeans_true_k(cube, k: int, seed: int = 0) -> np.ndarray:
    """k-means with the true k on the previous release's features (see the module docstring)."""
    from sklearn.cluster import KMeans

    from xray_atlas.cluster.features import iter_features
    from xray_atlas.cube import run_to_end

    feats = run_to_end(iter_features(cube, trim=100, bin=8, normalise="sqrt-total", pca_components=20, seed=seed))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(feats.sample)
    labels = np.empty(cube.height * cube.width, np.int32)
    for rows, block in cube.iter_tiles():
        labels[rows.start * cube.width : rows.stop * cube.width] = km.predict(feats.of(block))
    return labels


def child(method: str, paths: list[str]) -> list[dict]:
    import h5py
    from sklearn.metrics import adjusted_rand_score

    from xray_atlas.io import read

    out = []
    for path in paths:
        with h5py.File(path) as f:
            truth = f["regions"][()].ravel()
            pure = f["pure"][()].ravel().astype(bool)
            desc = json.loads(f.attrs["description"])
        _reset_peak()
        t = time.perf_counter()
        with read(path) as cube:
            if method == "kmeans-true-k":
                labels = _kmeans_true_k(cube, desc["recipes"])
            else:
                from xray_atlas.cluster import cluster_cube

                labels = cluster_cube(cube, method).labels.ravel()
        seconds = time.perf_counter() - t
        out.append(
            {
                "seed": desc["seed"],
                "ari": float(adjusted_rand_score(truth, labels)),
                "ari_pure": float(adjusted_rand_score(truth[pure], labels[pure])),
                "n_clusters": int(np.unique(labels[labels >= 0]).size),
                "noise": float((labels < 0).mean()),
                "recipes": desc["recipes"],
                "seconds": seconds,
                "peak_mb": _peak_mb(),
            }
        )
    return out


def run(method: str, paths: list[Path], src: str | None) -> list[dict]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("NUMBA_NUM_THREADS", "1")
    if src:
        env["PYTHONPATH"] = src
    got = subprocess.run(
        [sys.executable, __file__, "--child", method, *map(str, paths)], capture_output=True, text=True, env=env
    )
    if got.returncode != 0:
        raise RuntimeError(f"{method}: {got.stderr.strip()[-2000:]}")
    return json.loads(got.stdout.strip().splitlines()[-1])


def summary(rows: list[dict], key: str = "ari") -> str:
    v = np.array([r[key] for r in rows])
    return f"median {np.median(v):.3f}  worst {v.min():.3f}  mean {v.mean():.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=list(SEEDS), default="tuning")
    ap.add_argument("--large", action="store_true", help="add the 100,000+ pixel cube(s)")
    ap.add_argument("--release", help="src folder of the previous release, evaluated as 'previous'")
    ap.add_argument("--methods", default="umap-hdbscan,som,kmeans-true-k")
    ap.add_argument("--seeds", help="comma-separated subset of the part's seeds")
    ap.add_argument("--json", help="write every row here")
    ap.add_argument("--child")
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.paths)))
        return
    seeds = SEEDS[args.part]
    if args.seeds:
        seeds = [int(s) for s in args.seeds.split(",") if int(s) in seeds]
    t = time.perf_counter()
    paths = [ensure_cube(s) for s in seeds] + (
        [ensure_cube(s, True) for s in LARGE_SEEDS[args.part]] if args.large else []
    )
    print(f"cubes ready in {time.perf_counter() - t:.0f} s")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset (1 in the children)')}"
    )
    import h5py

    for p in paths:
        with h5py.File(p) as f:
            d = json.loads(f.attrs["description"])
        print(
            f"  seed {d['seed']:5d}: {d['shape'][0]}x{d['shape'][1]} ({d['pixels']} px), {d['recipes']} recipes "
            f"({d['ratio_pairs']} ratio pairs), blends {d['blend_share']:.0%}, {d['mean_counts']} counts/px, "
            f"{d['anode']} {d['kv']} kV, {d['fwhm_ev']} eV, air {d['air_mm']} mm, {d['channels']} ch, {d['ground']}"
        )
    runs = [(m, None, m) for m in args.methods.split(",")]
    if args.release:
        runs += [(m, args.release, f"previous {m}") for m in args.methods.split(",") if m != "kmeans-true-k"]
    results = {}
    for method, src, label in runs:
        rows = run(method, paths, src or str(HERE.parent / "src"))
        results[label] = rows
        print(f"\n{label}: ARI {summary(rows)}; pure pixels {summary(rows, 'ari_pure')}")
        for r in rows:
            print(
                f"  seed {r['seed']:5d}: ARI {r['ari']:.3f} (pure {r['ari_pure']:.3f}), {r['n_clusters']:2d} clusters "
                f"for {r['recipes']:2d} recipes, noise {r['noise']:.1%}, {r['seconds']:6.1f} s, peak {r['peak_mb']:5.0f} MB"
            )
    print("\nsummary (ARI over all pixels; blends count as their majority recipe)")
    print(f"{'method':26s} {'median':>7s} {'worst':>7s} {'mean':>7s} {'pure med':>8s} {'s/cube':>7s} {'peak MB':>8s}")
    for label, rows in results.items():
        a = np.array([r["ari"] for r in rows])
        print(
            f"{label:26s} {np.median(a):7.3f} {a.min():7.3f} {a.mean():7.3f} "
            f"{np.median([r['ari_pure'] for r in rows]):8.3f} {np.median([r['seconds'] for r in rows]):7.1f} "
            f"{max(r['peak_mb'] for r in rows):8.0f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
