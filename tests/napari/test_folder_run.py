"""The docks' "Run over a folder" (issue 33): a real folder of tiny simulated scans and a
damaged file, real clicks, the batch in its child process with a real local dask cluster.
The run writes what the single-cube command writes, lists the bad scan with its error,
Cancel leaves cancelled rows, an opened result becomes the reader's layers, and the window
keeps ticking meanwhile."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from qtpy.QtCore import QElapsedTimer, Qt, QTimer

from xray_atlas.napari.widgets._folder import FolderRow

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two tiny painting scans from the project's simulator (2,048 channels of 10 eV, the
    range the maps need) and a file that only looks like one."""
    from xray_atlas.physics.painting import synthetic_painting

    folder = tmp_path_factory.mktemp("scans")
    for seed, name in ((1, "a"), (2, "b")):
        synthetic_painting(8, 9, n_channels=2048, seed=seed).write(folder / f"{name}.h5")
    (folder / "bad.h5").write_bytes(b"not an HDF5 file")
    return folder


def contents(path):
    """Every dataset and root attribute of an HDF5 file."""
    data = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return data, attrs


def assert_same_result(batch_file, single_file):
    (da, aa), (db, ab) = contents(batch_file), contents(single_file)
    assert sorted(da) == sorted(db) and da
    for name in da:
        # float32 sums: a worker has one BLAS/torch thread here and this process more, so the
        # last digits may differ (docs/batch.md: 5e-5 relative at most)
        np.testing.assert_allclose(da[name], db[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # the inputs attribute names the same cube; the rest is the same
    assert {k: str(v) for k, v in aa.items()} == {k: str(v) for k, v in ab.items()}


def rows(folder_row):
    return [
        [folder_row.results.topLevelItem(i).text(c) for c in range(3)]
        for i in range(folder_row.results.topLevelItemCount())
    ]


class Ticks:
    """A 10 ms timer on the main thread; ``longest`` is the largest gap between two ticks (a
    frozen window cannot tick)."""

    def __init__(self):
        self.clock = QElapsedTimer()
        self.clock.start()
        self.last = 0
        self.longest = 0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def tick(self):
        now = self.clock.elapsed()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def stop(self):
        self.timer.stop()
        return self.longest


def test_maps_over_a_folder_equal_the_single_command_and_open_as_layers(
    viewer, plugin_dock, qtbot, idle, errors, scans, tmp_path
):
    from napari.utils.notifications import notification_manager

    from xray_atlas.cubetasks import run_maps

    dock = plugin_dock("Elemental maps")
    row = dock.findChild(FolderRow)
    dock.model_combo.setCurrentText("lsq")
    row.input_edit.setText(str(scans))
    row.output_edit.setText(str(tmp_path / "maps"))
    row.scheduler_edit.setText("local:2")
    notes = len(notification_manager.records)
    ticks = Ticks()
    qtbot.mouseClick(row.run_button, Qt.MouseButton.LeftButton)
    assert dock.jobs.busy
    idle(qtbot, dock)
    longest = ticks.stop()
    print(f"longest gap between 10 ms ticks during the folder run: {longest} ms")
    assert longest < 500
    assert errors() == []
    # the list: each scan with its result, the bad one with its reason
    assert rows(row) == [
        ["a.h5", "ok", "a.h5"],
        ["b.h5", "ok", "b.h5"],
        ["bad.h5", "failed", row.results.topLevelItem(2).text(2)],
    ]
    assert "not a readable HDF5 file" in rows(row)[2][2] and "bad.h5" in rows(row)[2][2]
    toasts = [str(n.message) for n in notification_manager.records[notes:]]
    assert "2 of 3 scans mapped, 1 failed: see the report" in toasts
    report = json.loads((tmp_path / "maps" / "batch-report.json").read_text())
    assert [c["status"] for c in report["cubes"]] == ["ok", "ok", "failed"]
    assert report["options"]["model"] == "lsq" and report["options"]["units"] == "counts"
    # the single-cube command's result, with the dock's options
    for name in ("a", "b"):
        single = run_maps(scans / f"{name}.h5", tmp_path / f"single-{name}.h5", model="lsq", device="auto")
        assert_same_result(tmp_path / "maps" / f"{name}.h5", single.output)
    assert not (tmp_path / "maps" / "bad.h5").exists()
    # open b's result: the reader's layers, shown as a single result would be
    before = len(viewer.layers)
    row.results.topLevelItem(1).setSelected(True)
    qtbot.mouseClick(row.open_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    added = list(viewer.layers)[before:]
    from xray_atlas.napari._reader import result_layer_data

    expected = result_layer_data(tmp_path / "maps" / "b.h5")
    assert sorted(lyr.name for lyr in added) == sorted(kw["name"] for _, kw, _ in expected)
    pb = viewer.layers["Pb-L (lsq)"]
    np.testing.assert_array_equal(pb.data, contents(tmp_path / "maps" / "b.h5")[0]["maps/Pb-L"])
    assert pb.metadata["xray_atlas"]["source"] == "b.h5"
    assert {lyr.name: lyr.visible for lyr in added} == {kw["name"]: kw["visible"] for _, kw, _ in expected}


def test_cancel_leaves_cancelled_rows(viewer, plugin_dock, qtbot, idle, errors, scans, tmp_path):
    dock = plugin_dock("Clusters")
    row = dock.findChild(FolderRow)
    dock.method_combo.setCurrentText("som")
    assert dock.method_combo.currentText() == "som"
    for name, value in (("rows", 3), ("cols", 3), ("epochs", 2)):
        dock.fields[name].setValue(value)
    row.input_edit.setText(str(scans))
    row.output_edit.setText(str(tmp_path / "clusters"))
    row.scheduler_edit.setText("local:1")
    worker = row.run()
    assert worker is not None
    # cancel at the first progress (the workers are still starting): nothing has run yet
    with qtbot.waitSignal(worker.yielded, timeout=60000):
        pass
    qtbot.mouseClick(dock.jobs.cancel_button, Qt.MouseButton.LeftButton)
    assert "cancelling" in dock.jobs.status.text()
    idle(qtbot, dock)
    assert errors() == []
    assert [r[1] for r in rows(row)] == ["cancelled"] * 3
    report = json.loads((tmp_path / "clusters" / "batch-report.json").read_text())
    assert [c["status"] for c in report["cubes"]] == ["cancelled"] * 3
    assert sorted(p.name for p in (tmp_path / "clusters").iterdir()) == ["batch-report.csv", "batch-report.json"]
    # a rerun after the cancel runs them, with the dock's cluster options, as `xray-atlas cluster` would
    from xray_atlas.cubetasks import run_cluster

    worker = row.run()
    idle(qtbot, dock)
    assert [r[1] for r in rows(row)] == ["ok", "ok", "failed"]
    single = run_cluster(
        scans / "a.h5", tmp_path / "single-a.h5", method="som", params=dock.parameters(), seed=dock.seed.value()
    )
    assert_same_result(tmp_path / "clusters" / "a.h5", single.output)


def test_probabilities_refusals_before_any_work_and_a_region_run(viewer, plugin_dock, qtbot, errors, scans, tmp_path):
    dock = plugin_dock("Element probabilities")
    row = dock.findChild(FolderRow)
    assert row.run() is None
    assert errors()[-1] == "scans: choose the folder of scans"
    row.input_edit.setText(str(scans))
    row.output_edit.setText(str(tmp_path / "probs"))
    dock.where_combo.setCurrentText("clusters")
    assert row.run() is None
    assert errors()[-1].startswith("per: clusters names one scan's Labels layer")
    # a folder without scans, results that would be replaced: refused at once, nothing started
    dock.where_combo.setCurrentText("k x k region")
    row.input_edit.setText(str(tmp_path))
    assert row.run() is None and not dock.jobs.busy
    assert errors()[-1].startswith("no cubes in this folder")
    assert not (tmp_path / "probs").exists()
    row.input_edit.setText(str(scans))
    (tmp_path / "probs").mkdir()
    (tmp_path / "probs" / "a.h5").write_bytes(b"someone's file")
    assert row.run() is None and not dock.jobs.busy
    assert (
        "would be replaced: a.h5 (is not a readable result file); tick 'replace results made otherwise or older' "
        "to replace them, or choose another folder for the results" in errors()[-1]
    )
    assert (tmp_path / "probs" / "a.h5").read_bytes() == b"someone's file"
    # per 2 x 2 region with the default model: what `xray-atlas probabilities --region 2` writes
    from xray_atlas.cubetasks import run_probabilities

    row.output_edit.setText(str(tmp_path / "regions"))
    dock.region_spin.setValue(2)
    row.scheduler_edit.setText("local:1")
    qtbot.mouseClick(row.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.jobs.busy, timeout=300000)
    assert [r[1] for r in rows(row)] == ["ok", "ok", "failed"]
    single = run_probabilities(scans / "b.h5", tmp_path / "single-b.h5", region=2)
    assert_same_result(tmp_path / "regions" / "b.h5", single.output)
