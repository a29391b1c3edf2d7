"""Element probability maps: which elements a spectrum holds, per pixel, per k x k region or
per cluster, from a trained multi-label model (task ``elements``).

Spectra reach the model's channel grid through study 003's preprocessing
(:mod:`xray_atlas.preprocess`): the channels below ``LOW_KEV`` (the noise peak and the
detector's low-energy cut-off) are masked, the rest rebinned to the model's calibration
conserving counts. Regions and clusters are predicted on their summed spectra (more counts,
fewer false calls) and painted back onto their pixels. A model file carries per-element
decision thresholds chosen on validation data (:func:`xray_atlas.metrics.best_thresholds`);
:func:`present` applies them.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cube import TILE_BYTES, Progress, SpectralCube, run_to_end
from .errors import XrayAtlasError
from .preprocess import LOW_KEV  # masked below (noise peak); the lightest class line, P Ka, is at 2.01 keV

__all__ = [
    "ElementModel",
    "ProbabilitiesResult",
    "load_element_model",
    "iter_probabilities",
    "predict_probabilities",
    "spectrum_probabilities",
    "present",
    "check_cube",
    "element_model_names",
    "DEFAULT_ELEMENTS_MODEL",
    "LOW_KEV",
    "Found",
    "found_families",
    "on_tube_lines",
    "FOUND_Z",
    "FOUND_SHARE",
    "TUBE_SHARE",
]

#: The shipped default element-probability model (file stem in ``models/zoo``).
DEFAULT_ELEMENTS_MODEL = "elements-default"


@dataclass
class ElementModel:
    """A multi-label model ready for spectra: module, elements, thresholds and grid."""

    module: Any
    name: str
    elements: tuple[str, ...]
    thresholds: dict[str, float]
    energy: np.ndarray  # the model's channel energies (keV)
    max_counts: float = np.inf  # the most counts per spectrum in its training data
    notes: list[str] = field(default_factory=list)  # from loading; a run's go in its ProbabilitiesResult
    card: Any = None  # the model card it was loaded with (training data, seed, thresholds)

    @property
    def device(self) -> Any:
        return next(self.module.parameters()).device

    def prepare(self, spectra: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """(N, C) counts on ``energy`` -> (N, C_model) float32 counts on the model's grid,
        channels below :data:`LOW_KEV` masked."""
        from .preprocess import mask_edges, resample_float32

        y = np.asarray(spectra)
        if y.shape[1] == self.energy.size and np.allclose(energy, self.energy, atol=1e-6):
            return mask_edges(y, self.energy, LOW_KEV).astype(np.float32, copy=False)
        y = y.astype(np.float32, copy=False)
        keep = energy >= LOW_KEV
        if keep.sum() < 2:
            raise XrayAtlasError(f"the spectra end at {energy[-1]:.2f} keV, below {LOW_KEV} keV")
        return resample_float32(y[:, keep], energy[keep], self.energy)

    def __call__(self, spectra: np.ndarray, energy: np.ndarray, *, batch: int | None = None) -> np.ndarray:
        """(N, C) counts -> (N, E) probabilities (float32), ``batch`` spectra at a time
        (default: 128 on a CPU, where the activations of a batch then stay in cache: 11,000
        spectra/s against 3,000 at 4,096; 4,096 on a GPU)."""
        import torch

        batch = batch or (128 if self.device.type == "cpu" else 4096)
        x = self.prepare(spectra, energy)
        # a summed region or cluster beyond the training range: scaled down to it (the shape is
        # what tells the elements; its noise is then lower than the model assumes, the safe side)
        total = x.sum(axis=1, keepdims=True)
        over = total > self.max_counts
        if over.any():
            x = np.where(over, x * (self.max_counts / np.maximum(total, 1)), x).astype(np.float32)
        out = np.empty((x.shape[0], len(self.elements)), np.float32)
        with torch.inference_mode():
            for a in range(0, x.shape[0], batch):
                logits = self.module(torch.from_numpy(np.ascontiguousarray(x[a : a + batch])).to(self.device))
                out[a : a + batch] = torch.sigmoid(logits.float()).cpu().numpy()
        return out


@dataclass(frozen=True)
class ProbabilitiesResult:
    """What :func:`iter_probabilities` (and :func:`predict_probabilities`) gives: the maps and
    the run's notes, none of them left on the model.

    Attributes
    ----------
    probabilities : dict
        Element -> (H, W) float32 probability in [0, 1] ((rows, W) for a block of rows), in
        the order of ``elements``.
    elements : tuple of str
        The elements predicted.
    model : str
        The model's name (:attr:`ElementModel.name`).
    thresholds : dict
        Element -> the model's decision threshold (:func:`present`).
    notes : tuple of str
        The model's own notes from loading, then this run's (:func:`check_cube`: resampling,
        a short energy range).
    """

    probabilities: dict
    elements: tuple[str, ...]
    model: str
    thresholds: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def element_model_names() -> dict[str, list[str]]:
    """Shipped and trained element-probability models a user can pick."""
    from .models.catalogue import list_models

    infos = list_models("elements")
    return {"shipped": [i.name for i in infos if i.shipped], "trained": [i.name for i in infos if not i.shipped]}


def load_element_model(model: str | os.PathLike | None = None, *, device: str = "auto") -> ElementModel:
    """The element model ``model``: None (the shipped default), a name of
    :func:`element_model_names`, or a model file/folder of the ``elements`` task."""
    from .models.catalogue import resolve_model

    found = resolve_model(model, task="elements", default=DEFAULT_ELEMENTS_MODEL, device=device)
    module, card, path = found.module, found.card, found.path
    n = int(card.inputs.get("n_channels", card.config.get("n_channels", 0)))
    off, gain = card.inputs.get("energy_offset_kev"), card.inputs.get("energy_gain_kev")
    if off is None or gain is None:
        raise XrayAtlasError("the model file states no energy calibration", path=path)
    elements = tuple(card.outputs)
    thresholds = {el: float(card.thresholds.get(el, 0.5)) for el in elements}
    counts = card.inputs.get("counts") or [0, np.inf]
    return ElementModel(
        module, found.name, elements, thresholds, float(off) + float(gain) * np.arange(n), float(counts[1]), card=card
    )


def check_cube(cube: SpectralCube, model: ElementModel) -> list[str]:
    """Refuse a cube the model cannot read (no calibration, too short a range); return notes
    on what is done to it (resampling) or what it lacks."""
    if not cube.calibrated:
        raise XrayAtlasError(
            "the cube has no energy calibration; element probabilities need one (--offset-kev and "
            "--gain-kev on the command line, the Spectrum inspector's energy row in napari)",
            path=cube.path,
        )
    notes = []
    e = cube.energy
    if e[-1] < 10.0:
        raise XrayAtlasError(
            f"the cube ends at {e[-1]:.2f} keV; element probabilities need spectra to at least 10 keV", path=cube.path
        )
    if e[-1] < model.energy[-1] - 1.0:
        notes.append(f"the cube ends at {e[-1]:.2f} keV; elements whose lines all lie above cannot be seen")
    step = float(e[1] - e[0])
    gain = float(model.energy[1] - model.energy[0])
    if abs(step - gain) > 1e-3 * gain or abs(e[0] - model.energy[0]) > 0.25 * gain:
        notes.append(
            f"resampled the cube's {cube.n_channels} channels of {step * 1000:.2f} eV from {e[0]:.3f} keV "
            f"to the model's {model.energy.size} channels of {gain * 1000:.2f} eV"
        )
    return notes


def iter_probabilities(
    cube: SpectralCube,
    model: ElementModel,
    *,
    region: int = 1,
    labels: np.ndarray | None = None,
    elements: tuple[str, ...] | None = None,
    tile_bytes: int = TILE_BYTES,
    rows: slice | None = None,
) -> Generator[Progress, None, ProbabilitiesResult]:
    """Stream ``cube`` through ``model``: yields :class:`Progress` per tile and returns a
    :class:`ProbabilitiesResult`: element -> (H, W) float32 probability, with the run's
    notes. ``model`` is not changed: two runs give two results.

    Parameters
    ----------
    region : int
        1: every pixel; k > 1: the summed spectrum of each k x k block (edge blocks smaller).
    labels : (H, W) int array, optional
        Cluster labels (docs/dev/contracts.md section 3): the summed spectrum of each label; pixels
        labelled -1 (noise) get probability 0. Excludes ``region``.
    elements : tuple of str, optional
        A subset of the model's elements.
    rows : slice, optional
        Only this block of the cube's rows (its maps are (rows, W)): a pixel's or a region's
        probability depends on its own spectra only, so blocks computed apart (on dask
        workers, :mod:`xray_atlas.rowblocks`) make the whole cube's maps. With ``region``,
        the block starts and ends at multiples of it (or at the cube's end); not with ``labels``.
    """
    want = tuple(elements or model.elements)
    missing = [el for el in want if el not in model.elements]
    if missing:
        raise XrayAtlasError(f"elements: {', '.join(missing)} not among this model's ({', '.join(model.elements)})")
    top = max(cube.height, cube.width)  # a larger block only pads the cube with zeros (memory grows as region^2)
    if not isinstance(region, (int, np.integer)) or not 1 <= region <= top:
        raise XrayAtlasError(
            f"region={region!r} must be a positive integer, at most {top} (the cube is "
            f"{cube.height} x {cube.width} pixels)"
        )
    cols = [model.elements.index(el) for el in want]
    h, w = cube.height, cube.width
    first, last = 0, h
    if rows is not None:
        rows = cube.check_rows(rows)
        if labels is not None:
            raise XrayAtlasError("rows: a cluster's probability needs all its pixels; give no rows with labels")
        if rows.start % region or (rows.stop % region and rows.stop != h):
            raise XrayAtlasError(
                f"rows={rows!r} must start and end at multiples of region={region} (or end at the cube's last row, {h})"
            )
        first, last = int(rows.start), int(rows.stop)
    notes = tuple(dict.fromkeys((*model.notes, *check_cube(cube, model))))

    def result(probs: dict[str, np.ndarray]) -> ProbabilitiesResult:
        thresholds = {el: model.thresholds[el] for el in want}
        return ProbabilitiesResult(probs, want, model.name, thresholds, notes)

    if labels is not None:
        return result((yield from _iter_labels(cube, model, np.asarray(labels), want, cols, tile_bytes)))
    out = np.zeros((last - first, w, len(want)), np.float32)
    step = cube.tile_rows(tile_bytes)
    step = max(region, step // region * region)  # whole blocks in each tile
    total = -(-(last - first) // step)
    yield Progress(0, total, "probabilities")
    for k, r0 in enumerate(range(first, last, step)):
        rows = slice(r0, min(r0 + step, last))
        block = cube._read((rows, slice(None), slice(None)))
        cube._check_values(block, rows)
        n_r = block.shape[0]
        if region == 1:
            p = model(block.reshape(-1, cube.n_channels), cube.energy)[:, cols]
            out[rows.start - first : rows.stop - first] = p.reshape(n_r, w, len(want))
        else:
            by, bx = -(-n_r // region), -(-w // region)
            pad = np.zeros((by * region, bx * region, cube.n_channels), np.float32)
            pad[:n_r, :w] = block
            sums = pad.reshape(by, region, bx, region, -1).sum(axis=(1, 3)).reshape(-1, cube.n_channels)
            p = model(sums, cube.energy)[:, cols].reshape(by, bx, len(want))
            out[rows.start - first : rows.stop - first] = np.repeat(np.repeat(p, region, 0), region, 1)[:n_r, :w]
        yield Progress(k + 1, total, "probabilities")
    return result({el: np.ascontiguousarray(out[..., j]) for j, el in enumerate(want)})


def _iter_labels(
    cube: SpectralCube, model: ElementModel, labels: np.ndarray, want: tuple[str, ...], cols: list[int], tile_bytes: int
) -> Generator[Progress, None, dict[str, np.ndarray]]:
    h, w = cube.height, cube.width
    if labels.shape != (h, w):
        raise XrayAtlasError(f"labels: shape {labels.shape}, the cube is {h} x {w}")
    if labels.dtype.kind not in "iu":
        raise XrayAtlasError(f"labels: integer cluster labels expected, got {labels.dtype}")
    ids = np.unique(labels[labels >= 0])
    if ids.size == 0:
        raise XrayAtlasError("labels: every pixel is noise (-1); nothing to predict")
    index = np.searchsorted(ids, labels)
    sums = np.zeros((ids.size, cube.n_channels), np.float64)
    step = cube.tile_rows(tile_bytes)
    total = -(-h // step) + 1
    yield Progress(0, total, "cluster spectra")
    for k, (rows, block) in enumerate(cube.iter_tiles(tile_bytes=tile_bytes)):
        sel = labels[rows] >= 0
        np.add.at(sums, index[rows][sel], block[sel].astype(np.float64))
        yield Progress(k + 1, total, "cluster spectra")
    p = model(sums, cube.energy)[:, cols]
    out = np.where((labels >= 0)[..., None], p[np.clip(index, 0, ids.size - 1)], 0).astype(np.float32)
    yield Progress(total, total, "probabilities")
    return {el: np.ascontiguousarray(out[..., j]) for j, el in enumerate(want)}


def predict_probabilities(
    cube: SpectralCube, model: str | os.PathLike | None = None, *, device: str = "auto", **kw: Any
) -> ProbabilitiesResult:
    """Blocking :func:`iter_probabilities` with model loading: its :class:`ProbabilitiesResult`
    (the maps in ``.probabilities``)."""
    em = load_element_model(model, device=device)
    return run_to_end(iter_probabilities(cube, em, **kw))


def spectrum_probabilities(
    spectrum: np.ndarray, energy: np.ndarray, model: ElementModel | str | None = None
) -> dict[str, float]:
    """Element -> probability for one spectrum (C,) on ``energy`` (keV)."""
    em = model if isinstance(model, ElementModel) else load_element_model(model, device="cpu")
    s = np.asarray(spectrum, dtype=np.float64)
    e = np.asarray(energy, dtype=np.float64)
    if s.ndim != 1 or e.shape != s.shape:
        raise XrayAtlasError(f"spectrum {s.shape} and energy {e.shape} must be 1-D and of one length")
    return dict(zip(em.elements, em(s[None, :], e)[0].tolist()))


def present(probabilities: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """The elements whose probability reaches their decision threshold, most probable first."""
    hits = [el for el, p in probabilities.items() if p >= thresholds.get(el, 0.5)]
    return sorted(hits, key=lambda el: -probabilities[el])


#: The rule that adds a line family to the default map set (docs/maps.md, "Which lines are
#: mapped"): in the summed spectrum of at least one cluster of the per-cluster fit, the
#: family's net counts are at least ``FOUND_Z`` standard errors (Poisson noise, line ratios,
#: calibration drift and peak width: :meth:`~xray_atlas.clusterfit.ClusterFit.evidence`) and
#: at least ``FOUND_SHARE`` of the cluster's counts (the share above which the fit gives a
#: family its own line ratios; below it lie the residues of other families' misfits: Sn-K, Ag-K
#: and Cd-K at z = 8-40 on paintings without those elements), and the element model calls the
#: element present in that same spectrum (the residue of the tube's scattered Rh L lines read
#: as Cl-K reached z = 11-25 on every painting). A family whose strongest line lies on one of
#: the tube's scattered lines (:func:`on_tube_lines`), which the fit has no component for, must
#: hold ``TUBE_SHARE`` of the cluster's counts: Rh Kb2 (23.17 keV) is read as 0.1-0.2 % of Cd-K
#: (Ka1 23.17 keV) in paintings with no cadmium. Chosen on synthetic paintings
#: (benchmarks/found_lines.py; figures in docs/maps.md).
FOUND_Z = 3.0
FOUND_SHARE = 1e-3
TUBE_SHARE = 1e-2


@dataclass(frozen=True)
class Found:
    """A line family found in a cube, with its evidence in the cluster where it is surest."""

    line: str
    cluster: int
    z: float  #: net counts over their standard error in the cluster's summed spectrum
    share: float  #: net counts over the cluster's counts
    probability: float | None  #: the element model's probability there (None: not among its elements)

    def __str__(self) -> str:
        p = "" if self.probability is None else f", p {self.probability:.2f}"
        return f"{self.line} (z {self.z:.0f}, {self.share:.1%} of a cluster's counts{p})"


def on_tube_lines(families, instrument) -> tuple[str, ...]:
    """Which ``families`` have their strongest line (at the tube's voltage) on a line of the
    tube's anode scattered by the sample: within one detector FWHM of a line of at least 1 %
    of the anode's K or L family (Rayleigh), or of its Compton peak at the instrument's
    scatter angle (broadened by its Doppler spread). ``instrument``: a
    :class:`~xray_atlas.physics.spectra.Instrument`."""
    from .physics.lines import family_lines

    tube, det, geo = instrument.tube, instrument.detector, instrument.geometry
    peaks = []  # (energy, half-width) of the scattered anode lines
    for fam in ("K", "L"):
        try:
            lines = family_lines(f"{tube.anode}-{fam}", excitation_kev=float(tube.kv), min_relative=0.01)
        except XrayAtlasError:  # not excited at this voltage
            continue
        for ln in lines:
            e = ln.energy_kev
            peaks.append((e, float(det.fwhm_kev(e))))
            ec = e / (1 + e / 510.999 * (1 - np.cos(np.radians(geo.scatter_deg))))
            peaks.append((ec, float(np.hypot(det.fwhm_kev(ec), 2.3548 * geo.doppler * ec))))
    out = []
    for f in families:
        try:
            top = max(family_lines(f, excitation_kev=float(tube.kv)), key=lambda x: x.relative_intensity).energy_kev
        except XrayAtlasError:
            continue
        if any(abs(top - e) <= half for e, half in peaks):
            out.append(f)
    return tuple(out)


def found_families(
    fit: Any,
    families: tuple[str, ...],
    *,
    element_model: ElementModel | None = None,
    on_tube: tuple[str, ...] = (),
    z: float = FOUND_Z,
    min_share: float = FOUND_SHARE,
    tube_share: float = TUBE_SHARE,
) -> list[Found]:
    """The ``families`` (of the fit's ``basis.families``) that a prepared per-cluster fit
    (:class:`~xray_atlas.clusterfit.ClusterFit`, after ``iter_prepare``) finds in its cube, by
    the rule of :data:`FOUND_Z`: significant at ``z`` standard errors, at least ``min_share``
    of a cluster's counts (``tube_share`` for the families ``on_tube``, on the tube's
    scattered lines: :func:`on_tube_lines`), and with ``element_model`` (None: the fit alone)
    its element called present (at the model's own threshold) in that cluster's summed
    spectrum. Elements the model does not know (Al, Si) are judged by the fit alone.
    Strongest first."""
    for name, v, hi in (("z", z, np.inf), ("min_share", min_share, 1.0), ("tube_share", tube_share, 1.0)):
        if not (isinstance(v, (int, float)) and 0 <= v < hi):
            raise XrayAtlasError(f"{name}={v!r} must be a number in [0, {hi})")
    if fit.k == 0:
        return []
    zs, shares = fit.evidence()
    probs = None
    if element_model is not None:
        probs = element_model(fit.cluster_spectra, np.asarray(fit.cube.energy, np.float64))  # (k, E)
    out = []
    for f in families:
        i = fit.basis.families.index(f)
        ok = (zs[:, i] >= z) & (shares[:, i] >= (tube_share if f in on_tube else min_share))
        el = f.split("-")[0]
        p = None
        if probs is not None and el in element_model.elements:
            p = probs[:, element_model.elements.index(el)]
            ok &= p >= element_model.thresholds[el]
        if ok.any():
            j = int(np.flatnonzero(ok)[np.argmax(zs[ok, i])])
            out.append(Found(f, j, float(zs[j, i]), float(shares[j, i]), None if p is None else float(p[j])))
    return sorted(out, key=lambda x: -x.z)
