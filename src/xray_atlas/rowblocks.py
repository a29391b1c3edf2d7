"""One cube's maps, probabilities or clusters in blocks of rows, so that one huge cube uses a whole dask
cluster (``xray-atlas batch --split-rows``; :mod:`xray_atlas.batch` runs each step as a task).

Three steps, each a function of plain arguments (a cube path, the single-cube command's
options) that a worker runs with its own cached models:

1. :func:`prepare`, once: checks the options and the cube, loads the model, runs what cannot
   be split (for ``maps`` the global steps of :class:`~xray_atlas.inference.MapPass`: the
   per-cluster fit's clusters and spectra, the families found; for ``cluster`` the first pass
   over the cube and the method's fit on its sample, :func:`~xray_atlas.cluster.iter_fit`) and
   cuts the rows into blocks;
2. :func:`run_rows`, once per block, anywhere: opens the cube, runs the per-pixel work on those
   rows only, returns the block's values (rows x width x lines float32, a few MB; for
   ``cluster`` each pixel's id and each id's summed spectrum and count,
   :func:`~xray_atlas.cluster.iter_assign_rows`);
3. :func:`write`, once: assembles the blocks, runs the global steps after the pixels (for
   ``maps-fit`` each cluster held to the fit and shrunk; for ``cluster`` the method's final
   numbering and the mean spectra, :func:`~xray_atlas.cluster.assemble`) and writes the one
   result file atomically, in the layout of the single-cube command
   (:func:`~xray_atlas.cubetasks.write_maps`, ``write_probabilities``, ``write_cluster``).

Probabilities by ``labels`` are not split (a cluster's summed spectrum needs all its pixels).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cube import TILE_BYTES
from .errors import XrayAtlasError

__all__ = ["SPLIT_TASKS", "SPLIT_BYTES", "splittable", "block_rows", "Prepared", "prepare", "run_rows", "write"]

#: The tasks whose cube can be split into blocks of rows.
SPLIT_TASKS = ("maps", "probabilities", "cluster")
#: A cube file at least this large (bytes on disk) is split automatically when the cluster has
#: more than one worker. ``maps-fit``'s preparation is fixed (a 30,000-pixel sample: ~6 s on
#: one core) and its per-pixel pass ~3 s per GB on one core (docs/benchmarks.md, a 1.6 GB
#: cube: 5.7 s and 4.9 s): below ~2 GB the preparation and a second worker's model loading
#: (2-4 s) outweigh what the blocks share out.
SPLIT_BYTES = 2 * 2**30
#: Blocks per worker in the automatic split: more than one, so that a slow block (a busy
#: worker, a slow part of the disk) does not leave the others idle at the end.
BLOCKS_PER_WORKER = 4


def splittable(task: str, options: dict) -> bool:
    """Whether ``task`` with ``options`` (the single-cube command's) can run in blocks of rows."""
    return task in ("maps", "cluster") or (task == "probabilities" and options.get("labels") is None)


def block_rows(
    height: int, *, tile_rows: int, split_rows: int | None, n_workers: int, region: int = 1
) -> list[tuple[int, int]]:
    """The blocks ``[(first row, end row), ...]`` that cover ``height`` rows.

    Parameters
    ----------
    height : int
        The cube's rows.
    tile_rows : int
        The rows of one tile of the single-cube pass (:meth:`SpectralCube.tile_rows`).
    split_rows : int or None
        Rows per block (rounded up to a multiple of ``region``); None: automatic,
        :data:`BLOCKS_PER_WORKER` blocks per worker, each a whole number of tiles, so that
        every block reads the very tiles of the single-cube pass.
    n_workers : int
        The cluster's workers (for the automatic size).
    region : int
        Probabilities per ``region`` x ``region`` block: blocks start at its multiples.
    """
    if split_rows is None:
        per = -(-height // max(BLOCKS_PER_WORKER * max(int(n_workers), 1), 1))
        per = max(tile_rows, -(-per // tile_rows) * tile_rows)
    else:
        if not (isinstance(split_rows, int) and split_rows >= 1):
            raise XrayAtlasError(f"split_rows={split_rows!r} must be a positive number of rows (or None: automatic)")
        per = split_rows
    per = -(-per // region) * region
    return [(a, min(a + per, height)) for a in range(0, height, per)]


@dataclass
class Prepared:
    """What :func:`prepare` found: the blocks, and what the blocks and :func:`write` need."""

    task: str
    height: int
    width: int
    blocks: list[tuple[int, int]]
    name: str  #: the model's name
    notes: list[str]  #: the notes so far: loading the model, and the global steps
    pixel_size_um: float | None = None
    #: maps: the :class:`~xray_atlas.inference.MapPass`; cluster: the fit on the sample
    #: (:class:`~xray_atlas.cluster.FittedClustering`)
    state: Any = None
    thresholds: dict = field(default_factory=dict)  #: probabilities: the element model's
    seconds: float = 0.0  #: the time :func:`prepare` took
    load_seconds: float = 0.0  #: of which opening the cube and getting the model (loaded, or this process's)


@contextlib.contextmanager
def _opened(cube: str | os.PathLike, options: dict) -> Iterator[Any]:
    from .cubetasks import calibrated_cube
    from .io import read

    with read(cube, dataset=options.get("dataset")) as opened:
        yield calibrated_cube(opened, options.get("offset_kev"), options.get("gain_kev"))


def _map_model_of(models: Any, options: dict, cube: Any) -> Any:
    """The map model the options name for ``cube``, lent by this process's cache."""
    from .cubetasks import cached_map_model

    return cached_map_model(
        models,
        options.get("model"),
        cube,
        device=options.get("device", "auto"),
        lines=options.get("lines"),
        add_lines=tuple(options.get("add_lines") or ()),
    )


def _check(task: str, options: dict) -> None:
    if task not in SPLIT_TASKS:
        raise XrayAtlasError(f"task={task!r} cannot be split into blocks of rows; only {', '.join(SPLIT_TASKS)}")
    if not splittable(task, options):
        raise XrayAtlasError("probabilities by cluster labels cannot be split into blocks of rows")
    known = {
        "maps": {"model", "device", "lines", "add_lines", "units", "offset_kev", "gain_kev", "dataset"},
        "probabilities": {"model", "device", "region", "labels", "elements", "offset_kev", "gain_kev", "dataset"},
        "cluster": {"method", "params", "seed", "dataset"},
    }
    unknown = sorted(set(options) - known[task])
    if unknown:
        raise XrayAtlasError(f"options {', '.join(unknown)} are not options of {task}")


def prepare(
    task: str,
    cube: str | os.PathLike,
    options: dict,
    *,
    split_rows: int | None = None,
    n_workers: int = 1,
    models=None,
    tile_bytes: int = TILE_BYTES,
) -> Prepared:
    """Step 1: check, load, run the steps that cannot be split, cut the rows into blocks.

    Parameters
    ----------
    task : {"maps", "probabilities", "cluster"}
    cube : path-like
        The cube file (as the workers see it).
    options : dict
        The options of :func:`~xray_atlas.cubetasks.run_maps` (``run_probabilities``,
        ``run_cluster``) but ``out``, ``overwrite``, ``models`` and ``on_note``.
    split_rows, n_workers
        As :func:`block_rows`.
    models : ModelCache, optional
        This process's models.

    Returns
    -------
    Prepared

    Raises
    ------
    XrayAtlasError
        What the single-cube command would refuse before its work.
    """
    from .cube import run_to_end

    _check(task, options)
    t0 = time.perf_counter()
    o = options
    with _opened(cube, o) as c:
        if task == "maps":
            from .inference import MapPass, live_time_for

            units = o.get("units", "counts")
            live_time_for(c, units=units)  # refused before the model loads
            with _map_model_of(models, o, c) as mm:
                t_load = time.perf_counter() - t0
                state = run_to_end(
                    MapPass.iter_prepare(
                        c,
                        mm,
                        lines=o.get("lines"),
                        add_lines=tuple(o.get("add_lines") or ()),
                        units=units,
                        tile_bytes=tile_bytes,
                    )
                )
            out = Prepared(
                task,
                c.height,
                c.width,
                [],
                mm.name,
                [*mm.notes, *state.notes],
                c.pixel_size_um,
                state,
                load_seconds=t_load,
            )
            region = 1
        elif task == "cluster":
            from .cluster import iter_fit

            t_load = time.perf_counter() - t0
            steps = iter_fit(
                c, o.get("method"), seed=o.get("seed", 0), tile_bytes=tile_bytes, **(o.get("params") or {})
            )
            out = Prepared(
                task, c.height, c.width, [], o["method"], [], c.pixel_size_um, run_to_end(steps), load_seconds=t_load
            )
            region = 1
        else:
            from .cubetasks import cached_element_model
            from .probabilities import check_cube, iter_probabilities

            region = int(o.get("region", 1))
            with cached_element_model(models, o.get("model"), device=o.get("device", "auto")) as em:
                t_load = time.perf_counter() - t0
                steps = iter_probabilities(c, em, region=region, elements=o.get("elements"), tile_bytes=tile_bytes)
                next(steps)  # its checks (options, the cube's range), before any counts are read
                steps.close()
                out = Prepared(
                    task,
                    c.height,
                    c.width,
                    [],
                    em.name,
                    list(dict.fromkeys((*em.notes, *check_cube(c, em)))),  # the notes of iter_probabilities
                    c.pixel_size_um,
                    thresholds=dict(em.thresholds),
                    load_seconds=t_load,
                )
        out.blocks = block_rows(
            c.height, tile_rows=c.tile_rows(tile_bytes), split_rows=split_rows, n_workers=n_workers, region=region
        )
    out.seconds = time.perf_counter() - t0
    return out


def run_rows(
    task: str,
    cube: str | os.PathLike,
    options: dict,
    prepared: Prepared,
    rows: tuple[int, int],
    *,
    models=None,
    tile_bytes: int = TILE_BYTES,
) -> Any:
    """Step 2: the per-pixel work on ``rows`` (first, end) of one cube: a
    :class:`~xray_atlas.inference.RowMaps` for maps, element -> (rows, W) float32 for
    probabilities, a :class:`~xray_atlas.cluster.RowIds` for cluster. ``options`` and ``models`` as :func:`prepare`'s."""
    from .cube import run_to_end

    _check(task, options)
    o = options
    block = slice(int(rows[0]), int(rows[1]))
    with _opened(cube, o) as c:
        if (c.height, c.width) != (prepared.height, prepared.width):
            raise XrayAtlasError(
                f"the cube is now {c.height} x {c.width} pixels; it was {prepared.height} x "
                f"{prepared.width} when the batch began",
                path=cube,
            )
        if task == "maps":
            with _map_model_of(models, o, c) as mm:
                return run_to_end(prepared.state.iter_rows(c, mm, block))
        if task == "cluster":
            from .cluster import iter_assign_rows

            return run_to_end(iter_assign_rows(c, prepared.state, block, tile_bytes=tile_bytes))
        from .cubetasks import cached_element_model
        from .probabilities import iter_probabilities

        with cached_element_model(models, o.get("model"), device=o.get("device", "auto")) as em:
            return run_to_end(
                iter_probabilities(
                    c, em, region=int(o.get("region", 1)), elements=o.get("elements"), tile_bytes=tile_bytes, rows=block
                )
            ).probabilities


def write(
    task: str,
    cube: str | os.PathLike,
    out: str | os.PathLike,
    options: dict,
    prepared: Prepared,
    parts: Sequence[Any],
    *,
    overwrite: bool = False,
):
    """Step 3: assemble the blocks' ``parts`` (those of every block of ``prepared``, in its
    order), run the global steps after the pixels and write ``out`` (atomically, replaced only
    with ``overwrite``): a :class:`~xray_atlas.cubetasks.CubeResult` as the single-cube
    command's."""
    import numpy as np

    from .cubetasks import write_cluster, write_maps, write_probabilities

    _check(task, options)
    o = options
    if len(parts) != len(prepared.blocks):
        raise XrayAtlasError(f"{len(parts)} blocks of rows given; the cube was cut into {len(prepared.blocks)}")
    if task == "maps":
        state = prepared.state
        with _opened(cube, o) as c:
            done = state.finish(c, parts)
        return write_maps(
            out,
            cube,
            done.maps,
            model=o.get("model"),
            name=done.model,
            found=done.found,
            units=o.get("units", "counts"),
            pixel_size_um=prepared.pixel_size_um,
            reduced_chi2=done.reduced_chi2,
            notes=list(done.notes),
            overwrite=overwrite,
        )
    if task == "cluster":
        from .cluster import assemble

        with _opened(cube, o) as c:
            return write_cluster(out, cube, assemble(c, prepared.state, list(parts)), c, overwrite=overwrite)
    probs = {el: np.ascontiguousarray(np.concatenate([p[el] for p in parts])) for el in parts[0]}
    shape = next(iter(probs.values())).shape
    if shape != (prepared.height, prepared.width):
        raise XrayAtlasError(
            f"the blocks of rows make {shape[0]} x {shape[1]} maps; the cube has "
            f"{prepared.height} x {prepared.width} pixels"
        )
    return write_probabilities(
        out,
        cube,
        probs,
        model=o.get("model"),
        name=prepared.name,
        thresholds=prepared.thresholds,
        region=int(o.get("region", 1)),
        pixel_size_um=prepared.pixel_size_um,
        notes=prepared.notes,
        overwrite=overwrite,
    )
