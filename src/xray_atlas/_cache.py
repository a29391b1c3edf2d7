"""The user's cache folder: files this package computes once and reads back afterwards (the
demo painting, SpekPy's tube spectra).

Everything here can be made again from the installed packages alone; nothing is downloaded.
A cache that cannot be written (a read-only home) only costs the time of computing again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._version import __version__

__all__ = ["cache_dir", "cached_arrays"]


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/xray-atlas/<version>`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xray-atlas" / __version__


def cached_arrays(kind: str, key: tuple, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``compute()`` returns, kept in the cache folder under ``kind`` and a hash of
    ``key`` (which must name everything the result depends on, versions included).

    A missing, unreadable or mismatched file is computed again and replaced atomically (a
    half-written file never appears under the final name)."""
    digest = hashlib.sha256(repr((kind, key)).encode()).hexdigest()[:24]
    path = cache_dir() / kind / f"{digest}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["__key__"]) == repr(key):
                return {name: f[name] for name in f.files if name != "__key__"}
    except (OSError, KeyError, ValueError):
        pass
    out = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.part")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, __key__=np.array(repr(key)), **out)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # no cache: the next process computes again
    return out
