"""``/ws`` under attack on live Hypercorn (2 workers): memory stays bounded.

* Deflate bombs: four unauthenticated sockets each send one 1 MB permessage-deflate
  message that inflates to about 1 GB. The message size limit holds on the inflated size
  as the frames arrive, so each socket is closed with 1009 after at most one limit's worth
  of inflation.
* A client that never reads: it sends echo requests of 60 KB as fast as the server takes
  them. The server stops reading when the socket's queue is full (the client's sends
  block) and closes it with 1008 when a reply cannot be delivered in time.

Each bound is asserted on the workers' VmRSS (sampled from /proc while the attack runs),
and the service keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers.live import Server
from tests.helpers.ws_client import WAIT, session, ws_url
from tests.helpers.wsattack import (
    MiB,
    deflate_bomb,
    frame,
    peak_growth,
    send_and_read,
    send_bomb,
    workers,
)

pytestmark = pytest.mark.live

#: The goal: an attack grows a worker by at most this much.
BOUND = 64 * MiB
SEND_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Compression on: the bombs need permessage-deflate taken up to reach the inflater.
    env = {
        "WS_SEND_TIMEOUT": str(SEND_TIMEOUT),
        "WS_MAX_SOCKETS_PER_ADDRESS": "64",
        "WEBSOCKET_COMPRESSION": "true",
    }
    instance = tmp_path_factory.mktemp("wsmem") / "instance"
    with Server(instance, workers=2, env=env) as running:
        yield running


def _pids(server: Server) -> list[int]:
    assert server.process is not None
    pids = [worker.pid for worker in workers(server.process.pid)]
    assert len(pids) == 2, pids
    return pids


def _mib(growth: dict[int, int]) -> list[float]:
    return sorted(round(value / MiB, 1) for value in growth.values())


async def _healthy(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        statuses = [(await client.get("/healthz")).status_code for _ in range(4)]
    assert statuses == [200] * 4


async def test_four_deflate_bombs_at_once_stay_within_the_bound(server: Server) -> None:
    bomb = deflate_bomb()
    assert len(bomb) >= MiB - 64 and len(bomb) < 2 * MiB
    pids = _pids(server)
    with peak_growth(pids) as growth:
        heads = await asyncio.gather(*(send_bomb("127.0.0.1", server.port) for _ in range(4)))
    assert all(head.startswith(b"HTTP/1.1 101") for head in heads), heads
    print(f"four 1 MB deflate bombs: worker growth {_mib(growth)} MiB")
    assert max(growth.values()) <= BOUND, {pid: g // MiB for pid, g in growth.items()}
    await _healthy(server)


async def test_a_bomb_is_closed_with_1009(server: Server) -> None:
    head, data = await asyncio.to_thread(
        send_and_read, "127.0.0.1", server.port, frame(deflate_bomb(), rsv1=True), WAIT
    )
    assert head.startswith(b"HTTP/1.1 101")
    assert b"permessage-deflate" in head.lower()
    # A close frame from the server (unmasked): 0x88, length, code 1009.
    assert data[:1] == b"\x88" and int.from_bytes(data[2:4], "big") == 1009, data


async def test_a_client_that_never_reads_stays_within_the_bound(server: Server) -> None:
    pair = await session(server.url, "nonreader")
    pids = _pids(server)
    message = json.dumps({"type": "echo", "data": "x" * 60_000})
    sent = 0
    with peak_growth(pids) as growth:
        # max_queue=1 and a small read buffer: the client stops reading its replies.
        async with connect(
            ws_url(server.url),
            additional_headers={"Authorization": f"Bearer {pair['access_token']}"},
            open_timeout=WAIT,
            max_queue=1,
            compression=None,
        ) as ws:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                async with asyncio.timeout(SEND_TIMEOUT * 4 + 10):
                    while sent < 4000:  # 240 MB if the server took it all
                        await ws.send(message)
                        sent += 1
            # Read what is left: the replies the server sent, then its close.
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                async with asyncio.timeout(WAIT):
                    while True:
                        await ws.recv()
            code = ws.close_code
    print(f"non-reading client, {sent} messages sent: worker growth {_mib(growth)} MiB")
    assert max(growth.values()) <= BOUND, {pid: g // MiB for pid, g in growth.items()}
    assert sent < 4000, "the server read everything a non-reading client sent"
    assert code in (1008, 1009), code
    await _healthy(server)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"WS_MAX_SOCKETS_PER_ADDRESS": "3", "WS_MAX_PENDING_SOCKETS": "2"}
    instance = tmp_path_factory.mktemp("wscap") / "instance"
    with Server(instance, workers=2, env=env) as running:
        yield running


async def _handshake(server: Server, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        ws = await connect(ws_url(server.url), additional_headers=headers, open_timeout=WAIT)
    except InvalidStatus as refused:
        return refused.response.status_code, json.loads(refused.response.body)
    return 101, ws


async def test_sockets_per_address_and_pending_sockets_are_capped(capped: Server) -> None:
    pair = await session(capped.url, "capped")
    # Authenticated: at most 3 per worker from one address, 2 workers.
    opened = [await _handshake(capped, pair["access_token"]) for _ in range(10)]
    accepted = [ws for status, ws in opened if status == 101]
    refused = [body for status, body in opened if status == 429]
    assert len(accepted) <= 6 and len(accepted) + len(refused) == 10, opened
    assert refused and refused[0] == {"msg": "Too many WebSockets from this address"}
    for ws in accepted:
        await ws.close()
    # Unauthenticated (first-message auth): at most 2 waiting per worker.
    waiting = [await _handshake(capped, None) for _ in range(6)]
    held = [ws for status, ws in waiting if status == 101]
    unavailable = [body for status, body in waiting if status == 503]
    assert len(held) <= 4 and unavailable, waiting
    assert unavailable[0] == {"msg": "Too many WebSockets waiting for authentication"}
    for ws in held:
        await ws.close()
    # Slots are given back: a socket opens again once the others are closed.
    await asyncio.sleep(0.5)
    status, ws = await _handshake(capped, pair["access_token"])
    assert status == 101
    await ws.close()


async def test_every_handshake_and_close_is_logged(capped: Server) -> None:
    pair = await session(capped.url, "logged")
    status, ws = await _handshake(capped, pair["access_token"])
    assert status == 101
    await asyncio.wait_for(ws.recv(), WAIT)
    await ws.close(4000, "bye")
    refused, _ = await _handshake(capped, "not-a-token")
    assert refused == 422
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        text = capped.log_path.read_text()
        if "WS /ws closed by client 4000" in text and "WS /ws 422" in text:
            break
        await asyncio.sleep(0.2)
    text = capped.log_path.read_text()
    assert "WS /ws 101" in text
    assert "WS /ws 422" in text
    assert "WS /ws closed by client 4000 after" in text
