"""Notifications with the reason first (issue 26, item 10: the Nope.bcf error put the whole path
first, so the toast cut the reason off)."""

from xray_atlas.errors import XrayAtlasError
from xray_atlas.napari._notify import error_text


def test_reason_comes_before_the_file_name():
    err = XrayAtlasError("not a Bruker file (no header)", path="/very/long/folder/of/a/museum/scans/Nope.bcf")
    assert error_text(err) == "not a Bruker file (no header) (Nope.bcf)"
    assert err.reason == "not a Bruker file (no header)" and str(err).startswith("/very/long")


def test_a_path_written_into_the_message_is_turned_round_too():
    err = XrayAtlasError("/data/scans/cube.h5: the file is truncated")
    assert error_text(err) == "the file is truncated (cube.h5)"
    assert error_text("/data/x.npy: cannot be read") == "cannot be read (x.npy)"


def test_messages_without_a_path_are_kept():
    assert error_text(XrayAtlasError("lines: Xx-K is not an element")) == "lines: Xx-K is not an element"
    assert error_text("rows=0 must be an integer >= 1") == "rows=0 must be an integer >= 1"
    assert error_text(RuntimeError("boom")) == "RuntimeError: boom"
