"""What servers and ``quart --app`` load: ``hypercorn --config hypercorn.toml quart_app.asgi:app``.

The one place where the app (``create_app``, which knows nothing of its server) meets
the server's worker hooks (quart_app/serving/worker_hooks.py) and the command line.
A start-up failure (a bad setting, a database that refuses the URL) is one line on
stderr and exit status 3 (``quart_app.startup.boot``), never a traceback per worker.
"""

from __future__ import annotations

from .app import create_app
from .cli import register_commands
from .serving.worker_hooks import install_worker_hooks
from .startup.boot import build_app

app = build_app(lambda: install_worker_hooks(create_app()))
# `quart --app quart_app.asgi COMMAND` runs the same commands as `quart-app COMMAND`.
register_commands(app)
