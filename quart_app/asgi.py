"""The Hypercorn target: ``hypercorn --config hypercorn.toml quart_app.asgi:app``."""

from __future__ import annotations

from .app import create_app

app = create_app()
