"""The one place where files are written: destination checks, the overwrite policy, atomic
renames and file modes.

Every writer of the package (result files, cubes, model files, resume states, images) goes
through :func:`check_destination` and :func:`atomic_file` (or :func:`atomic_folder`), so the
rules hold everywhere:

* an input is never written over, and a read-only file is never replaced;
* an existing file is replaced only when the caller allows it (``overwrite=True``; the command
  line passes ``--overwrite``);
* a file appears under its final name only when complete (written beside it, then renamed);
* files get the mode the user's umask gives (``0o666 & ~umask``), not ``mkstemp``'s 0600, so
  colleagues sharing a folder can read the results.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import XrayAtlasError

__all__ = [
    "check_input",
    "check_destination",
    "writable",
    "atomic_file",
    "atomic_folder",
    "file_mode",
    "same_file",
    "NAME_MAX",
]

#: Longest file name most file systems take (bytes).
NAME_MAX = 255
_TMP_KEEP = 60  # characters of the final name kept in the temporary one, which must fit NAME_MAX too


def _umask() -> int:
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(old)
    return old


def file_mode(*, folder: bool = False) -> int:
    """The mode a new file (or folder) gets from the umask: 0o666 (0o777) without its bits."""
    return (0o777 if folder else 0o666) & ~_umask()


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same existing file or folder."""
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def writable(path: str | os.PathLike) -> bool:
    """Whether ``path`` may be written: the system allows it and its mode has a write bit (a
    ``chmod 444`` file or ``chmod 555`` folder is read-only here even for root)."""
    try:
        return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & 0o222)
    except OSError:
        return False


def check_input(path: str | os.PathLike, *, folder_ok: bool = False) -> Path:
    """Refuse an input that is missing, or that is not a regular file (a FIFO or device would
    block or stream forever; a folder only where ``folder_ok``, e.g. a Zarr store)."""
    path = Path(os.fspath(path))
    if not path.exists():
        raise XrayAtlasError("no such file" + (" (a link to a missing file)" if path.is_symlink() else ""), path=path)
    if path.is_dir():
        if not folder_ok:
            raise XrayAtlasError("is a folder, not a file", path=path)
    elif not path.is_file():
        raise XrayAtlasError(
            "is not a regular file (a pipe, socket or device); copy the data to a file first", path=path
        )
    if not os.access(path, os.R_OK):
        raise XrayAtlasError("file is not readable (permission denied)", path=path)
    return path


def check_destination(
    path: str | os.PathLike,
    *,
    inputs: tuple[str | os.PathLike, ...] = (),
    overwrite: bool = True,
    folder_ok: bool = False,
) -> Path:
    """Refuse an output path before any work starts, naming the path.

    Parameters
    ----------
    path : path-like
        The file to write.
    inputs : tuple of path-like
        Files the output is computed from; writing over one of them is always refused.
    overwrite : bool
        Whether an existing file may be replaced (the command line's ``--overwrite``). A
        read-only file is never replaced.
    folder_ok : bool
        Whether ``path`` may be an existing folder (a model folder).

    Returns
    -------
    Path
    """
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise XrayAtlasError("output folder does not exist", path=folder)
    if not writable(folder):
        raise XrayAtlasError("output folder is not writable", path=folder)
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise XrayAtlasError(
            f"output file name is too long ({len(os.fsencode(path.name))} bytes; at most {NAME_MAX})", path=path
        )
    if path.is_dir() and not folder_ok:
        raise XrayAtlasError("output path is a folder", path=path)
    for src in inputs:
        if same_file(src, path):
            raise XrayAtlasError("output would overwrite the input file", path=path)
    if path.exists() or path.is_symlink():
        if not path.exists() or (not path.is_file() and not path.is_dir()):
            raise XrayAtlasError("output path exists and is not a regular file", path=path)
        if path.is_file() and not writable(path):
            raise XrayAtlasError("output exists and is read-only; it is not replaced", path=path)
        if not overwrite and not (path.is_dir() and not any(path.iterdir())):
            raise XrayAtlasError("output exists; give --overwrite to replace it, or choose another name", path=path)
    return path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, suffix: str = ".tmp", what: str = "file") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; rename it to ``path`` when the block ends.

    On any exception the temporary file is removed and ``path`` is left as it was. The file
    gets the umask's mode. Check the destination first (:func:`check_destination`).
    """
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:_TMP_KEEP]}.", suffix=suffix, dir=folder)
    except OSError as err:
        raise XrayAtlasError(f"cannot write in this folder ({err.strerror or err})", path=folder) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise XrayAtlasError(f"could not write the {what} ({err.strerror or err})", path=path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, what: str = "folder") -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` (which must not exist); rename it to ``path``
    when the block ends, with the umask's modes on it and the files in it."""
    import shutil

    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name[:_TMP_KEEP]}.", dir=folder))
    except OSError as err:
        raise XrayAtlasError(f"cannot write in this folder ({err.strerror or err})", path=folder) from None
    try:
        yield tmp
        for p in tmp.rglob("*"):
            os.chmod(p, file_mode(folder=p.is_dir()))
        os.chmod(tmp, file_mode(folder=True))
        os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise XrayAtlasError(f"could not write the {what} ({err.strerror or err})", path=path) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
