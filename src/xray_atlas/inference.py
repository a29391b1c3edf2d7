"""Elemental maps from a cube, streamed: tiles of whole spectra are read from disk, put on the
model's energy grid if needed, and predicted in batches on the chosen device; memory is
bounded by the tile size, not the cube.

A map model is a trained model file (shipped in ``models/zoo``, trained by the user, or any
path), a baseline built for the cube's own calibration (``lsq``, ``roi``), or the per-cluster
fit (``fit``, :mod:`xray_atlas.clusterfit`), fitted to the cube itself.

Which lines are mapped: by default the model's (for the shipped models and the baselines the
twelve of docs/dev/contracts.md section 1) and every K or L family the per-cluster fit and the element
model find in the cube (:func:`xray_atlas.probabilities.found_families`); a user may name any
family xraylib knows with a line in the cube's range, instead or in addition
(:func:`parse_lines`). A learnt model gives the lines beyond its outputs from the per-cluster
fit.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .clusterfit import HOLD_SE
from .cube import MAP_UNITS, TILE_BYTES, Progress, SpectralCube
from .errors import XrayAtlasError

__all__ = [
    "MapModel",
    "load_map_model",
    "iter_maps",
    "predict_maps",
    "DEFAULT_MAPS_MODEL",
    "UNCALIBRATED_MAPS_MODEL",
    "map_model_names",
    "BASELINES",
    "MAP_UNITS",
    "in_units",
    "live_time_for",
    "parse_lines",
    "check_lines",
    "searched_families",
    "NOT_SEARCHED",
    "MapsResult",
    "MapPass",
    "RowMaps",
]

#: The shipped default map model (file stem in ``models/zoo``).
DEFAULT_MAPS_MODEL = "maps-fit"
#: The shipped model that stands in for the default on a cube without an energy calibration,
#: which the default's per-cluster fit needs (it assumes its own training calibration).
UNCALIBRATED_MAPS_MODEL = "maps-default"
#: Map "models" that need no training: built for each cube's calibration.
BASELINES = ("lsq", "roi", "fit")
#: Families the default map set never adds: argon is in the air between scanner and painting.
NOT_SEARCHED = ("Ar-K",)


@dataclass
class MapModel:
    """A map model ready for a cube: the module, its lines, and how spectra reach its grid."""

    module: Any
    name: str
    lines: tuple[str, ...]
    n_channels: int
    energy: np.ndarray | None  # the model's channel energies (None: same grid as the cube)
    # what loading found (a stand-in, a resampled grid); a run copies them into its MapsResult
    # and adds its own there: the model is never changed by a run
    notes: list[str] = field(default_factory=list)
    low_channels: int = 0  # leading channels below preprocess.LOW_KEV on the model's grid, read as zero
    most_counts: float | None = None  # the training pixels' 99.9th percentile of total counts (model card)
    rebuild: Any = None  # a baseline's builder for other lines: lines -> module
    # the scanner a model on the per-cluster fit was trained for (its card's prior parameters;
    # an adapted model's fitted one): the cube is fitted with the same, unless its metadata says
    instrument: dict = field(default_factory=dict)

    def resample(self, block: np.ndarray, cube_energy: np.ndarray, *, owned: bool = False) -> np.ndarray:
        """(N, C_cube) counts -> (N, C_model) counts on the model's grid, conserving counts
        (the cumulative counts are interpolated at the model's channel edges), with the
        channels of the detector's noise peak (below ``preprocess.LOW_KEV``) set to zero.
        ``owned``: ``block`` is a float32 copy the caller gives up, zeroed in place."""
        from .preprocess import resample_float32

        if self.energy is not None:
            block, owned = resample_float32(block, cube_energy, self.energy), True
        if self.low_channels:
            block = block if owned else np.array(block, dtype=np.float32)
            block[:, : self.low_channels] = 0
        return block


def map_model_names() -> dict[str, list[str]]:
    """What a user can pick: shipped and trained model names, and the baselines."""
    from .models.catalogue import list_models

    infos = list_models("maps")
    return {
        "shipped": [i.name for i in infos if i.shipped],
        "trained": [i.name for i in infos if not i.shipped],
        "baselines": list(BASELINES),
    }


def parse_lines(text: str | None) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """Line families as a user types them (``xray-atlas maps --lines``, the dock's lines box):
    ``"Pb-L, Fe-K"`` names the lines to map instead of the default set, ``"+As-K, Co-K"`` (a
    list that starts with ``+``; each name may carry its own) adds them to it. Commas or
    spaces separate. Returns ``(lines, add)``: ``(None, ())`` for an empty text."""
    from .physics.lines import parse_line_family

    items = [t for t in (text or "").replace(",", " ").split() if t]
    if not items:
        return None, ()
    adding = items[0].startswith("+")
    if not adding and any(t.startswith("+") for t in items):
        raise XrayAtlasError(
            f"lines={text!r}: start the list with + to add to the default set, or give no + to map only the lines named"
        )
    names = []
    for t in items:
        name = t.lstrip("+")
        if not name:
            raise XrayAtlasError(f"lines={text!r}: a + without a line family after it")
        names.append("-".join(parse_line_family(name, parameter="lines")))
    names = tuple(dict.fromkeys(names))
    return (None, names) if adding else (names, ())


def _excitation_kev(cube: SpectralCube) -> float:
    from .models.prior import INSTRUMENT_DEFAULTS, instrument_from_metadata

    return float(instrument_from_metadata(cube.metadata).get("tube_kv", INSTRUMENT_DEFAULTS["tube_kv"]))


def check_lines(lines, cube: SpectralCube) -> tuple[str, ...]:
    """Line families (any of ``Symbol-K/L/M`` that xraylib knows) written as here, each
    checked to have a line within the cube's energy range (from ``preprocess.LOW_KEV``, below
    which every map model reads zero) that its tube (``tube_kv`` of the cube's metadata, else
    50 kV) excites; a cube without calibration gets the names checked only."""
    from .physics.lines import check_in_range, parse_line_family
    from .preprocess import LOW_KEV

    if isinstance(lines, str):
        lines = (lines,)
    out = []
    for ln in lines or ():
        if cube.calibrated:
            e = cube.energy
            out.append(
                check_in_range(
                    ln, lo_kev=max(float(e[0]), LOW_KEV), hi_kev=float(e[-1]), excitation_kev=_excitation_kev(cube)
                )
            )
        else:
            out.append("-".join(parse_line_family(ln, parameter="lines")))
    return tuple(dict.fromkeys(out))


def searched_families(cube: SpectralCube, families: tuple[str, ...]) -> tuple[str, ...]:
    """Which of ``families`` the default map set may add for ``cube``: K and L families (M
    lines sit among the light elements' K lines and are mapped by their harder family), not
    those of :data:`NOT_SEARCHED`, whose strongest line, at the tube's excitation, lies in
    the cube's range at or above ``physics.lines.SOFT_KEV`` (Cu L and Zn L at 0.9-1.0 keV
    only echo the K lines, and are absorbed by air and the detector window)."""
    from .physics.lines import SOFT_KEV, family_lines

    out = []
    kv, top = _excitation_kev(cube), float(cube.energy[-1])
    for f in families:
        if f.endswith("-M") or f in NOT_SEARCHED:
            continue
        try:
            strongest = max(family_lines(f, excitation_kev=kv), key=lambda x: x.relative_intensity)
        except XrayAtlasError:  # not excited by this tube
            continue
        if SOFT_KEV <= strongest.energy_kev <= top:
            out.append(f)
    return tuple(out)


def load_map_model(
    model: str | os.PathLike | None,
    cube: SpectralCube,
    *,
    device: str = "auto",
    lines: tuple[str, ...] | None = None,
    add_lines: tuple[str, ...] = (),
) -> MapModel:
    """The map model ``model`` (None: the shipped default, :data:`DEFAULT_MAPS_MODEL`, or on a
    cube without an energy calibration :data:`UNCALIBRATED_MAPS_MODEL`, with a note; a name of
    :func:`map_model_names`; or a model file/folder) made ready for ``cube``.

    ``lines`` (instead of the default set) and ``add_lines`` (beside it) are checked here, so
    that a run is refused before any work (:func:`check_lines`); a baseline is built for
    them. A learnt model gives the lines beyond its outputs from the per-cluster fit, which
    needs the cube's energy calibration: without one they are refused.

    A model trained on another channel grid is used on the cube's spectra rebinned to its grid
    when the cube is calibrated and covers the model's energy range (a note says so);
    otherwise it is refused with a message naming both grids.
    """
    from .devices import resolve_device
    from .models.catalogue import resolve_model

    dev = resolve_device(device)
    lines = check_lines(lines, cube) or None
    add_lines = check_lines(add_lines, cube)
    if model in BASELINES:
        if not cube.calibrated:
            raise XrayAtlasError(f"model={model!r} needs an energy calibration and this cube has none", path=cube.path)
        chosen = tuple(dict.fromkeys((*(lines or _default_lines()), *add_lines)))
        if model == "fit":  # no fixed operator: fitted to the cube itself (xray_atlas.clusterfit)
            return MapModel(None, "fit", chosen, cube.n_channels, None, low_channels=_below_low(cube.energy))

        def rebuild(for_lines: tuple[str, ...]):
            return _baseline(str(model), cube, for_lines).to(dev).eval()

        return MapModel(
            rebuild(chosen),
            str(model),
            chosen,
            cube.n_channels,
            None,
            low_channels=_below_low(cube.energy),
            rebuild=rebuild,
        )
    stand_in = model is None and not cube.calibrated
    try:
        found = resolve_model(
            model,
            task="maps",
            default=UNCALIBRATED_MAPS_MODEL if stand_in else DEFAULT_MAPS_MODEL,
            device=device,
            also=BASELINES,
        )
    except XrayAtlasError as err:
        if model is None:  # no zoo: say what works without one
            raise XrayAtlasError(f"{err}; or give --model lsq") from None
        raise
    module, card, path = found.module, found.card, found.path
    out_lines = tuple(card.outputs)
    n = int(card.inputs.get("n_channels", card.config.get("n_channels", 0)))
    off, gain = card.inputs.get("energy_offset_kev"), card.inputs.get("energy_gain_kev")
    mm = MapModel(module, found.name, out_lines, n, None)
    if _cluster_fit(module):
        from .models.prior import INSTRUMENT_DEFAULTS

        keys = set(INSTRUMENT_DEFAULTS) - {"offset_kev", "gain_kev"}
        mm.instrument = {k: v for k, v in card.config.items() if k in keys}
    beyond = [ln for ln in (*(lines or ()), *add_lines) if ln not in out_lines]
    if beyond and not cube.calibrated:
        raise XrayAtlasError(
            f"lines: {', '.join(beyond)} not among the outputs of {mm.name} "
            f"({', '.join(out_lines)}); lines beyond a model's outputs come from the per-cluster "
            "fit, which needs the cube's energy calibration (give it one, e.g. --offset-kev and "
            "--gain-kev)",
            path=cube.path,
        )
    if stand_in:
        mm.notes.append(
            f"the default model {DEFAULT_MAPS_MODEL} fits the cube by clusters and needs its energy "
            f"calibration, which this cube lacks: painted with {mm.name} instead"
        )
    if _cluster_fit(module) and not cube.calibrated:
        raise XrayAtlasError(
            f"model {mm.name!r} fits the cube by clusters of pixels and needs its energy "
            "calibration; this cube has none (give it one first)",
            path=cube.path,
        )
    seen = card.inputs.get("total_counts") or card.inputs.get("counts")  # paintings, cubes / random spectra
    if isinstance(seen, (list, tuple)) and len(seen) == 2:
        mm.most_counts = float(seen[1])
    same_grid = n == cube.n_channels and (
        off is None
        or not cube.calibrated
        or (
            abs(float(cube.energy[0]) - off) < 0.25 * gain
            and abs(float(cube.energy[1] - cube.energy[0]) - gain) < 1e-3 * gain
        )
    )
    if same_grid:
        if off is not None and not cube.calibrated:
            mm.notes.append(
                f"the cube has no energy calibration; assuming the model's ({off:g} keV + {gain:g} keV "
                "per channel): if the detector's differs, give the cube its own calibration first"
            )
        if cube.calibrated or off is not None:
            mm.low_channels = _below_low(cube.energy if cube.calibrated else off + gain * np.arange(n))
        return mm
    if off is None or gain is None:
        raise XrayAtlasError(
            f"the model expects {n} channels and the cube has {cube.n_channels}; the model file "
            "states no energy calibration to resample with",
            path=path,
        )
    if not cube.calibrated:
        raise XrayAtlasError(
            f"the model expects {n} channels at {gain:g} keV from {off:g} keV and the cube has "
            f"{cube.n_channels} uncalibrated channels: calibrate the cube",
            path=cube.path,
        )
    e_model = off + gain * np.arange(n)
    # safe when the cube covers the model's lines (their strongest line + 1 keV, for the peaks'
    # tails and the neighbours that overlap them); model channels outside the cube read zero
    need_lo, need_hi = max(e_model[0], 0.8), _top_line_kev(out_lines) + 1.0
    if cube.energy[0] > need_lo or cube.energy[-1] < need_hi:
        raise XrayAtlasError(
            f"the cube covers {cube.energy[0]:.2f}-{cube.energy[-1]:.2f} keV but the model's lines "
            f"need {need_lo:.2f}-{need_hi:.2f} keV; refusing to guess",
            path=cube.path,
        )
    mm.energy = e_model
    mm.low_channels = _below_low(e_model)
    mm.notes.append(
        f"resampled the cube's {cube.n_channels} channels of {float(cube.energy[1] - cube.energy[0]) * 1000:.2f} eV "
        f"to the model's {n} channels of {gain * 1000:.2f} eV"
    )
    if cube.energy[-1] < e_model[-1] - gain:
        mm.notes.append(f"the cube ends at {cube.energy[-1]:.2f} keV; the model's channels above read zero counts")
    return mm


def _cluster_fit(module) -> bool:
    """Whether a map model reads the per-cluster fit's inputs beside each pixel's counts
    (None, the per-cluster fit alone, imports no torch)."""
    if module is None:
        return False
    from .models.spectral import GuardedMapModel

    return isinstance(module, GuardedMapModel) and module.cluster_fit


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


def _baseline(name: str, cube: SpectralCube, lines: tuple[str, ...]):
    """The ``lsq`` or ``roi`` module for ``cube``'s calibration and instrument and ``lines``."""
    from .models import build
    from .models.prior import instrument_from_metadata

    gain = float(cube.energy[1] - cube.energy[0])
    module, _ = build(
        name,
        n_channels=cube.n_channels,
        n_outputs=len(lines),
        lines=tuple(lines),
        offset_kev=float(cube.energy[0]),
        gain_kev=gain,
        **instrument_from_metadata(cube.metadata),
    )
    return module


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
        raise XrayAtlasError(
            "maps in counts/s need each pixel's live time and the file states none (live_time_s); make them in counts",
            path=cube.path,
        )
    bad = ~(np.isfinite(live) & (live > 0))
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise XrayAtlasError(
            f"maps in counts/s need each pixel's live time; pixel (y={y}, x={x}) has {live[y, x]} s "
            f"({int(bad.sum())} pixels without a positive live time); make them in counts",
            path=cube.path,
        )
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


def iter_maps(
    cube: SpectralCube,
    model: MapModel,
    *,
    batch: int = 8192,
    tile_bytes: int = TILE_BYTES,
    lines: tuple[str, ...] | None = None,
    add_lines: tuple[str, ...] = (),
    find: bool = True,
    hold_se: float | None = HOLD_SE,
    shrink: bool = True,
    units: str = "counts",
    chi2: bool = True,
) -> Generator[Progress, None, MapsResult]:
    """Stream ``cube`` through ``model``: yields :class:`Progress` after each tile, returns a
    :class:`MapsResult`: line -> (H, W) float32 net counts, or with ``units="counts/s"`` net
    counts per second of each pixel's live time (:func:`in_units`; refused before any work
    when the cube states no live time), with the run's notes, clusters, found families and
    reduced chi-square. ``model`` is not changed: two runs give two results.

    Which lines: ``lines`` if given (any families, :func:`check_lines`), else the model's
    lines and, with ``find`` on a calibrated cube, every K or L family that the per-cluster
    fit and the element model find in it (:func:`~xray_atlas.probabilities.found_families`;
    :attr:`MapsResult.found` and a note name them); ``add_lines`` are mapped beside either. A
    learnt model gives the lines beyond its outputs from the per-cluster fit, and a note says
    so.

    A model on the per-cluster fit (``maps-fit``) is held within ``hold_se`` of the fit's
    standard errors, per pixel and per cluster total (:class:`~xray_atlas.clusterfit.FitHold`;
    None: not held), then, with ``shrink``, each pixel is shrunk towards its cluster's mean by
    the share of the cluster's spread that is noise
    (:meth:`~xray_atlas.clusterfit.ClusterFit.shrink`); the lines it takes from the fit are
    held and shrunk alike.

    With ``chi2``, a model that is the per-cluster fit or corrects it (``fit``, ``maps-fit``)
    gives in :attr:`MapsResult.reduced_chi2` the (H, W) float32 reduced chi-square of the fit
    of every pixel (:func:`xray_atlas.spectrumfit.reduced_chi2`; NaN for a pixel without
    counts), computed in the same pass over the cube; for the other models, and without
    ``chi2``, it is None.

    The work is that of :class:`MapPass`: its global steps once, every row of the cube in
    one :meth:`MapPass.iter_rows`, then :meth:`MapPass.finish`."""
    mp = yield from MapPass.iter_prepare(
        cube,
        model,
        batch=batch,
        tile_bytes=tile_bytes,
        lines=lines,
        add_lines=add_lines,
        find=find,
        hold_se=hold_se,
        shrink=shrink,
        units=units,
        chi2=chi2,
    )
    part = yield from mp.iter_rows(cube, model)
    return mp.finish(cube, [part])


@dataclass(frozen=True)
class MapsResult:
    """What a map run gives (:func:`iter_maps`, :func:`predict_maps`, :meth:`MapPass.finish`):
    its maps and everything else the run found, none of it left on the model.

    Attributes
    ----------
    maps : dict
        Line -> (H, W) float32 in ``units``, in the order of ``lines``.
    lines : tuple of str
        The lines mapped (the default set's found families included).
    model : str
        The model's name (:attr:`MapModel.name`).
    units : str
        ``"counts"`` or ``"counts/s"``.
    notes : tuple of str
        The model's own notes from loading (:attr:`MapModel.notes`), then this run's: the
        families found, the per-cluster fit, the steps after the pixels (held, shrunk,
        pixels unlike the training data or far brighter).
    labels : (H, W) int64 array or None
        The per-cluster fit's clusters (-1: no counts), for the models that are the fit or
        correct it (``fit``, ``maps-fit``); else None.
    found : tuple of probabilities.Found
        The families the default set added because the cube holds them.
    reduced_chi2 : (H, W) float32 array or None
        The per-cluster fit's reduced chi-square of each pixel (``fit``, ``maps-fit``, with
        ``chi2``); else None.
    """

    maps: dict
    lines: tuple[str, ...]
    model: str
    units: str = "counts"
    notes: tuple[str, ...] = ()
    labels: np.ndarray | None = None
    found: tuple = ()
    reduced_chi2: np.ndarray | None = None


@dataclass
class RowMaps:
    """One block of rows' share of a map pass (:meth:`MapPass.iter_rows`): the block's values
    and what the pass's global steps need of its pixels, arrays of its rows only (a few bytes
    per pixel and line), so that a worker can send it to the process that assembles the cube."""

    rows: slice  #: the cube's rows these are
    values: np.ndarray  #: (n, W, lines) float32 net counts before the global steps
    labels: np.ndarray | None = None  #: (n, W) int64 clusters (the fit and the models on it)
    chi2: np.ndarray | None = None  #: (n, W) float32 reduced chi-square of the fit
    totals: np.ndarray | None = None  #: (n * W,) float32 counts above the noise peak (models on the fit)
    hold: tuple | None = None  #: :meth:`FitHold.partial` of these rows
    #: pixels partly / wholly given the least-squares value by the familiarity guard
    unfamiliar: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64))
    n_bright: int = 0  #: pixels above three times the training's counts
    bright_totals: list = field(default_factory=list)  #: up to 1,000 of their totals per tile


class _Batches:
    """A map module's function over batches of rows on the module's device, for one block of
    rows: spectra are first put on the model's channel grid, and what the module's
    familiarity guard fell back on and the pixels far above the training's counts are counted
    into the block's :class:`RowMaps`."""

    def __init__(self, model: MapModel, module: Any, cube: SpectralCube, part: RowMaps, *, batch: int, most_counts):
        from .models.spectral import FitMLP, GuardedMapModel, TotalScaled

        dev = next(iter(module.buffers()), None)
        self.device = dev.device if dev is not None else next(module.parameters()).device
        self.model, self.module, self.cube, self.part, self.batch = model, module, cube, part, batch
        self.guard = next((m.guard for m in module.modules() if isinstance(m, GuardedMapModel)), None)
        self.keeps_totals = isinstance(module, (TotalScaled, FitMLP))  # models that sum each pixel's counts themselves
        self.most_counts = most_counts
        # pixels far above the training's counts: the learnt correction was fitted where weak lines
        # are a few counts of noise, and it drifts from the physical limit as counts grow
        self.bright = 3.0 * most_counts if most_counts else np.inf

    def count_bright(self, totals: np.ndarray) -> None:
        hit = totals > self.bright
        if hit.any():
            self.part.n_bright += int(hit.sum())
            self.part.bright_totals.append(totals[hit][:1000])

    def __call__(
        self,
        module_fn,
        flat: np.ndarray,
        width: int,
        *,
        spectra: bool = True,
        count: bool = False,
        extra: np.ndarray | None = None,
    ) -> np.ndarray:
        """``module_fn`` over ``flat`` (N, ...) -> (N, ``width``) float32; with ``spectra`` the
        rows are counts of the cube, put on the model's grid first; rows of ``extra`` (the
        cluster fit's inputs) go after them; with ``count`` the pixels' totals are checked
        against the training's."""
        import torch

        batch, guard, unfamiliar = self.batch, self.guard, self.part.unfamiliar
        res = np.empty((flat.shape[0], width), np.float32)
        for a in range(0, flat.shape[0], batch):
            x = flat[a : a + batch]
            if spectra:  # a float32 copy of the cube's counts (never the cube itself), zeroed in place
                x = self.model.resample(np.array(x, dtype=np.float32), self.cube.energy, owned=True)
            counts = x
            if extra is not None:
                x = np.concatenate([x, extra[a : a + batch]], axis=1)
            res[a : a + batch] = (
                module_fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
                .float()
                .cpu()
                .numpy()
            )
            if count and self.most_counts:  # the totals the model summed itself, when it keeps them
                totals = self.module.totals if self.keeps_totals else None
                self.count_bright(totals[:, 0].float().cpu().numpy() if totals is not None else counts.sum(axis=1))
            if guard is not None and guard.fallback is not None:
                unfamiliar[:] += [int((guard.fallback > 0).sum()), int((guard.fallback >= 1).sum())]
                guard.fallback = None
        return res


class MapPass:
    """:func:`iter_maps` in three steps, so that its per-pixel step can run on blocks of rows
    in other processes (``xray-atlas batch --split-rows``, :mod:`xray_atlas.rowblocks`):

    1. :meth:`iter_prepare`, once per cube: the lines, the per-cluster fit's clusters and
       spectra (from a sample of the cube), the families found in it;
    2. :meth:`iter_rows`, on any block of rows, in any process that has the model loaded for
       the cube (each pixel's values depend on its own spectrum, and for a spatial model on
       its neighbours', which the block reads beyond its edges);
    3. :meth:`finish`, once: the blocks assembled, each cluster's totals held to the fit,
       pixels shrunk towards their cluster's mean, the maps put in their units.

    A MapPass holds no model module and pickles without its cube (the per-cluster fit drops
    its open file when pickled): :meth:`iter_rows` takes the cube and the model of the
    process it runs in. Made by :meth:`iter_prepare` only. The model is never changed.

    Attributes
    ----------
    lines : tuple of str
        The lines mapped, in order (the default set's found families included).
    found : tuple
        The families the default set added (:attr:`MapsResult.found`).
    notes : list of str
        The notes of :meth:`iter_prepare` (after the model's own from loading).
    """

    @classmethod
    def iter_prepare(
        cls,
        cube: SpectralCube,
        model: MapModel,
        *,
        batch: int = 8192,
        tile_bytes: int = TILE_BYTES,
        lines: tuple[str, ...] | None = None,
        add_lines: tuple[str, ...] = (),
        find: bool = True,
        hold_se: float | None = HOLD_SE,
        shrink: bool = True,
        units: str = "counts",
        chi2: bool = True,
    ) -> Generator[Progress, None, MapPass]:
        """The global steps before the pixels (options of :func:`iter_maps`): yields
        :class:`Progress`, returns the MapPass."""
        if not isinstance(chi2, bool):
            raise XrayAtlasError(f"chi2={chi2!r} must be True or False")
        live_time_for(cube, units=units)  # a refusal comes before the work, not after it
        if hold_se is not None and not (isinstance(hold_se, (int, float)) and np.isfinite(hold_se) and hold_se > 0):
            raise XrayAtlasError(f"hold_se={hold_se!r} must be a positive number of standard errors or None")
        if not isinstance(shrink, bool):
            raise XrayAtlasError(f"shrink={shrink!r} must be True or False")
        if not isinstance(find, bool):
            raise XrayAtlasError(f"find={find!r} must be True or False")

        lines = check_lines(lines, cube) or None
        add_lines = check_lines(add_lines, cube)
        want = tuple(dict.fromkeys((*(lines or model.lines), *add_lines)))
        module = model.module
        fixed = module is not None and model.rebuild is None  # a learnt model: its outputs are what they are
        beyond = [ln for ln in want if ln not in model.lines] if fixed else []
        if beyond and not cube.calibrated:
            raise XrayAtlasError(
                f"lines: {', '.join(beyond)} not among the outputs of {model.name} "
                f"({', '.join(model.lines)}); lines beyond a model's outputs come from the "
                "per-cluster fit, which needs the cube's energy calibration",
                path=cube.path,
            )
        notes: list[str] = []
        found: tuple = ()
        look = find and lines is None
        if look and not cube.calibrated:
            look = False
            notes.append("the cube has no energy calibration: no families were looked for beyond the model's lines")
        cluster_model = _cluster_fit(module)
        n_tiles = -(-cube.height // cube.tile_rows(tile_bytes))
        # the per-cluster fit: the model itself, its inputs, the lines found, those beyond a model's outputs
        fitted = None
        done_before = 0
        if module is None or cluster_model or look or beyond:
            from .clusterfit import ClusterFit

            fitted = ClusterFit(cube, want, tile_bytes=tile_bytes, instrument=model.instrument)
            done_before = fitted.n_steps
            yield Progress(0, done_before + n_tiles, "maps")
            for p in fitted.iter_prepare(means=cluster_model):
                yield Progress(p.done, done_before + n_tiles, "maps")
            if look:
                found = tuple(_found(fitted, cube, want, notes))
                want = want + tuple(f.line for f in found)
                fitted.lines = want
                if fixed:
                    beyond = [ln for ln in want if ln not in model.lines]
            if module is None or cluster_model:
                notes.append(fitted.note())
            if beyond:
                notes.append(
                    f"{', '.join(beyond)} {'is' if len(beyond) == 1 else 'are'} not among the outputs "
                    f"of {model.name}: from the per-cluster fit"
                    + (", held and shrunk as its own lines" if cluster_model else " (--model fit)")
                )
        else:
            yield Progress(0, n_tiles, "maps")
        self = cls.__new__(cls)
        self.lines, self.found, self.notes = want, found, notes
        self._name, self._loaded = model.name, tuple(model.notes)
        self.height, self.width, self.calibrated = cube.height, cube.width, cube.calibrated
        self._fitted, self._fit_only, self._cluster_model = fitted, module is None, cluster_model
        out_lines = model.lines if fixed else want
        self._out_lines = out_lines
        self._mine = [i for i, ln in enumerate(want) if ln in out_lines]  # columns the model gives
        self._cols = [out_lines.index(want[i]) for i in self._mine]
        self._from_fit = [i for i, ln in enumerate(want) if ln not in out_lines]  # columns the fit gives
        self._batch, self._tile_bytes, self._done_before = batch, tile_bytes, done_before
        self._hold_se, self._shrink, self._chi2, self.units = hold_se, shrink, chi2, units
        self._most_counts = model.most_counts
        return self

    def iter_rows(
        self, cube: SpectralCube, model: MapModel, rows: slice | None = None
    ) -> Generator[Progress, None, RowMaps]:
        """The per-pixel step on the cube's ``rows`` (None: all), tile by tile: yields
        :class:`Progress`, returns the block's :class:`RowMaps`. ``cube`` and ``model`` are
        the cube the pass was prepared on and its model, loaded in this process.

        One runner per kind of model: the per-cluster fit alone (:meth:`_iter_fit_rows`),
        a model that reads the fit's inputs beside each pixel's counts
        (:meth:`_iter_cluster_rows`), a spatial model (:meth:`_iter_spatial_rows`), any other
        model pixel by pixel (:meth:`_iter_pixel_rows`)."""
        import copy

        import torch

        h, w = self.height, self.width
        if (cube.height, cube.width) != (h, w):
            raise XrayAtlasError(
                f"the cube is {cube.height} x {cube.width} pixels and this map pass was prepared for {h} x {w}",
                path=cube.path,
            )
        rows = cube.check_rows(rows)
        r0, n = int(rows.start), int(rows.stop) - int(rows.start)
        part = RowMaps(slice(r0, r0 + n), np.zeros((n, w, len(self.lines)), np.float32))
        fitted = None
        if self._fitted is not None:  # a shallow copy on this process's cube (the fit reads its channel count)
            fitted = copy.copy(self._fitted)
            fitted.cube = cube
        total = self._done_before + -(-n // cube.tile_rows(self._tile_bytes))
        if self._fit_only:
            yield from self._iter_fit_rows(cube, fitted, part, total)
            return part

        from .models.spectral import SpatialPriorMLP

        module = model.module
        if model.rebuild is not None and self.lines != model.lines:  # a baseline, built for the lines found too
            module = model.rebuild(self.lines)
        run = _Batches(model, module, cube, part, batch=self._batch, most_counts=self._most_counts)
        with torch.inference_mode():
            if isinstance(module, SpatialPriorMLP) and module.neighbourhood:  # sees a size x size block
                yield from self._iter_spatial_rows(cube, module, fitted, part, run, total)
            elif self._cluster_model:
                yield from self._iter_cluster_rows(cube, model, module, fitted, part, run, total)
            else:
                yield from self._iter_pixel_rows(cube, module, fitted, part, run, total)
        return part

    def _assemble(self, pred: np.ndarray, got) -> np.ndarray:
        """The model's columns and, beside them, the fit's (``got``) for the lines beyond its outputs."""
        if not self._from_fit:
            return pred
        both = np.empty((pred.shape[0], len(self.lines)), np.float32)
        both[:, self._mine] = pred
        both[:, self._from_fit] = got.values[:, self._from_fit]
        return both

    def _iter_fit_rows(self, cube: SpectralCube, fitted, part: RowMaps, total: int) -> Generator[Progress, None, None]:
        """The per-cluster fit alone (the ``fit`` baseline): its values, clusters and chi-square."""
        n, w = part.values.shape[:2]
        r0 = part.rows.start
        flat = part.values.reshape(n * w, -1)
        labels = np.full(n * w, -1, np.int64)
        good = np.full(n * w, np.nan, np.float32) if self._chi2 else None
        for k, (t, block) in enumerate(cube.iter_tiles(tile_bytes=self._tile_bytes, rows=part.rows)):
            sl = slice((t.start - r0) * w, (t.stop - r0) * w)
            got = fitted.tile(block, chi2=self._chi2)
            flat[sl], labels[sl] = got.values, got.labels
            if good is not None:
                good[sl] = got.chi2
            yield Progress(self._done_before + k + 1, total, "maps")
        part.labels = labels.reshape(n, w)
        part.chi2 = None if good is None else good.reshape(n, w)

    def _iter_pixel_rows(
        self, cube: SpectralCube, module: Any, fitted, part: RowMaps, run: _Batches, total: int
    ) -> Generator[Progress, None, None]:
        """A model that reads each pixel's counts alone (a learnt model, ``lsq``, ``roi``);
        the lines beyond its outputs from the per-cluster fit."""
        w, r0, cols, want = self.width, part.rows.start, self._cols, self.lines
        for k, (t, block) in enumerate(cube.iter_tiles(tile_bytes=self._tile_bytes, rows=part.rows)):
            flat = block.reshape(-1, cube.n_channels)
            pred = run(lambda x: module(x)[:, cols], flat, len(cols), count=True)
            got = fitted.tile(flat) if self._from_fit else None
            part.values[t.start - r0 : t.stop - r0] = self._assemble(pred, got).reshape(block.shape[0], w, len(want))
            yield Progress(self._done_before + k + 1, total, "maps")

    def _iter_cluster_rows(
        self, cube: SpectralCube, model: MapModel, module: Any, fitted, part: RowMaps, run: _Batches, total: int
    ) -> Generator[Progress, None, None]:
        """A model that reads the per-cluster fit's inputs beside each pixel's counts
        (``maps-fit``): the fit of each tile in the same pass gives the clusters, the totals
        and the chi-square, and each pixel is held to it (:class:`~xray_atlas.clusterfit.FitHold`)."""
        from .clusterfit import FitHold

        n, w = part.values.shape[:2]
        r0, c, cols, want, chi2 = part.rows.start, cube.n_channels, self._cols, self.lines, self._chi2
        part.labels = np.full((n, w), -1, np.int64)
        hold = FitHold(fitted, n_se=self._hold_se) if self._hold_se is not None else None
        part.totals = np.zeros(n * w, np.float32)
        part.chi2 = np.full((n, w), np.nan, np.float32) if chi2 else None  # the fit's goodness, in the same pass
        whole = None  # one buffer for every tile: a fresh one a tile cost its page faults
        for k, (t, block) in enumerate(cube.iter_tiles(tile_bytes=self._tile_bytes, rows=part.rows)):
            local = slice(t.start - r0, t.stop - r0)
            flat = block.reshape(-1, c)
            if model.energy is None:
                # the model's inputs in one buffer: the counts (noise-peak channels zeroed),
                # then the cluster fit of those very counts, without further copies
                if whole is None or whole.shape[0] < flat.shape[0]:
                    whole = np.empty((flat.shape[0], c + 2 * module.n_families), np.float32)
                buf = whole[: flat.shape[0]]
                _cast_into(buf[:, :c], flat)
                buf[:, : model.low_channels] = 0.0
                got = fitted.tile(buf[:, :c], inputs=True, errors=hold is not None, chi2=chi2)
                buf[:, c:] = got.inputs
                pred = run(lambda x: module(x)[:, cols], buf, len(cols), count=True, spectra=False)
            else:  # a model on another channel grid: the counts resampled, the fit on the cube's
                got = fitted.tile(flat, inputs=True, errors=hold is not None, chi2=chi2)
                pred = run(lambda x: module(x)[:, cols], flat, len(cols), count=True, extra=got.inputs)
            pred = self._assemble(pred, got)
            part.labels[local] = got.labels.reshape(-1, w)
            if part.chi2 is not None:
                part.chi2[local] = got.chi2.reshape(-1, w)
            part.totals[local.start * w : local.stop * w] = got.totals
            if hold is not None:
                pred = hold.pixels(pred, got)
            part.values[local] = pred.reshape(block.shape[0], w, len(want))
            yield Progress(self._done_before + k + 1, total, "maps")
        if hold is not None:
            part.hold = hold.partial()

    def _iter_spatial_rows(
        self, cube: SpectralCube, module: Any, fitted, part: RowMaps, run: _Batches, total: int
    ) -> Generator[Progress, None, None]:
        """A spatial model (``maps-spatial``): each pixel's features beside the mean of its
        size x size block's, the block read beyond the rows' edges."""
        from .models.spectral import neighbourhood_mean

        size, w, r0, cols, want = module.neighbourhood, self.width, part.rows.start, self._cols, self.lines
        # the block mean of the model's features (linear in the counts) is the features of
        # the block's mean spectrum: the same input as in training, at a twentieth the work
        for k, (t, block, lead) in enumerate(
            cube.iter_tiles_with_halo(size // 2, tile_bytes=self._tile_bytes, rows=part.rows)
        ):
            feats = run(module.features, block.reshape(-1, cube.n_channels), int(module.project.shape[1]))
            feats = feats.reshape(block.shape[0], w, -1)
            m = t.stop - t.start
            near = neighbourhood_mean(feats, size)[lead : lead + m].reshape(m * w, -1)
            own = feats[lead : lead + m].reshape(m * w, -1)
            if self._most_counts:
                run.count_bright(own[:, -1])  # the features' last column is the total
            pred = run(
                lambda x: module.head(x[:, 0], x[:, 1])[:, cols],
                np.stack([own, near], axis=1),
                len(cols),
                spectra=False,
            )
            got = fitted.tile(block[lead : lead + m]) if self._from_fit else None
            part.values[t.start - r0 : t.stop - r0] = self._assemble(pred, got).reshape(m, w, len(want))
            yield Progress(self._done_before + k + 1, total, "maps")

    def finish(self, cube: SpectralCube, parts: Sequence[RowMaps]) -> MapsResult:
        """The global steps after the pixels, on ``parts`` that cover every row of the cube
        once (in any order): the maps in the pass's units, the clusters and the fit's
        reduced chi-square, and the notes of the whole run (the model's from loading first)."""
        parts = sorted(parts, key=lambda p: p.rows.start)
        out, labels, good = self._joined(parts)
        notes: list[str] = []
        if self._fit_only:
            return self._result(cube, out, notes, labels, good)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if self._cluster_model:
            self._hold_and_shrink(out, labels, parts, notes)
        notes += self._trust_notes(parts)
        return self._result(cube, out, notes, labels, good if self._cluster_model else None)

    def _joined(self, parts: Sequence[RowMaps]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The blocks' (H, W, lines) values, (H, W) clusters and chi-square (None where the
        model has none), refused unless the blocks, sorted, tile the cube's rows once."""
        h, w = self.height, self.width
        at = 0
        for p in parts:
            if p.rows.start != at or p.values.shape != (p.rows.stop - p.rows.start, w, len(self.lines)):
                raise XrayAtlasError(
                    f"the blocks of rows do not tile the cube's {h} rows once (rows {p.rows.start} to "
                    f"{p.rows.stop} after row {at})"
                )
            at = p.rows.stop
        if at != h:
            raise XrayAtlasError(f"the blocks of rows end at row {at}; the cube has {h}")
        labelled = self._fit_only or self._cluster_model
        one = len(parts) == 1
        out = parts[0].values if one else np.concatenate([p.values for p in parts])
        labels = (parts[0].labels if one else np.concatenate([p.labels for p in parts])) if labelled else None
        good = None
        if labelled and self._chi2:
            good = parts[0].chi2 if one else np.concatenate([p.chi2 for p in parts])
        return out, labels, good

    def _hold_and_shrink(self, out: np.ndarray, labels: np.ndarray, parts: Sequence[RowMaps], notes: list) -> None:
        """A model on the per-cluster fit: each cluster's totals held to the fit, then each
        pixel shrunk towards its cluster's mean, in place in ``out`` (H, W, lines)."""
        h, w = self.height, self.width
        fitted = self._fitted
        one = len(parts) == 1
        pixel_totals = parts[0].totals if one else np.concatenate([p.totals for p in parts])
        if self._hold_se is not None:
            from .clusterfit import FitHold

            hold = FitHold(fitted, n_se=self._hold_se)
            for p in parts:
                hold.add(p.hold)
            hold.clusters(out.reshape(h * w, -1), labels.ravel(), pixel_totals)
            notes.append(hold.note(out.size))
        if self._shrink:
            n_shrunk = fitted.shrink(
                out.reshape(h * w, -1), labels.ravel(), pixel_totals, shape=(h, w), size=SHRINK_SIZE
            )
            where = (
                f"their own cluster's pixels in their {SHRINK_SIZE} x {SHRINK_SIZE} block"
                if SHRINK_SIZE
                else "their cluster"
            )
            notes.append(
                f"values shrunk towards the mean of {where} by the share of the cluster's spread that "
                f"is noise (empirical Bayes): {n_shrunk} of {fitted.k * len(self.lines)} cluster lines"
            )

    def _trust_notes(self, parts: Sequence[RowMaps]) -> list[str]:
        """Notes on the pixels whose maps a learnt model's limits touch: unlike its training
        spectra (the familiarity guard's fallbacks), far above its training's counts."""
        h, w = self.height, self.width
        # models on the per-cluster fit are held to it; the others are not, and maps-fit is
        cluster_model = self._cluster_model
        advice = (
            "compare with --model fit"
            if cluster_model
            else "compare with --model maps-fit or fit"
            if self.calibrated
            else "give the cube its energy calibration and compare with --model maps-fit or fit"
        )
        notes = []
        unfamiliar = np.sum([p.unfamiliar for p in parts], axis=0)
        n_bright = sum(p.n_bright for p in parts)
        if unfamiliar[0]:
            notes.append(
                f"{unfamiliar[0] / (h * w):.1%} of the pixels are unlike the spectra the model was trained "
                f"on; their maps lean on the {'per-cluster' if cluster_model else 'least-squares'} "
                f"fit ({unfamiliar[1] / (h * w):.1%} wholly): {advice}"
            )
        if n_bright:
            bright_totals = np.concatenate([t for p in parts for t in p.bright_totals])
            notes.append(
                f"{n_bright / (h * w):.1%} of the pixels hold over three times the counts of the model's "
                f"training pixels (median {np.median(bright_totals):,.0f} against at most "
                f"{self._most_counts:,.0f}): its maps drift from the physical limit as counts grow; "
                f"{advice}"
            )
        return notes

    def _result(self, cube: SpectralCube, out: np.ndarray, notes: list, labels, good) -> MapsResult:
        maps = {ln: np.ascontiguousarray(out[..., j]) for j, ln in enumerate(self.lines)}
        return MapsResult(
            maps=in_units(maps, cube, units=self.units),
            lines=self.lines,
            model=self._name,
            units=self.units,
            notes=(*self._loaded, *self.notes, *notes),
            labels=labels,
            found=self.found,
            reduced_chi2=good,
        )


def _found(fitted, cube: SpectralCube, want: tuple[str, ...], notes: list) -> list:
    """The families the prepared fit finds in the cube beyond ``want`` (the default set's
    rule, :func:`~xray_atlas.probabilities.found_families`), with a note of them."""
    from .models.prior import INSTRUMENT_DEFAULTS, instrument_for, instrument_from_metadata
    from .probabilities import found_families, load_element_model, on_tube_lines

    candidates = tuple(f for f in searched_families(cube, fitted.basis.families) if f not in want)
    e = cube.energy
    inst = instrument_for(
        n_channels=cube.n_channels,
        **{
            **INSTRUMENT_DEFAULTS,
            **instrument_from_metadata(cube.metadata),
            "offset_kev": float(e[0]),
            "gain_kev": float(e[1] - e[0]),
        },
    )
    try:
        em = load_element_model(None, device="cpu")
    except XrayAtlasError as err:  # no element model installed: the fit alone decides
        em = None
        notes.append(f"families looked for by the per-cluster fit alone ({err})")
    found = found_families(fitted, candidates, element_model=em, on_tube=on_tube_lines(candidates, inst))
    if found:
        notes.append("found in the cube and mapped beside the default lines: " + ", ".join(map(str, found)))
    return found


def _cast_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (float32 from the cube's dtype) on torch's thread pool: a third of
    the time of numpy's one-threaded cast of a 4,096-channel tile on 2 cores."""
    import torch

    try:
        torch.from_numpy(dst).copy_(torch.from_numpy(src))
    except (TypeError, ValueError, RuntimeError):  # a dtype this torch cannot hold (uint16 before 2.3)
        dst[...] = src


def predict_maps(
    cube: SpectralCube,
    model: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    lines: tuple[str, ...] | None = None,
    add_lines: tuple[str, ...] = (),
    **kw: Any,
) -> MapsResult:
    """Blocking :func:`iter_maps` with model loading: its :class:`MapsResult` (the maps in
    ``.maps``). ``kw`` go to :func:`iter_maps` (``units="counts/s"`` for counts per second of
    live time)."""
    from .cube import run_to_end

    live_time_for(cube, units=kw.get("units", "counts"))  # refused before the model loads
    mm = load_map_model(model, cube, device=device, lines=lines, add_lines=add_lines)
    return run_to_end(iter_maps(cube, mm, lines=lines, add_lines=add_lines, **kw))
