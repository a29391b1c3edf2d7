"""napari reader: spectral cubes become a total-counts image with the cube attached.

The reader never raises. Files it does not handle get ``None`` (napari tries other
readers); files it handles but cannot read get a notification naming the file and the
problem, and no layer.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..cube import TILE_BYTES, SpectralCube
from ..errors import XrayAtlasError
from ..io import can_read, read
from ._layers import SYNC_BYTES, cube_layer_data, cube_of

__all__ = ["napari_get_reader", "read_layers", "stream_total_counts"]

_NULL_LAYER = [(None,)]  # napari's "accepted the file, no layer" sentinel


def napari_get_reader(path: Any) -> Callable | None:
    """Return :func:`read_layers` if every path has a cube file suffix, else None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path or [])
    if not paths or not all(isinstance(p, (str, os.PathLike)) and can_read(p) for p in paths):
        return None
    return read_layers


def read_layers(path: Any, **_: Any) -> list[tuple]:
    """Read one or several cube files into layer data tuples, notifying on bad files."""
    from napari.utils.notifications import show_error, show_warning

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[tuple] = []
    for p in paths:
        try:
            cube = read(p)
            if cube.nbytes <= SYNC_BYTES:
                layers += cube_layer_data(cube)
            else:
                image = np.zeros((cube.height, cube.width), dtype=np.float32)
                layers += cube_layer_data(cube, image=image, pending=True)
                stream_total_counts(cube, image)
            if not cube.calibrated:
                show_warning(f"{p}: no energy calibration found; spectra are shown against channel numbers "
                             "(set one in the Spectrum inspector)")
        except XrayAtlasError as err:
            show_error(str(err))
        except Exception as err:  # noqa: BLE001 - a reader must never raise
            show_error(f"{p}: could not be read ({type(err).__name__}: {err})")
    return layers or _NULL_LAYER


def stream_total_counts(cube: SpectralCube, image: np.ndarray, *, tile_bytes: int = TILE_BYTES):
    """Fill ``image`` with the cube's total counts on a worker, refreshing its layer.

    The worker shows a progress bar; removing the layer cancels it at the next tile.
    Returns the (started) worker.
    """
    import napari
    from napari.qt.threading import create_worker
    from napari.utils.notifications import show_error

    def steps():
        return (yield from cube.iter_total_counts(out=image, tile_bytes=tile_bytes))

    n_tiles = -(-cube.height // cube.tile_rows(tile_bytes))
    worker = create_worker(steps, _progress={"total": n_tiles, "desc": f"Reading {cube.name}"})

    def layer():
        viewer = napari.current_viewer()
        if viewer is None:
            return None
        for lyr in viewer.layers:
            if cube_of(lyr) is cube:
                return lyr
        return None

    def on_tile(_progress: Any) -> None:
        lyr = layer()
        if lyr is None:
            worker.quit()  # the layer was removed: stop reading
            return
        lyr.refresh()
        top = float(image.max())
        if top > 0:
            lyr.contrast_limits = (float(image.min()), top)

    def on_done(_result: Any) -> None:
        lyr = layer()
        if lyr is not None:
            lyr.metadata["xray_atlas"]["pending"] = False
            lyr.refresh()
            lyr.reset_contrast_limits()

    def on_error(err: Exception) -> None:
        show_error(str(err) if isinstance(err, XrayAtlasError) else f"{cube.path}: {type(err).__name__}: {err}")

    worker.yielded.connect(on_tile)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.start()
    return worker
