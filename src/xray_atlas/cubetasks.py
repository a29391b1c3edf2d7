"""One cube file in, one result file out: the work of ``xray-atlas maps``, ``probabilities``
and ``cluster``.

The single-cube commands and ``xray-atlas batch`` (:mod:`xray_atlas.batch`) call these same
functions, so a batch writes, cube for cube, what the commands write. A run of many cubes
passes a :class:`ModelCache`, which keeps a loaded model for the next cube instead of reading
the model file again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import XrayAtlasError

__all__ = [
    "TASKS",
    "CubeResult",
    "ModelCache",
    "run_maps",
    "run_probabilities",
    "run_cluster",
    "write_cluster",
    "run_task",
    "read_labels",
    "write_maps",
    "write_probabilities",
]

#: The per-cube tasks, in the order of the command line.
TASKS = ("maps", "probabilities", "cluster")


@dataclass(frozen=True)
class CubeResult:
    """What one cube's run wrote.

    Attributes
    ----------
    output : Path
        The result file.
    summary : str
        What it holds, in the words the command prints after ``wrote OUTPUT:``.
    notes : tuple of str
        The model's notes on this cube (resampling, unfamiliar pixels ...), in order.
    """

    output: Path
    summary: str
    notes: tuple[str, ...] = ()


class ModelCache:
    """Models loaded for one cube, kept for the next cubes of a run.

    A model is lent to one cube at a time: its modules keep per-call state (the familiarity
    guard's fallback, the summed counts), so a cube running at the same time in another
    thread gets a copy of its own, loaded once and kept as well. A model is keyed by all that
    its loading reads: its name or path, the device, the lines, and for a map model the cube's
    channel grid (and, for the baselines built for it, the instrument its metadata states).

    Parameters
    ----------
    size : int
        Keys kept; the least recently used one is dropped beyond it.

    Attributes
    ----------
    loads : int
        How many models were loaded (the first cube of each key, and copies for cubes that ran
        at the same time).
    """

    def __init__(self, *, size: int = 4):
        if not isinstance(size, int) or size < 1:
            raise XrayAtlasError(f"size={size!r} must be a positive integer")
        self._size = size
        self._free: OrderedDict[Hashable, list[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    @contextlib.contextmanager
    def lend(self, key: Hashable, load: Callable[[], Any]) -> Iterator[Any]:
        """Yield the model kept under ``key``, or ``load()``'s; keep it for the next cube
        when the block ends without an exception (after one, the model is dropped)."""
        with self._lock:
            free = self._free.get(key)
            item = free.pop() if free else None
        if item is None:
            item = load()
            with self._lock:
                self.loads += 1
        yield item
        with self._lock:
            self._free.setdefault(key, []).append(item)
            self._free.move_to_end(key)
            while len(self._free) > self._size:
                self._free.popitem(last=False)


def calibrated_cube(cube, offset_kev: float | None, gain_kev: float | None):
    """The cube with the calibration ``offset_kev``/``gain_kev`` if given (the file is not touched)."""
    if (offset_kev is None) != (gain_kev is None):
        raise XrayAtlasError("offset_kev and gain_kev go together")
    if gain_kev is None:
        return cube
    return cube.with_calibration(offset_kev=offset_kev, gain_kev=gain_kev)


def _noter(notes: list[str], on_note: Callable[[str], None] | None) -> Callable[[str], None]:
    def note(text: str) -> None:
        notes.append(text)
        if on_note is not None:
            on_note(text)

    return note


@contextlib.contextmanager
def cached_map_model(
    models: ModelCache | None, model, cube, *, device: str, lines: tuple[str, ...] | None, add_lines: tuple[str, ...]
):
    """The map model for ``cube``: loaded, or lent by ``models`` (a run never changes it: what
    it finds is in its :class:`~xray_atlas.inference.MapsResult`)."""
    from .inference import BASELINES, load_map_model

    def load():
        return load_map_model(model, cube, device=device, lines=lines, add_lines=add_lines)

    if models is None:
        yield load()
        return
    energy = np.ascontiguousarray(cube.energy, dtype=np.float64) if cube.calibrated else None
    grid = (
        cube.n_channels,
        cube.calibrated,
        hashlib.sha256(energy.tobytes()).hexdigest() if energy is not None else None,
    )
    instrument = None
    if model in BASELINES:  # built for the instrument the cube's metadata states
        from .models.prior import instrument_from_metadata

        instrument = repr(sorted(instrument_from_metadata(cube.metadata).items()))
    key = (
        "maps",
        None if model is None else str(model),
        device,
        None if lines is None else tuple(lines),
        tuple(add_lines),
        grid,
        instrument,
    )
    with models.lend(key, load) as kept:
        yield kept


@contextlib.contextmanager
def cached_element_model(models: ModelCache | None, model, *, device: str):
    from .probabilities import load_element_model

    def load():
        return load_element_model(model, device=device)

    if models is None:
        yield load()
        return
    with models.lend(("elements", None if model is None else str(model), device), load) as kept:
        yield kept


def run_maps(
    cube: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    device: str = "auto",
    lines: tuple[str, ...] | None = None,
    add_lines: tuple[str, ...] = (),
    units: str = "counts",
    offset_kev: float | None = None,
    gain_kev: float | None = None,
    dataset: str | None = None,
    overwrite: bool = False,
    models: ModelCache | None = None,
    on_note: Callable[[str], None] | None = None,
) -> CubeResult:
    """Elemental maps of the cube file ``cube`` written to the result file ``out``
    (``xray-atlas maps``; :func:`xray_atlas.inference.iter_maps`).

    Parameters
    ----------
    cube, out : path-like
        The cube file and the result file to write.
    model : str or path-like, optional
        A map model name, file or baseline (None: the shipped default).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    lines : tuple of str, optional
        The line families to map instead of the default set (the model's lines and the families
        found in the cube).
    add_lines : tuple of str
        Line families to map beside ``lines`` or the default set
        (:func:`xray_atlas.inference.parse_lines` reads both from ``--lines``).
    units : {"counts", "counts/s"}
        Net counts, or net counts per second of each pixel's live time.
    offset_kev, gain_kev : float, optional
        An energy calibration that replaces the file's (both or neither).
    dataset : str, optional
        The HDF5/Zarr dataset, for a file that holds several cubes.
    overwrite : bool
        Whether an existing ``out`` may be replaced (an input never is).
    models : ModelCache, optional
        Where a model loaded for an earlier cube is kept (None: load it).
    on_note : callable, optional
        Called with each note as it comes (the ones of loading before the maps are computed).

    Returns
    -------
    CubeResult
    """
    from .cube import run_to_end
    from .inference import iter_maps, live_time_for
    from .io import read

    notes: list[str] = []
    note = _noter(notes, on_note)
    with read(cube, dataset=dataset) as opened:
        opened = calibrated_cube(opened, offset_kev, gain_kev)
        live_time_for(opened, units=units)  # refused before the model loads
        with cached_map_model(models, model, opened, device=device, lines=lines, add_lines=add_lines) as mm:
            for text in mm.notes:  # loading's, before the work
                note(text)
            done = run_to_end(iter_maps(opened, mm, lines=lines, add_lines=add_lines, units=units))
            # the result's notes start with the model's, told above; then what the run found
            # (lines in the cube, pixels unlike the training data)
            for text in done.notes[len(mm.notes) :]:
                note(text)
        pixel_size = opened.pixel_size_um
    return write_maps(
        out,
        cube,
        done.maps,
        model=model,
        name=done.model,
        found=done.found,
        units=units,
        pixel_size_um=pixel_size,
        reduced_chi2=done.reduced_chi2,
        notes=notes,
        overwrite=overwrite,
    )


def write_maps(
    out: str | os.PathLike,
    cube: str | os.PathLike,
    maps: dict[str, np.ndarray],
    *,
    model: str | os.PathLike | None,
    name: str,
    found: tuple = (),
    units: str = "counts",
    pixel_size_um: float | None = None,
    reduced_chi2: np.ndarray | None = None,
    notes: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
) -> CubeResult:
    """Write the maps of :func:`run_maps` (also those a batch assembles from blocks of rows,
    :mod:`xray_atlas.rowblocks`) and say what they hold: one layout and one summary for both.

    Parameters
    ----------
    model : str or path-like or None
        The ``model`` option as given (the file's ``model`` attribute; None: ``name``).
    name : str
        The model's name (:attr:`~xray_atlas.inference.MapModel.name`).
    found : tuple
        The families the default set added (:attr:`~xray_atlas.inference.MapsResult.found`).

    The other parameters are :func:`run_maps`'s and :func:`xray_atlas.io.results.write_results`'s.
    """
    from .io.results import write_results

    found = [f.line for f in found]
    attrs = {"model": str(model or name)}
    if found:  # which of the maps the default set added because the cube holds them
        attrs["found_lines"] = ",".join(found)
    # a fit-based model (fit, maps-fit) also says how well its fit explains each pixel's counts
    path = write_results(
        out,
        maps=maps,
        inputs=(cube,),
        overwrite=overwrite,
        units=units,
        pixel_size_um=pixel_size_um,
        attrs=attrs,
        reduced_chi2=reduced_chi2,
    )
    strongest = sorted(maps, key=lambda k: -float(maps[k].sum()))[:4]
    summary = (
        f"{len(maps)} maps ({', '.join(maps)}) with {name}; "
        + (f"found in the cube and added: {', '.join(found)}; " if found else "")
        + "strongest "
        + ", ".join(f"{k} {float(maps[k].mean()):.{0 if units == 'counts' else 3}g}" for k in strongest)
        + f" mean {units}"
        + _chi2_summary(reduced_chi2)
    )
    return CubeResult(path, summary, tuple(notes))


def _chi2_summary(chi2: np.ndarray | None) -> str:
    """'; the fit's reduced chi-square: median 1.10, above 3 in 0.5% of the pixels ...' for a
    fit-based model's map, else ''."""
    if chi2 is None or not np.isfinite(chi2).any():
        return ""
    c = chi2[np.isfinite(chi2)]
    return (
        f"; the fit's reduced chi-square: median {float(np.median(c)):.2f}, above 3 in {float((c > 3).mean()):.1%} "
        "of the pixels (/fit/reduced_chi2)"
    )


def read_labels(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Cluster labels (H, W) from a result file of ``xray-atlas cluster`` (``/labels``),
    refused unless they have the cube's ``shape``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "labels" not in f:
                raise XrayAtlasError("no /labels dataset (a result file of xray-atlas cluster holds one)", path=path)
            labels = np.asarray(f["labels"])
    except OSError as err:
        raise XrayAtlasError(f"not a readable HDF5 file ({err})", path=path) from None
    if labels.shape != shape:
        raise XrayAtlasError(
            f"/labels is {labels.shape[0]} x {labels.shape[1]} and the cube {shape[0]} x {shape[1]}"
            if labels.ndim == 2
            else f"/labels has shape {labels.shape}",
            path=path,
        )
    return labels


def run_probabilities(
    cube: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    device: str = "auto",
    region: int = 1,
    labels: str | os.PathLike | None = None,
    elements: tuple[str, ...] | None = None,
    offset_kev: float | None = None,
    gain_kev: float | None = None,
    dataset: str | None = None,
    overwrite: bool = False,
    models: ModelCache | None = None,
    on_note: Callable[[str], None] | None = None,
) -> CubeResult:
    """Element probability maps of the cube file ``cube`` written to ``out``
    (``xray-atlas probabilities``; :func:`xray_atlas.probabilities.iter_probabilities`).

    Parameters
    ----------
    region : int
        1: every pixel; k > 1: the summed spectrum of each k x k block.
    labels : path-like, optional
        A result file of ``xray-atlas cluster``: the summed spectrum of each of its clusters
        (excludes ``region``).
    elements : tuple of str, optional
        A subset of the model's elements.

    The other parameters are those of :func:`run_maps`.

    Returns
    -------
    CubeResult
    """
    from .cube import run_to_end
    from .io import read
    from .probabilities import iter_probabilities

    if labels is not None and region != 1:
        raise XrayAtlasError("labels and region exclude each other")
    notes: list[str] = []
    note = _noter(notes, on_note)
    with read(cube, dataset=dataset) as opened:
        opened = calibrated_cube(opened, offset_kev, gain_kev)
        table = read_labels(labels, (opened.height, opened.width)) if labels is not None else None
        with cached_element_model(models, model, device=device) as em:
            done = run_to_end(iter_probabilities(opened, em, region=region, labels=table, elements=elements))
        for text in done.notes:
            note(text)
        pixel_size = opened.pixel_size_um
    return write_probabilities(
        out,
        cube,
        done.probabilities,
        model=model,
        name=done.model,
        thresholds=done.thresholds,
        region=region,
        labels=labels,
        pixel_size_um=pixel_size,
        notes=notes,
        overwrite=overwrite,
    )


def write_probabilities(
    out: str | os.PathLike,
    cube: str | os.PathLike,
    probs: dict[str, np.ndarray],
    *,
    model: str | os.PathLike | None,
    name: str,
    thresholds: dict[str, float],
    region: int = 1,
    labels: str | os.PathLike | None = None,
    pixel_size_um: float | None = None,
    notes: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
) -> CubeResult:
    """Write the maps of :func:`run_probabilities` (also those a batch assembles from blocks
    of rows) and say what they hold; ``name`` and ``thresholds`` are the element model's,
    the other parameters :func:`run_probabilities`'s."""
    from .io.results import write_results
    from .probabilities import present

    where = "cluster" if labels is not None else ("pixel" if region == 1 else f"{region} x {region} region")
    inputs = (cube,) + ((labels,) if labels is not None else ())
    path = write_results(
        out,
        probabilities=probs,
        inputs=inputs,
        overwrite=overwrite,
        pixel_size_um=pixel_size_um,
        attrs={
            "model": str(model or name),
            "region": region,
            "thresholds": json.dumps({el: thresholds[el] for el in probs}),
        },
    )
    # elements called present in at least one pixel, with the share of pixels
    share = {el: float((p >= thresholds[el]).mean()) for el, p in probs.items()}
    found = present({el: v for el, v in share.items() if v > 0}, dict.fromkeys(share, 0.0))
    summary = f"{len(probs)} probability maps per {where} with {name}; present in some pixels: " + (
        ", ".join(f"{el} {share[el]:.0%}" for el in found) or "none"
    )
    return CubeResult(path, summary, tuple(notes))


def run_cluster(
    cube: str | os.PathLike,
    out: str | os.PathLike,
    *,
    method: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    dataset: str | None = None,
    overwrite: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> CubeResult:
    """Clusters of the cube file ``cube``'s pixels written to ``out`` (``xray-atlas cluster``;
    :func:`xray_atlas.cluster.cluster_cube`): labels and each cluster's mean spectrum.

    Parameters
    ----------
    method : str
        A name of :data:`xray_atlas.cluster.METHODS`.
    params : dict, optional
        The method's options (:func:`xray_atlas.cluster.method_parameters`).
    seed : int
        The random seed.

    The other parameters are those of :func:`run_maps` (``on_note`` is never called: the
    methods give no notes).

    Returns
    -------
    CubeResult
    """
    from .cluster import cluster_cube
    from .io import read

    with read(cube, dataset=dataset) as opened:
        result = cluster_cube(opened, method, seed=seed, **(params or {}))
        return write_cluster(out, cube, result, opened, overwrite=overwrite)


def write_cluster(
    out: str | os.PathLike, cube: str | os.PathLike, result: Any, opened: Any, *, overwrite: bool = False
) -> CubeResult:
    """Write the clusters of :func:`run_cluster` (also those a batch assembles from blocks of
    rows, :mod:`xray_atlas.rowblocks`) and say what they hold: one layout and one summary for both.

    Parameters
    ----------
    result : ClusterResult
        The clustering (:func:`xray_atlas.cluster.cluster_cube`).
    opened : SpectralCube
        ``cube`` opened (its energy axis, if calibrated, and pixel size go into the file).

    The other parameters are :func:`run_cluster`'s.
    """
    from .io.results import write_results

    path = write_results(
        out,
        labels=result.labels,
        cluster_spectra=result.spectra,
        inputs=(cube,),
        energy=opened.energy if opened.calibrated else None,
        overwrite=overwrite,
        pixel_size_um=opened.pixel_size_um,
        attrs={"model": result.method, "parameters": json.dumps(result.params, default=str)},
    )
    noise = int((result.labels < 0).sum())
    return CubeResult(path, f"{result.n_clusters} clusters (sizes {result.sizes.tolist()}), {noise} noise pixels")


def run_task(
    task: str, cube: str | os.PathLike, out: str | os.PathLike, *, models: ModelCache | None = None, **options: Any
) -> CubeResult:
    """Run ``task`` (one of :data:`TASKS`) on one cube: :func:`run_maps`,
    :func:`run_probabilities` or :func:`run_cluster` with ``options``."""
    if task == "maps":
        return run_maps(cube, out, models=models, **options)
    if task == "probabilities":
        return run_probabilities(cube, out, models=models, **options)
    if task == "cluster":
        return run_cluster(cube, out, **options)
    raise XrayAtlasError(f"task={task!r}; choose one of {', '.join(TASKS)}")
