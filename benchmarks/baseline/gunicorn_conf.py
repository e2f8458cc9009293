"""gunicorn settings for the Flask baseline: 2 sync workers, no access log.

Run from the repository root::

    gunicorn -c benchmarks/baseline/gunicorn_conf.py -b 127.0.0.1:8001 \\
        'benchmarks.baseline.app:create_app()'
"""

from __future__ import annotations

import os
import sys
from typing import Any

workers = int(os.environ.get("BASELINE_WORKERS", "2"))
worker_class = "sync"
bind = ["127.0.0.1:8001"]
backlog = 2048
timeout = 60
accesslog = None
loglevel = "warning"


def on_starting(server: Any) -> None:
    """Create the tables in the master, so the two workers do not race to do it."""
    sys.path.insert(0, os.getcwd())
    from benchmarks.baseline.app import create_tables

    create_tables()
