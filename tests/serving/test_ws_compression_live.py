"""``WEBSOCKET_COMPRESSION`` on live Hypercorn: permessage-deflate is taken up only when on.

Off (the default), a client that offers permessage-deflate (as every browser does) gets a
handshake answer with no ``Sec-WebSocket-Extensions``, and the socket works uncompressed;
on, the answer accepts the offer and messages travel compressed. The deflate-bomb bounds
with it on are in tests/security/test_ws_memory_live.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from tests.helpers.live import Server
from tests.helpers.ws_client import WAIT, session, ws_url
from tests.helpers.wsattack import raw_socket

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=[None, "true"], ids=["default", "on"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, bool]]:
    env = {} if request.param is None else {"WEBSOCKET_COMPRESSION": request.param}
    instance = tmp_path_factory.mktemp("wsdeflate") / "instance"
    with Server(instance, env=env) as running:
        yield running, request.param is not None


def _extensions(head: bytes) -> list[bytes]:
    lines = head.split(b"\r\n")
    assert b" 101 " in lines[0] + b" ", head
    return [
        line.split(b":", 1)[1].strip()
        for line in lines[1:]
        if line.lower().startswith(b"sec-websocket-extensions:")
    ]


async def test_the_handshake_takes_up_an_offered_deflate_only_when_on(
    server: tuple[Server, bool],
) -> None:
    running, compression = server
    _reader, writer, head = await raw_socket("127.0.0.1", running.port, deflate=True)
    writer.close()
    extensions = _extensions(head)
    if compression:
        assert len(extensions) == 1 and extensions[0].startswith(b"permessage-deflate"), head
    else:
        assert extensions == [], head


async def test_a_client_offering_deflate_gets_what_the_setting_says(
    server: tuple[Server, bool],
) -> None:
    running, compression = server
    token = (await session(running.url, "deflate"))["access_token"]
    async with connect(
        ws_url(running.url),
        additional_headers={"Authorization": f"Bearer {token}"},
        compression="deflate",
        open_timeout=WAIT,
    ) as ws:
        assert ws.response is not None  # set once the handshake is done
        answered = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert answered.startswith("permessage-deflate") is compression, answered
        assert json.loads(await ws.recv())["type"] == "ready"
        # The socket works either way (compressed when on): a long echo comes back whole.
        data = "x" * 4096
        await ws.send(json.dumps({"type": "echo", "data": data}))
        assert json.loads(await ws.recv()) == {"type": "echo", "data": data}
