"""The Export row of the Elemental maps, Element probabilities and Clusters docks (issue 28): a
real click, the real export on the dock's job bar; only the folder dialog's answer (and the
replace question's) is given, since a test cannot click a native dialog."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QMessageBox

from xray_atlas.io.results import write_results


@pytest.fixture
def infos():
    """Info notifications shown during the test."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    start = len(notification_manager.records)

    def collect() -> list[str]:
        return [str(n.message) for n in notification_manager.records[start:] if n.severity == NotificationSeverity.INFO]

    return collect


@pytest.fixture
def folder_answer(monkeypatch):
    """Make the folder dialog answer ``path`` (a str; "" is Cancel); returns the setter."""
    asked = []

    def answer(path):
        def dialog(*args, **kwargs):
            asked.append(args[1] if len(args) > 1 else "")
            return str(path)

        monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(dialog))
        return asked

    return answer


def _click_export(qtbot, dock, fmt):
    dock.export_row.format_combo.setCurrentText(fmt)
    assert dock.export_row.format_combo.currentText() == fmt
    qtbot.mouseClick(dock.export_row.button, Qt.MouseButton.LeftButton)


def test_maps_dock_exports_its_maps(
    viewer, plugin_dock, qtbot, painting_file, tmp_path, idle, errors, infos, folder_answer, monkeypatch
):
    import tifffile

    path, _ = painting_file
    with h5py.File(path, "a") as f:
        f.attrs["pixel_size_um"] = 100.0  # the cube states it: the TIFFs carry it
    maps = plugin_dock("Elemental maps")
    _click_export(qtbot, maps, "TIFF (values)")  # nothing painted yet: one error, no dialog
    assert any("No maps to export" in m for m in errors())
    asked = folder_answer(tmp_path / "out")
    viewer.open(str(path), plugin="napari-xray-atlas")
    maps.model_combo.setCurrentText("lsq")
    maps.lines_edit.setText("Pb-L, Hg-L")
    qtbot.mouseClick(maps.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, maps)
    (tmp_path / "out").mkdir()
    _click_export(qtbot, maps, "TIFF (values)")
    idle(qtbot, maps)
    assert asked and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Hg-L.tif", "Pb-L.tif"]
    for line in ("Pb-L", "Hg-L"):
        with tifffile.TiffFile(tmp_path / "out" / f"{line}.tif") as tif:
            page = tif.pages[0]
            assert np.array_equal(page.asarray(), viewer.layers[f"{line} (lsq)"].data)
            num, den = page.tags["XResolution"].value
            assert 1e4 * den / num == pytest.approx(100.0)
    assert errors() == [m for m in errors() if "No maps" in m]
    assert any(m.startswith("Exported 2 maps as tiff") for m in infos())
    # the sheet into the same folder: new files only
    _click_export(qtbot, maps, "overview sheet (PNG, PDF)")
    idle(qtbot, maps)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "Hg-L.tif",
        "Pb-L.tif",
        "overview.pdf",
        "overview.png",
    ]
    # TIFFs again: the files exist, so the dock asks; No keeps them, Yes replaces them
    before = (tmp_path / "out" / "Pb-L.tif").stat().st_mtime_ns
    questions = []

    def say(answer):
        def question(parent, title, text, *rest):
            questions.append(text)
            return answer

        monkeypatch.setattr(QMessageBox, "question", staticmethod(question))

    say(QMessageBox.StandardButton.No)
    _click_export(qtbot, maps, "TIFF (values)")
    idle(qtbot, maps)
    assert "2 of the files exist" in questions[-1]
    assert (tmp_path / "out" / "Pb-L.tif").stat().st_mtime_ns == before
    say(QMessageBox.StandardButton.Yes)
    (tmp_path / "out" / "Pb-L.tif").write_bytes(b"old")
    _click_export(qtbot, maps, "TIFF (values)")
    idle(qtbot, maps)
    assert np.array_equal(tifffile.imread(tmp_path / "out" / "Pb-L.tif"), viewer.layers["Pb-L (lsq)"].data)


def test_probabilities_dock_exports_an_opened_result(
    viewer, plugin_dock, qtbot, tmp_path, idle, errors, infos, folder_answer
):
    from PIL import Image

    rng = np.random.default_rng(4)
    probs = {"Hg": rng.random((10, 12)).astype(np.float32), "Cu": rng.random((10, 12)).astype(np.float32)}
    result = tmp_path / "probs.h5"
    write_results(result, probabilities=probs, attrs={"model": "elements-default", "pixel_size_um": 250.0})
    dock = plugin_dock("Element probabilities")
    viewer.open(str(result), plugin="napari-xray-atlas")
    folder_answer(tmp_path / "figures")  # a folder that does not exist yet is made
    _click_export(qtbot, dock, "PNG figures + sheet")
    idle(qtbot, dock)
    out = tmp_path / "figures"
    assert sorted(p.name for p in out.iterdir()) == ["Cu.png", "Hg.png", "overview.pdf", "overview.png"]
    with Image.open(out / "overview.png") as im:
        assert sorted(im.size) == [1240, 1753]
    assert errors() == [] and any("Exported 2 probability maps as png" in m for m in infos())
    # Cancel in the folder dialog: nothing happens
    folder_answer("")
    _click_export(qtbot, dock, "TIFF (values)")
    assert not dock.jobs.busy and not list(out.glob("*.tif"))


def test_clusters_dock_exports_the_mean_spectra_with_energy(
    viewer, plugin_dock, qtbot, painting_file, tmp_path, idle, errors, folder_answer
):
    from xray_atlas.io import read

    path, _ = painting_file
    dock = plugin_dock("Clusters")
    viewer.open(str(path), plugin="napari-xray-atlas")
    dock.method_combo.setCurrentText("som")
    qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, dock)
    layer = viewer.layers["clusters (som)"]
    folder_answer(tmp_path)
    _click_export(qtbot, dock, "CSV spectra")
    idle(qtbot, dock)
    with open(tmp_path / "cluster_spectra.csv", newline="") as f:
        rows = list(csv.reader(f))
    spectra = layer.metadata["xray_atlas"]["cluster_spectra"]
    assert rows[0] == ["energy_kev"] + [f"cluster {k + 1}" for k in range(len(spectra))]
    table = np.array(rows[1:], dtype=np.float64)
    with read(path) as cube:
        np.testing.assert_allclose(table[:, 0], cube.energy, atol=5e-7)
    assert np.array_equal(table[:, 1:].T.astype(np.float32), spectra)
    assert errors() == []
