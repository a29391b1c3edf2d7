"""Keeping triton out of napari's process.

A CUDA build of torch from PyPI ships triton, and the first use of ``torch._dynamo`` imports
it (a torch optimiser, ``import torchvision``: its ``ops`` register with dynamo). triton loads
its own LLVM; napari's OpenGL has already loaded Mesa's, and the two in one process end in a
segmentation fault (seen with torch 2.14.1 + triton 3.x, napari 0.9.2, PyQt6 under X: a shown
viewer, then ``import triton``). The Training dock therefore trains in a child process, and
the docks mark triton as absent in napari's process, so that torch runs without it (as on a
CPU build) instead of crashing. Nothing here compiles kernels, so nothing is lost; another
plugin that needs triton in the same process would have crashed napari in the same way.
"""

from __future__ import annotations

import sys

__all__ = ["keep_triton_out"]


def keep_triton_out() -> bool:
    """Make ``import triton`` fail with ImportError in this process, unless triton is already
    imported. Returns True when it was kept out (also by an earlier call)."""
    if sys.modules.get("triton", False) is None:
        return True
    if "triton" in sys.modules:
        return False
    sys.modules["triton"] = None  # the import system's own marker for "not importable"
    return True
