"""A display for headless runs: a private Xvfb server when there is no screen.

napari draws its canvas with OpenGL, which Qt's pure ``offscreen`` platform does not
provide; an X virtual framebuffer (Debian package ``xvfb``) does, with Mesa.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys

__all__ = ["ensure_display"]


def ensure_display() -> str:
    """Make sure Qt can draw OpenGL: start Xvfb if no display is set (Linux only).

    Returns
    -------
    str
        ``"existing"``, ``"xvfb"``, or ``"offscreen"`` (no Xvfb found: widgets render but
        the napari canvas stays blank).
    """
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform != "linux":
        return "existing"
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        return "offscreen"
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    number = b""
    with os.fdopen(read_fd, "rb") as pipe:
        while not number.endswith(b"\n"):
            chunk = pipe.read(1)
            if not chunk:
                break
            number += chunk
    if not number.strip():
        proc.terminate()
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        return "offscreen"
    os.environ["DISPLAY"] = f":{number.decode().strip()}"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    atexit.register(proc.terminate)
    return "xvfb"
