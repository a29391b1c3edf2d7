"""The fixed prior layer of the map models: pure line-family spectra from the physics engine
(and, for the least-squares baseline and the prior MLP, a smooth background basis).

Study 001's "+" models multiply the spectrum with normalised pure-element spectra W (d x l);
here W comes from :func:`xray_atlas.physics.spectra.pure_spectrum` for the model's
instrument (tube, detector resolution, channel calibration), so a model can be rebuilt for
any scanner from its card.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import XrayAtlasError

__all__ = [
    "instrument_for",
    "instrument_from_metadata",
    "pure_matrix",
    "background_basis",
    "lsq_operator",
    "INSTRUMENT_DEFAULTS",
    "PRIOR_FAMILIES",
]

#: The line families of the physics engine's 26 default elements (K, L and M where xraylib has
#: lines in 1-40 keV, ``SpectrumGenerator().families``; a test keeps them in step), and Al-K and
#: Si-K of ultramarine, smalt and the earths.
PRIOR_FAMILIES = (
    "Al-K",
    "Si-K",
    "P-K",
    "S-K",
    "Cl-K",
    "Ar-K",
    "K-K",
    "Ca-K",
    "Ti-K",
    "Cr-K",
    "Mn-K",
    "Fe-K",
    "Co-K",
    "Ni-K",
    "Ni-L",
    "Cu-K",
    "Cu-L",
    "Zn-K",
    "Zn-L",
    "As-K",
    "As-L",
    "Se-K",
    "Se-L",
    "Sr-K",
    "Sr-L",
    "Ag-K",
    "Ag-L",
    "Cd-K",
    "Cd-L",
    "Sn-K",
    "Sn-L",
    "Sb-K",
    "Sb-L",
    "Ba-K",
    "Ba-L",
    "Ba-M",
    "Au-L",
    "Au-M",
    "Hg-L",
    "Hg-M",
    "Pb-L",
    "Pb-M",
    "Bi-L",
    "Bi-M",
)

#: The instrument parameters every prior model carries in its configuration (M6 Jetstream-like).
INSTRUMENT_DEFAULTS = {
    "offset_kev": 0.0,
    "gain_kev": 0.01,
    "fwhm_mnka_ev": 145.0,
    "anode": "Rh",
    "tube_kv": 50.0,
    "polycapillary": True,
}


def instrument_for(
    *,
    n_channels: int,
    offset_kev: float,
    gain_kev: float,
    fwhm_mnka_ev: float,
    anode: str,
    tube_kv: float,
    polycapillary: bool,
):
    """The :class:`~xray_atlas.physics.spectra.Instrument` a prior is computed for."""
    from ..physics.detector import Detector
    from ..physics.reference import M6_OPTIC
    from ..physics.spectra import Instrument
    from ..physics.tube import Tube

    det = Detector(
        n_channels=int(n_channels),
        gain_kev=float(gain_kev),
        offset_kev=float(offset_kev),
        fwhm_mnka_ev=float(fwhm_mnka_ev),
        step_height=3e-4,
    )
    return Instrument(Tube(anode, float(tube_kv)), det, optic=M6_OPTIC if polycapillary else None)


def instrument_from_metadata(metadata: dict | None) -> dict:
    """The prior's instrument parameters a cube's metadata states (``fwhm_mnka_ev``,
    ``tube_kv``, ``anode``); the others keep :data:`INSTRUMENT_DEFAULTS`."""
    meta = metadata or {}
    inst: dict = {}
    for key in ("fwhm_mnka_ev", "tube_kv"):
        try:
            if key in meta:
                inst[key] = float(np.asarray(meta[key]).ravel()[0])
        except (TypeError, ValueError, IndexError):
            pass
    if isinstance(meta.get("anode"), str):
        inst["anode"] = meta["anode"]
    return inst


@lru_cache(maxsize=256)
def _pure_column(family: str, key: tuple) -> np.ndarray:
    # cached per family, so that operators listing the families in another order share them
    from ..physics.spectra import pure_spectrum

    inst = instrument_for(**dict(key))
    try:
        return pure_spectrum(family, instrument=inst).astype(np.float32)
    except XrayAtlasError:
        return np.zeros(inst.detector.n_channels, np.float32)  # not excited by this tube: a zero column


def pure_matrix(families, *, n_channels: int, **instrument) -> np.ndarray:
    """(C, F) detected spectra of one net count of each family (zero columns for families the
    tube cannot excite)."""
    params = {**INSTRUMENT_DEFAULTS, **instrument, "n_channels": n_channels}
    key = tuple(sorted(params.items()))
    return np.stack([_pure_column(f, key) for f in families], axis=1)


def background_basis(n_channels: int, offset_kev: float, gain_kev: float, *, spacing_kev: float = 0.75) -> np.ndarray:
    """(C, B) smooth bumps (Gaussians of sigma = spacing) tiling the energy axis, each with unit
    sum: the continuum and the scatter peaks of any matrix are close to a combination of them."""
    e = offset_kev + gain_kev * np.arange(n_channels)
    lo, hi = max(e[0], 0.5), e[-1]
    centres = np.arange(lo, hi + spacing_kev, spacing_kev)
    b = np.exp(-0.5 * ((e[:, None] - centres[None, :]) / spacing_kev) ** 2)
    return (b / np.maximum(b.sum(0, keepdims=True), 1e-12)).astype(np.float32)


def lsq_operator(
    lines: tuple, families: tuple, n_channels: int, instrument: dict, spacing_kev: float
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Linear least squares on pure spectra and a smooth background, as fixed matrices.

    Parameters
    ----------
    lines : tuple of str
        The line families whose net counts are wanted.
    families : tuple of str
        The families fitted beside them (``lines`` join them where missing).
    n_channels : int
        Channels of the spectra.
    instrument : dict
        The instrument parameters of :func:`pure_matrix`, with ``offset_kev`` and ``gain_kev``.
    spacing_kev : float
        Spacing of the :func:`background_basis` bumps.

    Returns
    -------
    lines_operator : ndarray, (C, l) float32
        M with net_l = x @ M for the ``lines``.
    full : ndarray, (C, K) float32
        The whole operator: the families' net counts, then the background's coefficients.
    families : tuple of str
        The family names, in the order of the first columns of ``full``.
    """
    fams = tuple(dict.fromkeys((*lines, *families)))
    a = np.concatenate(
        [
            pure_matrix(fams, n_channels=n_channels, **instrument),
            background_basis(n_channels, instrument["offset_kev"], instrument["gain_kev"], spacing_kev=spacing_kev),
        ],
        axis=1,
    ).astype(np.float64)
    keep = np.abs(a).sum(0) > 0
    pinv = np.zeros((a.shape[1], n_channels))
    pinv[keep] = np.linalg.pinv(a[:, keep], rcond=1e-7)
    return pinv[[fams.index(ln) for ln in lines]].T.astype(np.float32), pinv.T.astype(np.float32), fams
