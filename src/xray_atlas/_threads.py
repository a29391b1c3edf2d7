"""How the numerical libraries' worker threads wait (docs/dev/architecture.md, import order)."""

from __future__ import annotations

import os

__all__ = ["prefer_sleeping_threads"]

#: Environment values read when OpenBLAS (numpy) and OpenMP (torch) load.
SLEEPING_THREADS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}


def prefer_sleeping_threads() -> dict[str, str]:
    """Let numpy's OpenBLAS and torch's OpenMP worker threads sleep at once after a call.

    Both pools keep their threads spinning after a call by default, and on a few cores the
    two starve each other: maps-fit on 2 cores took 16.2 s against 12.8 s with threads that
    sleep, a training step beside numpy work 68 against 31 ms (docs/benchmarks.md). The
    libraries read these variables when they load, so this must run before numpy is imported:
    ``import xray_atlas`` calls it first. A value the user set is kept. Returns the values
    in force.
    """
    for name, value in SLEEPING_THREADS.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in SLEEPING_THREADS}
