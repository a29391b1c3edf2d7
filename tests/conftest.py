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

#: Real measured files carried in the repository: PyMca's (MIT) spectra and our own bad file.
DATA = Path(__file__).resolve().parent / "data"
#: Where the Bruker files live (GPL-3.0, from rosettasciio's tests, not carried: see
#: tests/data/NOTICE.md); tests that need them are skipped when the folder is absent.
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


class RealFiles:
    """``real_data / name``: the file from tests/data, else from ../shared/data/real, else the
    test is skipped naming the file."""

    def __truediv__(self, name: str) -> Path:
        for folder in (DATA, REAL):
            if (folder / name).is_file():
                return folder / name
        pytest.skip(f"{name} is in neither tests/data nor ../shared/data/real")

    def iterdir(self) -> list[Path]:
        """Every real data file there is (tests/data first), each name once."""
        found: dict[str, Path] = {}
        for folder in (DATA, REAL):
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    found.setdefault(path.name, path)
        return list(found.values())


@pytest.fixture(scope="session")
def real_data() -> RealFiles:
    """The real measured files (tests/data, and ../shared/data/real where present)."""
    return RealFiles()


@pytest.fixture()
def small_cube_h5(tmp_path):
    """A small contract-layout HDF5 cube with known random counts; returns (path, counts)."""
    from xray_atlas.io.hdf5 import write_cube

    rng = np.random.default_rng(1)
    counts = rng.poisson(3.0, size=(23, 17, 64)).astype(np.uint16)
    path = tmp_path / "cube.h5"
    write_cube(
        path,
        counts,
        energy_offset_kev=-0.5,
        energy_gain_kev=0.02,
        maps={"Fe-K": counts.sum(-1).astype(np.float32)},
        attrs={"title": "test"},
        chunk_pixels=4,
    )
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
