"""The service's use of the extension's claims fast path (``quart_app.jwt.claims_routes``).

Every claims-only route (``GET /protected``, ``/auth/verify``) is answered below Quart
for tokens this worker has verified before; what the service adds to every response of
its own is added here too, so a fast answer is the one Quart would give byte for byte:
``X-Content-Type-Options``, the request id (echoed or new), the request log line and the
metrics. ``FAST_PATH=false`` turns it off; so does CORS (its headers depend on the
request's ``Origin``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypercorn.typing import ASGIFramework, HTTPScope
from quart import Quart

from ..jwt import get_manager
from ..jwt.claims_routes import ClaimsFastPath
from ..observability import observability
from ..observability.logs import REQUEST_ID_HEADER, request_id_from, request_id_var
from ..security.client_address import peer_client

_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_NOSNIFF = (b"x-content-type-options", b"nosniff")
#: What ``security_headers`` (quart_app/security/headers.py) adds to an answer that sets
#: no Cache-Control itself.
_NO_STORE = (b"cache-control", b"no-store")


def claims_fast_path(app: Quart, asgi: ASGIFramework) -> ClaimsFastPath:
    """``asgi`` behind the claims fast path of ``app``, with the service's hooks."""

    def enabled() -> bool:
        return bool(
            app.config.get("FAST_PATH", True) and not app.config.get("CORS_ALLOWED_ORIGINS")
        )

    def headers(scope: HTTPScope) -> list[tuple[bytes, bytes]]:
        sent: bytes | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                sent = value
                break
        rid = request_id_from(sent.decode("latin-1") if sent else None)
        request_id_var.set(rid)  # this request's task: the log line below carries it
        return [_NOSNIFF, _NO_STORE, (_REQUEST_ID, rid.encode())]

    def observe(
        scope: HTTPScope, rule: str, claims: Mapping[str, Any], status: int, elapsed: float
    ) -> None:
        path = scope["path"]
        sub = claims.get(get_manager(app).config.identity_claim_key)

        def client() -> str:
            # As client_address(): the peer, or what trusted proxies report.
            peer = (scope.get("client") or ("<local>",))[0]
            forwarded = [
                value.decode("latin-1")
                for name, value in scope["headers"]
                if name == b"x-forwarded-for"
            ]
            return peer_client(app, peer, forwarded)

        observability(app).record(
            method=scope["method"],
            path=path,
            route=rule,
            status=status,
            elapsed=elapsed,
            endpoint=None,
            verified=True,
            client=client,
            user_id=None if sub is None else str(sub),
        )

    return ClaimsFastPath(asgi, app, enabled=enabled, headers=headers, observe=observe)
