import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.io import read


def test_npy_is_memory_mapped(tmp_path):
    data = np.arange(2 * 3 * 10, dtype=np.uint16).reshape(2, 3, 10)
    np.save(tmp_path / "c.npy", data)
    with read(tmp_path / "c.npy", energy_offset_kev=0.0, energy_gain_kev=0.01) as cube:
        assert isinstance(cube.counts, np.memmap)
        assert cube.calibrated and cube.energy[-1] == pytest.approx(0.09)
        np.testing.assert_array_equal(cube.pixel(1, 2), data[1, 2])


def test_npy_errors(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((3, 4)))
    with pytest.raises(XrayAtlasError, match="flat.npy: counts are 2-D"):
        read(tmp_path / "flat.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy at all")
    with pytest.raises(XrayAtlasError, match="bad.npy: not a readable .npy array"):
        read(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(XrayAtlasError, match="obj.npy"):
        read(tmp_path / "obj.npy")  # never unpickles


def test_zarr_group_with_contract_layout(tmp_path):
    import zarr

    g = zarr.open_group(str(tmp_path / "c.zarr"), mode="w")
    data = np.random.default_rng(0).poisson(2, (5, 6, 20)).astype("u2")
    g.create_array("spectra", data=data, chunks=(2, 2, 20))
    g.create_array("energy", data=np.linspace(0.5, 2.4, 20))
    with read(tmp_path / "c.zarr") as cube:
        np.testing.assert_allclose(cube.energy, np.linspace(0.5, 2.4, 20))
        np.testing.assert_array_equal(cube.total_counts(), data.sum(-1))


def test_zarr_array_with_calibration_attributes(tmp_path):
    import zarr

    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(3, 3, 16), dtype="f4")
    z[:] = 1.0
    z.attrs.update(energy_offset_kev=1.0, energy_gain_kev=0.1)
    with read(tmp_path / "a.zarr") as cube:
        assert cube.energy[-1] == pytest.approx(2.5)
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(XrayAtlasError, match="junk.zarr: not a readable Zarr store"):
        read(tmp_path / "junk.zarr")


def test_zarr_metadata_attributes_and_live_time_per_pixel(tmp_path):
    import zarr

    g = zarr.open_group(str(tmp_path / "m.zarr"), mode="w")
    g.create_array("spectra", data=np.ones((3, 4, 16), "u2"), chunks=(1, 4, 16))
    live = np.linspace(0.01, 0.02, 12).reshape(3, 4)
    g.create_array("live_time_s", data=live)
    g.attrs.update(pixel_size_um=25.0, tube_kv=40.0, energy_offset_kev=0.0, energy_gain_kev=0.01)
    with read(tmp_path / "m.zarr") as cube:
        assert cube.pixel_size_um == 25.0 and cube.metadata["tube_kv"] == 40.0
        assert isinstance(cube.live_time_s, zarr.Array)  # stays on disk
        np.testing.assert_array_equal(cube.live_time_map(), live)
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(2, 2, 8), dtype="u2")
    z.attrs.update(live_time_s=0.5, pixel_size_um="wide")
    with pytest.raises(XrayAtlasError, match=r"a.zarr: attribute 'pixel_size_um' = 'wide' is not a number"):
        read(tmp_path / "a.zarr")
