"""napari sample data: a synthetic painting with its true maps and pigment regions."""

from __future__ import annotations

from ..cube import SpectralCube
from ..physics.painting import synthetic_painting as make_painting
from ._layers import cube_layer_data

__all__ = ["synthetic_painting", "painting_cube"]


def painting_cube(seed: int = 0, height: int = 96, width: int = 128) -> tuple[SpectralCube, object]:
    """A synthetic painting as an in-memory SpectralCube (with true maps) and the painting."""
    painting = make_painting(height, width, seed=seed)
    cube = SpectralCube(
        painting.counts,
        offset_kev=painting.energy_offset_kev,
        gain_kev=painting.energy_gain_kev,
        metadata=dict(painting.attrs),
        reference_maps=painting.maps,
        name="Synthetic painting",
    )
    return cube, painting


def synthetic_painting() -> list[tuple]:
    """Layer data: total counts (with the cube), true maps (hidden) and pigment regions."""
    cube, painting = painting_cube()
    layers = cube_layer_data(cube)
    layers.append(
        (painting.regions, {"name": "pigment regions", "visible": False,
                            "metadata": {"xray_atlas": {"kind": "regions", "names": painting.region_names}}}, "labels")
    )
    return layers
