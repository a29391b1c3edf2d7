import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.io.results import atomic_h5, read_results, write_results


def test_write_and_read_back_all_kinds(tmp_path):
    maps = {"Fe-K": np.full((3, 4), 2.5), "Pb-L": np.arange(12.0).reshape(3, 4)}
    out = write_results(
        tmp_path / "r.h5",
        maps=maps,
        probabilities={"Fe": np.full((3, 4), 0.5)},
        labels=np.array([[-1, 0, 1, 1]] * 3),
        cluster_spectra=np.ones((2, 16)),
        attrs={"model": "test-model"},
    )
    r = read_results(out)
    assert r["attrs"]["model"] == "test-model"
    assert r["maps"]["Pb-L"].dtype == np.float32
    np.testing.assert_array_equal(r["maps"]["Pb-L"], maps["Pb-L"])
    assert r["labels"].dtype == np.int32 and r["labels"][0, 0] == -1
    assert r["cluster_spectra"].shape == (2, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]  # no temporary file left


def test_failed_write_leaves_existing_file_and_no_temporary(tmp_path):
    target = tmp_path / "r.h5"
    write_results(target, maps={"Fe-K": np.ones((2, 2))})
    before = target.read_bytes()
    with pytest.raises(XrayAtlasError, match="NaN"):
        write_results(target, maps={"Fe-K": np.full((2, 2), np.nan)})
    with pytest.raises(XrayAtlasError, match=r"probabilities\['Fe'\] must lie in \[0, 1\]"):
        write_results(target, probabilities={"Fe": np.full((2, 2), 1.5)})
    with pytest.raises(XrayAtlasError, match="shape"):
        write_results(target, maps={"Fe-K": np.ones((2, 2)), "Cu-K": np.ones((3, 3))})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def test_refuses_to_overwrite_input_and_bad_destinations(tmp_path, small_cube_h5):
    path, _ = small_cube_h5
    before = path.read_bytes()
    with pytest.raises(XrayAtlasError, match="overwrite the input"):
        write_results(path, maps={"Fe-K": np.ones((2, 2))}, inputs=(path,))
    assert path.read_bytes() == before
    with pytest.raises(XrayAtlasError, match="output folder does not exist"):
        write_results(tmp_path / "nope" / "r.h5", maps={"Fe-K": np.ones((2, 2))})
    with pytest.raises(XrayAtlasError, match="nothing to write"):
        write_results(tmp_path / "r.h5")


def test_atomic_h5_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "r.h5"
    write_results(target, maps={"Fe-K": np.ones((2, 2))})
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_h5(target) as f:
            f["maps/Fe-K"] = np.zeros((2, 2))
            raise RuntimeError("mid-write failure")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


def test_units_and_pixel_size_are_root_attributes(tmp_path):
    # docs/dev/contracts.md section 3: maps carry `units` (counts by default); every result the pixel size when known
    write_results(tmp_path / "c.h5", maps={"Fe-K": np.ones((2, 3))}, pixel_size_um=50)
    r = read_results(tmp_path / "c.h5")
    assert r["attrs"]["units"] == "counts" and r["attrs"]["pixel_size_um"] == 50.0
    assert isinstance(r["attrs"]["units"], str) and isinstance(r["attrs"]["pixel_size_um"], float)
    write_results(tmp_path / "s.h5", maps={"Fe-K": np.ones((2, 3))}, units="counts/s")
    r = read_results(tmp_path / "s.h5")
    assert r["attrs"]["units"] == "counts/s" and "pixel_size_um" not in r["attrs"]
    write_results(tmp_path / "l.h5", labels=np.zeros((2, 3), int), pixel_size_um=12.5)
    r = read_results(tmp_path / "l.h5")
    assert r["attrs"]["pixel_size_um"] == 12.5 and "units" not in r["attrs"]  # no maps, no units
    with pytest.raises(XrayAtlasError, match=r"units='cps' must be one of counts, counts/s"):
        write_results(tmp_path / "x.h5", maps={"Fe-K": np.ones((2, 3))}, units="cps")
    with pytest.raises(XrayAtlasError, match=r"pixel_size_um=-1 must be a finite number > 0"):
        write_results(tmp_path / "x.h5", maps={"Fe-K": np.ones((2, 3))}, pixel_size_um=-1)
    assert not (tmp_path / "x.h5").exists()
