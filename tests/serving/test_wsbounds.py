"""quart_app.serving.wsbounds against Hypercorn's WebSocket stream: with and without it.

The live attacks (four deflate bombs, a client that does not read) are in
tests/security/test_ws_memory_live.py; these show what the seam changes in Hypercorn's
own objects, in this process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import wsproto.events
from hypercorn.protocol.ws_stream import Handshake
from wsproto.connection import Connection

from quart_app.serving import wsbounds
from tests.helpers.wsattack import deflate_bomb, frame

LIMIT = 65536
HEADERS = [
    (b"connection", b"Upgrade"),
    (b"upgrade", b"websocket"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-extensions", b"permessage-deflate"),
]


@pytest.fixture(params=[True, False], ids=["bounded", "unbounded"])
def bounded(request: pytest.FixtureRequest) -> Iterator[bool]:
    if request.param:
        wsbounds.install()
    else:
        wsbounds.uninstall()
    try:
        yield bool(request.param)
    finally:
        wsbounds.install()


def _server_connection() -> Connection:
    token = wsbounds._limit.set(LIMIT)
    try:
        status, headers, connection = Handshake(HEADERS, "1.1").accept(None, [])
    finally:
        wsbounds._limit.reset(token)
    assert status == 101
    assert any(name == b"sec-websocket-extensions" for name, _ in headers)
    return connection


def _feed(connection: Connection, data: bytes) -> tuple[int, list[object]]:
    """Feed ``data`` in 64 KiB reads (as Hypercorn does); the largest message payload
    produced at once, and the events."""
    largest = 0
    events: list[object] = []
    for start in range(0, len(data), 65536):
        connection.receive_data(data[start : start + 65536])
        for event in connection.events():
            events.append(type(event).__name__)
            if isinstance(event, wsproto.events.Message):
                largest = max(largest, len(event.data))
            if isinstance(event, wsproto.events.CloseConnection):
                events.append(event.code)
                return largest, events
    return largest, events


def test_a_deflate_bomb_inflates_at_most_the_limit(bounded: bool) -> None:
    connection = _server_connection()
    largest, events = _feed(connection, frame(deflate_bomb(256 * 1024), rsv1=True))
    if not bounded:
        # The bug: one 64 KiB read of the bomb inflates to ~64 MB before any check.
        assert largest > 32 * 2**20, largest
        return
    assert largest <= LIMIT + 1, largest
    assert events[-2:] == ["CloseConnection", 1009], events
    # The close is answered with a close frame carrying 1009 (not a dropped connection).
    assert connection.state is wsproto.connection.ConnectionState.REMOTE_CLOSING


def test_a_compressed_message_within_the_limit_still_arrives(bounded: bool) -> None:
    import zlib

    text = ('{"type": "echo", "data": "' + "ab" * 30_000 + '"}').encode()
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = (compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    connection = _server_connection()
    connection.receive_data(frame(payload, rsv1=True))
    received = "".join(
        event.data for event in connection.events() if isinstance(event, wsproto.events.TextMessage)
    )
    assert received.encode() == text


def test_a_message_whose_wire_size_is_over_the_limit_is_refused_from_its_header() -> None:
    wsbounds.install()
    connection = _server_connection()
    header_only = frame(b"x" * (LIMIT + 1))[:14]  # the header and mask, no payload yet
    connection.receive_data(header_only)
    events = list(connection.events())
    assert [type(event).__name__ for event in events] == ["CloseConnection"]
    assert events[0].code == 1009  # type: ignore[attr-defined]


def test_the_seam_checks_the_versions_it_was_written_for(monkeypatch: pytest.MonkeyPatch) -> None:
    wsbounds._check_versions()  # the pinned versions pass
    monkeypatch.setattr(wsbounds, "KNOWN_HYPERCORN", ("9.9.",))
    with pytest.raises(RuntimeError, match="Hypercorn"):
        wsbounds._check_versions()
