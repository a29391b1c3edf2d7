"""Starting spawned child processes from a GUI or a script, and running a job in one."""

from __future__ import annotations

import mmap
import os
import sys
import types
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["start_without_main", "iter_in_child", "CubeSource", "cube_source"]


def start_without_main(process: Any) -> None:
    """Start a spawned ``process`` without running the parent's main script again in it.

    multiprocessing's spawn re-runs the parent's ``__main__`` file in the child (as
    ``__mp_main__``) so that functions defined there can be unpickled. The children here need
    only xray_atlas modules, and a script without an ``if __name__ == "__main__"`` guard
    (napari's own examples: ``napari.Viewer()`` ... ``napari.run()``) would open a second
    viewer in each; the ``napari`` command's script imports napari in it. Hiding ``__main__``
    while the process starts (the spawn reads it then, and only then) leaves the child a bare one.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        process.start()
    finally:
        sys.modules["__main__"] = main


def _child_main(func: Callable[..., Generator], args: tuple, q: Any, nice: int) -> None:
    """Run the generator ``func(*args)`` and put its events on ``q``: ("progress", Progress)
    for each yield, then ("result", value), ("error", reason, path) or ("failed", text)."""
    from .errors import XrayAtlasError

    if nice and hasattr(os, "nice"):
        os.nice(nice)
    try:
        steps = func(*args)
        while True:
            try:
                q.put(("progress", next(steps)))
            except StopIteration as end:
                q.put(("result", end.value))
                return
    except XrayAtlasError as err:
        q.put(("error", err.reason, err.path))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, not raised in a child nobody watches
        q.put(("failed", f"{type(err).__name__}: {' '.join(str(err).split())}"))


def iter_in_child(
    func: Callable[..., Generator], args: tuple = (), *, what: str = "the job", nice: int = 0, poll_s: float = 0.1
) -> Generator[Any, None, Any]:
    """Run the generator function ``func(*args)`` in a spawned child process: yield what it
    yields (:class:`~xray_atlas.cube.Progress`) and return what it returns.

    Code that holds the GIL for long (numba's compiled loops in UMAP and HDBSCAN held it for
    up to 0.66 s at a time) freezes every other thread of its process, a GUI's event loop
    included; in a child process it freezes nothing. ``func`` and ``args`` must pickle (a
    module-level function; see :func:`cube_source` for a cube), and so must what it yields
    and returns.

    Parameters
    ----------
    func : callable
        A module-level generator function.
    args : tuple
        Its arguments.
    what : str
        The job, for the message when the process ends without a result.
    nice : int
        Lower the child's scheduling priority by this much (POSIX ``nice``, 0 to 19).
    poll_s : float
        While the child is quiet, its last progress is yielded again this often, so that a
        caller (a napari worker checking for Cancel at each yield) can stop it.

    Closing the generator (a napari worker's abort, ``close()``, garbage collection) stops
    the child at once: it writes nothing, so nothing is lost.

    Raises
    ------
    XrayAtlasError
        The child's own XrayAtlasError, or its failure or its end without a result, in one line.
    """
    import multiprocessing as mp
    import queue

    from .errors import XrayAtlasError

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    child = ctx.Process(target=_child_main, args=(func, args, q, nice), daemon=True, name="xray-atlas-job")
    start_without_main(child)
    last = None
    try:
        while True:
            try:
                ev = q.get(timeout=poll_s)
            except queue.Empty:
                if child.is_alive():
                    if last is not None:
                        yield last
                    continue
                try:  # its last event may have come just before its end
                    ev = q.get(timeout=poll_s)
                except queue.Empty:
                    raise XrayAtlasError(
                        f"{what} ended without a result (its process exited with code {child.exitcode})"
                    ) from None
            if ev[0] == "progress":
                last = ev[1]
                yield last
            elif ev[0] == "result":
                return ev[1]
            elif ev[0] == "error":
                raise XrayAtlasError(ev[1], path=ev[2])
            else:
                raise XrayAtlasError(f"{what} failed: {ev[1]}")
    finally:
        if child.is_alive():
            child.terminate()
            child.join(5)
            if child.is_alive():
                child.kill()
        child.join()
        q.close()


@dataclass
class CubeSource:
    """What a child process needs to open a cube again without the parent loading it: its
    counts as a reference (an HDF5 file and dataset, a .npy memory map) or, for arrays held
    in memory, zarr and dask arrays, as themselves (pickled: a copy, a store, a graph), and
    its energy axis, path and name. :meth:`open` gives the cube in the child."""

    counts: Any
    kind: str  #: "hdf5", "memmap", "object" (pickled) or "local" (cannot go to a child)
    energy: np.ndarray | None
    path: str | None
    name: str

    @property
    def portable(self) -> bool:
        """Whether a child process can open the cube (counts over local functions cannot)."""
        return self.kind != "local"

    def open(self) -> Any:
        """The cube (a :class:`~xray_atlas.cube.SpectralCube`), its file opened read-only."""
        from .cube import SpectralCube

        if not self.portable:
            raise ValueError(f"the counts of cube {self.name!r} cannot be opened in another process")
        closer = None
        if self.kind == "hdf5":
            import h5py

            filename, dataset = self.counts
            f = h5py.File(filename, "r")
            counts, closer = f[dataset], f.close
        elif self.kind == "memmap":
            filename, dtype, shape, offset, order = self.counts
            counts = np.memmap(filename, dtype=dtype, mode="r", shape=shape, offset=offset, order=order)
        else:
            counts = self.counts
        return SpectralCube(counts, energy=self.energy, path=self.path, name=self.name, closer=closer)


def cube_source(cube: Any) -> CubeSource:
    """A :class:`CubeSource` for ``cube`` (a :class:`~xray_atlas.cube.SpectralCube`)."""
    counts = cube.counts
    energy = np.asarray(cube.energy) if cube.calibrated else None
    h5py = sys.modules.get("h5py")
    if h5py is not None and isinstance(counts, h5py.Dataset):
        return CubeSource((counts.file.filename, counts.name), "hdf5", energy, cube.path, cube.name)
    if isinstance(counts, np.memmap) and isinstance(counts.base, mmap.mmap) and counts.filename:
        order = "F" if counts.flags.f_contiguous and not counts.flags.c_contiguous else "C"
        spec = (counts.filename, counts.dtype.str, counts.shape, counts.offset, order)
        return CubeSource(spec, "memmap", energy, cube.path, cube.name)
    if not isinstance(counts, np.ndarray):  # a zarr or dask array: its store or graph must pickle
        import pickle

        try:
            pickle.dumps(counts)
        except Exception:  # noqa: BLE001 - any pickling failure means the same: keep it here
            return CubeSource(None, "local", energy, cube.path, cube.name)
    return CubeSource(counts, "object", energy, cube.path, cube.name)
