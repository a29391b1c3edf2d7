"""xray-atlas batch on a real dask.distributed LocalCluster (two worker processes of one thread
each, xray_atlas.batch.local_cluster): outputs equal the single-cube commands', failures are
reported without stopping the others, reruns skip finished cubes, each worker loads its model
once, and a cube whose worker is killed runs once more elsewhere."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import threading
import time

import h5py
import numpy as np
import pytest

from xray_atlas import batch, cli
from xray_atlas.errors import XrayAtlasError

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    """Three small painting cubes (2,048 channels of 10 eV reach the default model's 15 keV)
    and a damaged one."""
    from xray_atlas.physics.painting import synthetic_painting

    folder = tmp_path_factory.mktemp("cubes")
    for seed, name in ((1, "a"), (2, "b"), (3, "c")):
        synthetic_painting(12, 14, n_channels=2048, seed=seed).write(folder / f"{name}.h5")
    (folder / "bad.h5").write_bytes(b"not an HDF5 file")
    return folder


@pytest.fixture(scope="module")
def cluster():
    with batch.local_cluster(2) as c:
        yield c


@pytest.fixture()
def client(cluster):
    from distributed import Client

    with Client(cluster) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def assert_same_result(a, b):
    """Two result files hold the same datasets, values and root attributes."""

    def contents(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return out, attrs

    (da, aa), (db, ab) = contents(a), contents(b)
    assert sorted(da) == sorted(db) and da
    for name in da:
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)
    assert aa.keys() == ab.keys()
    for k in aa:
        assert np.all(aa[k] == ab[k]), k


def single(tmp_path, command, cube, *options, threads=None):
    """The single-cube command's result for ``cube``, run here with ``threads`` torch and BLAS
    threads (a worker's: float32 sums split over other thread counts add up in another order,
    5e-5 apart)."""
    import torch
    from threadpoolctl import threadpool_limits

    out = tmp_path / "single" / f"{command}-{cube.stem}.h5"
    out.parent.mkdir(exist_ok=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        with threadpool_limits(threads) if threads else contextlib.nullcontext():
            assert cli.main([command, str(cube), str(out), *options]) == 0
    finally:
        torch.set_num_threads(before)
    return out


def worker_threads(client):
    """The torch threads of the workers (one count for all)."""
    import torch

    (n,) = set(client.run(torch.get_num_threads).values())
    return n


def report_rows(outdir):
    data = json.loads((outdir / "batch-report.json").read_text())
    with open(outdir / "batch-report.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["input"] for r in table] == [r["input"] for r in data["cubes"]]
    assert [r["status"] for r in table] == [r["status"] for r in data["cubes"]]
    assert list(table[0]) == ["input", "status", "error", "seconds", "output", "notes"]
    return {os.path.basename(r["input"]): r for r in data["cubes"]}


def test_find_cubes(cubes, tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copy(cubes / "a.h5", tmp_path / "sub" / "deep.h5")
    shutil.copy(cubes / "b.h5", tmp_path / "top.h5")
    shutil.copy(cubes / "c.h5", tmp_path / ".hidden.h5")
    (tmp_path / "notes.txt").write_text("not a cube")
    from xray_atlas.io.results import write_results

    write_results(tmp_path / "result.h5", maps={"Fe-K": np.ones((2, 2))})  # a result, not a cube
    (tmp_path / "broken.h5").write_bytes(b"damaged")  # kept: the report says why it cannot be read
    names = lambda paths: [p.name for p in paths]  # noqa: E731
    # a folder: its own cube files, not its subfolders, hidden files or results
    assert names(batch.find_cubes([tmp_path])) == ["broken.h5", "top.h5"]
    assert names(batch.find_cubes([str(tmp_path / "**" / "*.h5")])) == ["broken.h5", "deep.h5", "top.h5"]
    # each cube once, in the order given, as absolute paths
    found = batch.find_cubes([tmp_path / "top.h5", tmp_path, str(tmp_path / "t*.h5")])
    assert names(found) == ["top.h5", "broken.h5"] and all(p.is_absolute() for p in found)
    with pytest.raises(XrayAtlasError, match="no such file or folder"):
        batch.find_cubes([tmp_path / "missing.h5"])
    with pytest.raises(XrayAtlasError, match="matches no cube file"):
        batch.find_cubes([str(tmp_path / "*.bcf")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(XrayAtlasError, match="no cubes in this folder"):
        batch.find_cubes([tmp_path / "empty"])


def test_plan_refuses_clashes(cubes, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    shutil.copy(cubes / "a.h5", tmp_path / "one" / "scan.h5")
    shutil.copy(cubes / "b.h5", tmp_path / "two" / "Scan.h5")  # one result name on a case-insensitive disk
    found = batch.find_cubes([tmp_path / "one", tmp_path / "two"])
    with pytest.raises(XrayAtlasError, match="share the file stem 'Scan'") as err:
        batch.plan("maps", found, tmp_path / "out")
    assert "one/scan.h5" in str(err.value) and "two/Scan.h5" in str(err.value)
    # a result would replace its own cube: refused even with --overwrite
    with pytest.raises(XrayAtlasError, match="would replace the cube"):
        batch.plan("maps", batch.find_cubes([tmp_path / "one"]), tmp_path / "one", overwrite=True)
    # the command line: one line, exit 2, nothing written
    assert cli.main(["batch", "maps", str(tmp_path / "one"), str(tmp_path / "two"), str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_bad_input_is_one_line(cubes, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["batch", "maps", str(tmp_path / "nope.h5"), str(out)]) == 2
    assert cli.main(["batch", "maps", str(cubes / "a.h5"), str(out), "--scheduler", "local:0"]) == 2
    (tmp_path / "file").write_text("x")
    assert cli.main(["batch", "maps", str(cubes / "a.h5"), str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("xray-atlas batch: error: ") for line in err)
    assert "no such file" in err[0] and "local:N with N >= 1" in err[1] and "must be a folder" in err[2]
    assert not out.exists()


def test_maps_equal_single_command_failures_and_reruns(cubes, cluster, client, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["batch", "maps", str(cubes), str(out), "--model", "roi", "--scheduler", cluster.scheduler_address]
    assert cli.main(args) == 1  # bad.h5 failed, the others went on
    std = capsys.readouterr()
    assert "ok" in std.out and "cubes/min" in std.out and "[4/4]" in std.out + std.err
    failed = [line for line in std.err.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "bad.h5: not a readable HDF5 file" in failed[0]
    rows = report_rows(out)
    assert {k: r["status"] for k, r in rows.items()} == {"a.h5": "ok", "b.h5": "ok", "c.h5": "ok", "bad.h5": "failed"}
    assert rows["bad.h5"]["output"] is None and not (out / "bad.h5").exists()
    # a cube that fails on opening can take under the report's millisecond: 0.0 there
    assert all(r["seconds"] > 0 for k, r in rows.items() if k != "bad.h5") and rows["bad.h5"]["seconds"] >= 0
    for name in "abc":
        assert_same_result(
            out / f"{name}.h5",
            single(tmp_path, "maps", cubes / f"{name}.h5", "--model", "roi", threads=worker_threads(client)),
        )
    stamps = {n: (out / f"{n}.h5").stat().st_mtime_ns for n in "abc"}

    # a rerun skips the finished cubes (not rewritten) and tries the failed one again
    assert cli.main(args) == 1
    rows = report_rows(out)
    assert [rows[f"{n}.h5"]["status"] for n in "abc"] == ["skipped"] * 3 and rows["bad.h5"]["status"] == "failed"
    assert {n: (out / f"{n}.h5").stat().st_mtime_ns for n in "abc"} == stamps
    assert "skipping 3 of 4 cubes" in capsys.readouterr().err

    # a cube newer than its result, or another model: refused without --overwrite, before any work
    os.utime(cubes / "b.h5", ns=(stamps["b"] + 10**9, stamps["b"] + 10**9))
    ok = [str(cubes / f"{n}.h5") for n in "abc"]
    assert cli.main(["batch", "maps", *ok, str(out), "--model", "roi", "--scheduler", cluster.scheduler_address]) == 2
    assert "b.h5 (is older than its cube); give --overwrite" in capsys.readouterr().err
    assert cli.main(["batch", "maps", *ok, str(out), "--model", "lsq", "--scheduler", cluster.scheduler_address]) == 2
    assert "a.h5 (was made with roi, not lsq)" in capsys.readouterr().err
    assert (
        cli.main(
            ["batch", "maps", *ok, str(out), "--model", "roi", "--overwrite", "--scheduler", cluster.scheduler_address]
        )
        == 0
    )
    rows = report_rows(out)
    assert [rows[f"{n}.h5"]["status"] for n in "abc"] == ["skipped", "ok", "skipped"]
    assert "replacing a result that is older than its cube" in rows["b.h5"]["notes"]
    assert (out / "b.h5").stat().st_mtime_ns > stamps["b"] and (out / "a.h5").stat().st_mtime_ns == stamps["a"]


def test_default_model_loaded_once_per_worker(cubes, cluster, client, tmp_path):
    # six cubes (copies under other names) on two workers: each worker loads maps-fit once
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(6):
        shutil.copy(cubes / f"{'abc'[k % 3]}.h5", folder / f"scan{k}.h5")
    before = client.run(batch.model_loads)
    out = tmp_path / "out"
    assert cli.main(["batch", "maps", str(folder), str(out), "--scheduler", cluster.scheduler_address]) == 0
    after = client.run(batch.model_loads)
    loads = {w: after[w] - before.get(w, 0) for w in after}
    rows = report_rows(out)
    used = {r["worker"] for r in rows.values()}
    assert all(r["status"] == "ok" for r in rows.values()) and used <= set(loads)
    assert sum(loads.values()) == len(used) and all(loads[w] == 1 for w in used)
    # the reused model gives what a fresh one gives, cube after cube
    for k in (0, 4, 5):
        assert_same_result(
            out / f"scan{k}.h5", single(tmp_path, "maps", folder / f"scan{k}.h5", threads=worker_threads(client))
        )
    assert any("maps-fit" in (r["summary"] or "") for r in rows.values())


def test_probabilities_and_cluster_equal_single_command(cubes, cluster, client, tmp_path):
    two = [str(cubes / "a.h5"), str(cubes / "c.h5")]
    addr = ["--scheduler", cluster.scheduler_address]
    assert cli.main(["batch", "probabilities", *two, str(tmp_path / "p"), "--region", "2", *addr]) == 0
    som = ["--method", "som", "--param", "rows=2", "--param", "cols=2", "--seed", "3"]
    assert cli.main(["batch", "cluster", *two, str(tmp_path / "k"), *som, *addr]) == 0
    n = worker_threads(client)
    for name in ("a", "c"):
        cube = cubes / f"{name}.h5"
        assert_same_result(
            tmp_path / "p" / f"{name}.h5", single(tmp_path, "probabilities", cube, "--region", "2", threads=n)
        )
        assert_same_result(tmp_path / "k" / f"{name}.h5", single(tmp_path, "cluster", cube, *som, threads=n))
    # a rerun with other method options is refused, not skipped
    assert cli.main(["batch", "cluster", *two, str(tmp_path / "k"), *som[:-1], "4", *addr]) == 2


def test_local_scheduler_leaves_environment(cubes, tmp_path):
    before = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")}
    report = batch.run_batch("maps", [cubes / "a.h5"], tmp_path / "out", options={"model": "lsq"}, scheduler="local:1")
    assert report.workers == 1 and [r["status"] for r in report.rows] == ["ok"]
    assert {k: os.environ.get(k) for k in before} == before
    assert_same_result(tmp_path / "out" / "a.h5", single(tmp_path, "maps", cubes / "a.h5", "--model", "lsq"))


def _processing(client, key_part, not_on=(), timeout=60.0):
    """The worker that runs a task whose key holds ``key_part`` (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker, keys in client.processing().items():
            if worker not in not_on and any(key_part in str(k) for k in keys):
                return worker
        time.sleep(0.02)
    raise AssertionError(f"no worker started {key_part} within {timeout} s")


def _kill(client, worker):
    pid = client.run(os.getpid, workers=[worker])[worker]
    os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_worker_retried_once(cubes, cluster, client, tmp_path):
    # a long clustering (SOM epochs) so that its worker can be killed mid-task
    som = ["--method", "som", "--param", "rows=2", "--param", "cols=2", "--param", "epochs=30000"]
    out = tmp_path / "out"
    status = {}
    run = threading.Thread(
        target=lambda: status.update(
            rc=cli.main(
                ["batch", "cluster", str(cubes / "a.h5"), str(out), *som, "--scheduler", cluster.scheduler_address]
            )
        )
    )
    run.start()
    killed = _processing(client, "cluster-a-")
    _kill(client, killed)
    run.join(timeout=120)
    assert status["rc"] == 0
    row = report_rows(out)["a.h5"]
    assert row["status"] == "ok" and row["worker"] != killed  # run again on another worker process
    assert_same_result(out / "a.h5", single(tmp_path, "cluster", cubes / "a.h5", *som, threads=worker_threads(client)))

    # killed a second time: the cube fails, the batch reports it and exits 1
    client.wait_for_workers(2, timeout=60)
    out = tmp_path / "twice"
    run = threading.Thread(
        target=lambda: status.update(
            rc=cli.main(
                ["batch", "cluster", str(cubes / "c.h5"), str(out), *som, "--scheduler", cluster.scheduler_address]
            )
        )
    )
    run.start()
    first = _processing(client, "cluster-c-")
    _kill(client, first)
    _kill(client, _processing(client, "cluster-c-", not_on=(first,)))
    run.join(timeout=120)
    assert status["rc"] == 1
    row = report_rows(out)["c.h5"]
    assert row["status"] == "failed" and "died 2 times" in row["error"] and not (out / "c.h5").exists()
    client.wait_for_workers(2, timeout=60)


def test_model_cache_lends_one_cube_at_a_time():
    from xray_atlas.cubetasks import ModelCache

    cache, made = ModelCache(size=2), []

    def load():
        made.append(object())
        return made[-1]

    with cache.lend("a", load) as first:
        with cache.lend("a", load) as second:  # a cube running at the same time: a copy of its own
            assert second is not first
    with cache.lend("a", load) as again:
        assert again in (first, second)
    assert cache.loads == 2
    with pytest.raises(RuntimeError):
        with cache.lend("b", load) as broken:
            raise RuntimeError("the run failed")
    with cache.lend("b", load) as fresh:  # the model of a failed run is not kept
        assert fresh is not broken
    with cache.lend("c", load), cache.lend("d", load):
        pass
    with cache.lend("a", load) as reloaded:  # beyond size keys, the least recently used goes
        assert reloaded not in (first, second)
    assert cache.loads == 7


def test_rerun_skips_only_results_of_the_same_settings(cubes, tmp_path):
    from xray_atlas.io.results import write_results

    cube = batch.find_cubes([cubes / "a.h5"])
    out = tmp_path / "out"
    out.mkdir()
    maps = {"Pb-L": np.ones((12, 14)), "Fe-K": np.ones((12, 14))}
    write_results(out / "a.h5", maps=maps, attrs={"model": "lsq"})  # newer than the cube: written now

    def why(**options):
        try:
            jobs = batch.plan("maps", cube, out, options={"model": "lsq", **options})
        except XrayAtlasError as err:
            return str(err)
        return "skipped" if jobs[0].skip else "runs"

    assert why() == "skipped"  # the default set: whatever the model gave
    assert why(lines=("Pb-L", "Fe-K")) == why(lines=("Pb-L",), add_lines=("Fe-K",)) == "skipped"
    assert "a.h5 (holds other lines (Fe-K, Pb-L))" in why(lines=("Pb-L",))
    assert "holds other lines" in why(add_lines=("As-K",))
    assert "was made with lsq, not roi" in why(model="roi")
    assert "holds maps in counts" in why(units="counts/s")
    job = batch.plan("maps", cube, out, options={"model": "roi"}, overwrite=True)[0]
    assert not job.skip and job.reason == "replacing a result that was made with lsq, not roi"


def test_cancel_stops_the_batch_and_returns_the_report(cubes, cluster, client, tmp_path):
    # set before the batch: no cluster starts, nothing is submitted, every cube is cancelled
    stop = threading.Event()
    stop.set()
    said = []
    report = batch.run_batch(
        "maps", [cubes], tmp_path / "before", options={"model": "roi"}, cancel=stop, on_message=said.append
    )
    assert [r["status"] for r in report.rows] == ["cancelled"] * 4 and report.workers == 0
    assert {r["status"] for r in report_rows(tmp_path / "before").values()} == {"cancelled"}
    assert sorted(p.name for p in (tmp_path / "before").iterdir()) == ["batch-report.csv", "batch-report.json"]
    assert said[-1] == "cancelled: 4 cube(s) not done"
    # set by the first finished cube: the cubes not done then are cancelled, the report returned
    stop.clear()
    report = batch.run_batch(
        "maps",
        [cubes],
        tmp_path / "during",
        options={"model": "roi"},
        cancel=stop,
        scheduler=cluster.scheduler_address,
        progress=lambda *_: stop.set(),
    )
    statuses = [r["status"] for r in report.rows]
    assert sum(s != "cancelled" for s in statuses) >= 1 and set(statuses) <= {"ok", "failed", "cancelled"}
    assert {k: r["status"] for k, r in report_rows(tmp_path / "during").items()} == {
        os.path.basename(r["input"]): r["status"] for r in report.rows
    }
    assert all(r["output"] is None for r in report.rows if r["status"] == "cancelled")


def test_iter_batch_runs_in_a_child_that_never_runs_main(cubes, tmp_path, monkeypatch):
    """The docks' way (a child process holding the client and its local cluster), started from
    a script without an ``if __name__ == "__main__"`` guard, as napari's examples and the
    ``napari`` command's script are: neither the child nor its workers may run that script
    again (it would import napari there, or open a viewer)."""
    import sys
    import types

    from xray_atlas.cube import Progress, run_to_end

    script = tmp_path / "script.py"
    script.write_text(f"open({str(tmp_path / 'executions')!r}, 'a').write('x')\n")
    main = types.ModuleType("__main__")  # what `python script.py` leaves in sys.modules
    main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", main)
    with pytest.raises(XrayAtlasError, match="nice=20"):
        batch.iter_batch("maps", [cubes], tmp_path / "out", nice=20)
    with pytest.raises(XrayAtlasError, match="no such file"):  # checked by the call, before any process
        batch.iter_batch("maps", [tmp_path / "none.h5"], tmp_path / "out")
    seen: list[Progress] = []
    report = run_to_end(
        batch.iter_batch(
            "maps",
            [cubes / "a.h5", cubes / "bad.h5"],
            tmp_path / "out",
            options={"model": "roi"},
            scheduler="local:1",
            nice=5,
        ),
        seen.append,
    )
    assert sys.modules["__main__"] is main
    assert not (tmp_path / "executions").exists()
    assert [r["status"] for r in report.rows] == ["ok", "failed"]
    assert (tmp_path / "out" / "a.h5").is_file() and report_rows(tmp_path / "out")["a.h5"]["status"] == "ok"
    assert seen[0].done == 0 and seen[0].total == 2 and seen[-1].done == 2
    assert any("cubes/min" in p.what for p in seen)


# -- one cube in blocks of rows (--split-rows) ---------------------------------------------------


def assert_close_result(a, b):
    """Two result files hold the same datasets and root attributes, the float datasets equal to
    1e-5 of each one's largest value: a block of rows runs the model and the per-cluster fit on
    batches of other sizes than the whole cube's tile, and float32 sums over them differ in the
    last bits (measured on these cubes: at most 6.5e-7 of a map's largest value, 2.2e-3 counts
    of Cu-K's 3,778, with the default model maps-fit); integer datasets (cluster labels) equal."""

    def contents(path):
        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return out, attrs

    (da, aa), (db, ab) = contents(a), contents(b)
    assert sorted(da) == sorted(db) and da
    for name in da:
        x, y = np.asarray(da[name]), np.asarray(db[name])
        assert x.shape == y.shape and x.dtype == y.dtype, name
        if x.dtype.kind == "f":
            scale = float(np.nanmax(np.abs(x))) if np.isfinite(x).any() else 0.0
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-5 * max(scale, 1e-12), equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert aa.keys() == ab.keys()
    for k in aa:
        assert np.all(aa[k] == ab[k]), k


def test_split_cube_equals_single_command(cubes, cluster, client, tmp_path, capsys):
    addr = ["--scheduler", cluster.scheduler_address]
    a = cubes / "a.h5"  # 12 rows: blocks of 4 rows make three tasks
    assert cli.main(["batch", "maps", str(a), str(tmp_path / "m"), "--split-rows", "4", *addr]) == 0
    assert "1 cube(s) split into blocks of rows" in capsys.readouterr().err
    row = report_rows(tmp_path / "m")["a.h5"]
    assert row["status"] == "ok" and row["error"] is None and row["output"] == str(tmp_path / "m" / "a.h5")
    assert row["split"]["blocks"] == [[0, 4], [4, 8], [8, 12]] and len(row["split"]["block_seconds"]) == 3
    assert any(n.startswith("split into 3 blocks of 4 rows") for n in row["notes"])
    n = worker_threads(client)
    whole = single(tmp_path, "maps", a, threads=n)
    assert_close_result(tmp_path / "m" / "a.h5", whole)
    with h5py.File(whole, "r") as f:
        assert "fit/reduced_chi2" in f and f.attrs["model"] == "maps-fit"  # the fit's global steps ran
    # the single command's notes (the model's, the fit's, held, shrunk) come before the split's
    single_notes = [line.split("note: ", 1)[1] for line in capsys.readouterr().err.splitlines() if "note: " in line]
    assert row["notes"][: len(single_notes)] == single_notes and single_notes

    # probabilities per pixel (blocks of 5 rows: 5, 5, 2) and per 2 x 2 region (3 rows rounded up to 4)
    for opts, blocks in (
        (["--split-rows", "5"], [[0, 5], [5, 10], [10, 12]]),
        (["--split-rows", "3", "--region", "2"], [[0, 4], [4, 8], [8, 12]]),
    ):
        out = tmp_path / f"p{len(opts)}"
        assert cli.main(["batch", "probabilities", str(a), str(out), *opts, *addr]) == 0
        row = report_rows(out)["a.h5"]
        assert row["status"] == "ok" and row["split"]["blocks"] == blocks
        (tmp_path / out.name).mkdir(exist_ok=True)  # the single command's result of these options, apart
        assert_close_result(out / "a.h5", single(tmp_path / out.name, "probabilities", a, *opts[2:], threads=n))

    # --split-rows 0 runs the cube whole, as without it (a tiny cube is never split automatically)
    assert cli.main(["batch", "probabilities", str(a), str(tmp_path / "p0"), "--split-rows", "0", *addr]) == 0
    assert "split" not in report_rows(tmp_path / "p0")["a.h5"]
    with pytest.raises(SystemExit) as stop:  # argparse's refusal: exit status 2, one line
        cli.main(["batch", "maps", str(a), str(tmp_path / "x"), "--split-rows", "-1", *addr])
    assert stop.value.code == 2 and "--split-rows: give a number of rows >= 1" in capsys.readouterr().err


def test_split_cluster_equals_single_command(cubes, cluster, client, tmp_path):
    """cluster in blocks of rows: the fit once on the sample, then three blocks assigned on the
    two workers; labels exactly the single command's, mean spectra to assert_close_result's
    1e-5 of the largest (measured here: equal, as each block's float32 sums are added in
    float64)."""
    addr = ["--scheduler", cluster.scheduler_address]
    a = cubes / "a.h5"  # 12 rows: blocks of 4 rows make three tasks
    n = worker_threads(client)
    for method, params in (
        ("umap-hdbscan", ["--param", "min_cluster_size=10"]),
        ("som", ["--param", "rows=3", "--param", "cols=3"]),
    ):
        opts = ["--method", method, *params, "--seed", "2"]
        out = tmp_path / method
        assert cli.main(["batch", "cluster", str(a), str(out), *opts, "--split-rows", "4", *addr]) == 0
        row = report_rows(out)["a.h5"]
        assert row["status"] == "ok" and row["split"]["blocks"] == [[0, 4], [4, 8], [8, 12]]
        (tmp_path / f"{method}-single").mkdir()
        whole = single(tmp_path / f"{method}-single", "cluster", a, *opts, threads=n)
        assert_close_result(out / "a.h5", whole)
        with h5py.File(whole, "r") as f:
            labels = f["labels"][()]
        assert labels.dtype.kind == "i" and np.unique(labels[labels >= 0]).size >= 2, method  # a real clustering


def test_split_cube_with_a_damaged_block_fails_whole(tmp_path, cubes, cluster, client, capsys):
    from xray_atlas.io.hdf5 import write_cube
    from xray_atlas.physics.painting import synthetic_painting

    # a gzip-compressed cube whose chunks of rows 8 to 11 are overwritten mid-file: the file
    # opens, and only the block that reads those rows fails
    p = synthetic_painting(12, 14, n_channels=2048, seed=4)
    cube = write_cube(
        tmp_path / "damaged.h5",
        p.counts,
        energy_offset_kev=p.energy_offset_kev,
        energy_gain_kev=p.energy_gain_kev,
        chunk_pixels=4,
        compression="gzip",
    )
    with h5py.File(cube, "r") as f:
        ds = f["spectra"]
        spans = [
            (info.byte_offset, info.size)
            for info in map(ds.id.get_chunk_info, range(ds.id.get_num_chunks()))
            if info.chunk_offset[0] >= 8
        ]
    assert spans
    with open(cube, "r+b") as fh:
        for offset, size in spans:
            fh.seek(offset)
            fh.write(b"\xff" * size)
    addr = ["--scheduler", cluster.scheduler_address]
    for command in (["probabilities"], ["maps", "--model", "lsq", "--lines", "Fe-K,Pb-L"]):
        out = tmp_path / command[0]
        assert cli.main(["batch", command[0], str(cube), str(out), *command[1:], "--split-rows", "4", *addr]) == 1
        failed = [line for line in capsys.readouterr().err.splitlines() if "failed:" in line]
        assert len(failed) == 1 and str(cube) in failed[0] and "(rows 8 to 11)" in failed[0]
        row = report_rows(out)["damaged.h5"]
        assert row["status"] == "failed" and row["output"] is None and "\n" not in row["error"]
        # nothing half-written: no result, no temporary file beside the report
        assert sorted(q.name for q in out.iterdir()) == ["batch-report.csv", "batch-report.json"]
    # the whole cube, read by the single command, fails alike
    assert cli.main(["probabilities", str(cube), str(tmp_path / "one.h5")]) == 2


def test_automatic_split_needs_a_large_cube_and_two_workers(cubes, tmp_path, monkeypatch):
    from xray_atlas import rowblocks

    # the automatic rule with its threshold lowered to this 0.7 MB cube (a 2 GiB cube is too
    # large for a test): two local workers split it (the cluster is not cut to one worker for
    # one cube), one worker does not
    monkeypatch.setattr(rowblocks, "SPLIT_BYTES", (cubes / "a.h5").stat().st_size)
    two = batch.run_batch("probabilities", [cubes / "a.h5"], tmp_path / "two", scheduler="local:2")
    assert two.workers == 2 and two.rows[0]["status"] == "ok"
    assert two.rows[0]["split"]["blocks"] == [[0, 12]]  # whole tiles: one 64 MB tile holds this cube
    one = batch.run_batch("probabilities", [cubes / "a.h5"], tmp_path / "one", scheduler="local:1")
    assert one.workers == 1 and one.rows[0]["status"] == "ok" and "split" not in one.rows[0]
    monkeypatch.setattr(rowblocks, "SPLIT_BYTES", (cubes / "a.h5").stat().st_size + 1)
    small = batch.run_batch("probabilities", [cubes / "a.h5"], tmp_path / "small", scheduler="local:2")
    assert small.workers == 1 and "split" not in small.rows[0]  # no more workers than cubes, as before
    assert_close_result(two.rows[0]["output"], one.rows[0]["output"])


def test_block_rows():
    from xray_atlas.rowblocks import block_rows

    # automatic: 4 blocks per worker, rounded up to whole tiles of 10 rows
    assert block_rows(256, tile_rows=10, split_rows=None, n_workers=2) == [
        (0, 40),
        (40, 80),
        (80, 120),
        (120, 160),
        (160, 200),
        (200, 240),
        (240, 256),
    ]
    assert block_rows(12, tile_rows=100, split_rows=None, n_workers=2) == [(0, 12)]
    assert block_rows(12, tile_rows=100, split_rows=5, n_workers=2) == [(0, 5), (5, 10), (10, 12)]
    assert block_rows(12, tile_rows=100, split_rows=3, n_workers=2, region=2) == [(0, 4), (4, 8), (8, 12)]
    with pytest.raises(XrayAtlasError, match="split_rows=0 must be a positive number of rows"):
        block_rows(12, tile_rows=100, split_rows=0, n_workers=2)
