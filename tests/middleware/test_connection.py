"""ServingHeaders: what a response says about its connection, on each protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from quart_app.middleware.connection import ServingHeaders
from quart_app.middleware.inflight import mark_committed
from quart_app.serving.drain import DrainState


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def answer(
    layer: ServingHeaders, version: str, scheme: str = "http", headers: Any = ()
) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    # A partial ASGI scope: what ServingHeaders reads.
    scope: Any = {
        "type": "http",
        "http_version": version,
        "scheme": scheme,
        "headers": list(headers),
    }
    await layer(scope, receive, send)
    start = sent[0]
    return {"status": start["status"], "headers": dict(start["headers"]), "body": sent[1]["body"]}


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_while_draining_http1_responses_announce_the_close(version: str) -> None:
    state = DrainState()
    layer = ServingHeaders(ok_app, state=state)
    assert b"connection" not in (await answer(layer, version))["headers"]
    state.begin(grace=1.0)
    response = await answer(layer, version)
    assert response["headers"][b"connection"] == b"close"
    assert response["headers"][b"x-a"] == b"1"


async def test_http2_never_gets_a_connection_header_even_while_draining() -> None:
    state = DrainState()
    state.begin(grace=1.0)
    response = await answer(ServingHeaders(ok_app, state=state), "2", scheme="https")
    assert b"connection" not in response["headers"]


async def test_hsts_only_over_tls() -> None:
    layer = ServingHeaders(ok_app, hsts="max-age=60", state=DrainState())
    assert (await answer(layer, "2", "https"))["headers"][b"strict-transport-security"] == (
        b"max-age=60"
    )
    assert b"strict-transport-security" not in (await answer(layer, "1.1"))["headers"]


async def test_content_length_with_transfer_encoding_is_400_and_close() -> None:
    layer = ServingHeaders(ok_app, state=DrainState())
    framing = [(b"content-length", b"4"), (b"transfer-encoding", b"chunked")]
    response = await answer(layer, "1.1", headers=framing)
    assert response["status"] == 400
    assert response["headers"][b"connection"] == b"close"
    assert b"Content-Length and Transfer-Encoding" in response["body"]


async def test_drain_finishes_when_no_connection_is_left() -> None:
    state = DrainState()
    assert not state.finished()  # not draining at all
    state.connections = 1
    state.begin(grace=60.0)
    assert state.draining and not state.finished()
    state.connections = 0
    assert state.finished()


async def cut_at_the_deadline(app: Any, state: DrainState) -> list[dict[str, Any]]:
    """Serve one request with ``app`` while the drain's deadline passes; what was sent."""
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: Any = {"type": "http", "http_version": "1.1", "scheme": "http", "headers": []}
    served = asyncio.ensure_future(ServingHeaders(app, state=state)(scope, receive, send))
    await asyncio.sleep(0.05)  # the app is running
    state.begin(grace=0.0)
    assert not state.finished()  # the deadline cuts (or lets finish) what runs
    await asyncio.wait_for(served, 5)
    assert state.finished()
    return sent


async def test_a_request_running_at_the_drain_deadline_is_answered_503_and_rolled_back() -> None:
    state = DrainState()
    rolled_back = []

    async def slow_write(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(60)  # a transaction waiting on a hung database
        except asyncio.CancelledError:
            rolled_back.append(True)
            raise
        await ok_app(scope, receive, send)

    sent = await cut_at_the_deadline(slow_write, state)
    assert rolled_back == [True]
    start = sent[0]
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"1" and headers[b"connection"] == b"close"
    assert json.loads(sent[1]["body"]) == {"msg": "Service temporarily unavailable"}


async def test_a_request_that_committed_is_answered_as_it_happened() -> None:
    state = DrainState()

    async def committed_write(scope: Any, receive: Any, send: Any) -> None:
        mark_committed()
        await asyncio.sleep(0.3)  # the commit's answer is on its way
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent = await cut_at_the_deadline(committed_write, state)
    assert sent[0]["status"] == 201


async def test_a_websocket_is_closed_1001_when_the_drain_starts() -> None:
    state = DrainState()
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await asyncio.sleep(60)  # waiting for the next message

    scope: Any = {"type": "websocket", "headers": []}
    no_receive: Any = None  # the app never reads
    served = asyncio.ensure_future(ServingHeaders(echo, state=state)(scope, no_receive, send))
    await asyncio.sleep(0.05)
    state.begin(grace=30.0)
    await asyncio.wait_for(served, 5)  # not the 30 s of the grace period
    assert sent[-1] == {"type": "websocket.close", "code": 1001, "reason": "going away"}
