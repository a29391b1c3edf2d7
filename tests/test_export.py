"""Export of result files (issue 28): TIFF values and resolution, figures, the overview sheet,
spectra tables, the overwrite policy, bad input, the umask, and the `xray-atlas export` command."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from xray_atlas.cli import main
from xray_atlas.errors import XrayAtlasError
from xray_atlas.export import (
    ResultSet,
    export_result,
    iter_export,
    output_names,
    read_result,
    scale_bar_length,
    value_label,
)
from xray_atlas.io.results import write_results

RNG = np.random.default_rng(7)
H, W, C = 12, 16, 40


def _maps() -> dict[str, np.ndarray]:
    # values of every kind a model writes: fractions, negatives (least squares), zeros, large
    fe = RNG.gamma(2.0, 300.0, (H, W)).astype(np.float32)
    pb = (RNG.normal(50.0, 40.0, (H, W))).astype(np.float32)
    return {"Fe-K": fe, "Pb-L": pb, "Sr-K": np.zeros((H, W), np.float32)}


@pytest.fixture
def maps_file(tmp_path):
    maps = _maps()
    path = tmp_path / "maps.h5"
    write_results(path, maps=maps, attrs={"model": "maps-fit", "pixel_size_um": 50.0, "units": "counts/s"})
    return path, maps


@pytest.fixture
def clusters_file(tmp_path):
    labels = RNG.integers(-1, 3, (H, W)).astype(np.int32)
    spectra = RNG.gamma(1.5, 2.0, (3, C)).astype(np.float32)
    energy = -0.02 + 0.01 * np.arange(C)
    path = tmp_path / "clusters.h5"
    write_results(
        path,
        labels=labels,
        cluster_spectra=spectra,
        energy=energy,
        region_spectra={"robe": spectra[0] * 2, "sky": spectra[2] + 1},
        attrs={"model": "som"},
    )
    return path, labels, spectra, energy


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# -- tiff ------------------------------------------------------------------------------------


def test_tiff_holds_the_stored_values_and_the_pixel_size(maps_file, tmp_path):
    import tifffile

    path, maps = maps_file
    out = tmp_path / "out"
    done = export_result(path, out, format="tiff")
    assert _files(out) == ["Fe-K.tif", "Pb-L.tif", "Sr-K.tif"]
    assert done.notes == []
    for line, values in maps.items():
        with tifffile.TiffFile(out / f"{line}.tif") as tif:
            page = tif.pages[0]
            data = page.asarray()
            tags = {t.name: t.value for t in page.tags.values()}
        assert data.dtype == np.float32 and np.array_equal(data, values)
        # 50 um = 200 pixels per centimetre (TIFF 6.0: XResolution pixels per ResolutionUnit, 3 = cm)
        assert tags["ResolutionUnit"] == 3
        for key in ("XResolution", "YResolution"):
            num, den = tags[key]
            assert 1e4 * den / num == pytest.approx(50.0)
        # GeoTIFF: millimetres per pixel (x, y, z), pixel (0, 0) at model (0, 0)
        assert tags["ModelPixelScaleTag"] == pytest.approx((0.05, 0.05, 0.0))
        assert tags["ModelTiepointTag"] == pytest.approx((0.0,) * 6)
        assert f"{line}" in tags["ImageDescription"] and "counts/s" in tags["ImageDescription"]


def test_tiff_of_probabilities_and_clusters_and_a_pixel_size_given(tmp_path, clusters_file):
    import tifffile

    probs = {"Fe": RNG.random((H, W)).astype(np.float32), "Hg": RNG.random((H, W)).astype(np.float32)}
    path = tmp_path / "p.h5"
    write_results(path, probabilities=probs, attrs={"model": "elements-default"})  # no pixel size
    done = export_result(path, tmp_path / "p", format="tiff", lines=["hg"])  # names match in any case
    assert _files(tmp_path / "p") == ["Hg.tif"]
    assert np.array_equal(tifffile.imread(tmp_path / "p" / "Hg.tif"), probs["Hg"])
    assert any("pixel size" in n for n in done.notes)
    with tifffile.TiffFile(tmp_path / "p" / "Hg.tif") as tif:
        tags = {t.name: t.value for t in tif.pages[0].tags.values()}
    assert tags.get("ResolutionUnit", 1) != 3 and "ModelPixelScaleTag" not in tags
    # a pixel size given for a result that lacks it: 33.3 um, not a round number of pixels per cm
    export_result(path, tmp_path / "q", format="tiff", pixel_size_um=33.3)
    with tifffile.TiffFile(tmp_path / "q" / "Fe.tif") as tif:
        num, den = tif.pages[0].tags["XResolution"].value
    assert 1e4 * den / num == pytest.approx(33.3, rel=1e-6)
    # clusters: 1..K as the tables and napari number them, 0 for the file's noise (-1)
    cpath, labels, _, _ = clusters_file
    export_result(cpath, tmp_path / "c", format="tiff")
    img = tifffile.imread(tmp_path / "c" / "clusters.tif")
    assert img.dtype == np.int32 and np.array_equal(img, np.where(labels >= 0, labels + 1, 0))


def test_one_map_by_name_as_tiff_or_figure(maps_file, tmp_path):
    import tifffile

    from xray_atlas.export import write_map

    path, maps = maps_file
    result = read_result(path)
    assert np.array_equal(tifffile.imread(write_map(tmp_path / "lead.tiff", result, "Pb-L")), maps["Pb-L"])
    assert write_map(tmp_path / "lead.pdf", result, "Pb-L").read_bytes().startswith(b"%PDF")
    with pytest.raises(XrayAtlasError, match="holds 3 maps"):
        write_map(tmp_path / "x.tif", result)
    with pytest.raises(XrayAtlasError, match="'Cu-K' is not in the result"):
        write_map(tmp_path / "x.tif", result, "Cu-K")
    with pytest.raises(XrayAtlasError, match="x.jpg"):
        write_map(tmp_path / "x.jpg", result, "Pb-L")
    with pytest.raises(XrayAtlasError, match="--overwrite"):
        write_map(tmp_path / "lead.tiff", result, "Pb-L")
    odd = tmp_path / "odd.tif"  # a result file under a TIFF's name is never written over
    write_results(odd, maps=maps)
    with pytest.raises(XrayAtlasError, match="overwrite the input"):
        write_map(odd, read_result(odd), "Pb-L", overwrite=True)
    assert h5py.is_hdf5(odd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lead.pdf", "lead.tiff", "maps.h5", "odd.tif"]


# -- csv -------------------------------------------------------------------------------------


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_csv_holds_the_spectra_beside_their_energy(clusters_file, tmp_path):
    path, _, spectra, energy = clusters_file
    out = tmp_path / "out"
    export_result(path, out, format="csv")
    assert _files(out) == ["cluster_spectra.csv", "region_spectra.csv"]
    head, table = _read_csv(out / "cluster_spectra.csv")
    assert head == ["energy_kev", "cluster 1", "cluster 2", "cluster 3"]
    np.testing.assert_allclose(table[:, 0], energy, atol=5e-7)  # written with 6 decimals (1e-6 keV)
    assert np.array_equal(table[:, 1:].T.astype(np.float32), spectra)  # 9 digits: float32 exactly
    head, table = _read_csv(out / "region_spectra.csv")
    assert head == ["energy_kev", "robe", "sky"]
    assert np.array_equal(table[:, 1].astype(np.float32), spectra[0] * 2)
    assert np.array_equal(table[:, 2].astype(np.float32), spectra[2] + 1)


def test_csv_without_energy_axis_numbers_channels(tmp_path):
    spectra = RNG.random((2, C)).astype(np.float32)
    path = tmp_path / "old.h5"  # a cluster result of an uncalibrated cube (or written before /energy)
    write_results(path, labels=np.zeros((H, W), np.int32), cluster_spectra=spectra)
    done = export_result(path, tmp_path / "out", format="csv")
    head, table = _read_csv(tmp_path / "out" / "cluster_spectra.csv")
    assert head[0] == "channel" and np.array_equal(table[:, 0], np.arange(C))
    assert any("energy" in n for n in done.notes)
    # the calibration attrs stand in for /energy
    with h5py.File(path, "a") as f:
        f.attrs["energy_offset_kev"], f.attrs["energy_gain_kev"] = 0.1, 0.02
    assert np.allclose(read_result(path).energy, 0.1 + 0.02 * np.arange(C))


def test_cluster_command_stores_the_energy_axis(small_cube_h5, tmp_path, capsys):
    from xray_atlas.io import read

    cube_path, _ = small_cube_h5
    out = tmp_path / "c.h5"
    small = [
        f"--param={p}"
        for p in ("trim=0", "bin=1", "pca_components=4", "rows=2", "cols=2", "n_clusters=2", "device=cpu")
    ]
    assert main(["cluster", str(cube_path), str(out), "--method", "som", *small]) == 0, capsys.readouterr().err
    with h5py.File(out) as f, read(cube_path) as cube:
        assert f["energy"].shape == (cube.n_channels,) == (f["cluster_spectra"].shape[1],)
        np.testing.assert_allclose(f["energy"][()], cube.energy)  # -0.5 + 0.02 i (the fixture's calibration)
    assert main(["export", str(out), str(tmp_path / "csv"), "--format", "csv"]) == 0
    head, table = _read_csv(tmp_path / "csv" / "cluster_spectra.csv")
    np.testing.assert_allclose(table[:, 0], -0.5 + 0.02 * np.arange(64), atol=5e-7)


def test_energy_must_match_the_spectra(tmp_path):
    with pytest.raises(XrayAtlasError, match="energy has 3 channels"):
        write_results(tmp_path / "x.h5", cluster_spectra=np.ones((2, 4)), energy=np.arange(3.0))
    with pytest.raises(XrayAtlasError, match="energy is the axis of spectra"):
        write_results(tmp_path / "x.h5", maps={"Fe-K": np.ones((2, 2))}, energy=np.arange(3.0))
    assert not (tmp_path / "x.h5").exists()


# -- figures -------------------------------------------------------------------------------


def test_scale_bar_lengths():
    # 1, 2 or 5 times a power of ten, at most a fifth of the width
    assert scale_bar_length(250.0, 128) == (5000.0, "5 mm")  # 32 mm wide -> 6.4 mm -> 5 mm
    assert scale_bar_length(50.0, 16) == (100.0, "100 \u00b5m")  # 0.8 mm -> 160 um -> 100 um
    assert scale_bar_length(2.0, 1000) == (200.0, "200 \u00b5m")
    assert scale_bar_length(1000.0, 3) == (1000.0, "1 mm")  # never shorter than a pixel


def test_value_labels():
    assert value_label("map") == value_label("map", "counts") == "net counts"
    assert value_label("map", "counts/s") == "net counts/s"
    assert value_label("probability", "counts") == "probability"


def _pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_png_figures_are_drawn_in_the_element_colour_with_scale_and_colour_bar(maps_file, tmp_path):
    from matplotlib.offsetbox import AnchoredOffsetbox

    from xray_atlas.colours import element_colour
    from xray_atlas.export import _map_figure

    path, maps = maps_file
    out = tmp_path / "out"
    export_result(path, out, format="png")
    assert _files(out) == ["Fe-K.png", "Pb-L.png", "Sr-K.png", "overview.pdf", "overview.png"]
    fe = _pixels(out / "Fe-K.png")
    # the colour bar's top (and the brightest pixels) are iron's colour, the map's zeros black
    target = np.round(np.array(element_colour("Fe")) * 255)
    assert (np.abs(fe - target).max(axis=-1) <= 3).sum() > 100
    assert (fe.sum(axis=-1) == 0).sum() > 100
    # the figure: a colour bar labelled with the file's units, a 100 um scale bar, the title
    result = read_result(path)
    fig = _map_figure(result, "map", "Fe-K", maps["Fe-K"])
    image_ax, bar_ax = fig.axes
    assert bar_ax.get_ylabel() == "net counts/s"
    bars = [a for a in image_ax.artists if isinstance(a, AnchoredOffsetbox)]
    texts = [t.get_text() for bar in bars for t in bar.findobj(match=lambda o: hasattr(o, "get_text"))]
    assert len(bars) == 1 and "100 \u00b5m" in texts
    assert image_ax.get_title(loc="left") == "Fe-K" and "maps-fit" in image_ax.get_title(loc="right")
    # without a pixel size, no scale bar
    fig = _map_figure(ResultSet(maps=maps), "map", "Fe-K", maps["Fe-K"])
    assert not [a for a in fig.axes[0].artists if isinstance(a, AnchoredOffsetbox)]


def test_probability_figures_run_from_0_to_1(tmp_path):
    from xray_atlas.export import _map_figure

    probs = {"Hg": (RNG.random((H, W)) * 0.3).astype(np.float32)}
    fig = _map_figure(ResultSet(probabilities=probs), "probability", "Hg", probs["Hg"])
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.0, 1.0) and fig.axes[1].get_ylabel() == "probability"


def test_overview_sheet_is_one_readable_page(maps_file, tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from xray_atlas.export import _sheet_figure

    path, _ = maps_file
    out = tmp_path / "out"
    export_result(path, out, format="sheet")
    assert _files(out) == ["overview.pdf", "overview.png"]
    assert sorted(_pixels(out / "overview.png").shape[:2]) == [1240, 1753]  # A4, 210 x 297 mm, at 150 dpi
    pdf = (out / "overview.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
    # nothing overlaps: every panel's title, image and colour bar (with its ticks and label) keep
    # to their own box, inside the page, below the header
    result = read_result(path)
    many = ResultSet(
        maps={f"{s}-K": _maps()["Fe-K"] for s in ("S", "K", "Ca", "Cr", "Mn", "Fe", "Cu", "Zn")},
        probabilities={"Pb": RNG.random((H, W))},
        labels=np.zeros((H, W), int),
        model="m",
        source="a-long-file-name-of-a-painting.h5",
        pixel_size_um=50.0,
    )
    for res in (result, many):
        fig = _sheet_figure(res, res.images, res.labels is not None)
        renderer = FigureCanvasAgg(fig).get_renderer()
        page = fig.bbox
        boxes = []
        for image_ax, bar_ax in zip(fig.axes[::2], fig.axes[1::2]):
            box = image_ax.get_tightbbox(renderer).union(
                [image_ax.get_tightbbox(renderer), bar_ax.get_tightbbox(renderer)]
            )
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
            boxes.append(box)
        header = fig.texts[0].get_window_extent(renderer)
        for i, a in enumerate(boxes):
            assert not a.overlaps(header)
            for b in boxes[i + 1 :]:
                assert not a.overlaps(b)
        assert len(boxes) == len(res.images) + (res.labels is not None)


# -- the rules of every output ---------------------------------------------------------------


def test_existing_files_are_never_replaced_without_overwrite(maps_file, tmp_path):
    path, maps = maps_file
    out = tmp_path / "out"
    out.mkdir()
    (out / "Pb-L.tif").write_bytes(b"mine")
    with pytest.raises(XrayAtlasError, match="Pb-L.tif.*--overwrite"):
        export_result(path, out, format="tiff")
    assert _files(out) == ["Pb-L.tif"] and (out / "Pb-L.tif").read_bytes() == b"mine"  # refused before writing
    done = export_result(path, out, format="tiff", overwrite=True)
    assert len(done.files) == 3 and (out / "Pb-L.tif").read_bytes() != b"mine"
    # a read-only file is never replaced, even with overwrite
    os.chmod(out / "Fe-K.tif", 0o444)
    before = (out / "Fe-K.tif").read_bytes()
    with pytest.raises(XrayAtlasError, match="read-only"):
        export_result(path, out, format="tiff", overwrite=True)
    assert (out / "Fe-K.tif").read_bytes() == before


def test_a_stopped_export_removes_what_it_made(maps_file, tmp_path):
    path, _ = maps_file
    out = tmp_path / "new" / "folder"
    steps = iter_export(path, out, format="tiff")
    assert not out.exists()  # checked, nothing made yet
    next(steps)
    assert len(list(out.iterdir())) == 1
    steps.close()  # what a Cancel in napari does
    assert not (tmp_path / "new").exists()
    # an existing folder keeps what it held
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    steps = iter_export(path, keep, format="tiff")
    next(steps)
    steps.close()
    assert _files(keep) == ["notes.txt"]


def test_files_and_folders_get_the_umask_modes(maps_file, tmp_path):
    path, _ = maps_file
    old = os.umask(0o027)
    try:
        done = export_result(path, tmp_path / "a" / "b", format="png")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o750
    for p in done.files:
        assert p.stat().st_mode & 0o777 == 0o640, p
    assert [p.name for p in (tmp_path / "a" / "b").iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_output_names_are_known_before_writing(maps_file, clusters_file):
    result = read_result(maps_file[0])
    assert output_names(result, format="tiff", lines=["pb-l"]) == ["Pb-L.tif"]
    assert output_names(result, format="sheet") == ["overview.png", "overview.pdf"]
    c = read_result(clusters_file[0])
    assert output_names(c, format=["tiff", "csv"]) == ["clusters.tif", "cluster_spectra.csv", "region_spectra.csv"]
    # maps sorted by atomic number: S before Fe before Pb
    assert [n for _, n, _ in ResultSet(maps={"Pb-L": 0, "S-K": 0, "Fe-K": 0}).images] == ["S-K", "Fe-K", "Pb-L"]


# -- bad input: one line naming the file or parameter, exit 2, nothing written -----------------


def _error(capsys, argv):
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own refusals
        status = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_bad_input_is_refused_with_one_line(maps_file, clusters_file, small_cube_h5, tmp_path, capsys):
    path, _ = maps_file
    out = tmp_path / "never"
    line = _error(capsys, ["export", str(path), str(out), "--lines", "Pb-L,Xx-K"])
    assert "--lines" in line and "Xx-K" in line and "maps.h5" in line
    line = _error(capsys, ["export", str(small_cube_h5[0]), str(out)])
    assert "cube.h5" in line and "spectral cube, not a result" in line
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.attrs["model"] = "x"
        f.create_group("maps")
    assert "holds no maps" in _error(capsys, ["export", str(empty), str(out)])
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    assert "not a readable HDF5" in _error(capsys, ["export", str(text), str(out)])
    assert "no such file" in _error(capsys, ["export", str(tmp_path / "missing.h5"), str(out)])
    assert "no spectra" in _error(capsys, ["export", str(path), str(out), "--format", "csv"])
    assert "--lines" in _error(capsys, ["export", str(clusters_file[0]), str(out), "--format", "csv", "--lines", "Fe"])
    assert "--format" in _error(capsys, ["export", str(path), str(out), "--format", "jpeg"])
    assert "--pixel-size-um" in _error(capsys, ["export", str(path), str(out), "--pixel-size-um", "-3"])
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "not a folder" in _error(capsys, ["export", str(path), str(afile)])
    assert not out.exists()


def test_export_command(maps_file, tmp_path, capsys):
    path, _ = maps_file
    assert main(["export", str(path), str(tmp_path / "out"), "--format", "png", "--lines", "Fe-K"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("wrote 3 files to") and "Fe-K.png" in captured.out
    assert captured.err == ""  # the file states its pixel size: no note
    # the console script, as a user runs it: a clash is one line and exit 2
    exe = os.path.join(os.path.dirname(sys.executable), "xray-atlas")
    res = subprocess.run(
        [exe, "export", str(path), str(tmp_path / "out"), "--format", "png", "--lines", "Fe-K"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stdout == "" and len(res.stderr.strip().splitlines()) == 1
    assert "Fe-K.png" in res.stderr and "--overwrite" in res.stderr


def test_the_core_module_imports_no_gui_and_no_plotting(tmp_path):
    code = (
        "import sys, xray_atlas.export, xray_atlas.colours; "
        "print(' '.join(m for m in ('matplotlib', 'tifffile', 'napari', 'qtpy', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == []
