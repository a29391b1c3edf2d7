"""Physical units (issue 28): the cube's pixel size reaches every layer as napari ``scale`` and
``units``, the scale bar reads millimetres, result files reopen on the same grid, and pins and
regions still land on the right pixels of a scaled cube."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from xray_atlas.io.hdf5 import write_cube
from xray_atlas.io.results import write_results
from xray_atlas.napari._layers import physical_grid


def _scale_bar(viewer):
    canvas = getattr(viewer, "canvas", None)
    return canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar


def _units(layer):
    return tuple(str(u) for u in layer.units)


def test_physical_grid_picks_mm_for_scans_and_um_for_microscopes():
    assert physical_grid(500.0) == {"scale": (0.5, 0.5), "units": ("mm", "mm")}
    assert physical_grid(0.25) == {"scale": (0.25, 0.25), "units": ("µm", "µm")}
    assert physical_grid(None) == {} and physical_grid(0.0) == {} and physical_grid(float("nan")) == {}


def test_every_layer_of_a_run_is_on_the_cube_s_millimetre_grid(viewer, plugin_dock, qtbot, painting_file, errors, idle):
    path, painting = painting_file  # the synthetic painting says 500 um per pixel
    viewer.open(str(path), plugin="napari-xray-atlas")
    cube_layer = viewer.layers[0]
    assert tuple(cube_layer.scale) == (0.5, 0.5) and _units(cube_layer) == ("millimeter", "millimeter")
    assert _scale_bar(viewer).visible
    # world extent in mm: pixel centres 0 .. 19 x 0 .. 23 of 0.5 mm
    assert np.allclose(viewer.layers.extent.world[1] - viewer.layers.extent.world[0], (9.5, 11.5))
    maps = plugin_dock("Elemental maps")
    maps.model_combo.setCurrentText("roi")
    maps.lines_edit.setText("Pb-L, Fe-K")
    qtbot.mouseClick(maps.run_button, Qt.MouseButton.LeftButton)
    idle(qtbot, maps)
    assert errors() == []
    for name in ("Pb-L (roi)", "Fe-K (roi)"):
        layer = viewer.layers[name]
        assert tuple(layer.scale) == (0.5, 0.5) and _units(layer) == ("millimeter", "millimeter"), name


def test_result_files_reopen_in_millimetres(viewer, tmp_path):
    out = tmp_path / "maps.h5"
    rng = np.random.default_rng(0)
    write_results(
        out,
        maps={"Pb-L": rng.random((6, 8)).astype(np.float32)},
        labels=np.zeros((6, 8), np.int32),
        attrs={"model": "roi", "pixel_size_um": 100.0},
    )
    viewer.open(str(out), plugin="napari-xray-atlas")
    for layer in viewer.layers:
        assert tuple(layer.scale) == (0.1, 0.1) and _units(layer) == ("millimeter", "millimeter"), layer.name
    assert _scale_bar(viewer).visible


def test_a_cube_without_a_pixel_size_stays_in_pixels(viewer, tmp_path):
    path = tmp_path / "bare.h5"
    write_cube(path, np.ones((5, 6, 32), np.uint16), energy_offset_kev=0.0, energy_gain_kev=0.02)
    viewer.open(str(path), plugin="napari-xray-atlas")
    assert tuple(viewer.layers[0].scale) == (1.0, 1.0) and _units(viewer.layers[0]) == ("pixel", "pixel")


def test_pins_and_regions_land_on_the_cube_s_pixels_when_scaled(viewer, inspector, qtbot, click, painting_file):
    path, painting = painting_file
    viewer.open(str(path), plugin="napari-xray-atlas")
    cube_layer = viewer.layers[0]
    click(qtbot, viewer, cube_layer, 7, 9)
    assert inspector.pixel_yx == (7, 9)
    qtbot.mouseClick(inspector.pin_button, Qt.MouseButton.LeftButton)
    pins = viewer.layers["pinned pixels"]
    assert tuple(pins.scale) == (0.5, 0.5)
    # the pin is drawn over pixel (7, 9): world (3.5, 4.5) mm
    np.testing.assert_allclose(pins.data_to_world(pins.data[0]), (3.5, 4.5))
    # a rectangle drawn in world millimetres over pixels 2..4 x 3..6, on a Shapes layer of its own grid
    shapes = viewer.add_shapes(
        [np.array([[2.0, 3.0], [2.0, 6.0], [4.0, 6.0], [4.0, 3.0]]) * 0.5], shape_type="rectangle", name="region"
    )
    assert tuple(shapes.scale) == (1.0, 1.0)
    inspector.region_combo.setCurrentText("region")
    mask = inspector.region_mask()
    ys, xs = np.nonzero(mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (2, 4, 3, 6)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_paint_refuses_a_bad_pixel_size(bad):
    from xray_atlas.errors import XrayAtlasError
    from xray_atlas.physics.painting import paint, shapes_layout

    reg, regions = shapes_layout(4, 4)
    with pytest.raises(XrayAtlasError, match="pixel_size_um"):
        paint(reg, regions, pixel_size_um=bad)
