"""Random training spectra, vectorised: 1-9 elements, 10^3-10^6 counts, with their truth.

Each batch draws, per spectrum: how many and which elements, their amounts (log-uniform over
three decades), a matrix absorption strength that weakens low-energy lines (and so changes
L/M ratios the way an overlying layer does), optionally the self-absorption of a layer of
given mass thickness (Sherman's equation, which moves La/Lb and Ka/Kb the way a thick paint
does), a scatter background mixed from simulated
scatter spectra of real paint matrices, the total counts, a calibration drift (global shift
up to +/- ``shift_kev``, gain error up to +/- ``gain_jitter``), per-peak shifts and a width
jitter; then renders every line with Si escape peaks, sum (pile-up) peaks of the strongest
lines, and Poisson noise. Optionally a share of spectra ends at a random energy (instruments
that record a shorter range, or a monochromatic beam).

Besides which elements were drawn (``presence``), a batch says which of them can be seen
(``detectable``): an element is detectable when one of its line clusters clears Currie's
detection limit L_D = 2.71 + 4.65 sqrt(B) (L. A. Currie, Anal. Chem. 40, 586, 1968) in a
+/- 1.2 sigma window, B being all other expected counts in that window. Scattered tube lines
count for the anode element (Rh in an M6 spectrum is "present" the way Bruker reports it).

Line energies and intensities come from xraylib through :mod:`.spectra` (tube excitation and
detector efficiency of the configured instrument), scatter from :func:`.spectra.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import XrayAtlasError
from .detector import Detector
from .lines import atomic_number, symbol
from .materials import PIGMENTS
from .spectra import DEFAULT_INSTRUMENT, Instrument, Layer, line_cross_sections, simulate

__all__ = [
    "SpectrumGenerator",
    "MixedGenerator",
    "GeneratorConfig",
    "DEFAULT_ELEMENTS",
    "PROBABILITY_ELEMENTS",
    "UNLISTED_ELEMENTS",
    "Batch",
    "varied_instruments",
    "detection_limit",
]

#: Elements of the default map set, the probability-map issue's list, and Ar (air).
DEFAULT_ELEMENTS = (
    "P",
    "S",
    "Cl",
    "Ar",
    "K",
    "Ca",
    "Ti",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "As",
    "Se",
    "Sr",
    "Ag",
    "Cd",
    "Sn",
    "Sb",
    "Ba",
    "Au",
    "Hg",
    "Pb",
    "Bi",
)

#: Classes of the element-probability models: the above, V and Tl (both in PyMca's thin
#: standard XRFSpectrum.mca) and Rh (tube lines scattered by every sample of an Rh-tube scanner).
PROBABILITY_ELEMENTS = DEFAULT_ELEMENTS + ("V", "Rh", "Tl")

#: Elements outside ``PROBABILITY_ELEMENTS`` whose lines turn up in X-ray spectra of artworks
#: and materials (clays, glass and ultramarine; eosin lakes; zirconium, molybdate and tungstate
#: pigments and opacifiers; alloys): an element model trains with them as ``unlisted`` so that
#: their lines (Mo La on S Ka, Zr La on P Ka, Br Ka on Hg Lb) are not read as its own elements.
UNLISTED_ELEMENTS = ("Mg", "Al", "Si", "Br", "Rb", "Y", "Zr", "Nb", "Mo", "Pd", "In", "I", "Cs", "La", "Ce", "W", "Pt")

#: Matrices whose scatter makes the background: grounds, whites, earths, organic layers.
BACKGROUND_MATRICES = (
    "chalk ground",
    "gypsum ground",
    "lead white",
    "yellow ochre",
    "azurite",
    "vermilion",
    "zinc white",
    "bone black",
    "ultramarine",
)

#: Matrices of the self-absorbing layers: light ones only, whose absorption edges (Ca K at
#: 4.04 keV and below) pass smoothly under the lines. A heavy matrix (vermilion, lead white)
#: would need its own strong lines in the spectrum: without them the Hg L3 edge between Pb
#: La and Lb would bend Pb's line ratios with no visible cause.
LAYER_MATRICES = ("chalk ground", "gypsum ground", "bone black", "ultramarine")

#: Mass thicknesses (g/cm^2) at which the self-absorption of a layer is tabulated.
MASS_GRID = np.logspace(-4, 1, 21)


@dataclass(frozen=True)
class GeneratorConfig:
    """What the random spectra look like.

    Parameters
    ----------
    elements : tuple of str
        Elements that may appear (each spectrum holds ``n_elements`` of them).
    n_elements : (int, int)
        Inclusive range of the number of elements per spectrum.
    counts : (float, float)
        Range of expected total counts per spectrum (drawn log-uniformly).
    background_share : (float, float)
        Range of the fraction of counts in the scatter background.
    shift_kev, gain_jitter, peak_shift_kev, width_jitter : float
        Augmentations of study 003: global calibration shift (uniform in +/- shift_kev),
        per-peak shift (sigma, keV) and relative width jitter (uniform); and a relative gain
        error (off by default: it needs a resampling that costs a third of the time).
    absorption : float
        Maximum matrix absorption strength (0 = thin samples only).
    burial, burial_share : float
        Elements buried under other layers: each element of a spectrum is, with probability
        ``burial_share``, absorbed by an extra strength up to ``burial`` (same law as the
        matrix): its low-energy lines fade first, so its own line ratios (Ka/Kb, La/Lb)
        change, as for lead white under a chalk ground.
    thickness : (float, float) or None
        Self-absorption: each spectrum comes from a layer of a light matrix (``LAYER_MATRICES``,
        then at least half of its scatter background) with a mass thickness drawn
        log-uniformly in this range (g/cm^2), which weakens every line
        by Sherman's equation for that layer (higher lines escape from deeper, so La/Lb and
        Ka/Kb fall in thick paints); None keeps the thin-sample line ratios.
    pileup : float
        Maximum fraction of events that pile up (sum peaks of the three strongest lines).
    escape : bool
        Add Si escape peaks.
    air_argon : float
        Probability that air adds Ar lines to a spectrum (besides Ar drawn as an element).
    pair_share : float
        Share of spectra that also hold a pair of elements whose lines overlap (main line
        clusters within 60 eV: As Ka / Pb La, S Ka / Pb M, Ti Kb / V Ka, Cr Kb / Mn Ka), so that a model
        sees enough of the cases where only the other lines of each tell them apart.
    unlisted : tuple of str
        Elements whose lines may appear in a spectrum but which are not among ``elements``:
        they have no column in ``presence`` or ``detectable``. Real spectra hold elements
        outside any model's list, and a model that has never seen Mo's L lines reads them
        as S Ka, Zr's as P Ka.
    unlisted_share : float
        Share of spectra that also hold one of ``unlisted`` (a third of those, two). The pairs
        of ``pair_share`` are of listed elements only, as without ``unlisted``.
    cutoff_share : float
        Share of spectra whose channels above a random energy in ``cutoff_kev`` read zero.
    cutoff_kev : (float, float)
    instrument : Instrument
        Tube, detector (calibration, channels, resolution) and geometry.
    """

    elements: tuple[str, ...] = DEFAULT_ELEMENTS
    n_elements: tuple[int, int] = (1, 9)
    counts: tuple[float, float] = (1e3, 1e6)
    background_share: tuple[float, float] = (0.05, 0.6)
    shift_kev: float = 0.05
    gain_jitter: float = 0.0
    peak_shift_kev: float = 0.002
    width_jitter: float = 0.08
    absorption: float = 1.5
    burial: float = 0.0
    burial_share: float = 0.3
    thickness: tuple[float, float] | None = None
    pileup: float = 0.01
    escape: bool = True
    air_argon: float = 0.8
    pair_share: float = 0.0
    unlisted: tuple[str, ...] = ()
    unlisted_share: float = 0.0
    cutoff_share: float = 0.0
    cutoff_kev: tuple[float, float] = (12.0, 30.0)
    instrument: Instrument = field(default_factory=lambda: DEFAULT_INSTRUMENT)

    def __post_init__(self) -> None:
        if not self.elements:
            raise XrayAtlasError("elements: give at least one element")
        for el in self.elements:
            atomic_number(el, parameter="elements")
        for el in self.unlisted:
            atomic_number(el, parameter="unlisted")
        both = {atomic_number(e) for e in self.elements} & {atomic_number(e) for e in self.unlisted}
        if both:
            raise XrayAtlasError(f"unlisted: Z = {sorted(both)} also in elements")
        lo, hi = self.n_elements
        if not (1 <= lo <= hi <= len(self.elements)):
            raise XrayAtlasError(f"n_elements={self.n_elements} must satisfy 1 <= min <= max <= {len(self.elements)}")
        if not (0 < self.counts[0] <= self.counts[1]):
            raise XrayAtlasError(f"counts={self.counts} must satisfy 0 < min <= max")
        if not (0 <= self.background_share[0] <= self.background_share[1] < 1):
            raise XrayAtlasError(f"background_share={self.background_share} must lie in [0, 1)")
        if not 0 <= self.burial_share <= 1:
            raise XrayAtlasError(f"burial_share={self.burial_share} must lie in [0, 1]")
        if not 0 <= self.pair_share <= 1:
            raise XrayAtlasError(f"pair_share={self.pair_share} must lie in [0, 1]")
        if not 0 <= self.unlisted_share <= 1:
            raise XrayAtlasError(f"unlisted_share={self.unlisted_share} must lie in [0, 1]")
        if not 0 <= self.cutoff_share <= 1:
            raise XrayAtlasError(f"cutoff_share={self.cutoff_share} must lie in [0, 1]")
        if not 0 < self.cutoff_kev[0] <= self.cutoff_kev[1]:
            raise XrayAtlasError(f"cutoff_kev={self.cutoff_kev} must satisfy 0 < min <= max")
        if self.thickness is not None and not (
            len(self.thickness) == 2 and MASS_GRID[0] <= self.thickness[0] <= self.thickness[1] <= MASS_GRID[-1]
        ):
            raise XrayAtlasError(
                f"thickness={self.thickness} must be None or (min, max) g/cm^2 with "
                f"{MASS_GRID[0]:g} <= min <= max <= {MASS_GRID[-1]:g}"
            )
        for name in ("shift_kev", "gain_jitter", "peak_shift_kev", "width_jitter", "absorption", "pileup", "burial"):
            if getattr(self, name) < 0:
                raise XrayAtlasError(f"{name}={getattr(self, name)} must be >= 0")


@dataclass
class Batch:
    """A batch of spectra and their truth.

    Attributes
    ----------
    spectra : (n, C) float32 counts (Poisson)
    expected : (n, C) float32 noise-free spectra, or None (``keep_expected=False``)
    net : (n, F) float32 expected net counts per line family (``families``)
    presence : (n, E) bool, element drawn (``elements``)
    detectable : (n, E) bool, element above the detection limit (module docstring)
    offset_kev, gain_kev : (n,) the drifted calibration of each spectrum
    """

    spectra: np.ndarray
    expected: np.ndarray | None
    net: np.ndarray
    presence: np.ndarray
    detectable: np.ndarray
    families: tuple[str, ...]
    elements: tuple[str, ...]
    offset_kev: np.ndarray
    gain_kev: np.ndarray


class SpectrumGenerator:
    """Vectorised generator of random spectra; see :class:`GeneratorConfig`.

    Lines are grouped per family into clusters (Ka, Kb, La, Lb, ...); each cluster has a
    template spectrum on the nominal channel grid made by the detector model (Gaussian, tail,
    step, escape peaks), with its derivatives with respect to a shift and to the width. A
    batch is then three matrix products (amounts x templates, x shift derivative, x width
    derivative) plus a resampling for the calibration drift, so its cost does not grow with
    the number of lines. Building one takes a few seconds the first time (cross sections,
    scatter spectra and templates are cached).
    """

    def __init__(self, config: GeneratorConfig | None = None):
        self.config = config = config or GeneratorConfig()
        det = config.instrument.detector
        self.n_channels = det.n_channels
        self.elements = tuple(symbol(atomic_number(e)) for e in config.elements)
        # listed elements first: their indices are the columns of presence and detectable
        self._all = self.elements + tuple(symbol(atomic_number(e)) for e in config.unlisted)
        tables = _templates(self._all, config.instrument, config.escape)
        self.families = tables["families"]
        self._g = tables
        self._background = _backgrounds(config.instrument).astype(np.float32)  # (B, C) unit sums
        self._ar = self.elements.index("Ar") if "Ar" in self.elements else None
        self._windows = _windows(tables, self._background, self._all, config.instrument)
        self.overlapping = _overlapping(tables, listed=len(self.elements))
        if config.thickness is not None:  # only then: a few tenths of a second per instrument
            self._log_layer = np.log(_self_absorption(tables, config.instrument))
            self._layer_background = np.array([BACKGROUND_MATRICES.index(m) for m in LAYER_MATRICES])

    def __call__(
        self,
        n: int,
        rng: np.random.Generator | int | None = None,
        *,
        noise: bool = True,
        workers: int = 1,
        chunk: int = 128,
        keep_expected: bool = False,
    ) -> Batch:
        """Draw ``n`` spectra.

        Parameters
        ----------
        n : int
        rng : Generator or int, optional
            Seed; the batch is split into chunks with independent child streams, so the
            result does not depend on ``workers``.
        noise : bool
            Poisson counts (else the expected spectra).
        workers : int
            Processes that draw blocks of chunks in parallel.
        chunk : int
            Spectra per chunk (keeps the working set in cache).
        keep_expected : bool
            Also return the noise-free spectra (``Batch.expected``).
        """
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise XrayAtlasError(f"n={n!r} must be a positive integer")
        if not isinstance(workers, (int, np.integer)) or workers < 1:
            raise XrayAtlasError(f"workers={workers!r} must be a positive integer")
        seed = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        starts = list(range(0, n, chunk))
        streams = seed.spawn(len(starts))
        c = self.n_channels
        out = Batch(
            np.empty((n, c), np.float32),
            np.empty((n, c), np.float32) if keep_expected else None,
            np.empty((n, len(self.families)), np.float32),
            np.empty((n, len(self.elements)), bool),
            np.empty((n, len(self.elements)), bool),
            self.families,
            self.elements,
            np.empty(n),
            np.empty(n),
        )

        if workers == 1 or len(starts) == 1:
            for i, a in enumerate(starts):
                self._draw(out, slice(a, min(a + chunk, n)), streams[i], noise)
            return out
        import multiprocessing as mp

        if "fork" not in mp.get_all_start_methods():  # pragma: no cover - Windows, macOS spawn
            for i, a in enumerate(starts):
                self._draw(out, slice(a, min(a + chunk, n)), streams[i], noise)
            return out
        # Forked processes (the Poisson draws hold the GIL, so threads do not scale) write
        # straight into arrays on shared anonymous memory: no copy of the spectra comes back.
        out = _shared_batch(n, c, len(self.families), len(self.elements), keep_expected, self)
        ctx = mp.get_context("fork")
        procs = []
        for block in np.array_split(np.arange(len(starts)), workers):
            if block.size == 0:
                continue
            ranges = [(starts[i], min(starts[i] + chunk, n)) for i in block]
            proc = ctx.Process(target=self._draw_ranges, args=(out, ranges, [streams[i] for i in block], noise))
            proc.start()
            procs.append(proc)
        for proc in procs:
            proc.join()
        if any(proc.exitcode != 0 for proc in procs):
            raise RuntimeError("a generator worker process failed")
        return out

    def _draw_ranges(self, out: Batch, ranges: list, streams: list, noise: bool) -> None:
        from threadpoolctl import threadpool_limits

        # one BLAS thread per worker process: OpenBLAS threads spinning in two forked
        # processes on two cores halve the throughput
        with threadpool_limits(1):
            for (a, b), rng in zip(ranges, streams):
                self._draw(out, slice(a, b), rng, noise)

    def _draw(self, out: Batch, rows_out: slice, rng: np.random.Generator, noise: bool) -> None:
        n = rows_out.stop - rows_out.start
        cfg = self.config
        det = cfg.instrument.detector
        g = self._g
        n_el, n_listed = len(self._all), len(self.elements)
        c = det.n_channels

        # -- composition ------------------------------------------------------------------
        k = rng.integers(cfg.n_elements[0], cfg.n_elements[1] + 1, size=n)
        order = np.argsort(rng.random((n, n_listed)), axis=1)
        present = np.zeros((n, n_el), dtype=bool)
        rows = np.repeat(np.arange(n), k)
        cols = order[np.arange(n_listed)[None, :] < k[:, None]]
        present[rows, cols] = True
        if cfg.pair_share > 0 and len(self.overlapping):
            pick = np.flatnonzero(rng.random(n) < cfg.pair_share)
            pairs = self.overlapping[rng.integers(0, len(self.overlapping), size=pick.size)]
            present[pick, pairs[:, 0]] = present[pick, pairs[:, 1]] = True
        if cfg.unlisted_share > 0 and n_el > n_listed:
            pick = np.flatnonzero(rng.random(n) < cfg.unlisted_share)
            extra = rng.integers(n_listed, n_el, size=(pick.size, 2))
            present[pick, extra[:, 0]] = True
            two = rng.random(pick.size) < 1 / 3
            present[pick[two], extra[two, 1]] = True
        amount = np.where(present, 10 ** rng.uniform(-3, 0, size=(n, n_el)), 0.0)
        if self._ar is not None and cfg.air_argon > 0:
            air = rng.random(n) < cfg.air_argon
            amount[air, self._ar] += 10 ** rng.uniform(-3.5, -2, size=int(air.sum()))
            present[:, self._ar] |= amount[:, self._ar] > 0

        # -- net counts per line cluster: amount x yield x matrix absorption x jitter -------
        absorb = rng.uniform(0, cfg.absorption, size=(n, 1))
        if cfg.burial > 0:
            buried = rng.random((n, n_el)) < cfg.burial_share
            absorb = absorb + np.where(buried, rng.uniform(0, cfg.burial, size=(n, n_el)), 0.0)[:, g["element"]]
        att = np.exp(-absorb * (g["energy"][None, :] / 3.0) ** -2.7)  # (n, G)
        if cfg.thickness is not None:
            matrix = rng.integers(0, len(LAYER_MATRICES), size=n)
            lo, hi = np.log10(cfg.thickness)
            pos = np.interp(rng.uniform(lo, hi, size=n), np.log10(MASS_GRID), np.arange(MASS_GRID.size))
            i0 = np.minimum(pos.astype(np.int64), MASS_GRID.size - 2)
            t = (pos - i0)[:, None]
            layer = self._log_layer  # (B, M, G) log share kept, interpolated in log mass thickness
            att = att * np.exp(layer[matrix, i0] * (1 - t) + layer[matrix, i0 + 1] * t)
        group = amount[:, g["element"]] * g["yield"][None, :] * att
        group *= np.exp(rng.normal(0, 0.03, size=group.shape))
        total = 10 ** rng.uniform(np.log10(cfg.counts[0]), np.log10(cfg.counts[1]), size=n)
        bg_share = rng.uniform(*cfg.background_share, size=n)
        group *= (total * (1 - bg_share) / np.maximum(group.sum(axis=1), 1e-30))[:, None]
        net = group @ g["family_of_group"]  # (n, F)

        # -- calibration drift: whole channels by slicing, the fraction through the shift
        #    derivative of the templates (a <= 5 eV step under a >= 45 eV sigma)
        drift = rng.uniform(-cfg.shift_kev, cfg.shift_kev, size=n)
        gain = np.full(n, det.gain_kev)
        offset = det.offset_kev + drift
        s_ch = drift / det.gain_kev
        m = np.rint(s_ch).astype(np.int64)
        frac = s_ch - m

        # -- peaks and background on the nominal grid -----------------------------------------
        shift = rng.normal(0, cfg.peak_shift_kev, size=group.shape) - (frac * det.gain_kev)[:, None]
        width = rng.uniform(-cfg.width_jitter, cfg.width_jitter, size=(n, 1))
        gf = group.astype(np.float32)
        coef = np.concatenate([gf, gf * shift.astype(np.float32), gf * width.astype(np.float32)], axis=1)
        spec = coef @ g["stacked"]  # templates, shift and width derivatives in one product
        mix = rng.dirichlet(np.full(self._background.shape[0], 0.5), size=n).astype(np.float32)
        if cfg.thickness is not None:  # the layer's own matrix makes at least half of the scatter
            mix *= 0.5
            mix[np.arange(n), self._layer_background[matrix]] += 0.5
        bg_counts = mix * (total * bg_share)[:, None].astype(np.float32)
        spec += bg_counts @ self._background
        cutoff = np.full(n, np.inf)
        if cfg.cutoff_share > 0:
            cut = rng.random(n) < cfg.cutoff_share
            cutoff[cut] = rng.uniform(*cfg.cutoff_kev, size=int(cut.sum()))
        detectable = self._detectable(spec, group, bg_counts, cutoff)
        expected = np.zeros_like(spec)
        for mm in np.unique(m):
            r = m == mm
            if mm >= 0:
                expected[r, : c - mm] = spec[r, mm:]
            else:
                expected[r, -mm:] = spec[r, : c + mm]
        if cfg.gain_jitter > 0:
            gain = det.gain_kev * (1 + rng.uniform(-cfg.gain_jitter, cfg.gain_jitter, size=n))
            expected = _resample(expected, np.full(n, det.offset_kev), gain, det.offset_kev, det.gain_kev)

        # -- sum peaks of the strongest clusters, placed with each spectrum's calibration -----
        if cfg.pileup > 0:
            top = np.argsort(-group, axis=1)[:, :3]
            e_top = g["energy"][top] + np.take_along_axis(shift, top, 1) + (frac * det.gain_kev)[:, None]
            a_top = np.take_along_axis(group, top, 1)
            pu = rng.uniform(0, cfg.pileup, size=n)
            pairs = [(0, 0), (0, 1), (1, 1)]
            pe = np.stack([e_top[:, a] + e_top[:, b] for a, b in pairs], 1)
            pa = np.stack([(1 if a == b else 2) * a_top[:, a] * a_top[:, b] for a, b in pairs], 1)
            pa *= (pu / np.maximum(total, 1))[:, None]
            # sum peaks under half a count are invisible under Poisson noise: not drawn
            expected += _render(pe, pa, det.sigma_kev(pe) * (1 + width), offset, gain, c, min_area=0.5)
        np.maximum(expected, 0, out=expected)
        if np.isfinite(cutoff).any():
            expected[offset[:, None] + gain[:, None] * np.arange(c)[None, :] > cutoff[:, None]] = 0
        out.spectra[rows_out] = poisson(expected, rng) if noise else expected
        if out.expected is not None:
            out.expected[rows_out] = expected
        out.net[rows_out] = net
        out.presence[rows_out] = present[:, :n_listed]
        # detectable, not present: a scattered anode line makes the anode detectable undrawn
        out.detectable[rows_out] = detectable[:, :n_listed]
        out.offset_kev[rows_out] = offset
        out.gain_kev[rows_out] = gain

    def _detectable(self, spec: np.ndarray, group: np.ndarray, bg_counts: np.ndarray, cutoff: np.ndarray) -> np.ndarray:
        """(n, E + unlisted) bool: some line cluster of the element clears Currie's limit (module docstring)."""
        w = self._windows
        cs = np.concatenate([np.zeros((spec.shape[0], 1), np.float32), np.cumsum(spec, axis=1)], axis=1)
        inside = cs[:, w["hi"]] - cs[:, w["lo"]]  # (n, G + A): all expected counts in each window
        signal = np.concatenate([group * w["share"][None, : group.shape[1]], bg_counts @ w["scatter"]], axis=1)
        signal = signal.astype(np.float32)
        other = np.maximum(inside - signal, 0)
        seen = (signal >= detection_limit(other)) & (w["energy"][None, :] < cutoff[:, None])
        out = np.zeros((spec.shape[0], len(self._all)), bool)
        for k, el in enumerate(w["element"]):
            out[:, el] |= seen[:, k]
        return out


def detection_limit(background: np.ndarray) -> np.ndarray:
    """Currie's detection limit L_D = 2.71 + 4.65 sqrt(B) in net counts over a background of B
    counts (L. A. Currie, Anal. Chem. 40, 586, 1968): what makes an element "detectable" in
    the training labels and in :func:`xray_atlas.evaluation.detectable_elements`."""
    return 2.71 + 4.65 * np.sqrt(background)


def _overlapping(tables: dict, *, listed: int, within_kev: float = 0.06, min_yield: float = 0.02) -> np.ndarray:
    """(P, 2) index pairs of the first ``listed`` elements whose main line clusters (>= ``min_yield``
    of the element's net counts) lie within ``within_kev`` of each other."""
    main = (tables["yield"] >= min_yield) & (tables["element"] < listed)
    el, e = tables["element"][main], tables["energy"][main]
    close = (np.abs(e[:, None] - e[None, :]) <= within_kev) & (el[:, None] < el[None, :])
    i, j = np.nonzero(close)
    return np.unique(np.stack([el[i], el[j]], axis=1), axis=0) if i.size else np.zeros((0, 2), int)


def _windows(tables: dict, background: np.ndarray, elements: tuple[str, ...], instrument: Instrument) -> dict:
    """Detection windows (+/- 1.2 sigma) of every line cluster and of the scattered tube lines:
    channel bounds, the share of a unit peak inside, and per background template the scattered
    anode-line counts (window minus the continuum interpolated from the flanks)."""
    from .lines import family_lines

    det = instrument.detector
    c = det.n_channels
    energy = list(tables["energy"])
    element = list(tables["element"])
    anode = None if instrument.monochromatic_kev is not None else instrument.tube.anode
    scatter_e = []
    if anode in elements:
        for fam in ("K", "L"):
            lines = [
                ln
                for ln in family_lines(f"{anode}-{fam}")
                if max(det.energy[0], 0.9) < ln.energy_kev < min(instrument.tube.kv, det.energy[-1])
            ]
            if lines:
                scatter_e.append(lines[0].energy_kev)  # the strongest (family_lines sorts them)
    energy += scatter_e
    element += [elements.index(anode)] * len(scatter_e) if scatter_e else []
    energy = np.array(energy)
    half = 1.2 * det.sigma_kev(energy)
    lo = np.clip(np.rint((energy - half - det.offset_kev) / det.gain_kev).astype(int), 0, c)
    hi = np.clip(np.rint((energy + half - det.offset_kev) / det.gain_kev).astype(int) + 1, 0, c)
    n_g = tables["template"].shape[0]
    share = np.array([tables["template"][k, lo[k] : hi[k]].sum() for k in range(n_g)] + [0.0] * len(scatter_e))
    scatter = np.zeros((background.shape[0], len(scatter_e)), np.float32)
    for j in range(len(scatter_e)):
        k = n_g + j
        a, b = lo[k], hi[k]
        width = b - a
        left, right = background[:, max(a - width, 0) : a], background[:, b : min(b + width, c)]
        flank = (left.mean(1) + right.mean(1)) / 2 if left.size and right.size else 0.0
        scatter[:, j] = np.maximum(background[:, a:b].sum(1) - flank * width, 0)
    return {
        "lo": lo,
        "hi": hi,
        "share": share.astype(np.float32),
        "scatter": scatter,
        "energy": energy,
        "element": element,
    }


def _shared_batch(n: int, c: int, n_fam: int, n_el: int, keep_expected: bool, gen: SpectrumGenerator) -> Batch:
    """A Batch whose arrays live in shared anonymous memory (visible to forked children)."""
    import mmap

    def shared(shape: tuple, dtype: type) -> np.ndarray:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(mmap.mmap(-1, max(size, 1)), dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    return Batch(
        shared((n, c), np.float32),
        shared((n, c), np.float32) if keep_expected else None,
        shared((n, n_fam), np.float32),
        shared((n, n_el), np.bool_),
        shared((n, n_el), np.bool_),
        gen.families,
        gen.elements,
        shared((n,), np.float64),
        shared((n,), np.float64),
    )


def _resample(spec: np.ndarray, offset: np.ndarray, gain: np.ndarray, offset0: float, gain0: float) -> np.ndarray:
    """Values of nominal-grid spectra at the channel energies of a drifted calibration."""
    n, c = spec.shape
    pos = ((offset[:, None] - offset0) + gain[:, None] * np.arange(c)[None, :]) / gain0
    lo = np.clip(np.floor(pos).astype(np.int64), 0, c - 2)
    fr = np.clip(pos - lo, 0, 1).astype(np.float32)
    out = np.take_along_axis(spec, lo, 1) * (1 - fr) + np.take_along_axis(spec, lo + 1, 1) * fr
    out[(pos < 0) | (pos > c - 1)] = 0
    return out * (gain / gain0)[:, None].astype(np.float32)


def _render(
    centres: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    offset: np.ndarray,
    gain: np.ndarray,
    n_channels: int,
    half_width: int = 32,
    min_area: float = 0.0,
) -> np.ndarray:
    """Gaussians (n, L) on (n, C) channels of each spectrum's calibration, +/- half_width channels.

    Peaks of at most ``min_area`` counts are left out."""
    n = centres.shape[0]
    keep = areas > min_area
    spec_idx = np.broadcast_to(np.arange(n)[:, None], centres.shape)[keep]
    pos = ((centres - offset[:, None]) / gain[:, None])[keep]
    sig = (sigmas / gain[:, None])[keep]
    amp = areas[keep]
    ch = np.rint(pos).astype(np.int64)[:, None] + np.arange(-half_width, half_width + 1)[None, :]
    d = (ch - pos[:, None]) / sig[:, None]
    val = (amp / (sig * np.sqrt(2 * np.pi)))[:, None] * np.exp(-0.5 * d * d)
    ok = (ch >= 0) & (ch < n_channels)
    out = np.bincount((spec_idx[:, None] * n_channels + ch)[ok], weights=val[ok], minlength=n * n_channels)
    return out.reshape(n, n_channels)


@lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
    from scipy.special import ndtri

    return ndtri((np.arange(1 << 16) + 0.5) / (1 << 16)).astype(np.float32)


def poisson(expected: np.ndarray, rng: np.random.Generator, *, split: float = 2.0) -> np.ndarray:
    """Poisson counts of float32 expectations, fast.

    Below ``split`` expected counts: exact inversion, vectorised over a fixed number of terms
    (the few draws beyond them continue one by one). From ``split`` up: the Cornish-Fisher
    expansion of the Poisson quantile, floor(lam + z sqrt(lam - 1/12) + (z^2 - 1)/6 + 1/2),
    whose distribution is within 0.5 % (total variation) of Poisson at lam = 2-5 and 0.15 % at
    10 (tests/physics/test_generator.py), at a fifth of the cost of an exact draw.
    """
    lam = expected.ravel()
    out = np.empty(lam.size, np.float32)
    big = lam >= split
    lb = lam[big]
    # normal deviates from a 2^16-entry quantile table: 3x cheaper than the ziggurat here,
    # and the table's resolution (1.5e-5 in probability) is far below Poisson noise
    z = _normal_table()[rng.integers(0, 1 << 16, size=lb.size, dtype=np.uint16)]
    out[big] = np.maximum(np.floor(lb + z * np.sqrt(lb - 5 / 36) + (z * z - 1) / 6 + 0.5), 0)
    # exact inversion: 3 terms cover lam < 0.25 but for 1.3e-4 of draws, 6 terms lam < 2
    # but for 4.5e-3; those few go on term by term
    for lo, hi, terms in ((0.0, 0.25, 3), (0.25, split, 6)):
        sel = (lam < hi) & (lam >= lo) if lo > 0 else lam < hi
        out[sel] = _small_poisson(np.maximum(lam[sel], 0), rng, terms)
    return out.reshape(expected.shape)


def _small_poisson(ls: np.ndarray, rng: np.random.Generator, terms: int) -> np.ndarray:
    u = rng.random(ls.size, dtype=np.float32)
    p = np.exp(-ls)
    cdf = p.copy()
    k = (u > cdf).astype(np.float32)
    for j in range(1, terms):
        p *= ls / j
        cdf += p
        k += u > cdf
    rest = np.flatnonzero(k >= terms)  # u beyond the first terms: go on exactly
    if rest.size:
        lr, ur, pr, cr = ls[rest].astype(np.float64), u[rest], p[rest].astype(np.float64), cdf[rest].astype(np.float64)
        kr = np.full(rest.size, float(terms))
        j = terms
        active = ur > cr
        while active.any() and j < 1000:
            pr[active] *= lr[active] / j
            cr[active] += pr[active]
            kr[active] = j
            active &= ur > cr
            j += 1
        k[rest] = kr
    return k


@lru_cache(maxsize=8)
def _templates(elements: tuple[str, ...], instrument: Instrument, escape: bool) -> dict:
    """Line clusters of every element: energies, yields, templates and their derivatives."""
    from dataclasses import replace

    det = instrument.detector if escape else replace(instrument.detector, escape=False)
    e0, flux = instrument.excitation(de=0.1)
    grid = tuple(np.round(e0, 6))
    e_lo, e_hi = max(det.energy[0], 0.9), det.energy[-1]
    groups = []  # (element index, family name, line energies, net yields, yields per beam energy)
    for i, sym in enumerate(elements):
        z = atomic_number(sym)
        rows = [(fam, e, tau) for fam, _, e, tau in line_cross_sections(z, grid) if e_lo <= e <= e_hi]
        if not rows:
            raise XrayAtlasError(f"elements: {sym} has no line in {e_lo:.1f}-{e_hi:.1f} keV excited by the tube")
        e = np.array([r[1] for r in rows])
        tau = np.stack([r[2] for r in rows])
        excited = tau @ flux
        y = excited * det.efficiency(e) * det.net_fraction(e)
        y /= y.sum()  # per unit amount of the element
        for fam in dict.fromkeys(r[0] for r in rows):
            m = np.array([r[0] == fam for r in rows]) & (y > 1e-3)
            if not m.any():
                continue
            fe, fy = e[m], y[m]
            # each line's detected photons per unit flux and energy of the exciting beam
            fw = tau[m] * flux[None, :] * (y[m] / np.maximum(excited[m], 1e-300))[:, None]
            order = np.argsort(fe)
            fe, fy, fw = fe[order], fy[order], fw[order]
            starts = np.flatnonzero(np.diff(fe, prepend=-np.inf) > 0.3)  # clusters split by gaps > 0.3 keV
            for a, b in zip(starts, list(starts[1:]) + [fe.size]):
                groups.append((i, f"{sym}-{fam}", fe[a:b], fy[a:b], fw[a:b]))
    families = tuple(dict.fromkeys(gr[1] for gr in groups))
    c = det.n_channels
    n_g = len(groups)
    template = np.zeros((n_g, c), np.float32)
    d_shift = np.zeros((n_g, c), np.float32)
    d_width = np.zeros((n_g, c), np.float32)
    h, eps = 0.002, 0.02
    for k, (_, _, fe, fy, _) in enumerate(groups):
        absorbed = fy / det.net_fraction(fe) / fy.sum()  # one net count in the cluster
        base, _ = det.detect_lines(fe, absorbed)
        plus, _ = det.detect_lines(fe + h, absorbed)
        minus, _ = det.detect_lines(fe - h, absorbed)
        wide, _ = det.detect_lines(fe, absorbed, width_scale=1 + eps)
        narrow, _ = det.detect_lines(fe, absorbed, width_scale=1 - eps)
        template[k] = base
        d_shift[k] = (plus - minus) / (2 * h)
        d_width[k] = (wide - narrow) / (2 * eps)
    fam_of_group = np.zeros((n_g, len(families)))
    for k, gr in enumerate(groups):
        fam_of_group[k, families.index(gr[1])] = 1.0
    return {
        "families": families,
        "element": np.array([gr[0] for gr in groups]),
        "energy": np.array([float(np.average(gr[2], weights=gr[3])) for gr in groups]),
        "yield": np.array([float(gr[3].sum()) for gr in groups]),
        "family_of_group": fam_of_group,
        "template": template,
        "d_shift": d_shift,
        "d_width": d_width,
        "stacked": np.concatenate([template, d_shift, d_width], axis=0),
        "beam_energy": e0,
        "beam_yields": tuple((gr[2], gr[4]) for gr in groups),  # per cluster: line energies, (L, E0) yields
    }


def _self_absorption(tables: dict, instrument: Instrument) -> np.ndarray:
    """(B, M, G) share of each line cluster's thin-sample counts that leaves a layer of each
    of the ``LAYER_MATRICES`` at each mass thickness of ``MASS_GRID`` (``tables`` from
    :func:`_templates` for ``instrument``).

    Sherman's equation for one homogeneous layer (as :func:`.spectra.simulate` uses it), line
    by line and beam energy by beam energy: (1 - exp(-chi m)) / (chi m), with
    chi = mu(E0) / sin(psi_in) + mu(E_line) / sin(psi_out). Lines at higher energies escape
    from deeper, so a thick paint lowers La/Lb and Ka/Kb below their thin-sample values (Pb
    La/Lb 1.6 thin, 1.0 in a thick chalk ground under a Rh tube).
    """
    from .materials import mass_attenuation

    s_in = np.sin(np.radians(instrument.geometry.incidence_deg))
    s_out = np.sin(np.radians(instrument.geometry.exit_deg))
    m = MASS_GRID[:, None, None]
    clusters = tables["beam_yields"]
    out = np.ones((len(LAYER_MATRICES), MASS_GRID.size, len(clusters)))
    for b, name in enumerate(LAYER_MATRICES):
        mu_in = mass_attenuation(PIGMENTS[name], tables["beam_energy"]) / s_in  # (E0,)
        for k, (fe, fw) in enumerate(clusters):
            chi = mu_in[None, :] + mass_attenuation(PIGMENTS[name], fe)[:, None] / s_out  # (L, E0)
            x = chi[None] * m  # (M, L, E0)
            share = -np.expm1(-x) / x
            out[b, :, k] = (share * fw[None]).sum((1, 2)) / fw.sum()
    return out


@lru_cache(maxsize=8)
def _backgrounds(instrument: Instrument) -> np.ndarray:
    """(B, C) scatter spectra of the background matrices, each normalised to unit sum."""
    rows = []
    for name in BACKGROUND_MATRICES:
        sim = simulate([Layer(PIGMENTS[name])], instrument, pileup=False)
        s = np.maximum(sim.scatter, 0)
        rows.append(s / s.sum())
    return np.stack(rows)


def varied_instruments(detector: Detector | None = None) -> tuple[Instrument, ...]:
    """Instruments unlike one another, on one channel grid, for models that must meet spectra
    of scanners they were not trained on: an M6-like Rh tube at 50 kV with its polycapillary
    (145 eV), a Rh tube at 40 kV with a better detector (130 eV), a W tube at 40 kV (160 eV),
    an Ag tube at 45 kV (150 eV), those three without optics, and a monochromatised Mo beam at
    17.5 keV (170 eV, the conditions of PyMca's XRFSpectrum.mca). The optic passes little
    above 17 keV, so it changes which L subshells the tube ionises: Pb La/Lb 1.59 without it
    and 2.04 with it in a thin layer, 1.02 and 1.33 in thick chalk."""
    from dataclasses import replace

    from .reference import M6_OPTIC
    from .tube import Tube

    det = detector or DEFAULT_INSTRUMENT.detector
    return (
        Instrument(tube=Tube(anode="Rh", kv=50.0), detector=replace(det, fwhm_mnka_ev=145.0), optic=M6_OPTIC),
        Instrument(tube=Tube(anode="Rh", kv=40.0), detector=replace(det, fwhm_mnka_ev=130.0)),
        Instrument(tube=Tube(anode="W", kv=40.0), detector=replace(det, fwhm_mnka_ev=160.0)),
        Instrument(tube=Tube(anode="Ag", kv=45.0), detector=replace(det, fwhm_mnka_ev=150.0)),
        Instrument(tube=Tube(anode="Mo", kv=30.0), detector=replace(det, fwhm_mnka_ev=170.0), monochromatic_kev=17.5),
    )


class MixedGenerator:
    """Spectra from several instruments on one channel grid (one :class:`SpectrumGenerator`
    per instrument, the same other settings); every batch holds an even share of each, in
    random order."""

    def __init__(self, config: GeneratorConfig, instruments: tuple[Instrument, ...]):
        from dataclasses import replace

        grids = {(i.detector.n_channels, i.detector.offset_kev, i.detector.gain_kev) for i in instruments}
        if len(grids) != 1:
            raise XrayAtlasError("instruments: all must share one channel grid (channels, offset, gain)")
        self.generators = [SpectrumGenerator(replace(config, instrument=i)) for i in instruments]
        first = self.generators[0]
        self.config, self.n_channels, self.elements = config, first.n_channels, first.elements
        self.families = tuple(dict.fromkeys(f for g in self.generators for f in g.families))

    def __call__(self, n: int, rng: np.random.Generator | int | None = None, **kwargs) -> Batch:
        seed = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        k = len(self.generators)
        sizes = [n // k + (i < n % k) for i in range(k)]
        parts = [g(m, s, **kwargs) for g, m, s in zip(self.generators, sizes, seed.spawn(k)) if m > 0]
        order = seed.permutation(n)

        def cat(name: str) -> np.ndarray | None:
            arrays = [getattr(p, name) for p in parts]
            return None if arrays[0] is None else np.concatenate(arrays)[order]

        net = np.zeros((n, len(self.families)), np.float32)
        row = 0
        for p in parts:
            cols = [self.families.index(f) for f in p.families]
            net[row : row + len(p.spectra), cols] = p.net
            row += len(p.spectra)
        return Batch(
            cat("spectra"),
            cat("expected"),
            net[order],
            cat("presence"),
            cat("detectable"),
            self.families,
            self.elements,
            cat("offset_kev"),
            cat("gain_kev"),
        )
