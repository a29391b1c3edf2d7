"""``python -m xray_atlas.cli``: the ``xray-atlas`` command (torchrun starts it this way)."""

import sys

from . import main

sys.exit(main())
