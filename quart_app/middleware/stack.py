"""The ASGI layers around the app, stacked in one place (innermost first)."""

from __future__ import annotations

from hypercorn.typing import ASGIFramework
from quart import Quart

from .claims_fast_path import claims_fast_path
from .connection import DrainRequestBody, ServingHeaders


def wrap_asgi(app: Quart) -> None:
    """Wrap ``app.asgi_app``:

    1. :class:`DrainRequestBody`: a request body still arriving when the app answers
       early is drained (or the connection closed, saying so) for HTTP/1.1 keep-alive;
    2. the claims fast path: claims-only routes answered for cached tokens before any
       layer below it;
    3. :class:`ServingHeaders`, around everything: ``Connection: close`` while draining,
       HSTS, ambiguous framing refused, every request known to the drain.
    """
    config = app.config
    asgi: ASGIFramework = DrainRequestBody(app.asgi_app, max_body_size=config["MAX_CONTENT_LENGTH"])
    asgi = claims_fast_path(app, asgi)
    app.asgi_app = ServingHeaders(  # type: ignore[method-assign]
        asgi, hsts=config["STRICT_TRANSPORT_SECURITY"] or ""
    )
