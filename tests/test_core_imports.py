"""Rules 1 and 2 of docs/dev/architecture.md: the core never imports Qt/napari; heavy imports are lazy."""

import subprocess
import sys

CORE = [
    "xray_atlas",
    "xray_atlas.cube",
    "xray_atlas.cli",
    "xray_atlas.io",
    "xray_atlas.io.hdf5",
    "xray_atlas.io.arrays",
    "xray_atlas.io.bruker",
    "xray_atlas.io.ripple",
    "xray_atlas.io.pymca",
    "xray_atlas.io.results",
    "xray_atlas.physics.lines",
    "xray_atlas.physics.painting",
    "xray_atlas.physics.spectra",
    "xray_atlas.physics.generator",
    "xray_atlas.physics.reference",
    "xray_atlas.unmix",
    "xray_atlas.cluster",
    "xray_atlas.cluster.features",
    "xray_atlas.cluster.methods",
    "xray_atlas.devices",
    "xray_atlas.models",
    "xray_atlas.models.spectral",
    "xray_atlas.models.files",
    "xray_atlas.training",
    "xray_atlas.training.loop",
    "xray_atlas.diffraction",
    "xray_atlas.physics.lattice",
    "xray_atlas.models.diffraction",
    "xray_atlas.models.elements",
    "xray_atlas.models.vit1d",
    "xray_atlas.models.images",
    "xray_atlas.models.prior",
]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_core_imports_no_gui():
    loaded = _loaded_after("; ".join(f"import {m}" for m in CORE))
    assert not loaded & {
        "napari",
        "qtpy",
        "PyQt5",
        "PyQt6",
        "PySide2",
        "PySide6",
        "magicgui",
        "superqt",
        "pyqtgraph",
        "vispy",
    }


def test_import_is_light():
    loaded = _loaded_after("import xray_atlas, xray_atlas.cli")
    assert not loaded & {"torch", "dask", "rsciio", "zarr", "h5py", "xraylib"}


def test_cluster_fit_needs_no_torch():
    # the model modules import torch at their top; the per-cluster fit shares only
    # models.prior (numpy) with them, so preparing it loads no torch
    code = (
        "from xray_atlas.physics.painting import synthetic_painting\n"
        "from xray_atlas.cube import SpectralCube\n"
        "from xray_atlas.clusterfit import ClusterFit\n"
        "p = synthetic_painting(6, 6, seed=1, layout='random')\n"
        "ClusterFit(SpectralCube(p.counts, offset_kev=p.energy_offset_kev, gain_kev=p.energy_gain_kev), ('Fe-K',))"
    )
    loaded = _loaded_after(code)
    assert "xray_atlas" in loaded and "torch" not in loaded


def test_thread_pools_sleep_between_calls():
    # set on import, before numpy and torch load their thread pools; a user's own value is kept
    import os

    code = "import os, xray_atlas; print(os.environ['OMP_WAIT_POLICY'], os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert run.stdout.split() == ["PASSIVE", "4"]
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
    )
    assert run.stdout.split() == ["ACTIVE", "4"]
    # and they are set before numpy (OpenBLAS reads its variable when it loads)
    probe = (
        "import os, sys\n"
        "class Probe:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numpy':\n"
        "            print('numpy sees', os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n"
        "sys.meta_path.insert(0, Probe())\n"
        "import xray_atlas\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert run.stdout.splitlines()[0] == "numpy sees 4"


def test_no_private_names_imported_across_modules():
    # docs/dev/architecture.md: what one module uses of another is public; private modules
    # (xray_atlas._files, napari._workers ...) are the package's own and may be imported
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*from\s+[\w.]+\s+import\s+\(?([^#\n]*)")
    offending = []
    for folder in ("src", "tools", "benchmarks"):
        for path in sorted((root / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                m = pattern.match(line)
                if not m:
                    continue
                names = [part.strip().split(" as ")[0] for part in m.group(1).split(",")]
                if any(name.startswith("_") and not name.startswith("__") for name in names if name):
                    offending.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not offending, "\n".join(offending)
