"""Train the models shipped in src/xray_atlas/models/zoo with the project's own training code,
then score them on freshly generated held-out data.

Usage: ``python tools/train_zoo.py NAME... [--quick]``, NAME a shipped model of :data:`RECIPES`
(``maps-fit``, ``elements-default``...) or a group (``maps``, ``diffraction``, ``elements``, ``images``).
Each run writes its recipe into the model's card. The default map model is xray-atlas's
prior MLP (least squares on the physics engine's pure spectra plus a learnt correction),
trained on every other pixel of 500 random-layout synthetic paintings (M6 Jetstream-like
scanner, 5-40 ms dwell, detector FWHM 130-160 eV, offset +/- 20 eV) with adaptive L1;
``maps-spatial`` is the same with a view of each pixel's 5 x 5 block, on the same pixels;
``maps-fit`` (the default) is the MLP on the per-cluster fit (``fit-mlp``, 256-256), every other pixel of 300 such
paintings, L1 loss. ``--quick`` is a small run for trying changes.

The diffraction models (one per span, ``diffraction-span2/3/4``) are xray-atlas's Fourier CNN
trained on Monte Carlo lattices (64 x 64, images of 32 lots of 32 x 32) with a share of noisy
and of log-scaled, beam-stopped images; the simulated pairs are cached in out/diffraction.

The element-probability model (``elements-default``) is xray-atlas's spectral CNN trained on
random spectra (1-9 of 29 elements, 300 to 3e7 counts) from five unlike instruments (Rh 50 kV
with the M6's polycapillary, Rh 40 kV, W 40 kV, Ag 45 kV, monochromatic Mo 17.5 keV; FWHM
130-170 eV), with calibration
drift, escape and pile-up peaks, buried elements (their own line ratios changed by the layers
above), a share of spectra holding two elements whose main lines overlap (As / Pb, S / Pb...),
a share holding elements outside its list (Mg, Al, Si, Br, Zr, Mo, W...: ``UNLISTED_ELEMENTS``)
and a share cut off at 12-30 keV; labels are the elements above the detection limit.

The radiograph classifier (``radiograph-default``, classes Al1050 / Al2017) is the small CNN
(``image-cnn``) trained on 6,000 simulated radiographs of plates (1, 2, 5 mm) and 7 cm wedges
(W tube at 50 kV behind 0.5 mm Al, CsI detector, 2e3-5e4 photons per open-beam pixel, blur,
uneven open beam, float / 16 / 8 bit files), read as -ln(I / I0) at 64 x 64.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xray_atlas.physics.generator import UNLISTED_ELEMENTS

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "src" / "xray_atlas" / "models" / "zoo"


#: Map model training paintings. Tried instead and not kept (docs/maps.md): 30 % of the
#: regions washes on the ground (``wash_share``), or 20 % thick random samples
#: (``sample_share``): neither fixed the M6 sample, and washes cost accuracy on plain paintings.
#: Every other pixel of 500 paintings: neighbouring pixels are alike, so more layouts (more
#: pigment stacks) serve better than all pixels of fewer; against all pixels of 200 paintings,
#: MAE 1.01 against 1.07 x the limit's and 30 against 24 of 39 lines within 1.1 x (docs/maps.md).
#: Also tried and not kept: the count-level input (``level``) on 5-1000 ms dwell; every third
#: pixel of 1,000 paintings (MAE 1.02 x the limit's, 30 of 39 lines: the layouts have stopped paying).
#: The spatial map model sees the same pixels with their 5 x 5 blocks (against every other
#: pixel of 300 paintings: MAE 1.02 against 1.06 x the limit's, 29 against 26 of 39 lines).
MAPS_SOURCE = {"n_paintings": 500, "height": 48, "width": 64, "stride": 2}
#: The model on the per-cluster fit: each training painting is fitted by clusters too (about
#: 1.3 s each on top of painting it), so 300 paintings. It is kept at its best epoch on eight
#: validation paintings, all 30 epochs run: on one painting the validation loss was too noisy
#: to choose by (best epoch 3 of 13 when stopped after 10 without improvement). Its loss is
#: L1, so that the epoch is chosen by the MAE the maps are judged by: with adaptive L1 the
#: validation loss rose after epoch 3 while the validation MAE kept falling.
MAPS_FIT_SOURCE = {**MAPS_SOURCE, "n_paintings": 300, "val_paintings": 8}


def _shipped_maps_source(spatial: bool, purpose: str):
    """A shipped map model, its card and path, and its training source made again from the
    card's settings and seed (so what is measured on it is the run's own data)."""
    from xray_atlas.models import load_model
    from xray_atlas.training import make_config
    from xray_atlas.training.run import prepare_run

    path = ZOO / f"{'maps-spatial' if spatial else 'maps-default'}.safetensors"
    model, card = load_model(path)
    config = make_config(card.task, **{k: v for k, v in card.training.items() if k != "task"})
    _, source = prepare_run(
        config, Path(tempfile.mkdtemp(prefix=f"zoo-{purpose}-")) / "m.safetensors", resume=False, overwrite=True
    )
    source.prepare(config.seed)
    return path, model, card, source, config


def fit_maps_guard(spatial: bool) -> Path:
    """Fit the familiarity guard of a shipped map model on its own training data, as the
    training engine does before every run (for model files trained before it had one)."""
    from xray_atlas.models import save_model
    from xray_atlas.training.run import fit_guard_on_source

    path, model, card, source, config = _shipped_maps_source(spatial, "guard")
    fit_guard_on_source(model, source, config)
    save_model(path, model, card)
    print(
        f"{path.stem}: familiarity guard fitted, limits {model.state_dict()[[k for k in model.state_dict() if k.endswith('guard.limits')][0]].tolist()}"
    )
    return path


def fit_maps_counts(spatial: bool) -> Path:
    """Write the training pixels' range of total counts into a shipped map model's card, as
    the training engine does for every run since 2026-11-23 (for files trained before)."""
    from xray_atlas.models import save_model

    path, model, card, source, _ = _shipped_maps_source(spatial, "counts")
    card.inputs["total_counts"] = source.input_contract()["total_counts"]
    save_model(path, model, card)
    print(f"{path.stem}: training pixels' total counts, 0.1th-99.9th percentile: {card.inputs['total_counts']}")
    return path


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
        cube = SpectralCube(
            p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev, metadata=dict(p.attrs)
        )
        lines = [ln for ln in DEFAULT_MAP_LINES if p.maps.get(ln, np.zeros(1)).max() > 50]
        rows = {
            "shipped": map_scores(predict_maps(cube, path, device="cpu").maps, p.maps, lines),
            "lsq": map_scores(predict_maps(cube, "lsq", device="cpu").maps, p.maps, lines),
            "limit": map_scores(limit_fit(p, lines), p.maps, lines),
        }
        print(score_table(rows, lines, caption=f"painting seed {seed}: {', '.join(lines)}"))
        for ln in lines:
            r = rows["shipped"][ln]["mae"] / rows["limit"][ln]["mae"]
            print(f"  {ln}: MAE {rows['shipped'][ln]['mae']:.2f} / limit {rows['limit'][ln]['mae']:.2f} = {r:.2f}")


DIFFRACTION_SEED = 20261122
ELEMENTS_SEED = 20261122
#: Element model training data: counts from a single short-dwell pixel to a summed cluster.
#: A third of the spectra also hold one or two elements outside the model's list, whose lines it
#: must not read as its own (an 8-epoch A/B cut the false calls next to Zr, Mo, Br, Pt... 2-8x).
ELEMENTS_SOURCE = {
    "instruments": "varied",
    "counts_min": 300.0,
    "counts_max": 3e7,
    "cutoff_share": 0.15,
    "burial": 20.0,
    "pair_share": 0.3,
    "max_elements": 9,
    "unlisted": ",".join(UNLISTED_ELEMENTS),
    "unlisted_share": 0.3,
}


IMAGES_SEED = 20261123


def score_images(path: Path) -> None:
    from xray_atlas.classify import load_image_model
    from xray_atlas.metrics import classification_scores
    from xray_atlas.physics.radiograph import RadiographConfig, radiographs

    model = load_image_model(path, device="cpu")
    for i, kind in enumerate(("plate", "wedge")):
        x, y, _ = radiographs(1000, config=RadiographConfig(kind=kind), seed=IMAGES_SEED + 100 + i)
        s = classification_scores(model(list(x)), y, model.classes)
        print(f"{kind}s: accuracy {s['accuracy']:.4f}, AP {s['ap']}, confusion {s['confusion']}", flush=True)


#: Epochs per span: span 4's fifteen outputs, several with little variance, need the longest run.
DIFFRACTION_EPOCHS = {2: 10, 3: 10, 4: 24}


def score_diffraction(span: int, n: int = 300) -> None:
    from xray_atlas.diffraction import evaluation_set, load_predictor, score_predictors

    # the study's high-resolution images: 96 x 96 lattices, 64 lots of 48 x 48
    data = evaluation_set(span, n, size=96, lot=48, n_lots=64, seed=DIFFRACTION_SEED + 100 + span)
    rows = score_predictors(
        {
            "network": load_predictor(f"diffraction-span{span}", span=span, device="cpu"),
            "analytic": load_predictor("analytic", span=span),
        },
        data,
    )
    print(f"span {span}, {n} held-out images ({int(data['converged'].sum())} lattices within 0.03 of target)")
    for r in rows:
        print(
            f"  {r['condition']:<16} {r['predictor']:<22} R2 measured {r['r2_measured']:.4f}  "
            f"R2 target {r['r2_target']:.4f}  MAE {r['mae']:.4f}"
        )


@dataclass(frozen=True)
class Recipe:
    """How one shipped model is made: ``make_config``'s settings for the full run, what
    ``--quick`` changes, and how it is scored. Each run writes :meth:`record` into the model's
    card (``card.recipe``), as torchvision keeps ``meta["recipe"]`` beside its weights."""

    name: str
    settings: dict
    quick: dict
    score: Callable[[Path], None]

    def config(self, *, quick: bool):
        from xray_atlas.training import make_config

        settings = {**self.settings, **(self.quick if quick else {})}
        params = dict(settings.get("source_params", {}))
        if "cache" in params:  # a cache path in the repository's out/ folder
            (ROOT / params["cache"]).parent.mkdir(parents=True, exist_ok=True)
            params["cache"] = str(ROOT / params["cache"])
        return make_config(**{**settings, "source_params": params, "device": "auto"})

    def record(self, *, quick: bool) -> dict:
        return {
            "name": self.name,
            "command": f"python tools/train_zoo.py {self.name}" + (" --quick" if quick else ""),
            "settings": {**self.settings, **(self.quick if quick else {})},
        }


def _maps(name: str, model: str, *, loss: str, epochs: int, quick_epochs: int, patience: int, hidden, source) -> Recipe:
    settings = {
        "task": "maps",
        "model": model,
        "source": "synthetic-paintings",
        "loss": loss,
        "epochs": epochs,
        "patience": patience,
        "seed": 20261122,
        "batch_size": 256,
        "schedule": "cosine",
        "model_params": {"hidden": hidden},
        "source_params": source,
    }
    quick = {"epochs": quick_epochs, "source_params": {**source, "n_paintings": 12}}
    return Recipe(name, settings, quick, score_maps)


def _diffraction(span: int) -> Recipe:
    settings = {
        "task": "diffraction",
        "model": "cfs-fourier",
        "epochs": DIFFRACTION_EPOCHS[span],
        "patience": 8,
        "seed": DIFFRACTION_SEED,
        "batch_size": 64,
        "schedule": "cosine",
        "source_params": {"span": span, "n_images": 8000, "cache": f"out/diffraction/span{span}.h5"},
    }
    quick = {
        "epochs": 4,
        "source_params": {"span": span, "n_images": 1000, "cache": f"out/diffraction/span{span}-quick.h5"},
    }
    return Recipe(f"diffraction-span{span}", settings, quick, lambda path: score_diffraction(span))


#: Every shipped model, by the name of its file in models/zoo.
RECIPES = {
    r.name: r
    for r in (
        _maps(
            "maps-default",
            "prior-mlp",
            loss="adaptive-l1",
            epochs=60,
            quick_epochs=12,
            patience=10,
            hidden=(512, 512),
            source=MAPS_SOURCE,
        ),
        _maps(
            "maps-spatial",
            "spatial-prior-mlp",
            loss="adaptive-l1",
            epochs=40,
            quick_epochs=12,
            patience=10,
            hidden=(512, 512),
            source=MAPS_SOURCE,
        ),
        _maps(
            "maps-fit",
            "fit-mlp",
            loss="l1",
            epochs=30,
            quick_epochs=12,
            patience=0,
            hidden=(256, 256),
            source=MAPS_FIT_SOURCE,
        ),
        *(_diffraction(span) for span in (2, 3, 4)),
        Recipe(
            "elements-default",
            {
                "task": "elements",
                "model": "spectral-cnn",
                "loss": "bce",
                "epochs": 40,
                "patience": 10,
                "seed": ELEMENTS_SEED,
                "batch_size": 256,
                "schedule": "cosine",
                # the decision thresholds are picked on the validation spectra: on 4,096 the best-F1
                # threshold of one element wanders by 0.03-0.14 (sd) from one draw to the next
                "source_params": {**ELEMENTS_SOURCE, "n_train": 32768, "n_val": 32768},
            },
            {"epochs": 4, "source_params": {**ELEMENTS_SOURCE, "n_train": 8192, "n_val": 4096}},
            lambda path: score_elements(),
        ),
        Recipe(
            "radiograph-default",
            {
                "task": "images",
                "model": "image-cnn",
                "source": "synthetic-radiographs",
                "loss": "cross-entropy",
                "epochs": 30,
                "patience": 10,
                "seed": IMAGES_SEED,
                "schedule": "cosine",
                # a +-2 kV, +-0.25 mm Al spread per image was tried: it made the model less tolerant
                # of other instruments, not more (docs/images.md), so the nominal beam is used
                "source_params": {"n_images": 6000, "kind": "both", "frame": 128, "size": 64},
            },
            {"epochs": 4, "source_params": {"n_images": 1000, "kind": "both", "frame": 128, "size": 64}},
            score_images,
        ),
    )
}
#: The words the script took before the table, each standing for its recipes.
GROUPS = {
    "maps": ("maps-default",),
    "diffraction": ("diffraction-span2", "diffraction-span3", "diffraction-span4"),
    "elements": ("elements-default",),
    "images": ("radiograph-default",),
}


def train_recipe(recipe: Recipe, *, quick: bool) -> Path:
    """Train ``recipe`` in a temporary folder and write the model, its card holding the
    recipe, into models/zoo."""
    from xray_atlas.models import load_model, save_model
    from xray_atlas.training import TerminalProgress, train

    tmp = Path(tempfile.mkdtemp(prefix=f"zoo-{recipe.name}-"))
    t = time.perf_counter()
    try:
        outcome = train(
            recipe.config(quick=quick),
            tmp / f"{recipe.name}.safetensors",
            callbacks=[TerminalProgress()],
            remember=False,
        )
        print(f"{recipe.name}: trained in {time.perf_counter() - t:.0f} s; best epoch {outcome.result.best_epoch}")
        model, card = load_model(outcome.path)
        card.recipe = recipe.record(quick=quick)
        ZOO.mkdir(parents=True, exist_ok=True)
        return save_model(ZOO / f"{recipe.name}.safetensors", model, card)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_recipe(recipe: Recipe) -> Path:
    """Write ``recipe`` into the card of the shipped file it made, weights untouched, after
    checking that the file's own training settings are the recipe's (for files trained before
    cards held their recipe)."""
    from xray_atlas.models import load_model, save_model

    path = ZOO / f"{recipe.name}.safetensors"
    model, card = load_model(path)
    differ = recipe_mismatches(recipe.record(quick=False), card.training)
    if differ:
        raise SystemExit(f"{path.name}: its training settings differ from the recipe's: {differ}")
    card.recipe = recipe.record(quick=False)
    save_model(path, model, card)
    print(f"{path.name}: recipe written")
    return path


def recipe_mismatches(record: dict, training: dict) -> list[str]:
    """The settings of ``record`` that a card's ``training`` does not hold (a cache's folder
    is the machine's own and is not compared)."""
    out = []
    for key, want in record["settings"].items():
        have = training.get(key)
        if key == "source_params":
            want = {k: v for k, v in want.items() if k != "cache"}
            have = {k: v for k, v in (have or {}).items() if k in want}
        if json.loads(json.dumps(want)) != json.loads(json.dumps(have)):
            out.append(f"{key}: {want!r} against {have!r}")
    return out


def score_elements() -> None:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_elements.py")], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="+", choices=[*RECIPES, *GROUPS], help="recipes (shipped model names) or groups")
    parser.add_argument("--quick", action="store_true", help="a small run of the same recipe, for trying changes")
    parser.add_argument("--score-only", action="store_true", help="score the shipped file, train nothing")
    parser.add_argument(
        "--write-recipe", action="store_true", help="write the recipe into the shipped file's card, weights untouched"
    )
    parser.add_argument("--fit-guard", action="store_true", help="maps: fit the shipped model's familiarity guard only")
    parser.add_argument(
        "--fit-counts",
        action="store_true",
        help="maps: write the training pixels' range of counts into the shipped model's card only",
    )
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(n for w in args.what for n in GROUPS.get(w, (w,))))
    for name in names:
        recipe = RECIPES[name]
        if args.fit_guard or args.fit_counts:
            if name not in ("maps-default", "maps-spatial"):
                parser.error(f"--fit-guard and --fit-counts are for maps-default and maps-spatial, not {name}")
            (fit_maps_guard if args.fit_guard else fit_maps_counts)(name == "maps-spatial")
        elif args.write_recipe:
            write_recipe(recipe)
        else:
            path = ZOO / f"{name}.safetensors" if args.score_only else train_recipe(recipe, quick=args.quick)
            recipe.score(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
