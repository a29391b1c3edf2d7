"""Physics engine speed: random training spectra per second, and a 128 x 128 x 4096 painting.

Usage::

    python benchmarks/bench_physics.py

Targets (issue: physics engine): >= 20,000 spectra/s on 2 cores; a 128 x 128 x 4096
painting in <= 10 s. Each figure is the best of three runs, after a warm-up call that builds
the cached cross sections, templates and scatter spectra (reported separately).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    import numpy as np

    from xray_atlas.physics.generator import SpectrumGenerator
    from xray_atlas.physics.painting import synthetic_painting

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    t = time.perf_counter()
    gen = SpectrumGenerator()
    gen(64, 0)
    print(f"generator set-up (cross sections, templates, scatter backgrounds): {time.perf_counter() - t:.1f} s")
    for n, workers in ((20000, 1), (20000, 2), (40000, 2)):
        dt = best(lambda: gen(n, 1, workers=workers))
        print(f"random spectra, batch {n}, {workers} process(es): {n / dt:8.0f} spectra/s ({dt:.2f} s)")
    # cold: a fresh process, nothing cached
    code = (
        "import time; t = time.perf_counter(); from xray_atlas.physics.painting import synthetic_painting; "
        "synthetic_painting(128, 128); print(time.perf_counter() - t)"
    )
    cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    warm = best(lambda: synthetic_painting(128, 128, seed=1))
    print(
        f"128 x 128 x 4096 painting: {cold:.1f} s in a fresh process (imports and caches included), {warm:.1f} s warm"
    )


if __name__ == "__main__":
    main()
