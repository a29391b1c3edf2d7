"""xray-atlas: deep learning for X-ray materials characterisation.

The core library (everything but :mod:`xray_atlas.napari`) never imports napari or Qt,
and imports heavy libraries (torch, dask, rosettasciio) only where they are used.
"""

from ._version import __version__
from .cube import SpectralCube
from .errors import XrayAtlasError

__all__ = ["SpectralCube", "XrayAtlasError", "__version__"]
