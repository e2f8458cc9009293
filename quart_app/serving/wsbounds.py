"""WebSockets with bounded memory: inflation, queues, sockets per address, and their log.

**Inflation bounded as frames arrive** (Hypercorn 0.17/0.18, ``hypercorn/protocol/
ws_stream.py``; wsproto 1.2/1.3). Hypercorn negotiates permessage-deflate (RFC 7692) on
every socket and checks ``websocket_max_message_size`` only on what wsproto has already
inflated: a 61 KB compressed message grew a worker by 190 MB, four 1 MB ones by 2.2 GB,
before any authentication. :class:`BoundedPerMessageDeflate` takes the place of wsproto's
``PerMessageDeflate`` in Hypercorn's handshake: a message's wire size is refused from the
frame header (before its payload is read) and its inflated size is bounded by giving zlib
at most the room left under the limit (``decompress(data, max_length)``), so no message
ever inflates past ``websocket_max_message_size`` + 1 bytes; past it the socket is closed
with 1009 "message too big".

**Compression is a setting**, ``WEBSOCKET_COMPRESSION`` (off by default): a socket with
permessage-deflate keeps zlib's inflate and deflate state (about 22 KiB) for its whole
life, twice what the socket costs without it. Off, the handshake answer carries no
``Sec-WebSocket-Extensions`` whatever the client offers; on, the bounds above hold.
:class:`BoundedConnection` tells Hypercorn's handshake which through the accept message
(:data:`COMPRESSION_KEY`). :func:`install` puts it in place once per process, after
checking that Hypercorn still builds its extension the way this seam expects (or it
refuses to start, naming the versions: a silent no-op would bring the bomb back).

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
refused with) and one per close (who closed, the code, the socket's lifetime). Two more
corrections of Hypercorn's stream make those codes right: a frame wsproto refuses (over the
limit, bad UTF-8) is answered with a close frame carrying its code instead of a dropped
connection (:class:`_Connection`), and the app's disconnect event carries the code of the
client's close frame instead of 1006 for every client close (:func:`_handle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Generator
from typing import Any, cast

import orjson
import wsproto
import wsproto.connection
import wsproto.events
import wsproto.extensions
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable
from quart import Quart
from quart.asgi import ASGIWebsocketConnection
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from ..observability.logs import ACCESS_LOGGER, request_id_from, request_id_var
from ..security.client_address import limit_key, peer_client

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)

#: The Hypercorn and wsproto versions whose code this seam was read against.
KNOWN_HYPERCORN = ("0.17.", "0.18.")
KNOWN_WSPROTO = ("1.2.", "1.3.")
#: Hypercorn's own default when no config is at hand.
DEFAULT_MAX_MESSAGE = 16 * 2**20
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
SOCKETS_KEY = "quart_app.websockets"
#: Key of the ``websocket.accept`` message that asks for permessage-deflate (when offered).
COMPRESSION_KEY = "quart_app.permessage_deflate"

_limit: contextvars.ContextVar[int] = contextvars.ContextVar(
    "quart_app_ws_max_message", default=DEFAULT_MAX_MESSAGE
)
_original_accept = ws_stream.WSStream._accept
_original_handle = ws_stream.WSStream.handle
_original_connection = ws_stream.Connection  # type: ignore[attr-defined]
_original_extension = ws_stream.PerMessageDeflate  # type: ignore[attr-defined]


class BoundedPerMessageDeflate(wsproto.extensions.PerMessageDeflate):
    """wsproto's permessage-deflate, with the message size limit held on the wire size and
    the inflated size of every message while its frames arrive."""

    def __init__(self, max_size: int | None = None) -> None:
        super().__init__()
        self.max_size = _limit.get() if max_size is None else max_size
        self._wire = 0
        self._inflated = 0

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if not opcode.iscontrol():
            if self._inbound_compressed is None:  # the first frame of a message
                self._wire = self._inflated = 0
            self._wire += payload_length
            if self._wire > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        room = self.max_size - self._inflated + 1
        try:
            out = self._decompressor.decompress(data, room)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        # A full buffer means zlib had more to give: the message is over the limit.
        if len(out) >= room or self._decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not fin or not self._inbound_is_compressible or not self._inbound_compressed:
            return super().frame_inbound_complete(proto, fin)
        # wsproto's own ending, with the flush bounded like every other inflation.
        data = self._inflate(b"\x00\x00\xff\xff")
        if isinstance(data, CloseReason):
            return data
        no_context_takeover = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return data


class _Connection(wsproto.connection.Connection):
    """wsproto's connection, which answers a frame it refuses with a close frame.

    wsproto reports a refused frame (``ParseFailed``: over the size limit, bad UTF-8, a
    protocol error) as a ``CloseConnection`` event while the connection is still open,
    and Hypercorn then drops the TCP connection without a close frame: the client sees
    1006 instead of the reason. Marking the connection as closed by the peer makes
    Hypercorn send the event's answer, a close frame with that code (RFC 6455 7.1.7).
    """

    #: The code of the client's close frame, once one came (for the ASGI disconnect).
    peer_code: int | None = None

    def events(self) -> Generator[wsproto.events.Event, None, None]:
        for event in super().events():
            if isinstance(event, wsproto.events.CloseConnection):
                if self.state is wsproto.connection.ConnectionState.OPEN:
                    self._state = wsproto.connection.ConnectionState.REMOTE_CLOSING
                elif self.peer_code is None:
                    self.peer_code = int(event.code)
            yield event


async def _handle(self: Any, event: Any) -> None:
    # Hypercorn tells the app 1006 for every close the client started; ASGI says the
    # disconnect carries the client's close code (the access log's close line reads it).
    connection = getattr(self, "connection", None)
    code = getattr(connection, "peer_code", None)
    if isinstance(event, StreamClosed) and code is not None and not self.closed:
        self.closed = True
        if self.app_put is not None:
            await self.app_put({"type": "websocket.disconnect", "code": code})
        return
    await _original_handle(self, event)


async def _accept(self: Any, message: Any) -> None:
    # Hypercorn builds the extension inside Handshake.accept, called synchronously first
    # thing here: the limit reaches it through a context variable.
    if not message.get(COMPRESSION_KEY, False):
        self.handshake.extensions = None  # the client's offer is not taken up
    token = _limit.set(int(self.config.websocket_max_message_size))
    try:
        await _original_accept(self, message)
    finally:
        _limit.reset(token)


def _check_versions() -> None:
    from importlib.metadata import version

    hypercorn_version, wsproto_version = version("hypercorn"), version("wsproto")
    shaped = (
        _original_extension is wsproto.extensions.PerMessageDeflate
        and _original_connection is wsproto.connection.Connection
        and {"PerMessageDeflate", "Connection"} <= set(ws_stream.Handshake.accept.__code__.co_names)
        and "extensions" in ws_stream.Handshake.__init__.__code__.co_names
        and callable(getattr(wsproto.extensions.PerMessageDeflate, "frame_inbound_complete", None))
    )
    if (
        not hypercorn_version.startswith(KNOWN_HYPERCORN)
        or not wsproto_version.startswith(KNOWN_WSPROTO)
        or not shaped
    ):
        raise RuntimeError(
            f"quart_app.serving.wsbounds was written for Hypercorn {'/'.join(KNOWN_HYPERCORN)}x"
            f" and wsproto {'/'.join(KNOWN_WSPROTO)}x, found Hypercorn {hypercorn_version} and"
            f" wsproto {wsproto_version}: check that WebSocket inflation is still unbounded"
            " there and update the seam"
        )


def install() -> bool:
    """Bound permessage-deflate in this process; True if newly installed."""
    if ws_stream.WSStream._accept is _accept:
        return False
    _check_versions()
    setattr(ws_stream, "PerMessageDeflate", BoundedPerMessageDeflate)  # noqa: B010
    setattr(ws_stream, "Connection", _Connection)  # noqa: B010
    ws_stream.WSStream.handle = _handle  # type: ignore[method-assign]
    ws_stream.WSStream._accept = _accept  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    setattr(ws_stream, "PerMessageDeflate", _original_extension)  # noqa: B010
    setattr(ws_stream, "Connection", _original_connection)  # noqa: B010
    ws_stream.WSStream.handle = _original_handle  # type: ignore[method-assign]
    ws_stream.WSStream._accept = _original_accept  # type: ignore[method-assign]


# -- the Quart side: queues, deadlines, counts, log ------------------------------------------


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
    install()
