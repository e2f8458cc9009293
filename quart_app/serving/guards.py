"""Guards for Hypercorn bugs, kept small and in one place; each has a test that fails
without it (tests/serving/test_guards.py).

**Data for an already-answered HTTP/2 stream** (Hypercorn 0.17/0.18,
``hypercorn/protocol/h2.py``). When the app answers before the request body is in -- a
413 from the declared length, an auth error -- Hypercorn forgets the stream, but the
client may still be sending its body. ``H2Protocol._handle_events`` then looks the
stream up for the next DATA frame and raises ``KeyError``, which ends the whole
connection and every other stream on it. The guard takes such DATA frames out of the
batch and hands their bytes back to the flow-control windows (or the client would stall
on the connection window), so the client finishes its upload and reads the answer.
Past ``DISCARD_LIMIT`` bytes on one stream the stream gets ``RST_STREAM(NO_ERROR)``,
RFC 9113 section 8.1's "stop sending, the response is complete" (not sent earlier:
httpx, for one, fails the request on it instead of reading the response).

**A burst of streams opened and reset at once** ("rapid reset", CVE-2023-44487).
Hypercorn takes a reset stream out of its priority tree only when its sending task next
runs, so one read holding more than 1,000 HEADERS + RST_STREAM pairs overflows the tree
and ``priority.TooManyStreamsError`` escapes as an unhandled error with a traceback.
The guard ends such a connection as an HTTP/2 server should: GOAWAY with
``ENHANCE_YOUR_CALM``, one warning line, the other connections untouched.

**h2c off unless asked for.** Hypercorn always offers HTTP/2 over cleartext: it answers
``Upgrade: h2c`` with 101 and switches on a ``PRI *`` preface. Cleartext HTTP/2 is for
trusted hops only (a proxy that speaks it to its backends), so here it is off unless
``install(h2c=True)`` (the ``HTTP2_CLEARTEXT`` setting): an upgrade request is answered in
HTTP/1.1 (the upgrade ignored, as RFC 9110 section 7.8 allows) and a preface gets 505
from :class:`~quart_app.middleware.connection.ServingHeaders`. HTTP/2 over TLS (ALPN) is
unaffected.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
from hypercorn.events import Closed
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import H11Protocol
from priority.priority import TooManyStreamsError

log = logging.getLogger(__name__)

HandleEvents = Callable[[Any, list[h2.events.Event]], Awaitable[None]]
_original_handle_events: HandleEvents = H2Protocol._handle_events
_original_check_protocol = H11Protocol._check_protocol
#: Bytes of an answered stream's body read and discarded before the stream is reset.
DISCARD_LIMIT = 4 * 2**20
#: Whether HTTP/2 over cleartext (upgrade or prior knowledge) is allowed.
_h2c = False


async def _handle_events(self: Any, events: list[h2.events.Event]) -> None:
    try:
        batch: list[h2.events.Event] = []
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                if batch:  # streams opened earlier in this batch must exist before we look
                    await _original_handle_events(self, batch)
                    batch = []
                if event.stream_id not in self.streams:
                    _discard(self, event)
                    continue
            batch.append(event)
        await _original_handle_events(self, batch)
    except TooManyStreamsError:
        log.warning("HTTP/2 client %s opened too many streams at once; closing", self.client)
        # The stream being opened got no request: closing it would fail on that.
        for stream_id, stream in list(self.streams.items()):
            if not hasattr(stream, "scope"):
                del self.streams[stream_id]
                self.stream_buffers.pop(stream_id, None)
        self.connection.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        await self._flush()
        await self.send(Closed())


def _discard(protocol: Any, event: h2.events.DataReceived) -> None:
    connection = protocol.connection
    size = event.flow_controlled_length or 0
    with contextlib.suppress(h2.exceptions.ProtocolError, ValueError):
        connection.acknowledge_received_data(size, event.stream_id)
    discarded: dict[int, int] = protocol.__dict__.setdefault("_discarded", {})
    total = discarded[event.stream_id] = discarded.get(event.stream_id, 0) + size
    if event.stream_ended is not None:
        discarded.pop(event.stream_id, None)
    elif total > DISCARD_LIMIT:
        discarded.pop(event.stream_id, None)
        with contextlib.suppress(h2.exceptions.ProtocolError):
            connection.reset_stream(event.stream_id, h2.errors.ErrorCodes.NO_ERROR)
    log.debug("discarded %d bytes for answered stream %d", size, event.stream_id)


async def _check_protocol(self: Any, event: Any) -> None:
    if _h2c:
        await _original_check_protocol(self, event)


def install(*, h2c: bool = False) -> bool:
    """Put the guards in place in this process; True if newly installed."""
    global _h2c
    _h2c = h2c
    if H2Protocol._handle_events is _handle_events:
        return False
    H2Protocol._handle_events = _handle_events  # type: ignore[method-assign]
    H11Protocol._check_protocol = _check_protocol  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    H2Protocol._handle_events = _original_handle_events  # type: ignore[method-assign,assignment]
    H11Protocol._check_protocol = _original_check_protocol  # type: ignore[method-assign]
