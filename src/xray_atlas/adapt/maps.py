"""The map model for the user's XRF instrument, fitted to the sum spectrum of a scan.

The default map model (``maps-fit``) corrects the per-cluster fit of each scan
(:mod:`xray_atlas.clusterfit`). Both the fit and the correction assume the scanner the model was
trained for: the fit's family spectra (line ratios, escape peaks, peak widths) follow the tube
and the detector, and the correction was learnt on paintings that scanner made, at their count
levels. :func:`adapt_maps` fits the user's instrument to the scan
(:func:`~xray_atlas.adapt.spectra.fit_scan`), then fine-tunes the base model on synthetic
paintings scanned by that instrument, at dwell times that give the scan's own counts per pixel.
The adapted model's card holds the fitted instrument, and inference fits every cube with it
(:attr:`xray_atlas.inference.MapModel.instrument`) unless the cube's metadata states its own.

:func:`plan_map_adaptation` sets the run up, :func:`finish_map_adaptation` writes the model and
scores it and the base model on the run's validation paintings; the napari dock runs the
training between them in a child process. docs/adapt.md gives how well it does on instruments
it was not tuned on, and what it cannot fix.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cube import Progress
from ..errors import XrayAtlasError
from ._run import fine_tune_config
from .spectra import ScanFit, XrfInstrument, fit_scan

__all__ = [
    "ADAPT_MAP_EPOCHS",
    "ADAPT_MAP_PAINTINGS",
    "AdaptedMapModel",
    "MapAdaptationPlan",
    "adapt_maps",
    "finish_map_adaptation",
    "iter_finish_map_adaptation",
    "plan_map_adaptation",
]

#: Epochs of fine-tuning :func:`adapt_maps` runs unless told.
ADAPT_MAP_EPOCHS = 8
#: Training paintings of the fitted instrument unless told (each is painted and fitted by
#: clusters, 2-5 s on two cores).
ADAPT_MAP_PAINTINGS = 60
#: Validation paintings: the adapted and the base model are scored on them.
VAL_PAINTINGS = 2
#: Dwell time of the paintings that measure the fitted instrument's count rate.
PROBE_DWELL_MS = 20.0
#: Training dwell times span this factor either side of the one matching the scan's counts
#: (the shipped model's 5-40 ms span 2.8x either side of 14 ms).
DWELL_SPREAD = 2.8


@dataclass(frozen=True)
class MapAdaptationPlan:
    """What :func:`plan_map_adaptation` found: the scan's fit, the base model, and the
    training run that makes a map model for the fitted instrument (run it with
    :func:`xray_atlas.training.train`, then :func:`finish_map_adaptation`)."""

    scan: ScanFit = field(repr=False)
    config: Any  # TrainConfig
    base: Any = field(repr=False)  # the base model, resolved (models.catalogue.ResolvedModel)
    notes: list[str] = field(default_factory=list)

    @property
    def cube(self) -> Path | None:
        return self.scan.path

    @property
    def fit(self) -> Any:
        return self.scan.fit


@dataclass(frozen=True)
class AdaptedMapModel:
    """What :func:`adapt_maps` made: the model file, the fitted instrument, the fit's reduced
    chi-square, and the mean absolute error (net counts, averaged over the lines present) of
    the adapted and the base model on paintings of the fitted instrument."""

    path: Path
    instrument: XrfInstrument
    reduced_chi2: float
    mae: float
    base_mae: float
    notes: list[str] = field(default_factory=list)


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _probe_counts(source_params: dict, seed: int) -> float:
    """Median total counts per pixel of small paintings of the instrument at :data:`PROBE_DWELL_MS`."""
    from ..training.sources import SyntheticPaintings

    probe = SyntheticPaintings(
        "maps",
        **{
            **source_params,
            "height": 16,
            "width": 16,
            "dwell_ms_min": PROBE_DWELL_MS,
            "dwell_ms_max": PROBE_DWELL_MS,
        },
    )
    totals = [pt.counts.sum(axis=2).ravel() for pt in probe.paintings(seed, 3, first=10_000)]
    return float(np.median(np.concatenate(totals)))


def plan_map_adaptation(
    cube: Any,
    *,
    base: str | os.PathLike | None = None,
    n_paintings: int = ADAPT_MAP_PAINTINGS,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    offset_kev: float | None = None,
    gain_kev: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    from_file: bool = True,
    progress: Any = None,
) -> MapAdaptationPlan:
    """Sum the scan, fit the instrument to it, and set up the training run (parameters as
    :func:`adapt_maps`). About a minute: no training here."""
    from ..inference import DEFAULT_MAPS_MODEL
    from ..models.catalogue import resolve_model
    from ..models.spectral import CLUSTER_FIT_MODELS
    from ..training.sources import SyntheticPaintings

    if not (isinstance(n_paintings, (int, np.integer)) and 4 <= n_paintings <= 1000):
        raise XrayAtlasError(f"n_paintings={n_paintings!r} must be an integer in 4-1,000")
    if epochs is not None and not (isinstance(epochs, (int, np.integer)) and 1 <= epochs <= 1000):
        raise XrayAtlasError(f"epochs={epochs!r} must be an integer in 1-1,000")
    found = resolve_model(base, task="maps", default=DEFAULT_MAPS_MODEL, device="cpu")
    settings = dict(found.card.training or {})
    if found.card.architecture not in CLUSTER_FIT_MODELS:
        raise XrayAtlasError(
            f"base: {found.name} is a {found.card.architecture}, whose weights hold its own instrument's "
            f"spectra; adapting fine-tunes a model on the per-cluster fit ({', '.join(CLUSTER_FIT_MODELS)}, "
            f"as the shipped {DEFAULT_MAPS_MODEL})",
            path=found.path,
        )
    if settings.get("source") != "synthetic-paintings":
        raise XrayAtlasError(
            f"base: {found.name} was not trained on synthetic paintings, so there is no recipe to follow "
            f"for another instrument; choose a map model that was (the shipped {DEFAULT_MAPS_MODEL} is)",
            path=found.path,
        )
    scan = fit_scan(
        cube,
        offset_kev=offset_kev,
        gain_kev=gain_kev,
        anode=anode,
        tube_kv=tube_kv,
        from_file=from_file,
        progress=progress,
    )
    notes = list(scan.notes)
    kept = ("lines", "height", "width", "stride", "n_channels", "fwhm_jitter_ev", "shift_kev")
    source = {
        **{k: v for k, v in settings.get("source_params", {}).items() if k in kept},
        **scan.fit.instrument.source_params(),
        "n_paintings": int(n_paintings),
        "val_paintings": VAL_PAINTINGS,
    }
    if progress is not None:
        progress(0, None, "measuring the instrument's count rate")
    # paintings at the scan's counts per pixel: the correction learns the noise of its lines
    per_pixel = float(np.sum(scan.spectrum)) / max(scan.n_pixels, 1)
    probe = _probe_counts(source, seed)
    dwell = PROBE_DWELL_MS * per_pixel / max(probe, 1.0)
    table = SyntheticPaintings.PARAMS["dwell_ms_min"]  # the dwell times simulated
    lo, hi = (float(np.clip(d, table.low, table.high)) for d in (dwell / DWELL_SPREAD, dwell * DWELL_SPREAD))
    source.update(dwell_ms_min=round(lo, 3), dwell_ms_max=round(hi, 3))
    notes.append(
        f"training paintings at {_ms(lo)}-{_ms(hi)} ms dwell: {per_pixel:,.0f} counts per pixel as in the scan"
        + (
            ""
            if lo < dwell < hi
            else f" (outside the {_ms(table.low)}-{_ms(table.high)} ms that are simulated: the nearest is used)"
        )
    )
    config = fine_tune_config(
        "maps",
        "synthetic-paintings",
        settings,
        init=os.fspath(base) if base is not None else found.name,
        epochs=epochs if epochs is not None else ADAPT_MAP_EPOCHS,
        seed=seed,
        device=device,
        source_params=source,
    )
    return MapAdaptationPlan(scan, config, found, notes)


def _iter_validation_errors(plan: MapAdaptationPlan, path: Path) -> Generator[Progress, None, tuple[float, float]]:
    """Mean absolute error (net counts per pixel, averaged over the lines whose true maximum
    exceeds 50 counts, then over paintings) of the model at ``path`` and of the base model,
    each run as a user runs it (:func:`~xray_atlas.inference.predict_maps`), on the run's own
    validation paintings; yields :class:`~xray_atlas.cube.Progress` after each model's run."""
    from ..cube import SpectralCube
    from ..inference import predict_maps
    from ..training.sources import SyntheticPaintings

    params = plan.config.source_params
    source = SyntheticPaintings("maps", **params)
    errors: dict[str, list[float]] = {"adapted": [], "base": []}
    total, done = 2 * params["val_paintings"], 0
    yield Progress(0, total, "scoring both models on paintings of the fitted instrument")
    for pt in source.paintings(plan.config.seed, params["val_paintings"], first=params["n_paintings"]):
        cube = SpectralCube(
            pt.counts,
            offset_kev=pt.energy_offset_kev,
            gain_kev=pt.energy_gain_kev,
            metadata={"live_time_s": pt.attrs["live_time_s"]},
        )
        lines = [ln for ln in source.lines if pt.maps.get(ln, np.zeros(1)).max() > 50]
        for key, model in (("adapted", path), ("base", plan.base.path)):
            maps = predict_maps(cube, model, device="cpu", lines=tuple(lines), find=False).maps
            errors[key].append(float(np.mean([np.abs(maps[ln] - pt.maps[ln]).mean() for ln in lines])))
            done += 1
            yield Progress(done, total, "scoring both models on paintings of the fitted instrument")
    return float(np.mean(errors["adapted"])), float(np.mean(errors["base"]))


def iter_finish_map_adaptation(
    plan: MapAdaptationPlan, trained: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False
) -> Generator[Progress, None, AdaptedMapModel]:
    """:func:`finish_map_adaptation` step by step (10-30 s): yields
    :class:`~xray_atlas.cube.Progress`, so that it can be stopped; nothing is written before
    its last step."""
    from .._files import check_destination
    from ..models import load_model, save_model
    from ..models.catalogue import remember

    out = Path(os.fspath(out))
    check_destination(out, inputs=(plan.cube,) if plan.cube else (), overwrite=overwrite, folder_ok=True)
    mae, base_mae = yield from _iter_validation_errors(plan, Path(os.fspath(trained)))
    model, card = load_model(trained)
    fit = plan.fit
    card.training_data = {
        **card.training_data,
        "fitted_instrument": {**fit.instrument.as_dict(), "reduced_chi2": fit.reduced_chi2},
        "cube": str(plan.cube.resolve()) if plan.cube else None,
        "base": plan.base.name,
    }
    card.metrics = {**card.metrics, "adapted_mae": mae, "base_mae": base_mae}
    save_model(out, model, card)
    remember(out)
    notes = [
        *plan.notes,
        f"on {plan.config.source_params['val_paintings']} paintings of the fitted instrument: mean absolute error "
        f"{mae:.2f} counts per pixel and line (base model {plan.base.name}: {base_mae:.2f})",
    ]
    if mae > base_mae:
        # the real M6 accumulation (1 M counts, 1 s paintings) did this: docs/adapt.md
        notes.append(
            f"the adapted model is further from the truth than {plan.base.name} on those paintings: compare "
            "both on your scan before using it"
        )
    return AdaptedMapModel(out, fit.instrument, fit.reduced_chi2, mae, base_mae, notes)


def finish_map_adaptation(
    plan: MapAdaptationPlan, trained: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False
) -> AdaptedMapModel:
    """Write the model ``trained`` for ``plan`` to ``out`` with the fitted instrument in its
    card, and score it and the base model on paintings of the fitted instrument; the user's
    model list shows it."""
    from ..cube import run_to_end

    return run_to_end(iter_finish_map_adaptation(plan, trained, out, overwrite=overwrite))


def adapt_maps(
    cube: Any,
    out: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    n_paintings: int = ADAPT_MAP_PAINTINGS,
    epochs: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    device: str = "auto",
    offset_kev: float | None = None,
    gain_kev: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    from_file: bool = True,
    callbacks: list[Any] = (),
    cancel: Any = None,
) -> AdaptedMapModel:
    """Fit the instrument to the sum spectrum of ``cube`` and fine-tune a map model for it.

    Parameters
    ----------
    cube : path or SpectralCube
        The user's scan (any format :func:`xray_atlas.io.read` opens, with an energy
        calibration). No reference maps are needed.
    out : path
        The new model: a folder, or a file ending in ``.safetensors``.
    base : str or path, optional
        The map model on the per-cluster fit whose recipe (lines, channel grid, training
        settings) is followed and whose weights are fine-tuned (default: the shipped
        ``maps-fit``).
    n_paintings : int
        Synthetic paintings (48 x 64 random layouts, every other pixel) scanned by the fitted
        instrument, at dwell times that give the scan's counts per pixel.
    epochs : int, optional
        Epochs of fine-tuning (default :data:`ADAPT_MAP_EPOCHS`).
    overwrite, offset_kev, gain_kev, anode, tube_kv, from_file, callbacks, cancel
        As :func:`~xray_atlas.adapt.adapt_elements` takes them: the output's overwrite, a
        calibration replacing the cube's, the tube when known (by default the file's, else
        fitted), progress callbacks and a threading.Event to stop.

    Returns
    -------
    AdaptedMapModel
    """
    from ._run import adapt_with

    return adapt_with(
        plan_map_adaptation,
        finish_map_adaptation,
        cube,
        out,
        overwrite=overwrite,
        callbacks=callbacks,
        cancel=cancel,
        base=base,
        n_paintings=n_paintings,
        epochs=epochs,
        seed=seed,
        device=device,
        offset_kev=offset_kev,
        gain_kev=gain_kev,
        anode=anode,
        tube_kv=tube_kv,
        from_file=from_file,
    )
