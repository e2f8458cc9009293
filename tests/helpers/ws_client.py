"""A WebSocket client for the live ``/ws`` tests (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers.support import bearer

CREDENTIALS = {"username": "alice", "password": "correct-horse"}
#: Generous waits for what has no bound of its own (start-up, a busy machine).
WAIT = 20.0


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/ws"


async def session(base: str, username: str = "alice") -> dict[str, Any]:
    """Register ``username`` (once) and log in: a token pair."""
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
        credentials = {**CREDENTIALS, "username": username}
        await client.post("/register", json=credentials)
        response = await client.post("/login", json=credentials)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


async def open_socket(
    base: str, token: str, **kwargs: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(ws_url(base), additional_headers=bearer(token), open_timeout=WAIT, **kwargs)
    ready = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert ready["type"] == "ready"
    return ws, ready


async def ending(
    ws: ClientConnection, budget: float = WAIT
) -> tuple[dict[str, Any], int | None, str | None]:
    """The last message before the server closes, its close code and reason."""
    last: dict[str, Any] = {}
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(budget):
            while True:
                last = json.loads(await ws.recv())
    return last, ws.close_code, ws.close_reason


async def ended_within(ws: ClientConnection, started: float, kind: str) -> float:
    """Seconds from ``started`` until ``ws`` got its ``kind`` message and close 4401."""
    message = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    elapsed = time.perf_counter() - started
    assert message == {
        "type": kind,
        "msg": "Token has been revoked" if kind == "revoked" else "Token has expired",
    }
    last, code, reason = await ending(ws)
    assert (last, code, reason) == ({}, 4401, message["msg"])
    return elapsed
