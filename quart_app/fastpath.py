"""A fast path for claims-only routes (``GET /protected``) with already-verified tokens.

Quart spends a few hundred microseconds of Python on every request (request and app
contexts, two tasks, hooks, routing, the response object) before and after a view that
here only reads the token's claims. For a GET on a registered claims-only route, this
ASGI middleware answers by itself when everything is certain:

* the request has no body and exactly one ``Authorization: Bearer <JWT>`` header;
* this worker verified that very token before (the JWT extension's cache) and it has not
  expired; it is an access token; the in-memory revocation mirror does not revoke it;
* no loader takes part in verification (blocklist, claims check, user lookup), tokens
  are read from headers only, and CORS is off.

Anything else (a first sight of a token, an error of any kind, a revoked token) goes to
Quart unchanged, which gives the exact Flask-JWT-Extended answers and fills the cache.
What the fast path sends is what Quart would: the same status, JSON body and headers
(``X-Content-Type-Options``, the request id), with the same request log line and
metrics. ``FAST_PATH=false`` turns it off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

import orjson
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)
from quart import Quart

from .jsonprovider import OPTIONS as JSON_OPTIONS
from .jwt import get_manager
from .observability import observability
from .observability.logs import (
    REQUEST_ID_HEADER,
    request_id_from,
    request_id_var,
)
from .security.throttle import forwarded_address

ClaimsView = Callable[[Mapping[str, Any]], Any]

_BEARER = re.compile(rb"Bearer ([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_STATIC_HEADERS = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]


class ClaimsFastPath:
    """ASGI middleware: see the module docstring."""

    def __init__(
        self, app: ASGIFramework, quart_app: Quart, routes: Mapping[str, ClaimsView]
    ) -> None:
        self.app = app
        self.quart_app = quart_app
        self.routes = dict(routes)
        self._ready: bool | None = None

    def _usable(self) -> bool:
        """Decided once, on the first request: the app's settings no longer change then."""
        if self._ready is None:
            app = self.quart_app
            manager = get_manager(app)
            config = manager.config
            self._ready = bool(
                app.config.get("FAST_PATH", True)
                and not app.config.get("CORS_ALLOWED_ORIGINS")
                and tuple(config.token_location) == ("headers",)
                and config.header_name == "Authorization"
                and config.header_type == "Bearer"
                and config.verified_cache_size
                and not manager.has_custom_checks
                and manager.revocations is not None
            )
        return self._ready

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        view = self.routes.get(scope["path"])
        answer = self._answer(scope, view) if view is not None and self._usable() else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        started, body, rid, claims, forwarded = answer
        headers = [
            *_STATIC_HEADERS,
            (b"content-length", str(len(body)).encode()),
            (_REQUEST_ID, rid.encode()),
        ]
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers, "trailers": False}
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self._observe(scope, claims, rid, forwarded, perf_counter() - started)

    def _answer(
        self, scope: HTTPScope, view: ClaimsView
    ) -> tuple[float, bytes, str, Mapping[str, Any], list[str]] | None:
        """The response body for a certain case, or None: let Quart answer."""
        started = perf_counter()
        token: bytes | None = None
        request_id: bytes | None = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                if token is not None:
                    return None
                token = value
            elif name == _REQUEST_ID:
                request_id = value
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif (name == b"content-length" and value.strip() != b"0") or (
                name == b"transfer-encoding"
            ):
                return None
        match = _BEARER.fullmatch(token.strip()) if token is not None else None
        if match is None:
            return None
        manager = get_manager(self.quart_app)
        verified = manager.cached(match.group(1).decode("ascii"))
        if verified is None:
            return None
        claims = verified[1]
        revocations = manager.revocations
        if (
            claims.get("type") == "refresh"
            or revocations is None
            or revocations.is_revoked(claims, manager.config.identity_claim_key)
        ):
            return None
        # Quart's jsonify ends the body with a newline; so does this, byte for byte.
        body = orjson.dumps(view(claims), option=JSON_OPTIONS) + b"\n"
        rid = request_id_from(request_id.decode("latin-1") if request_id else None)
        return started, body, rid, claims, forwarded

    def _observe(
        self,
        scope: HTTPScope,
        claims: Mapping[str, Any],
        request_id: str,
        forwarded: list[str],
        elapsed: float,
    ) -> None:
        path = scope["path"]
        sub = claims.get(get_manager(self.quart_app).config.identity_claim_key)
        request_id_var.set(request_id)

        def client() -> str:
            # As Quart's request.remote_addr, behind TRUSTED_PROXY_HOPS proxies.
            peer = (scope.get("client") or ("<local>",))[0]
            hops = int(self.quart_app.config["TRUSTED_PROXY_HOPS"])
            return forwarded_address(peer, forwarded, hops)

        observability(self.quart_app).record(
            method="GET",
            path=path,
            route=path,
            status=200,
            elapsed=elapsed,
            endpoint=None,
            verified=True,
            client=client,
            user_id=None if sub is None else str(sub),
        )
