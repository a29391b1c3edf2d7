"""io.probe: what a file holds, from its headers (issue 26 item 6: the napari reader claimed
every .h5/.npy/.zarr by its name, then could not read many of them)."""

import h5py
import numpy as np

from xray_atlas.io import probe
from xray_atlas.io.results import write_results


def test_probe_hdf5(tmp_path):
    def h5(name, **arrays):
        with h5py.File(tmp_path / name, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value)
        return tmp_path / name

    assert probe(h5("cube.h5", spectra=np.ones((2, 3, 8), "u2"))) == "cube"
    assert probe(h5("nested.hdf5", **{"entry/data": np.ones((2, 3, 8), "f4")})) == "cube"
    assert probe(h5("flat.h5", spectra=np.ones((4, 4)))) is None
    assert probe(h5("two.nxs", a=np.ones((2, 2, 4)), b=np.ones((2, 2, 4)))) is None  # needs dataset=
    assert probe(h5("text.h5", spectra=np.array([b"a", b"b"]))) is None
    assert probe(h5("table.h5", x=np.arange(5))) is None
    write_results(tmp_path / "maps.h5", maps={"Pb-L": np.ones((3, 4))})
    write_results(tmp_path / "probs.h5", probabilities={"Pb": np.zeros((3, 4))})
    write_results(tmp_path / "labels.h5", labels=np.zeros((3, 4), int))
    assert [probe(tmp_path / n) for n in ("maps.h5", "probs.h5", "labels.h5")] == ["results"] * 3
    write_results(tmp_path / "lattice.h5", encoding=np.zeros(3), lattice=np.ones((8, 8)))
    assert probe(tmp_path / "lattice.h5") is None  # a diffraction result: no map layers in it
    assert probe(h5("scan.h5", image=np.ones((16, 16)))) == "image"  # docs/dev/contracts.md section 6: a 2-D /image
    assert probe(h5("rgb.h5", image=np.ones((16, 16, 3)))) == "cube"  # one 3-D dataset reads as a cube
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    assert probe(tmp_path / "empty.h5") is None and probe(tmp_path / "junk.h5") is None
    assert probe(tmp_path / "missing.h5") is None and probe(tmp_path) is None


def test_probe_arrays_reads_headers_only(tmp_path):
    import zarr

    np.save(tmp_path / "cube.npy", np.ones((2, 3, 8), "u2"))
    np.save(tmp_path / "image.npy", np.ones((8, 8)))
    np.save(tmp_path / "names.npy", np.array(["a", "b", "c"]).reshape(1, 1, 3))
    assert probe(tmp_path / "cube.npy") == "cube"
    assert probe(tmp_path / "image.npy") is None and probe(tmp_path / "names.npy") is None
    # the header alone decides: the data of this one is cut short, and is never read
    data = (tmp_path / "cube.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-10])
    assert probe(tmp_path / "cut.npy") == "cube"
    (tmp_path / "text.npy").write_text("not an array")
    assert probe(tmp_path / "text.npy") is None
    zarr.save_array(str(tmp_path / "a.zarr"), np.ones((2, 3, 8), "u2"))
    zarr.save_array(str(tmp_path / "b.zarr"), np.ones((2, 3)))
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("spectra", shape=(2, 3, 8), dtype="f4")
    assert probe(tmp_path / "a.zarr") == "cube" and probe(tmp_path / "g.zarr") == "cube"
    assert probe(tmp_path / "b.zarr") is None and probe(tmp_path / "none.zarr") is None


def test_probe_bruker_and_pymca_by_name(tmp_path, real_data):
    assert probe(real_data / "bcf_v2_50x50px.bcf") == "cube" and probe(real_data / "Steel.spe") == "cube"
    assert probe(tmp_path / "missing.bcf") is None and probe(tmp_path / "x.tif") is None
