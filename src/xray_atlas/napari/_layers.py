"""Turning cubes and core results into napari layer data."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..cube import SpectralCube
from ..physics.lines import parse_line_family

__all__ = ["xa_meta", "xa_metadata", "cube_layer_data", "map_layer_data", "cube_of", "is_cube_layer", "SYNC_BYTES", "element_colormap"]

#: Cubes up to this size get their total-counts image synchronously in the reader;
#: larger ones stream on a worker thread while the layer fills in.
SYNC_BYTES = int(os.environ.get("XRAY_ATLAS_SYNC_BYTES", 256 * 2**20))

_COLORMAPS = {
    "Pb": "gray", "Hg": "red", "Cu": "cyan", "Fe": "yellow", "Au": "bop orange", "Ca": "green",
    "Zn": "magenta", "Cr": "I Orange", "Mn": "bop purple", "S": "I Forest", "K": "I Blue",
    "Sr": "I Purple", "Ti": "bop blue", "Co": "blue",
}


def element_colormap(line: str) -> str:
    """A napari colormap name for a line family (additive blending mixes them)."""
    try:
        sym, _ = parse_line_family(line)
    except Exception:  # noqa: BLE001 - any other name gets a neutral map
        return "magma"
    return _COLORMAPS.get(sym, "magma")


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


def cube_layer_data(cube: SpectralCube, *, image: np.ndarray | None = None, pending: bool = False) -> list[tuple]:
    """Layer tuples for a cube: its total-counts image, then any reference maps (hidden).

    ``image`` is the total-counts image if already computed; with ``pending`` the image
    is a placeholder that a worker fills (see :func:`._reader.stream_total_counts`).
    """
    if image is None:
        image = cube.total_counts()
    meta = {"xray_atlas": {"kind": "cube", "cube": cube, "pending": pending}}
    kwargs: dict[str, Any] = {"name": f"{cube.name} counts", "colormap": "gray", "metadata": meta}
    if pending or not np.any(image):
        kwargs["contrast_limits"] = (0.0, 1.0)
    layers = [(image, kwargs, "image")]
    for line, ds in sorted(cube.reference_maps.items()):
        layers.append(
            map_layer_data(f"{line} (reference)", np.asarray(ds[()]), line=line, kind="reference map", visible=False)
        )
    return layers
