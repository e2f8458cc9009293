"""Headers every answer of the app's views carries (the claims fast path sends the same:
quart_app/middleware/claims_fast_path.py)."""

from __future__ import annotations

from quart import Quart, Response


async def security_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Answers carry tokens or depend on one (RFC 6749 5.1, RFC 9111): no cache keeps
    # them unless the view says otherwise (the JWKS, the OAuth metadata).
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_security_headers(app: Quart) -> None:
    app.after_request(security_headers)
