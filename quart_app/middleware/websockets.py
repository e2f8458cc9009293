"""The app's WebSockets with bounded memory: queues, send deadlines, sockets per address,
and their access log (Hypercorn's end of them, inflation and close codes:
quart_app/serving/wsbounds.py).

**A client that does not read** (Quart's ``ASGIWebsocketConnection``). Quart moves every
received message into an unbounded queue, whether the view reads it or not: a client that
sends echo requests and never reads the replies blocks the view on its send while its
messages pile up (8,000 of 60 KB grew a worker by 470 MB). :class:`BoundedConnection`
keeps ``WS_RECEIVE_QUEUE`` messages at most (then Hypercorn stops reading the socket and
TCP pushes back on the client), bounds each send by ``WS_SEND_TIMEOUT`` (the send queue is
Hypercorn's transport buffer, drained at its 64 KiB high-water mark) and closes a socket
whose reply could not be delivered in time with 1008. A view notices that as
:class:`ClientNotReading` from ``websocket.send``.

**How many sockets**, per worker: ``WS_MAX_SOCKETS_PER_ADDRESS`` open at once from one
client address (an IPv6 /64 counts as one, as for the login limits) and
``WS_MAX_PENDING_SOCKETS`` accepted but not yet authenticated (first-message auth, the
view calls :func:`pending_slot`); past either the handshake is refused with 429 or 503
and a JSON ``msg``.

**Access log**: one ``quart_app.access`` line per handshake (101, or the status it was
refused with) and one per close (who closed, the code, the socket's lifetime).

Whether a socket may use permessage-deflate (``WEBSOCKET_COMPRESSION``) goes to the server
in the accept message (:data:`COMPRESSION_KEY`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from quart import Quart
from quart.asgi import ASGIWebsocketConnection

from ..observability.logs import ACCESS_LOGGER, request_id_from, request_id_var
from ..security.client_address import limit_key, peer_client

access_log = logging.getLogger(ACCESS_LOGGER)

CLOSE_POLICY = 1008
SOCKETS_KEY = "quart_app.websockets"
#: Key of the ``websocket.accept`` message that asks for permessage-deflate (when offered).
COMPRESSION_KEY = "quart_app.permessage_deflate"


class ClientNotReading(ConnectionError):
    """A reply could not be delivered within ``WS_SEND_TIMEOUT``: the socket is closed."""


class SocketCounts:
    """Per worker: open sockets per client address, and sockets waiting for their auth."""

    def __init__(self, per_address: int, pending: int) -> None:
        self.per_address = per_address
        self.pending_limit = pending
        self.by_address: Counter[str] = Counter()
        self.pending = 0


def socket_counts(app: Quart) -> SocketCounts:
    return cast(SocketCounts, app.extensions[SOCKETS_KEY])


@contextlib.asynccontextmanager
async def pending_slot(app: Quart) -> AsyncIterator[bool]:
    """Hold one of the worker's ``WS_MAX_PENDING_SOCKETS`` slots while a socket waits for
    its first-message auth; yields False (no slot) when they are all taken."""
    counts = socket_counts(app)
    if 0 < counts.pending_limit <= counts.pending:
        yield False
        return
    counts.pending += 1
    try:
        yield True
    finally:
        counts.pending -= 1


def _client(app: Quart, scope: Any) -> str:
    peer = (scope.get("client") or ("unknown",))[0]
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name.lower() == b"x-forwarded-for"
    ]
    return peer_client(app, peer, forwarded)


class BoundedConnection(ASGIWebsocketConnection):
    """Quart's websocket connection with a bounded receive queue and send deadline, the
    per-address cap and the access-log lines (see the module docstring)."""

    def __init__(self, app: Quart, scope: Any) -> None:
        super().__init__(app, scope)
        config = app.config
        self.queue = asyncio.Queue(int(config["WS_RECEIVE_QUEUE"]))
        self.send_timeout = float(config["WS_SEND_TIMEOUT"])
        self.compression = bool(config["WEBSOCKET_COMPRESSION"])
        self._started = time.monotonic()
        self._status: int | None = None
        self._close: tuple[str, int] | None = None
        self._client = "unknown"
        self._logged = False

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        app = self.app
        counts = socket_counts(app)
        client = self._client = _client(app, self.scope)
        key = limit_key(client)
        request_id_var.set(request_id_from(None))
        if 0 < counts.per_address <= counts.by_address[key]:
            await self._refuse(send, 429, "Too many WebSockets from this address")
            self._log_handshake()
            return
        counts.by_address[key] += 1
        try:
            await super().__call__(self._receiving(receive), self._sending(send))
        finally:
            counts.by_address[key] -= 1
            if not counts.by_address[key]:
                del counts.by_address[key]
            self._log_handshake()
            self._log_close()

    def _receiving(self, receive: ASGIReceiveCallable) -> ASGIReceiveCallable:
        async def wrapped() -> Any:
            event = await receive()
            if event["type"] == "websocket.disconnect" and self._close is None:
                self._close = ("client", int(event.get("code", 1005)))
            return event

        return cast(ASGIReceiveCallable, wrapped)

    def _sending(self, send: ASGISendCallable) -> ASGISendCallable:
        async def wrapped(message: Any) -> None:
            kind = message["type"]
            if kind == "websocket.accept":
                self._status = 101
                message = {**message, COMPRESSION_KEY: self.compression}
            elif kind == "websocket.http.response.start":
                self._status = int(message["status"])
            elif kind == "websocket.close":
                if self._status is None:
                    self._status = 403  # Hypercorn's answer to a close before accept
                elif self._close is None:
                    self._close = ("server", int(message.get("code", 1000)))
            await send(message)
            self._log_handshake()

        return cast(ASGISendCallable, wrapped)

    async def send_data(self, send: ASGISendCallable, data: str | bytes) -> None:
        try:
            async with asyncio.timeout(self.send_timeout):
                await super().send_data(send, data)
        except TimeoutError:
            msg = "Client does not read its messages"
            self._close = ("server", CLOSE_POLICY)
            # The close frame waits behind the unread replies; a client that reads none
            # of it is let go when the view ends (Hypercorn closes the connection).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.send_timeout):
                    await self.close_connection(send, CLOSE_POLICY, msg)
            self._closed = True
            raise ClientNotReading(msg) from None

    async def _refuse(self, send: ASGISendCallable, status: int, msg: str) -> None:
        body = orjson.dumps({"msg": msg})
        self._status = status
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"5"),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})

    def _log_handshake(self) -> None:
        if self._logged or self._status is None or not self.app.config["ACCESS_LOG"]:
            return
        self._logged = True
        status, client = self._status, self._client
        access_log.info(
            "WS %s %d",
            self.scope.get("path", ""),
            status,
            extra={
                "fields": {"path": self.scope.get("path", ""), "status": status, "client": client}
            },
        )

    def _log_close(self) -> None:
        if not self.app.config["ACCESS_LOG"] or not self._accepted:
            return
        client = self._client
        closer, code = self._close or ("server", 1006)
        duration = time.monotonic() - self._started
        access_log.info(
            "WS %s closed by %s %d after %.1fs",
            self.scope.get("path", ""),
            closer,
            code,
            duration,
            extra={
                "fields": {
                    "path": self.scope.get("path", ""),
                    "closed_by": closer,
                    "close_code": code,
                    "duration_ms": round(duration * 1000, 1),
                    "client": client,
                }
            },
        )


def init_websocket_bounds(app: Quart) -> None:
    """Use :class:`BoundedConnection` for this app's sockets, with its per-worker counts."""
    app.asgi_websocket_class = BoundedConnection
    app.extensions[SOCKETS_KEY] = SocketCounts(
        int(app.config["WS_MAX_SOCKETS_PER_ADDRESS"]), int(app.config["WS_MAX_PENDING_SOCKETS"])
    )
