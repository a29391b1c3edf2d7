"""Ripple .rpl + .raw spectrum images (issue 28): written by rosettasciio's own writer, or by
hand as the Lispix standard and Bruker's export lay them out, read back through io.read."""

import tracemalloc

import numpy as np
import pytest
from rsciio.ripple import file_writer

from xray_atlas import XrayAtlasError
from xray_atlas.io import probe, read


def _signal(
    data,
    *,
    energy=(0.01, -0.95, "keV"),
    pixel=(50.0, "µm"),
    pixel_y=None,
    live=0.02,
    kv=50.0,
    fwhm=145.0,
    title="panel",
):
    """rosettasciio's signal dictionary of an (H, W, C) spectrum image (EDS_SEM metadata)."""
    h, w, c = data.shape
    py = pixel_y or pixel
    axes = [
        {"name": "height", "size": h, "scale": py[0], "offset": 0.0, "units": py[1], "navigate": True},
        {"name": "width", "size": w, "scale": pixel[0], "offset": 0.0, "units": pixel[1], "navigate": True},
        {"name": "Energy", "size": c, "scale": energy[0], "offset": energy[1], "units": energy[2], "navigate": False},
    ]
    eds = {"live_time": live, "energy_resolution_MnKa": fwhm}
    return {
        "data": data,
        "axes": axes,
        "metadata": {
            "General": {"title": title},
            "Signal": {"signal_type": "EDS_SEM"},
            "Acquisition_instrument": {"SEM": {"beam_energy": kv, "Detector": {"EDS": eds}}},
        },
    }


def _counts(shape, dtype="u2", seed=0):
    return np.random.default_rng(seed).poisson(20, size=shape).astype(dtype)


def test_round_trip_through_rosettasciio_writer(tmp_path):
    data = _counts((5, 7, 64))
    file_writer(str(tmp_path / "panel.rpl"), _signal(data))
    assert probe(tmp_path / "panel.rpl") == "cube"
    with read(tmp_path / "panel.rpl") as cube:
        import dask.array as da

        assert isinstance(cube.counts, da.Array)  # lazy: a dask graph over a memory map
        assert cube.shape == (5, 7, 64) and cube.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(cube.counts), data)
        np.testing.assert_array_equal(cube.pixel(4, 6), data[4, 6])
        np.testing.assert_array_equal(cube.total_counts(), data.sum(-1))
        # the values the signal was written with (depth-scale/-origin in keV)
        np.testing.assert_allclose(cube.energy, -0.95 + 0.01 * np.arange(64))
        assert cube.pixel_size_um == 50.0 and "pixel_size_y_um" not in cube.metadata
        assert cube.live_time_s == pytest.approx(0.02)
        assert cube.metadata["tube_kv"] == 50.0 and cube.metadata["fwhm_mnka_ev"] == 145.0
        assert cube.metadata["title"] == "panel"


def test_energy_in_ev_and_pixels_in_mm(tmp_path):
    data = _counts((3, 4, 32), dtype="f4")
    sig = _signal(data, energy=(10.0, -955.0, "eV"), pixel=(0.2, "mm"), pixel_y=(150.0, "µm"))
    file_writer(str(tmp_path / "ev.rpl"), sig)
    with read(tmp_path / "ev.rpl") as cube:
        np.testing.assert_allclose(cube.energy, -0.955 + 0.01 * np.arange(32))  # eV -> keV
        assert cube.pixel_size_um == pytest.approx(200.0)  # 0.2 mm
        assert cube.metadata["pixel_size_y_um"] == pytest.approx(150.0)
        np.testing.assert_array_equal(np.asarray(cube.counts), data)


def test_record_by_image_and_a_single_row(tmp_path):
    # record-by image: one plane per channel (a Signal2D stack written by rosettasciio)
    planes = _counts((16, 3, 4))
    sig = {
        "data": planes,
        "metadata": {"General": {"title": "stack"}, "Signal": {"signal_type": ""}},
        "axes": [
            {"name": "Energy", "size": 16, "scale": 0.02, "offset": 0.5, "units": "keV", "navigate": True},
            {"name": "height", "size": 3, "scale": 1.0, "offset": 0.0, "units": "µm", "navigate": False},
            {"name": "width", "size": 4, "scale": 1.0, "offset": 0.0, "units": "µm", "navigate": False},
        ],
    }
    file_writer(str(tmp_path / "stack.rpl"), sig)
    assert "record-by\timage" in (tmp_path / "stack.rpl").read_text(encoding="latin-1")
    with read(tmp_path / "stack.rpl") as cube:
        assert cube.shape == (3, 4, 16)
        np.testing.assert_array_equal(np.asarray(cube.counts), planes.transpose(1, 2, 0))
        np.testing.assert_allclose(cube.energy, 0.5 + 0.02 * np.arange(16))
    # rosettasciio drops axes of length 1; the cube keeps its (1, W, C) shape
    row = _counts((1, 6, 16))
    file_writer(str(tmp_path / "row.rpl"), _signal(row[0][None], pixel=(5.0, "um")))
    with read(tmp_path / "row.rpl") as cube:
        assert cube.shape == (1, 6, 16)
        np.testing.assert_array_equal(cube.pixel(0, 5), row[0, 5])
        assert cube.pixel_size_um == 5.0


def _hand_written(tmp_path, header, data, *, name="scan"):
    (tmp_path / f"{name}.rpl").write_text(header, encoding="latin-1")
    data.tofile(tmp_path / f"{name}.raw")
    return tmp_path / f"{name}.rpl"


LISPIX = (
    "key\tvalue\nwidth\t4\nheight\t3\ndepth\t32\noffset\t{offset}\ndata-Length\t2\ndata-type\tunsigned\n"
    "byte-order\t{order}\nrecord-by\tvector\nev-per-chan\t10\n"
)


def test_lispix_header_as_bruker_writes_it(tmp_path):
    # the standard's keys only (Bruker writes "data-Length"): ev-per-chan and no offset key,
    # so channel 0 is 0 keV; big-endian data after a 64-byte offset
    data = _counts((3, 4, 32)).astype(">u2")
    path = tmp_path / "scan.rpl"
    path.write_text(LISPIX.format(offset=64, order="big-endian"), encoding="latin-1")
    (tmp_path / "scan.raw").write_bytes(b"\0" * 64 + data.tobytes())
    with read(path) as cube:
        np.testing.assert_array_equal(np.asarray(cube.counts), data)
        np.testing.assert_allclose(cube.energy, 0.01 * np.arange(32))
        assert "channel 0 taken as 0 keV" in cube.metadata["calibration_source"]
        assert cube.pixel_size_um is None and cube.live_time_s is None


def test_opens_lazily_a_cube_larger_than_what_it_reads(tmp_path):
    # a 2 GiB sparse .raw (no disk used): opening it and reading one pixel allocate kilobytes
    h, w, c = 512, 512, 4096
    (tmp_path / "big.rpl").write_text(
        LISPIX.replace("width\t4\nheight\t3\ndepth\t32", f"width\t{w}\nheight\t{h}\ndepth\t{c}").format(
            offset=0, order="little-endian"
        ),
        encoding="latin-1",
    )
    with open(tmp_path / "big.raw", "wb") as f:
        f.truncate(h * w * c * 2)
        f.seek(((300 * w + 200) * c + 7) * 2)
        f.write(np.array([1234], "<u2").tobytes())
    small = _hand_written(tmp_path, LISPIX.format(offset=0, order="little-endian"), _counts((3, 4, 32)))
    with read(small) as cube:  # imports done before memory is traced
        cube.pixel(1, 1)
    tracemalloc.start()
    try:
        with read(tmp_path / "big.rpl") as cube:
            assert cube.nbytes == 2 * 2**30
            spectrum = cube.pixel(300, 200)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert spectrum[7] == 1234 and spectrum.sum() == 1234
    assert peak < 4 * 2**20, peak  # 0.14 MiB measured; one tile of rows would be 64 MiB, the cube 2 GiB


@pytest.mark.parametrize(
    "header, raw_bytes, match",
    [
        (
            LISPIX.format(offset=0, order="little-endian"),
            3 * 4 * 32 * 2 - 10,
            r"bad.rpl: the header announces 3 x 4 pixels x 32 channels of 2 bytes \(768 bytes .*bad.raw holds 758 bytes",
        ),
        (LISPIX.format(offset=0, order="little-endian"), 3 * 4 * 32 * 4, r"bad.rpl: .*holds 1536 bytes"),
        (
            LISPIX.format(offset=0, order="little-endian").replace("depth\t32\n", ""),
            768,
            r"bad.rpl: not a readable ripple header \(the header lacks the key 'depth'\)",
        ),
        (
            LISPIX.format(offset=0, order="little-endian").replace("width\t4", "width\tfour"),
            768,
            r"bad.rpl: not a readable ripple header \(invalid literal",
        ),
        ("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00garbage\n", 768, r"bad.rpl: not a readable ripple header"),
        (
            LISPIX.format(offset=0, order="little-endian")
            .replace("record-by\tvector", "record-by\tdont-care")
            .replace("depth\t32", "depth\t1"),
            24,
            r"bad.rpl: the header says record-by 'dont-care': one image",
        ),
    ],
)
def test_bad_ripple_files(tmp_path, header, raw_bytes, match):
    (tmp_path / "bad.rpl").write_text(header, encoding="latin-1")
    (tmp_path / "bad.raw").write_bytes(b"\1" * raw_bytes)
    with pytest.raises(XrayAtlasError, match=match) as err:
        read(tmp_path / "bad.rpl")
    assert "\n" not in str(err.value)


def test_missing_raw(tmp_path):
    (tmp_path / "alone.rpl").write_text(LISPIX.format(offset=0, order="little-endian"), encoding="latin-1")
    with pytest.raises(XrayAtlasError, match=r"alone.rpl: no .raw data file beside the header \(expected alone.raw\)"):
        read(tmp_path / "alone.rpl")
