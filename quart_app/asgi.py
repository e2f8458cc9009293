"""The Hypercorn target: ``hypercorn --config hypercorn.toml quart_app.asgi:app``.

A start-up failure (a bad setting, a database that refuses the URL) is one line on
stderr and exit status 3 (``quart_app.startup.boot``), never a traceback per worker.
"""

from __future__ import annotations

from .app import create_app
from .cli import register_commands
from .startup.boot import build_app

app = build_app(create_app)
# `quart --app quart_app.asgi COMMAND` runs the same commands as `quart-app COMMAND`.
register_commands(app)
