"""xray-atlas: deep learning for X-ray materials characterisation.

The core library (everything but :mod:`xray_atlas.napari`) never imports napari or Qt,
and imports heavy libraries (torch, dask, rosettasciio) only where they are used.
"""

from ._threads import prefer_sleeping_threads

prefer_sleeping_threads()  # before numpy loads: see its docstring

from ._version import __version__  # noqa: E402
from .cube import SpectralCube  # noqa: E402
from .errors import XrayAtlasError  # noqa: E402

__all__ = ["SpectralCube", "XrayAtlasError", "__version__"]
