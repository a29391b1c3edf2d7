"""The real measured files in ../shared/data/real (see NOTICE.md there)."""

import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.io import read


def test_bruker_spx_m6_jetstream(real_data):
    with read(real_data / "bruker_m6_jetstream_file_example.spx") as cube:
        assert cube.shape == (1, 1, 4096)
        # calibration from NOTICE.md: 9.999 eV per channel, offset -0.9555 keV
        assert cube.energy_gain_kev == pytest.approx(0.009999, rel=1e-4)
        assert cube.energy_offset_kev == pytest.approx(-0.9555, abs=1e-3)
        assert cube.metadata["tube_kv"] == 50.0
        spectrum = cube.pixel(0, 0)
        # Rh K-alpha Rayleigh scatter (20.2 keV) and Pb/Hg/Fe lines make this a real XRF spectrum
        assert spectrum.sum() > 1e5


@pytest.mark.parametrize(
    "name, shape",
    [
        ("30x30_instructively_packed_16bit_compressed.bcf", (30, 30, 2048)),
        ("bcf_v2_50x50px.bcf", (50, 50, 2048)),
    ],
)
def test_bruker_bcf_cubes_are_lazy(real_data, name, shape):
    import dask.array as da

    with read(real_data / name) as cube:
        assert cube.shape == shape
        assert isinstance(cube.counts, da.Array)
        assert cube.calibrated and cube.energy_gain_kev == pytest.approx(0.01, rel=1e-3)
        total = cube.total_counts()
        np.testing.assert_array_equal(total, np.asarray(cube.counts).sum(-1))
        np.testing.assert_array_equal(cube.pixel(5, 7), np.asarray(cube.counts[5, 7]))


def test_pymca_spe_takes_calibration_from_cfg(real_data):
    with read(real_data / "Steel.spe") as cube:
        assert cube.shape == (1, 1, 2048)
        # Steel.cfg [detector]: zero = -0.00612446976449, gain = 0.0119281593146
        assert cube.energy[0] == pytest.approx(-0.00612446976449)
        assert cube.energy_gain_kev == pytest.approx(0.0119281593146)
        assert cube.metadata["calibration_source"] == "Steel.cfg"
        s = cube.pixel(0, 0)
        assert s[:8].tolist() == [0, 9, 5, 5, 5, 8, 8, 7]  # first $DATA: row of Steel.spe
        fe_ka = int(round(cube.channel_of(6.404)))  # Fe Ka (xraylib) must be a strong peak
        assert s[fe_ka - 3 : fe_ka + 4].max() > 20 * np.median(s)


def test_pymca_mca_single_column_is_uncalibrated(real_data):
    with read(real_data / "XRFSpectrum.mca") as cube:
        assert cube.shape == (1, 1, 4096)
        assert not cube.calibrated
        s = cube.pixel(0, 0)
        # the header says the main Co peak is close to channel 1474: a peak there, 10x its flanks
        window = s[1420:1530]
        assert abs(int(np.argmax(window)) + 1420 - 1474) <= 10
        assert window.max() > 10 * max(window[:5].mean(), window[-5:].mean())


def test_not_a_bcf(real_data):
    with pytest.raises(XrayAtlasError, match=r"Nope.bcf: not a readable Bruker file \(is not SFS container\)"):
        read(real_data / "Nope.bcf")


def test_reading_real_files_leaves_them_untouched(real_data):
    import hashlib

    for path in sorted(real_data.iterdir()):
        if path.suffix in (".bcf", ".spx", ".spe", ".mca"):
            before = hashlib.sha256(path.read_bytes()).hexdigest()
            try:
                with read(path) as cube:
                    cube.total_counts()
            except XrayAtlasError:
                pass
            assert hashlib.sha256(path.read_bytes()).hexdigest() == before, path.name


def test_bruker_scan_metadata(real_data):
    from rsciio.bruker import file_reader

    with read(real_data / "bcf_v2_50x50px.bcf") as cube:
        # DX/DY of the file's TRTSEMData (rosettasciio gives the width axis DY's scale too)
        assert cube.pixel_size_um == pytest.approx(0.01273058731)
        assert cube.metadata["pixel_size_y_um"] == pytest.approx(0.01180808099)
        assert cube.metadata["tube_kv"] == 20.0
        # no live time per pixel in a .bcf; the real time per pixel sums to rosettasciio's whole-scan real time
        assert cube.live_time_s is None
        real = file_reader(str(real_data / "bcf_v2_50x50px.bcf"), select_type="spectrum_image", lazy=True)[0]
        scan_real = real["metadata"]["Acquisition_instrument"]["SEM"]["Detector"]["EDS"]["real_time"]
        assert cube.metadata["real_time_s"] * 50 * 50 == pytest.approx(scan_real)  # 19.2 s
    with read(real_data / "30x30_instructively_packed_16bit_compressed.bcf") as cube:
        assert cube.pixel_size_um == pytest.approx(1.66740910949363) and "pixel_size_y_um" not in cube.metadata
        per_pixel = np.asarray(cube.metadata["real_time_s"])
        assert per_pixel.shape == (30, 30) and per_pixel.sum() == pytest.approx(70.07298)  # rows differ by one frame
    with read(real_data / "bruker_m6_jetstream_file_example.spx") as cube:
        # NOTICE.md: live time 28 s (LifeTime 28046 ms, RealTime 30000 ms in the file)
        assert cube.live_time_s == pytest.approx(28.046) and cube.metadata["real_time_s"] == pytest.approx(30.0)
        assert cube.pixel_size_um is None
