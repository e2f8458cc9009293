"""ASGI middleware that keeps connections honest: :class:`DrainRequestBody` keeps HTTP/1.1
keep-alive safe when the app answers early; :class:`ServingHeaders` (the outermost layer)
closes smuggling-shaped requests, announces the close while a worker drains and adds
HSTS over TLS.

The cause (read from ``hypercorn/protocol/h11.py`` and ``http_stream.py``, Hypercorn 0.18):
when the app finishes its response, ``HTTPStream`` emits ``StreamClosed`` and
``H11Protocol._maybe_recycle`` starts the next request cycle only if *both* h11 sides
are ``DONE``. If the app answered before the request body had arrived -- an auth error
raised by a decorator, a 400, 404/405, 413, 429 -- the client side is still in
``SEND_BODY``, so Hypercorn closes the connection right after the response. Nothing in
that response said ``Connection: close`` (h11 only adds it when *it* knows it will close),
so the client reuses the connection for its next request, which is then lost ("Server
disconnected without sending a response"), or it gets a reset. Quart does read the body
in a background task, but it does not hold the response back until the body is in.

The fix: on ``http.response.start``, if the request body is not complete yet,

* drain it first (discarding it) when what is left is at most ``max_body_size`` and it
  arrives within ``drain_timeout``; h11 then reaches ``DONE`` on the client side before the
  response ends and Hypercorn keeps the connection alive;
* otherwise (413, a declared length over the limit, a chunked body that grows past the
  limit, a client that stalls, the client disconnecting) add ``Connection: close`` to the
  response. h11 marks the connection ``MUST_CLOSE`` when our response carries it, so
  Hypercorn closes after the response -- but now the client has been told.

Requests without a body (no ``Content-Length``/``Transfer-Encoding``, or a zero length),
non-HTTP scopes and HTTP/2 and HTTP/3 (no connection reuse problem there, and
``Connection`` is a forbidden header) go straight to the app with no wrapping at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Final

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    HTTPDisconnectEvent,
    HTTPRequestEvent,
    HTTPResponseStartEvent,
    Scope,
)

from .inflight import CURRENT, REQUESTS, InFlight, Registry

__all__ = ["DEFAULT_DRAIN_TIMEOUT", "DrainRequestBody", "ServingHeaders"]

#: Seconds to wait for the rest of a body before giving up and closing instead.
DEFAULT_DRAIN_TIMEOUT: Final = 1.0

_HTTP1: Final = frozenset({"1.0", "1.1"})
_CHUNKED: Final = -1  # "declared length" of a body without Content-Length
_CLOSE: Final = (b"connection", b"close")


class DrainRequestBody:
    """Drain a still-arriving request body before an early response, or close the connection.

    ``max_body_size`` bounds how many bytes are read on the app's behalf (use the app's
    ``MAX_CONTENT_LENGTH``); ``drain_timeout`` bounds how long the response may wait for them.
    """

    __slots__ = ("app", "drain_timeout", "max_body_size")

    def __init__(
        self,
        app: ASGIFramework,
        max_body_size: int,
        *,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        if max_body_size < 0:
            raise ValueError("max_body_size must be >= 0")
        self.app = app
        self.max_body_size = max_body_size
        self.drain_timeout = drain_timeout

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or scope["http_version"] not in _HTTP1:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope["headers"])
        if declared == 0:  # no body: h11 has already seen the end of the request
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, declared, receive, send)
        await self.app(scope, exchange.receive, exchange.send)


def _declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """0 without a body, the Content-Length, or ``_CHUNKED`` when the length is unknown."""
    length = 0
    for name, value in headers:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return _CHUNKED
        elif name == b"transfer-encoding":
            return _CHUNKED
    return length


class _Exchange:
    """Per-request state: how much of the body has gone by, and who read it."""

    __slots__ = (
        "_drain_done",
        "_progress",
        "_receive",
        "_send",
        "complete",
        "declared",
        "disconnected",
        "middleware",
        "owed_end",
        "readers",
        "received",
    )

    def __init__(
        self,
        middleware: DrainRequestBody,
        declared: int,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> None:
        self.middleware = middleware
        self.declared = declared
        self._receive = receive
        self._send = send
        self.received = 0  # body bytes seen so far, by the app or by the drain
        self.complete = False  # final chunk (or a disconnect) seen
        self.disconnected = False
        self.owed_end = False  # the drain swallowed the final chunk the app has not seen
        self.readers = 0  # app receive() calls waiting on the server right now
        self._drain_done: asyncio.Event | None = None  # set while/after draining
        self._progress: asyncio.Event | None = None  # pulses when an app read returns

    def _track(self, message: ASGIReceiveEvent) -> None:
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
        elif message["type"] == "http.disconnect":
            self.complete = True
            self.disconnected = True

    async def receive(self) -> ASGIReceiveEvent:
        if self._drain_done is not None:
            # A drain started: the body belongs to it; wait for it, then settle up.
            await self._drain_done.wait()
            if self.disconnected:
                return _disconnect()
            if self.owed_end:
                self.owed_end = False
                return _end_of_body()
        elif self.disconnected:
            return _disconnect()
        self.readers += 1
        try:
            message = await self._receive()
            self._track(message)
        finally:
            self.readers -= 1
            if self._progress is not None:
                self._progress.set()
        return message

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "http.response.start" and not self.complete:
            message = await self._settle_body(message)
        await self._send(message)

    async def _settle_body(self, message: HTTPResponseStartEvent) -> HTTPResponseStartEvent:
        limit = self.middleware.max_body_size
        if message["status"] == 413 or (
            self.declared != _CHUNKED and self.declared - self.received > limit
        ):
            return _with_close(message)
        self._drain_done = asyncio.Event()
        try:
            drained = await self._drain(limit)
        finally:
            self._drain_done.set()
        if drained and not self.disconnected:
            return message
        return _with_close(message)

    async def _drain(self, limit: int) -> bool:
        """Read and discard the rest of the body; False if it is too big or too slow."""
        budget_end = self.received + limit
        try:
            async with asyncio.timeout(self.middleware.drain_timeout):
                while not self.complete:
                    if self.received > budget_end:
                        return False
                    if self.readers:
                        # An app read (Quart's receiver task) is already waiting on the
                        # server and gets the next message first: let it, and look again.
                        self._progress = progress = asyncio.Event()
                        await progress.wait()
                        continue
                    message = await self._receive()
                    self._track(message)
                    if self.complete and not self.disconnected:
                        self.owed_end = True
        except TimeoutError:
            return False
        return True


def _with_close(message: HTTPResponseStartEvent) -> HTTPResponseStartEvent:
    headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
    headers.append(_CLOSE)
    closing: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": message["status"],
        "headers": headers,
    }
    if "trailers" in message:
        closing["trailers"] = message["trailers"]
    return closing


def _end_of_body() -> HTTPRequestEvent:
    return {"type": "http.request", "body": b"", "more_body": False}


def _disconnect() -> HTTPDisconnectEvent:
    return {"type": "http.disconnect"}


#: Body of the answer to a request framed both by Content-Length and Transfer-Encoding.
_AMBIGUOUS_BODY: Final = b'{"msg":"Request has both Content-Length and Transfer-Encoding"}'
_NO_H2C_BODY: Final = b'{"msg":"HTTP/2 is served over TLS only"}'


class ServingHeaders:
    """The outermost layer: what a response says about the connection it goes out on.

    * A request with both ``Content-Length`` and ``Transfer-Encoding`` is a request
      smuggling vector: it gets 400 and the connection is closed (RFC 9112 section 6.1).
    * An HTTP/2 preface over cleartext while h2c is off (quart_app/serving/guards.py)
      gets 505 and the connection is closed.
    * While this worker drains (quart_app/serving/drain.py), every HTTP/1.x response
      carries ``Connection: close``, so the client knows not to reuse the connection.
      HTTP/2 never gets it: the header is forbidden there (Hypercorn ends an HTTP/2
      connection with GOAWAY instead).
    * Responses served over TLS carry ``Strict-Transport-Security`` (``hsts``; empty
      for none).
    * Every request and WebSocket is known to the drain (:data:`~.inflight.REQUESTS`,
      which quart_app/serving/drain.py reads), which may cut it: a request cut at the
      drain deadline is answered 503 with ``Retry-After`` here, a WebSocket closed with
      1001 (going away).
    """

    __slots__ = ("app", "hsts", "state")

    def __init__(self, app: ASGIFramework, *, hsts: str = "", state: Registry = REQUESTS) -> None:
        self.app = app
        self.hsts = hsts.encode("latin1")
        self.state = state

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        flight = InFlight(send, websocket=kind == "websocket")
        state = self.state
        state.in_flight.add(flight)
        token = CURRENT.set(flight)
        try:
            if kind == "websocket" and state.draining:
                flight.cut = True  # arrived during the drain: go away at once
            else:
                await self._serve(scope, receive, flight)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not flight.cut or task is None:
                raise
            task.uncancel()
        finally:
            CURRENT.reset(token)
            state.in_flight.discard(flight)
        if flight.cut:
            await _going_away(flight, scope)

    async def _serve(self, scope: Scope, receive: ASGIReceiveCallable, flight: InFlight) -> None:
        send = flight.send

        async def send_noting_start(message: ASGISendEvent) -> None:
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.accept":
                flight.started = True
            elif kind == "websocket.close" or kind == "websocket.http.response.start":
                flight.started = flight.cut = False  # the app said goodbye itself
                flight.task = None
            await send(message)

        if scope["type"] != "http":  # a WebSocket
            await self.app(scope, receive, send_noting_start)
            return
        extra: list[tuple[bytes, bytes]] = []
        if scope["http_version"] == "2.0":  # "PRI *" read as HTTP/1: h2c is off
            await _refuse(send_noting_start, 505, _NO_H2C_BODY)
            return
        if scope["http_version"] in _HTTP1:
            if _ambiguous_length(scope["headers"]):
                await _refuse(send_noting_start, 400, _AMBIGUOUS_BODY)
                return
            if self.state.draining:
                extra.append(_CLOSE)
        if self.hsts and scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", self.hsts))
        if not extra:
            await self.app(scope, receive, send_noting_start)
            return

        async def send_with_headers(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _value in extra}
                headers = [h for h in message.get("headers", ()) if h[0].lower() not in names]
                message = {**message, "headers": [*headers, *extra]}
            await send_noting_start(message)

        await self.app(scope, receive, send_with_headers)


def _ambiguous_length(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    names = {name.lower() for name, _value in headers}
    return b"content-length" in names and b"transfer-encoding" in names


#: Body of the answer to a request cut by the drain deadline (as every other 503).
_UNAVAILABLE_BODY: Final = b'{"msg":"Service temporarily unavailable"}'
#: WebSocket close code 1001: the server is going away (RFC 6455 section 7.4.1).
GOING_AWAY: Final = 1001


async def _going_away(flight: InFlight, scope: Scope) -> None:
    """Answer for what the drain cut: 503 for a request, 1001 for a WebSocket."""
    if scope["type"] == "websocket":
        message: Any = {"type": "websocket.close", "code": GOING_AWAY, "reason": "going away"}
        with contextlib.suppress(Exception):  # the client may be gone already
            await flight.send(message)
        return
    if flight.started:
        return
    # HTTP/2 forbids the header (GOAWAY ends the connection there).
    close = scope["type"] == "http" and scope["http_version"] in _HTTP1
    with contextlib.suppress(Exception):
        await _refuse(flight.send, 503, _UNAVAILABLE_BODY, retry_after=b"1", close=close)


async def _refuse(
    send: ASGISendCallable,
    status: int,
    body: bytes,
    *,
    retry_after: bytes = b"",
    close: bool = True,
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append(_CLOSE)
    if retry_after:
        headers.append((b"retry-after", retry_after))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
