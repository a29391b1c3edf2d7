import dask.array as da
import numpy as np
import pytest

from xray_atlas import SpectralCube, XrayAtlasError
from xray_atlas.cube import Progress, run_to_end
from xray_atlas.io import read


def _backends(tmp_path, counts):
    """The same counts behind each lazy array type a cube may wrap."""
    import zarr

    np.save(tmp_path / "c.npy", counts)
    z = zarr.open(
        str(tmp_path / "c.zarr"), mode="w", shape=counts.shape, chunks=(4, 4, counts.shape[2]), dtype=counts.dtype
    )
    z[:] = counts
    return {
        "memmap": np.load(tmp_path / "c.npy", mmap_mode="r"),
        "dask": da.from_array(counts, chunks=(5, 5, -1)),
        "zarr": zarr.open(str(tmp_path / "c.zarr"), mode="r"),
        "numpy": counts,
    }


def test_reductions_match_numpy_on_every_backend(tmp_path, small_cube_h5):
    path, counts = small_cube_h5
    arrays = _backends(tmp_path, counts)
    with read(path) as h5cube:
        cubes = {"h5py": h5cube, **{k: SpectralCube(v, offset_kev=-0.5, gain_kev=0.02) for k, v in arrays.items()}}
        ref64 = counts.astype(np.float64)
        for name, cube in cubes.items():
            # tiny tiles so that many tiles are streamed
            np.testing.assert_array_equal(cube.total_counts(tile_bytes=3000), ref64.sum(-1), err_msg=name)
            np.testing.assert_array_equal(cube.pixel(7, 3), counts[7, 3], err_msg=name)
            stats = cube.spectrum_stats(tile_bytes=3000)
            np.testing.assert_array_equal(stats["sum"], ref64.sum((0, 1)), err_msg=name)
            np.testing.assert_array_equal(stats["max"], ref64.max((0, 1)), err_msg=name)
            ws = cube.window_sum(0.0, 0.3, tile_bytes=3000)  # channels with -0.5 + 0.02 i in [0, 0.3]: 25..40
            np.testing.assert_array_equal(ws, ref64[..., 25:41].sum(-1), err_msg=name)


def test_region_stats_mean_and_std(small_cube_h5):
    path, counts = small_cube_h5
    mask = np.zeros(counts.shape[:2], bool)
    mask[3:9, 2:5] = True
    mask[15, 16] = True
    with read(path) as cube:
        stats = cube.region_stats(mask, tile_bytes=2000)
    sel = counts[mask].astype(np.float64)
    assert stats["n_pixels"] == mask.sum()
    np.testing.assert_allclose(stats["mean"], sel.mean(0))
    np.testing.assert_allclose(stats["std"], sel.std(0), atol=1e-9)
    with read(path) as cube, pytest.raises(XrayAtlasError, match="no pixel"):
        cube.region_stats(np.zeros(counts.shape[:2], bool))
    with read(path) as cube, pytest.raises(XrayAtlasError, match="mask has shape"):
        cube.region_stats(np.ones((2, 2), bool))


def test_progress_is_reported_per_tile_and_out_is_filled(small_cube_h5):
    path, counts = small_cube_h5
    seen = []
    out = np.zeros(counts.shape[:2], np.float32)
    with read(path) as cube:
        rows = cube.tile_rows(4 * counts.shape[1] * counts.shape[2] * 2)
        result = run_to_end(
            cube.iter_total_counts(out=out, tile_bytes=4 * counts.shape[1] * counts.shape[2] * 2), seen.append
        )
    assert rows == 4  # chunk height 4 (write_cube chunk_pixels=4)
    assert result is out
    assert [p.done for p in seen] == list(range(1, 7))  # ceil(23 / 4) tiles
    assert all(isinstance(p, Progress) and p.total == 6 for p in seen)
    np.testing.assert_array_equal(out, counts.sum(-1))


def test_tiles_with_halo_cover_the_cube_once_with_their_neighbour_rows(small_cube_h5):
    path, counts = small_cube_h5
    with read(path) as cube:
        tiles = list(cube.iter_tiles_with_halo(2, tile_bytes=4 * counts.shape[1] * counts.shape[2] * 2))
        with pytest.raises(XrayAtlasError, match="halo=-1"):
            next(cube.iter_tiles_with_halo(-1))
    assert np.concatenate([np.arange(r.start, r.stop) for r, _, _ in tiles]).tolist() == list(range(counts.shape[0]))
    for rows, block, lead in tiles:
        top = max(rows.start - 2, 0)
        assert lead == rows.start - top  # 0 at the top edge, 2 inside
        np.testing.assert_array_equal(block, counts[top : min(rows.stop + 2, counts.shape[0])])


def test_tiles_of_a_block_of_rows_start_at_it_and_read_their_halo_beyond_it(small_cube_h5):
    path, counts = small_cube_h5
    h = counts.shape[0]
    block = slice(1, h - 1)  # a block of rows for one dask task (xray_atlas.rowblocks)
    with read(path) as cube:
        step = cube.tile_rows(2 * counts.shape[1] * counts.shape[2] * 2)
        tiles = list(cube.iter_tiles_with_halo(1, tile_bytes=2 * counts.shape[1] * counts.shape[2] * 2, rows=block))
        for bad in (slice(0, h + 1), slice(3, 3), slice(0, h, 2), (0, h)):
            with pytest.raises(XrayAtlasError, match="rows="):
                next(cube.iter_tiles(rows=bad))
    assert [r.start for r, _, _ in tiles] == list(range(1, h - 1, step))
    assert np.concatenate([np.arange(r.start, r.stop) for r, _, _ in tiles]).tolist() == list(range(1, h - 1))
    first_rows, first, lead = tiles[0]
    assert lead == 1  # the row above the block is read as the first tile's halo
    np.testing.assert_array_equal(first, counts[0 : first_rows.stop + 1])
    last_rows, last, lead = tiles[-1]
    np.testing.assert_array_equal(last[lead:], counts[last_rows.start : h])  # and the row below the block


def test_every_other_tile_is_an_even_sample(small_cube_h5):
    path, counts = small_cube_h5
    with read(path) as cube:
        step = cube.tile_rows(2 * counts.shape[1] * counts.shape[2] * 2)
        tiles = list(cube.iter_tiles(tile_bytes=2 * counts.shape[1] * counts.shape[2] * 2, every=2))
        with pytest.raises(XrayAtlasError, match="every=0"):
            next(cube.iter_tiles(every=0))
    assert [r.start for r, _ in tiles] == list(range(0, counts.shape[0], 2 * step))
    for rows, block in tiles:
        np.testing.assert_array_equal(block, counts[rows])


def test_tile_rows_align_with_chunks(tmp_path):
    import h5py

    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("spectra", shape=(100, 50, 128), dtype="u2", chunks=(8, 8, 128))
        f["spectra"].attrs.update(energy_offset_kev=0.0, energy_gain_kev=0.01)
    with read(tmp_path / "c.h5") as cube:
        for tile_bytes in (1, 50 * 128 * 2 * 13, 10**9):
            rows = cube.tile_rows(tile_bytes)
            assert rows == 100 or rows % 8 == 0


def test_energy_channel_conversion():
    cube = SpectralCube(np.zeros((2, 2, 101)), offset_kev=-0.1, gain_kev=0.01)
    assert cube.calibrated
    assert cube.channel_of(0.4) == pytest.approx(50.0)
    assert cube.energy_of(50) == pytest.approx(0.4)
    np.testing.assert_allclose(cube.channel_of(np.array([-0.1, 0.9])), [0, 100])
    assert cube.energy_gain_kev == pytest.approx(0.01)
    assert cube.energy_offset_kev == pytest.approx(-0.1)
    assert cube.channel_slice(0.0, 0.1) == slice(10, 21)
    with pytest.raises(XrayAtlasError, match="energy_kev=2.0 lies outside"):
        cube.channel_of(2.0)
    with pytest.raises(XrayAtlasError, match="channel=101"):
        cube.energy_of(101)
    with pytest.raises(XrayAtlasError, match="holds no channel"):
        cube.channel_slice(5.0, 6.0)
    with pytest.raises(XrayAtlasError, match="upper edge"):
        cube.channel_slice(0.5, 0.5)


def test_uncalibrated_cube_uses_channels():
    cube = SpectralCube(np.zeros((2, 2, 8)))
    assert not cube.calibrated
    np.testing.assert_array_equal(cube.energy, np.arange(8))
    with pytest.raises(XrayAtlasError, match="no energy calibration"):
        cube.channel_of(3.0)
    cal = cube.with_calibration(offset_kev=0.0, gain_kev=0.5)
    assert cal.calibrated and cal.energy[-1] == 3.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"offset_kev": 0.0, "gain_kev": 0.0}, "gain must be > 0"),
        ({"offset_kev": 0.0, "gain_kev": -0.01}, "gain must be > 0"),
        ({"offset_kev": float("nan"), "gain_kev": 0.01}, "must be finite"),
        ({"offset_kev": 0.0, "gain_kev": 10.0}, "implausible"),
        ({"offset_kev": 0.0}, "both energy offset and gain"),
        ({"energy": np.arange(5.0)}, r"shape \(5,\)"),
        ({"energy": np.arange(8.0)[::-1]}, "not strictly increasing"),
        ({"energy": np.arange(8.0) * 1000}, "in eV"),
    ],
)
def test_bad_calibration_is_refused(kwargs, match):
    with pytest.raises(XrayAtlasError, match=match):
        SpectralCube(np.zeros((2, 2, 8)), **kwargs)


@pytest.mark.parametrize("shape", [(4, 8), (2, 2, 2, 8), (2, 2, 1), (0, 2, 8)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(XrayAtlasError, match="shape|3-D"):
        SpectralCube(np.zeros(shape))


def test_non_numeric_counts_are_refused():
    with pytest.raises(XrayAtlasError, match="dtype"):
        SpectralCube(np.zeros((2, 2, 8), dtype="U1"))


def test_nan_and_negative_counts_are_reported_with_their_pixel():
    data = np.ones((6, 5, 8), np.float32)
    data[4, 2, 3] = np.nan
    cube = SpectralCube(data, path="nan.h5")
    with pytest.raises(XrayAtlasError, match=r"nan.h5: counts contain NaN.*y=4, x=2, channel 3"):
        cube.total_counts(tile_bytes=1)
    data = np.ones((6, 5, 8), np.int32)
    data[1, 4, 0] = -3
    with pytest.raises(XrayAtlasError, match=r"negative values.*y=1, x=4"):
        SpectralCube(data).spectrum_stats()


def test_pixel_bounds():
    cube = SpectralCube(np.zeros((3, 4, 8)))
    with pytest.raises(XrayAtlasError, match=r"pixel \(y=3, x=0\) lies outside the 3 x 4"):
        cube.pixel(3, 0)
    with pytest.raises(XrayAtlasError, match="integer"):
        cube.pixel("a", 0)


def test_pixel_size_and_live_time_from_metadata():
    counts = np.ones((3, 4, 8), "u2")
    cube = SpectralCube(counts, metadata={"pixel_size_um": 50.0, "live_time_s": 0.02})
    assert cube.pixel_size_um == 50.0
    assert cube.live_time_s == 0.02
    np.testing.assert_array_equal(cube.live_time_map(), np.full((3, 4), 0.02))
    per_pixel = da.from_array(np.arange(1.0, 13.0).reshape(3, 4), chunks=(1, 4))  # lazy, as files give it
    cube = SpectralCube(counts, metadata={"live_time_s": per_pixel})
    assert cube.live_time_s is per_pixel and cube.pixel_size_um is None
    np.testing.assert_array_equal(cube.live_time_map(), np.arange(1.0, 13.0).reshape(3, 4))
    bare = SpectralCube(counts)
    assert bare.live_time_s is None and bare.live_time_map() is None and bare.pixel_size_um is None
    assert SpectralCube(counts, metadata={"pixel_size_um": -1}).pixel_size_um is None  # not a size
    with pytest.raises(
        XrayAtlasError,
        match=r"live_time_s has shape \(4, 3\); expected one number or the pixels' "
        r"\(3, 4\)",
    ):
        SpectralCube(counts, metadata={"live_time_s": np.ones((4, 3))})
