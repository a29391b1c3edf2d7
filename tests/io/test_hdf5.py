import hashlib

import h5py
import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.io import read


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_contract_layout_round_trip(small_cube_h5):
    path, counts = small_cube_h5
    before = _digest(path)
    with read(path) as cube:
        assert cube.shape == counts.shape
        assert cube.calibrated
        np.testing.assert_allclose(cube.energy, -0.5 + 0.02 * np.arange(64))
        assert cube.metadata["title"] == "test"
        assert sorted(cube.reference_maps) == ["Fe-K"]
        assert isinstance(cube.counts, h5py.Dataset)  # lazy, not loaded
        np.testing.assert_array_equal(cube.pixel(22, 16), counts[22, 16])
        cube.total_counts()
    assert _digest(path) == before  # reading never modifies the input


def test_energy_dataset_wins_over_attributes(tmp_path):
    energy = np.linspace(1.0, 20.0, 32) ** 1.01  # non-linear axis
    with h5py.File(tmp_path / "e.h5", "w") as f:
        ds = f.create_dataset("spectra", data=np.ones((2, 3, 32), "u2"))
        ds.attrs.update(energy_offset_kev=0.0, energy_gain_kev=0.01)
        f["energy"] = energy
    with read(tmp_path / "e.h5") as cube:
        np.testing.assert_allclose(cube.energy, energy)


def test_generic_single_3d_dataset_and_root_calibration(tmp_path):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_dataset("entry/data/counts", data=np.ones((4, 5, 16), "f4"))
        f.create_dataset("entry/data/image", data=np.ones((4, 5), "f4"))
        f.attrs.update(energy_offset_kev=0.1, energy_gain_kev=0.05)
    with read(tmp_path / "g.h5") as cube:
        assert cube.metadata["dataset"] == "/entry/data/counts"
        assert cube.energy[1] == pytest.approx(0.15)


def test_missing_calibration_opens_uncalibrated(tmp_path):
    with h5py.File(tmp_path / "u.h5", "w") as f:
        f["cube"] = np.ones((2, 2, 8), "u2")
    with read(tmp_path / "u.h5") as cube:
        assert not cube.calibrated


def test_several_cubes_need_a_choice(tmp_path):
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = np.ones((2, 2, 8), "u2")
        f["b"] = np.zeros((2, 2, 8), "u2")
    with pytest.raises(XrayAtlasError, match=r"two.h5: several 3-D datasets \(/a, /b\)"):
        read(tmp_path / "two.h5")
    with read(tmp_path / "two.h5", dataset="b") as cube:
        assert cube.metadata["dataset"] == "/b"
    with pytest.raises(XrayAtlasError, match="dataset='c' does not exist"):
        read(tmp_path / "two.h5", dataset="c")


@pytest.mark.parametrize("shape, match", [((4, 8), "2-D"), ((2, 2, 2, 8), "4-D")])
def test_wrong_dimensions(tmp_path, shape, match):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["spectra"] = np.ones(shape, "u2")
    with pytest.raises(XrayAtlasError, match=f"/spectra is {match}"):
        read(tmp_path / "d.h5")


def test_no_3d_dataset(tmp_path):
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f["image"] = np.ones((4, 4))
    with pytest.raises(XrayAtlasError, match=r"no 3-D numeric dataset.*/image \(4, 4\)"):
        read(tmp_path / "n.h5")


def test_empty_and_truncated_files(tmp_path, small_cube_h5):
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(XrayAtlasError, match="empty.h5: not a readable HDF5 file"):
        read(empty)
    path, _ = small_cube_h5
    data = path.read_bytes()
    for fraction in np.linspace(0.05, 0.95, 19):
        cut = tmp_path / "cut.h5"
        cut.write_bytes(data[: int(len(data) * fraction)])
        # a truncated file may open; streaming it must then fail with a clear message
        with pytest.raises(XrayAtlasError, match=r"cut.h5: (not a readable HDF5 file|could not read counts)"):
            with read(cut) as cube:
                cube.total_counts()


def test_corrupt_chunk_fails_while_streaming(tmp_path):
    from xray_atlas.io.hdf5 import write_cube

    counts = np.random.default_rng(0).poisson(5, (16, 16, 256)).astype(np.uint16)
    path = tmp_path / "gz.h5"
    write_cube(path, counts, energy_offset_kev=0, energy_gain_kev=0.01, compression="gzip")
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = bytes(4096)  # zero one stretch of compressed chunk data
    path.write_bytes(bytes(data))
    with read(path) as cube:  # the file still opens: the damage is inside a chunk
        with pytest.raises(XrayAtlasError, match="gz.h5: could not read counts .*truncated or corrupt"):
            cube.total_counts()


@pytest.mark.parametrize(
    "attrs, energy, match",
    [
        ({"energy_offset_kev": 0.0, "energy_gain_kev": -0.01}, None, "gain must be > 0"),
        ({"energy_offset_kev": 0.0, "energy_gain_kev": float("nan")}, None, "must be finite"),
        ({"energy_offset_kev": "abc", "energy_gain_kev": 0.01}, None, "is not a number"),
        ({"energy_offset_kev": 0.0}, None, "only one of the two"),
        ({}, np.arange(7.0), r"/energy has shape \(7,\)"),
        ({}, np.full(8, 2.0), "/energy is not strictly increasing"),
        ({}, np.arange(8.0) * 10000, "eV"),
    ],
)
def test_nonsense_calibration(tmp_path, attrs, energy, match):
    path = tmp_path / "cal.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("spectra", data=np.ones((2, 2, 8), "u2"))
        ds.attrs.update(attrs)
        if energy is not None:
            f["energy"] = energy
    with pytest.raises(XrayAtlasError, match=match) as info:
        read(path)
    assert str(info.value).startswith(str(path))


def test_unreadable_and_missing_paths(tmp_path):
    with pytest.raises(XrayAtlasError, match="no such file"):
        read(tmp_path / "missing.h5")
    (tmp_path / "folder.h5").mkdir()
    with pytest.raises(XrayAtlasError, match="is a folder"):
        read(tmp_path / "folder.h5")
    with pytest.raises(XrayAtlasError, match="unknown file type '.txt'"):
        read(tmp_path / "x.txt")


def test_scan_metadata_and_live_time_per_pixel(tmp_path):
    from xray_atlas.io.hdf5 import write_cube

    live = np.linspace(0.010, 0.021, 12).reshape(3, 4)
    write_cube(
        tmp_path / "lt.h5",
        np.ones((3, 4, 16), "u2"),
        energy_offset_kev=0.0,
        energy_gain_kev=0.01,
        attrs={"pixel_size_um": 100.0, "tube_kv": 50.0},
        extra={"live_time_s": live},
    )
    with read(tmp_path / "lt.h5") as cube:
        assert cube.pixel_size_um == 100.0 and cube.metadata["tube_kv"] == 50.0
        assert isinstance(cube.live_time_s, h5py.Dataset)  # per pixel, left on disk
        np.testing.assert_array_equal(cube.live_time_map(), live)
    write_cube(
        tmp_path / "one.h5",
        np.ones((3, 4, 16), "u2"),
        energy_offset_kev=0.0,
        energy_gain_kev=0.01,
        attrs={"live_time_s": 0.02},
    )
    with read(tmp_path / "one.h5") as cube:
        assert cube.live_time_s == 0.02


@pytest.mark.parametrize(
    "attrs, extra, match",
    [
        ({"pixel_size_um": "50 um"}, {}, r"attribute 'pixel_size_um' = '50 um' is not a number \(µm\)"),
        ({"pixel_size_um": 0.0}, {}, r"attribute 'pixel_size_um' = 0.0 must be a finite number > 0 \(µm\)"),
        ({"live_time_s": -1.0}, {}, r"attribute 'live_time_s' = -1.0 must be a finite number > 0 \(s\)"),
        (
            {},
            {"live_time_s": np.ones((4, 3))},
            r"dataset 'live_time_s' has shape \(4, 3\); expected one number or the "
            r"pixels' \(3, 4\)",
        ),
        ({"live_time_s": 0.02}, {"live_time_s": np.ones((3, 4))}, "live_time_s is both an attribute and a dataset"),
    ],
)
def test_bad_scan_metadata_is_named(tmp_path, attrs, extra, match):
    from xray_atlas.io.hdf5 import write_cube

    write_cube(
        tmp_path / "bad.h5",
        np.ones((3, 4, 16), "u2"),
        energy_offset_kev=0.0,
        energy_gain_kev=0.01,
        attrs=attrs,
        extra=extra,
    )
    with pytest.raises(XrayAtlasError, match="bad.h5: " + match):
        read(tmp_path / "bad.h5")
