"""Materials: compositions from chemical formulas (xraylib's parser), mixtures, pigments.

Pigments are given by their formulas (sources: Eastaugh et al., *Pigment Compendium*,
Elsevier 2004; densities from the same and from the CRC Handbook) and mixed with a linseed-oil
binder (C18H32O2) at a pigment mass fraction typical of oil paint; traces (Mn in ochres and
umbers, Sr in chalk and gypsum, K and Ca in earths) are part of their recipes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import XrayAtlasError
from .lines import atomic_number, symbol

__all__ = ["Material", "compound", "mix", "PIGMENTS", "pigment", "AIR", "BINDER", "mass_attenuation"]


@dataclass(frozen=True)
class Material:
    """A homogeneous material: mass fraction per atomic number, and density in g/cm^3."""

    name: str
    fractions: tuple[tuple[int, float], ...]
    density: float

    @property
    def elements(self) -> dict[int, float]:
        return dict(self.fractions)

    def fraction(self, element: str | int) -> float:
        """Mass fraction of one element (0 if absent)."""
        return self.elements.get(atomic_number(element), 0.0)

    def symbols(self) -> list[str]:
        return [symbol(z) for z, _ in self.fractions]


def _normalise(fr: Mapping[int, float], name: str) -> tuple[tuple[int, float], ...]:
    total = sum(fr.values())
    if not total > 0:
        raise XrayAtlasError(f"material {name!r}: mass fractions must sum to more than 0")
    return tuple(sorted((int(z), float(v) / total) for z, v in fr.items() if v > 0))


@lru_cache(maxsize=512)
def _parse_formula(formula: str) -> tuple[tuple[int, float], ...]:
    import xraylib

    try:
        c = xraylib.CompoundParser(formula)
    except ValueError:
        raise XrayAtlasError(f"formula={formula!r} is not a chemical formula xraylib can parse") from None
    return tuple(zip(c["Elements"], c["massFractions"]))


def compound(formula: str | Mapping[str, float], *, density: float, name: str | None = None) -> Material:
    """A material from a formula (``"PbCrO4"``) or from mass fractions (``{"Fe": 0.65, ...}``).

    Parameters
    ----------
    formula : str or mapping
        Chemical formula in xraylib syntax, or element symbol -> mass fraction (normalised).
    density : float
        g/cm^3, > 0.
    name : str, optional
        Display name (default: the formula).
    """
    if not (density > 0):
        raise XrayAtlasError(f"density={density} must be > 0 g/cm^3")
    if isinstance(formula, str):
        fr = dict(_parse_formula(formula))
        label = name or formula
    else:
        fr = {}
        for sym, w in formula.items():
            if w < 0:
                raise XrayAtlasError(f"mass fraction of {sym} is negative ({w})")
            z = atomic_number(sym, parameter="formula")
            fr[z] = fr.get(z, 0.0) + float(w)
        label = name or "mixture"
    return Material(label, _normalise(fr, label), float(density))


def mix(parts: Mapping[Material, float] | list[tuple[Material, float]], *, name: str = "mixture") -> Material:
    """Mix materials by mass fraction; the density follows from the volume of each part."""
    items = list(parts.items()) if isinstance(parts, Mapping) else list(parts)
    if not items:
        raise XrayAtlasError("mix needs at least one material")
    if any(w < 0 for _, w in items):
        raise XrayAtlasError("mix: mass fractions must be >= 0")
    total = sum(w for _, w in items)
    if not total > 0:
        raise XrayAtlasError("mix: mass fractions must sum to more than 0")
    fr: dict[int, float] = {}
    volume = 0.0
    for mat, w in items:
        w = w / total
        volume += w / mat.density
        for z, f in mat.fractions:
            fr[z] = fr.get(z, 0.0) + w * f
    return Material(name, _normalise(fr, name), 1.0 / volume)


#: Air at 20 C: N2 75.5, O2 23.2, Ar 1.3 wt % (its Ar K lines appear in every spectrum in air).
AIR = compound({"N": 0.755, "O": 0.232, "Ar": 0.013}, density=1.205e-3, name="air")
#: Linseed oil as the binder of oil paint (linoleic acid).
BINDER = compound("C18H32O2", density=0.93, name="linseed oil")


def _p(formula: str, density: float, name: str) -> Material:
    return compound(formula, density=density, name=name)


def _paint(name: str, pigment_parts: list[tuple[Material, float]], pigment_fraction: float = 0.8) -> Material:
    pig = mix(pigment_parts, name=name)
    return mix([(pig, pigment_fraction), (BINDER, 1.0 - pigment_fraction)], name=name)


_lead_white = _p("Pb3(CO3)2(OH)2", 6.8, "lead white")
_chalk = _p("CaCO3", 2.71, "chalk")
_gypsum = _p("CaSO4(H2O)2", 2.32, "gypsum")
_celestine = _p("SrSO4", 3.96, "celestine")
_goethite = _p("FeO(OH)", 4.27, "goethite")
_hematite = _p("Fe2O3", 5.26, "hematite")
_kaolin = _p("Al2Si2O5(OH)4", 2.6, "kaolinite")
_pyrolusite = _p("MnO2", 5.03, "pyrolusite")
_illite = _p("KAl2Si3AlO10(OH)2", 2.8, "illite")

#: Paints (pigment in linseed oil) and grounds, by common name.
PIGMENTS: dict[str, Material] = {
    "lead white": _paint("lead white", [(_lead_white, 1.0)], 0.88),
    "vermilion": _paint("vermilion", [(_p("HgS", 8.1, "cinnabar"), 1.0)]),
    "azurite": _paint("azurite", [(_p("Cu3(CO3)2(OH)2", 3.8, "azurite"), 1.0)], 0.75),
    "malachite": _paint("malachite", [(_p("Cu2CO3(OH)2", 4.0, "malachite"), 1.0)], 0.75),
    "yellow ochre": _paint(
        "yellow ochre", [(_goethite, 0.55), (_kaolin, 0.3), (_illite, 0.12), (_pyrolusite, 0.01), (_chalk, 0.02)], 0.7
    ),
    "red ochre": _paint("red ochre", [(_hematite, 0.6), (_kaolin, 0.3), (_illite, 0.08), (_pyrolusite, 0.02)], 0.7),
    "raw umber": _paint("raw umber", [(_hematite, 0.45), (_pyrolusite, 0.15), (_kaolin, 0.3), (_illite, 0.1)], 0.7),
    "chalk ground": mix(
        [(mix([(_chalk, 0.985), (_celestine, 0.015)], name="chalk"), 0.85), (_p("C10H16O5", 1.3, "animal glue"), 0.15)],
        name="chalk ground",
    ),
    "gypsum ground": mix(
        [(mix([(_gypsum, 0.98), (_celestine, 0.02)], name="gypsum"), 0.85), (_p("C10H16O5", 1.3, "animal glue"), 0.15)],
        name="gypsum ground",
    ),
    "zinc white": _paint("zinc white", [(_p("ZnO", 5.6, "zincite"), 1.0)]),
    "chrome yellow": _paint("chrome yellow", [(_p("PbCrO4", 6.1, "crocoite"), 1.0)]),
    "gold leaf": _p("Au", 19.3, "gold leaf"),
    "smalt": _paint(
        "smalt",
        [
            (
                compound(
                    {"Si": 0.30, "O": 0.45, "K": 0.12, "Co": 0.07, "As": 0.03, "Fe": 0.02, "Ni": 0.01},
                    density=2.6,
                    name="smalt glass",
                ),
                1.0,
            )
        ],
        0.7,
    ),
    "lead-tin yellow": _paint("lead-tin yellow", [(_p("Pb2SnO4", 8.0, "lead-tin yellow I"), 1.0)]),
    "naples yellow": _paint("naples yellow", [(_p("Pb2Sb2O7", 6.6, "lead antimonate"), 1.0)]),
    "cadmium yellow": _paint("cadmium yellow", [(_p("CdS", 4.8, "greenockite"), 1.0)]),
    "cadmium red": _paint("cadmium red", [(_p("CdS", 4.8, "greenockite"), 0.6), (_p("CdSe", 5.8, "cadmoselite"), 0.4)]),
    "titanium white": _paint("titanium white", [(_p("TiO2", 4.2, "rutile"), 1.0)]),
    "ultramarine": _paint("ultramarine", [(_p("Na8Al6Si6O24S3", 2.4, "lazurite"), 1.0)], 0.7),
    "prussian blue": _paint("prussian blue", [(_p("Fe4(Fe(CN)6)3", 1.8, "ferric ferrocyanide"), 1.0)], 0.6),
    "cobalt blue": _paint("cobalt blue", [(_p("CoAl2O4", 4.4, "cobalt aluminate"), 1.0)]),
    "emerald green": _paint("emerald green", [(_p("Cu4C4H6O4As6O12", 3.3, "copper acetoarsenite"), 1.0)]),
    "orpiment": _paint("orpiment", [(_p("As2S3", 3.5, "orpiment"), 1.0)]),
    "bone black": _paint(
        "bone black", [(_p("Ca5(PO4)3OH", 3.1, "hydroxyapatite"), 0.85), (_p("C", 2.0, "carbon"), 0.15)], 0.6
    ),
    "barium white": _paint("barium white", [(_p("BaSO4", 4.5, "baryte"), 1.0)]),
    "bismuth white": _paint("bismuth white", [(_p("BiONO3", 4.9, "bismuth oxynitrate"), 1.0)]),
    "silver leaf": _p("Ag", 10.5, "silver leaf"),
    "verdigris": _paint("verdigris", [(_p("Cu(CH3COO)2", 1.9, "copper acetate"), 1.0)], 0.6),
    "chromium oxide green": _paint("chromium oxide green", [(_p("Cr2O3", 5.2, "eskolaite"), 1.0)]),
    "lead red": _paint("lead red", [(_p("Pb3O4", 8.9, "minium"), 1.0)]),
    # realgar, the red arsenic sulfide beside orpiment, and lithopone, co-precipitated zinc
    # sulfide and barium sulfate (about 30 % ZnS): compositions from Eastaugh et al., Pigment
    # Compendium (2004); densities of the minerals from mindat.org (realgar 3.56, sphalerite
    # 4.09, baryte 4.5 g/cm^3)
    "realgar": _paint("realgar", [(_p("As4S4", 3.56, "realgar"), 1.0)]),
    "lithopone": _paint("lithopone", [(_p("ZnS", 4.09, "sphalerite"), 0.3), (_p("BaSO4", 4.5, "baryte"), 0.7)]),
}


def pigment(name: str) -> Material:
    """A paint from :data:`PIGMENTS` by name (case-insensitive)."""
    key = name.strip().lower()
    if key not in PIGMENTS:
        raise XrayAtlasError(f"pigment={name!r} is unknown; known: {', '.join(sorted(PIGMENTS))}")
    return PIGMENTS[key]


@lru_cache(maxsize=4096)
def _element_mu(z: int, energies: tuple[float, ...], kind: str) -> np.ndarray:
    import xraylib

    fn = {"total": xraylib.CS_Total, "photo": xraylib.CS_Photo}[kind]
    return np.array([fn(z, e) for e in energies])


def mass_attenuation(material: Material, energies: np.ndarray, *, kind: str = "total") -> np.ndarray:
    """Mass attenuation coefficient (cm^2/g) of a material at ``energies`` (keV), from xraylib."""
    e = tuple(float(v) for v in np.atleast_1d(energies))
    if min(e) <= 0:
        raise XrayAtlasError("energies must be > 0 keV")
    return _material_mu(material, e, kind).copy()


@lru_cache(maxsize=65536)
def _material_mu(material: Material, e: tuple[float, ...], kind: str) -> np.ndarray:
    out = np.zeros(len(e))
    for z, w in material.fractions:
        out += w * _element_mu(z, e, kind)
    return out
