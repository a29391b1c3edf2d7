"""Turning cubes and core results into napari layer data."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..colours import ELEMENT_COLOURS, element_colour, line_symbol
from ..cube import SpectralCube

__all__ = [
    "xa_meta",
    "xa_metadata",
    "cube_layer_data",
    "map_layer_data",
    "cube_of",
    "is_cube_layer",
    "SYNC_BYTES",
    "element_colormap",
    "element_colour",
    "ELEMENT_COLOURS",
    "RESULT_KINDS",
    "strongest",
    "show_readable",
    "to_hide",
    "grid_of",
    "provenance",
    "physical_grid",
    "SHOWN",
    "shown_opacity",
    "pixel_size_of",
    "show_scale_bar",
    "chi2_layer_data",
    "CHI2_LIMITS",
]

#: Cubes up to this size get their total-counts image synchronously in the reader;
#: larger ones stream on a worker thread while the layer fills in.
SYNC_BYTES = int(os.environ.get("XRAY_ATLAS_SYNC_BYTES", 256 * 2**20))

_CMAP_CACHE: dict[str, Any] = {}


def element_colormap(line: str) -> Any:
    """A napari colormap for a line family or element: black to the element's colour, so that
    additive blending of several maps stays readable (never white at zero)."""
    from napari.utils.colormaps import Colormap

    sym = line_symbol(line)
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


def provenance(cube: SpectralCube | None) -> dict:
    """What a result layer keeps of its cube for an export: ``source`` (the cube's name) and
    ``pixel_size_um`` when the cube states it."""
    if cube is None:
        return {}
    out: dict[str, Any] = {"source": cube.name}
    size = pixel_size_of(cube)
    if size is not None:
        out["pixel_size_um"] = size
    return out


def map_layer_data(
    name: str,
    data: np.ndarray,
    *,
    line: str | None = None,
    kind: str = "map",
    visible: bool = True,
    extra: dict | None = None,
) -> tuple:
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


#: Contrast limits of a reduced chi-square layer: a fit within Poisson noise reads about 1 (dark),
#: a line or shape the fit lacks 3 and more (bright).
CHI2_LIMITS = (0.0, 5.0)


def chi2_layer_data(data: np.ndarray, model: str, *, visible: bool = False, extra: dict | None = None) -> tuple:
    """An Image layer tuple for a fit's reduced chi-square map, ``"reduced chi2 (<model>)"``:
    magma from black, limits 0 to 5, not additive (it is read on its own, not mixed with the
    maps), hidden unless ``visible``. NaN (no counts) shows as nothing."""
    meta = {"xray_atlas": {"kind": "fit chi2", "model": model, **(extra or {})}}
    kwargs = {
        "name": f"reduced chi2 ({model})",
        "colormap": "magma",
        "contrast_limits": CHI2_LIMITS,
        "blending": "translucent",
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
    bar.position = "bottom_left"  # napari's notifications cover the bottom right corner


def counts_limits(image: np.ndarray) -> tuple[float, float]:
    """Contrast limits of a total-counts image. One value everywhere (a single spectrum's
    file is one pixel) is drawn mid-grey: napari's own limits would paint it white."""
    lo, hi = float(np.min(image)), float(np.max(image))
    if hi > lo:
        return lo, hi
    return (0.0, 2.0 * hi) if hi > 0 else (0.0, 1.0)


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
    kwargs["contrast_limits"] = (0.0, 1.0) if pending else counts_limits(image)
    layers = [(image, kwargs, "image")]
    for line, ds in sorted(cube.reference_maps.items()):
        arr, kw, kind = map_layer_data(
            f"{line} (reference)", np.asarray(ds[()]), line=line, kind="reference map", visible=False
        )
        layers.append((arr, {**kw, **grid}, kind))
    return layers


#: Layers shown after a run or when a result file opens: more additive layers blur into white.
SHOWN = 3


def shown_opacity(arrays: dict[str, np.ndarray], *, limits: tuple[float, float] | None = None) -> float:
    """The opacity of additive layers shown together ({line family or element: map}): the
    largest that keeps the sum of their colours, each map scaled to its contrast limits (its own
    minimum and maximum, or ``limits``), within range in every channel at 99 % of the pixels,
    so that where they overlap the hues mix instead of turning white. Lead white's pale blue
    over an ochre's yellow, at full opacity, made half of a painting white; maps that do not
    overlap keep full opacity. At most about 250,000 pixels are looked at (a few ms)."""
    total: np.ndarray | None = None
    for name, data in arrays.items():
        a = np.asarray(data)
        step = max(1, int(np.sqrt(a.size / 250_000)))
        a = np.asarray(a[::step, ::step] if a.ndim == 2 else a.ravel()[:: step * step], dtype=np.float32)
        lo, hi = limits if limits is not None else (float(np.nanmin(a, initial=0.0)), float(np.nanmax(a, initial=0.0)))
        scaled = np.nan_to_num(np.clip((a - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(a))
        part = scaled[..., None] * np.asarray(element_colour(line_symbol(name)), dtype=np.float32)
        total = part if total is None else total + part
    if total is None or total.size == 0:
        return 1.0
    peak = float(np.percentile(total.max(axis=-1), 99))
    return 1.0 if peak <= 1.0 else round(1.0 / peak, 3)


#: Layer kinds that are results of a run (the readable-picture rule hides earlier ones).
RESULT_KINDS = ("map", "probability", "reference map", "window map", "clusters", "fit clusters", "rgb", "fit chi2")


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


def to_hide(viewer: Any, shown: list, *, hide_cubes: bool) -> list:
    """The layers :func:`show_readable` hides: every visible result layer not in ``shown``
    (and the cubes' total-counts images with ``hide_cubes``)."""
    keep = {id(lyr) for lyr in shown}
    out = []
    for lyr in list(viewer.layers):
        if id(lyr) in keep or not lyr.visible:
            continue
        kind = xa_meta(lyr).get("kind")
        if kind in RESULT_KINDS or (hide_cubes and kind == "cube"):
            out.append(lyr)
    return out


def show_readable(viewer: Any, shown: list, *, hide_cubes: bool) -> None:
    """After a run: its ``shown`` layers stay visible, every earlier result layer is hidden (and
    the cubes' total-counts images with ``hide_cubes``), so that additive layers never pile up
    into a white canvas. Hidden layers stay in the list, one click from view."""
    for lyr in to_hide(viewer, shown, hide_cubes=hide_cubes):
        lyr.visible = False
