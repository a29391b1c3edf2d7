"""Starting spawned child processes from a GUI or a script."""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["start_without_main"]


def start_without_main(process: Any) -> None:
    """Start a spawned ``process`` without running the parent's main script again in it.

    multiprocessing's spawn re-runs the parent's ``__main__`` file in the child (as
    ``__mp_main__``) so that functions defined there can be unpickled. The children here need
    only xray_atlas modules, and a script without an ``if __name__ == "__main__"`` guard
    (napari's own examples: ``napari.Viewer()`` ... ``napari.run()``) would open a second
    viewer in each; the ``napari`` command's script imports napari in it. Hiding ``__main__``
    while the process starts (the spawn reads it then, and only then) leaves the child a bare one.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        process.start()
    finally:
        sys.modules["__main__"] = main
