"""``python -m quart_app.serve``: the entry ``make run`` uses (see quart_app.serving)."""

from __future__ import annotations

import sys

from .serving.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
