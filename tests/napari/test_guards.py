"""triton kept out of napari's process (issue 26, item 1 and its sibling: with a CUDA build of
torch, which ships triton, napari died with a segmentation fault when the Training dock made
an optimiser, and when the Classify dock built a torchvision network, since ``import
torchvision`` brings in torch._dynamo and with it triton)."""

import importlib.util
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    from xray_atlas.napari._display import ensure_display
    ensure_display()
    import napari
    from qtpy.QtWidgets import QApplication
    viewer = napari.Viewer(show=True)
    viewer.window.add_plugin_dock_widget("napari-xray-atlas", "Classify image")
    for _ in range(10):
        QApplication.processEvents()
    import torch
    from xray_atlas.models import build
    net = build("resnet18", image_size=64, n_outputs=2)
    net = net[0] if isinstance(net, tuple) else net
    torch.optim.Adam(net.parameters())  # the Training dock's first step before it moved out
    print("alive")
""")


@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None,
    reason="triton is not installed (the test extra brings it on Linux x86-64)",
)
def test_a_torchvision_network_in_napari_with_triton_installed(tmp_path):
    # without the guard this process ends with signal 11 (return code -11)
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0 and "alive" in res.stdout, (res.returncode, res.stderr[-2000:])


def test_keep_triton_out_marks_it_absent_unless_already_imported(monkeypatch):
    from xray_atlas.napari._guards import keep_triton_out

    monkeypatch.delitem(sys.modules, "triton", raising=False)
    assert keep_triton_out() and keep_triton_out()  # twice: still kept out
    with pytest.raises(ImportError):
        import triton  # noqa: F401
    monkeypatch.setitem(sys.modules, "triton", object())  # already in: nothing to do
    assert not keep_triton_out()
