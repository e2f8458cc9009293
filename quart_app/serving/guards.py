"""Guards for Hypercorn bugs, kept small and in one place; each has a test that fails
without it (tests/serving/test_guards.py).

**Data for an already-answered HTTP/2 stream** (Hypercorn 0.17/0.18,
``hypercorn/protocol/h2.py``). When the app answers before the request body is in -- a
413 from the declared length, an auth error -- Hypercorn forgets the stream, but the
client may still be sending its body. ``H2Protocol._handle_events`` then looks the
stream up for the next DATA frame and raises ``KeyError``, which ends the whole
connection and every other stream on it. The guard takes such DATA frames out of the
batch: their bytes are handed back to the flow-control windows (or the client would
stall on the connection window), and the stream gets ``RST_STREAM(NO_ERROR)``, which
RFC 9113 section 8.1 names for "stop sending, the response is complete".
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
from hypercorn.protocol.h2 import H2Protocol

log = logging.getLogger(__name__)

HandleEvents = Callable[[Any, list[h2.events.Event]], Awaitable[None]]
_original_handle_events: HandleEvents = H2Protocol._handle_events


async def _handle_events(self: Any, events: list[h2.events.Event]) -> None:
    batch: list[h2.events.Event] = []
    for event in events:
        if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
            if batch:  # streams opened earlier in this batch must exist before we look
                await _original_handle_events(self, batch)
                batch = []
            if event.stream_id not in self.streams:
                _discard(self.connection, event)
                continue
        batch.append(event)
    await _original_handle_events(self, batch)


def _discard(connection: Any, event: h2.events.DataReceived) -> None:
    with contextlib.suppress(h2.exceptions.ProtocolError, ValueError):
        connection.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
    if event.stream_ended is None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            connection.reset_stream(event.stream_id, h2.errors.ErrorCodes.NO_ERROR)
    log.debug("discarded a DATA frame for answered stream %d", event.stream_id)


def install() -> bool:
    """Put the guards in place in this process; True if newly installed."""
    if H2Protocol._handle_events is _handle_events:
        return False
    H2Protocol._handle_events = _handle_events  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    H2Protocol._handle_events = _original_handle_events  # type: ignore[method-assign,assignment]
