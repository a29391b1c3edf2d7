"""The map model adapted to shifted instruments (issue 32): paintings scanned by XRF instruments
unlike the shipped model's training scanner, the instrument fitted to one scan's sum spectrum,
``maps-fit`` fine-tuned for it (:func:`xray_atlas.adapt.adapt_maps`), and both models' error on
two other scans by the same instrument, as a ratio to the Poisson-limited fit's
(:func:`xray_atlas.evaluation.limit_fit`: each region's true family spectra and background).

The instruments are :func:`eval_adapt_elements.shifted_instruments` (chosen for the element
model, never tuned on for maps); the painting seeds (5100+, 5200+, 5300+) are used by nothing
else. Both models are run as a user runs them (:func:`xray_atlas.inference.predict_maps`, hold
and shrink on), on the lines whose true maximum exceeds 50 counts; the score of a painting is
the mean over those lines of MAE / the limit fit's MAE, then averaged over the two paintings.
The shipped model is scored twice: on scans whose files state nothing but the live time (its
per-cluster fit then assumes its own M6-like tube), and on scans whose files state the tube's
anode and voltage (the fit then takes them).

The scan adapted on states the tube's anode and voltage, which the adaptation then takes as known.

Usage: ``python benchmarks/eval_adapt_maps.py [--quick] [--only K ...] [--epochs N] [--n-paintings N]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_adapt_elements import scan, shifted_instruments  # noqa: E402


def ratios(models: dict, painting) -> dict:
    """{key: {line: MAE / the limit fit's MAE}} for ``models`` {key: (model, metadata the cube
    states beside its live time)}, lines whose true maximum exceeds 50 counts."""
    from xray_atlas.cube import SpectralCube
    from xray_atlas.evaluation import limit_fit
    from xray_atlas.inference import predict_maps
    from xray_atlas.physics.lines import DEFAULT_MAP_LINES

    lines = [ln for ln in DEFAULT_MAP_LINES if painting.maps.get(ln, np.zeros(1)).max() > 50]
    limit = limit_fit(painting, lines)
    floor = {ln: max(float(np.abs(limit[ln] - painting.maps[ln]).mean()), 1e-9) for ln in lines}
    out = {}
    for key, (model, meta) in models.items():
        cube = SpectralCube(
            painting.counts,
            offset_kev=painting.energy_offset_kev,
            gain_kev=painting.energy_gain_kev,
            metadata={"live_time_s": painting.attrs["live_time_s"], **meta},
        )
        got = predict_maps(cube, model, device="cpu", lines=tuple(lines), find=False).maps
        out[key] = {ln: float(np.abs(got[ln] - painting.maps[ln]).mean()) / floor[ln] for ln in lines}
    return out


def main(argv=None) -> int:
    from xray_atlas.adapt import adapt_maps
    from xray_atlas.training import TerminalProgress

    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--quick", action="store_true", help="one instrument, small paintings, 4 paintings, 2 epochs")
    a.add_argument("--epochs", type=int)
    a.add_argument("--n-paintings", type=int)
    a.add_argument("--only", type=int, nargs="*", help="indices of the instruments to run (default: all)")
    args = a.parse_args(argv)
    size = (32, 40) if args.quick else (48, 64)
    rows = []
    for k, (name, inst) in enumerate(shifted_instruments(args.quick).items()):
        if args.only and k not in args.only:
            continue
        fit_scan = scan(inst, 5100 + k, size)
        tests = [scan(inst, seed + k, size) for seed in (5200, 5300)]
        with tempfile.TemporaryDirectory() as tmp:
            cube = Path(tmp) / "scan.h5"
            fit_scan.write(cube)
            t0 = time.perf_counter()
            made = adapt_maps(
                cube,
                Path(tmp) / "adapted.safetensors",
                epochs=2 if args.quick and args.epochs is None else args.epochs,
                n_paintings=args.n_paintings or (4 if args.quick else 60),
                device="cpu",
                callbacks=[TerminalProgress()],
            )
            seconds = time.perf_counter() - t0
            tube = {"anode": inst.tube.anode, "tube_kv": float(inst.tube.kv)}
            scored = [
                ratios(
                    {
                        "shipped": ("maps-fit", {}),
                        "shipped, tube stated": ("maps-fit", tube),
                        "adapted": (made.path, {}),
                    },
                    t,
                )
                for t in tests
            ]
        keys = ("shipped", "shipped, tube stated", "adapted")
        lines = sorted({ln for r in scored for ln in r["shipped"]})

        def mean(key: str, line: str | None = None) -> float:
            per = [
                np.mean(list(r[key].values())) if line is None else r[key][line]
                for r in scored
                if line is None or line in r[key]
            ]
            return round(float(np.mean(per)), 3)

        row = {
            "instrument": name,
            "fitted": made.instrument.as_dict(),
            "reduced_chi2": round(made.reduced_chi2, 2),
            "seconds": round(seconds, 1),
            **{f"{key} x limit": mean(key) for key in keys},
            "validation_mae": [round(made.mae, 2), round(made.base_mae, 2)],
            "per_line": {ln: [mean(key, ln) for key in keys] for ln in lines},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        f"MAE x the limit fit's, mean over {len(rows)} instruments: "
        + ", ".join(
            f"{key} {np.mean([r[f'{key} x limit'] for r in rows]):.3f}"
            for key in ("shipped", "shipped, tube stated", "adapted")
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
