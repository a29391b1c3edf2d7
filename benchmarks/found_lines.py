"""Which line families the default map set adds, against the truth of synthetic paintings: the
figures of "Which lines are mapped" in docs/maps.md.

The default map set is the twelve study lines plus every K or L family that the per-cluster
fit and the element model find in the cube (``xray_atlas.probabilities.found_families``). On
each painting this script runs the default model (``maps-fit``) and sorts what it added by the
painting's true maps (the simulator's net counts):

- **false**: the family's true map is empty: no pigment of the painting holds the element;
- **trace**: the element is there but its family gives under one count in every pixel;
- **there**: it reaches at least one count in some pixel.

A family is **missed** when its true map reaches 5 counts in some pixel and it is neither in
the twelve nor added (K and L families the default set may add: ``searched_families``).
For the added families it also gives the Pearson correlation of the map with the truth.
Beside the rule it scores simpler ones on the same fits (``VARIANTS``): the fit's significance
alone, with the share, with the element model, without the tube-line share.

Paintings: a 32 x 32 and a 64 x 64 painting of arsenic, cobalt, titanium, barium, tin and
antimony pigments (orpiment, realgar, smalt, titanium white, lithopone, lead-tin yellow, Naples
yellow, beside vermilion and lead white), the demo painting (96 x 128, seed 0), 20 random
layouts (48 x 64, seeds 7001-7020) and 5 with washes (a third of the regions 0.05-2 um of
paint straight on the ground: traces; seeds 7101-7105).

Then the real scans of ../shared/data/real: which families the default set adds to each.

Usage: ``python benchmarks/found_lines.py [--quick]`` (``--quick``: the first two random
layouts only, no real scans).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"

#: The regions of the arsenic-cobalt-titanium-barium-tin-antimony painting, top layer first.
SIX_REGIONS = (
    ("lead white priming", (("lead white", 30.0),)),
    ("orpiment", (("orpiment", 20.0), ("lead white", 30.0))),
    ("realgar", (("realgar", 15.0), ("lead white", 30.0))),
    ("smalt", (("smalt", 30.0), ("lead white", 30.0))),
    ("titanium white", (("titanium white", 20.0),)),
    ("lithopone", (("lithopone", 20.0),)),
    ("lead-tin yellow", (("lead-tin yellow", 15.0),)),
    ("naples yellow", (("naples yellow", 15.0),)),
    ("vermilion", (("vermilion", 25.0), ("lead white", 30.0))),
)


def six_painting(size: int = 32, seed: int = 3):
    """The painting of SIX_REGIONS: the priming, and the other eight in a 3 x 3 grid."""
    from xray_atlas.physics.painting import Region, paint

    regions = [Region(n, layers) for n, layers in SIX_REGIONS]
    yy, xx = np.mgrid[:size, :size]
    reg = (yy * 3 // size) * 3 + xx * 3 // size + 1  # 1..9
    reg[reg == 9] = 0  # the last cell: bare priming
    return paint(reg.astype(np.int32), regions, seed=seed, title="arsenic, cobalt, titanium, barium, tin, antimony")


#: Rules scored beside the default one: (name, with the element model, min_share, tube_share),
#: all at z >= FOUND_Z.
VARIANTS = (
    ("fit z >= 3 alone", False, 0.0, 0.0),
    ("z and share >= 0.1 %", False, 1e-3, 1e-3),
    ("z and element model", True, 0.0, 0.0),
    ("z, share and element model", True, 1e-3, 1e-3),
    ("the rule (and 1 % on the tube's lines)", True, 1e-3, 1e-2),
)


def _kind(painting, line: str) -> str:
    true = painting.maps.get(line)
    if true is None or not true.any():
        return "false"
    return "trace" if true.max() < 1.0 else "there"


def variants(painting, tally: dict) -> None:
    """Score the rules of VARIANTS on one painting, adding to ``tally`` {name: {kind: n}}."""
    from xray_atlas.clusterfit import ClusterFit
    from xray_atlas.cube import SpectralCube, run_to_end
    from xray_atlas.inference import searched_families
    from xray_atlas.models.prior import INSTRUMENT_DEFAULTS, instrument_for
    from xray_atlas.physics.lines import DEFAULT_MAP_LINES
    from xray_atlas.probabilities import FOUND_Z, found_families, load_element_model, on_tube_lines

    cube = SpectralCube(
        painting.counts,
        offset_kev=painting.energy_offset_kev,
        gain_kev=painting.energy_gain_kev,
        metadata=painting.attrs,
    )
    fit = ClusterFit(cube, DEFAULT_MAP_LINES)
    run_to_end(fit.iter_prepare())
    cands = tuple(f for f in searched_families(cube, fit.basis.families) if f not in DEFAULT_MAP_LINES)
    inst = instrument_for(
        n_channels=cube.n_channels,
        **{**INSTRUMENT_DEFAULTS, "offset_kev": painting.energy_offset_kev, "gain_kev": painting.energy_gain_kev},
    )
    tube = on_tube_lines(cands, inst)
    em = load_element_model(None, device="cpu")
    there = {ln for ln in cands if painting.maps.get(ln, np.zeros(1)).max() >= 5}
    for name, use_em, share, tube_share in VARIANTS:
        got = found_families(
            fit,
            cands,
            element_model=em if use_em else None,
            on_tube=tube,
            z=FOUND_Z,
            min_share=share,
            tube_share=tube_share,
        )
        t = tally.setdefault(name, {"there": 0, "trace": 0, "false": 0, "missed": 0, "which": []})
        for f in got:
            kind = _kind(painting, f.line)
            t[kind] += 1
            if kind == "false":
                t["which"].append(f.line)
        t["missed"] += len(there - {f.line for f in got})


def score(name: str, painting) -> dict:
    from xray_atlas.cube import SpectralCube
    from xray_atlas.inference import predict_maps, searched_families

    cube = SpectralCube(
        painting.counts,
        offset_kev=painting.energy_offset_kev,
        gain_kev=painting.energy_gain_kev,
        metadata=painting.attrs,
    )
    t = time.perf_counter()
    done = predict_maps(cube, None, device="cpu")
    seconds = time.perf_counter() - t
    maps = done.maps
    rows = {"false": [], "trace": [], "there": [], "missed": []}
    for f in done.found:
        true = painting.maps.get(f.line)
        if true is None or not true.any():
            rows["false"].append((f, None))
            continue
        r = float(np.corrcoef(maps[f.line].ravel(), true.ravel())[0, 1]) if true.std() > 0 else float("nan")
        rows["trace" if true.max() < 1.0 else "there"].append((f, r))
    searched = set(searched_families(cube, tuple(painting.maps)))
    for ln, true in painting.maps.items():
        if ln in searched and ln not in maps and true.max() >= 5:
            rows["missed"].append((ln, float(true.max())))
    print(f"\n{name} ({painting.counts.shape[0]} x {painting.counts.shape[1]}, {seconds:.1f} s): {len(maps)} lines")
    for kind in ("there", "trace", "false"):
        for f, r in rows[kind]:
            true = painting.maps.get(f.line)
            tot = 0.0 if true is None else float(true.sum())
            print(f"  {kind:6s} {f}; true total {tot:,.0f}" + ("" if r is None else f", r = {r:.3f}"))
    for ln, top in rows["missed"]:
        print(f"  missed {ln}: up to {top:.1f} counts a pixel")
    return rows


def main(quick: bool = False) -> None:
    from xray_atlas.physics.painting import paint, random_layout, synthetic_painting

    paintings = [
        ("As-Co-Ti-Ba-Sn-Sb 32", lambda: six_painting(32)),
        ("As-Co-Ti-Ba-Sn-Sb 64", lambda: six_painting(64)),
        ("demo painting", lambda: synthetic_painting(96, 128, seed=0)),
    ]
    seeds = range(7001, 7003) if quick else range(7001, 7021)
    paintings += [(f"random {s}", lambda s=s: synthetic_painting(48, 64, seed=s, layout="random")) for s in seeds]

    def washes(s):
        reg, regions = random_layout(48, 64, seed=s, wash_share=1 / 3)
        return paint(reg, regions, seed=s)

    if not quick:
        paintings += [(f"washes {s}", lambda s=s: washes(s)) for s in range(7101, 7106)]
    total = {"false": 0, "trace": 0, "there": 0, "missed": 0}
    tally: dict = {}
    for name, make in paintings:
        painting = make()
        rows = score(name, painting)
        for k in total:
            total[k] += len(rows[k])
        variants(painting, tally)
    print(
        f"\n{len(paintings)} paintings: added {total['there']} families that are there, {total['trace']} traces "
        f"(under one count a pixel), {total['false']} absent (false additions); missed {total['missed']}"
    )
    print("\n| rule | added, there | traces | absent (false) | missed |\n| --- | --- | --- | --- | --- |")
    for name, t in tally.items():
        print(f"| {name} | {t['there']} | {t['trace']} | {t['false']} | {t['missed']} |")
    for name, t in tally.items():
        which = sorted(set(t["which"]), key=lambda ln: -t["which"].count(ln))
        print(f"{name}: false additions " + (", ".join(f"{ln} x {t['which'].count(ln)}" for ln in which) or "none"))


def real() -> None:
    """The families the default set adds to the real scans (the calibrated ones)."""
    from xray_atlas.inference import predict_maps
    from xray_atlas.io import read

    print()
    for name in (
        "bruker_m6_jetstream_file_example.spx",
        "Steel.spe",
        "bcf_v2_50x50px.bcf",
        "30x30_instructively_packed_16bit_compressed.bcf",
    ):
        with read(REAL / name) as cube:
            done = predict_maps(cube, None, device="cpu")
        print(
            f"{name}: "
            + (
                "; ".join(f"{f}, {float(done.maps[f.line].sum()):,.0f} net counts" for f in done.found)
                or "nothing added"
            )
        )


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
    if "--quick" not in sys.argv[1:]:
        real()
