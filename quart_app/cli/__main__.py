"""``python -m quart_app.cli COMMAND``: the same as ``quart-app COMMAND``."""

from __future__ import annotations

import sys

from . import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
