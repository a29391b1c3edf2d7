"""Many cubes, one command: ``xray-atlas batch`` on dask.distributed.

Every cube runs the function of the single-cube command (:mod:`xray_atlas.cubetasks`) as one
dask task, so a batch writes, cube for cube, what ``xray-atlas maps`` (``probabilities``,
``cluster``) writes. The client finds the cubes, plans the outputs (refusing clashes and
outputs it may not replace before any work), submits one task per cube and writes the report;
the workers read the cubes and write the results themselves, so both must see the same paths
(one machine, or a shared file system mounted at the same place everywhere).

* A cube that fails is a row of the report; the others go on.
* A rerun skips a cube whose result is complete (it opens as a result file of the task, made
  with the same model and settings) and newer than the cube.
* A worker that dies (killed, out of memory) has its cube run once more on another worker;
  a second death fails the cube (the scheduler's ``allowed_failures``, 1 on the local
  cluster this module starts).
* Each worker process keeps the models it loaded (:class:`~xray_atlas.cubetasks.ModelCache`)
  for its next cubes.
* A huge cube (``split_rows``; by default a file of :data:`~xray_atlas.rowblocks.SPLIT_BYTES`
  or more on more than one worker) of ``maps``, ``probabilities`` or ``cluster`` is cut into
  blocks of rows: a task prepares it once, one task per block computes its rows, and a last task
  assembles them and writes the one result file (:mod:`xray_atlas.rowblocks`); a failed
  block fails the cube and nothing is written.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import rowblocks
from .cubetasks import TASKS, ModelCache, run_task
from .errors import XrayAtlasError

__all__ = [
    "find_cubes",
    "plan",
    "Job",
    "run_batch",
    "iter_batch",
    "BatchReport",
    "run_cube",
    "prepare_cube",
    "run_block",
    "write_blocks",
    "local_cluster",
    "parse_scheduler",
    "model_loads",
    "REPORT_NAME",
    "STATUSES",
]

#: The report's file name in OUTDIR, without its suffix (``.json`` and ``.csv``).
REPORT_NAME = "batch-report"
#: A cube's status in the report: written, failed, skipped (result complete and newer), not
#: run (the batch was interrupted first), or waiting (the batch is still running).
STATUSES = ("ok", "failed", "skipped", "cancelled", "pending")
_CSV_COLUMNS = ("input", "status", "error", "seconds", "output", "notes")
# what an existing result must hold to count as complete, per task
_EXPECTED = {"maps": ("maps",), "probabilities": ("probabilities",), "cluster": ("labels", "cluster_spectra")}

#: This process's models (a worker's: kept from one cube to the next).
_MODELS = ModelCache()


def model_loads() -> int:
    """How many models this process has loaded for batch cubes (run it on the workers with
    ``Client.run`` to see that each loaded its model once)."""
    return _MODELS.loads


# -- finding the cubes ---------------------------------------------------------------------


def _candidate(path: Path) -> bool:
    """A folder or glob entry worth a look: a cube file name, not hidden, not a result or image."""
    from .io import SUFFIXES, probe

    if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES:
        return False
    if path.is_dir() and path.suffix.lower() != ".zarr":
        return False
    # results (an earlier batch's OUTDIR) and diffraction images are not cubes; a damaged or
    # ambiguous cube (probe None) is kept, and its read fails in the report with the reason
    return probe(path) not in ("results", "image")


def find_cubes(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The cubes that ``inputs`` name, in order, each once.

    Parameters
    ----------
    inputs : sequence of path-like
        Cube files (taken as given), folders (their own entries with a cube reader's suffix,
        ``.zarr`` stores included; subfolders are not searched: use a glob with ``**``), and
        glob patterns (``scans/*.h5``, ``data/**/*.bcf``; ``**`` descends into subfolders).
        In folders and globs, hidden files, result files and HDF5 images are passed over;
        a file that is damaged or holds several cubes is kept, so that the report says why it
        cannot be read.

    Returns
    -------
    list of Path
        Absolute paths (the workers read them).

    Raises
    ------
    XrayAtlasError
        An input that does not exist, a folder without cubes, a glob that matches none.
    """
    if not inputs:
        raise XrayAtlasError("give at least one INPUT: a cube file, a folder or a glob")
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir() and path.suffix.lower() != ".zarr":
            entries = sorted(p for p in path.iterdir() if _candidate(p))
            if not entries:
                raise XrayAtlasError(
                    "no cubes in this folder (subfolders are not searched: give a glob such as "
                    f"'{path / '**' / '*.h5'}')",
                    path=path,
                )
            found += entries
        elif path.exists():
            found.append(path)
        elif glob.has_magic(text):
            entries = sorted(Path(p) for p in glob.glob(text, recursive=True) if _candidate(Path(p)))
            if not entries:
                raise XrayAtlasError("this pattern matches no cube file", path=text)
            found += entries
        else:
            dangling = " (a link to a missing file)" if path.is_symlink() else ""
            raise XrayAtlasError(f"no such file or folder{dangling}", path=path)
    seen: set[str] = set()
    out = []
    for p in found:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(Path(os.path.abspath(p)))
    return out


# -- planning the outputs ------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One cube of a batch: its result file, and whether it runs or is skipped (``reason``)."""

    input: Path
    output: Path
    skip: bool = False
    reason: str = ""


def _newest_mtime(path: Path) -> float:
    """When the cube last changed: the newest of its files (a Zarr store's, a ripple file's .raw)."""
    t = path.stat().st_mtime
    if path.is_dir():
        for folder, _dirs, files in os.walk(path):
            for name in files:
                with contextlib.suppress(OSError):
                    t = max(t, os.stat(os.path.join(folder, name)).st_mtime)
    elif path.suffix.lower() == ".rpl":
        for raw in (path.with_suffix(".raw"), path.with_suffix(".RAW")):
            with contextlib.suppress(OSError):
                t = max(t, raw.stat().st_mtime)
    return t


def _expected_models(task: str, options: dict) -> set[str]:
    """The ``model`` attribute a result of this run would carry."""
    if task == "cluster":
        return {str(options.get("method"))}
    if options.get("model") is not None:
        return {str(options["model"])}
    if task == "maps":
        from .inference import DEFAULT_MAPS_MODEL, UNCALIBRATED_MAPS_MODEL

        return {DEFAULT_MAPS_MODEL, UNCALIBRATED_MAPS_MODEL}
    from .probabilities import DEFAULT_ELEMENTS_MODEL

    return {DEFAULT_ELEMENTS_MODEL}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _why_not_done(task: str, out: Path, cube: Path, options: dict) -> str | None:
    """None when ``out`` is this run's complete result of ``cube`` and newer than it; else why not."""
    import h5py

    try:
        with h5py.File(out, "r") as f:
            for name in _EXPECTED[task]:
                obj = f.get(name)
                if obj is None or (isinstance(obj, h5py.Group) and not len(obj)):
                    return f"holds no /{name}"
            want = _expected_models(task, options)
            made = _text(f.attrs.get("model", ""))
            if made not in want:
                return f"was made with {made or 'an unknown model'}, not {' or '.join(sorted(want))}"
            named = {"maps": "lines", "probabilities": "elements"}.get(task)
            if named:
                held, given, added = set(f[task]), set(options.get(named) or ()), set(options.get("add_lines") or ())
                # given lines or elements: exactly those and the added ones; the default set:
                # whatever the model and the cube gave, the added lines among them
                if (held != given | added) if given else not added <= held:
                    return f"holds other {named} ({', '.join(sorted(held))})"
            if task == "maps" and _text(f.attrs.get("units", "counts")) != options.get("units", "counts"):
                return f"holds maps in {_text(f.attrs.get('units', 'counts'))}"
            if task == "probabilities" and int(f.attrs.get("region", 1)) != int(options.get("region", 1)):
                return f"was made with region {int(f.attrs.get('region', 1))}"
            if task == "cluster":
                from .cluster import FEATURE_PARAMETERS

                want_params = {**FEATURE_PARAMETERS, **(options.get("params") or {}), "seed": options.get("seed", 0)}
                made_params = json.loads(_text(f.attrs.get("parameters", "{}")))
                if made_params != json.loads(json.dumps(want_params, default=str)):
                    return "was made with other --param or --seed values"
    except (OSError, ValueError, TypeError, KeyError):
        return "is not a readable result file"
    try:
        if out.stat().st_mtime < _newest_mtime(cube):
            return "is older than its cube"
    except OSError:
        return "cannot be compared with its cube (not readable)"
    return None


def plan(
    task: str, cubes: Sequence[Path], outdir: str | os.PathLike, *, options: dict | None = None, overwrite: bool = False
) -> list[Job]:
    """Each cube's result file ``OUTDIR/<stem>.h5``, checked before any work.

    A result that exists is skipped when complete and newer than its cube
    (:func:`_why_not_done`); otherwise it is replaced only with ``overwrite``.

    Raises
    ------
    XrayAtlasError
        Two cubes with the same file stem (their results would have the same name); a result
        that would replace a cube; results that exist and may not be replaced; an OUTDIR
        that cannot be written.
    """
    from ._files import check_destination

    if task not in TASKS:
        raise XrayAtlasError(f"task={task!r}; choose one of {', '.join(TASKS)}")
    options = dict(options or {})
    outdir = Path(os.path.abspath(os.fspath(outdir)))
    by_name: dict[str, Path] = {}
    for cube in cubes:
        # case-folded: on a case-insensitive file system Scan.h5 and scan.h5 are one file
        other = by_name.setdefault(f"{cube.stem}.h5".casefold(), cube)
        if other != cube:
            raise XrayAtlasError(
                f"two cubes share the file stem {cube.stem!r}, and their results would both be "
                f"{outdir / (cube.stem + '.h5')}: {other} and {cube}; rename one, or run them into "
                "different OUTDIRs"
            )
    inputs = set()
    for cube in cubes:
        with contextlib.suppress(OSError):
            st = os.stat(cube)
            inputs.add((st.st_dev, st.st_ino))
    jobs, refused = [], []
    for cube in cubes:
        out = outdir / f"{cube.stem}.h5"
        if not os.path.lexists(out):
            jobs.append(Job(cube, out))
            continue
        with contextlib.suppress(OSError):
            st = os.stat(out)
            if (st.st_dev, st.st_ino) in inputs:
                raise XrayAtlasError(f"the result of {cube} would replace the cube {out}; choose another OUTDIR")
        check_destination(out, overwrite=True)  # a folder, a dangling link, a read-only file: never replaced
        why = _why_not_done(task, out, cube, options) if os.path.isfile(out) else "is not a file"
        if why is None:
            jobs.append(Job(cube, out, skip=True, reason="result complete and newer than the cube"))
        elif overwrite:
            jobs.append(Job(cube, out, reason=f"replacing a result that {why}"))
        else:
            refused.append(f"{out.name} ({why})")
    if refused:
        shown = "; ".join(refused[:3]) + (f"; and {len(refused) - 3} more" if len(refused) > 3 else "")
        raise XrayAtlasError(
            f"{len(refused)} result(s) exist here and would be replaced: {shown}; give --overwrite "
            "to replace them, or choose another OUTDIR",
            path=outdir,
        )
    return jobs


# -- the report ----------------------------------------------------------------------------


@dataclass
class BatchReport:
    """What a batch did, one row per cube, in the order of the inputs.

    Each row holds ``input``, ``status`` (:data:`STATUSES`), ``error``, ``seconds`` (the
    cube's time on its worker), ``output``, ``summary`` (the command's line), ``notes`` and
    ``worker``.
    """

    task: str
    outdir: Path
    scheduler: str
    options: dict
    rows: list[dict]
    started: str = ""
    workers: int = 0
    seconds: float = 0.0  # the whole batch, cluster start included
    run_seconds: float = 0.0  # first cube submitted to last result
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many cubes have ``status``."""
        return sum(r["status"] == status for r in self.rows)

    @property
    def failed(self) -> bool:
        """Whether any cube failed (the command's exit status 1)."""
        return any(r["status"] == "failed" for r in self.rows)

    @property
    def paths(self) -> tuple[Path, Path]:
        """The report's files: ``OUTDIR/batch-report.json`` and ``.csv``."""
        return self.outdir / f"{REPORT_NAME}.json", self.outdir / f"{REPORT_NAME}.csv"

    def as_json(self) -> dict:
        return {
            "task": self.task,
            "outdir": str(self.outdir),
            "scheduler": self.scheduler,
            "options": json.loads(json.dumps(self.options, default=str)),
            "started": self.started,
            "workers": self.workers,
            "seconds": round(self.seconds, 3),
            "run_seconds": round(self.run_seconds, 3),
            "counts": {s: self.count(s) for s in STATUSES if self.count(s)},
            "notes": self.notes,
            "cubes": self.rows,
        }

    def write(self) -> None:
        """Write both report files, each atomically (a reader never sees half of one)."""
        from ._files import atomic_file

        path_json, path_csv = self.paths
        with atomic_file(path_json, what="batch report") as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(self.as_json(), fh, indent=1, default=str)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(_CSV_COLUMNS)
        for r in self.rows:
            writer.writerow(
                [
                    "; ".join(r.get("notes") or []) if c == "notes" else "" if r.get(c) is None else r[c]
                    for c in _CSV_COLUMNS
                ]
            )
        with atomic_file(path_csv, what="batch report") as tmp:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(buf.getvalue())


def _check_report(outdir: Path, cubes: Sequence[Path]) -> None:
    """The report replaces an earlier batch's report; any other file of that name is refused."""
    from ._files import check_destination

    for path in (outdir / f"{REPORT_NAME}.json", outdir / f"{REPORT_NAME}.csv"):
        check_destination(path, inputs=tuple(cubes), overwrite=True)
    path = outdir / f"{REPORT_NAME}.json"
    if path.exists():
        try:
            ours = "cubes" in json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            ours = False
        if not ours:
            raise XrayAtlasError(
                "exists and is not a batch report; it is not replaced (move it, or choose another OUTDIR)", path=path
            )


# -- the workers' side ---------------------------------------------------------------------


def run_cube(task: str, cube: str, out: str, options: dict, overwrite: bool) -> dict:
    """One cube on a worker: :func:`xray_atlas.cubetasks.run_task` with this process's models.

    Never raises for the cube's own failure (it is the row's ``error``), so that dask keeps
    its retries for workers that die.
    """
    import warnings

    start = time.perf_counter()
    row: dict[str, Any] = {
        "input": cube,
        "status": "failed",
        "error": None,
        "seconds": None,
        "output": out,
        "summary": None,
        "notes": [],
        "worker": _worker_address(),
    }
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            done = run_task(
                task, cube, out, models=None if task == "cluster" else _MODELS, overwrite=overwrite, **options
            )
        row.update(
            status="ok",
            summary=done.summary,
            notes=list(done.notes)
            + list(dict.fromkeys("warning: " + " ".join(str(w.message).split()) for w in caught)),
        )
    except XrayAtlasError as err:
        row["error"] = str(err) if err.path is not None else f"{cube}: {err}"
    except Exception as err:  # noqa: BLE001 - one cube's failure, whatever it is, is a row of the report
        msg = " ".join(str(err).split()) or type(err).__name__
        row["error"] = f"{cube}: {type(err).__name__}: {msg}"
    row["seconds"] = round(time.perf_counter() - start, 3)
    if row["status"] != "ok":
        row["output"] = None
    return row


def _caught(cube: str, fn: Callable[[], Any]) -> dict:
    """Run ``fn`` on a worker: ``{"value", "error", "warnings", "seconds", "worker"}``, never
    raising for the cube's own failure (as :func:`run_cube`)."""
    import warnings

    start = time.perf_counter()
    got: dict[str, Any] = {"value": None, "error": None, "warnings": [], "worker": _worker_address()}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            got["value"] = fn()
        got["warnings"] = list(dict.fromkeys("warning: " + " ".join(str(w.message).split()) for w in caught))
    except XrayAtlasError as err:
        got["error"] = str(err) if err.path is not None else f"{cube}: {err}"
    except Exception as err:  # noqa: BLE001 - one cube's failure, whatever it is, is a row of the report
        msg = " ".join(str(err).split()) or type(err).__name__
        got["error"] = f"{cube}: {type(err).__name__}: {msg}"
    got["seconds"] = time.perf_counter() - start
    return got


def prepare_cube(task: str, cube: str, options: dict, split_rows: int | None, n_workers: int) -> dict:
    """A split cube's first task (:func:`xray_atlas.rowblocks.prepare`, with this process's
    models), as :func:`_caught`'s dict."""
    from . import rowblocks

    return _caught(
        cube, lambda: rowblocks.prepare(task, cube, options, split_rows=split_rows, n_workers=n_workers, models=_MODELS)
    )


def _blocks_of(prepared: dict) -> dict:
    """What the client needs of a prepared cube: its blocks or its error (not the fit's state)."""
    value = prepared["value"]
    return {"blocks": value.blocks if value is not None else None, "error": prepared["error"]}


def run_block(task: str, cube: str, options: dict, prepared: dict, rows: tuple[int, int]) -> dict:
    """One block of rows of a split cube (:func:`xray_atlas.rowblocks.run_rows`), as
    :func:`_caught`'s dict."""
    from . import rowblocks

    if prepared["value"] is None:  # never submitted so; a failed preparation fails the cube
        return {"value": None, "error": prepared["error"], "warnings": [], "seconds": 0.0, "worker": None}
    return _caught(cube, lambda: rowblocks.run_rows(task, cube, options, prepared["value"], rows, models=_MODELS))


def write_blocks(task: str, cube: str, out: str, options: dict, overwrite: bool, prepared: dict, *blocks: dict) -> dict:
    """A split cube's last task: its report row. Every block ok: the result assembled and
    written (:func:`xray_atlas.rowblocks.write`); a block failed: the cube fails with the first
    failed block's error (by row) and nothing is written."""
    from . import rowblocks

    prep = prepared["value"]
    row: dict[str, Any] = {
        "input": cube,
        "status": "failed",
        "error": None,
        "seconds": None,
        "output": None,
        "summary": None,
        "notes": [],
        "worker": _worker_address(),
    }
    worker_s = prepared["seconds"] + sum(b["seconds"] for b in blocks)
    bad = next((b for b in blocks if b["error"] is not None), None)
    if prep is None or bad is not None:
        at = prep.blocks[blocks.index(bad)] if bad is not None else None
        error = (bad or prepared)["error"]
        row["error"] = error if at is None else f"{error} (rows {at[0]} to {at[1] - 1})"
        row["seconds"] = round(worker_s, 3)
        return row
    got = _caught(
        cube, lambda: rowblocks.write(task, cube, out, options, prep, [b["value"] for b in blocks], overwrite=overwrite)
    )
    worker_s += got["seconds"]
    row["seconds"] = round(worker_s, 3)
    if got["error"] is not None:
        row["error"] = got["error"]
        return row
    done = got["value"]
    n_rows = {b - a for a, b in prep.blocks}
    blocks_s = sum(b["seconds"] for b in blocks)
    split = (
        f"split into {len(prep.blocks)} blocks of {max(n_rows)} rows on {len({b['worker'] for b in blocks})} "
        f"worker(s): {prepared['seconds']:.1f} s preparing (once, not split: {prep.load_seconds:.1f} s opening "
        "the cube and getting the model, the rest the checks and, for a model on the per-cluster fit, its "
        f"clusters and spectra from a sample of the cube), {blocks_s:.1f} s in the blocks, "
        f"{got['seconds']:.1f} s assembling and writing "
        f"({(prepared['seconds'] + got['seconds']) / max(worker_s, 1e-9):.0%} of the worker time not split)"
    )
    warned = [w for b in (prepared, *blocks, got) for w in b["warnings"]]
    row.update(
        status="ok", output=out, summary=done.summary, notes=list(done.notes) + [split] + list(dict.fromkeys(warned))
    )
    row["split"] = {
        "blocks": [list(b) for b in prep.blocks],
        "prepare_seconds": round(prepared["seconds"], 3),
        "load_seconds": round(prep.load_seconds, 3),
        "block_seconds": [round(b["seconds"], 3) for b in blocks],
        "write_seconds": round(got["seconds"], 3),
    }
    return row


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


# -- the cluster ---------------------------------------------------------------------------


def parse_scheduler(text: str) -> tuple[str, Any]:
    """``--scheduler`` -> ``("local", n_workers or None)``, ``("file", path)`` (a scheduler
    file of ``dask scheduler --scheduler-file``) or ``("address", "tcp://host:port")``."""
    text = str(text).strip()
    if text == "local":
        return "local", None
    if text.startswith("local:"):
        try:
            n = int(text[len("local:") :])
        except ValueError:
            n = 0
        if n < 1:
            raise XrayAtlasError(f"--scheduler {text}: write local:N with N >= 1 workers")
        return "local", n
    if text.endswith(".json") and "://" not in text:
        if not os.path.isfile(text):
            raise XrayAtlasError("--scheduler: no such scheduler file", path=text)
        return "file", os.path.abspath(text)
    if "://" in text or ":" in text:
        return "address", text
    raise XrayAtlasError(
        f"--scheduler {text}: give local, local:N, a scheduler address (tcp://host:8786) or a scheduler file (.json)"
    )


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def local_cluster(n_workers: int | None = None, *, processes: bool = True) -> Iterator[Any]:
    """A ``distributed.LocalCluster`` for batches: ``n_workers`` processes (default: one per
    core the process may use) of one thread each, the cores shared out among them for
    torch's and BLAS's own threads, and a cube whose worker dies run once more elsewhere
    (``allowed_failures=1``). The process environment is left as it was.

    With ``processes=False`` the workers are threads of this process (no worker starts a
    Python of its own; the cubes share this process's GIL, memory and model cache).
    """
    import dask
    from dask.system import CPU_COUNT
    from distributed import LocalCluster

    n = int(n_workers or CPU_COUNT)
    threads = max(1, CPU_COUNT // n)
    # the nanny sets these in this process before spawning each worker; put them back after
    saved = {k: os.environ.get(k) for k in (*_THREAD_VARIABLES, "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")}
    spawn_env = {k: threads for k in _THREAD_VARIABLES if k not in os.environ}  # a user's own setting wins
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in spawn_env.items()}):
            try:  # ":0": the scheduler's web server on a free port, so that two batches never clash
                cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=":0",
                    scheduler_kwargs={"allowed_failures": 1},
                )
            except Exception as err:  # noqa: BLE001 - dask raises RuntimeError and others
                msg = " ".join(str(err).split()) or type(err).__name__
                raise XrayAtlasError(
                    f"could not start a local dask cluster ({msg}); a Python script that runs a "
                    "batch must do so under if __name__ == '__main__':"
                ) from None
        try:
            yield cluster
        finally:
            cluster.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _has_dashboard() -> bool:
    """Whether dask's dashboard can run (it needs bokeh)."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


@contextlib.contextmanager
def _client(scheduler: str, n_jobs: int, *, processes: bool = True) -> Iterator[tuple[Any, str]]:
    """(a distributed Client, a line saying what it runs on) for ``--scheduler``."""
    from distributed import Client

    kind, value = parse_scheduler(scheduler)
    if kind == "local":
        with local_cluster(min(value or _cpu_count(), max(n_jobs, 1)), processes=processes) as cluster:
            with Client(cluster) as client:
                link = f", dashboard {client.dashboard_link}" if _has_dashboard() else ""
                yield client, f"local cluster of {len(cluster.workers)} worker(s){link}"
        return
    try:
        client = Client(scheduler_file=value, timeout=30) if kind == "file" else Client(value, timeout=30)
    except (OSError, TimeoutError) as err:
        raise XrayAtlasError(
            f"--scheduler {scheduler}: cannot reach the scheduler ({' '.join(str(err).split())})"
        ) from None
    with client:
        n = len(client.scheduler_info().get("workers", {}))
        yield (
            client,
            f"scheduler {client.scheduler.address} with {n} worker(s)"
            + (" (the cubes wait for workers to join)" if n == 0 else ""),
        )


def _cpu_count() -> int:
    from dask.system import CPU_COUNT

    return CPU_COUNT


# -- the batch -------------------------------------------------------------------------------


def _absolute_model(options: dict) -> dict:
    """A model given as a path the client sees is passed to the workers as an absolute path
    (they may run in another folder); names stay names."""
    model = options.get("model")
    if model is not None and os.path.exists(os.fspath(model)):
        from .models.catalogue import list_models

        if str(model) not in {i.name for i in list_models()}:
            return {**options, "model": os.path.abspath(os.fspath(model))}
    return options


def run_batch(
    task: str,
    inputs: Sequence[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    options: dict | None = None,
    scheduler: str = "local",
    overwrite: bool = False,
    split_rows: int | None = None,
    progress: Callable[[dict, int, int, float], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    cancel: Any = None,
    processes: bool = True,
) -> BatchReport:
    """Run ``task`` on every cube ``inputs`` name, writing ``OUTDIR/<stem>.h5`` and the report.

    Parameters
    ----------
    task : {"maps", "probabilities", "cluster"}
        The single-cube command whose work each cube gets.
    inputs : sequence of path-like
        Cube files, folders and glob patterns (:func:`find_cubes`).
    outdir : path-like
        The folder of the results and the report; made when missing (its parent must exist).
    options : dict, optional
        The options of :func:`xray_atlas.cubetasks.run_maps` (``run_probabilities``,
        ``run_cluster``), the same for every cube.
    scheduler : str
        ``local`` (a local cluster, one worker per core), ``local:N`` (N workers), a
        scheduler's address (``tcp://host:8786``) or a scheduler file (``.json``).
    overwrite : bool
        Replace existing results that are not this run's complete and newer results (these
        are skipped either way); an input is never replaced.
    split_rows : int, optional
        Cut a cube into blocks of this many rows, each a task of its own, so that one cube
        uses every worker (:mod:`xray_atlas.rowblocks`; maps, cluster, and probabilities per
        pixel or region). None (the default): a cube file of at least
        :data:`~xray_atlas.rowblocks.SPLIT_BYTES` on a cluster of more than one worker is cut
        into :data:`~xray_atlas.rowblocks.BLOCKS_PER_WORKER` blocks per worker, each a whole
        number of the single-cube pass's tiles; 0: never split.
    progress : callable, optional
        Called after each cube with (its row, cubes done, cubes to do, cubes per minute).
    on_message : callable, optional
        Called with lines worth showing: what runs where, how many are skipped.
    cancel : threading.Event or multiprocessing.Event, optional
        Set it (from another thread or process) to stop the batch: no further cube starts,
        the cubes not done are marked ``cancelled`` and the report is returned as usual.
        Seen within a quarter of a second. A cube already running on a local cluster's
        worker process stops with the cluster; on a worker thread (``processes=False``) or a
        remote worker it may still finish and write its complete result, which a rerun skips.
    processes : bool
        For a local scheduler: worker processes (True), or threads of this process.

    Returns
    -------
    BatchReport
        Also written to ``OUTDIR/batch-report.json`` and ``.csv`` as cubes finish (at most
        once a second) and at the end.

    Raises
    ------
    XrayAtlasError
        Before any work: bad inputs, OUTDIR, scheduler or clashing results (:func:`plan`).
    KeyboardInterrupt
        After writing the report, with the cubes not done marked ``cancelled``.
    """
    t0 = time.perf_counter()
    say = on_message or (lambda _text: None)
    if task not in TASKS:
        raise XrayAtlasError(f"task={task!r}; choose one of {', '.join(TASKS)}")
    options = _absolute_model(dict(options or {}))
    if split_rows is not None and not (
        isinstance(split_rows, int) and not isinstance(split_rows, bool) and split_rows >= 0
    ):
        raise XrayAtlasError(
            f"split_rows={split_rows!r} must be a number of rows >= 1, 0 (never split) or None (automatic)"
        )
    parse_scheduler(scheduler)  # a bad --scheduler is refused before anything is read or made
    cubes = find_cubes(inputs)
    out = Path(os.path.abspath(os.fspath(outdir)))
    if out.exists() and not out.is_dir():
        raise XrayAtlasError("OUTDIR must be a folder", path=out)
    if not out.parent.is_dir():
        raise XrayAtlasError("OUTDIR's parent folder does not exist", path=out.parent)
    jobs = plan(task, cubes, out, options=options, overwrite=overwrite)
    if not out.is_dir():
        try:
            out.mkdir()
        except OSError as err:
            raise XrayAtlasError(f"cannot make OUTDIR ({err.strerror or err})", path=out) from None
    _check_report(out, cubes)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report = BatchReport(
        task,
        out,
        scheduler,
        options,
        started=started,
        rows=[
            {
                "input": str(j.input),
                "status": "skipped" if j.skip else "pending",
                "error": None,
                "seconds": None,
                "output": str(j.output) if j.skip else None,
                "summary": None,
                "notes": [j.reason] if j.reason else [],
                "worker": None,
            }
            for j in jobs
        ],
    )
    index = {str(j.input): i for i, j in enumerate(jobs)}
    todo = [j for j in jobs if not j.skip]
    if len(todo) < len(jobs):
        say(f"skipping {len(jobs) - len(todo)} of {len(jobs)} cubes: their results are complete and newer")
    report.write()
    if not todo:
        report.seconds = time.perf_counter() - t0
        report.write()
        return report
    from distributed import wait

    def stopped() -> bool:
        return cancel is not None and cancel.is_set()

    split = _to_split(task, options, todo, split_rows)
    try:
        with contextlib.ExitStack() as stack:
            # a cancel while the cluster starts (seconds) submits nothing; a local cluster has
            # no more workers than tasks, and a cube that may be split is many tasks
            client, where = (
                (None, "")
                if stopped()
                else stack.enter_context(
                    _client(scheduler, len(todo) + (_cpu_count() if split else 0), processes=processes)
                )
            )
            if client is not None:
                report.workers = len(client.scheduler_info().get("workers", {}))
                say(f"{len(todo)} cube(s) on a {where}")
            t_run = time.perf_counter()
            tag = uuid.uuid4().hex[:8]
            if split_rows is None and report.workers < 2:  # automatic: one worker gains nothing
                split = set()
            if split:
                say(
                    f"{len(split)} cube(s) split into blocks of rows, each block a task"
                    + ("" if split_rows else f" (cube files of {rowblocks.SPLIT_BYTES / 2**30:g} GiB or more)")
                )
            futures, owner, prepared = [], {}, {}
            for k, j in enumerate([] if client is None else todo):
                key = f"xray-atlas-{task}-{j.input.stem}-{tag}-{k}"
                if j.input in split:
                    prep = client.submit(
                        prepare_cube,
                        task,
                        str(j.input),
                        options,
                        split_rows or None,
                        max(report.workers, 1),
                        key=key + "-prepare",
                        pure=False,
                    )
                    fut = client.submit(_blocks_of, prep, key=key + "-blocks", pure=False)
                    prepared[fut.key] = (prep, j, key)
                else:
                    fut = client.submit(
                        run_cube, task, str(j.input), str(j.output), options, overwrite, key=key, pure=False
                    )
                futures.append(fut)
                owner[fut.key] = str(j.input)
            done, written = 0, time.perf_counter()
            remaining = list(futures)
            if not futures:
                say(f"cancelled: {len(todo)} cube(s) not done")
            while remaining:
                if stopped():
                    client.cancel(remaining)  # nothing more starts; the rows stay pending: cancelled below
                    say(f"cancelled: {len(remaining)} cube(s) not done")
                    break
                try:  # a short wait, so that a cancel is seen soon
                    finished = wait(remaining, timeout=0.25, return_when="FIRST_COMPLETED").done
                except TimeoutError:
                    continue
                remaining = [f for f in remaining if f not in finished]
                for fut in [f for f in futures if f in finished]:  # in the order of the inputs
                    if fut.key in prepared:  # a split cube's blocks are known: its blocks and its writer
                        prep, j, key = prepared.pop(fut.key)
                        writer = _submit_blocks(client, fut, prep, task, j, key, options, overwrite)
                        if writer is not None:
                            owner[writer.key] = str(j.input)
                            futures.append(writer)
                            remaining.append(writer)
                            continue
                    pending = report.rows[index[owner[fut.key]]]
                    row = _row_of(fut, owner[fut.key], pending)
                    row["notes"] = pending["notes"] + [n for n in row["notes"] if n not in pending["notes"]]
                    report.rows[index[owner[fut.key]]] = row
                    done += 1
                    report.run_seconds = time.perf_counter() - t_run
                    report.seconds = time.perf_counter() - t0
                    if time.perf_counter() - written >= 1.0:  # a thousand small cubes: not a thousand rewrites
                        report.write()
                        written = time.perf_counter()
                    if progress is not None:
                        progress(row, done, len(todo), done / max(report.run_seconds, 1e-9) * 60.0)
    except BaseException:
        # closing the client released the cubes not done; one already running on a remote
        # worker may still finish and write its (complete) result, which a rerun then skips
        for row in report.rows:
            if row["status"] == "pending":
                row["status"] = "cancelled"
        report.seconds = time.perf_counter() - t0
        report.write()
        raise
    for row in report.rows:  # left by a cancel
        if row["status"] == "pending":
            row["status"] = "cancelled"
    report.seconds = time.perf_counter() - t0
    report.write()
    return report


def _cube_bytes(path: Path) -> int:
    """A cube's size on disk: its file, a Zarr store's files, a ripple file's .raw."""
    size = 0
    with contextlib.suppress(OSError):
        size = path.stat().st_size
        if path.is_dir():
            size = sum(
                os.path.getsize(os.path.join(folder, name)) for folder, _dirs, files in os.walk(path) for name in files
            )
        elif path.suffix.lower() == ".rpl":
            size += max(
                (p.stat().st_size for p in (path.with_suffix(".raw"), path.with_suffix(".RAW")) if p.exists()),
                default=0,
            )
    return size


def _to_split(task: str, options: dict, jobs: Sequence[Job], split_rows: int | None) -> set[Path]:
    """The cubes to run in blocks of rows (:func:`run_batch`'s ``split_rows``; the automatic
    choice is dropped again on a cluster of one worker)."""
    if split_rows == 0 or not rowblocks.splittable(task, options):
        return set()
    if split_rows is not None:
        return {j.input for j in jobs}
    return {j.input for j in jobs if _cube_bytes(j.input) >= rowblocks.SPLIT_BYTES}


def _submit_blocks(
    client: Any, blocks: Any, prep: Any, task: str, job: Job, key: str, options: dict, overwrite: bool
) -> Any:
    """A prepared cube's block tasks and its writer (returned), or None when the preparation
    failed (``blocks``'s result says why, and :func:`_row_of` reports it)."""
    try:
        plan_ = blocks.result()
    except Exception:  # noqa: BLE001 - the preparing worker died twice: _row_of says so
        return None
    if plan_["blocks"] is None:
        return None
    parts = [
        client.submit(
            run_block,
            task,
            str(job.input),
            options,
            prep,
            tuple(rows),
            key=f"{key}-rows-{rows[0]}-{rows[1]}",
            pure=False,
        )
        for rows in plan_["blocks"]
    ]
    return client.submit(
        write_blocks, task, str(job.input), str(job.output), options, overwrite, prep, *parts, key=key, pure=False
    )


def _row_of(fut: Any, cube: str, pending: dict) -> dict:
    """A finished future's row; a task that erred (its workers died, or it could not even start
    there) fails its cube."""
    from distributed import KilledWorker

    try:
        got = fut.result()
        if "blocks" in got:  # a split cube whose preparation failed
            return {**pending, "status": "failed", "error": got["error"], "output": None}
        return got
    except KilledWorker as err:
        last = getattr(getattr(err, "last_worker", None), "address", None)
        error = (
            f"{cube}: the workers running this cube died {err.allowed_failures + 1} times (out of memory, or "
            f"killed){'; last on ' + last if last else ''}"
        )
    except Exception as err:  # noqa: BLE001 - e.g. xray_atlas missing on a worker
        msg = " ".join(str(err).split()) or type(err).__name__
        error = f"{cube}: {type(err).__name__}: {msg}"
    return {**pending, "status": "failed", "error": error, "output": None}


# -- a batch beside a GUI --------------------------------------------------------------------


def _batch_child(
    task: str,
    inputs: list,
    outdir: str,
    options: dict,
    scheduler: str,
    overwrite: bool,
    q: Any,
    cancel: Any,
    nice: int = 0,
) -> None:
    """:func:`run_batch` in a spawned child process, its events on ``q``: ("message", text),
    ("cube", row, done, total, per minute), then ("report", BatchReport) or ("error", reason,
    path) or ("failed", text)."""
    if nice and hasattr(os, "nice"):  # before the cluster starts: its worker processes inherit it
        os.nice(nice)
    try:
        report = run_batch(
            task,
            inputs,
            outdir,
            options=options,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=lambda row, done, total, rate: q.put(("cube", row, done, total, rate)),
            on_message=lambda text: q.put(("message", text)),
            cancel=cancel,
        )
        q.put(("report", report))
    except XrayAtlasError as err:
        q.put(("error", err.reason, err.path))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, not raised in a child nobody watches
        q.put(("failed", f"{type(err).__name__}: {' '.join(str(err).split())}"))


def iter_batch(
    task: str,
    inputs: Sequence[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    options: dict | None = None,
    scheduler: str = "local",
    overwrite: bool = False,
    cancel: Any = None,
    nice: int = 0,
    poll_s: float = 0.1,
) -> Iterator[Any]:
    """:func:`run_batch` in a spawned child process, as a generator for a GUI's worker thread:
    it yields :class:`~xray_atlas.cube.Progress` (cubes done of cubes to run; ``what`` says
    the rate or what is starting) and returns the :class:`BatchReport`.

    The inputs, OUTDIR and existing results are checked by this call, before it returns the
    generator (so a GUI refuses them in its own thread, before any work); the child process
    starts with the generator's first step.

    The child process holds the dask client, the scheduler and the local cluster; the local
    cluster's workers are processes of its own. So the caller's process (napari's) imports
    neither dask.distributed nor the models, its GIL stays free for its event loop, and the
    children never run the caller's ``__main__`` again (a napari script or the ``napari``
    command: they would import napari and Qt there; see :mod:`xray_atlas._processes`).

    Parameters
    ----------
    task, inputs, outdir, options, scheduler, overwrite
        As for :func:`run_batch`; the inputs and the outputs are checked here first (a bad
        one raises before any process starts).
    cancel : threading.Event, optional
        Set it to stop the batch (:func:`run_batch`'s ``cancel``): the generator then returns
        the report with the cubes not done marked ``cancelled``.
    nice : int
        Lower the scheduling priority of the child process and its local workers by this much
        (POSIX ``nice``, 0 to 19), so that a GUI in this process gets the CPU it needs to
        answer at once while the batch takes all the rest.
    poll_s : float
        How often the generator yields while it waits, so that a caller can look at its own
        state (a napari worker's abort) between two cubes.

    Raises
    ------
    XrayAtlasError
        Bad inputs, OUTDIR or scheduler (by the call); the batch process ended without a
        report (by the generator).
    """
    if task not in TASKS:
        raise XrayAtlasError(f"task={task!r}; choose one of {', '.join(TASKS)}")
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
        raise XrayAtlasError(f"nice={nice!r}; give a whole number from 0 to 19")
    options = _absolute_model(dict(options or {}))
    parse_scheduler(scheduler)
    cubes = find_cubes(inputs)
    out = Path(os.path.abspath(os.fspath(outdir)))
    if out.exists() and not out.is_dir():
        raise XrayAtlasError("OUTDIR must be a folder", path=out)
    total = sum(not j.skip for j in plan(task, cubes, out, options=options, overwrite=overwrite))
    return _follow_child(task, cubes, out, options, scheduler, overwrite, total, cancel, nice, poll_s)


def _follow_child(
    task: str,
    cubes: list[Path],
    out: Path,
    options: dict,
    scheduler: str,
    overwrite: bool,
    total: int,
    cancel: Any,
    nice: int,
    poll_s: float,
) -> Iterator[Any]:
    import multiprocessing as mp
    import queue

    from ._processes import start_without_main
    from .cube import Progress

    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(
        target=_batch_child,
        args=(task, [str(c) for c in cubes], str(out), options, scheduler, overwrite, q, stop, nice),
        daemon=False,
        name="xray-atlas-batch",
    )
    start_without_main(child)
    done, what = 0, "starting the workers"
    try:
        yield Progress(0, total, what)
        while True:
            if cancel is not None and cancel.is_set() and not stop.is_set():
                stop.set()
                what = "cancelling"
            try:
                ev = q.get(timeout=poll_s)
            except queue.Empty:
                if not child.is_alive():
                    try:  # a last event may have come just before the end
                        ev = q.get(timeout=poll_s)
                    except queue.Empty:
                        raise XrayAtlasError(
                            "the batch process ended without a report (exit code "
                            f"{child.exitcode}); see {out / (REPORT_NAME + '.json')}"
                        ) from None
                else:
                    yield Progress(done, total, what)
                    continue
            kind = ev[0]
            if kind == "cube":
                _, _row, done, total, rate = ev
                what = f"{rate:.3g} cubes/min" + ("; stopping the workers" if done == total else "")
                yield Progress(done, total, what)
            elif kind == "message":
                if not stop.is_set():
                    what = ev[1]
                yield Progress(done, total, what)
            elif kind == "report":
                return ev[1]
            elif kind == "error":
                raise XrayAtlasError(ev[1], path=ev[2])
            else:
                raise XrayAtlasError(f"the batch failed: {ev[1]}")
    finally:
        if child.is_alive():  # the caller stopped early (closed, cancelled hard): stop the batch too
            stop.set()
            child.join(30)
            if child.is_alive():
                child.terminate()
        child.join()
        q.close()
