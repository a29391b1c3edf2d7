"""Turning cubes and core results into napari layer data."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..cube import SpectralCube
from ..physics.lines import parse_line_family

__all__ = ["xa_meta", "xa_metadata", "cube_layer_data", "map_layer_data", "cube_of", "is_cube_layer", "SYNC_BYTES",
           "element_colormap", "element_colour", "ELEMENT_COLOURS", "RESULT_KINDS", "strongest", "show_readable",
           "grid_of", "physical_grid", "pixel_size_of", "show_scale_bar"]

#: Cubes up to this size get their total-counts image synchronously in the reader;
#: larger ones stream on a worker thread while the layer fills in.
SYNC_BYTES = int(os.environ.get("XRAY_ATLAS_SYNC_BYTES", 256 * 2**20))

# Each element's colour at full strength; its colormap runs from black, so that a pixel
# without the element adds nothing under additive blending (napari's inverted "I ..." maps are
# white at zero and turn the canvas white). Pigment-minded: lead white pale blue, vermilion
# red, copper green-blue cyan, ochre yellow, cobalt blue, orpiment yellow.
ELEMENT_COLOURS: dict[str, tuple[float, float, float]] = {
    "Pb": (0.55, 0.7, 1.0), "Hg": (1.0, 0.12, 0.08), "Cu": (0.0, 0.9, 0.85), "Fe": (1.0, 0.75, 0.0),
    "Au": (1.0, 0.5, 0.0), "Ca": (0.25, 0.9, 0.2), "Zn": (1.0, 0.2, 0.85), "Cr": (0.55, 1.0, 0.35),
    "Mn": (0.65, 0.3, 1.0), "S": (0.85, 1.0, 0.1), "K": (1.0, 0.45, 0.55), "Sr": (0.75, 0.45, 1.0),
    "Ti": (0.3, 0.55, 1.0), "Co": (0.1, 0.25, 1.0), "As": (1.0, 0.9, 0.25), "Ba": (0.9, 0.85, 0.55),
    "Sn": (0.6, 0.8, 0.8), "Sb": (1.0, 0.65, 0.3), "Ni": (0.4, 0.9, 0.6), "Ag": (0.75, 0.8, 0.9),
    "Cd": (1.0, 0.85, 0.0), "Ar": (0.5, 0.5, 0.9), "Cl": (0.5, 1.0, 0.6), "Se": (1.0, 0.35, 0.3),
    "Br": (0.8, 0.4, 0.2), "Rh": (0.6, 0.6, 0.75), "Bi": (0.9, 0.6, 0.9), "P": (1.0, 0.6, 0.8),
    "V": (0.5, 0.75, 0.3), "Si": (0.8, 0.7, 0.6), "Al": (0.7, 0.75, 0.85),
}
_FALLBACK = [(0.9, 0.4, 0.4), (0.4, 0.9, 0.4), (0.4, 0.6, 1.0), (1.0, 0.8, 0.3), (0.8, 0.4, 1.0), (0.3, 0.9, 0.9)]
_CMAP_CACHE: dict[str, Any] = {}


def element_colour(symbol: str) -> tuple[float, float, float]:
    """An element's RGB colour (0-1); elements without one of their own get a fixed one by Z."""
    if symbol in ELEMENT_COLOURS:
        return ELEMENT_COLOURS[symbol]
    try:
        from ..physics.lines import atomic_number

        z = atomic_number(symbol)
    except Exception:  # noqa: BLE001 - not an element: any fixed colour
        z = sum(map(ord, symbol))
    return _FALLBACK[z % len(_FALLBACK)]


def element_colormap(line: str) -> Any:
    """A napari colormap for a line family or element: black to the element's colour, so that
    additive blending of several maps stays readable (never white at zero)."""
    from napari.utils.colormaps import Colormap

    try:
        sym, _ = parse_line_family(line)
    except Exception:  # noqa: BLE001 - a bare symbol or any other name
        sym = str(line).split("-")[0]
    if sym not in _CMAP_CACHE:
        r, g, b = element_colour(sym)
        _CMAP_CACHE[sym] = Colormap([[0.0, 0.0, 0.0, 1.0], [r, g, b, 1.0]], name=f"xray-atlas {sym}")
    return _CMAP_CACHE[sym]


def xa_metadata(metadata: Any) -> dict:
    """The xray-atlas part of a layer metadata dict (empty dict if none)."""
    xa = metadata.get("xray_atlas", {}) if isinstance(metadata, dict) else {}
    return xa if isinstance(xa, dict) else {}


def xa_meta(layer: Any) -> dict:
    """The xray-atlas part of a layer's metadata (empty dict if none)."""
    return xa_metadata(getattr(layer, "metadata", None))


def cube_of(layer: Any) -> SpectralCube | None:
    """The SpectralCube behind a layer, if it is a cube layer."""
    cube = xa_meta(layer).get("cube")
    return cube if isinstance(cube, SpectralCube) else None


def is_cube_layer(layer: Any) -> bool:
    return cube_of(layer) is not None


def map_layer_data(name: str, data: np.ndarray, *, line: str | None = None, kind: str = "map",
                   visible: bool = True, extra: dict | None = None) -> tuple:
    """An Image layer tuple for an elemental or window map, colour by element, additive."""
    meta = {"xray_atlas": {"kind": kind, **({"line": line} if line else {}), **(extra or {})}}
    kwargs = {
        "name": name,
        "colormap": element_colormap(line) if line else "magma",
        "blending": "additive",
        "visible": visible,
        "metadata": meta,
    }
    return (np.asarray(data, dtype=np.float32), kwargs, "image")


def pixel_size_of(cube: SpectralCube) -> float | None:
    """The cube's pixel size in micrometres, or None when its file does not say."""
    value = getattr(cube, "pixel_size_um", None)
    if value is None:
        value = (cube.metadata or {}).get("pixel_size_um")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def physical_grid(pixel_size_um: float | None) -> dict:
    """``scale`` and ``units`` keyword arguments for a layer of pixels ``pixel_size_um`` wide:
    millimetres for scans of 10 um steps and coarser (a painting's macro-XRF scan), micrometres
    below (a microscope's map). Empty (napari's pixels) when the size is unknown."""
    if pixel_size_um is None or not np.isfinite(pixel_size_um) or pixel_size_um <= 0:
        return {}
    if pixel_size_um >= 10.0:
        return {"scale": (pixel_size_um / 1000.0,) * 2, "units": ("mm", "mm")}
    return {"scale": (float(pixel_size_um),) * 2, "units": ("µm", "µm")}


def show_scale_bar(viewer: Any = None) -> None:
    """Turn on ``viewer``'s scale bar (the current viewer by default): once layers carry
    millimetres, napari's bar reads in mm or um (it picks the prefix)."""
    if viewer is None:
        import napari

        viewer = napari.current_viewer()
    if viewer is None:
        return
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; viewer.scale_bar before
    bar = canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar
    bar.visible = True


def cube_layer_data(cube: SpectralCube, *, image: np.ndarray | None = None, pending: bool = False) -> list[tuple]:
    """Layer tuples for a cube: its total-counts image, then any reference maps (hidden), on
    the cube's physical grid (:func:`physical_grid`) when its pixel size is known.

    ``image`` is the total-counts image if already computed; with ``pending`` the image
    is a placeholder that a worker fills (see :func:`._reader.stream_total_counts`).
    """
    if image is None:
        image = cube.total_counts()
    grid = physical_grid(pixel_size_of(cube))
    meta = {"xray_atlas": {"kind": "cube", "cube": cube, "pending": pending}}
    kwargs: dict[str, Any] = {"name": f"{cube.name} counts", "colormap": "gray", "metadata": meta, **grid}
    if pending or not np.any(image):
        kwargs["contrast_limits"] = (0.0, 1.0)
    layers = [(image, kwargs, "image")]
    for line, ds in sorted(cube.reference_maps.items()):
        arr, kw, kind = map_layer_data(f"{line} (reference)", np.asarray(ds[()]), line=line, kind="reference map",
                                       visible=False)
        layers.append((arr, {**kw, **grid}, kind))
    return layers


#: Layer kinds that are results of a run (the readable-picture rule hides earlier ones).
RESULT_KINDS = ("map", "probability", "reference map", "window map", "clusters", "fit clusters")


def strongest(arrays: dict[str, np.ndarray], n: int = 3, *, by: str = "mean") -> list[str]:
    """The ``n`` names of ``arrays`` to show first: the highest mean (maps: the strongest lines)
    or, with ``by="spread"``, the highest standard deviation (probabilities: an element present
    everywhere or nowhere draws no picture)."""
    if by not in ("mean", "spread"):
        raise ValueError(f"by={by!r} must be 'mean' or 'spread'")

    def score(name: str) -> tuple[float, float]:
        a = np.asarray(arrays[name], dtype=np.float64)
        mean = float(np.nanmean(a)) if a.size else 0.0
        return (float(np.nanstd(a)) if a.size else 0.0, mean) if by == "spread" else (mean, 0.0)

    return sorted(arrays, key=score, reverse=True)[:n]


def grid_of(layer: Any, *, step: float = 1.0) -> dict:
    """``scale``, ``translate`` and ``units`` keyword arguments that put a new layer on
    ``layer``'s grid (``step`` times coarser: a subsampled preview)."""
    grid = {"scale": tuple(float(s) * step for s in layer.scale), "translate": tuple(layer.translate)}
    units = getattr(layer, "units", None)
    if units is not None:
        grid["units"] = tuple(str(u) for u in units)
    return grid


def show_readable(viewer: Any, shown: list, *, hide_cubes: bool) -> None:
    """After a run: its ``shown`` layers stay visible, every earlier result layer is hidden (and
    the cubes' total-counts images with ``hide_cubes``), so that additive layers never pile up
    into a white canvas. Hidden layers stay in the list, one click from view."""
    keep = {id(lyr) for lyr in shown}
    for lyr in list(viewer.layers):
        if id(lyr) in keep or not lyr.visible:
            continue
        kind = xa_meta(lyr).get("kind")
        if kind in RESULT_KINDS or (hide_cubes and kind == "cube"):
            lyr.visible = False
