"""xray-atlas: deep learning for X-ray materials characterisation.

The core library (everything but :mod:`xray_atlas.napari`) never imports napari or Qt,
and imports heavy libraries (torch, dask, rosettasciio) only where they are used.
"""

import os

# numpy's OpenBLAS and torch's OpenMP each keep their worker threads spinning after a call, and
# on a few cores the two pools starve each other: maps-fit on 2 cores took 16.2 s against
# 12.8 s with threads that sleep at once, a training step beside numpy work 68 against 31 ms
# (docs/benchmarks.md). Read when the libraries load, so set before numpy; a user's value wins.
for _name, _value in (("OMP_WAIT_POLICY", "PASSIVE"), ("OPENBLAS_THREAD_TIMEOUT", "4")):
    os.environ.setdefault(_name, _value)
del _name, _value

from ._version import __version__  # noqa: E402
from .cube import SpectralCube  # noqa: E402
from .errors import XrayAtlasError  # noqa: E402

__all__ = ["SpectralCube", "XrayAtlasError", "__version__"]
