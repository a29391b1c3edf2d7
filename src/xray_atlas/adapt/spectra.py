"""The user's XRF instrument, fitted to the sum spectrum of a scan: no labels needed.

A painting's sum spectrum holds the instrument's fingerprints beside the paint's lines: the
tube's own lines and continuum scattered by the paint (anode, voltage, and the optic's band
pass shape them), and the width of every peak (the detector's resolution). The fit models the
measured sum spectrum as a non-negative mix of one net count of each element's line family
(:func:`~xray_atlas.physics.spectra.pure_spectrum`, whose line ratios and escape peaks follow
the instrument) and of the tube spectrum scattered by an organic, a chalk and a lead-white
matrix (:func:`~xray_atlas.physics.spectra.simulate`), all for one candidate instrument, and
keeps the instrument whose mix fits best (Poisson-weighted residuals). The paint's composition
is free in every candidate: only the instrument is chosen.

Searched, in this order (each step keeps the others at their best so far):

1. the detector's FWHM at Mn Ka, 125-250 eV (peak widths; 120 eV is the Fano limit);
2. the anode (Rh, W, Mo, Ag, Cu, Cr) and whether a polycapillary optic shapes the beam;
3. the scattering angle between beam and detector, 90-165 degrees (where the Compton peak of
   the tube's lines sits);
4. the tube voltage, 20-60 kV in 5 kV steps, then 1 kV around the best;
5. the anode and optic again, then the scattering angle again;
6. the FWHM again, in 5 eV steps.

The energy calibration is the cube's own (a wrong one is fixed first with the Spectrum
inspector's calibration, or ``--offset-kev``/``--gain-kev``).

:func:`adapt_elements` then fine-tunes the element model for the fitted instrument
(:func:`plan_element_adaptation` sets the run up, :func:`finish_element_adaptation` writes
it; the napari dock runs the training between them in a child process). docs/adapt.md gives
how well it does on instruments it was not tuned on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import XrayAtlasError
from ._run import fine_tune_config

__all__ = [
    "FIT_ANODES",
    "FIT_SCATTER_DEG",
    "AdaptedElementModel",
    "ScanFit",
    "ElementAdaptationPlan",
    "XrfFit",
    "XrfInstrument",
    "adapt_elements",
    "finish_element_adaptation",
    "fit_scan",
    "fit_xrf_instrument",
    "plan_element_adaptation",
]

#: Epochs of fine-tuning :func:`adapt_elements` runs unless told (docs/adapt.md: how many were needed).
ADAPT_EPOCHS = 6
#: Tube anodes the fit tries: every anode the physics engine's tube (SpekPy) simulates.
FIT_ANODES = ("Rh", "W", "Mo", "Ag", "Cu", "Cr")
#: Matrices whose scatter of the tube spectrum the mix may hold: (weight fractions, density).
#: An organic one (canvas, wood, binder: cellulose) scatters mostly by Compton, lead white
#: mostly by Rayleigh; the M6 spectrum needs the organic one (docs/adapt.md).
SCATTER_MATRICES = (
    ({"C": 0.444, "H": 0.062, "O": 0.494}, 1.5),  # cellulose
    ({"Ca": 0.4, "C": 0.12, "O": 0.48}, 2.7),  # chalk
    ({"Pb": 0.8, "C": 0.05, "O": 0.15}, 6.1),  # lead white
)


#: Scattering angles (degrees) the fit tries: 90 is the 45/45 geometry of most bench
#: spectrometers, 135-165 the near-backscatter of macro-XRF scanners such as the M6.
FIT_SCATTER_DEG = (90.0, 120.0, 135.0, 150.0, 165.0)


@dataclass(frozen=True)
class XrfInstrument:
    """A fitted XRF instrument: tube anode and voltage, optic or none, detector resolution,
    and the scattering angle between beam and detector (degrees)."""

    anode: str
    kv: float
    optic: bool
    fwhm_mnka_ev: float
    scatter_deg: float = 90.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "anode": self.anode,
            "kv": self.kv,
            "optic": self.optic,
            "fwhm_mnka_ev": self.fwhm_mnka_ev,
            "scatter_deg": self.scatter_deg,
        }

    def source_params(self) -> dict[str, Any]:
        """The instrument as the synthetic training sources take it (``synthetic-spectra``,
        ``synthetic-paintings``: the same parameter names)."""
        return {
            "anode": self.anode,
            "tube_kv": float(self.kv),
            "fwhm_mnka_ev": float(self.fwhm_mnka_ev),
            "optic": bool(self.optic),
            "scatter_deg": float(self.scatter_deg),
        }


@dataclass(frozen=True)
class XrfFit:
    """The fit of :func:`fit_xrf_instrument`: the instrument, the measured and the fitted sum
    spectra on the channels fitted, and each candidate's reduced chi-square."""

    instrument: XrfInstrument
    energy: np.ndarray = field(repr=False)
    measured: np.ndarray = field(repr=False)
    fitted: np.ndarray = field(repr=False)
    reduced_chi2: float
    tried: dict = field(default_factory=dict, repr=False)

    @property
    def residual(self) -> np.ndarray:
        """(measured - fitted) / sqrt(fitted), per channel."""
        return (self.measured - self.fitted) / np.sqrt(np.maximum(self.fitted, 1.0))


def _families(max_kev: float) -> list[str]:
    from ..physics.generator import PROBABILITY_ELEMENTS, UNLISTED_ELEMENTS
    from ..physics.lines import atomic_number, family_lines

    out = []
    for el in dict.fromkeys(("Ar", *PROBABILITY_ELEMENTS, *UNLISTED_ELEMENTS)):
        z = atomic_number(el)
        for fam in ("K", "L") if z >= 30 else ("K",):
            name = f"{el}-{fam}"
            try:
                lines = family_lines(name, excitation_kev=max_kev)
            except XrayAtlasError:
                continue
            if lines and 1.0 <= lines[0].energy_kev < max_kev:
                out.append(name)
    return out


def _instrument(cand: XrfInstrument, detector: Any) -> Any:
    from ..physics.reference import scanner

    return scanner(
        cand.anode,
        cand.kv,
        replace(detector, fwhm_mnka_ev=cand.fwhm_mnka_ev),
        optic=cand.optic,
        scatter_deg=cand.scatter_deg,
    )


def _design(cand: XrfInstrument, detector: Any, families: list[str]) -> np.ndarray:
    """(channels, columns): one net count of each family, then the scatter of each of
    :data:`SCATTER_MATRICES` (each scaled to one count)."""
    from ..physics.materials import compound
    from ..physics.spectra import pure_spectrum, simulate

    inst = _instrument(cand, detector)
    cols = []
    for f in families:
        try:
            cols.append(pure_spectrum(f, instrument=inst))
        except XrayAtlasError:  # a family this tube voltage cannot excite
            continue
    for wt, rho in SCATTER_MATRICES:
        s = simulate(compound({k: 100 * v for k, v in wt.items()}, density=rho), inst, pileup=False, secondary=False)
        cols.append(s.scatter / max(float(s.scatter.sum()), 1e-30))
    return np.stack(cols, axis=1)


def _score(a: np.ndarray, y: np.ndarray, keep: np.ndarray) -> tuple[float, np.ndarray]:
    from scipy.optimize import nnls

    w = 1.0 / np.sqrt(np.maximum(y[keep], 1.0))  # Poisson weights
    coef, _ = nnls(a[keep] * w[:, None], y[keep] * w, maxiter=20 * a.shape[1])
    fitted = a @ coef
    chi2 = float(np.sum(((y[keep] - fitted[keep]) * w) ** 2)) / max(int(keep.sum()) - a.shape[1], 1)
    return chi2, fitted


def fit_xrf_instrument(
    spectrum: np.ndarray,
    *,
    offset_kev: float,
    gain_kev: float,
    anodes: tuple[str, ...] = FIT_ANODES,
    kv_range: tuple[float, float] = (20.0, 60.0),
    progress: Any = None,
) -> XrfFit:
    """Fit the instrument to a sum spectrum (counts per channel, channel ``i`` at
    ``offset_kev + gain_kev * i``).

    Parameters
    ----------
    spectrum : (C,) array
        The scan's sum spectrum (or any spectrum with tens of thousands of counts and more).
    offset_kev, gain_kev : float
        Its energy calibration.
    anodes : tuple of str
        Anodes to try.
    kv_range : (float, float)
        Tube voltages to try (kV); ``(kv, kv)`` when the voltage is known.
    progress : callable, optional
        ``progress(done, total, what)`` after each candidate.

    Returns
    -------
    XrfFit
    """
    from ..physics.detector import Detector

    y = np.asarray(spectrum, dtype=np.float64).ravel()
    if y.ndim != 1 or y.size < 64 or not np.all(np.isfinite(y)) or y.min() < 0:
        raise XrayAtlasError("spectrum: needs at least 64 channels of finite, non-negative counts")
    if y.sum() < 1e4:
        raise XrayAtlasError(f"spectrum: {y.sum():,.0f} counts are too few to fit an instrument (10,000 or more)")
    if not gain_kev > 0:
        raise XrayAtlasError(f"gain_kev={gain_kev} must be > 0 (an energy calibration is needed)")
    unknown = [a for a in anodes if a not in FIT_ANODES]
    if unknown or not anodes:
        raise XrayAtlasError(f"anodes: {(unknown or ['nothing'])[0]!r} is not one of {', '.join(FIT_ANODES)}")
    if not 5.0 <= kv_range[0] <= kv_range[1] <= 100.0:
        raise XrayAtlasError(f"kv_range={tuple(kv_range)} must be (low, high) within 5-100 kV")
    energy = offset_kev + gain_kev * np.arange(y.size)
    detector = Detector(n_channels=y.size, gain_kev=gain_kev, offset_kev=offset_kev)
    # fit from 1 keV up to where the counts end (the tube's voltage, or the detector's range)
    top = float(energy[np.nonzero(y > 0)[0][-1]])
    keep = (energy >= 1.0) & (energy <= top)
    families = _families(min(top, kv_range[1]))
    tried: dict = {}
    steps = [0]

    def score(cand: XrfInstrument) -> float:
        if cand not in tried:
            try:
                tried[cand] = _score(_design(cand, detector, families), y, keep)
            except XrayAtlasError:  # the tube model refuses some anode/voltage pairs (Rh above 50 kV)
                tried[cand] = (np.inf, np.zeros_like(y))
            steps[0] += 1
            if progress is not None:
                progress(steps[0], None, f"{cand.anode} {cand.kv:g} kV")
        return tried[cand][0]

    def angles(best: XrfInstrument) -> XrfInstrument:
        return min((replace(best, scatter_deg=a) for a in FIT_SCATTER_DEG), key=score)

    start = "Rh" if "Rh" in anodes else anodes[0]
    best = XrfInstrument(start, 50.0 if kv_range[0] <= 50 <= kv_range[1] else kv_range[1], True, 145.0, 135.0)
    best = min((replace(best, fwhm_mnka_ev=f) for f in (125.0, 140.0, 155.0, 170.0, 200.0, 240.0)), key=score)
    best = min((replace(best, anode=a, optic=o) for a in anodes for o in (False, True)), key=score)
    best = angles(best)
    kvs = np.arange(kv_range[0], kv_range[1] + 1e-9, 5.0)
    best = min((replace(best, kv=float(k)) for k in kvs), key=score)
    fine = np.arange(max(kv_range[0], best.kv - 4), min(kv_range[1], best.kv + 4) + 1e-9, 1.0)
    best = min((replace(best, kv=float(k)) for k in fine), key=score)
    best = min((replace(best, anode=a, optic=o) for a in anodes for o in (False, True)), key=score)
    best = angles(best)
    f0 = best.fwhm_mnka_ev
    best = min(
        (replace(best, fwhm_mnka_ev=float(f)) for f in np.arange(max(125.0, f0 - 20), min(250.0, f0 + 20) + 1e-9, 5.0)),
        key=score,
    )
    chi2, fitted = tried[best]
    if not np.isfinite(chi2):
        raise XrayAtlasError(
            f"the tube model simulates none of the anodes {', '.join(anodes)} at "
            f"{kv_range[0]:g}-{kv_range[1]:g} kV, so no instrument could be fitted"
        )
    return XrfFit(best, energy[keep], y[keep], fitted[keep], chi2, {c: v[0] for c, v in tried.items()})


# -- the element model for the fitted instrument ----------------------------------------------


@dataclass(frozen=True)
class ElementAdaptationPlan:
    """What :func:`plan_element_adaptation` found: the scan's sum spectrum, the instrument
    fitted to it, and the training run that makes an element model for that instrument (run it
    with :func:`xray_atlas.training.train`, then :func:`finish_element_adaptation`)."""

    cube: Path | None
    spectrum: np.ndarray = field(repr=False)
    energy: np.ndarray = field(repr=False)
    fit: XrfFit = field(repr=False)
    config: Any  # TrainConfig
    base: Any = field(repr=False)  # the base ElementModel
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AdaptedElementModel:
    """What :func:`adapt_elements` made: the model file, the fitted instrument, the fit's
    reduced chi-square, the validation AUC, and the elements the adapted and the base model
    find in the scan's sum spectrum."""

    path: Path
    instrument: XrfInstrument
    reduced_chi2: float
    val_auc: float | None
    found: tuple[str, ...]
    base_found: tuple[str, ...]
    notes: list[str] = field(default_factory=list)


def _open(cube: Any, offset_kev: float | None, gain_kev: float | None) -> tuple[Any, Path | None, bool]:
    """(SpectralCube, its path, whether this call opened it)."""
    from ..cube import SpectralCube
    from ..io import read

    if isinstance(cube, SpectralCube):
        opened, path, mine = cube, (Path(cube.path) if cube.path else None), False
    else:
        path = Path(os.fspath(cube))
        opened, mine = read(path), True
    if offset_kev is not None or gain_kev is not None:
        if offset_kev is None or gain_kev is None:
            raise XrayAtlasError("offset_kev and gain_kev go together")
        opened = opened.with_calibration(offset_kev=offset_kev, gain_kev=gain_kev)
    if not opened.calibrated:
        if mine:
            opened.close()
        raise XrayAtlasError(
            "the cube has no energy calibration, which the instrument fit needs: give one "
            "(--offset-kev and --gain-kev, or the Spectrum inspector's calibration)",
            path=path,
        )
    return opened, path, mine


@dataclass(frozen=True)
class ScanFit:
    """A scan's sum spectrum and the instrument fitted to it (:func:`fit_scan`)."""

    path: Path | None
    spectrum: np.ndarray = field(repr=False)
    energy: np.ndarray = field(repr=False)
    fit: XrfFit = field(repr=False)
    n_pixels: int
    notes: tuple[str, ...] = ()


def _check_tube(anode: str | None, tube_kv: float | None) -> None:
    if anode is not None and anode not in FIT_ANODES:
        raise XrayAtlasError(f"anode={anode!r} is not one of {', '.join(FIT_ANODES)}")
    if tube_kv is not None and not 5.0 <= float(tube_kv) <= 100.0:
        raise XrayAtlasError(f"tube_kv={tube_kv} must lie in 5-100 kV")


def fit_scan(
    cube: Any,
    *,
    offset_kev: float | None = None,
    gain_kev: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    from_file: bool = True,
    progress: Any = None,
) -> ScanFit:
    """Sum ``cube`` and fit the instrument to its sum spectrum, with the anode and tube voltage
    the file's metadata states (unless ``from_file`` is False) or the caller gives (parameters
    as :func:`adapt_elements`). Its notes say what was fitted and what was taken."""
    _check_tube(anode, tube_kv)
    opened, path, mine = _open(cube, offset_kev, gain_kev)
    try:
        if progress is not None:
            progress(0, None, "summing the scan")
        spectrum = opened.spectrum_stats()["sum"]
        energy = np.asarray(opened.energy, dtype=np.float64)
        off, gain = float(opened.energy_offset_kev), float(opened.energy_gain_kev)
        meta = dict(opened.metadata or {}) if from_file else {}
        n_pixels = int(opened.height * opened.width)
    finally:
        if mine:
            opened.close()
    known = []
    if anode is None and meta.get("anode") in FIT_ANODES:
        anode = str(meta["anode"])
        known.append(f"anode {anode}")
    if tube_kv is None and isinstance(meta.get("tube_kv"), (int, float)) and 5.0 <= float(meta["tube_kv"]) <= 100.0:
        tube_kv = float(meta["tube_kv"])
        known.append(f"tube voltage {tube_kv:g} kV")
    fit = fit_xrf_instrument(
        spectrum,
        offset_kev=off,
        gain_kev=gain,
        anodes=(anode,) if anode is not None else FIT_ANODES,
        kv_range=(float(tube_kv),) * 2 if tube_kv is not None else (20.0, 60.0),
        progress=progress,
    )
    inst = fit.instrument
    notes = [
        f"fitted instrument: {inst.anode} tube at {inst.kv:g} kV, {'with' if inst.optic else 'no'} polycapillary "
        f"optic, detector {inst.fwhm_mnka_ev:g} eV FWHM at Mn Ka, scattering angle {inst.scatter_deg:g} degrees "
        f"(reduced chi-square {fit.reduced_chi2:.1f})"
    ]
    if known:
        # behind an optic the voltage is hardly seen in the spectrum (docs/adapt.md): a file that
        # states it knows better than the fit
        notes.append(f"{' and '.join(known)} from the file's metadata, not fitted")
    return ScanFit(path, spectrum, energy, fit, n_pixels, tuple(notes))


def plan_element_adaptation(
    cube: Any,
    *,
    base: str | os.PathLike | None = None,
    n_train: int = 32768,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    offset_kev: float | None = None,
    gain_kev: float | None = None,
    anode: str | None = None,
    tube_kv: float | None = None,
    from_file: bool = True,
    progress: Any = None,
) -> ElementAdaptationPlan:
    """Sum the scan, fit the instrument to it, and set up the training run (parameters as
    :func:`adapt_elements`). About a minute: no training here."""
    from ..probabilities import load_element_model

    if not 1024 <= int(n_train) <= 10**7:
        raise XrayAtlasError(f"n_train={n_train} must lie in 1,024-10,000,000")
    if epochs is not None and not 1 <= int(epochs) <= 1000:
        raise XrayAtlasError(f"epochs={epochs} must lie in 1-1,000")
    _check_tube(anode, tube_kv)
    base_model = load_element_model(base, device="cpu")
    settings = dict(base_model.card.training or {})
    if settings.get("source") != "synthetic-spectra":
        raise XrayAtlasError(
            f"base: {base_model.name} was not trained on synthetic spectra, so there is no recipe to "
            "follow for another instrument; choose an element model that was (the shipped one is)"
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
    path, spectrum, energy, fit, notes = scan.path, scan.spectrum, scan.energy, scan.fit, list(scan.notes)
    data = base_model.card.training_data or {}
    source = {
        **{k: v for k, v in settings.get("source_params", {}).items() if k not in ("instruments", "n_train", "n_val")},
        # the base model's channel grid: the cube is rebinned onto it as for the base model
        **{k: data[k] for k in ("n_channels", "offset_kev", "gain_kev") if k in data},
        **fit.instrument.source_params(),
        "instruments": "around+varied",
        "n_train": int(n_train),
        # the decision thresholds are picked on these: 16,384 settle them within ~0.03
        "n_val": 16384,
    }
    config = fine_tune_config(
        "elements",
        "synthetic-spectra",
        settings,
        init=os.fspath(base) if base is not None else base_model.name,
        epochs=epochs if epochs is not None else ADAPT_EPOCHS,
        seed=seed,
        device=device,
        source_params=source,
    )
    return ElementAdaptationPlan(path, spectrum, energy, fit, config, base_model, notes)


def finish_element_adaptation(
    plan: ElementAdaptationPlan, trained: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False
) -> AdaptedElementModel:
    """Write the model ``trained`` for ``plan`` to ``out`` with the fitted instrument in its
    card, and say which elements it and the base model find in the scan's sum spectrum; the
    user's model list shows it."""
    from .._files import check_destination
    from ..models import load_model, save_model
    from ..models.catalogue import remember
    from ..probabilities import load_element_model, present, spectrum_probabilities

    out = Path(os.fspath(out))
    check_destination(out, inputs=(plan.cube,) if plan.cube else (), overwrite=overwrite, folder_ok=True)
    model, card = load_model(trained)
    card.training_data = {
        **card.training_data,
        "fitted_instrument": {**plan.fit.instrument.as_dict(), "reduced_chi2": plan.fit.reduced_chi2},
        "cube": str(plan.cube.resolve()) if plan.cube else None,
        "base": plan.base.name,
    }
    save_model(out, model, card)
    remember(out)
    adapted = load_element_model(out, device="cpu")
    found = tuple(present(spectrum_probabilities(plan.spectrum, plan.energy, adapted), adapted.thresholds))
    base_found = tuple(present(spectrum_probabilities(plan.spectrum, plan.energy, plan.base), plan.base.thresholds))
    auc = card.metrics.get("auc")
    notes = [
        *plan.notes,
        f"validation AUC {auc:.4f} on spectra of the fitted instrument" if auc is not None else "no validation AUC",
        f"in the scan's sum spectrum: {', '.join(found) or 'nothing'} (base model {plan.base.name}: "
        f"{', '.join(base_found) or 'nothing'})",
    ]
    return AdaptedElementModel(out, plan.fit.instrument, plan.fit.reduced_chi2, auc, found, base_found, notes)


def adapt_elements(
    cube: Any,
    out: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    n_train: int = 32768,
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
) -> AdaptedElementModel:
    """Fit the instrument to the sum spectrum of ``cube`` and train an element-probability
    model for it.

    Parameters
    ----------
    cube : path or SpectralCube
        The user's scan (any format :func:`xray_atlas.io.read` opens, with an energy
        calibration), or a single spectrum file. No labels are needed.
    out : path
        The new model: a folder, or a file ending in ``.safetensors``.
    base : str or path, optional
        The element model whose recipe (architecture, elements, channel grid, training
        settings) is followed (default: the shipped ``elements-default``).
    n_train : int
        Synthetic spectra per epoch (new ones each epoch), drawn for the fitted instrument,
        four neighbours (tube voltage +/- 3 kV, resolution +/- 15 eV) and the base recipe's
        five varied instruments (without them the model lost more than it gained: docs/adapt.md).
    epochs : int, optional
        Epochs of fine-tuning from the base model's weights (default :data:`ADAPT_EPOCHS`).
    overwrite : bool
        Replace ``out`` if it exists (never a file that is not a model).
    offset_kev, gain_kev : float, optional
        An energy calibration replacing the cube's own.
    anode, tube_kv : optional
        The tube's anode and voltage, when known: they are then not fitted. By default they
        are taken from the file's metadata when it holds them (Bruker files state the
        voltage), and fitted otherwise.
    from_file : bool
        Take the anode and voltage from the file's metadata (False fits them whatever the
        file says).
    callbacks, cancel
        As :func:`xray_atlas.training.train` takes them (progress; a threading.Event to stop).

    Returns
    -------
    AdaptedElementModel
    """
    from ._run import adapt_with

    return adapt_with(
        plan_element_adaptation,
        finish_element_adaptation,
        cube,
        out,
        overwrite=overwrite,
        callbacks=callbacks,
        cancel=cancel,
        base=base,
        n_train=n_train,
        epochs=epochs,
        seed=seed,
        device=device,
        offset_kev=offset_kev,
        gain_kev=gain_kev,
        anode=anode,
        tube_kv=tube_kv,
        from_file=from_file,
    )
