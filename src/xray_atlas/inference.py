"""Elemental maps from a cube, streamed: tiles of whole spectra are read from disk, put on the
model's energy grid if needed, and predicted in batches on the chosen device; memory is
bounded by the tile size, not the cube.

A map model is a trained model file (shipped in ``models/zoo``, trained by the user, or any
path), a baseline built for the cube's own calibration (``lsq``, ``roi``), or the per-cluster
fit (``fit``, :mod:`xray_atlas.clusterfit`), fitted to the cube itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

import numpy as np

from .clusterfit import HOLD_SE
from .cube import MAP_UNITS, TILE_BYTES, Progress, SpectralCube
from .errors import XrayAtlasError

__all__ = ["MapModel", "load_map_model", "iter_maps", "predict_maps", "DEFAULT_MAPS_MODEL", "UNCALIBRATED_MAPS_MODEL",
           "map_model_names", "BASELINES", "MAP_UNITS", "in_units", "live_time_for"]

#: The shipped default map model (file stem in ``models/zoo``).
DEFAULT_MAPS_MODEL = "maps-fit"
#: The shipped model that stands in for the default on a cube without an energy calibration,
#: which the default's per-cluster fit needs (it assumes its own training calibration).
UNCALIBRATED_MAPS_MODEL = "maps-default"
#: Map "models" that need no training: built for each cube's calibration.
BASELINES = ("lsq", "roi", "fit")


@dataclass
class MapModel:
    """A map model ready for a cube: the module, its lines, and how spectra reach its grid."""

    module: Any
    name: str
    lines: tuple[str, ...]
    n_channels: int
    energy: np.ndarray | None  # the model's channel energies (None: same grid as the cube)
    notes: list[str] = field(default_factory=list)
    low_channels: int = 0  # leading channels below preprocess.LOW_KEV on the model's grid, read as zero
    most_counts: float | None = None  # the training pixels' 99.9th percentile of total counts (model card)
    labels: np.ndarray | None = None  # the per-cluster fit's (H, W) clusters of its last run (-1: no counts)

    def resample(self, block: np.ndarray, cube_energy: np.ndarray, *, owned: bool = False) -> np.ndarray:
        """(N, C_cube) counts -> (N, C_model) counts on the model's grid, conserving counts
        (the cumulative counts are interpolated at the model's channel edges), with the
        channels of the detector's noise peak (below ``preprocess.LOW_KEV``) set to zero.
        ``owned``: ``block`` is a float32 copy the caller gives up, zeroed in place."""
        from .preprocess import resample

        if self.energy is not None:
            block, owned = resample(block, cube_energy, self.energy).astype(np.float32), True
        if self.low_channels:
            block = block if owned else np.array(block, dtype=np.float32)
            block[:, :self.low_channels] = 0
        return block


def map_model_names() -> dict[str, list[str]]:
    """What a user can pick: shipped and trained model names, and the baselines."""
    from .models.catalogue import list_models

    infos = list_models("maps")
    return {"shipped": [i.name for i in infos if i.shipped], "trained": [i.name for i in infos if not i.shipped],
            "baselines": list(BASELINES)}


def _find(model: str) -> Path | None:
    from .models.catalogue import list_models

    for info in list_models("maps"):
        if info.name == model:
            return info.path
    return None


def load_map_model(model: str | os.PathLike | None, cube: SpectralCube, *, device: str = "auto",
                   lines: tuple[str, ...] | None = None) -> MapModel:
    """The map model ``model`` (None: the shipped default, :data:`DEFAULT_MAPS_MODEL`, or on a
    cube without an energy calibration :data:`UNCALIBRATED_MAPS_MODEL`, with a note; a name of
    :func:`map_model_names`; or a model file/folder) made ready for ``cube``.

    A model trained on another channel grid is used on the cube's spectra rebinned to its grid
    when the cube is calibrated and covers the model's energy range (a note says so);
    otherwise it is refused with a message naming both grids.
    """
    from .devices import resolve_device
    from .models import build, load_model
    from .models.prior import instrument_from_metadata

    dev = resolve_device(device)
    if model in BASELINES:
        if not cube.calibrated:
            raise XrayAtlasError(f"model={model!r} needs an energy calibration and this cube has none",
                                 path=cube.path)
        if model == "fit":  # no fixed operator: fitted to the cube itself (xray_atlas.clusterfit)
            chosen = tuple(lines or _default_lines())
            return MapModel(None, "fit", chosen, cube.n_channels, None, low_channels=_below_low(cube.energy))
        gain = float(cube.energy[1] - cube.energy[0])
        chosen = tuple(lines or _default_lines())
        module, _ = build(str(model), n_channels=cube.n_channels, n_outputs=len(chosen), lines=chosen,
                          offset_kev=float(cube.energy[0]), gain_kev=gain, **instrument_from_metadata(cube.metadata))
        return MapModel(module.to(dev).eval(), str(model), chosen, cube.n_channels, None,
                        low_channels=_below_low(cube.energy))
    stand_in = model is None and not cube.calibrated
    if model is None:
        path = _find(UNCALIBRATED_MAPS_MODEL if stand_in else DEFAULT_MAPS_MODEL)
        if path is None:
            raise XrayAtlasError("no default map model is installed (models/zoo is empty); give --model lsq, or "
                                 "train one with xray-atlas train maps")
    else:
        path = _find(str(model)) or Path(model)
        if not path.exists():
            known = map_model_names()
            raise XrayAtlasError(f"model={str(model)!r} is neither a model file nor a known name "
                                 f"({', '.join(known['shipped'] + known['trained'] + known['baselines'])})")
    module, card = load_model(path, device=str(dev.type) if dev.type != "cpu" else "cpu")
    if card.task != "maps":
        raise XrayAtlasError(f"this model is for the {card.task!r} task, not elemental maps", path=path)
    out_lines = tuple(card.outputs)
    n = int(card.inputs.get("n_channels", card.config.get("n_channels", 0)))
    off, gain = card.inputs.get("energy_offset_kev"), card.inputs.get("energy_gain_kev")
    mm = MapModel(module, path.stem if path.suffix else path.name, out_lines, n, None)
    if stand_in:
        mm.notes.append(f"the default model {DEFAULT_MAPS_MODEL} fits the cube by clusters and needs its energy "
                        f"calibration, which this cube lacks: painted with {mm.name} instead")
    if getattr(module, "cluster_fit", False) and not cube.calibrated:
        raise XrayAtlasError(f"model {mm.name!r} fits the cube by clusters of pixels and needs its energy "
                             "calibration; this cube has none (give it one first)", path=cube.path)
    seen = card.inputs.get("total_counts") or card.inputs.get("counts")  # paintings, cubes / random spectra
    if isinstance(seen, (list, tuple)) and len(seen) == 2:
        mm.most_counts = float(seen[1])
    same_grid = n == cube.n_channels and (off is None or not cube.calibrated or (
        abs(float(cube.energy[0]) - off) < 0.25 * gain and abs(float(cube.energy[1] - cube.energy[0]) - gain) < 1e-3 * gain))
    if same_grid:
        if off is not None and not cube.calibrated:
            mm.notes.append(f"the cube has no energy calibration; assuming the model's ({off:g} keV + {gain:g} keV "
                            "per channel): if the detector's differs, give the cube its own calibration first")
        if cube.calibrated or off is not None:
            mm.low_channels = _below_low(cube.energy if cube.calibrated else off + gain * np.arange(n))
        return mm
    if off is None or gain is None:
        raise XrayAtlasError(f"the model expects {n} channels and the cube has {cube.n_channels}; the model file "
                             "states no energy calibration to resample with", path=path)
    if not cube.calibrated:
        raise XrayAtlasError(f"the model expects {n} channels at {gain:g} keV from {off:g} keV and the cube has "
                             f"{cube.n_channels} uncalibrated channels: calibrate the cube", path=cube.path)
    e_model = off + gain * np.arange(n)
    # safe when the cube covers the model's lines (their strongest line + 1 keV, for the peaks'
    # tails and the neighbours that overlap them); model channels outside the cube read zero
    need_lo, need_hi = max(e_model[0], 0.8), _top_line_kev(out_lines) + 1.0
    if cube.energy[0] > need_lo or cube.energy[-1] < need_hi:
        raise XrayAtlasError(f"the cube covers {cube.energy[0]:.2f}-{cube.energy[-1]:.2f} keV but the model's lines "
                             f"need {need_lo:.2f}-{need_hi:.2f} keV; refusing to guess", path=cube.path)
    mm.energy = e_model
    mm.low_channels = _below_low(e_model)
    mm.notes.append(f"resampled the cube's {cube.n_channels} channels of {float(cube.energy[1] - cube.energy[0]) * 1000:.2f} eV "
                    f"to the model's {n} channels of {gain * 1000:.2f} eV")
    if cube.energy[-1] < e_model[-1] - gain:
        mm.notes.append(f"the cube ends at {cube.energy[-1]:.2f} keV; the model's channels above read zero counts")
    return mm


def _below_low(energy: np.ndarray) -> int:
    """How many leading channels of an increasing energy axis lie below ``LOW_KEV``."""
    from .preprocess import LOW_KEV

    return int(np.searchsorted(np.asarray(energy, dtype=np.float64), LOW_KEV))


def _top_line_kev(lines) -> float:
    from .physics.lines import family_lines

    top = 0.0
    for ln in lines:
        try:
            fl = family_lines(ln)
        except XrayAtlasError:
            continue
        strongest = max(fl, key=lambda x: x.relative_intensity)
        top = max(top, float(strongest.energy_kev))
    return top


def _default_lines() -> tuple[str, ...]:
    from .physics.lines import DEFAULT_MAP_LINES

    return DEFAULT_MAP_LINES


#: Side of the block within which a pixel is shrunk towards its own cluster's mean (None: the whole cluster).
SHRINK_SIZE: int | None = 3


def live_time_for(cube: SpectralCube, *, units: str) -> np.ndarray | None:
    """The (H, W) float64 live times that maps in ``units`` are divided by: None for
    ``"counts"``; each pixel's live time in seconds for ``"counts/s"``.

    Raises
    ------
    XrayAtlasError
        ``units`` not one of :data:`MAP_UNITS`; ``"counts/s"`` on a cube whose file states no
        live time (``cube.live_time_s`` is None), or with a pixel whose live time is not > 0.
    """
    if units not in MAP_UNITS:
        raise XrayAtlasError(f"units={units!r} must be one of {', '.join(repr(u) for u in MAP_UNITS)}")
    if units == "counts":
        return None
    live = cube.live_time_map()
    if live is None:
        raise XrayAtlasError("maps in counts/s need each pixel's live time and the file states none (live_time_s); "
                             "make them in counts", path=cube.path)
    bad = ~(np.isfinite(live) & (live > 0))
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise XrayAtlasError(f"maps in counts/s need each pixel's live time; pixel (y={y}, x={x}) has {live[y, x]} s "
                             f"({int(bad.sum())} pixels without a positive live time); make them in counts",
                             path=cube.path)
    return live


def in_units(maps: dict[str, np.ndarray], cube: SpectralCube, *, units: str = "counts") -> dict[str, np.ndarray]:
    """Maps of net counts of ``cube`` in ``units``: as they are for ``"counts"``; divided by
    each pixel's live time (:meth:`SpectralCube.live_time_map`) for ``"counts/s"``. Returns
    new float32 (H, W) arrays; ``maps`` is not changed.

    Raises
    ------
    XrayAtlasError
        As :func:`live_time_for`, and for a map whose shape is not the cube's (H, W).
    """
    live = live_time_for(cube, units=units)
    out = {}
    for line, m in maps.items():
        m = np.asarray(m)
        if m.shape != (cube.height, cube.width):
            raise XrayAtlasError(f"maps[{line!r}] has shape {m.shape}; the cube has {(cube.height, cube.width)} pixels")
        out[line] = (m if live is None else m / live).astype(np.float32)
    return out


def iter_maps(cube: SpectralCube, model: MapModel, *, batch: int = 8192, tile_bytes: int = TILE_BYTES,
              lines: tuple[str, ...] | None = None, hold_se: float | None = HOLD_SE, shrink: bool = True,
              units: str = "counts") -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Stream ``cube`` through ``model``: yields :class:`Progress` after each tile, returns
    line -> (H, W) float32 net counts (only ``lines`` if given), or with ``units="counts/s"``
    net counts per second of each pixel's live time (:func:`in_units`; refused before any
    work when the cube states no live time). A model on the per-cluster
    fit (``maps-fit``) is held within ``hold_se`` of the fit's standard errors, per pixel and
    per cluster total (:class:`~xray_atlas.clusterfit.FitHold`; None: not held), then, with
    ``shrink``, each pixel is shrunk towards its cluster's mean by the share of the
    cluster's spread that is noise (:meth:`~xray_atlas.clusterfit.ClusterFit.shrink`)."""
    live_time_for(cube, units=units)  # a refusal comes before the work, not after it
    maps = yield from _iter_count_maps(cube, model, batch=batch, tile_bytes=tile_bytes, lines=lines, hold_se=hold_se,
                                       shrink=shrink)
    return in_units(maps, cube, units=units)


def _iter_count_maps(cube: SpectralCube, model: MapModel, *, batch: int, tile_bytes: int,
                     lines: tuple[str, ...] | None, hold_se: float | None,
                     shrink: bool) -> Generator[Progress, None, dict[str, np.ndarray]]:
    import torch

    if hold_se is not None and not (isinstance(hold_se, (int, float)) and np.isfinite(hold_se) and hold_se > 0):
        raise XrayAtlasError(f"hold_se={hold_se!r} must be a positive number of standard errors or None")
    if not isinstance(shrink, bool):
        raise XrayAtlasError(f"shrink={shrink!r} must be True or False")

    want = tuple(lines or model.lines)
    missing = [ln for ln in want if ln not in model.lines]
    if missing:
        raise XrayAtlasError(f"lines: {', '.join(missing)} not among this model's outputs ({', '.join(model.lines)})")
    if model.module is None:  # the per-cluster fit: three passes of its own
        from .clusterfit import iter_cluster_fit_maps

        found: list = []
        maps = yield from iter_cluster_fit_maps(cube, want, tile_bytes=tile_bytes, notes=model.notes, labels_out=found)
        model.labels = found[0]
        return maps
    cols = [model.lines.index(ln) for ln in want]
    h, w = cube.height, cube.width
    out = np.zeros((h, w, len(want)), np.float32)
    dev = next(iter(model.module.buffers()), None)
    dev = dev.device if dev is not None else next(model.module.parameters()).device
    rows_per_tile = cube.tile_rows(tile_bytes)
    total = -(-h // rows_per_tile)
    size = int(getattr(model.module, "neighbourhood", 0))  # spatial models see a size x size block
    guard = next((m.guard for m in model.module.modules() if hasattr(m, "guard_features")), None)
    unfamiliar = np.zeros(2, np.int64)  # pixels partly / wholly given the least-squares value
    # pixels far above the training's counts: the learnt correction was fitted where weak lines
    # are a few counts of noise, and it drifts from the physical limit as counts grow
    bright = 3.0 * model.most_counts if model.most_counts else np.inf
    n_bright, bright_totals = 0, []
    fitted = hold = None  # the per-cluster fit, for the models that read its inputs beside the counts
    done_before = 0
    yield Progress(0, total, "maps")
    if getattr(model.module, "cluster_fit", False):
        from .clusterfit import ClusterFit, FitHold

        fitted = ClusterFit(cube, tuple(model.lines[c] for c in cols), tile_bytes=tile_bytes)
        done_before, total = fitted.n_steps, fitted.n_steps + total
        for p in fitted.iter_prepare(means=True):
            yield Progress(p.done, total, "maps")
        model.notes.append(fitted.note())
        model.labels = np.full((h, w), -1, np.int64)
        hold = FitHold(fitted, n_se=hold_se) if hold_se is not None else None
        pixel_totals = np.zeros(h * w, np.float32)

    def count_bright(totals: np.ndarray) -> None:
        nonlocal n_bright
        hit = totals > bright
        if hit.any():
            n_bright += int(hit.sum())
            bright_totals.append(totals[hit][:1000])

    def run(module_fn, flat: np.ndarray, width: int, *, spectra: bool = True, count: bool = False,
            extra: np.ndarray | None = None) -> np.ndarray:
        # module_fn over batches of rows; spectra are first put on the model's channel grid,
        # and rows of ``extra`` (the cluster fit's inputs) go after them
        res = np.empty((flat.shape[0], width), np.float32)
        for a in range(0, flat.shape[0], batch):
            x = flat[a:a + batch]
            if spectra:  # a float32 copy of the cube's counts (never the cube itself), zeroed in place
                x = model.resample(np.array(x, dtype=np.float32), cube.energy, owned=True)
            counts = x
            if extra is not None:
                x = np.concatenate([x, extra[a:a + batch]], axis=1)
            res[a:a + batch] = module_fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)).float().cpu().numpy()
            if count and model.most_counts:  # the totals the model summed itself, when it keeps them
                totals = getattr(model.module, "totals", None)
                count_bright(totals[:, 0].float().cpu().numpy() if totals is not None else counts.sum(axis=1))
            if guard is not None and guard.fallback is not None:
                unfamiliar[:] += [int((guard.fallback > 0).sum()), int((guard.fallback >= 1).sum())]
                guard.fallback = None
        return res

    with torch.inference_mode():
        if not size:
            c = cube.n_channels
            whole = None  # one buffer for every tile: a fresh one a tile cost its page faults
            for k, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes)):
                flat = block.reshape(-1, c)
                if fitted is None:
                    pred = run(lambda x: model.module(x)[:, cols], flat, len(want), count=True)
                elif model.energy is None:
                    # the model's inputs in one buffer: the counts (noise-peak channels zeroed),
                    # then the cluster fit of those very counts, without further copies
                    if whole is None or whole.shape[0] < flat.shape[0]:
                        whole = np.empty((flat.shape[0], c + 2 * model.module.n_families), np.float32)
                    buf = whole[:flat.shape[0]]
                    _cast_into(buf[:, :c], flat)
                    buf[:, :model.low_channels] = 0.0
                    got = fitted.tile(buf[:, :c], inputs=True, errors=hold is not None)
                    buf[:, c:] = got.inputs
                    pred = run(lambda x: model.module(x)[:, cols], buf, len(want), count=True, spectra=False)
                else:  # a model on another channel grid: the counts resampled, the fit on the cube's
                    got = fitted.tile(flat, inputs=True, errors=hold is not None)
                    pred = run(lambda x: model.module(x)[:, cols], flat, len(want), count=True, extra=got.inputs)
                if fitted is not None:
                    model.labels[rows] = got.labels.reshape(-1, w)
                    pixel_totals[rows.start * w:rows.stop * w] = got.totals
                    if hold is not None:
                        pred = hold.pixels(pred, got)
                out[rows] = pred.reshape(block.shape[0], w, len(want))
                yield Progress(done_before + k + 1, total, "maps")
        else:
            from .models.spectral import neighbourhood_mean

            # the block mean of the model's features (linear in the counts) is the features of
            # the block's mean spectrum: the same input as in training, at a twentieth the work
            for k, (rows, block, lead) in enumerate(cube.iter_tiles_with_halo(size // 2, tile_bytes=tile_bytes)):
                feats = run(model.module.features,
                            block.reshape(-1, cube.n_channels), int(model.module.project.shape[1]))
                feats = feats.reshape(block.shape[0], w, -1)
                n = rows.stop - rows.start
                near = neighbourhood_mean(feats, size)[lead:lead + n].reshape(n * w, -1)
                own = feats[lead:lead + n].reshape(n * w, -1)
                if model.most_counts:
                    count_bright(own[:, -1])  # the features' last column is the total
                pred = run(lambda x: model.module.head(x[:, 0], x[:, 1])[:, cols], np.stack([own, near], axis=1),
                           len(want), spectra=False)
                out[rows] = pred.reshape(n, w, len(want))
                yield Progress(k + 1, total, "maps")
    np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if hold is not None:
        hold.clusters(out.reshape(h * w, -1), model.labels.ravel(), pixel_totals)
        model.notes.append(hold.note(out.size))
    if fitted is not None and shrink:
        n_shrunk = fitted.shrink(out.reshape(h * w, -1), model.labels.ravel(), pixel_totals, shape=(h, w),
                                 size=SHRINK_SIZE)
        where = f"their own cluster's pixels in their {SHRINK_SIZE} x {SHRINK_SIZE} block" if SHRINK_SIZE else "their cluster"
        model.notes.append(f"values shrunk towards the mean of {where} by the share of the cluster's spread that is "
                           f"noise (empirical Bayes): {n_shrunk} of {fitted.k * len(want)} cluster lines")
    # models on the per-cluster fit are held to it; the others are not, and maps-fit is
    advice = ("compare with --model fit" if fitted is not None else "compare with --model maps-fit or fit"
              if cube.calibrated else "give the cube its energy calibration and compare with --model maps-fit or fit")
    if unfamiliar[0]:
        model.notes.append(f"{unfamiliar[0] / (h * w):.1%} of the pixels are unlike the spectra the model was trained "
                           f"on; their maps lean on the {'per-cluster' if fitted is not None else 'least-squares'} "
                           f"fit ({unfamiliar[1] / (h * w):.1%} wholly): {advice}")
    if n_bright:
        model.notes.append(f"{n_bright / (h * w):.1%} of the pixels hold over three times the counts of the model's "
                           f"training pixels (median {np.median(np.concatenate(bright_totals)):,.0f} against at most "
                           f"{model.most_counts:,.0f}): its maps drift from the physical limit as counts grow; "
                           f"{advice}")
    return {ln: np.ascontiguousarray(out[..., j]) for j, ln in enumerate(want)}


def _cast_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (float32 from the cube's dtype) on torch's thread pool: a third of
    the time of numpy's one-threaded cast of a 4,096-channel tile on 2 cores."""
    import torch

    try:
        torch.from_numpy(dst).copy_(torch.from_numpy(src))
    except (TypeError, ValueError, RuntimeError):  # a dtype this torch cannot hold (uint16 before 2.3)
        dst[...] = src


def predict_maps(cube: SpectralCube, model: str | os.PathLike | None = None, *, device: str = "auto",
                 lines: tuple[str, ...] | None = None, **kw: Any) -> tuple[dict[str, np.ndarray], MapModel]:
    """Blocking :func:`iter_maps` with model loading: (maps, the model used). ``kw`` go to
    :func:`iter_maps` (``units="counts/s"`` for counts per second of live time)."""
    from .cube import run_to_end

    live_time_for(cube, units=kw.get("units", "counts"))  # refused before the model loads
    mm = load_map_model(model, cube, device=device, lines=lines)
    return run_to_end(iter_maps(cube, mm, lines=lines, **kw)), mm
