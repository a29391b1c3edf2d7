"""Train the models shipped in src/xray_atlas/models/zoo with the project's own training code,
then score them on freshly generated held-out data.

Usage: ``python tools/train_zoo.py maps [--quick]``. The default map model is xray-atlas's
prior MLP (least squares on the physics engine's pure spectra plus a learnt correction),
trained on 200 random-layout synthetic paintings (M6 Jetstream-like scanner, 5-40 ms dwell,
detector FWHM 130-160 eV, offset +/- 20 eV) with adaptive L1. ``--quick`` is a small run
for trying changes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "src" / "xray_atlas" / "models" / "zoo"


def train_maps(quick: bool) -> Path:
    from xray_atlas.training import TerminalProgress, make_config, train

    config = make_config(
        "maps", model="prior-mlp", source="synthetic-paintings", loss="adaptive-l1", epochs=12 if quick else 60,
        patience=10, seed=20261122, device="auto", batch_size=256, schedule="cosine",
        model_params={"hidden": (512, 512)},
        source_params={"n_paintings": 12 if quick else 200, "height": 48, "width": 64})
    tmp = Path(tempfile.mkdtemp(prefix="zoo-maps-"))
    t = time.perf_counter()
    outcome = train(config, tmp / "maps-default.safetensors", callbacks=[TerminalProgress()])
    print(f"trained in {time.perf_counter() - t:.0f} s; best epoch {outcome.result.best_epoch}")
    ZOO.mkdir(parents=True, exist_ok=True)
    dest = ZOO / "maps-default.safetensors"
    shutil.copyfile(outcome.path, dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest


def score_maps(path: Path, seeds=(9001, 9002, 9003)) -> None:
    import numpy as np

    from xray_atlas.cube import SpectralCube
    from xray_atlas.evaluation import limit_fit
    from xray_atlas.inference import predict_maps
    from xray_atlas.metrics import map_scores, score_table
    from xray_atlas.physics.lines import DEFAULT_MAP_LINES
    from xray_atlas.physics.painting import synthetic_painting

    for seed in seeds:
        p = synthetic_painting(48, 64, seed=seed, layout="random", truth=True)
        cube = SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev)
        lines = [ln for ln in DEFAULT_MAP_LINES if p.maps.get(ln, np.zeros(1)).max() > 50]
        rows = {"shipped": map_scores(predict_maps(cube, path, device="cpu")[0], p.maps, lines),
                "lsq": map_scores(predict_maps(cube, "lsq", device="cpu")[0], p.maps, lines),
                "limit": map_scores(limit_fit(p, lines), p.maps, lines)}
        print(score_table(rows, lines, caption=f"painting seed {seed}: {', '.join(lines)}"))
        for ln in lines:
            r = rows["shipped"][ln]["mae"] / rows["limit"][ln]["mae"]
            print(f"  {ln}: MAE {rows['shipped'][ln]['mae']:.2f} / limit {rows['limit'][ln]['mae']:.2f} = {r:.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["maps"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--score-only", action="store_true")
    args = parser.parse_args(argv)
    path = ZOO / "maps-default.safetensors" if args.score_only else train_maps(args.quick)
    score_maps(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
