#!/usr/bin/env bash
# The main job: napari with the xray-atlas plugin docked, a demo painting and the default
# models. Extra arguments go to `xray-atlas demo` (for example --screenshot out.png).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup.sh"
exec "$root/.venv/bin/xray-atlas" demo "$@"
