"""The one exception type that reaches users as a one-line message."""

from __future__ import annotations

import os

__all__ = ["XrayAtlasError"]


class XrayAtlasError(ValueError):
    """Bad input that the user can fix: a file, a parameter, a calibration.

    The message is one line and names the file or parameter. The command line prints it
    without a traceback; napari shows it as a notification.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str or os.PathLike, optional
        The file concerned; it is put in front of the message.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        text = " ".join(str(message).split())
        #: The message without the path, for displays too narrow for both (napari toasts).
        self.reason = text
        if self.path is not None:
            text = f"{self.path}: {text}"
        super().__init__(text)
