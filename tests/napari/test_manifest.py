import shutil
import subprocess
import sys
from pathlib import Path

import xray_atlas

ROOT = Path(__file__).resolve().parents[2]


def test_npe2_validate_installed_plugin():
    npe2 = shutil.which("npe2") or str(Path(sys.executable).parent / "npe2")
    res = subprocess.run([npe2, "validate", "napari-xray-atlas"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "valid" in res.stdout


def test_top_level_manifest_is_the_shipped_one():
    shipped = Path(xray_atlas.__file__).with_name("napari.yaml")
    assert (ROOT / "napari.yaml").read_text() == shipped.read_text()


def test_plugin_contributions_are_found():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-xray-atlas")
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "Spectrum inspector",
        "Fit inspector",
        "Clusters",
        "Elemental maps",
        "Element probabilities",
        "Training",
        "Adapt to instrument",
        "Diffraction",
        "Classify image",
        "Compare maps",
    ]
    assert [s.key for s in manifest.contributions.sample_data] == [
        "painting",
        "diffraction-image",
        "radiographs",
        "micrographs",
    ]
