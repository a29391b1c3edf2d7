#!/usr/bin/env bash
# docs/images/export-overview.png: the overview sheet of the demo painting, made the way a user
# makes one (docs/formats.md, "Export"): simulate the painting, paint its maps with the default
# model, export the sheet. The synthetic painting states its 500 um step, which the maps file
# carries on (pixel_size_um) and the sheet's scale bars read. Set-up as tools/test.sh; set PYTHON
# to use another interpreter (a worktree without .venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    bash "$root/tools/setup.sh"
    PYTHON="$root/.venv/bin/python"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
xa() { "$PYTHON" -m xray_atlas.cli "$@"; }
xa simulate painting "$work/painting.h5" --height 96 --width 128 --seed 0  # the demo painting's size and seed
xa maps "$work/painting.h5" "$work/maps.h5" --device cpu
xa export "$work/maps.h5" "$work/export" --format sheet
cp "$work/export/overview.png" "$root/docs/images/export-overview.png"
ls -l "$root/docs/images/export-overview.png"
