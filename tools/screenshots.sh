#!/usr/bin/env bash
# Regenerate the screenshots in docs/images: each dock after its run (tests/napari/test_walk.py,
# docs/images/walk-*.png) and the docs' other pictures (tests/napari/test_docs_screenshots.py,
# test_demo.py). Runs under a private Xvfb when there is no display. Set-up as tools/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup.sh"
cd "$root"
XRAY_ATLAS_DOCS_SCREENSHOTS=1 "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/napari/test_walk.py tests/napari/test_docs_screenshots.py tests/napari/test_demo.py "$@"
ls -l docs/images/*.png
