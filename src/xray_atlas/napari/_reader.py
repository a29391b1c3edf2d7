"""napari reader: spectral cubes become a total-counts image with the cube attached; result
files (docs/dev/contracts.md section 3) become map and probability images and a cluster labels layer.

The reader never raises. It claims a file only when a look at its headers shows a cube or a
result file (:func:`xray_atlas.io.probe`; no data is read); other files get ``None``, except
plain ``.npy``/Zarr arrays, which it hands to napari's own reader (see below). Files it
claims but then cannot read get a notification naming the file and the problem, and no layer.

napari chooses a reader by file name before any reader looks inside: napari's builtins also
claim ``*.h5``, ``*.hdf5``, ``*.hdf``, ``*.npy`` and ``*.zarr``, so with two candidates napari
asks (File > Open) or raises (``viewer.open`` without ``plugin=``), unless a reader preference
(Preferences > Plugins, ``settings.plugins.extension2reader``) names one. When the plugin is
first used in a session (:func:`on_activate`) it records itself as the reader for those
patterns where the user has chosen none; for the array formats napari's builtins can read, it
passes every file that is not a cube on to them, so the preference takes nothing away.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..cube import TILE_BYTES, SpectralCube
from ..errors import XrayAtlasError
from ..io import probe, read
from ._layers import (
    SHOWN,
    SYNC_BYTES,
    chi2_layer_data,
    counts_limits,
    cube_layer_data,
    cube_of,
    element_colormap,
    map_layer_data,
    physical_grid,
    show_scale_bar,
    shown_opacity,
    strongest,
)
from ._notify import notify_error, notify_warning

__all__ = [
    "napari_get_reader",
    "read_layers",
    "result_layer_data",
    "image_layer_data",
    "stream_total_counts",
    "on_activate",
    "prefer_this_reader",
    "PREFERRED_PATTERNS",
]

PLUGIN = "napari-xray-atlas"
_NULL_LAYER = [(None,)]  # napari's "accepted the file, no layer" sentinel
#: File-name patterns napari's builtins claim too; napari asks which reader unless one is preferred.
PREFERRED_PATTERNS = ("*.h5", "*.hdf5", "*.hdf", "*.npy", "*.zarr")
_HANDED_ON = (".npy", ".zarr")  # non-cube files of these go to napari's builtin reader


def napari_get_reader(path: Any) -> Callable | None:
    """:func:`read_layers` if every path is a cube or a result file (headers only), napari's
    builtin reader for plain ``.npy``/Zarr arrays, else None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path or [])
    if not paths or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        return None
    kinds = [probe(p) for p in paths]
    if all(kinds):
        return read_layers
    if len(paths) == 1 and os.path.splitext(os.fspath(paths[0]).rstrip("/\\"))[1].lower() in _HANDED_ON:
        from napari_builtins.io import napari_get_reader as builtin_reader

        return builtin_reader(os.fspath(paths[0]))
    return None


def on_activate(_context: Any = None) -> None:
    """npe2 activation hook (first use of the plugin in a session): :func:`prefer_this_reader`."""
    try:
        prefer_this_reader()
    except Exception:  # noqa: BLE001 - settings trouble must not stop the plugin from loading
        pass


def prefer_this_reader(patterns: tuple[str, ...] = PREFERRED_PATTERNS) -> dict[str, str]:
    """Make this plugin napari's reader for ``patterns`` where the user has no preference yet.

    A preference the user chose (another plugin) is kept. Returns the patterns set now.
    """
    from napari.settings import get_settings

    settings = get_settings().plugins
    current = dict(settings.extension2reader)
    added = {p: PLUGIN for p in patterns if p not in current}
    if added:
        settings.extension2reader = {**current, **added}
    return added


def read_layers(path: Any, **_: Any) -> list[tuple]:
    """Read one or several cube files into layer data tuples, notifying on bad files."""

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers: list[tuple] = []
    for p in paths:
        try:
            kind = probe(p)
            if kind == "results":
                layers += result_layer_data(p)
                continue
            if kind == "image":
                layers.append(image_layer_data(p))
                continue
            cube = read(p)
            if cube.nbytes <= SYNC_BYTES:
                layers += cube_layer_data(cube)
            else:
                image = np.zeros((cube.height, cube.width), dtype=np.float32)
                layers += cube_layer_data(cube, image=image, pending=True)
                stream_total_counts(cube, image)
            if not cube.calibrated:
                notify_warning(
                    f"{p}: no energy calibration found; spectra are shown against channel numbers "
                    "(set one in the Spectrum inspector)"
                )
        except XrayAtlasError as err:
            notify_error(err)
        except Exception as err:  # noqa: BLE001 - a reader must never raise
            notify_error(f"{p}: could not be read ({type(err).__name__}: {err})")
    if any("units" in lyr[1] for lyr in layers if len(lyr) > 1):
        show_scale_bar()
    return layers or _NULL_LAYER


def _model_name(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return os.path.splitext(os.path.basename(text.rstrip("/\\")))[0] or text


def result_layer_data(path: str | os.PathLike) -> list[tuple]:
    """Layer tuples of a result file: ``/maps/<line>`` as element-coloured additive images named
    ``"<line> (<model>)"``, ``/probabilities/<Symbol>`` as ``"P(<Symbol>) (<model>)"`` in [0, 1],
    ``/labels`` as a labels layer (clusters 1..K, noise K + 1, as the Clusters dock makes them),
    ``/fit/reduced_chi2`` as a hidden ``"reduced chi2 (<model>)"`` layer (as the Elemental maps
    dock makes it).

    The metadata is the one the docks give their layers, so the writer saves them back as they were.
    """
    from ..errors import XrayAtlasError
    from ..io.results import read_results

    r = read_results(path)
    model = _model_name(r["attrs"].get("model", os.path.basename(os.fspath(path))))
    try:
        grid = physical_grid(float(r["attrs"]["pixel_size_um"]))
    except (KeyError, TypeError, ValueError):
        grid = {}
    # what an export of these layers names and measures (xray_atlas.export)
    kept = {
        "source": os.path.basename(os.fspath(path)),
        **{k: r["attrs"][k] for k in ("pixel_size_um", "units") if k in r["attrs"]},
    }
    kept = {
        k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
        for k, v in kept.items()
    }
    layers: list[tuple] = []
    # a readable picture, as after a dock's run: the three strongest maps and the three
    # probabilities with the most contrast are shown, the rest hidden (12 additive maps were white)
    maps, probs = r.get("maps", {}), r.get("probabilities", {})
    shown_maps, shown_probs = strongest(maps, SHOWN), strongest(probs, SHOWN, by="spread")
    shown = set(shown_maps) | set(shown_probs)
    # the probabilities' limits are 0-1; both sets are on the canvas together
    opacity = min(
        shown_opacity({ln: maps[ln] for ln in shown_maps}),
        shown_opacity({el: probs[el] for el in shown_probs}, limits=(0.0, 1.0)),
    )
    for line, data in sorted(maps.items()):
        arr, kwargs, kind = map_layer_data(
            f"{line} ({model})", data, line=line, visible=line in shown, extra={"model": model, **kept}
        )
        if line in shown:
            kwargs["opacity"] = opacity
        layers.append((arr, {**kwargs, **grid}, kind))
    for el, data in sorted(probs.items()):
        arr, kwargs, kind = map_layer_data(
            f"P({el}) ({model})",
            data,
            kind="probability",
            visible=el in shown,
            extra={"element": el, "model": model, **kept},
        )
        kwargs.update(colormap=element_colormap(f"{el}-K"), contrast_limits=(0.0, 1.0), **grid)
        if el in shown:
            kwargs["opacity"] = opacity
        layers.append((arr, kwargs, kind))
    chi2 = r.get("fit", {}).get("reduced_chi2") if isinstance(r.get("fit"), dict) else None
    if isinstance(chi2, np.ndarray):
        if chi2.ndim != 2:
            raise XrayAtlasError(f"/fit/reduced_chi2 must be 2-D (H, W), got shape {chi2.shape}", path=path)
        data, kwargs, kind = chi2_layer_data(chi2, model, extra=kept)
        layers.append((data, {**kwargs, **grid}, kind))
    labels = r.get("labels")
    if isinstance(labels, np.ndarray):
        if labels.ndim != 2 or labels.dtype.kind not in "iu":
            raise XrayAtlasError(f"/labels must be a 2-D integer array, got {labels.dtype} {labels.shape}", path=path)
        k = int(labels.max()) + 1 if labels.size else 0
        data = np.where(labels >= 0, labels + 1, k + 1).astype(np.int32)
        xa: dict[str, Any] = {"kind": "clusters", "noise_label": k + 1, "model": model, **kept}
        if isinstance(r.get("cluster_spectra"), np.ndarray):
            xa["cluster_spectra"] = r["cluster_spectra"]
            if isinstance(r.get("energy"), np.ndarray):
                xa["energy_kev"] = r["energy"]
        layers.append(
            (data, {"name": f"clusters ({model})", "opacity": 0.6, "metadata": {"xray_atlas": xa}, **grid}, "labels")
        )
    if not layers:
        raise XrayAtlasError("a result file without maps, probabilities or labels", path=path)
    return layers


def image_layer_data(path: str | os.PathLike) -> tuple:
    """An HDF5 ``/image`` as an image layer; a diffraction image's ``span`` attribute goes into
    the layer metadata, where the Diffraction dock takes it from."""
    from ..diffraction import image_span
    from ..io.images import read_image

    img = read_image(path)
    span = image_span(path)
    meta = {"xray_atlas": {"kind": "image", **({"span": span} if span is not None else {})}}
    name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return (img, {"name": name, "colormap": "magma" if span is not None else "gray", "metadata": meta}, "image")


def stream_total_counts(cube: SpectralCube, image: np.ndarray, *, tile_bytes: int = TILE_BYTES):
    """Fill ``image`` with the cube's total counts on a worker, refreshing its layer.

    The worker shows a progress bar; removing the layer cancels it at the next tile.
    Returns the (started) worker.
    """
    import napari
    from napari.qt.threading import create_worker

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
            lyr.contrast_limits = counts_limits(image)

    def on_error(err: Exception) -> None:
        notify_error(err if isinstance(err, XrayAtlasError) else f"{cube.path}: {type(err).__name__}: {err}")

    worker.yielded.connect(on_tile)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.start()
    return worker
