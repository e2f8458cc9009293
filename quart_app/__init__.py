"""quart_app: the async Quart port of the Flask + Flask-JWT-Extended REST API."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
