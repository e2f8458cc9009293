"""quart_app plus one unauthenticated ``GET /noop``, for the auth-overhead scenario.

The package has no route that does no work (/healthz asks the database), so the runner
serves this wrapper to compare /protected with a no-op on the *same* app and server::

    hypercorn --config hypercorn.toml 'benchmarks.peers.quart_noop:create_app()'
"""

from __future__ import annotations

from typing import Any


def create_app(**config: Any) -> Any:
    """Build quart_app from the environment (and `config`) and add ``GET /noop``."""
    from quart_app.app import create_app as create_quart_app

    app = create_quart_app(config or None)

    async def noop() -> dict[str, str]:
        return {"status": "ok"}

    app.add_url_rule("/noop", "bench_noop", noop, methods=["GET"])
    return app
