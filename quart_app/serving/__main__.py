"""``python -m quart_app.serving``: the entry ``make run`` uses (see quart_app.serving)."""

from __future__ import annotations

import sys

from .supervisor import main

if __name__ == "__main__":
    sys.exit(main())
