"""quart_app whose ``/auth/verify`` answers 200 without looking at the token: the ceiling.

The gateway scenario puts nginx ``auth_request`` in front of three verifiers; this one
costs what the server (Hypercorn, hypercorn.toml) costs with no verification at all: the
answer is sent by a bare ASGI callable in front of the app, where quart_app's claims fast
path also sits. Every other route is quart_app's (so /register and /login work)::

    hypercorn --config hypercorn.toml 'benchmarks.peers.verify_ceiling:create_app()'
"""

from __future__ import annotations

from typing import Any

_HEADERS = [(b"content-length", b"0"), (b"x-auth-subject", b"0")]


def create_app(**config: Any) -> Any:
    from quart_app.app import create_app as create_quart_app

    app = create_quart_app(config or None)
    inner = app.asgi_app

    async def ceiling(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/auth/verify":
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await inner(scope, receive, send)

    app.asgi_app = ceiling  # type: ignore[method-assign]  # Quart's middleware hook
    return app
