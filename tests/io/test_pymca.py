import numpy as np
import pytest

from xray_atlas import XrayAtlasError
from xray_atlas.io import read


def test_two_column_mca_with_calib(tmp_path):
    p = tmp_path / "two.mca"
    p.write_text("#@CALIB 0.1 0.01 0\n" + "\n".join(f"{i} {i * 2}" for i in range(50)))
    with read(p) as cube:
        np.testing.assert_array_equal(cube.pixel(0, 0), np.arange(50) * 2)
        assert cube.energy[10] == pytest.approx(0.2)


def test_spec_style_mca(tmp_path):
    p = tmp_path / "spec.mca"
    p.write_text("#F x\n#S 1 mca\n#@CALIB 0 0.02 0\n@A 1 2 3 4\\\n 5 6 7 8\n#S 2 mca\n@A 9 9 9 9 9 9 9 9\n")
    with read(p) as cube:
        np.testing.assert_array_equal(cube.pixel(0, 0), [1, 2, 3, 4, 5, 6, 7, 8])


def test_spe_with_energy_fit(tmp_path):
    p = tmp_path / "a.spe"
    p.write_text("$SPEC_ID:\nx\n$DATA:\n0 5\n1 2 3\n4 5 6\n$ENER_FIT:\n-0.1 0.05\n")
    with read(p) as cube:
        np.testing.assert_array_equal(cube.pixel(0, 0), [1, 2, 3, 4, 5, 6])
        assert cube.energy[2] == pytest.approx(0.0)


@pytest.mark.parametrize(
    "suffix, text, match",
    [
        (".mca", "# only comments\n", "no spectrum data"),
        (".mca", "1\n2\nabc\n", "line 3: non-numeric"),
        (".mca", "1 2\n3\n", "columns"),
        (".spe", "$DATA:\n0 9\n1 2 3\n", "announces channels 0-9 but holds 3"),
        (".spe", "$SPEC_ID:\n", "no \\$DATA"),
        (".mca", "5\n", "need at least 2"),
    ],
)
def test_bad_text_spectra(tmp_path, suffix, text, match):
    p = tmp_path / f"bad{suffix}"
    p.write_text(text)
    with pytest.raises(XrayAtlasError, match=match):
        read(p)


def test_binary_file_named_mca(tmp_path):
    p = tmp_path / "bin.mca"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(XrayAtlasError, match="bin.mca: not a text spectrum"):
        read(p)


def test_live_and_real_time_from_the_spectrum_header(tmp_path):
    # SPEC: #@CTIME <preset> <live> <real>; Maestro .spe: $MEAS_TIM: <live> <real>
    mca = tmp_path / "t.mca"
    mca.write_text("#S 1 mca\n#@CTIME 100 97.5 100.25\n#@CALIB 0 0.02 0\n@A 1 2 3 4\n")
    with read(mca) as cube:
        assert cube.live_time_s == 97.5 and cube.metadata["real_time_s"] == 100.25
    spe = tmp_path / "t.spe"
    spe.write_text("$SPEC_ID:\nx\n$MEAS_TIM:\n300 312\n$DATA:\n0 3\n1 2 3 4\n")
    with read(spe) as cube:
        assert cube.live_time_s == 300.0 and cube.metadata["real_time_s"] == 312.0


def test_cfg_time_and_tube_are_not_the_spectrum_s(real_data):
    # Steel.cfg's [concentrations] time = 300 and [tube] voltage = 30 are PyMca settings
    with read(real_data / "Steel.spe") as cube:
        assert cube.live_time_s is None and "tube_kv" not in cube.metadata
