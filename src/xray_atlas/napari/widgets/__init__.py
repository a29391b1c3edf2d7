"""The dock widgets. Importing them keeps triton out of napari's process (see .._guards)."""

from .._guards import keep_triton_out

keep_triton_out()
