"""Per-pixel spectral models of study 001: FCN 4096-512-64-64-k and the 1-D CNN.

``normalise="total"`` (the default) wraps either network so that it sees the spectrum
divided by its total counts (times the channel count, so a channel averages 1) and predicts
each line's share of the counts in percent, which is multiplied back by the total: net counts
then scale exactly with dwell time and tube current, and one model serves pixels of 500 and of
50,000 counts. ``normalise="none"`` is the study's raw-count network.

The networks are classes of this module; the registered builders check their configuration,
compute the fixed physics matrices and return an instance. What inference and training read
of a map model is declared: :class:`GuardedMapModel` for the models with a familiarity guard,
with the class attributes ``cluster_fit`` and ``takes_total``; ``totals`` on the models that
sum each pixel's counts themselves (:class:`TotalScaled`, :class:`FitMLP`). This module
imports torch: the registry imports it only when a model is built or listed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from ..errors import XrayAtlasError
from ..physics.lines import DEFAULT_MAP_LINES, parse_line_family
from .prior import INSTRUMENT_DEFAULTS, PRIOR_FAMILIES, instrument_for, lsq_operator, pure_matrix
from .registry import register

__all__ = [
    "fcn",
    "cnn1d",
    "fcn_plus",
    "cnn1d_plus",
    "prior_mlp",
    "spatial_prior_mlp",
    "fit_mlp",
    "neighbourhood_mean",
    "fit_familiarity",
    "lsq",
    "roi",
    "NORMALISATIONS",
    "CLUSTER_FIT_MODELS",
    "TotalScaled",
    "FamiliarityGuard",
    "GuardedMapModel",
    "CNN1D",
    "FCNPlus",
    "CNN1DPlus",
    "PriorMLP",
    "SpatialPriorMLP",
    "FitMLP",
    "FixedLinear",
]

NORMALISATIONS = ("total", "none")


class FamiliarityGuard(nn.Module):
    """How unlike its training inputs a spectrum is, for the prior map models.

    The whitened distance of the MLP's input features from the training mean (root mean square
    over the principal axes). Beyond the training data's 99.9th percentile the model's
    correction is faded out, down to the pure least-squares value at 1.5 times that distance,
    so that a scan unlike anything the model saw (another matrix, another instrument) gets the
    physics fit, not an extrapolated correction (docs/maps.md: the M6 spectrum). Off until
    :meth:`fit`.

    Parameters
    ----------
    n_features : int
        Width F of the features it measures.

    Attributes
    ----------
    fallback : torch.Tensor or None
        The last batch's (B,) weights of the least-squares value, read by inference for its note.
    """

    fallback: torch.Tensor | None = None

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("whiten", torch.zeros(n_features, n_features))
        self.register_buffer("limits", torch.full((2,), float("inf")))

    def distance(self, f: torch.Tensor) -> torch.Tensor:
        # f: (B, F) features -> (B,) whitened RMS distance from the training mean
        return ((f - self.mean) @ self.whiten).pow(2).mean(dim=1).sqrt()

    def blend(self, out: torch.Tensor, base: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        # out, base: (B, k) learnt and least-squares values, f: (B, F) -> (B, k), non-negative
        self.fallback = self.weight(f)
        return torch.lerp(out, base, self.fallback[:, None]).clamp_min(0.0)

    def weight(self, f: torch.Tensor) -> torch.Tensor:
        # (B, F) -> (B,) in [0, 1]: 0 familiar, 1 fall back to least squares entirely
        if not bool(torch.isfinite(self.limits[0])):
            return torch.zeros(f.shape[0], device=f.device, dtype=f.dtype)
        lo, hi = self.limits[0], self.limits[1]
        return ((self.distance(f) - lo) / (hi - lo)).clamp(0.0, 1.0)

    @torch.no_grad()
    def fit(self, f: torch.Tensor) -> None:
        f = f.double()
        mean = f.mean(dim=0)
        lam, vec = torch.linalg.eigh(torch.cov((f - mean).T))
        lam = lam.clamp_min(0) + 1e-4 * lam.max()  # shrinkage: near-empty axes stay finite
        self.mean.copy_(mean.float())
        self.whiten.copy_((vec / lam.sqrt()).float())
        lo = torch.quantile(self.distance(f.float()).double(), 0.999)
        self.limits.copy_(torch.stack([lo, 1.5 * lo]).float())


class GuardedMapModel(nn.Module):
    """Base of the map models with a :class:`FamiliarityGuard` (``guard``), and the
    capabilities inference and training read of them.

    Subclasses set ``guard`` and define :meth:`guard_features`; :func:`fit_familiarity` fits
    the guard (after :meth:`fit_inputs`) to training inputs.

    Attributes
    ----------
    guard : FamiliarityGuard
        Fades the learnt correction out on spectra unlike the training inputs.
    cluster_fit : bool
        Class attribute: True for models whose input is each pixel's counts followed by the
        per-cluster fit's inputs (:func:`~xray_atlas.clusterfit.iter_cluster_fit_inputs`);
        such a model also declares ``n_families``, the fit's family count K.
    takes_total : bool
        True when ``forward(shares, total)`` also wants each pixel's (B, 1) total counts
        beside its shares (:class:`TotalScaled` gives them).
    """

    cluster_fit: ClassVar[bool] = False
    takes_total: bool = False
    guard: FamiliarityGuard

    def guard_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) inputs as the model takes them (counts) -> (B, F) the features the guard measures."""
        raise NotImplementedError

    def fit_inputs(self, x: torch.Tensor) -> None:
        """Learn whatever the inputs need before :meth:`guard_features` (standardisation); nothing here."""


class TotalScaled(nn.Module):
    """``normalise="total"``: the wrapped network sees shares, and its percentages become counts.

    Parameters
    ----------
    net : torch.nn.Module
        (B, C) shares with mean 1 -> (B, k) percent of the counts per line.
    n_channels : int
        Channel count C (the shares are the counts times C over their total).

    Attributes
    ----------
    takes_total : bool
        Whether ``net`` also takes the (B, 1) totals (its own ``takes_total``).
    totals : torch.Tensor or None
        The last batch's (B, 1) total counts, read by inference.
    """

    totals: torch.Tensor | None = None

    def __init__(self, net: nn.Module, n_channels: int) -> None:
        super().__init__()
        self.net = net
        self.n_channels = n_channels
        self.takes_total = isinstance(net, GuardedMapModel) and net.takes_total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C) counts -> shares (B, C) with mean 1 -> percent per line (B, k) -> counts (B, k)
        total = x.sum(dim=1, keepdim=True)
        self.totals = total
        shares = x * (self.n_channels / total.clamp_min(1.0))
        # an empty pixel gives zeros (times the raw total), never NaN
        out = self.net(shares, total) if self.takes_total else self.net(shares)
        return out * (total / 100.0)


def _wrap(net: nn.Module, normalise: str, n_channels: int) -> nn.Module:
    if normalise not in NORMALISATIONS:
        raise XrayAtlasError(f"normalise={normalise!r}; choose one of {', '.join(NORMALISATIONS)}")
    if normalise == "none":
        return net
    return TotalScaled(net, n_channels)


@register("fcn", task="maps", n_channels=4096, n_outputs=12, hidden=(512, 64, 64), normalise="total")
def fcn(*, n_channels: int, n_outputs: int, hidden: tuple[int, ...], normalise: str):
    """Fully connected network of study 001 (4096-512-64-64-k, ReLU)."""
    layers, width = [], n_channels
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return _wrap(nn.Sequential(*layers), normalise, n_channels)


class CNN1D(nn.Module):
    """1-D CNN of study 001: Conv1d(1->64, k5, s2), 3 x Conv1d(64->64, k3, s2),
    Conv1d(64->128, k3, s2), ReLU, max-pool(2, 2), dropout, flatten, linear.

    Parameters
    ----------
    n_channels : int
        Channels C of the input spectra.
    n_outputs : int
        Outputs k.
    dropout : float
        Dropout before the linear head.
    """

    def __init__(self, *, n_channels: int, n_outputs: int, dropout: float) -> None:
        super().__init__()
        convs = [nn.Conv1d(1, 64, 5, stride=2), nn.ReLU()]
        for _ in range(3):
            convs += [nn.Conv1d(64, 64, 3, stride=2), nn.ReLU()]
        convs += [nn.Conv1d(64, 128, 3, stride=2), nn.ReLU(), nn.MaxPool1d(2, 2), nn.Dropout(dropout)]
        self.features = nn.Sequential(*convs)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, 1, n_channels)).numel()
        self.head = nn.Linear(n_flat, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C) spectra -> (B, 1, C) -> features (B, 128, L) -> (B, k)
        z = self.features(x.unsqueeze(1))
        return self.head(z.flatten(1))


@register("cnn1d", task="maps", n_channels=4096, n_outputs=12, dropout=0.05, normalise="total")
def cnn1d(*, n_channels: int, n_outputs: int, dropout: float, normalise: str):
    """1-D CNN of study 001: Conv1d(1->64, k5, s2), 3 x Conv1d(64->64, k3, s2),
    Conv1d(64->128, k3, s2), ReLU, max-pool(2, 2), dropout, flatten, linear."""
    return _wrap(CNN1D(n_channels=n_channels, n_outputs=n_outputs, dropout=dropout), normalise, n_channels)


# -- models with the physics prior ---------------------------------------------------------------
def _prior_config(n_channels: int, n_outputs: int, lines: tuple, instrument: dict) -> tuple:
    lines = tuple(lines)
    if len(lines) != n_outputs:
        raise XrayAtlasError(f"lines: {len(lines)} line families for n_outputs={n_outputs}")
    for ln in lines:
        parse_line_family(ln, parameter="lines")
    return lines, instrument


_INSTR = INSTRUMENT_DEFAULTS  # every prior model carries the instrument it was built for


def _unit_max(w):
    return (w / np.maximum(w.max(axis=0, keepdims=True), 1e-12)).astype(np.float32)


class FCNPlus(nn.Module):
    """Study 001's FCN+: a fixed prior layer (dot products of the spectrum with the lines' pure
    spectra) in front of the FCN.

    Parameters
    ----------
    prior : torch.Tensor
        (C, l) pure spectra of the lines, unit maximum (a buffer).
    hidden : tuple of int
        Widths of the hidden layers (ReLU).
    n_outputs : int
        Outputs k.
    """

    def __init__(self, prior: torch.Tensor, *, hidden: tuple[int, ...], n_outputs: int) -> None:
        super().__init__()
        self.register_buffer("prior", prior)
        layers, width = [], prior.shape[1]
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.mlp = nn.Sequential(*layers, nn.Linear(width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C) shares -> dot products with the prior (B, l) -> (B, k)
        return self.mlp(x @ self.prior / 10.0)


@register("fcn+", task="maps", n_channels=4096, n_outputs=12, lines=DEFAULT_MAP_LINES, hidden=(512, 64, 64), **_INSTR)
def fcn_plus(*, n_channels: int, n_outputs: int, lines: tuple, hidden: tuple[int, ...], **instrument):
    """Study 001's FCN+: a fixed prior layer of the lines' pure spectra (unit maximum; their
    dot products with the spectrum) in front of the FCN."""
    lines, instrument = _prior_config(n_channels, n_outputs, lines, instrument)
    w = torch.from_numpy(_unit_max(pure_matrix(lines, n_channels=n_channels, **instrument)))
    return _wrap(FCNPlus(w, hidden=hidden, n_outputs=n_outputs), "total", n_channels)


class CNN1DPlus(nn.Module):
    """Study 001's 1DCNN+: the spectrum and its element-wise products with the lines' pure
    spectra as l + 1 input channels of the 1-D CNN.

    Parameters
    ----------
    prior : torch.Tensor
        (l, C) pure spectra of the lines, unit maximum (a buffer).
    n_outputs : int
        Outputs k.
    dropout : float
        Dropout before the linear head.
    """

    def __init__(self, prior: torch.Tensor, *, n_outputs: int, dropout: float) -> None:
        super().__init__()
        n_lines, n_channels = prior.shape
        self.register_buffer("prior", prior)
        convs = [nn.Conv1d(n_lines + 1, 64, 5, stride=2), nn.ReLU()]
        for _ in range(3):
            convs += [nn.Conv1d(64, 64, 3, stride=2), nn.ReLU()]
        convs += [nn.Conv1d(64, 128, 3, stride=2), nn.ReLU(), nn.MaxPool1d(2, 2), nn.Dropout(dropout)]
        self.features = nn.Sequential(*convs)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, n_lines + 1, n_channels)).numel()
        self.head = nn.Linear(n_flat, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C) -> channels (B, 1 + l, C): raw and x * w_j -> features -> (B, k)
        z = torch.cat([x.unsqueeze(1), x.unsqueeze(1) * self.prior.unsqueeze(0)], dim=1)
        return self.head(self.features(z).flatten(1))


@register("cnn1d+", task="maps", n_channels=4096, n_outputs=12, lines=DEFAULT_MAP_LINES, dropout=0.05, **_INSTR)
def cnn1d_plus(*, n_channels: int, n_outputs: int, lines: tuple, dropout: float, **instrument):
    """Study 001's 1DCNN+: the spectrum and its element-wise products with the lines' pure
    spectra (unit maximum) as l + 1 input channels of the 1-D CNN."""
    lines, instrument = _prior_config(n_channels, n_outputs, lines, instrument)
    w = torch.from_numpy(_unit_max(pure_matrix(lines, n_channels=n_channels, **instrument)).T.copy())  # (l, C)
    return _wrap(CNN1DPlus(w, n_outputs=n_outputs, dropout=dropout), "total", n_channels)


def _level_range(level: bool, level_range: tuple) -> tuple[float, float]:
    """The prior models' count-level range (low, high) log10 counts, checked when used."""
    lo, hi = (float(v) for v in level_range)
    if level and not lo < hi:
        raise XrayAtlasError(f"level_range={tuple(level_range)} must be (low, high) log10 counts with low < high")
    return lo, hi


def _held_level(total: torch.Tensor, level_range: tuple[float, float]) -> torch.Tensor:
    # the count-level input of the prior models: (B, 1) total counts -> log10, held within
    # the range and centred on it (beyond the training range the model acts as at its edge)
    lo, hi = level_range
    return total.clamp_min(1.0).log10().clamp(lo, hi) - (lo + hi) / 2


def _correction_mlp(width: int, hidden: tuple[int, ...], n_outputs: int) -> nn.Sequential:
    """The prior models' MLP (GELU); its last layer starts at zero, so the model starts as the
    least-squares fit it corrects."""
    layers = []
    for h in hidden:
        layers += [nn.Linear(width, h), nn.GELU()]
        width = h
    last = nn.Linear(width, n_outputs)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


def fit_familiarity(model, x, *, standardise: bool = True) -> bool:
    """Fit the familiarity guard of a prior map model to training inputs ``x`` (counts, as the
    model takes them), after its inputs' standardisation unless ``standardise`` is False (a
    model fine-tuned from trained weights keeps theirs); False when the model has no guard."""
    for m in model.modules():
        if isinstance(m, GuardedMapModel):
            with torch.no_grad():
                x = torch.as_tensor(x, dtype=torch.float32)
                if standardise:
                    m.fit_inputs(x)
                m.guard.fit(m.guard_features(x))
            return True
    return False


class PriorMLP(GuardedMapModel):
    """xray-atlas's map model (:func:`prior_mlp`): least-squares shares and the coarse shape of
    the spectrum into an MLP that corrects the least-squares value of each line.

    Parameters
    ----------
    lsq : torch.Tensor
        (C, K) least-squares operator of the prior's families and background (a buffer).
    idx : torch.Tensor
        (k,) columns of ``lsq`` that are the output lines (a buffer).
    n_outputs : int
        Outputs k.
    hidden : tuple of int
        Widths of the correction MLP's hidden layers.
    bins : int
        Coarse bins of the spectrum's shape (0: none); they divide C.
    level_range : tuple of float or None
        (low, high) log10 counts within which the pixel's level is an input; None: no level input.
    """

    def __init__(
        self,
        lsq: torch.Tensor,
        idx: torch.Tensor,
        *,
        n_outputs: int,
        hidden: tuple[int, ...],
        bins: int,
        level_range: tuple[float, float] | None,
    ) -> None:
        super().__init__()
        self.n_channels = lsq.shape[0]
        self.bins = bins
        self.level_range = level_range
        self.takes_total = level_range is not None
        width = lsq.shape[1] + bins + int(self.takes_total)
        self.register_buffer("lsq", lsq)  # (C, K)
        self.register_buffer("idx", idx)
        self.mlp = _correction_mlp(width, hidden, n_outputs)
        self.guard = FamiliarityGuard(width)

    def _features(self, x: torch.Tensor, total: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C) shares * C, total: (B, 1) counts -> least-squares shares (B, K) in
        # percent, the spectrum's shape in `bins` sqrt-scaled bins, and with a level range the
        # held log10 total, centred on the range: (B, K + bins [+ 1])
        n_channels, bins = self.n_channels, self.bins
        parts = [x @ self.lsq * (100.0 / n_channels)]
        if bins:
            parts.append(x.reshape(x.shape[0], bins, n_channels // bins).mean(dim=2).clamp_min(0).sqrt())
        if self.level_range is not None:
            parts.append(_held_level(total, self.level_range))
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def guard_features(self, counts: torch.Tensor) -> torch.Tensor:
        # (B, C) counts -> (B, F) the MLP's inputs
        total = counts.sum(dim=1, keepdim=True)
        return self._features(counts * (self.n_channels / total.clamp_min(1.0)), total)

    def forward(self, x: torch.Tensor, total: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C) shares * C, total: (B, 1) counts (with a level range) -> features (B, F)
        # -> lines (B, k): least squares + learnt correction
        feats = self._features(x, total)
        base = feats[:, self.idx]
        out = base + self.mlp(feats)
        return out if self.training else self.guard.blend(out, base, feats)


@register(
    "prior-mlp",
    task="maps",
    n_channels=4096,
    n_outputs=12,
    lines=DEFAULT_MAP_LINES,
    hidden=(256, 256),
    spacing_kev=0.75,
    bins=128,
    level=False,
    level_range=(2.5, 5.5),
    **_INSTR,
)
def prior_mlp(
    *,
    n_channels: int,
    n_outputs: int,
    lines: tuple,
    hidden: tuple[int, ...],
    spacing_kev: float,
    bins: int,
    level: bool,
    level_range: tuple,
    **instrument,
):
    """xray-atlas's map model: least-squares shares of the physics engine's 44 line families and
    a smooth background (one fixed (C, K) matrix from the physics prior), and the spectrum's
    shape in ``bins`` coarse bins, into an MLP that learns the correction (overlaps, matrix
    effects, non-negativity) on top of the least-squares value of each line. One matrix
    product and a small MLP per spectrum.

    With ``level``, the MLP also sees log10 of the pixel's total counts, held within
    ``level_range``: how far a weak line's share can be trusted depends on the counts behind
    it (a 0.1 % share is 2 counts of noise in a 2,000-count pixel and a sure 1,000 counts in a
    million-count accumulation), which shares alone cannot tell. Beyond the range the model
    acts as at its edge instead of extrapolating."""
    lines, instrument = _prior_config(n_channels, n_outputs, lines, instrument)
    if bins < 0 or (bins and n_channels % bins):
        raise XrayAtlasError(f"bins={bins} must divide n_channels={n_channels} (0: no binned spectrum)")
    held = _level_range(level, level_range)
    _, full, fams = lsq_operator(lines, PRIOR_FAMILIES, n_channels, instrument, spacing_kev)
    idx = torch.tensor([fams.index(ln) for ln in lines])
    net = PriorMLP(
        torch.from_numpy(full), idx, n_outputs=n_outputs, hidden=hidden, bins=bins, level_range=held if level else None
    )
    return _wrap(net, "total", n_channels)


class SpatialPriorMLP(GuardedMapModel):
    """The prior MLP with a view of the pixel's surroundings (:func:`spatial_prior_mlp`).

    Input (B, 2, C): the pixel's counts and the mean counts of its block. ``features``
    (linear in the counts) and ``head`` are exposed so that inference can average the
    features over blocks instead of spectra.

    Parameters
    ----------
    project : torch.Tensor
        (C, K + bins + 1) features of a spectrum: least-squares values of K families and
        background terms, bin sums, total (a buffer).
    idx : torch.Tensor
        (k,) columns of the least-squares values that are the output lines (a buffer).
    n_families : int
        K, the least-squares columns of ``project``.
    n_outputs : int
        Outputs k.
    hidden : tuple of int
        Widths of the correction MLP's hidden layers.
    bins : int
        Bins of the spectrum's shape.
    neighbourhood : int
        The block's side in pixels (odd); read by inference.
    level_range : tuple of float or None
        (low, high) log10 counts within which the pixel's level is an input; None: no level input.
    """

    def __init__(
        self,
        project: torch.Tensor,
        idx: torch.Tensor,
        *,
        n_families: int,
        n_outputs: int,
        hidden: tuple[int, ...],
        bins: int,
        neighbourhood: int,
        level_range: tuple[float, float] | None,
    ) -> None:
        super().__init__()
        self.n_families = n_families
        self.bins = bins
        self.level_range = level_range
        self.neighbourhood = int(neighbourhood)
        self.register_buffer("project", project)
        self.register_buffer("idx", idx)
        width = 2 * (n_families + bins) + int(level_range is not None)
        self.mlp = _correction_mlp(width, hidden, n_outputs)  # starts as the pixel's least squares
        self.guard = FamiliarityGuard(width)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., C) counts -> (..., K + bins + 1): least-squares values, bin sums, total
        return x @ self.project

    def _shares(self, f: torch.Tensor) -> torch.Tensor:
        # (B, F) features -> least-squares shares in percent (B, K) and sqrt bin shape (B, bins)
        n_k, bins = self.n_families, self.bins
        t = f[:, -1:].clamp_min(1.0)
        return torch.cat([f[:, :n_k] * (100.0 / t), (f[:, n_k:-1] * (bins / t)).clamp_min(0).sqrt()], dim=1)

    def _inputs(self, own: torch.Tensor, near: torch.Tensor) -> torch.Tensor:
        # own, near: (B, F) features -> the MLP's inputs (B, 2 (K + bins) [+ 1]): the
        # pixel's shares first, then its block's, then with a level range the pixel's held level
        parts = [self._shares(own), self._shares(near)]
        if self.level_range is not None:
            parts.append(_held_level(own[:, -1:], self.level_range))
        return torch.cat(parts, dim=1)

    def head(self, own: torch.Tensor, near: torch.Tensor) -> torch.Tensor:
        # own, near: (B, F) features of the pixel and of its block's mean -> (B, k) net counts
        feats = self._inputs(own, near)
        base = feats[:, self.idx]  # the pixel's least-squares shares of the lines
        out = base + self.mlp(feats)
        out = out if self.training else self.guard.blend(out, base, feats)
        return out * (own[:, -1:] / 100.0)

    def guard_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 2, C) counts -> (B, F) the MLP's inputs
        return self._inputs(self.features(x[:, 0]), self.features(x[:, 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 2, C) the pixel's counts and its block's mean counts -> (B, k) net counts
        return self.head(self.features(x[:, 0]), self.features(x[:, 1]))


@register(
    "spatial-prior-mlp",
    task="maps",
    n_channels=4096,
    n_outputs=12,
    lines=DEFAULT_MAP_LINES,
    hidden=(512, 512),
    spacing_kev=0.75,
    bins=128,
    neighbourhood=5,
    level=False,
    level_range=(2.5, 5.5),
    **_INSTR,
)
def spatial_prior_mlp(
    *,
    n_channels: int,
    n_outputs: int,
    lines: tuple,
    hidden: tuple[int, ...],
    spacing_kev: float,
    bins: int,
    neighbourhood: int,
    level: bool,
    level_range: tuple,
    **instrument,
):
    """The prior MLP with a view of the pixel's surroundings: the least-squares shares and the
    coarse shape of the pixel's spectrum and of the mean spectrum of its ``neighbourhood`` x
    ``neighbourhood`` block go into one MLP, which corrects the pixel's least-squares value of
    each line. The surroundings hold 25 times the counts of a 5 x 5 block and tell the layer
    stack (its line ratios, which lines are there at all), so a weak line need not be shrunk to
    the painting prior as a per-pixel model must.

    ``level`` and ``level_range``: the pixel's held log10 total counts as one more input, as
    in :func:`prior_mlp`.

    Input (B, 2, C): the pixel's counts and the mean counts of its block (edges replicated).
    ``features`` (linear in the counts) and ``head`` are exposed so that inference can average
    the features over blocks instead of 4096-channel spectra (the same result, 20 x less work).
    """
    lines, instrument = _prior_config(n_channels, n_outputs, lines, instrument)
    if bins < 1 or n_channels % bins:
        raise XrayAtlasError(f"bins={bins} must divide n_channels={n_channels}")
    if neighbourhood < 3 or neighbourhood % 2 == 0:
        raise XrayAtlasError(f"neighbourhood={neighbourhood} must be an odd number of pixels >= 3")
    held = _level_range(level, level_range)
    _, full, fams = lsq_operator(lines, PRIOR_FAMILIES, n_channels, instrument, spacing_kev)
    binning = np.kron(np.eye(bins, dtype=np.float32), np.ones((n_channels // bins, 1), np.float32))
    project = np.concatenate([full, binning, np.ones((n_channels, 1), np.float32)], axis=1)  # (C, K + bins + 1)
    idx = torch.tensor([fams.index(ln) for ln in lines])
    return SpatialPriorMLP(
        torch.from_numpy(project),
        idx,
        n_families=full.shape[1],
        n_outputs=n_outputs,
        hidden=hidden,
        bins=bins,
        neighbourhood=neighbourhood,
        level_range=held if level else None,
    )


#: Map models that read the per-cluster fit's inputs beside each pixel's counts.
CLUSTER_FIT_MODELS = ("fit-mlp",)


class FitMLP(GuardedMapModel):
    """xray-atlas's map model on the per-cluster fit (:func:`fit_mlp`): an MLP corrects the
    fit's value of each line from the fit's shares for the pixel and its cluster, the
    spectrum's shape and its level.

    Input (B, C + 2 K): the pixel's counts, then the fit's net counts of the K prior families,
    then its cluster's scaled to the pixel.

    Parameters
    ----------
    idx : torch.Tensor
        (k,) indices of the output lines among the K prior families (a buffer).
    n_channels : int
        Channels C of the counts.
    n_outputs : int
        Outputs k.
    hidden : tuple of int
        Widths of the correction MLP's hidden layers.
    bins : int
        Bins of the spectrum's shape; they divide C.

    Attributes
    ----------
    totals : torch.Tensor or None
        The last batch's (B, 1) total counts, read by inference.
    """

    cluster_fit: ClassVar[bool] = True  # inference gives it the per-cluster fit's inputs beside the counts
    n_families: ClassVar[int] = len(PRIOR_FAMILIES)
    totals: torch.Tensor | None = None

    def __init__(
        self, idx: torch.Tensor, *, n_channels: int, n_outputs: int, hidden: tuple[int, ...], bins: int
    ) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.bins = bins
        width = 2 * self.n_families + bins + 1
        self.register_buffer("idx", idx)
        self.register_buffer("centre", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.mlp = _correction_mlp(width, hidden, n_outputs)  # starts as the fit
        self.guard = FamiliarityGuard(width)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, C + 2K) -> features (B, 2K + bins + 1): the pixel's and its cluster's fit
        # shares in percent, the bin shares (mean 1), log10 total - 3.5; and the total (B, 1)
        n_channels, bins = self.n_channels, self.bins
        binned = x[:, :n_channels].reshape(x.shape[0], bins, n_channels // bins).sum(dim=2)  # (B, bins)
        total = binned.sum(dim=1, keepdim=True).clamp_min(1.0)
        fit = x[:, n_channels:] * (100.0 / total)
        shape = binned * (bins / total)
        return torch.cat([fit, shape, total.log10() - 3.5], dim=1), total

    def fit_inputs(self, x: torch.Tensor) -> None:
        # x: (N, C + 2K) training inputs -> the features' standardisation
        f, _ = self._features(x)
        self.centre.copy_(f.mean(dim=0))
        self.scale.copy_(f.std(dim=0).clamp_min(1e-3))

    def guard_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C + 2K) -> (B, F) the MLP's standardised inputs
        return (self._features(x)[0] - self.centre) / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C + 2K) -> (B, k) net counts: the fit's value + the learnt correction
        f, total = self._features(x)
        self.totals = total
        z = (f - self.centre) / self.scale
        base = f[:, self.idx]
        out = base + self.mlp(z)
        out = out.clamp_min(0.0) if self.training else self.guard.blend(out, base, z)
        return out * (total / 100.0)


@register(
    "fit-mlp",
    task="maps",
    n_channels=4096,
    n_outputs=12,
    lines=DEFAULT_MAP_LINES,
    hidden=(512, 512),
    bins=128,
    **_INSTR,
)
def fit_mlp(*, n_channels: int, n_outputs: int, lines: tuple, hidden: tuple[int, ...], bins: int, **instrument):
    """xray-atlas's map model on the per-cluster fit (:mod:`xray_atlas.clusterfit`): the fit's
    shares of the 44 prior families for the pixel and for its cluster (the paint it belongs
    to, with millions of counts), the spectrum's shape in ``bins`` bins and log10 of its total
    counts go into an MLP that corrects the fit's value of each line. The fit brings each
    paint's own line ratios and background, so the correction is small and learns what a
    per-pixel fit cannot: the noise of weak lines, shrunk towards the cluster's value.

    Input (B, C + 2 K): the pixel's counts, then what
    :func:`~xray_atlas.clusterfit.iter_cluster_fit_inputs` gives for it (the fit's net counts
    of the K families, then its cluster's scaled to the pixel). The MLP's inputs are
    standardised with statistics of the training inputs (:func:`fit_familiarity`), which
    also fit its familiarity guard; beyond it the fit's own values are returned."""
    lines, instrument = _prior_config(n_channels, n_outputs, lines, instrument)
    if bins < 1 or n_channels % bins:
        raise XrayAtlasError(f"bins={bins} must divide n_channels={n_channels}")
    unknown = [ln for ln in lines if ln not in PRIOR_FAMILIES]
    if unknown:
        raise XrayAtlasError(f"lines: {', '.join(unknown)} not among the physics engine's families")
    idx = torch.tensor([PRIOR_FAMILIES.index(ln) for ln in lines])
    return FitMLP(idx, n_channels=n_channels, n_outputs=n_outputs, hidden=hidden, bins=bins)


def neighbourhood_mean(block, size: int):
    """Mean over ``size`` x ``size`` pixel blocks of an (H, W, F) array, edges replicated (the
    surroundings a spatial map model sees, in training and inference alike)."""
    from scipy.ndimage import uniform_filter

    a = np.asarray(block, dtype=np.float32)
    return uniform_filter(a, size=(size, size, 1), mode="nearest")


class FixedLinear(nn.Module):
    """A baseline as a module: net counts = max(x @ operator, 0), nothing learnt.

    Parameters
    ----------
    operator : torch.Tensor
        (C, l) fixed matrix (a buffer).
    """

    def __init__(self, operator: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("operator", operator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C) counts -> (B, l) net counts
        return (x @ self.operator).clamp_min(0.0)


@register(
    "lsq",
    task="maps",
    trainable=False,
    n_channels=4096,
    n_outputs=12,
    lines=DEFAULT_MAP_LINES,
    spacing_kev=0.75,
    **_INSTR,
)
def lsq(*, n_channels: int, n_outputs: int, lines: tuple, spacing_kev: float, **instrument):
    """Baseline: linear least squares on the pure spectra of all 44 families plus a smooth
    background basis (PyMca's fast linear fit idea), negative values set to zero; a fixed
    (C, l) matrix, nothing learnt."""
    lines, instrument = _prior_config(n_channels, n_outputs, lines, instrument)
    m, _, _ = lsq_operator(lines, PRIOR_FAMILIES, n_channels, instrument, spacing_kev)
    return FixedLinear(torch.from_numpy(m))


@register("roi", task="maps", trainable=False, n_channels=4096, n_outputs=12, lines=DEFAULT_MAP_LINES, **_INSTR)
def roi(*, n_channels: int, n_outputs: int, lines: tuple, **instrument):
    """Baseline: window (ROI) sums: counts within +/- 1 FWHM of each family's strongest line,
    minus a straight background from two side windows of half that width, divided by the
    share of the family's net counts that falls in the window (from its pure spectrum)."""
    lines, instrument = _prior_config(n_channels, n_outputs, lines, instrument)
    det = instrument_for(n_channels=n_channels, **instrument).detector
    pure = pure_matrix(lines, n_channels=n_channels, **instrument)
    e = det.offset_kev + det.gain_kev * np.arange(n_channels)
    m = np.zeros((n_channels, len(lines)), np.float32)
    for j in range(len(lines)):
        if not pure[:, j].any():
            continue
        peak = e[int(np.argmax(pure[:, j]))]
        fwhm = float(det.fwhm_kev(peak))
        inside = np.abs(e - peak) <= fwhm
        left = (e < peak - fwhm) & (e >= peak - 1.5 * fwhm)
        right = (e > peak + fwhm) & (e <= peak + 1.5 * fwhm)
        n_in = inside.sum()
        col = inside.astype(np.float64)
        for side in (left, right):
            if side.any():
                col[side] -= 0.5 * n_in / side.sum()
        share = float(col @ pure[:, j])
        m[:, j] = col / max(share, 1e-6)
    return FixedLinear(torch.from_numpy(m))
