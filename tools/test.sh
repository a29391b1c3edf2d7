#!/usr/bin/env bash
# The whole test suite. Step 0 checks lint and formatting with ruff; step 1 runs the core tests with every Qt/napari import refused
# (proving the core never needs them); step 2 runs the napari tests under a virtual X
# display. Extra arguments go to both pytest calls.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup.sh"
cd "$root"
py="$root/.venv/bin/python"
echo "== lint and format (ruff, pyproject.toml's rules)"
"$py" -m ruff check src tests tools benchmarks docs
"$py" -m ruff format --check src tests tools benchmarks docs
echo "== core tests (Qt and napari imports blocked)"
XRAY_ATLAS_BLOCK_QT=1 "$py" -m pytest tests --ignore=tests/napari -q -p no:pytest-qt -p no:napari -p no:napari-plugin-engine -p no:npe2 "$@"
echo "== napari tests"
"$py" -m pytest tests/napari -q "$@"
