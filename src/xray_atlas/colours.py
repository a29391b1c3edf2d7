"""Each element's colour, shared by napari's layers and the exported figures (no Qt here).

A map runs from black to its element's colour, so that a pixel without the element adds
nothing under napari's additive blending and the same map looks the same in a figure.
"""

from __future__ import annotations

__all__ = ["ELEMENT_COLOURS", "element_colour", "line_symbol"]

# Pigment-minded: lead white pale blue, vermilion red, copper green-blue cyan, ochre yellow,
# cobalt blue, orpiment yellow.
ELEMENT_COLOURS: dict[str, tuple[float, float, float]] = {
    "Pb": (0.55, 0.7, 1.0),
    "Hg": (1.0, 0.12, 0.08),
    "Cu": (0.0, 0.9, 0.85),
    "Fe": (1.0, 0.75, 0.0),
    "Au": (1.0, 0.5, 0.0),
    "Ca": (0.25, 0.9, 0.2),
    "Zn": (1.0, 0.2, 0.85),
    "Cr": (0.55, 1.0, 0.35),
    "Mn": (0.65, 0.3, 1.0),
    "S": (0.85, 1.0, 0.1),
    "K": (1.0, 0.45, 0.55),
    "Sr": (0.75, 0.45, 1.0),
    "Ti": (0.3, 0.55, 1.0),
    "Co": (0.1, 0.25, 1.0),
    "As": (1.0, 0.9, 0.25),
    "Ba": (0.9, 0.85, 0.55),
    "Sn": (0.6, 0.8, 0.8),
    "Sb": (1.0, 0.65, 0.3),
    "Ni": (0.4, 0.9, 0.6),
    "Ag": (0.75, 0.8, 0.9),
    "Cd": (1.0, 0.85, 0.0),
    "Ar": (0.5, 0.5, 0.9),
    "Cl": (0.5, 1.0, 0.6),
    "Se": (1.0, 0.35, 0.3),
    "Br": (0.8, 0.4, 0.2),
    "Rh": (0.6, 0.6, 0.75),
    "Bi": (0.9, 0.6, 0.9),
    "P": (1.0, 0.6, 0.8),
    "V": (0.5, 0.75, 0.3),
    "Si": (0.8, 0.7, 0.6),
    "Al": (0.7, 0.75, 0.85),
}
_FALLBACK = [(0.9, 0.4, 0.4), (0.4, 0.9, 0.4), (0.4, 0.6, 1.0), (1.0, 0.8, 0.3), (0.8, 0.4, 1.0), (0.3, 0.9, 0.9)]


def element_colour(symbol: str) -> tuple[float, float, float]:
    """An element's RGB colour (0-1); elements without one of their own get a fixed one by Z."""
    if symbol in ELEMENT_COLOURS:
        return ELEMENT_COLOURS[symbol]
    try:
        from .physics.lines import atomic_number

        z = atomic_number(symbol)
    except Exception:  # noqa: BLE001 - not an element: any fixed colour
        z = sum(map(ord, symbol))
    return _FALLBACK[z % len(_FALLBACK)]


def line_symbol(name: str) -> str:
    """The element of a line family (``"Fe-K"`` -> ``"Fe"``), a bare symbol, or any other name
    (its part before the first ``-``)."""
    from .physics.lines import parse_line_family

    try:
        return parse_line_family(name)[0]
    except Exception:  # noqa: BLE001 - a bare symbol or any other name
        return str(name).split("-")[0].strip()
