"""napari writer: map, probability and label layers into the result files of CONTRACTS.md 3."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import XrayAtlasError
from ..io.results import write_results
from ._layers import xa_metadata
from ._notify import notify_error

__all__ = ["write_layers"]


def _dataset_name(name: str) -> str:
    return name.replace("/", "_").strip() or "map"


def write_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """Write image layers as ``/maps/<line>`` (or ``/probabilities/<Symbol>``) and labels as ``/labels``.

    Cube layers (total counts) are skipped: the cube is the input, not a result.
    """

    maps: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    labels = spectra = None
    model = "napari"
    try:
        for data, meta, layer_type in layer_data:
            xa = xa_metadata(meta.get("metadata"))
            name = meta.get("name", "layer")
            model = xa.get("model", model)
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
        written = write_results(path, maps=maps, probabilities=probs, labels=labels,
                                cluster_spectra=spectra, attrs={"model": str(model)})
    except XrayAtlasError as err:
        notify_error(err if str(path) in str(err) else f"{path}: {err}")
        return []
    return [str(written)]
