"""Synthetic bright-field electron micrographs of nanoparticles in eight morphology classes.

Study 002 classified oxide nanomaterials in private microscope images; these images stand in
for them so the pipeline (dataset tools, training, activation maps) can be run and tested
without private data. Each class differs in particle shape, size, aggregation and contrast,
as real nanomaterial classes do; everything else varies at random: particle count, position,
orientation, magnification within the class's range, the amorphous support film, dose
(shot noise), focus (blur), brightness and contrast. Particles are projected as mass
thickness and imaged as exp(-k t) (amplitude contrast).
"""

from __future__ import annotations

import numpy as np

from ..errors import XrayAtlasError

__all__ = ["MORPHOLOGIES", "micrograph", "micrographs"]

#: Class names.
MORPHOLOGIES = (
    "spheres-small",
    "spheres-large",
    "rods",
    "cubes",
    "hexagonal-plates",
    "aggregates",
    "core-shell",
    "porous",
)


def _disc(yy, xx, cy, cx, r):
    """Projected thickness of a sphere (a half-ellipse profile)."""
    d2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / max(r, 0.5) ** 2
    return 2 * r * np.sqrt(np.clip(1 - d2, 0, None))


def _polygon(yy, xx, cy, cx, r, sides, angle, aspect=1.0):
    """A flat regular polygon (sides >= 3) or a rectangle of the given aspect (sides == 4)."""
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    if sides == 4:
        return ((np.abs(u) <= r * aspect) & (np.abs(v) <= r)).astype(float)
    theta = np.arctan2(v, u)
    sector = np.pi / sides
    rho = np.cos(sector) / np.cos((theta % (2 * sector)) - sector)
    return (np.hypot(u, v) <= r * rho).astype(float)


def _smooth_noise(rng, n, scale):
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal((n, n)), scale, mode="wrap")
    return f / max(float(f.std()), 1e-12)


def micrograph(morphology: str, *, size: int = 128, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """One (size, size) float32 micrograph of particles of ``morphology`` (one of
    :data:`MORPHOLOGIES`)."""
    if morphology not in MORPHOLOGIES:
        raise XrayAtlasError(f"morphology={morphology!r}; choose one of {', '.join(MORPHOLOGIES)}")
    if not 32 <= size <= 2048:
        raise XrayAtlasError(f"size={size} must lie in 32-2048 pixels")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = size
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    s = n / 128 * rng.uniform(0.8, 1.25)  # magnification
    t = np.zeros((n, n))

    def centre():
        return rng.uniform(0, n, size=2)

    if morphology == "spheres-small":
        for _ in range(rng.integers(25, 60)):
            t += _disc(yy, xx, *centre(), 3.0 * s * rng.uniform(0.9, 1.1))
    elif morphology == "spheres-large":
        for _ in range(rng.integers(4, 10)):
            t += _disc(yy, xx, *centre(), 11.0 * s * rng.uniform(0.7, 1.3))
    elif morphology == "rods":
        for _ in range(rng.integers(8, 18)):
            t += 4 * s * _polygon(yy, xx, *centre(), 2.2 * s, 4, rng.uniform(0, np.pi), aspect=rng.uniform(3, 6))
    elif morphology == "cubes":
        for _ in range(rng.integers(10, 25)):
            t += 8 * s * _polygon(yy, xx, *centre(), 5.0 * s * rng.uniform(0.8, 1.2), 4, rng.uniform(0, np.pi))
    elif morphology == "hexagonal-plates":
        for _ in range(rng.integers(4, 9)):
            t += 5 * s * _polygon(yy, xx, *centre(), 12 * s * rng.uniform(0.7, 1.3), 6, rng.uniform(0, np.pi))
    elif morphology == "aggregates":
        for _ in range(rng.integers(2, 5)):
            cy, cx = centre()
            for _ in range(rng.integers(15, 35)):
                dy, dx = rng.normal(0, 7 * s, size=2)
                t += _disc(yy, xx, cy + dy, cx + dx, 2.2 * s * rng.uniform(0.8, 1.2))
    elif morphology == "core-shell":
        for _ in range(rng.integers(5, 12)):
            cy, cx = centre()
            r = 8 * s * rng.uniform(0.8, 1.2)
            t += _disc(yy, xx, cy, cx, r) - 0.8 * _disc(yy, xx, cy, cx, 0.7 * r)
    else:  # porous: a sponge of connected material with holes
        field = _smooth_noise(rng, n, 3.0 * s)
        t += 10 * s * (field > rng.uniform(-0.3, 0.3))
    contrast = rng.uniform(0.03, 0.08) / max(s, 1e-3)
    support = 0.05 * _smooth_noise(rng, n, rng.uniform(1.0, 4.0))  # amorphous carbon film
    img = np.exp(-contrast * t) * (1 + support)
    from scipy.ndimage import gaussian_filter

    img = gaussian_filter(img, rng.uniform(0.3, 1.2))  # focus
    dose = np.exp(rng.uniform(np.log(20), np.log(500)))  # electrons per pixel
    img = rng.poisson(np.clip(img, 0, None) * dose) / dose
    return (img * rng.uniform(0.5, 2.0) + rng.uniform(-0.1, 0.1)).astype(np.float32)


def micrographs(
    n: int, *, size: int = 128, seed: int = 0, balance: np.ndarray | list[float] | None = None, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` micrographs: images (n, size, size) and class indices into :data:`MORPHOLOGIES`.
    Classes come in turn (evenly), or drawn at random with one share per class ``balance``
    (a class imbalance). ``progress(done, n)`` is called after every 64 and after the last."""
    if n < 1:
        raise XrayAtlasError(f"n={n} must be >= 1")
    rng = np.random.default_rng(seed)
    if balance is None:
        labels = np.arange(n) % len(MORPHOLOGIES)
        rng.shuffle(labels)
    else:
        p = np.asarray(balance, float)
        if p.shape != (len(MORPHOLOGIES),) or not np.all(p >= 0) or p.sum() <= 0:
            raise XrayAtlasError(f"balance must hold {len(MORPHOLOGIES)} non-negative shares, one per class")
        labels = rng.choice(len(MORPHOLOGIES), size=n, p=p / p.sum())
    images = []
    for i, k in enumerate(labels, start=1):
        images.append(micrograph(MORPHOLOGIES[k], size=size, rng=rng))
        if progress is not None and (i % 64 == 0 or i == n):
            progress(i, n)
    return np.stack(images), labels.astype(np.int64)
