"""Maps in counts or in counts per second of live time (issue 28): the core's normalisation,
per pixel where the file records each pixel's live time, and its refusals."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.cube import run_to_end
from xray_atlas.inference import in_units, iter_maps, live_time_for, load_map_model, predict_maps
from xray_atlas.io import read
from xray_atlas.io.hdf5 import write_cube


@pytest.fixture(scope="module")
def cube_with_live_times(tmp_path_factory):
    """A small synthetic painting's counts with a known live time per pixel (10-21 ms)."""
    from xray_atlas.physics.painting import synthetic_painting

    p = synthetic_painting(6, 5, seed=3, n_channels=1024, dwell_ms=20.0)
    live = np.linspace(0.010, 0.021, 30).reshape(6, 5)
    path = tmp_path_factory.mktemp("units") / "live.h5"
    write_cube(
        path,
        p.counts,
        energy_offset_kev=p.energy_offset_kev,
        energy_gain_kev=p.energy_gain_kev,
        extra={"live_time_s": live},
        attrs={"pixel_size_um": 200.0},
    )
    return path, live


def test_counts_per_second_are_counts_over_each_pixel_s_live_time(cube_with_live_times):
    path, live = cube_with_live_times
    with read(path) as cube:
        model = load_map_model("lsq", cube, device="cpu")
        counts = run_to_end(iter_maps(cube, model, units="counts")).maps
        per_s = run_to_end(iter_maps(cube, model, units="counts/s")).maps
        again = in_units(counts, cube, units="counts/s")
    assert set(per_s) == set(counts) and counts["Fe-K"].max() > 0
    for line in counts:
        assert per_s[line].dtype == np.float32
        np.testing.assert_array_equal(per_s[line], (counts[line] / live).astype(np.float32))  # exactly
        np.testing.assert_array_equal(again[line], per_s[line])
    with read(path) as cube:
        same = in_units(counts, cube, units="counts")
    for line in counts:
        np.testing.assert_array_equal(same[line], counts[line])


def test_one_live_time_for_every_pixel(tmp_path):
    write_cube(
        tmp_path / "one.h5",
        np.full((2, 3, 16), 4, "u2"),
        energy_offset_kev=0.0,
        energy_gain_kev=0.01,
        attrs={"live_time_s": 0.25},
    )
    with read(tmp_path / "one.h5") as cube:
        out = in_units({"Fe-K": np.full((2, 3), 10.0, np.float32)}, cube, units="counts/s")
    np.testing.assert_array_equal(out["Fe-K"], np.full((2, 3), 40.0, np.float32))


def test_counts_per_second_refused_without_live_time_before_any_work(tmp_path):
    write_cube(tmp_path / "nolive.h5", np.full((2, 3, 256), 4, "u2"), energy_offset_kev=0.0, energy_gain_kev=0.08)
    with read(tmp_path / "nolive.h5") as cube:
        steps = iter_maps(cube, load_map_model("lsq", cube, device="cpu"), units="counts/s")
        with pytest.raises(
            XrayAtlasError,
            match=r"nolive.h5: maps in counts/s need each pixel's live time and the "
            r"file states none",
        ):
            next(steps)  # the first step: no tile was read
        with pytest.raises(XrayAtlasError, match="nolive.h5: maps in counts/s"):
            predict_maps(cube, "lsq", device="cpu", units="counts/s")
        with pytest.raises(XrayAtlasError, match=r"units='cps' must be one of 'counts', 'counts/s'"):
            live_time_for(cube, units="cps")
        assert live_time_for(cube, units="counts") is None  # counts need no live time


def test_a_pixel_without_live_time_is_named(tmp_path):
    live = np.full((2, 3), 0.02)
    live[1, 2] = 0.0  # a pixel the scanner skipped
    write_cube(
        tmp_path / "gap.h5",
        np.full((2, 3, 16), 4, "u2"),
        energy_offset_kev=0.0,
        energy_gain_kev=0.01,
        extra={"live_time_s": live},
    )
    with read(tmp_path / "gap.h5") as cube:
        with pytest.raises(XrayAtlasError, match=r"gap.h5: .*pixel \(y=1, x=2\) has 0.0 s \(1 pixels without"):
            in_units({"Fe-K": np.ones((2, 3))}, cube, units="counts/s")
