"""Notifications in a conservator's words: one short toast, the reason first.

napari's toasts show about 60 characters before they fold. A message that starts with a long
path hides its reason, so errors are turned round here: the reason first, then the file's name;
the full text goes to the dock's details log (:class:`~._workers.JobBar`).
"""

from __future__ import annotations

import os
import re

__all__ = ["error_text", "notify_error", "notify_warning", "notify"]

# "<path>: <reason>" as XrayAtlasError and the io readers write it
_PATH_FIRST = re.compile(r"^(?P<path>(?:[A-Za-z]:)?[^:\n]*[/\\.][^:\n]*?):\s+(?P<reason>.+)$", re.S)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or bool(re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{0,5}", os.path.splitext(text)[1]))


def error_text(err: BaseException | str) -> str:
    """A one-line error with its reason first and the file's name (not its folder) after it.

    Parameters
    ----------
    err : Exception or str
        An :class:`~xray_atlas.errors.XrayAtlasError` (its ``path`` and ``reason`` are used),
        any other exception (its type name is kept, since it is not a message written for
        users), or a message.
    """
    from ..errors import XrayAtlasError

    if isinstance(err, XrayAtlasError):
        path, reason = err.path, getattr(err, "reason", str(err))
        if path is None:
            m = _PATH_FIRST.match(str(err))
            if m and _looks_like_path(m["path"]):
                path, reason = m["path"], m["reason"]
    elif isinstance(err, BaseException):
        path, reason = None, f"{type(err).__name__}: {err}"
    else:
        path, reason = None, str(err)
        m = _PATH_FIRST.match(reason)
        if m and _looks_like_path(m["path"]):
            path, reason = m["path"], m["reason"]
    reason = " ".join(reason.split())
    if path:
        name = os.path.basename(os.path.normpath(path)) or path
        return f"{reason} ({name})"
    return reason


def notify_error(err: BaseException | str, *, log=None) -> str:
    """Show ``err`` as one napari error toast (reason first); append the full text to ``log``
    (a :class:`~._workers.JobBar` or None). Returns the toast's text."""
    from napari.utils.notifications import show_error

    text = error_text(err)
    if log is not None:
        log.log(f"error: {err}")
    show_error(text)
    return text


def notify(text: str, *, log=None, details: list[str] | tuple[str, ...] = ()) -> None:
    """One info toast; ``details`` (notes of a run) go to ``log`` only."""
    from napari.utils.notifications import show_info

    if log is not None:
        log.log(text)
        for line in details:
            log.log(f"  {line}")
    show_info(text)


def notify_warning(err: BaseException | str, *, log=None) -> str:
    """Like :func:`notify_error`, as a warning toast."""
    from napari.utils.notifications import show_warning

    text = error_text(err)
    if log is not None:
        log.log(f"warning: {err}")
    show_warning(text)
    return text
