"""Element line families from xraylib: energies and relative intensities.

A line family is written ``<Symbol>-<Family>`` (``Fe-K``, ``Pb-L``, ``Hg-M``). Its lines
are every radiative transition that fills a vacancy in that shell group (K; L1-L3;
M1-M5), enumerated from xraylib's IUPAC line macros, never from a hand-typed table.
Relative intensities are xraylib's fluorescence production cross sections with
Kissel photo-ionisation and full cascade (``CS_FluorLine_Kissel_Cascade``) at an
excitation energy, normalised to the family total.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from ..errors import XrayAtlasError

__all__ = [
    "Line",
    "FAMILIES",
    "DEFAULT_MAP_LINES",
    "atomic_number",
    "symbol",
    "parse_line_family",
    "family_lines",
    "marker_lines",
    "check_in_range",
    "SOFT_KEV",
]

FAMILIES = ("K", "L", "M")

#: The twelve line families of the MA-XRF study (docs/dev/contracts.md section 1).
DEFAULT_MAP_LINES = ("S-K", "K-K", "Ca-K", "Cr-K", "Mn-K", "Fe-K", "Cu-K", "Zn-K", "Sr-K", "Au-L", "Hg-L", "Pb-L")

#: Lines softer than this are absorbed in air and in the detector window of MA-XRF scanners:
#: an element's soft family (Fe L, Cu L) is marked only when none of its harder families is.
SOFT_KEV = 1.2

_IUPAC = re.compile(r"^(K|L[1-3]|M[1-5])([LMNOPQ][1-7])_LINE$")

# Siegbahn names of the common lines, for labels only.
_SIEGBAHN = {
    "KL3": "Kα1",
    "KL2": "Kα2",
    "KM3": "Kβ1",
    "KM2": "Kβ3",
    "KN3": "Kβ2",
    "KN2": "Kβ2",
    "L3M5": "Lα1",
    "L3M4": "Lα2",
    "L2M4": "Lβ1",
    "L3N5": "Lβ2",
    "L1M3": "Lβ3",
    "L1M2": "Lβ4",
    "L3N1": "Lβ6",
    "L2N4": "Lγ1",
    "L1N2": "Lγ2",
    "L1N3": "Lγ3",
    "L2O4": "Lγ6",
    "L3M1": "Lℓ",
    "L2M1": "Lη",
    "M5N7": "Mα1",
    "M5N6": "Mα2",
    "M4N6": "Mβ",
    "M3N5": "Mγ",
    "M4N3": "Mζ2",
    "M5N3": "Mζ1",
}


@dataclass(frozen=True)
class Line:
    """One emission line: IUPAC name (``KL3``), Siegbahn label, energy in keV, relative intensity."""

    iupac: str
    label: str
    energy_kev: float
    relative_intensity: float


def _xrl():
    import xraylib

    return xraylib


@cache
def line_macros() -> tuple[tuple[str, str, int], ...]:
    """(IUPAC name, initial shell, xraylib macro value) of every single line."""
    xrl = _xrl()
    out = []
    for name in dir(xrl):
        m = _IUPAC.match(name)
        if m:
            out.append((m.group(1) + m.group(2), m.group(1), getattr(xrl, name)))
    return tuple(out)


def atomic_number(element: str | int, *, parameter: str = "element") -> int:
    """Atomic number of an element symbol (``"Fe"``) or number; the error names ``parameter``."""
    if isinstance(element, (int,)) and not isinstance(element, bool):
        if 1 <= element <= 103:
            return int(element)
        raise XrayAtlasError(f"{parameter}={element}: atomic number must lie in 1-103")
    if not isinstance(element, str) or not element.strip():
        raise XrayAtlasError(f"{parameter}={element!r} is not an element symbol")
    sym = element.strip()
    try:
        z = _xrl().SymbolToAtomicNumber(sym[0].upper() + sym[1:].lower())
    except ValueError:
        z = 0
    if z <= 0:
        raise XrayAtlasError(f"{parameter}={element!r} is not an element symbol")
    return int(z)


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z``."""
    return _xrl().AtomicNumberToSymbol(atomic_number(z, parameter="z"))


def parse_line_family(name: str, *, parameter: str = "line") -> tuple[str, str]:
    """Split ``"Fe-K"`` into ``("Fe", "K")``, checking both parts."""
    if not isinstance(name, str) or name.count("-") != 1:
        raise XrayAtlasError(f"{parameter}={name!r}: write a line family as <Symbol>-<Family>, e.g. 'Fe-K'")
    sym, fam = name.split("-")
    try:
        z = atomic_number(sym, parameter=parameter)
    except XrayAtlasError:
        raise XrayAtlasError(f"{parameter}={name!r}: {sym!r} is not an element symbol") from None
    fam = fam.strip().upper()
    if fam not in FAMILIES:
        raise XrayAtlasError(f"{parameter}={name!r}: family must be one of {', '.join(FAMILIES)}")
    return symbol(z), fam


@lru_cache(maxsize=4096)
def _family_lines(z: int, family: str, excitation_kev: float, min_relative: float) -> tuple[Line, ...]:
    xrl = _xrl()
    lines = []
    for iupac, shell, macro in line_macros():
        if not shell.startswith(family):
            continue
        try:
            energy = xrl.LineEnergy(z, macro)
            cs = xrl.CS_FluorLine_Kissel_Cascade(z, macro, excitation_kev)
        except ValueError:
            continue
        if energy > 0 and cs > 0:
            lines.append((iupac, energy, cs))
    total = sum(cs for _, _, cs in lines)
    if not lines or total <= 0:
        return ()
    out = [
        Line(iupac, _SIEGBAHN.get(iupac, iupac), float(e), float(cs / total))
        for iupac, e, cs in lines
        if cs / total >= min_relative
    ]
    norm = sum(line.relative_intensity for line in out)
    out = [Line(l.iupac, l.label, l.energy_kev, l.relative_intensity / norm) for l in out]
    return tuple(sorted(out, key=lambda l: -l.relative_intensity))


def family_lines(line: str, *, excitation_kev: float | None = None, min_relative: float = 1e-3) -> tuple[Line, ...]:
    """The lines of a family with energies (keV) and intensities that sum to 1.

    Parameters
    ----------
    line : str
        Line family, ``"<Symbol>-<Family>"``.
    excitation_kev : float, optional
        Photon energy that ionises the atom. Default: 25 keV, or 1.2 x the highest edge
        of the family when that lies above 25 keV (so K lines of heavy elements exist).
    min_relative : float
        Lines weaker than this fraction of the family are dropped (then renormalised).

    Raises
    ------
    XrayAtlasError
        For an unknown symbol, or a family the element does not emit (e.g. ``"C-L"``), or
        an excitation below the family's edge.
    """
    sym, fam = parse_line_family(line)
    z = atomic_number(sym)
    if excitation_kev is None:
        xrl = _xrl()
        top = {"K": xrl.K_SHELL, "L": xrl.L1_SHELL, "M": xrl.M1_SHELL}[fam]
        try:
            edge = xrl.EdgeEnergy(z, top)
        except ValueError:
            edge = 0.0
        excitation_kev = max(25.0, 1.2 * edge)
    elif not (excitation_kev > 0):
        raise XrayAtlasError(f"excitation_kev={excitation_kev} must be > 0")
    out = _family_lines(z, fam, float(excitation_kev), float(min_relative))
    if not out:
        raise XrayAtlasError(f"line={line!r}: xraylib gives no {fam} lines for {sym} excited at {excitation_kev:g} keV")
    return out


def marker_lines(
    families: list[str] | tuple[str, ...],
    *,
    lo_kev: float,
    hi_kev: float,
    min_relative: float = 0.01,
    soft_kev: float = SOFT_KEV,
) -> list[tuple[str, Line]]:
    """The lines to mark on a spectrum for the named line families.

    Every line of a family between ``lo_kev`` and ``hi_kev`` is marked, down to the start of
    the energy axis, so the only lines of light elements (C Ka 0.277 keV, O Ka 0.525, Na Ka
    1.04) are marked on SEM-EDS spectra. A family whose strongest line lies below
    ``soft_kev`` is left out when another named family of the same element has a line in
    view at or above ``soft_kev``: Fe L beside Fe K, Cu L beside Cu K only clutter an
    MA-XRF spectrum (air and the detector window absorb them).

    Parameters
    ----------
    families : sequence of str
        Line families ``"<Symbol>-<Family>"`` (``"Fe-K"``). A family the element does not
        emit (``"C-L"``) marks nothing.
    lo_kev, hi_kev : float
        Energy range of the axis (keV).
    min_relative : float
        Lines weaker than this fraction of their family are not marked.
    soft_kev : float
        See above.

    Returns
    -------
    list of (str, Line)
        ``(family, line)`` pairs, family by family in the order given, strongest line first.

    Raises
    ------
    XrayAtlasError
        For a badly written family or an empty energy range.
    """
    lo, hi = float(lo_kev), float(hi_kev)
    if not (hi > lo):
        raise XrayAtlasError(f"hi_kev={hi_kev} must be above lo_kev={lo_kev}")
    shown: dict[str, tuple[str, list[Line]]] = {}
    for name in families:
        sym, fam = parse_line_family(name, parameter="families")
        try:
            lines = family_lines(f"{sym}-{fam}")
        except XrayAtlasError:
            continue  # e.g. no M lines for a light element: nothing to mark
        keep = [ln for ln in lines if lo <= ln.energy_kev <= hi and ln.relative_intensity >= min_relative]
        if keep:
            shown[name] = (sym, keep)
    hard = {sym for sym, keep in shown.values() if any(ln.energy_kev >= soft_kev for ln in keep)}
    out = []
    for name, (sym, keep) in shown.items():
        if max(keep, key=lambda ln: ln.relative_intensity).energy_kev < soft_kev and sym in hard:
            continue
        out.extend((name, ln) for ln in keep)
    return out


def check_in_range(
    line: str,
    *,
    lo_kev: float,
    hi_kev: float,
    excitation_kev: float,
    min_relative: float = 0.01,
    parameter: str = "lines",
) -> str:
    """The family's name as written here (``"as-k"`` -> ``"As-K"``) when one of its lines, at
    least ``min_relative`` of the family, lies within ``lo_kev``-``hi_kev`` and is excited by
    photons of ``excitation_kev`` (a tube's voltage); otherwise an error naming the family,
    the range and where its lines lie.

    Raises
    ------
    XrayAtlasError
        For a badly written family, or one with no such line (``U-K`` on a 0-20 keV axis of a
        50 kV tube: its K edge is at 115.6 keV, its lines at 94.7-114.5 keV).
    """
    sym, fam = parse_line_family(line, parameter=parameter)
    name = f"{sym}-{fam}"
    where = f"this cube's {lo_kev:.2f}-{hi_kev:.2f} keV"
    try:
        excited = family_lines(name, excitation_kev=float(excitation_kev), min_relative=min_relative)
    except XrayAtlasError:
        excited = ()
    if any(lo_kev <= ln.energy_kev <= hi_kev for ln in excited):
        return name
    try:
        every = family_lines(name, min_relative=min_relative)
    except XrayAtlasError:
        raise XrayAtlasError(f"{parameter}: {name}: xraylib knows no {fam} lines of {sym}") from None
    span = f"{min(ln.energy_kev for ln in every):.2f}-{max(ln.energy_kev for ln in every):.2f} keV"
    if not excited:
        xrl = _xrl()
        shell = {"K": "K", "L": "L3", "M": "M5"}[fam]  # the family's lowest edge
        edge = xrl.EdgeEnergy(atomic_number(sym), getattr(xrl, f"{shell}_SHELL"))
        raise XrayAtlasError(
            f"{parameter}: {name} has no line within {where} that a {excitation_kev:g} kV tube "
            f"excites (its {shell} edge is at {edge:.2f} keV, its lines at {span})"
        )
    raise XrayAtlasError(f"{parameter}: {name} has no line within {where} (its lines lie at {span})")
