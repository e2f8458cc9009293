"""CORS through quart-cors: off unless ``CORS_ALLOWED_ORIGINS`` names the origins to allow.

Off means no ``Access-Control-*`` header at all, so browsers keep every other origin
from reading our responses. Tokens travel in the ``Authorization`` header, not in
cookies, so credentials are never allowed: a page from an allowed origin can only use
tokens it already holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from quart import Quart
from quart_cors import cors

#: ``scheme://host[:port]``: what a browser sends in ``Origin`` (no path, no slash).
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")

ALLOW_HEADERS = ("Authorization", "Content-Type")
ALLOW_METHODS = ("GET", "POST", "PUT", "OPTIONS")
#: Headers a cross-origin script may read: the throttling answers.
EXPOSE_HEADERS = ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
PREFLIGHT_MAX_AGE = timedelta(minutes=10)


def allowed_origins(value: str | Iterable[str] | None) -> list[str]:
    """Parse ``CORS_ALLOWED_ORIGINS``: a comma-separated string or a list; ``*`` for any.

    A malformed entry stops start-up: an origin with a path or a trailing slash never
    matches what browsers send, and a CORS set-up that silently allows nothing (or the
    wrong thing) is worse than one that refuses to start.
    """
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = [item.strip() for item in items if item.strip()]
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise RuntimeError(
                f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin like"
                " 'https://app.example.com' (scheme://host[:port], no path) or '*'"
            )
    return origins


def init_cors(app: Quart) -> None:
    """Answer cross-origin requests from the configured origins only (none by default)."""
    origins = allowed_origins(app.config.get("CORS_ALLOWED_ORIGINS"))
    if not origins:
        return
    cors(
        app,
        allow_origin=origins,
        allow_credentials=False,
        allow_headers=ALLOW_HEADERS,
        allow_methods=ALLOW_METHODS,
        expose_headers=EXPOSE_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
    )
