#!/usr/bin/env bash
# Shared set-up for tools/run.sh and tools/test.sh: a virtual environment in .venv with
# torch installed first (DEVELOPERS.md: torch==2.13.0 is a local CPU wheel here) with its
# matching torchvision (0.28.0; any other release would pull another torch), then the
# package with its napari and test extras. Safe to run again: it only reinstalls when
# pyproject.toml changed. Also installs the X virtual framebuffer and the X client
# libraries that Qt 6 needs, when missing and when we are root (napari's canvas needs
# OpenGL, which Qt's pure offscreen platform does not provide).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3}"

if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "xray-atlas: Python >= 3.10 is needed (found: $("$py" --version 2>&1))" >&2
    exit 1
fi

apt_pkgs="xvfb libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libgl1
libegl1 libfontconfig1 libdbus-1-3"
if [ "$(uname -s)" = Linux ] && command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for p in $apt_pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "xray-atlas: installing system packages:$missing"
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
        else
            echo "xray-atlas: warning: missing system packages (install them with sudo apt-get install):$missing" >&2
        fi
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "xray-atlas: creating $venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
fi

stamp="$venv/.xray-atlas-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "xray-atlas: installing torch and the package into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" "torchvision==0.28.0"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[all,test]"
    echo "$want" > "$stamp"
fi
