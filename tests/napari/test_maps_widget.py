"""The Elemental maps dock (issue 4): layers per line on the cube's grid, the inspector samples
them, the writer saves them, trained models appear at once, cancel adds nothing, bad input."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from xray_atlas.inference import predict_maps
from xray_atlas.io import read
from xray_atlas.io.results import read_results


@pytest.fixture
def maps_dock(plugin_dock):
    return plugin_dock("Elemental maps")


def test_lsq_maps_become_layers_the_inspector_and_writer_use(
    viewer, maps_dock, inspector, qtbot, click, painting_file, tmp_path, errors, idle
):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    maps_dock.model_combo.setCurrentText("lsq")
    maps_dock.lines_edit.setText("Pb-L, Hg-L Fe-K")
    qtbot.mouseClick(maps_dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, maps_dock)
    assert errors() == []
    names = [lyr.name for lyr in viewer.layers]
    assert {"Pb-L (lsq)", "Hg-L (lsq)", "Fe-K (lsq)"} <= set(names)
    layer = viewer.layers["Pb-L (lsq)"]
    assert layer.blending == "additive" and layer.data.shape == painting.counts.shape[:2]
    with read(path) as cube:
        expected = predict_maps(cube, "lsq", device="cpu", lines=("Pb-L",)).maps
    np.testing.assert_allclose(layer.data, expected["Pb-L"], rtol=1e-5)
    # a click on the map layer shows that pixel's spectrum
    click(qtbot, viewer, layer, 5, 7)
    np.testing.assert_array_equal(inspector.view.pixel_curve.getData()[1], painting.counts[5, 7])
    # saved as /maps/<line>
    from napari.plugins.io import save_layers

    out = tmp_path / "maps.h5"
    save_layers(str(out), [layer, viewer.layers["Fe-K (lsq)"]], plugin="napari-xray-atlas")
    r = read_results(out)
    np.testing.assert_allclose(r["maps"]["Pb-L"], expected["Pb-L"], rtol=1e-5)


def test_side_by_side_and_trained_models_appear(viewer, maps_dock, qtbot, painting_file, tmp_path, idle):
    from xray_atlas.training import Finished, Run, make_config

    path, _ = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    before = [maps_dock.model_combo.itemText(i) for i in range(maps_dock.model_combo.count())]
    # in a child process, as the Training dock trains: an optimiser step in napari's process
    # imports triton where installed, which crashes it (issue 26)
    run = Run(
        make_config(
            "maps", epochs=1, device="cpu", model_params={"hidden": (16,)}, source_params={"n_train": 64, "n_val": 32}
        ),
        tmp_path / "my-maps-model",
        mode="process",
    )
    ended = [ev for ev in run.start().events() if ev is not None][-1]
    assert isinstance(ended, Finished) and ended.path, ended
    maps_dock.model_combo.refresh()  # what opening the list does
    after = [maps_dock.model_combo.itemText(i) for i in range(maps_dock.model_combo.count())]
    assert "my-maps-model" in after and "my-maps-model" not in before
    maps_dock.model_combo.setCurrentText("my-maps-model")
    maps_dock.lines_edit.setText("Fe-K")
    maps_dock.compare_combo.setCurrentText("roi")
    maps_dock.run()
    idle(qtbot, maps_dock)
    names = {lyr.name for lyr in viewer.layers}
    assert {"Fe-K (my-maps-model)", "Fe-K (roi)"} <= names and "Fe-K (lsq)" not in names


def test_the_per_cluster_fit_is_a_model_choice(viewer, maps_dock, qtbot, painting_file, idle, errors):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    maps_dock.model_combo.setCurrentText("fit")
    assert maps_dock.model_combo.currentText() == "fit"
    maps_dock.lines_edit.setText("Pb-L")
    maps_dock.run()
    idle(qtbot, maps_dock)
    assert errors() == []
    with read(path) as cube:
        expected = predict_maps(cube, "fit", device="cpu", lines=("Pb-L",)).maps
    np.testing.assert_allclose(viewer.layers["Pb-L (fit)"].data, expected["Pb-L"], rtol=1e-5)
    assert expected["Pb-L"].max() > 100
    # the clusters whose own line ratios were fitted, as labels (0: pixels without counts)
    clusters = viewer.layers["clusters (fit)"]
    assert clusters.data.shape == painting.counts.shape[:2] and clusters.data.min() >= 1
    # the shipped model on the fit reads it too, and paints beside it
    maps_dock.model_combo.setCurrentText("maps-fit")
    assert maps_dock.model_combo.currentText() == "maps-fit"
    maps_dock.run()
    idle(qtbot, maps_dock)
    assert errors() == []
    with read(path) as cube:
        expected = predict_maps(cube, "maps-fit", device="cpu", lines=("Pb-L",)).maps
    np.testing.assert_allclose(viewer.layers["Pb-L (maps-fit)"].data, expected["Pb-L"], rtol=1e-4, atol=1e-3)
    assert "clusters (maps-fit)" in [lyr.name for lyr in viewer.layers]


def test_default_model_stands_in_on_an_uncalibrated_cube(
    viewer, maps_dock, qtbot, add_cube_layer, idle, errors, small_painting
):
    from napari.utils.notifications import notification_manager

    from xray_atlas.cube import SpectralCube
    from xray_atlas.inference import DEFAULT_MAPS_MODEL

    # a painting's counts without their calibration: the default maps-fit cannot fit them by
    # clusters, so the dock paints them with maps-default and says why
    add_cube_layer(viewer, SpectralCube(np.asarray(small_painting.counts)[:6, :8]))
    assert maps_dock.model_combo.currentText() == DEFAULT_MAPS_MODEL == "maps-fit"
    start = len(notification_manager.records)
    maps_dock.lines_edit.setText("Pb-L")
    maps_dock.run()
    idle(qtbot, maps_dock)
    assert errors() == []
    assert viewer.layers["Pb-L (maps-default)"].data.shape == (6, 8)
    said = [str(n.message) for n in notification_manager.records[start:]]
    # one toast, which names the stand-in and why; the note in full is in the details log
    assert len(said) == 1 and "maps-default" in said[0] and "energy calibration" in said[0], said
    assert any("maps-default instead" in line for line in maps_dock.jobs.lines), maps_dock.jobs.lines


def test_each_run_reports_its_own_notes(viewer, maps_dock, qtbot, small_painting, add_cube_layer, idle):
    """Issue 30 item 3: a run's notes, clusters and found lines come in its result, not on the
    model; two runs of the per-cluster fit report the same notes once each, not piled up."""
    from xray_atlas.cube import SpectralCube

    p = small_painting
    add_cube_layer(
        viewer, SpectralCube(np.asarray(p.counts)[:6, :8], offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev)
    )
    maps_dock.model_combo.setCurrentText("fit")
    maps_dock.lines_edit.setText("Pb-L, Hg-L")
    logs = []
    for _ in range(2):
        first = len(maps_dock.jobs.lines)
        maps_dock.run()
        idle(qtbot, maps_dock)
        # the run's notes, "<model>: <note>", after the log's time of day
        said = [line.split("  ", 1)[1].strip() for line in maps_dock.jobs.lines[first:]]
        logs.append([line for line in said if line.startswith("fit: ")])
    assert logs[0] and logs[0] == logs[1], logs
    assert sum("per-cluster fit" in line for line in logs[1]) == 1, logs[1]


def test_cancel_adds_no_layer(viewer, maps_dock, qtbot, slow_cube, add_cube_layer, idle):
    cube = slow_cube((60, 8, 512), seconds_per_row=0.05)
    add_cube_layer(viewer, cube)
    maps_dock.tile_bytes = 8 * 512 * 2  # one row per tile
    maps_dock.model_combo.setCurrentText("lsq")
    n = len(viewer.layers)
    worker = maps_dock.run()
    qtbot.wait(600)
    assert worker is not None
    qtbot.mouseClick(maps_dock.jobs.cancel_button, Qt.MouseButton.LeftButton)
    # wait on the dock's state, not on the signal: finished may be delivered while the click's
    # events are processed, before a waitSignal would be listening
    idle(qtbot, maps_dock)
    qtbot.wait(100)
    assert len(viewer.layers) == n and maps_dock.jobs.status.text().endswith("cancelled")


def test_bad_input_notifies(viewer, maps_dock, qtbot, painting_file, errors, tmp_path):
    maps_dock.run()
    assert any("open a cube first" in m.lower() for m in errors())
    path, _ = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    maps_dock.lines_edit.setText("Xx-K")
    assert maps_dock.run() is None and any("Xx" in m for m in errors())
    maps_dock.lines_edit.setText("")
    maps_dock.model_combo.setEditable(True)
    maps_dock.model_combo.setCurrentText(str(tmp_path / "missing-model"))
    assert maps_dock.run() is None and maps_dock.jobs.worker is None
    assert any("neither a model file nor a known name" in m for m in errors())


def test_lines_found_in_the_cube_are_added_and_named(viewer, maps_dock, qtbot, tmp_path, idle, errors):
    from napari.utils.notifications import notification_manager

    from xray_atlas.physics.materials import compound
    from xray_atlas.physics.painting import Region, paint

    # orpiment (arsenic, none of the twelve) the default set finds; molybdenum (none of the
    # physics prior's families) the user adds by name
    reg = np.zeros((12, 12), np.int32)
    reg[:6] = 1
    reg[:, 8:] = 2
    moly = compound("MoO3", density=4.7, name="molybdenum trioxide")
    path = tmp_path / "arsenic.h5"
    paint(
        reg,
        [
            Region("lead white", (("lead white", 30.0),)),
            Region("orpiment", (("orpiment", 20.0),)),
            Region("moly", ((moly, 10.0),)),
        ],
        seed=2,
    ).write(path)
    viewer.open(str(path), plugin="napari-xray-atlas")
    maps_dock.model_combo.setCurrentText("fit")
    maps_dock.lines_edit.setText("+Mo-K")
    start = len(notification_manager.records)
    maps_dock.run()
    idle(qtbot, maps_dock)
    assert errors() == []
    names = {lyr.name for lyr in viewer.layers}
    assert {"As-K (fit)", "Mo-K (fit)", "Pb-L (fit)", "S-K (fit)"} <= names
    said = [str(n.message) for n in notification_manager.records[start:]]
    assert len(said) == 1 and "found in the cube and added: As-K;" in said[0], said  # Mo-K was asked for
    assert any("As-K (z " in line for line in maps_dock.jobs.lines), maps_dock.jobs.lines
    # a family the cube cannot show is refused before any work
    maps_dock.lines_edit.setText("+U-K")
    assert maps_dock.run() is None and any("U-K has no line" in m for m in errors())


def test_maps_in_counts_per_second_of_live_time(viewer, maps_dock, qtbot, painting_file, tmp_path, errors, idle):
    """Issue 28: the dock paints counts or counts per second of live time; the painting's file
    states 20 ms per pixel, so counts/s maps are the counts maps / 0.02 s, and saved files say so."""
    from napari.plugins.io import save_layers

    from xray_atlas.io.hdf5 import write_cube

    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    assert maps_dock.units_combo.model().item(1).isEnabled()
    maps_dock.model_combo.setCurrentText("roi")
    maps_dock.lines_edit.setText("Pb-L")
    maps_dock.units_combo.setCurrentIndex(1)
    assert maps_dock.units() == "counts/s"
    qtbot.mouseClick(maps_dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, maps_dock)
    assert errors() == []
    layer = viewer.layers["Pb-L (roi)"]
    with read(path) as cube:
        counts = predict_maps(cube, "roi", device="cpu", lines=("Pb-L",)).maps
    np.testing.assert_allclose(layer.data, counts["Pb-L"] / painting.attrs["live_time_s"], rtol=1e-5)
    assert layer.metadata["xray_atlas"]["units"] == "counts/s"
    out = tmp_path / "rates.h5"
    save_layers(str(out), [layer], plugin="napari-xray-atlas")
    assert read_results(out)["attrs"]["units"] == "counts/s"
    # a cube whose file states no live time: counts only
    bare = tmp_path / "bare.h5"
    write_cube(
        bare, painting.counts, energy_offset_kev=painting.energy_offset_kev, energy_gain_kev=painting.energy_gain_kev
    )
    viewer.open(str(bare), plugin="napari-xray-atlas")
    maps_dock.cube_combo.setCurrentText("bare.h5 counts")
    assert not maps_dock.units_combo.model().item(1).isEnabled() and maps_dock.units() == "counts"


def test_the_strongest_maps_shown_together_never_add_up_to_white(viewer, maps_dock, qtbot, tmp_path, idle, errors):
    """Ochre over a lead-white ground, the commonest stack there is: at full opacity the yellow
    Fe-K and the pale blue Pb-L maps added up to white over 47 % of a painting (seen in a
    screenshot after adapting a map model). The shown layers' colours now add up to at most 1
    in each channel at 99 % of the pixels."""
    from xray_atlas.colours import element_colour, line_symbol
    from xray_atlas.physics.painting import Region, paint

    regions = [
        Region("lead white", (("lead white", 30.0),)),
        Region("ochre over lead white", (("yellow ochre", 40.0), ("lead white", 30.0))),
        Region("smalt over lead white", (("smalt", 30.0), ("lead white", 30.0))),
    ]
    reg = np.zeros((24, 32), np.int64)
    reg[:, 10:] = 1
    reg[16:, 24:] = 2
    path = tmp_path / "ochre.h5"
    paint(reg, regions, seed=2).write(path)
    viewer.open(str(path), plugin="napari-xray-atlas")
    for layer in list(viewer.layers):
        layer.visible = layer.metadata.get("xray_atlas", {}).get("kind") == "cube"
    maps_dock.model_combo.setCurrentText("lsq")
    qtbot.mouseClick(maps_dock.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, maps_dock)
    assert errors() == []
    shown = [lyr for lyr in viewer.layers if lyr.visible and lyr.metadata.get("xray_atlas", {}).get("kind") == "map"]
    assert "Fe-K (lsq)" in {lyr.name for lyr in shown} and "Pb-L (lsq)" in {lyr.name for lyr in shown}
    # each layer's colour scaled by its data within its contrast limits, times its opacity
    total = sum(
        lyr.opacity
        * np.clip((lyr.data - lyr.contrast_limits[0]) / np.ptp(lyr.contrast_limits), 0, 1)[..., None]
        * np.asarray(element_colour(line_symbol(lyr.name.split()[0])))
        for lyr in shown
    )
    assert np.percentile(total.max(-1), 99) <= 1.0 + 1e-3
    assert all(lyr.opacity < 0.8 for lyr in shown)  # this painting needed it (1.0 before)
    rgb = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3]
    assert (rgb > 230).all(-1).mean() < 0.05
