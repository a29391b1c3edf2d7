"""Comparing maps (issue 29): RGB composites with per-channel and percentile limits, the 2-D
histogram of two maps, pixels selected by a rectangle or polygon of value space, the correlation
coefficient, and the composite written as PNG and TIFF by xray-atlas export --format rgb."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xray_atlas.cli import main
from xray_atlas.compare import (
    AUTO_PERCENTILES,
    auto_limits,
    correlation,
    histogram2d,
    pixels_in_polygon,
    pixels_in_rectangle,
    rgb_composite,
)
from xray_atlas.errors import XrayAtlasError
from xray_atlas.export import export_result, output_names, read_result, write_rgb
from xray_atlas.io.results import write_results

RNG = np.random.default_rng(29)


# -- RGB composite ------------------------------------------------------------------------------


def test_channels_run_linearly_from_low_to_high_limit():
    ramp = np.arange(0, 101, dtype=np.float32).reshape(1, 101)  # 0, 1, ..., 100
    out = rgb_composite(ramp, 2 * ramp, None, limits=[(0, 100), (50, 150), None])
    r, g, b = (out.rgb[0, :, c].astype(int) for c in range(3))
    # red: 255 v / 100, exactly (an integer over 100), rounded half to even (numpy.rint)
    assert np.array_equal(r, np.rint(np.arange(101) * 255 / 100).astype(int))
    assert r[0] == 0 and r[100] == 255 and r[50] == 128  # 127.5 -> 128
    # green: 2v from 50 to 150; below 50 dark, above 150 full
    assert (g[:25] == 0).all() and (g[75:] == 255).all() and g[50] == 128
    assert (b == 0).all()  # no map: a black channel
    assert out.rgb.dtype == np.uint8 and out.rgb.shape == (1, 101, 3)
    assert out.limits[0] == (0.0, 100.0) and out.limits[2] is None


def test_auto_limits_are_the_1st_and_99th_percentiles():
    values = RNG.gamma(2.0, 100.0, (60, 70)).astype(np.float32)
    values[3, 4] = 1e7  # a hot pixel: it must not set the scale
    values[5, 6] = np.nan
    lo, hi = auto_limits(values)
    finite = values[np.isfinite(values)]
    # reference: numpy's percentile (linear interpolation) of the finite values
    assert (lo, hi) == pytest.approx(tuple(np.percentile(finite, [1, 99])))
    assert AUTO_PERCENTILES == (1.0, 99.0) and hi < 1e4
    out = rgb_composite(values, None, None)  # "auto"
    assert out.limits[0] == pytest.approx((lo, hi))
    red = out.rgb[..., 0]
    # 1 % of the pixels at or below the low limit are dark, 1 % at or above the high one full
    assert 0.005 < (red == 0).mean() < 0.02 and 0.005 < (red == 255).mean() < 0.02
    assert red[5, 6] == 0  # NaN is dark
    assert auto_limits(values, percentiles=(0, 100)) == pytest.approx((float(np.nanmin(values)), 1e7))


def test_flat_and_empty_maps_get_usable_limits():
    assert auto_limits(np.full((4, 4), 7.0)) == (7.0, 8.0)
    assert auto_limits(np.full((4, 4), np.nan)) == (0.0, 1.0)
    out = rgb_composite(np.zeros((3, 3)), np.ones((3, 3)), np.full((3, 3), np.nan))
    assert (out.rgb == 0).all()


def test_composite_refuses_bad_input_naming_the_parameter():
    a = np.zeros((4, 5))
    with pytest.raises(XrayAtlasError, match="red, green, blue: give at least one"):
        rgb_composite(None, None, None)
    with pytest.raises(XrayAtlasError, match=r"one shape.*green \(4, 4\)"):
        rgb_composite(a, np.zeros((4, 4)), None)
    with pytest.raises(XrayAtlasError, match="limits: .*got 2"):
        rgb_composite(a, a, a, limits=[(0, 1), (0, 1)])
    with pytest.raises(XrayAtlasError, match="limits: the blue channel's .*high must be"):
        rgb_composite(a, a, a, limits=[(0, 1), None, (5, 5)])
    with pytest.raises(XrayAtlasError, match="percentiles"):
        rgb_composite(a, None, None, percentiles=(99, 1))
    with pytest.raises(XrayAtlasError, match="percentiles"):
        auto_limits(a, percentiles=(1, 101))


# -- 2-D histogram ----------------------------------------------------------------------------


def test_perfectly_correlated_maps_put_every_count_on_the_diagonal():
    k = RNG.integers(0, 64, (50, 40))
    x = (k + 0.5).astype(np.float32)  # cell centres of a 0-64 range in 64 cells
    y = 2.0 * x + 3.0  # y's range 3-131 in 64 cells: cell k again
    h = histogram2d(x, y, bins=64, x_range=(0, 64), y_range=(3, 131))
    assert h.counts.sum() == x.size == h.n
    assert np.count_nonzero(h.counts - np.diag(np.diag(h.counts))) == 0
    assert np.array_equal(np.diag(h.counts), np.bincount(k.ravel(), minlength=64))
    # anti-correlated: the other diagonal
    h = histogram2d(x, -x, bins=64, x_range=(0, 64), y_range=(-64, 0))
    assert np.array_equal(np.fliplr(h.counts), np.diag(np.diag(np.fliplr(h.counts))))


def test_histogram_counts_as_numpy_histogram2d():
    x = RNG.gamma(2.0, 100.0, (80, 90)).astype(np.float32)
    y = (0.5 * x + RNG.normal(0, 20, x.shape)).astype(np.float32)
    x[:2, :3] = np.round(x[:2, :3])  # values on cell edges too
    x[0, 0], y[1, 1] = np.nan, np.inf
    h = histogram2d(x, y)
    keep = np.isfinite(x) & np.isfinite(y)
    # reference: numpy.histogram2d with the same (finite min-max, Python float) ranges
    xr = (float(np.nanmin(x)), float(np.nanmax(x)))
    yr = (float(y[np.isfinite(y)].min()), float(y[np.isfinite(y)].max()))
    ref, xe, ye = np.histogram2d(x[keep], y[keep], bins=256, range=[xr, yr])
    assert np.array_equal(h.counts, ref) and np.array_equal(h.x_edges, xe) and np.array_equal(h.y_edges, ye)
    assert (h.n, h.outside, h.missing) == (keep.sum(), 0, 2)
    # a narrower range: pixels beyond it are counted as outside, the rest as numpy does
    h = histogram2d(x, y, bins=32, x_range=(100, 300), y_range=(0, 150))
    ref, _, _ = np.histogram2d(x[keep], y[keep], bins=32, range=[(100, 300), (0, 150)])
    assert np.array_equal(h.counts, ref) and h.n + h.outside == keep.sum()
    assert np.allclose(h.log_density, np.log10(1 + ref))


def test_a_region_is_counted_in_the_whole_maps_cells():
    x = RNG.random((30, 40))
    y = RNG.random((30, 40))
    region = np.zeros(x.shape, bool)
    region[5:12, 8:20] = True
    whole = histogram2d(x, y, bins=16)
    part = histogram2d(x, y, bins=16, mask=region)
    assert np.array_equal(part.x_edges, whole.x_edges) and np.array_equal(part.y_edges, whole.y_edges)
    assert part.n == region.sum() and (part.counts <= whole.counts).all()
    rest = histogram2d(x, y, bins=16, mask=~region)
    assert np.array_equal(part.counts + rest.counts, whole.counts)


def test_histogram_refuses_bad_input():
    with pytest.raises(XrayAtlasError, match="y: its shape"):
        histogram2d(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(XrayAtlasError, match="bins"):
        histogram2d(np.zeros((3, 4)), np.zeros((3, 4)), bins=1)
    with pytest.raises(XrayAtlasError, match="x_range"):
        histogram2d(np.zeros((3, 4)), np.zeros((3, 4)), x_range=(2, 1))
    with pytest.raises(XrayAtlasError, match="mask"):
        histogram2d(np.zeros((3, 4)), np.zeros((3, 4)), mask=np.ones((4, 3), bool))
    one = histogram2d(np.full((2, 2), 5.0), np.full((2, 2), 5.0), bins=4)  # one value: widened by 0.5
    assert one.x_edges[0] == 4.5 and one.x_edges[-1] == 5.5 and one.counts.sum() == 4


# -- selection in value space -------------------------------------------------------------------


def test_a_rectangle_selects_exactly_the_pixels_whose_values_lie_in_it():
    x = np.round(RNG.uniform(0, 10, (40, 50)), 1)  # values on the rectangle's edges too
    y = np.round(RNG.uniform(0, 10, (40, 50)), 1)
    y[0, 0] = np.nan
    mask = pixels_in_rectangle(x, y, (2.5, 6.0), (7.0, 3.0))  # sides in either order
    expected = np.array([[2.5 <= a <= 6.0 and 3.0 <= b <= 7.0 for a, b in zip(ra, rb)] for ra, rb in zip(x, y)])
    assert mask.shape == x.shape and np.array_equal(mask, expected)
    assert mask[(x == 2.5) & (y >= 3) & (y <= 7)].all()  # edges included
    assert not mask[0, 0]


def test_a_polygon_selects_the_pixels_inside_it():
    x = RNG.uniform(-0.5, 1.5, (60, 70))
    y = RNG.uniform(-0.5, 1.5, (60, 70))
    triangle = [(0, 0), (1, 0), (0, 1)]
    mask = pixels_in_polygon(x, y, triangle)
    assert np.array_equal(mask, (x > 0) & (y > 0) & (x + y < 1))  # the triangle's interior (no value on an edge)
    square = pixels_in_polygon(x, y, [(0.2, 0.3), (0.8, 0.3), (0.8, 0.9), (0.2, 0.9)])
    assert np.array_equal(square, pixels_in_rectangle(x, y, (0.2, 0.8), (0.3, 0.9)))
    assert not pixels_in_polygon(x, y, [(5, 5), (6, 5), (6, 6)]).any()
    with pytest.raises(XrayAtlasError, match="vertices"):
        pixels_in_polygon(x, y, [(0, 0), (1, 1)])


def test_correlation_coefficient():
    x = RNG.gamma(2.0, 10.0, (30, 30))
    assert correlation(x, 2 * x + 3) == pytest.approx(1.0)
    assert correlation(x, -x) == pytest.approx(-1.0)
    y = x + RNG.normal(0, 10, x.shape)
    assert correlation(x, y) == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1])  # reference: numpy
    region = x > 20
    assert correlation(x, y, mask=region) == pytest.approx(np.corrcoef(x[region], y[region])[0, 1])
    assert np.isnan(correlation(x, np.ones_like(x)))


def test_the_core_module_imports_no_gui_and_no_plotting():
    code = (
        "import sys, xray_atlas.compare; "
        "print(' '.join(m for m in ('matplotlib', 'napari', 'qtpy', 'pyqtgraph') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == []


# -- export -----------------------------------------------------------------------------------


@pytest.fixture
def maps_file(tmp_path):
    maps = {
        "Pb-L": RNG.gamma(2.0, 300.0, (12, 16)).astype(np.float32),
        "Hg-L": RNG.gamma(1.0, 50.0, (12, 16)).astype(np.float32),
        "Cu-K": RNG.gamma(3.0, 10.0, (12, 16)).astype(np.float32),
    }
    path = tmp_path / "maps.h5"
    write_results(path, maps=maps, attrs={"model": "roi", "pixel_size_um": 500.0})
    return path, maps


def test_rgb_export_writes_the_composite_as_png_and_tiff(maps_file, tmp_path):
    import tifffile
    from PIL import Image

    path, maps = maps_file
    out = tmp_path / "out"
    done = export_result(path, out, format="rgb", lines=["Pb-L", "Hg-L", "none"])
    names = ["rgb_Pb-L_Hg-L_none.png", "rgb_Pb-L_Hg-L_none.tif"]
    assert [p.name for p in done.files] == names
    assert output_names(read_result(path), format="rgb", lines=["Pb-L", "Hg-L", "none"]) == names
    expected = rgb_composite(maps["Pb-L"], maps["Hg-L"], None)
    with Image.open(out / names[0]) as im:
        assert im.mode == "RGB"
        assert np.array_equal(np.asarray(im), expected.rgb)
        # pHYs: 500 um pixels = 2000 pixels per metre = 50.8 dpi
        assert im.info["dpi"][0] == pytest.approx(25400 / 500, rel=1e-3)
        text = im.info["Description"]
    lo, hi = expected.limits[0]
    assert f"red Pb-L {lo:.4g} to {hi:.4g} net counts" in text and "blue none" in text and "pixel 500 um" in text
    with tifffile.TiffFile(out / names[1]) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.RGB
        assert np.array_equal(page.asarray(), expected.rgb)
        tags = {t.name: t.value for t in page.tags.values()}
    num, den = tags["XResolution"]
    assert tags["ResolutionUnit"] == 3 and 1e4 * den / num == pytest.approx(500.0)  # pixels per cm
    assert tags["ModelPixelScaleTag"] == pytest.approx((0.5, 0.5, 0.0))  # mm per pixel
    # the policy of every export: nothing replaced without overwrite
    with pytest.raises(XrayAtlasError, match="--overwrite"):
        export_result(path, out, format="rgb", lines=["Pb-L", "Hg-L", "none"])
    export_result(path, out, format="rgb", lines=["Pb-L", "Hg-L", "none"], overwrite=True, percentiles=(0, 100))
    with Image.open(out / names[0]) as im:
        assert np.asarray(im)[..., 0].max() == 255 and np.asarray(im)[..., 0].min() == 0


def test_rgb_export_refuses_what_it_cannot_make(maps_file, tmp_path):
    path, _ = maps_file
    for lines, match in (
        (None, "exactly three"),
        (["Pb-L", "Hg-L"], "exactly three"),
        (["Pb-L", "Xx-K", "Cu-K"], "Xx-K not in the result"),
        (["none"] * 3, "all three"),
    ):
        with pytest.raises(XrayAtlasError, match=match):
            export_result(path, tmp_path / "never", format="rgb", lines=lines)
    with pytest.raises(XrayAtlasError, match="percentiles"):
        export_result(path, tmp_path / "never", format="rgb", lines=["Pb-L", "Hg-L", "Cu-K"], percentiles=(50, 50))
    assert not (tmp_path / "never").exists()
    with pytest.raises(XrayAtlasError, match=r"\(H, W, 3\) uint8"):
        write_rgb(tmp_path / "x.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(XrayAtlasError, match=".png, .tif or .tiff"):
        write_rgb(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint8))


def test_rgb_export_command(maps_file, tmp_path, capsys):
    path, _ = maps_file
    out = tmp_path / "out"
    assert (
        main(["export", str(path), str(out), "--format", "rgb", "--lines", "Pb-L,Hg-L,Cu-K", "--percentiles", "5,95"])
        == 0
    )
    captured = capsys.readouterr()
    assert "wrote 2 files" in captured.out and "rgb_Pb-L_Hg-L_Cu-K.png" in captured.out
    from PIL import Image

    with Image.open(out / "rgb_Pb-L_Hg-L_Cu-K.png") as im:
        assert "percentiles 5 to 95" in im.info["Description"]

    def error(argv):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0]
        return err[0]

    assert "--lines" in error(["export", str(path), str(out / "b"), "--format", "rgb", "--lines", "Pb-L"])
    assert "--lines" in error(["export", str(path), str(out / "b"), "--format", "rgb"])
    assert "--percentiles" in error(
        ["export", str(path), str(out / "b"), "--format", "rgb", "--lines", "Pb-L,Hg-L,Cu-K", "--percentiles", "99,1"]
    )
    assert "--percentiles" in error(
        ["export", str(path), str(out / "b"), "--format", "rgb", "--lines", "Pb-L,Hg-L,Cu-K", "--percentiles", "a,b"]
    )
    assert "with --format rgb" in error(["export", str(path), str(out / "b"), "--percentiles", "1,99"])
    assert not (out / "b").exists()
