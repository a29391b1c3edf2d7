"""napari writers: map, probability and label layers into the result files of docs/dev/contracts.md section 3,
and out of xray-atlas as the export formats (:mod:`xray_atlas.export`).

napari picks a writer by the file name's extension and the layers' types (npe2):

* ``.h5``: any image layers and at most one labels layer -> a result file;
* ``.tif``/``.tiff``: one image layer -> one TIFF of its values, pixel size in its tags;
* ``.png``: one image layer -> its figure (colour, colour bar, scale bar, title);
* ``.png``/``.tif`` of an RGB composite layer (the Compare maps dock's) -> its 8-bit picture,
  one pixel per map pixel, the pixel size in its tags;
* ``.csv``: one clusters labels layer -> its cluster mean spectra;
* no extension: several layers -> a folder with every format (TIFFs, figures and the
  overview sheet, spectra tables).

A writer never raises: a refusal is one error notification and no file.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import XrayAtlasError
from ..export import ResultSet
from ..io._metadata import positive
from ..io.results import write_results
from ._layers import xa_metadata
from ._notify import notify_error

__all__ = [
    "write_layers",
    "result_from_layers",
    "write_tiff_layer",
    "write_figure_layer",
    "write_spectra_layer",
    "write_folder",
]


def _dataset_name(name: str) -> str:
    return name.replace("/", "_").strip() or "map"


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write image layers as ``/maps/<line>`` (or ``/probabilities/<Symbol>``, or a reduced
    chi-square layer as ``/fit/reduced_chi2``) and labels as ``/labels``.

    Cube layers (total counts) are skipped: the cube is the input, not a result. The layers'
    xray-atlas metadata may state ``pixel_size_um`` (written as the root attribute when the
    layers agree) and, for maps, ``units`` (``counts``, the default, or ``counts/s``; maps in
    different units are refused, as one file records one).
    """

    maps: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    labels = spectra = energy = chi2 = None
    model = "napari"
    sizes: set[float] = set()
    units: set[str] = set()
    try:
        for data, meta, layer_type in layer_data:
            xa = xa_metadata(meta.get("metadata"))
            name = meta.get("name", "layer")
            model = xa.get("model", model)
            if positive(xa.get("pixel_size_um")) is not None and xa.get("kind") != "cube":
                sizes.add(positive(xa["pixel_size_um"]))
            if layer_type == "labels":
                if labels is not None:
                    raise XrayAtlasError("only one labels layer can go into a result file")
                labels = np.asarray(data).astype(np.int32)
                spectra = xa.get("cluster_spectra")
                energy = xa.get("energy_kev")
                if xa.get("kind") == "clusters":  # layer: clusters 1..K, noise K + 1 -> file: 0..K-1, -1
                    noise = labels == xa["noise_label"]
                    labels = labels - 1
                    labels[noise] = -1
            elif layer_type == "image":
                if xa.get("kind") in ("cube", "rgb"):  # the input, and a picture made of the maps
                    continue
                arr = np.asarray(data)
                if arr.ndim != 2:
                    raise XrayAtlasError(f"layer {name!r} is {arr.ndim}-D; result maps are 2-D")
                if xa.get("kind") == "probability":
                    probs[_dataset_name(xa.get("element", name))] = arr
                elif xa.get("kind") == "fit chi2":
                    if chi2 is not None:
                        raise XrayAtlasError("only one reduced chi-square layer can go into a result file")
                    chi2 = arr
                else:
                    maps[_dataset_name(xa.get("line", name))] = arr
                    units.add(str(xa.get("units", "counts")))
        if len(units) > 1:
            raise XrayAtlasError(
                f"the map layers are in different units ({', '.join(sorted(units))}); save each "
                "units' maps to a file of their own"
            )
        if spectra is None or energy is None or np.shape(energy)[0] != np.shape(spectra)[-1]:
            energy = None
        written = write_results(
            path,
            maps=maps,
            probabilities=probs,
            labels=labels,
            cluster_spectra=spectra,
            energy=energy,
            units=units.pop() if units else None,
            reduced_chi2=chi2,
            pixel_size_um=sizes.pop() if len(sizes) == 1 else None,
            attrs={"model": str(model)},
        )
    except XrayAtlasError as err:
        notify_error(err if str(path) in str(err) else f"{path}: {err}")
        return []
    return [str(written)]


def _labels_in_file_convention(data: Any, xa: dict) -> np.ndarray:
    """A labels layer's clusters as the file holds them: 0..K-1 and -1 for noise. A clusters layer
    of the Clusters dock has 1..K and noise K + 1; any other labels layer 1..K and 0 unlabelled."""
    labels = np.asarray(data).astype(np.int32)
    if xa.get("kind") == "clusters":
        noise = labels == xa["noise_label"]
        labels = labels - 1
        labels[noise] = -1
        return labels
    return np.where(labels > 0, labels - 1, -1).astype(np.int32)


def result_from_layers(layer_data: list[tuple[Any, dict, str]], *, source: str = "") -> ResultSet:
    """What an export draws from, out of napari layer data (``layer.as_layer_data_tuple()``).

    Map layers become maps by line, probability layers probabilities by element, other 2-D
    image layers maps by layer name (a cube's total counts among them); one labels layer gives
    the clusters and, from a clusters layer, its mean spectra and their energy axis. The model,
    source, units and pixel size come from the layers' xray-atlas metadata where they are.
    """
    maps: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    labels = spectra = energy = chi2 = None
    info: dict[str, Any] = {}
    for data, meta, layer_type in layer_data:
        xa = xa_metadata(meta.get("metadata"))
        name = meta.get("name", "layer")
        for key in ("model", "source", "units", "pixel_size_um"):
            if xa.get(key) is not None:
                info.setdefault(key, xa[key])
        if xa.get("method") is not None:
            info.setdefault("model", xa["method"])
        if layer_type == "labels":
            if labels is not None:
                raise XrayAtlasError("only one labels layer can be exported at a time")
            labels = _labels_in_file_convention(data, xa)
            if xa.get("cluster_spectra") is not None:
                spectra = np.asarray(xa["cluster_spectra"])
                energy = None if xa.get("energy_kev") is None else np.asarray(xa["energy_kev"])
        elif layer_type == "image":
            if xa.get("kind") == "rgb":  # a picture of maps that are exported themselves
                continue
            arr = np.asarray(data)
            if arr.ndim != 2:
                raise XrayAtlasError(f"layer {name!r} is {arr.ndim}-D; maps are 2-D")
            if xa.get("kind") == "fit chi2":
                if chi2 is not None:
                    raise XrayAtlasError("two layers hold a reduced chi-square; export them one at a time")
                chi2 = arr
                continue
            if xa.get("kind") == "cube":
                size = (getattr(xa.get("cube"), "metadata", None) or {}).get("pixel_size_um")
                if size is not None:
                    info.setdefault("pixel_size_um", size)
                info.setdefault("source", getattr(xa.get("cube"), "name", name))
            table, key = (
                (probs, xa.get("element", name)) if xa.get("kind") == "probability" else (maps, xa.get("line", name))
            )
            if key in table:
                raise XrayAtlasError(f"two layers hold {key}; export them one at a time")
            table[key] = arr
        else:
            raise XrayAtlasError(f"layer {name!r} is a {layer_type} layer; maps are image or labels layers")
    shapes = {a.shape for a in (*maps.values(), *probs.values())} | ({labels.shape} if labels is not None else set())
    if chi2 is not None:
        shapes.add(chi2.shape)
    if len(shapes) > 1:
        raise XrayAtlasError(f"the layers have different shapes: {sorted(shapes)}")
    try:
        size = float(info["pixel_size_um"]) if "pixel_size_um" in info else None
    except (TypeError, ValueError):
        size = None
    return ResultSet(
        maps=maps,
        probabilities=probs,
        labels=labels,
        cluster_spectra=spectra,
        energy=energy,
        model=str(info.get("model", "")),
        source=str(source or info.get("source", "")),
        units=info.get("units"),
        pixel_size_um=size if size and size > 0 else None,
        reduced_chi2=chi2,
    )


def _fail(path: Any, err: XrayAtlasError) -> list[str]:
    notify_error(err if err.path or str(path) in str(err) else XrayAtlasError(err.reason, path=path))
    return []


def write_tiff_layer(path: str, data: Any, meta: dict) -> list[str]:
    """One image layer -> one float32 TIFF of its values, the pixel size in its tags."""
    return _write_one(path, data, meta)


def write_figure_layer(path: str, data: Any, meta: dict) -> list[str]:
    """One image layer -> its figure: element colour, colour bar with units, scale bar, title."""
    return _write_one(path, data, meta)


def _write_one(path: str, data: Any, meta: dict) -> list[str]:
    from ..export import write_map

    try:  # napari's save dialog has asked before replacing a file
        if meta.get("rgb"):
            return [str(_write_rgb_layer(path, data, meta))]
        written = write_map(path, result_from_layers([(data, meta, "image")]), overwrite=True)
    except XrayAtlasError as err:
        return _fail(path, err)
    return [str(written)]


def _write_rgb_layer(path: str, data: Any, meta: dict) -> Any:
    """An RGB layer -> its picture (8-bit PNG or TIFF), with what its composite metadata says."""
    from ..export import rgb_description, value_label, write_rgb

    xa = xa_metadata(meta.get("metadata"))
    rgb = np.asarray(data)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise XrayAtlasError(
            f"layer {meta.get('name', 'layer')!r} is not an 8-bit RGB picture ({rgb.dtype} "
            f"{rgb.shape}); xray-atlas writes RGB composites of the Compare maps dock"
        )
    text = ""
    if xa.get("kind") == "rgb":
        text = rgb_description(
            xa.get("channels", [None] * 3),
            xa.get("limits", [None] * 3),
            units=value_label("map", xa.get("units")),
            kinds=xa.get("kinds"),
            model=str(xa.get("model", "")),
            source=str(xa.get("source", "")),
            pixel_size_um=xa.get("pixel_size_um"),
        )
    return write_rgb(path, rgb, pixel_size_um=xa.get("pixel_size_um"), description=text, overwrite=True)


def write_spectra_layer(path: str, data: Any, meta: dict) -> list[str]:
    """One clusters labels layer -> its cluster mean spectra as CSV beside energy_kev."""
    from ..export import write_spectra_table

    try:
        result = result_from_layers([(data, meta, "labels")])
        if result.cluster_spectra is None:
            raise XrayAtlasError("this labels layer has no cluster spectra (the Clusters dock's layers have)")
        written = write_spectra_table(path, result, which="clusters", overwrite=True)
    except XrayAtlasError as err:
        return _fail(path, err)
    return [str(written)]


def write_folder(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Several layers -> a folder (made when missing) with every export format: one TIFF and one
    figure per map, the overview sheet (PNG and PDF), and the cluster spectra as CSV. No file in
    an existing folder is replaced."""
    from ..export import export_result

    try:
        result = result_from_layers(layer_data)
        formats = (
            ["tiff", "png"]
            if result.images or result.labels is not None
            else ["tiff"]
            if result.reduced_chi2 is not None
            else []
        ) + (["csv"] if result.has_spectra() else [])
        if not formats:
            raise XrayAtlasError("nothing to export: no maps, probabilities or clusters among the layers")
        done = export_result(result, os.fspath(path), format=formats)
    except XrayAtlasError as err:
        return _fail(path, err)
    return [str(p) for p in done.files]
