"""How well a fit explains the counts: residuals in standard deviations and the reduced
chi-square of Poisson counts, and the fit of a pixel, a region or a cluster taken apart into
its line families and background (what the fit inspector draws).

Both measures divide by ``max(fitted, 1)``: a channel's Poisson variance is its expected
count, floored at one count so that the empty channels of a 20 ms pixel (expected 0.01
counts, a one-count photon in them would weigh 100) do not rule the sum. The reduced
chi-square then divides by the sum's own expectation under Poisson counts, not by the
number of channels: each channel adds ``min(fitted, 1)`` on average, so a perfect fit reads
1 at any count level. Where every channel expects at least one count this is the textbook
``chi2 / (channels - parameters)``; in a painting's pixel most of the 4,096 channels expect
far less than one count, and ``chi2 / (channels - parameters)`` reads the demo painting's
pixels, which the fit explains to within 10 %, as 0.12-0.19 (median 0.15).

The per-cluster fit (:mod:`xray_atlas.clusterfit`) fits every pixel with its cluster's family
spectra and background; :func:`fit_pixels`, :func:`fit_region` and :func:`fit_cluster` give
that fit's parts for one pixel, the sum of a region's pixels or a cluster's summed spectrum.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .cube import TILE_BYTES, Progress
from .errors import XrayAtlasError

if TYPE_CHECKING:
    from .clusterfit import ClusterFit
    from .cube import SpectralCube

__all__ = [
    "SpectrumFit",
    "residual",
    "reduced_chi2",
    "fit_pixels",
    "fit_region",
    "iter_fit_region",
    "fit_cluster",
    "implied_spectrum",
    "prepared_fit",
    "iter_prepared_fit",
    "RESIDUAL",
]

#: What :func:`residual` and :attr:`SpectrumFit.residual` hold, in words (for plots and docs).
RESIDUAL = "(measured - fitted) / sqrt(max(fitted, 1))"


def residual(measured: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """``(measured - fitted) / sqrt(max(fitted, 1))``: each channel's departure in standard
    deviations of Poisson counts (the variance floored at one count; see the module
    docstring). Same shape as the inputs, float64."""
    m = np.asarray(measured, np.float64)
    f = np.asarray(fitted, np.float64)
    if m.shape != f.shape:
        raise XrayAtlasError(f"measured has shape {m.shape} and fitted {f.shape}")
    return (m - f) / np.sqrt(np.maximum(f, 1.0))


def reduced_chi2(measured: np.ndarray, fitted: np.ndarray, *, n_parameters: int | np.ndarray = 0) -> np.ndarray:
    """Reduced chi-square of Poisson counts along the last axis:
    ``sum((measured - fitted)**2 / max(fitted, 1)) / (sum(min(fitted, 1)) - n_parameters)``.

    The denominator is what the numerator averages for Poisson counts of mean ``fitted``
    (a channel expecting ``f`` counts adds ``f / max(f, 1)``), less the fitted parameters
    (``n_parameters``, a number or one per row): 1 for a fit that explains the counts at any
    count level, above it for a peak or a shape the fit lacks. NaN where it is not defined: a
    spectrum without expected counts, or with no more than its fit's parameters (a reading of
    0 would look like a perfect fit).

    Parameters
    ----------
    measured, fitted : (..., C) arrays
        Counts and the fit's expectation of them (fitted >= 0), on the same channels.
    n_parameters : int or (...) array
        Free parameters of each fit that were not at a bound.

    Returns
    -------
    (...) float32 array (a 1-D input gives a 0-d array).
    """
    x = np.asarray(measured, np.float32)
    f = np.asarray(fitted, np.float32)
    if x.shape != f.shape:
        raise XrayAtlasError(f"measured has shape {x.shape} and fitted {f.shape}")
    if np.any(f < 0):
        raise XrayAtlasError("fitted holds negative expected counts")
    expect = np.minimum(f, 1.0).sum(axis=-1, dtype=np.float64) - np.asarray(n_parameters, np.float64)
    r = x - f
    r *= r
    r /= np.maximum(f, 1.0)
    chi = r.sum(axis=-1, dtype=np.float64)
    return np.where(expect > 0, chi / np.maximum(expect, 1e-12), np.nan).astype(np.float32)


@dataclass(frozen=True)
class SpectrumFit:
    """The per-cluster fit of one spectrum (a pixel, the sum of a region's pixels, or a
    cluster's summed spectrum), taken apart.

    Every spectrum is (C,) counts on the cube's channels; the fitted parts are zero below the
    first fitted channel (the detector's noise peak, below ``preprocess.LOW_KEV``).
    """

    energy: np.ndarray  #: (C,) keV
    measured: np.ndarray  #: (C,) counts
    fitted: np.ndarray  #: (C,) the fit's expected counts: background + every family
    background: np.ndarray  #: (C,) the fit's smooth background (continuum and scatter)
    families: dict[str, np.ndarray]  #: family -> (C,) its contribution, strongest first
    #: family -> net counts, as the maps give them (corrected for the events pile-up took from the peaks,
    #: which the parts above show as measured)
    net_counts: dict[str, float]
    channels: np.ndarray  #: (C,) bool, the fitted channels
    n_parameters: int  #: amplitudes the fit did not hold at zero
    what: str  #: "pixel (y, x)", "region of N pixels", "cluster k"
    n_pixels: int = 1
    clusters: tuple[int, ...] = ()  #: the clusters whose spectra fitted it
    notes: list[str] = field(default_factory=list)

    @property
    def residual(self) -> np.ndarray:
        """(C,) :func:`residual` on the fitted channels, 0 elsewhere."""
        return np.where(self.channels, residual(self.measured, self.fitted), 0.0)

    @property
    def reduced_chi2(self) -> float:
        """:func:`reduced_chi2` over the fitted channels."""
        c = self.channels
        return float(reduced_chi2(self.measured[c], self.fitted[c], n_parameters=self.n_parameters))


def _check_prepared(fit: ClusterFit) -> None:
    if not getattr(fit, "_ops", None) and fit.k == 0:
        raise XrayAtlasError("the fit has no clusters: prepare it first (iter_prepare), on a cube with counts")


def _parts(
    fit: ClusterFit, x: np.ndarray, lab: np.ndarray, totals: np.ndarray, kept: float | None = None
) -> tuple[dict, np.ndarray, np.ndarray, int, set]:
    """The fit of the pixels ``x`` (N, C) summed: the pixels of each cluster (``lab``) summed
    and fitted with that cluster's family spectra and background, the clusters' fits added:
    (family -> (C,) contribution, (C,) background, (F,) net counts per family (in
    ``basis.families`` order, corrected for pile-up as the maps are: each cluster's peak counts
    over the count-weighted share of events its pixels of ``totals`` (N,) counts keep, or over
    ``kept``), parameters, clusters used).

    One fit of each cluster's sum, not the sum of the pixels' own fits: the pixels of a cluster
    share its weights, so without the non-negativity both are the same least squares; with it,
    each pixel's fit lifts a family absent from the cluster a little above zero in about half
    its pixels, and those bits would add up over a region's thousands of pixels. One solve per
    cluster, too, instead of one per pixel. For one pixel it is the maps' own fit."""
    from .clusterfit import nonneg_solve

    c = fit.cube.n_channels
    fams = fit.basis.families
    parts: dict[str, np.ndarray] = {}
    bg = np.zeros(c)
    net = np.zeros(len(fams))
    n_par = 0
    used: set[int] = set()
    lo = fit._first
    for j in np.unique(lab[lab >= 0]):
        sel = lab == j
        total = x[sel].sum(axis=0, dtype=np.float64)
        share = kept
        if share is None:
            t = np.asarray(totals[sel], np.float64)
            share = float(np.sum(fit._lost(t)[:, 0] * t) / max(t.sum(), 1e-12)) if fit.pileup else 1.0
        aw, gram, names = fit._ops[j]
        a = fit._shapes[j].astype(np.float64)
        sol = nonneg_solve(gram, (total @ aw)[None])[0]  # (names + 1,)
        n_par += int(np.count_nonzero(sol > 0))
        used.add(int(j))
        for i, f in enumerate(names):
            if sol[i] > 0:
                parts[f] = parts.get(f, 0.0) + a[:, i] * sol[i]
                net[fams.index(f)] += sol[i] / share
        bg += a[:, -1] * sol[-1]
    for f in parts:
        parts[f][:lo] = 0.0
    bg[:lo] = 0.0
    return parts, bg, net, n_par, used


def _assemble(
    fit: ClusterFit,
    measured: np.ndarray,
    parts: dict,
    bg: np.ndarray,
    net: np.ndarray,
    n_par: int,
    used: set,
    what: str,
    n_pixels: int,
) -> SpectrumFit:
    fams = fit.basis.families
    order = sorted(parts, key=lambda f: -net[fams.index(f)])
    fitted = bg + sum((parts[f] for f in order), np.zeros_like(bg))
    notes = []
    if not used:
        from .preprocess import LOW_KEV

        notes.append(f"{what} holds no counts from {LOW_KEV:g} keV up: nothing to fit")
    return SpectrumFit(
        energy=np.asarray(fit.cube.energy, np.float64),
        measured=np.asarray(measured, np.float64),
        fitted=fitted,
        background=bg,
        families={f: parts[f] for f in order},
        net_counts={f: float(net[fams.index(f)]) for f in order},
        channels=fit.channels.copy(),
        n_parameters=n_par,
        what=what,
        n_pixels=n_pixels,
        clusters=tuple(sorted(used)),
        notes=notes,
    )


def fit_pixels(fit: ClusterFit, spectra: np.ndarray, *, what: str = "") -> SpectrumFit:
    """The per-cluster fit of the sum of ``spectra`` (N, C) or of one spectrum (C,): the
    spectra of each cluster summed and fitted with that cluster's family spectra and
    background (:func:`_parts`; one spectrum: exactly the maps' fit of it), the clusters'
    parts added. ``fit`` is a prepared :class:`~xray_atlas.clusterfit.ClusterFit` of the
    spectra's cube."""
    _check_prepared(fit)
    x = np.asarray(spectra, np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != fit.cube.n_channels:
        raise XrayAtlasError(
            f"spectra must be (N, {fit.cube.n_channels}) counts of the fit's cube, got shape {np.shape(spectra)}"
        )
    lab, totals = fit._labels(x)
    parts, bg, net, n_par, used = _parts(fit, x, lab, totals)
    return _assemble(
        fit,
        x.sum(axis=0, dtype=np.float64),
        parts,
        bg,
        net,
        n_par,
        used,
        what or (f"{x.shape[0]} pixels" if x.shape[0] > 1 else "pixel"),
        x.shape[0],
    )


def iter_fit_region(
    fit: ClusterFit, mask: np.ndarray, *, tile_bytes: int = TILE_BYTES, what: str = ""
) -> Generator[Progress, None, SpectrumFit]:
    """The per-cluster fit of the sum of the pixels where ``mask`` (H, W) is True, streamed
    tile by tile (only tiles with masked pixels are read): yields :class:`Progress`, returns
    a :class:`SpectrumFit` (:func:`fit_pixels`)."""
    _check_prepared(fit)
    cube = fit.cube
    mask = np.asarray(mask, bool)
    if mask.shape != (cube.height, cube.width):
        raise XrayAtlasError(f"mask has shape {mask.shape}; the cube has {(cube.height, cube.width)} pixels")
    n = int(mask.sum())
    if n == 0:
        raise XrayAtlasError("the region holds no pixel of the cube")
    rows_any, cols_any = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    r0, r1 = int(rows_any[0]), int(rows_any[-1]) + 1
    c0, c1 = int(cols_any[0]), int(cols_any[-1]) + 1  # the mask's bounding box, as the region's mean spectrum
    c = cube.n_channels
    measured = np.zeros(c)
    parts: dict[str, np.ndarray] = {}
    bg = np.zeros(c)
    net = np.zeros(len(fit.basis.families))
    n_par, used = 0, set()
    step = max(1, int(tile_bytes // max((c1 - c0) * c * cube.dtype.itemsize, 1)))
    starts = range(r0, r1, step)
    yield Progress(0, len(starts), "fit")
    for k, a in enumerate(starts):
        b = min(a + step, r1)
        sub = mask[a:b, c0:c1]
        if sub.any():
            rows = slice(a, b)
            block = cube._read((rows, slice(c0, c1), slice(None)))
            cube._check_values(block, rows)
            x = np.asarray(block[sub], np.float32)
            lab, totals = fit._labels(x)
            p, g, nt, npar, u = _parts(fit, x, lab, totals)
            measured += x.sum(axis=0, dtype=np.float64)
            for f, v in p.items():
                parts[f] = parts.get(f, 0.0) + v
            bg += g
            net += nt
            n_par += npar
            used |= u
        yield Progress(k + 1, len(starts), "fit")
    return _assemble(fit, measured, parts, bg, net, n_par, used, what or f"region of {n} pixels", n)


def fit_region(fit: ClusterFit, mask: np.ndarray, **kw) -> SpectrumFit:
    """Blocking :func:`iter_fit_region`."""
    from .cube import run_to_end

    return run_to_end(iter_fit_region(fit, mask, **kw))


def fit_cluster(fit: ClusterFit, cluster: int) -> SpectrumFit:
    """The fit of cluster ``cluster``'s summed spectrum (its sampled pixels, from which its
    family spectra and background were fitted) with its own family spectra and background."""
    _check_prepared(fit)
    if not (isinstance(cluster, (int, np.integer)) and 0 <= cluster < fit.k):
        raise XrayAtlasError(f"cluster={cluster!r} must be one of the fit's clusters, 0 to {fit.k - 1}")
    x = fit.cluster_spectra[cluster].astype(np.float32)[None]
    # the share of events its mean pixel keeps through pile-up
    kept = float(fit._lost(np.array([fit._mean_total[cluster]]))[0, 0]) if fit.pileup else 1.0
    parts, bg, net, n_par, used = _parts(fit, x, np.array([int(cluster)]), np.zeros(1), kept=kept)
    n = int(round(float(fit.cluster_spectra[cluster].sum()) / max(fit._mean_total[cluster], 1e-12)))
    return _assemble(fit, x[0].astype(np.float64), parts, bg, net, n_par, used, f"cluster {int(cluster) + 1}", n)


def implied_spectrum(result: SpectrumFit, net_counts: dict[str, float]) -> np.ndarray:
    """The spectrum another model's net counts imply, drawn with the fit's own family
    spectra and background: each family of ``net_counts`` (e.g. a learnt model's map values,
    summed over the pixels; pile-up corrected, as the maps are) scaled to its value, the fit's
    other families and background as they are. A family the fit left out of this spectrum has
    no shape here and is left out (check ``result.families``)."""
    out = result.background.copy()
    for f, part in result.families.items():
        own = result.net_counts.get(f, 0.0)
        scale = net_counts[f] / own if f in net_counts and own > 0 else 1.0
        out += part * max(scale, 0.0)
    return out


def iter_prepared_fit(
    cube: SpectralCube, *, lines: tuple[str, ...] = (), omit: tuple[str, ...] = (), tile_bytes: int = TILE_BYTES
) -> Generator[Progress, None, ClusterFit]:
    """A :class:`~xray_atlas.clusterfit.ClusterFit` of ``cube`` with its clusters learnt
    (the per-cluster fit of ``xray-atlas maps`` with the same defaults), yielding
    :class:`Progress`; ``lines`` beyond the 44 prior families join the fit, ``omit`` leave it."""
    from .clusterfit import ClusterFit

    fit = ClusterFit(cube, tuple(lines), tile_bytes=tile_bytes, omit=tuple(omit))
    for p in fit.iter_prepare():
        yield Progress(p.done, p.total, "fit")
    return fit


def prepared_fit(cube: SpectralCube, **kw) -> ClusterFit:
    """Blocking :func:`iter_prepared_fit`."""
    from .cube import run_to_end

    return run_to_end(iter_prepared_fit(cube, **kw))
