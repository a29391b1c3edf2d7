"""napari sample data: a synthetic painting with its true maps and pigment regions.

The painting comes from the physics engine (a few seconds the first time) and is kept in the
user's cache folder, so later openings read it lazily in milliseconds. When it is not cached
yet, the sample returns a placeholder at once and a worker makes the painting, then swaps
the real layers in: the window never waits on the simulation.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .._cache import cache_dir
from ..io import read
from ._layers import cube_layer_data, physical_grid, pixel_size_of, show_scale_bar

__all__ = [
    "synthetic_painting",
    "demo_painting_path",
    "ensure_demo_painting",
    "painting_layers",
    "diffraction_sample",
    "radiograph_sample",
    "micrograph_sample",
]

SAMPLE_NAME = "Synthetic painting"
SHAPE = (96, 128)


#: Bumped when the demo painting's file changes (2: ``pixel_size_um``), so that an older cached one is not reused.
PAINTING_FORMAT = 2


def demo_painting_path(seed: int = 0) -> Path:
    """Where the demo painting of this package version is cached."""
    return cache_dir() / f"painting-{SHAPE[0]}x{SHAPE[1]}-seed{seed}-{PAINTING_FORMAT}.h5"


def ensure_demo_painting(seed: int = 0) -> Path:
    """Make (once) and return the cached demo painting file."""
    from ..physics.painting import synthetic_painting as make_painting

    path = demo_painting_path(seed)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        make_painting(*SHAPE, seed=seed).write(path)  # atomic: a half-made file never appears
    return path


def painting_layers(path: Path) -> list[tuple]:
    """Layer data of a painting file: counts (with the cube), true maps (hidden), regions."""
    cube = read(path)
    cube.name = SAMPLE_NAME
    layers = cube_layer_data(cube)
    with h5py.File(path, "r") as f:
        if "regions" in f:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs.get("region_names", [])]
            layers.append(
                (
                    np.asarray(f["regions"][()]),
                    {
                        "name": "pigment regions",
                        "visible": False,
                        **physical_grid(pixel_size_of(cube)),
                        "metadata": {"xray_atlas": {"kind": "regions", "names": names}},
                    },
                    "labels",
                )
            )
    if pixel_size_of(cube) is not None:
        show_scale_bar()
    return layers


def synthetic_painting() -> list[tuple]:
    """napari sample: the cached painting, or a placeholder while a worker makes it."""
    path = demo_painting_path()
    if path.exists():
        return painting_layers(path)
    _make_in_background()
    placeholder = np.zeros(SHAPE, np.float32)
    return [
        (
            placeholder,
            {
                "name": f"{SAMPLE_NAME} (simulating...)",
                "contrast_limits": (0.0, 1.0),
                "metadata": {"xray_atlas": {"kind": "placeholder"}},
            },
            "image",
        )
    ]


def _make_in_background():
    import napari
    from napari.qt.threading import create_worker

    from ._notify import notify_error

    worker = create_worker(ensure_demo_painting, _progress={"desc": "Simulating the demo painting"})

    def done(path: Path) -> None:
        viewer = napari.current_viewer()
        if viewer is None:
            return
        for layer in list(viewer.layers):
            if layer.metadata.get("xray_atlas", {}).get("kind") == "placeholder":
                viewer.layers.remove(layer)
        for data, kwargs, kind in painting_layers(path):
            getattr(viewer, f"add_{kind}")(data, **kwargs)

    worker.returned.connect(done)
    worker.errored.connect(
        lambda err: notify_error(f"the demo painting could not be made: {type(err).__name__}: {err}")
    )
    worker.start()
    return worker


def diffraction_sample() -> list[tuple]:
    """A simulated diffuse-scattering image (span 3, 96 x 96 lattice, 64 lots of 48 x 48)
    with its lattice's encoding in the layer metadata; made in about a second. Like along x,
    unlike along y: short-range order that shows as clear diffuse streaks."""
    from ..physics.lattice import diffraction_image, simulate_lattices

    rng = np.random.default_rng(3)
    couplings = np.array([0.35, 0.0, -0.25, 0.0, 0.1, 0.0, 0.0, 0.0])  # offsets (1,0), (2,0), (0,1), ...
    batch = simulate_lattices(span=3, couplings=couplings, size=96, sweeps=200, rng=rng)
    image = diffraction_image(batch.lattices[0], lot=48, n_lots=64, rng=rng)
    meta = {"span": 3, "encoding": batch.encoding[0].tolist()}
    return [(image, {"name": "Diffraction image (span 3)", "colormap": "magma", "metadata": meta}, "image")]


def radiograph_sample() -> list[tuple]:
    """Two simulated 50 kV radiographs as a stack: a 2 mm Al 2017 plate and a 7 cm Al 1050
    wedge (16-bit, not flat-fielded), with what they show in the layer metadata."""
    from ..physics.radiograph import RadiographConfig, radiograph

    cfg = RadiographConfig(size=256, flat_field_share=0.0)
    a = radiograph("Al2017", config=cfg, kind="plate", thickness_mm=2.0, rng=11, output="uint16")
    b = radiograph("Al1050", config=cfg, kind="wedge", rng=12, output="uint16")
    meta = {"objects": [f"{r.alloy} {r.kind} {r.thickness_mm:g} mm" for r in (a, b)]}
    return [
        (
            np.stack([a.image, b.image]),
            {"name": "Radiographs (Al 2017 plate, Al 1050 wedge)", "colormap": "gray", "metadata": meta},
            "image",
        )
    ]


def micrograph_sample() -> list[tuple]:
    """One synthetic micrograph per particle-morphology class as a stack, the class names in
    the layer metadata (plane order)."""
    from ..physics.micrograph import MORPHOLOGIES, micrograph

    rng = np.random.default_rng(8)
    stack = np.stack([micrograph(m, size=256, rng=rng) for m in MORPHOLOGIES])
    return [
        (
            stack,
            {"name": "Micrographs (8 morphologies)", "colormap": "gray", "metadata": {"classes": list(MORPHOLOGIES)}},
            "image",
        )
    ]
