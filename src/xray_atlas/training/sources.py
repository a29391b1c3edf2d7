"""Data sources of the training tasks: synthetic spectra from the physics engine, cubes with
reference maps, image folders.

A source is built from keyword parameters that are checked at once against its table
(:attr:`DataSource.PARAMS` of :class:`~xray_atlas.params.Param`: default, range or choices, help), so a bad value is refused
before any work starts; :meth:`DataSource.prepare` then does the slow part (the generator's
tables, reading pixels or images) inside the run. Batches are a function of the run's seed and
the epoch number, which makes a run reproducible and a resumed run identical to an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import XrayAtlasError
from ..io.images import IMAGE_SUFFIXES
from ..params import Param
from ..physics.micrograph import MORPHOLOGIES, micrographs
from ..physics.tube import ANODES
from .loop import Preparing

__all__ = [
    "Param",
    "DataSource",
    "SyntheticSpectra",
    "SyntheticPaintings",
    "CubeMaps",
    "ImageFolder",
    "SyntheticRadiographs",
    "SyntheticMicrographs",
    "SyntheticDiffraction",
    "IMAGE_SUFFIXES",
]


class PreparationCancelled(Exception):
    """A run was cancelled while its data source made the data (see :meth:`DataSource.watch`)."""


class DataSource:
    """Base class: parameter checking and batching; subclasses load data and say what it is."""

    name = ""
    title = ""
    #: Parameters common to the tasks that use this source.
    PARAMS: dict[str, Param] = {}
    #: Parameters that only some tasks have (task -> names).
    TASK_ONLY: dict[str, tuple[str, ...]] = {}

    def __init__(self, task: str, **params: Any):
        self.task = task
        table = self.parameters(task)
        unknown = sorted(set(params) - set(table))
        if unknown:
            raise XrayAtlasError(
                f"data source {self.name!r} has no parameter(s) {', '.join(unknown)}; it has: {', '.join(table)}"
            )
        self.params = {k: p.check(k, params.get(k, p.default)) for k, p in table.items()}
        self._val: tuple[Any, Any] | None = None
        self.check()

    @classmethod
    def parameters(cls, task: str) -> dict[str, Param]:
        """The parameter table for ``task``."""
        other = {n for t, names in cls.TASK_ONLY.items() if t != task for n in names}
        mine = set(cls.TASK_ONLY.get(task, ()))
        return {k: p for k, p in cls.PARAMS.items() if k not in other or k in mine}

    # -- for subclasses -------------------------------------------------------------------
    def check(self) -> None:
        """Cheap checks of the inputs (files exist, layouts are right), before any work."""

    def prepare(self, seed: int) -> None:
        """The slow set-up (tables, reading data), inside the run."""

    _progress: Callable[[Preparing], None] | None = None
    _cancel: Any = None

    def watch(self, *, progress: Callable[[Preparing], None] | None = None, cancel: Any = None) -> None:
        """Report :class:`Preparing` events to ``progress`` while :meth:`prepare` makes the
        data, and stop it with :class:`PreparationCancelled` once ``cancel`` (an Event) is set."""
        self._progress, self._cancel = progress, cancel

    def _made(self, done: int, total: int, what: str) -> None:
        """Called by :meth:`prepare` after each item it makes: report, and stop if cancelled."""
        if self._cancel is not None and self._cancel.is_set():
            raise PreparationCancelled(f"cancelled while preparing data ({done} of {total} {what})")
        if self._progress is not None:
            self._progress(Preparing(done, total, what))

    def _counted(self, items: Iterable[Any], total: int, what: str) -> Iterator[Any]:
        """``items`` as they come, reporting each to :meth:`_made`."""
        for k, item in enumerate(items, start=1):
            self._made(k - 1, total, what)  # a cancel stops before the next item, not after it
            yield item
        self._made(total, total, what)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the model's outputs (lines, elements or classes)."""
        raise NotImplementedError

    def model_inputs(self) -> dict:
        """The model configuration this data fixes (input size, number of outputs)."""
        raise NotImplementedError

    def input_contract(self) -> dict:
        """What inputs a model trained on this source expects (for the model card)."""
        raise NotImplementedError

    def class_weights(self) -> np.ndarray | None:
        """Per-class loss weights (classification sources), or None."""
        return None

    def describe(self) -> dict:
        """The training data, for the model card."""
        return {"source": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}}

    def use_neighbourhood(self, size: int, *, model: str) -> None:
        """Give each input with the mean of its ``size`` x ``size`` pixel block (spatial map
        models); sources of lone spectra refuse."""
        raise XrayAtlasError(
            f"model {model!r} reads {size} x {size} pixel neighbourhoods and the data source "
            f"{self.name!r} has no neighbours to give; use synthetic-paintings"
        )

    def use_cluster_fit(self, *, model: str) -> None:
        """Give each pixel's counts with the per-cluster fit's inputs of its scan
        (:func:`~xray_atlas.clusterfit.iter_cluster_fit_inputs`); sources without scans refuse."""
        raise XrayAtlasError(
            f"model {model!r} reads the per-cluster fit of whole scans and the data source "
            f"{self.name!r} has no scans to fit; use synthetic-paintings"
        )

    def train_batches(self, epoch: int, batch_size: int, seed: int, *, rank: int = 0, world: int = 1) -> Batches:
        """The training batches of ``epoch``, a function of ``seed``. In a data-parallel run
        of ``world`` processes, rank ``rank``'s share of each batch of ``batch_size`` (items
        rank, rank + world, ...; for data drawn on the fly, its own draws); every rank gets
        the same number of batches (:func:`n_batches`)."""
        raise NotImplementedError

    def val_batches(self, batch_size: int) -> list[tuple[Any, Any]]:
        import torch

        if self._val is None:
            raise XrayAtlasError("prepare() the data source before asking for batches")
        x, y = self._val
        return [
            (torch.from_numpy(x[i : i + batch_size]), torch.from_numpy(y[i : i + batch_size]))
            for i in range(0, len(x), batch_size)
        ]


class Batches:
    """A lazy epoch of batches with a length (so the loop knows the steps per epoch)."""

    def __init__(self, n_batches: int, make: Any):
        self.n_batches = n_batches
        self.make = make

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for i in range(self.n_batches):
            yield self.make(i)


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def n_batches(n: int, batch_size: int, world: int = 1) -> int:
    """Batches in an epoch of ``n`` items. With ``world`` ranks, a last batch too small to give
    each rank an item is left out (every rank must take part in every step)."""
    whole = -(-n // batch_size)
    if world > 1 and whole and n - (whole - 1) * batch_size < world:
        whole -= 1
    return whole


def _batch_rng(seed: int, epoch: int, i: int, rank: int, world: int) -> np.random.Generator:
    """The generator of batch ``i`` (of this rank's share of it in a data-parallel run: each
    rank draws its own; one process draws as it always has)."""
    return np.random.default_rng([seed, epoch, i] if world == 1 else [seed, epoch, i, rank])


def _in_memory_batches(
    x: np.ndarray,
    y: np.ndarray,
    epoch: int,
    batch_size: int,
    seed: int,
    augment: Any = None,
    *,
    rank: int = 0,
    world: int = 1,
) -> Batches:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(x))  # the same on every rank: together they take each batch once

    def make(i: int) -> tuple[Any, Any]:
        idx = np.sort(order[i * batch_size : (i + 1) * batch_size])[rank::world]
        xb = x[idx].astype(np.float32, copy=False)
        if augment is not None:
            xb = augment(xb, _batch_rng(seed, epoch, i, rank, world))
        return _tensors(xb, y[idx])

    return Batches(n_batches(len(x), batch_size, world), make)


# -- synthetic spectra ----------------------------------------------------------------------
#: Mass thickness (g/cm^2) of the thinnest self-absorbing layer the ``thickness`` option draws.
THINNEST_LAYER = 1e-3


class SyntheticSpectra(DataSource):
    """Random spectra drawn on the fly by :class:`~xray_atlas.physics.generator.SpectrumGenerator`
    for an instrument described by the parameters: every epoch sees new spectra."""

    name = "synthetic-spectra"
    title = "Synthetic spectra (physics engine)"
    PARAMS = {
        "anode": Param("Rh", "tube anode", choices=ANODES, kind="choice"),
        "tube_kv": Param(50.0, "tube voltage (kV)", 5.0, 100.0),
        "fwhm_mnka_ev": Param(145.0, "detector FWHM at Mn Ka (eV)", 100.0, 400.0),
        "n_channels": Param(4096, "detector channels", 256, 16384),
        "offset_kev": Param(0.0, "energy of channel 0 (keV)", -2.0, 2.0),
        "gain_kev": Param(0.01, "keV per channel", 0.001, 0.1),
        "elements": Param(
            None,
            "elements that may appear (comma-separated); default: the generator's 26 for maps, 29 for element presence",
            kind="text",
        ),
        "optic": Param(False, "a polycapillary optic (the M6's band pass) shapes the beam", kind="bool"),
        "scatter_deg": Param(
            90.0,
            "angle between beam and detector (degrees): 90 is the 45/45 geometry; wider ones keep the "
            "beam normal to the surface, as macro-XRF scanners do (the M6: about 150)",
            90.0,
            179.0,
        ),
        "instruments": Param(
            "one",
            "one instrument (anode, tube_kv, fwhm_mnka_ev, optic), five varied ones "
            "(Rh 50/40 kV, W, Ag, monochromatic Mo 17.5 keV), 'around': the one and four "
            "neighbours (tube_kv +/- 3 kV, fwhm_mnka_ev +/- 15 eV), for a fitted instrument, or "
            "'around+varied': those and the five varied ones",
            choices=("one", "varied", "around", "around+varied"),
            kind="choice",
        ),
        "cutoff_share": Param(0.0, "augmentation: share of spectra that end at a random 12-30 keV", 0.0, 1.0),
        "pair_share": Param(
            0.0,
            "augmentation: share of spectra that also hold two elements whose main lines "
            "overlap (As/Pb, S/Pb, Ti/V, Cr/Mn...)",
            0.0,
            1.0,
        ),
        "unlisted": Param(
            None,
            "elements whose lines may appear but which the model does not report "
            "(comma-separated), so that it learns to leave them alone",
            kind="text",
        ),
        "unlisted_share": Param(
            0.0, "augmentation: share of spectra that also hold one or two unlisted elements", 0.0, 1.0
        ),
        "burial": Param(
            0.0,
            "augmentation: extra absorption of buried elements (30 % of them), up to this strength at 3 keV",
            0.0,
            100.0,
        ),
        "thickness": Param(
            0.0,
            "augmentation: self-absorption; each spectrum from a layer of its main matrix, "
            "1 mg/cm^2 up to this mass thickness (g/cm^2; 0 = thin samples)",
            0.0,
            10.0,
        ),
        "lines": Param(
            "S-K, K-K, Ca-K, Cr-K, Mn-K, Fe-K, Cu-K, Zn-K, Sr-K, Au-L, Hg-L, Pb-L",
            "line families to map (comma-separated)",
            kind="text",
        ),
        "counts_min": Param(1000.0, "fewest expected counts per spectrum", 10.0, 1e9),
        "counts_max": Param(20000.0, "most expected counts per spectrum", 10.0, 1e10),
        "max_elements": Param(9, "most elements per spectrum (at most all of them)", 1, 40),
        "n_train": Param(8192, "training spectra per epoch (new ones each epoch)", 16, 10**8),
        "n_val": Param(
            1024,
            "validation spectra (fixed); element presence picks its decision thresholds on "
            "them, which need tens of thousands to settle",
            16,
            10**6,
        ),
        "shift_kev": Param(0.05, "augmentation: calibration shift, +/- keV", 0.0, 0.5),
        "gain_jitter": Param(0.0, "augmentation: relative gain error, +/-", 0.0, 0.05),
        "pileup": Param(0.01, "augmentation: largest pile-up fraction", 0.0, 0.2),
        "escape": Param(True, "Si escape peaks", kind="bool"),
    }
    TASK_ONLY = {
        "maps": ("lines",),
        "elements": ("instruments", "cutoff_share", "burial", "pair_share", "thickness", "unlisted", "unlisted_share"),
    }

    def check(self) -> None:
        from ..physics.generator import DEFAULT_ELEMENTS, PROBABILITY_ELEMENTS
        from ..physics.lines import atomic_number, parse_line_family, symbol

        p = self.params
        if p["counts_min"] > p["counts_max"]:
            raise XrayAtlasError(f"counts_min={p['counts_min']:g} is above counts_max={p['counts_max']:g}")
        if 0 < p.get("thickness", 0.0) < THINNEST_LAYER:
            raise XrayAtlasError(
                f"thickness={p['thickness']:g} must be 0 (thin samples) or at least "
                f"{THINNEST_LAYER:g} g/cm^2, the thinnest layer drawn"
            )
        top = p["offset_kev"] + p["gain_kev"] * p["n_channels"]
        if top < 5.0:
            raise XrayAtlasError(
                f"the energy axis ends at {top:.2f} keV (offset_kev + gain_kev * n_channels); "
                "it must reach at least 5 keV"
            )
        default = DEFAULT_ELEMENTS if self.task == "maps" else PROBABILITY_ELEMENTS
        elements = [symbol(atomic_number(e, parameter="elements")) for e in (p["elements"] or default)]
        self.lines: tuple[str, ...] = ()
        if self.task == "maps":
            if not p["lines"]:
                raise XrayAtlasError("lines: give at least one line family, e.g. Fe-K")
            lines = []
            for text in p["lines"]:
                el, fam = parse_line_family(text, parameter="lines")
                lines.append(f"{el}-{fam}")
                if el not in elements:
                    elements.append(el)  # a mapped line's element must be able to appear
            self.lines = tuple(lines)
        self.elements = tuple(elements)
        unlisted = [symbol(atomic_number(e, parameter="unlisted")) for e in p.get("unlisted") or ()]
        both = sorted(set(unlisted) & set(elements), key=unlisted.index)
        if both:
            raise XrayAtlasError(f"unlisted: {', '.join(both)} also among the elements")
        self.unlisted = tuple(dict.fromkeys(unlisted))

    def _config(self) -> Any:
        from ..physics.generator import GeneratorConfig

        p = self.params
        inst = self._instrument(p["tube_kv"], p["fwhm_mnka_ev"])
        return GeneratorConfig(
            elements=self.elements,
            n_elements=(1, min(p["max_elements"], len(self.elements))),
            counts=(p["counts_min"], p["counts_max"]),
            shift_kev=p["shift_kev"],
            gain_jitter=p["gain_jitter"],
            pileup=p["pileup"],
            escape=p["escape"],
            instrument=inst,
            cutoff_share=p.get("cutoff_share", 0.0),
            burial=p.get("burial", 0.0),
            pair_share=p.get("pair_share", 0.0),
            unlisted=self.unlisted,
            unlisted_share=p.get("unlisted_share", 0.0),
            thickness=(THINNEST_LAYER, p["thickness"]) if p.get("thickness", 0.0) > 0 else None,
        )

    def _instrument(self, kv: float, fwhm_ev: float) -> Any:
        from ..physics.detector import Detector
        from ..physics.reference import scanner

        p = self.params
        detector = Detector(
            n_channels=p["n_channels"], gain_kev=p["gain_kev"], offset_kev=p["offset_kev"], fwhm_mnka_ev=fwhm_ev
        )
        return scanner(p["anode"], kv, detector, optic=p["optic"], scatter_deg=p["scatter_deg"])

    def prepare(self, seed: int) -> None:
        from ..physics.generator import MixedGenerator, SpectrumGenerator, varied_instruments

        config = self._config()
        p = self.params
        try:
            config.instrument.excitation()
        except XrayAtlasError as err:  # the tube model refuses some anode/voltage pairs
            raise XrayAtlasError(f"tube_kv={p['tube_kv']:g}: {err}") from None
        if p.get("instruments") == "varied":
            self.generator = MixedGenerator(config, varied_instruments(config.instrument.detector))
        elif p.get("instruments") in ("around", "around+varied"):
            # a fitted instrument is known to a few kV and eV (docs/adapt.md): train across that
            kv, fwhm = p["tube_kv"], p["fwhm_mnka_ev"]
            near = [(kv, fwhm), (kv - 3, fwhm), (kv + 3, fwhm), (kv, fwhm - 15), (kv, fwhm + 15)]
            insts = tuple(
                i for i in (self._instrument(k, f) for k, f in near if k >= 5.0 and f >= 100.0) if _simulated(i)
            )
            if p["instruments"] == "around+varied":
                insts += varied_instruments(config.instrument.detector)
            self.generator = MixedGenerator(config, insts)
        else:
            self.generator = SpectrumGenerator(config)
        if self.task == "maps":
            missing = [ln for ln in self.lines if ln not in self.generator.families]
            if missing:
                raise XrayAtlasError(
                    f"lines: {', '.join(missing)} give no peaks in this energy range "
                    f"(families available: {', '.join(self.generator.families)})"
                )
            self._cols = [self.generator.families.index(ln) for ln in self.lines]
        self._val = self._draw(self.params["n_val"], np.random.default_rng([seed, 2**31 - 1]))

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        b = self.generator(n, rng)
        # element presence = above the detection limit: an element drawn at a few counts under
        # a large background is not in the spectrum for any method (physics/generator.py)
        y = b.net[:, self._cols] if self.task == "maps" else b.detectable.astype(np.float32)
        return b.spectra, np.ascontiguousarray(y, dtype=np.float32)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.lines if self.task == "maps" else self.elements

    def model_inputs(self) -> dict:
        p = self.params
        return {
            "n_channels": p["n_channels"],
            "n_outputs": len(self.outputs),
            "lines": self.lines,
            "offset_kev": p["offset_kev"],
            "gain_kev": p["gain_kev"],
            "fwhm_mnka_ev": p["fwhm_mnka_ev"],
            "anode": p["anode"],
            "tube_kv": p["tube_kv"],
            "polycapillary": bool(p.get("optic", False)),
        }

    def input_contract(self) -> dict:
        p = self.params
        return {
            "n_channels": p["n_channels"],
            "energy_offset_kev": p["offset_kev"],
            "energy_gain_kev": p["gain_kev"],
            "counts": [p["counts_min"], p["counts_max"]],
        }

    def describe(self) -> dict:
        d = super().describe()
        d["elements"] = list(self.elements)
        if self.task == "elements":
            d["unlisted"] = list(self.unlisted)
        return d

    def train_batches(self, epoch: int, batch_size: int, seed: int, *, rank: int = 0, world: int = 1) -> Batches:
        n = self.params["n_train"]

        def make(i: int) -> tuple[Any, Any]:
            size = min(batch_size, n - i * batch_size)
            size = size // world + (rank < size % world)  # this rank's share, drawn by it alone
            return _tensors(*self._draw(size, _batch_rng(seed, epoch, i, rank, world)))

        return Batches(n_batches(n, batch_size, world), make)


def _simulated(instrument: Any) -> bool:
    """Whether the physics engine's tube model (SpekPy) simulates this anode at this voltage
    (Rh, for one, only up to 50 kV)."""
    try:
        instrument.excitation()
    except XrayAtlasError:
        return False
    return True


# -- synthetic paintings ---------------------------------------------------------------------
_DEFAULT_LINES = "S-K, K-K, Ca-K, Cr-K, Mn-K, Fe-K, Cu-K, Zn-K, Sr-K, Au-L, Hg-L, Pb-L"


def _compact(a: np.ndarray) -> np.ndarray:
    """``a`` as float16 (half the memory) when every value fits in it, else float32."""
    return a.astype(np.float16) if float(np.max(np.abs(a), initial=0.0)) < 65000.0 else a.astype(np.float32)


class SyntheticPaintings(DataSource):
    """Pixels of synthetic paintings made for the run: blobs of random pigment stacks
    (:func:`~xray_atlas.physics.painting.random_layout`) scanned by a macro-XRF scanner (by
    default the M6-like one; another for a fitted instrument, :mod:`xray_atlas.adapt`) at
    random dwell times, with their true net-count maps. The validation painting has a layout
    of its own (leave-one-painting-out)."""

    name = "synthetic-paintings"
    title = "Synthetic paintings (physics engine)"
    PARAMS = {
        "lines": Param(_DEFAULT_LINES, "line families to map (comma-separated)", kind="text"),
        "n_paintings": Param(6, "training paintings (each a new random layout)", 1, 1000),
        "height": Param(48, "painting height (pixels)", 8, 1024),
        "width": Param(64, "painting width (pixels)", 8, 1024),
        "stride": Param(1, "take every n-th pixel in both directions", 1, 100),
        "val_paintings": Param(1, "validation paintings (layouts of their own, all pixels)", 1, 100),
        "dwell_ms_min": Param(5.0, "shortest dwell time per pixel (ms)", 0.5, 1000.0),
        "dwell_ms_max": Param(40.0, "longest dwell time per pixel (ms)", 0.5, 1000.0),
        "n_channels": Param(4096, "detector channels (10 eV each at 4096)", 1024, 8192),
        "anode": Param("Rh", "tube anode of the scanner", choices=ANODES, kind="choice"),
        "tube_kv": Param(50.0, "tube voltage (kV)", 5.0, 100.0),
        "optic": Param(True, "a polycapillary optic (the M6's band pass) shapes the beam", kind="bool"),
        "scatter_deg": Param(
            90.0,
            "angle between beam and detector (degrees): 90 is the 45/45 geometry; wider ones keep the "
            "beam normal to the surface, as macro-XRF scanners do",
            90.0,
            179.0,
        ),
        "fwhm_mnka_ev": Param(145.0, "detector FWHM at Mn Ka (eV), before the jitter", 100.0, 400.0),
        "fwhm_jitter_ev": Param(
            15.0, "augmentation: detector FWHM at Mn Ka drawn in fwhm_mnka_ev +/- this (eV) per painting", 0.0, 60.0
        ),
        "shift_kev": Param(0.02, "augmentation: energy offset drawn in +/- this (keV) per painting", 0.0, 0.2),
        "wash_share": Param(
            0.0,
            "share of regions that are thin washes on the ground (traces on a ground "
            "spectrum); with it, a third of the paintings have a bone-black (apatite) ground",
            0.0,
            1.0,
        ),
        "sample_share": Param(
            0.0,
            "share of regions that are thick random samples (bone, stone, plaster or "
            "soil matrices with 1-8 random elements at 0.01-15 %)",
            0.0,
            1.0,
        ),
    }

    def check(self) -> None:
        from ..physics.lines import parse_line_family

        p = self.params
        if p["dwell_ms_min"] > p["dwell_ms_max"]:
            raise XrayAtlasError(f"dwell_ms_min={p['dwell_ms_min']:g} is above dwell_ms_max={p['dwell_ms_max']:g}")
        if not p["lines"]:
            raise XrayAtlasError("lines: give at least one line family, e.g. Fe-K")
        self.lines = tuple("-".join(parse_line_family(t, parameter="lines")) for t in p["lines"])

    def paintings(self, seed: int, n: int, *, first: int = 0):
        """``n`` paintings of this source (deterministic in ``seed``)."""
        from ..physics.painting import paint, painting_instrument, random_layout

        p = self.params
        rng = np.random.default_rng([seed, 7])
        gains = 40.96 / p["n_channels"]
        for k in range(first, first + n):
            dwell = float(np.exp(rng.uniform(np.log(p["dwell_ms_min"]), np.log(p["dwell_ms_max"]))))
            fwhm = p["fwhm_mnka_ev"] + rng.uniform(-1, 1) * p["fwhm_jitter_ev"]
            offset = rng.uniform(-1, 1) * p["shift_kev"]
            inst = painting_instrument(
                dwell_ms=dwell,
                n_channels=p["n_channels"],
                gain_kev=gains,
                offset_kev=offset,
                fwhm_mnka_ev=fwhm,
                anode=p["anode"],
                tube_kv=p["tube_kv"],
                optic=p["optic"],
                scatter_deg=p["scatter_deg"],
            )
            reg, regions = random_layout(
                p["height"],
                p["width"],
                seed=seed * 1000 + k,
                wash_share=p["wash_share"],
                sample_share=p["sample_share"],
            )
            grounds = (
                ("chalk ground", "gypsum ground", "bone black")
                if p["wash_share"]
                else ("chalk ground", "gypsum ground")
            )
            ground = grounds[k % len(grounds)]
            yield paint(reg, regions, instrument=inst, seed=seed * 1000 + k, ground=ground)

    neighbourhood = 0  # > 0: each pixel comes with the mean spectrum of its block (spatial models)
    cluster_fit = False  # each pixel comes with the per-cluster fit's inputs (fit-mlp)

    def use_neighbourhood(self, size: int, *, model: str) -> None:
        self.neighbourhood = size

    def use_cluster_fit(self, *, model: str) -> None:
        self.cluster_fit = True

    def _instrument(self) -> dict:
        """The scanner as the prior and the per-cluster fit describe it (nominal resolution)."""
        p = self.params
        return {
            "fwhm_mnka_ev": p["fwhm_mnka_ev"],
            "anode": p["anode"],
            "tube_kv": p["tube_kv"],
            "polycapillary": p["optic"],
        }

    def _fit_inputs(self, pt) -> np.ndarray:
        """(H, W, 2K) per-cluster fit inputs of a painting, fitted as a scan of an unknown
        detector would be (its live time only), with the model's instrument (the nominal
        resolution): inference fits a cube with the same (inference.MapModel.instrument)."""
        from ..clusterfit import iter_cluster_fit_inputs
        from ..cube import SpectralCube, run_to_end

        cube = SpectralCube(
            pt.counts,
            offset_kev=pt.energy_offset_kev,
            gain_kev=pt.energy_gain_kev,
            metadata={"live_time_s": pt.attrs["live_time_s"]},
        )
        fitted = iter_cluster_fit_inputs(cube, instrument=self._instrument())
        return run_to_end(fitted).reshape(*pt.counts.shape[:2], -1)

    def _pixels(self, paintings) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) counts, or with a neighbourhood (N, 2, C) counts and block means (float16:
        half the memory, 3 significant digits; float32 for a painting whose values float16
        cannot hold, above 65,504: long dwell times), or with the cluster fit (N, C + 2K)
        counts and the fit's inputs (the same), and (N, lines) true net counts."""
        from ..models.spectral import neighbourhood_mean

        s, size = self.params["stride"], self.neighbourhood
        xs, ys = [], []
        for pt in paintings:
            own = pt.counts[::s, ::s].reshape(-1, pt.counts.shape[2])
            if size:
                near = neighbourhood_mean(pt.counts, size)[::s, ::s].reshape(own.shape)
                own = _compact(np.stack([own, near], axis=1))
            elif self.cluster_fit:
                fit = self._fit_inputs(pt)[::s, ::s].reshape(own.shape[0], -1)
                own = _compact(np.concatenate([own.astype(np.float32), fit.astype(np.float32)], axis=1))
            xs.append(own)
            zero = np.zeros(pt.counts.shape[:2], np.float32)
            ys.append(np.stack([pt.maps.get(ln, zero)[::s, ::s].ravel() for ln in self.lines], axis=1))
        return np.concatenate(xs), np.concatenate(ys).astype(np.float32)

    def prepare(self, seed: int) -> None:
        n = self.params["n_paintings"]
        self._totals = None
        self._train = self._pixels(self._counted(self.paintings(seed, n), n, "paintings"))
        x, y = self._pixels(self.paintings(seed, self.params["val_paintings"], first=n))  # layouts of their own
        self._val = (x.astype(np.float32), y)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.lines

    def model_inputs(self) -> dict:
        from ..models.prior import INSTRUMENT_DEFAULTS

        return {
            **INSTRUMENT_DEFAULTS,
            **self._instrument(),
            "n_channels": self.params["n_channels"],
            "n_outputs": len(self.lines),
            "lines": self.lines,
            "gain_kev": 40.96 / self.params["n_channels"],
        }

    def input_contract(self) -> dict:
        return {
            "n_channels": self.params["n_channels"],
            "energy_offset_kev": 0.0,
            "energy_gain_kev": 40.96 / self.params["n_channels"],
            "total_counts": _total_counts(self),
        }

    def train_batches(self, epoch: int, batch_size: int, seed: int, *, rank: int = 0, world: int = 1) -> Batches:
        return _in_memory_batches(*self._train, epoch, batch_size, seed, rank=rank, world=world)


# -- cubes with reference maps -----------------------------------------------------------------
class CubeMaps(DataSource):
    """Pixels of cubes with reference maps (``/maps``): strided sampling, a random
    train/validation split."""

    name = "cubes"
    title = "Cubes with reference maps"
    PARAMS = {
        "cubes": Param((), "cube files with /maps (comma-separated)", kind="paths"),
        "lines": Param((), "line families to learn (comma-separated); default: the maps all cubes have", kind="text"),
        "stride": Param(10, "take every n-th pixel in both directions", 1, 1000),
        "val_fraction": Param(0.2, "share of the sampled pixels kept for validation", 0.05, 0.5),
        "validation": Param(
            "pixels",
            "validate on a random share of the pixels, or on the last cube (leave-one-cube-out)",
            choices=("pixels", "last cube"),
            kind="choice",
        ),
    }

    def check(self) -> None:
        from ..io import read

        paths = self.params["cubes"]
        if not paths:
            raise XrayAtlasError("cubes: give at least one cube file with reference maps (/maps)")
        if self.params["validation"] == "last cube" and len(paths) < 2:
            raise XrayAtlasError("validation='last cube' needs at least two cubes")
        common: set | None = None
        channels = set()
        for path in paths:
            with read(path) as cube:
                if not cube.reference_maps:
                    raise XrayAtlasError("this cube has no reference maps (/maps); the maps task needs them", path=path)
                common = set(cube.reference_maps) if common is None else common & set(cube.reference_maps)
                channels.add(cube.n_channels)
        if len(channels) > 1:
            raise XrayAtlasError(f"cubes: the cubes have different channel counts {sorted(channels)}")
        lines = self.params["lines"] or tuple(sorted(common or ()))
        missing = [ln for ln in lines if ln not in (common or set())]
        if missing or not lines:
            raise XrayAtlasError(
                f"lines: {', '.join(missing) or 'none'} not among the reference maps every cube has "
                f"({', '.join(sorted(common or ())) or 'none'})"
            )
        self.lines = tuple(lines)
        self.n_channels = channels.pop()

    def prepare(self, seed: int) -> None:
        from ..io import read

        s = self.params["stride"]
        xs, ys = [], []
        self.calibration, self._totals = None, None
        cubes = self.params["cubes"]
        for path in self._counted(cubes, len(cubes), "cubes"):
            with read(path) as cube:
                # every pixel is read and checked (NaN, inf, negative counts: file, pixel and
                # channel named, as maps and probabilities do), even those the stride skips
                picked = [block[(-rows.start) % s :: s, ::s] for rows, block in cube.iter_tiles()]
                xs.append(np.concatenate(picked).reshape(-1, cube.n_channels))
                ys.append(
                    np.stack(
                        [np.asarray(cube.reference_maps[ln][::s, ::s], np.float32).ravel() for ln in self.lines], axis=1
                    )
                )
                if self.calibration is None and cube.calibrated:
                    self.calibration = (float(cube.energy[0]), float(cube.energy[1] - cube.energy[0]))
                    self.metadata = dict(cube.metadata)
        if self.params["validation"] == "last cube":
            self._val = (xs[-1].astype(np.float32), ys[-1])
            self._train = (np.concatenate(xs[:-1]), np.concatenate(ys[:-1]))
            return
        x, y = np.concatenate(xs), np.concatenate(ys)
        order = np.random.default_rng(seed).permutation(len(x))
        n_val = max(int(round(len(x) * self.params["val_fraction"])), 1)
        if len(x) - n_val < 1:
            raise XrayAtlasError(f"stride={s} leaves only {len(x)} pixels; use a smaller stride")
        self._val = (x[order[:n_val]].astype(np.float32), y[order[:n_val]])
        self._train = (x[order[n_val:]], y[order[n_val:]])

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.lines

    def model_inputs(self) -> dict:
        cal = getattr(self, "calibration", None) or (0.0, 0.01)
        meta = getattr(self, "metadata", {})
        from ..models.prior import instrument_from_metadata

        return {
            "n_channels": self.n_channels,
            "n_outputs": len(self.lines),
            "lines": self.lines,
            "offset_kev": cal[0],
            "gain_kev": cal[1],
            **instrument_from_metadata(meta),
        }

    def input_contract(self) -> dict:
        cal = getattr(self, "calibration", None)
        return {
            "n_channels": self.n_channels,
            "energy_offset_kev": cal[0] if cal else None,
            "energy_gain_kev": cal[1] if cal else None,
            "total_counts": _total_counts(self),
        }

    def train_batches(self, epoch: int, batch_size: int, seed: int, *, rank: int = 0, world: int = 1) -> Batches:
        return _in_memory_batches(*self._train, epoch, batch_size, seed, rank=rank, world=world)


# -- image folders ---------------------------------------------------------------------------
def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class _ImageSource(DataSource):
    """Shared by the image sources: in-memory (N, 1, S, S) images prepared like the
    classifier's inputs (:func:`xray_atlas.classify.prepare_image`), flips and quarter turns
    as augmentation, and class-balanced loss weights (Cui et al., CVPR 2019)."""

    COMMON = {
        "size": Param(64, "image side after resizing (pixels)", 16, 1024),
        "augment": Param(True, "random flips and quarter turns", kind="bool"),
        "class_balance": Param(
            0.0,
            "class-balanced loss weights by effective number of samples: beta (0 = off; 0.99-0.9999 typical)",
            0.0,
            0.99999,
        ),
    }
    normalisation = "standard"
    classes: tuple[str, ...] = ()

    def _set(self, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]) -> None:
        self._train, self._val = train, val

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.classes

    def model_inputs(self) -> dict:
        return {"image_size": self.params["size"], "n_outputs": len(self.classes)}

    def input_contract(self) -> dict:
        out = {"image_size": self.params["size"], "channels": 1, "normalisation": self.normalisation}
        if getattr(self, "_train", None) is not None and len(self._train[0]) >= 2:
            if getattr(self, "_domain", None) is None:  # once: the card is written at every best epoch
                from ..classify import domain_ranges

                self._domain = domain_ranges(self._train[0])
            # ranges of simple statistics of the prepared training images: classification says
            # when an image is unlike all of them (classify.check_domain)
            out["domain"] = self._domain
        return out

    def class_weights(self) -> np.ndarray | None:
        beta = self.params["class_balance"]
        if not beta:
            return None
        counts = np.bincount(self._train[1], minlength=len(self.classes)).astype(np.float64)
        w = (1.0 - beta) / (1.0 - beta ** np.maximum(counts, 1.0))  # 1 / effective number of samples
        return (w / w.sum() * len(w)).astype(np.float32)

    def train_batches(self, epoch: int, batch_size: int, seed: int, *, rank: int = 0, world: int = 1) -> Batches:
        return _in_memory_batches(
            *self._train,
            epoch,
            batch_size,
            seed,
            augment=_flip_turn if self.params["augment"] else None,
            rank=rank,
            world=world,
        )


class ImageFolder(_ImageSource):
    """Images in the layout ``root/{train,val,test}/<class>/<image>`` (docs/dev/contracts.md section 6),
    resized to ``size`` x ``size`` and normalised per image (``standard``: zero mean, unit std;
    ``open-beam``: -ln(I / I0) of radiographs, whose absolute scale is unknown)."""

    name = "image-folder"
    title = "Image folder (train/val/<class>/...)"
    PARAMS = {
        "root": Param("", "dataset folder holding train/<class>/ (and val/<class>/)", kind="path"),
        **_ImageSource.COMMON,
        "normalisation": Param(
            "standard",
            "per-image scaling: standard, or open-beam for radiographs",
            choices=("standard", "open-beam"),
            kind="choice",
        ),
        "val_fraction": Param(0.2, "share of train/ kept for validation when there is no val/", 0.05, 0.5),
    }

    def check(self) -> None:
        root = Path(self.params["root"]).expanduser()
        hint = "expected train/<class>/<image> (and optionally val/<class>/<image>)"
        if not self.params["root"] or not root.is_dir():
            raise XrayAtlasError(f"not a folder; {hint}", path=root)
        train = root / "train"
        classes = sorted(d.name for d in train.iterdir() if d.is_dir()) if train.is_dir() else []
        if len(classes) < 2:
            raise XrayAtlasError(f"not an image dataset: {hint}, with at least two classes", path=root)
        empty = [c for c in classes if not _image_files(train / c)]
        if empty:
            raise XrayAtlasError(f"not an image dataset: no images in train/{empty[0]} ({hint})", path=root)
        self.root, self.classes = root, tuple(classes)
        self.normalisation = self.params["normalisation"]

    def prepare(self, seed: int) -> None:
        from ..io.images import prepare_image, read_image

        size = self.params["size"]

        def load(split: str) -> tuple[np.ndarray, np.ndarray]:
            xs, ys = [], []
            for k, c in enumerate(self.classes):
                folder = self.root / split / c
                for f in _image_files(folder) if folder.is_dir() else []:
                    try:
                        xs.append(prepare_image(read_image(f), size=size, normalisation=self.normalisation))
                    except XrayAtlasError as err:
                        raise XrayAtlasError(str(err), path=f) from None
                    ys.append(k)
            return (np.stack(xs)[:, None] if xs else np.zeros((0, 1, size, size), np.float32), np.asarray(ys, np.int64))

        x, y = load("train")
        xv, yv = load("val")
        if len(xv) == 0:
            self._set(*_split(x, y, np.random.default_rng(seed), self.params["val_fraction"]))
        else:
            self._set((x, y), (xv, yv))


class SyntheticRadiographs(_ImageSource):
    """Radiographs of Al 1050 and Al 2017 plates and wedges from the physics engine
    (:mod:`xray_atlas.physics.radiograph`), 20 % kept for validation. The attenuation levels
    that tell the alloys apart depend on the beam, so give your instrument's voltage,
    filtration and scintillator."""

    name = "synthetic-radiographs"
    title = "Synthetic radiographs (Al 1050 / Al 2017)"
    normalisation = "open-beam"
    PARAMS = {
        "n_images": Param(2000, "radiographs to simulate (20 % for validation)", 10, 10**6),
        "kind": Param("both", "object: plate, wedge or both", choices=("plate", "wedge", "both"), kind="choice"),
        "frame": Param(128, "simulated image side before resizing (pixels)", 32, 2048),
        "al2017_share": Param(0.5, "share of Al 2017 images (class imbalance)", 0.01, 0.99),
        "kv": Param(50.0, "tube voltage of your instrument (kV, W anode)", 20.0, 150.0),
        "filter_al_mm": Param(0.5, "aluminium filtration of the beam (mm)", 0.0, 10.0),
        "scintillator_um": Param(150.0, "CsI scintillator thickness (um)", 10.0, 2000.0),
        "kv_spread": Param(0.0, "per image, vary the voltage by up to +- this (kV)", 0.0, 20.0),
        "filter_spread_mm": Param(0.0, "per image, vary the filtration by up to +- this (mm Al)", 0.0, 5.0),
        "photons_low": Param(2000.0, "open-beam photons per pixel (quantum noise), lowest", 1.0, 1e9),
        "photons_high": Param(50000.0, "open-beam photons per pixel, highest (log-uniform between)", 1.0, 1e9),
        "blur_low_px": Param(0.3, "detector blur, Gaussian sigma in pixels of the frame, lowest", 0.0, 100.0),
        "blur_high_px": Param(1.2, "detector blur, highest (uniform between)", 0.0, 100.0),
        **_ImageSource.COMMON,
    }

    def check(self) -> None:
        from ..physics.radiograph import ALLOYS

        p = self.params
        for low, high in (("photons_low", "photons_high"), ("blur_low_px", "blur_high_px")):
            if p[low] > p[high]:
                raise XrayAtlasError(f"{low}={p[low]:g} must not exceed {high}={p[high]:g}")
        self.classes = ALLOYS

    def prepare(self, seed: int) -> None:
        from ..io.images import prepare_image
        from ..physics.radiograph import RadiographConfig, radiographs

        p = self.params
        cfg = RadiographConfig(
            size=p["frame"],
            kind=p["kind"],
            kv=p["kv"],
            scintillator_um=p["scintillator_um"],
            filters=(("Al", p["filter_al_mm"]),),
            kv_spread=p["kv_spread"],
            filter_spread_mm=p["filter_spread_mm"],
            photons=(p["photons_low"], p["photons_high"]),
            blur_px=(p["blur_low_px"], p["blur_high_px"]),
        )
        imgs, y, _ = radiographs(
            p["n_images"],
            config=cfg,
            seed=seed,
            balance=(1 - p["al2017_share"], p["al2017_share"]),
            progress=lambda done, total: self._made(done, total, "radiographs"),
        )
        x = np.stack([prepare_image(im, size=p["size"], normalisation=self.normalisation) for im in imgs])[:, None]
        self._set(*_split(x, y, np.random.default_rng([seed, 1])))


class SyntheticMicrographs(_ImageSource):
    """Micrographs of nanoparticles in eight morphology classes
    (:mod:`xray_atlas.physics.micrograph`), 20 % kept for validation."""

    name = "synthetic-micrographs"
    title = "Synthetic micrographs (8 particle morphologies)"
    PARAMS = {
        "n_images": Param(1600, "micrographs to generate (20 % for validation)", 16, 10**6),
        "frame": Param(128, "generated image side before resizing (pixels)", 32, 2048),
        "minority": Param(
            "none", "one class made rare (class imbalance), or none", choices=("none", *MORPHOLOGIES), kind="choice"
        ),
        "minority_ratio": Param(0.05, "images of the rare class per image of each other class", 0.001, 1.0),
        **_ImageSource.COMMON,
    }

    def check(self) -> None:
        self.classes = MORPHOLOGIES

    def prepare(self, seed: int) -> None:
        from ..io.images import prepare_image

        p = self.params
        balance = None
        if p["minority"] != "none":
            balance = np.ones(len(MORPHOLOGIES))
            balance[MORPHOLOGIES.index(p["minority"])] = p["minority_ratio"]
        imgs, y = micrographs(
            p["n_images"],
            size=p["frame"],
            seed=seed,
            balance=balance,
            progress=lambda done, total: self._made(done, total, "micrographs"),
        )
        x = np.stack([prepare_image(im, size=p["size"]) for im in imgs])[:, None]
        self._set(*_split(x, y, np.random.default_rng([seed, 1])))


def _total_counts(source: DataSource) -> list[float] | None:
    """[0.1th, 99.9th percentile] of the total counts of the training pixels of a maps source
    (its own pixel where each comes with its block), for the model card: inference says when a
    cube's pixels hold far more counts than the model has seen. Computed once."""
    if getattr(source, "_totals", None) is None and getattr(source, "_train", None) is not None:
        x = source._train[0]
        own = x[:, 0] if x.ndim == 3 else x
        if getattr(source, "cluster_fit", False):  # the counts, not the fit's inputs after them
            own = own[:, : source.params["n_channels"]]
        totals = np.concatenate([own[a : a + 65536].sum(axis=1, dtype=np.float64) for a in range(0, len(own), 65536)])
        source._totals = [float(v) for v in np.percentile(totals, [0.1, 99.9])]
    return getattr(source, "_totals", None)


def _split(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, val: float = 0.2) -> tuple[tuple, tuple]:
    """(train, validation): a random ``val`` share (at least one item) held out."""
    order = rng.permutation(len(x))
    n_val = max(int(round(len(x) * val)), 1)
    v, t = order[:n_val], order[n_val:]
    return (x[t], y[t]), (x[v], y[v])


def _flip_turn(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        x = x[..., ::-1]
    return np.ascontiguousarray(np.rot90(x, int(rng.integers(4)), axes=(-2, -1)))


# -- diffraction images ----------------------------------------------------------------------
class SyntheticDiffraction(DataSource):
    """Monte Carlo lattices and their lot-averaged diffraction images (study 004), labelled
    with the encoding measured on each lattice; cached in an HDF5 file with their settings
    when ``cache`` names one. Training images are degraded on the fly: a share with Poisson
    noise (10-1,000 counts per pixel), a share log-scaled with a masked beam stop, so a model
    also reads images like an instrument's."""

    name = "synthetic-diffraction"
    title = "Synthetic diffraction images (Monte Carlo lattices)"
    PARAMS = {
        "span": Param(2, "correlation function span S, 2-4 (D = S^2 - 1)", 2, 4),
        "n_images": Param(6000, "image/encoding pairs (20 % for validation, as in the study)", 20, 10**7),
        "size": Param(64, "lattice side N", 8, 1024),
        "lot": Param(32, "lot (window) side L = image side", 4, 1024),
        "n_lots": Param(32, "lots averaged per image", 1, 4096),
        "sweeps": Param(150, "Monte Carlo sweeps per lattice", 10, 100000),
        "noise_fraction": Param(0.3, "share of images with Poisson noise", 0.0, 1.0),
        "degrade_fraction": Param(0.2, "share of images log-scaled with a masked beam stop", 0.0, 1.0),
        "resize_fraction": Param(0.3, "share of images resampled to another size (16 to 1.5 x lot)", 0.0, 1.0),
        "image_size": Param(64, "image side the model sees", 16, 512),
        "cache": Param("", "HDF5 file to keep the simulated pairs in (reused when its settings match)", kind="path"),
    }

    def check(self) -> None:
        p = self.params
        if p["lot"] > p["size"]:
            raise XrayAtlasError(f"lot={p['lot']} is larger than the lattice size={p['size']}")
        if p["size"] < 2 * p["span"]:
            raise XrayAtlasError(f"size={p['size']} must be at least 2 x span")
        if p["noise_fraction"] + p["degrade_fraction"] > 1:
            raise XrayAtlasError("noise_fraction + degrade_fraction must not exceed 1")
        if p["cache"]:
            cache = Path(p["cache"]).expanduser()
            if not cache.parent.is_dir():
                raise XrayAtlasError("cache: the folder does not exist", path=cache.parent)

    def _simulation(self) -> dict:
        p = self.params
        return {
            "span": p["span"],
            "n": p["n_images"],
            "size": p["size"],
            "lot": p["lot"],
            "n_lots": p["n_lots"],
            "sweeps": p["sweeps"],
        }

    def prepare(self, seed: int) -> None:
        from ..physics.lattice import load_dataset, make_dataset, save_dataset

        want = {**self._simulation(), "seed": seed}
        cache = Path(self.params["cache"]).expanduser() if self.params["cache"] else None
        data = None
        if cache is not None and cache.exists():
            data = load_dataset(cache)
            if any(data["settings"].get(k) != v for k, v in want.items()):
                data = None  # other settings: simulate again and replace it
        if data is None:
            data = make_dataset(**want, progress=lambda done, total: self._made(done, total, "lattices"))
            if cache is not None:
                save_dataset(cache, data)
        x, y = data["images"].astype(np.float32), data["encoding"].astype(np.float32)
        n_val = max(int(round(0.2 * len(x))), 1)
        order = np.random.default_rng([seed, 7]).permutation(len(x))
        val, train = order[:n_val], order[n_val:]
        self._train = (x[train], y[train])
        xv = self._augment(x[val], np.random.default_rng([seed, 8]))
        self._val = (xv, y[val])

    def _augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from ..diffraction import model_input

        p = self.params
        x = np.asarray(images, dtype=np.float32)
        # a third of the images at another size (16 to 1.5 x the lot, resampled on the k grid):
        # smaller lots sample the structure factor more coarsely, and a model must read them too
        resized = rng.random(len(x)) < p["resize_fraction"]
        if resized.any():
            lot = x.shape[-1]
            sizes = rng.integers(16, max(int(1.5 * lot), 17) + 1, size=int(resized.sum()))
            out = np.empty((len(x), 1, p["image_size"], p["image_size"]), np.float32)
            idx = np.flatnonzero(resized)
            for size in np.unique(sizes):
                sel = idx[sizes == size]
                small = model_input(x[sel], int(size))[:, 0]
                out[sel] = self._degrade_resize(small, rng)
            rest = np.flatnonzero(~resized)
            if rest.size:
                out[rest] = self._degrade_resize(x[rest], rng)
            return out
        return self._degrade_resize(x, rng)

    def _degrade_resize(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from ..diffraction import degrade, model_input

        p = self.params
        x = np.array(x, dtype=np.float32, copy=True)
        u = rng.random(len(x))
        noisy = u < p["noise_fraction"]
        worn = (u >= p["noise_fraction"]) & (u < p["noise_fraction"] + p["degrade_fraction"])
        if noisy.any():
            x[noisy] = degrade(x[noisy], rng, counts=10 ** rng.uniform(1, 3, size=int(noisy.sum())))
        if worn.any():
            idx = np.flatnonzero(worn)
            counted = rng.random(idx.size) < 0.5
            if counted.any():
                x[idx[counted]] = degrade(x[idx[counted]], rng, counts=10 ** rng.uniform(2, 4, size=int(counted.sum())))
            radius = rng.integers(1, 4, size=idx.size)  # beam stops of 1-3 pixels
            for r in (1, 2, 3):
                sel = idx[radius == r]
                if sel.size:
                    x[sel] = degrade(x[sel], rng, log=True, beam_stop=r)
        return model_input(x, p["image_size"])

    @property
    def outputs(self) -> tuple[str, ...]:
        from ..physics.lattice import offsets

        return tuple(f"a({dx},{dy})" for dx, dy in offsets(self.params["span"]))

    def model_inputs(self) -> dict:
        return {"image_size": self.params["image_size"], "n_outputs": len(self.outputs)}

    def input_contract(self) -> dict:
        p = self.params
        return {
            "span": p["span"],
            "image_size": p["image_size"],
            "image": "diffraction image, zero frequency at the centre, divided by its mean",
            "lot": p["lot"],
            "lattice_size": p["size"],
        }

    def train_batches(self, epoch: int, batch_size: int, seed: int, *, rank: int = 0, world: int = 1) -> Batches:
        x, y = self._train
        order = np.random.default_rng([seed, epoch]).permutation(len(x))

        def make(i: int) -> tuple[Any, Any]:
            idx = np.sort(order[i * batch_size : (i + 1) * batch_size])[rank::world]
            xb = self._augment(x[idx], _batch_rng(seed, epoch, i, rank, world))
            # the image of a lattice turned by 180 degrees is the same; a transposed lattice
            # swaps dx and dy, which would change the label: no flips
            return _tensors(xb, y[idx])

        return Batches(n_batches(len(x), batch_size, world), make)
