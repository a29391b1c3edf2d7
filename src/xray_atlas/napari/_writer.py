"""napari writer: map, probability and label layers into the result files of CONTRACTS.md 3."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import XrayAtlasError
from ..io._metadata import positive
from ..io.results import write_results
from ._layers import xa_metadata
from ._notify import notify_error

__all__ = ["write_layers"]


def _dataset_name(name: str) -> str:
    return name.replace("/", "_").strip() or "map"


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write image layers as ``/maps/<line>`` (or ``/probabilities/<Symbol>``) and labels as ``/labels``.

    Cube layers (total counts) are skipped: the cube is the input, not a result. The layers'
    xray-atlas metadata may state ``pixel_size_um`` (written as the root attribute when the
    layers agree) and, for maps, ``units`` (``counts``, the default, or ``counts/s``; maps in
    different units are refused, as one file records one).
    """

    maps: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    labels = spectra = None
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
                if xa.get("kind") == "clusters":  # layer: clusters 1..K, noise K + 1 -> file: 0..K-1, -1
                    noise = labels == xa["noise_label"]
                    labels = labels - 1
                    labels[noise] = -1
            elif layer_type == "image":
                if xa.get("kind") == "cube":
                    continue
                arr = np.asarray(data)
                if arr.ndim != 2:
                    raise XrayAtlasError(f"layer {name!r} is {arr.ndim}-D; result maps are 2-D")
                if xa.get("kind") == "probability":
                    probs[_dataset_name(xa.get("element", name))] = arr
                else:
                    maps[_dataset_name(xa.get("line", name))] = arr
                    units.add(str(xa.get("units", "counts")))
        if len(units) > 1:
            raise XrayAtlasError(f"the map layers are in different units ({', '.join(sorted(units))}); save each "
                                 "units' maps to a file of their own")
        written = write_results(path, maps=maps, probabilities=probs, labels=labels, cluster_spectra=spectra,
                                units=units.pop() if units else None,
                                pixel_size_um=sizes.pop() if len(sizes) == 1 else None, attrs={"model": str(model)})
    except XrayAtlasError as err:
        notify_error(err if str(path) in str(err) else f"{path}: {err}")
        return []
    return [str(written)]
