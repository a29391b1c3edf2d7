"""Shared fixtures. With XRAY_ATLAS_BLOCK_QT=1 every Qt/napari import fails, which proves
that the core tests neither need nor import them (tools/test.sh runs the core that way)."""

from __future__ import annotations

import importlib.abc
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BLOCKED = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "pyqtgraph", "vispy")


class _BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked: core tests must run without Qt/napari")
        return None


if os.environ.get("XRAY_ATLAS_BLOCK_QT"):
    sys.meta_path.insert(0, _BlockQt())
    collect_ignore = ["napari"]

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real measured files in ../shared/data/real (skipped when the folder is absent)."""
    if not REAL.is_dir():
        pytest.skip("../shared/data/real is not present")
    return REAL


@pytest.fixture()
def small_cube_h5(tmp_path):
    """A small contract-layout HDF5 cube with known random counts; returns (path, counts)."""
    from xray_atlas.io.hdf5 import write_cube

    rng = np.random.default_rng(1)
    counts = rng.poisson(3.0, size=(23, 17, 64)).astype(np.uint16)
    path = tmp_path / "cube.h5"
    write_cube(path, counts, energy_offset_kev=-0.5, energy_gain_kev=0.02,
               maps={"Fe-K": counts.sum(-1).astype(np.float32)}, attrs={"title": "test"}, chunk_pixels=4)
    return path, counts


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("XRAY_ATLAS_BLOCK_QT"):
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        if loaded:  # pragma: no cover - would mean the blocker failed
            raise RuntimeError(f"Qt/napari modules were imported by core tests: {loaded}")


@pytest.fixture(autouse=True)
def _user_folder(tmp_path_factory, monkeypatch):
    """Trained-model records go to a temporary user folder, never to the real home."""
    monkeypatch.setenv("XRAY_ATLAS_HOME", str(tmp_path_factory.mktemp("xray-atlas-home")))
