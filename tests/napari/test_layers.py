"""Layer colours and the readable-picture rule (issue 26, item 2: a white canvas after a run)."""

import numpy as np
import pytest

from xray_atlas.napari._layers import ELEMENT_COLOURS, element_colormap, map_layer_data, show_readable, strongest


@pytest.mark.parametrize("line", ["Pb-L", "Cr-K", "S-K", "K-K", "Sr-K", "As-K", "Co-K", "Xe-L", "Hg"])
def test_every_element_colormap_is_black_at_zero(line):
    # napari's inverted maps ("I Orange", ...) are white at zero: under additive blending the
    # whole canvas turned white; every map must add nothing where the element is absent
    cmap = element_colormap(line)
    low, high = cmap.map(np.array([0.0, 1.0]))
    np.testing.assert_allclose(low[:3], 0.0)
    assert high[:3].max() > 0.5 and high[:3].min() < 0.95  # a colour, not white


def test_map_layers_use_the_element_colour():
    _, kwargs, _ = map_layer_data("Pb-L (x)", np.zeros((2, 2)), line="Pb-L")
    top = kwargs["colormap"].map(np.array([1.0]))[0, :3]
    np.testing.assert_allclose(top, ELEMENT_COLOURS["Pb"], atol=1e-6)
    assert kwargs["blending"] == "additive"


def test_strongest_by_mean_and_by_spread():
    maps = {
        "a": np.full((4, 4), 5.0),
        "b": np.full((4, 4), 9.0),
        "c": np.zeros((4, 4)),
        "d": np.arange(16.0).reshape(4, 4),
    }
    assert strongest(maps, 2) == ["b", "d"]
    # probabilities: everywhere (a, b) or nowhere (c) draws no picture; d varies
    assert strongest(maps, 1, by="spread") == ["d"]
    with pytest.raises(ValueError, match="by="):
        strongest(maps, by="max")


def test_show_readable_hides_earlier_results_and_cubes(viewer):
    cube = viewer.add_image(np.ones((4, 4)), name="cube", metadata={"xray_atlas": {"kind": "cube"}})
    old = viewer.add_image(np.ones((4, 4)), name="old map", metadata={"xray_atlas": {"kind": "map"}})
    mine = viewer.add_image(np.ones((4, 4)), name="user's own")  # not ours: left alone
    new = viewer.add_image(np.ones((4, 4)), name="new map", metadata={"xray_atlas": {"kind": "map"}})
    show_readable(viewer, [new], hide_cubes=False)
    assert (cube.visible, old.visible, mine.visible, new.visible) == (True, False, True, True)
    show_readable(viewer, [new], hide_cubes=True)
    assert not cube.visible and new.visible
