"""WebSockets at Hypercorn's end: inflation bounded as frames arrive, and the close
codes right. The app's side of its sockets is quart_app/middleware/websockets.py.

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
:class:`~quart_app.middleware.websockets.BoundedConnection` tells Hypercorn's handshake
which through the accept message (:data:`COMPRESSION_KEY`). :func:`install` puts it in
place once per process, after checking that Hypercorn still builds its extension the way
this seam expects (or it refuses to start, naming the versions: a silent no-op would
bring the bomb back).

**Close codes** (what the app's access log reads): a frame wsproto refuses (over the
limit, bad UTF-8) is answered with a close frame carrying its code instead of a dropped
connection (:class:`_Connection`), and the app's disconnect event carries the code of the
client's close frame instead of 1006 for every client close (:func:`_handle`).
"""

from __future__ import annotations

import contextvars
import logging
import zlib
from collections.abc import Generator
from typing import Any

import wsproto
import wsproto.connection
import wsproto.events
import wsproto.extensions
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from ..middleware.websockets import COMPRESSION_KEY

log = logging.getLogger(__name__)

#: The Hypercorn and wsproto versions whose code this seam was read against.
KNOWN_HYPERCORN = ("0.17.", "0.18.")
KNOWN_WSPROTO = ("1.2.", "1.3.")
#: Hypercorn's own default when no config is at hand.
DEFAULT_MAX_MESSAGE = 16 * 2**20

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
