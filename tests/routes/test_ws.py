"""The service's ``/ws`` route on the test client: the contract's messages and closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from quart import Quart
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

from quart_app.jwt import CLOSE_FORBIDDEN, CLOSE_UNAUTHORIZED
from tests.helpers.support import Client, bearer, login, register

WAIT = 10.0


async def next_message(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.receive(), WAIT))  # type: ignore[no-any-return]


async def close_of(ws: Any) -> tuple[int, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    with pytest.raises(WebsocketDisconnectError) as caught:
        while True:
            seen.append(await next_message(ws))
    return caught.value.args[0], seen


REVOKED = [{"type": "revoked", "msg": "Token has been revoked"}]


async def test_ready_then_echo(client: Client, tokens: dict[str, Any]) -> None:
    async with client.websocket("/ws", headers=bearer(tokens["access_token"])) as ws:
        ready = await next_message(ws)
        assert ready["type"] == "ready"
        assert ready["sub"] == "1"
        assert isinstance(ready["exp"], int)
        for data in ("text", 42, {"nested": [1, None]}, None):
            await ws.send(json.dumps({"type": "echo", "data": data}))
            assert await next_message(ws) == {"type": "echo", "data": data}
        await ws.send("not json")
        assert await next_message(ws) == {"type": "error", "msg": "Message is not valid JSON"}
        await ws.send(json.dumps({"type": "shout"}))
        assert (await next_message(ws))["type"] == "error"


async def test_browser_auth_by_first_message(client: Client, tokens: dict[str, Any]) -> None:
    async with client.websocket("/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": tokens["access_token"]}))
        assert (await next_message(ws))["type"] == "ready"


async def test_a_bad_handshake_token_is_refused_with_the_http_answer(client: Client) -> None:
    with pytest.raises(WebsocketResponseError) as caught:
        async with client.websocket("/ws", headers={"Authorization": "Bearer x.y"}) as ws:
            await ws.receive()
    assert caught.value.response.status_code == 422
    assert await caught.value.response.get_json() == {"msg": "Not enough segments"}


async def test_logout_closes_the_socket(client: Client, tokens: dict[str, Any]) -> None:
    async with client.websocket("/ws", headers=bearer(tokens["access_token"])) as ws:
        await next_message(ws)
        response = await client.post("/logout", headers=bearer(tokens["access_token"]))
        assert response.status_code == 200
        assert await close_of(ws) == (CLOSE_UNAUTHORIZED, REVOKED)


async def test_a_refresh_token_replay_closes_the_family_s_sockets(
    client: Client, tokens: dict[str, Any]
) -> None:
    async with client.websocket("/ws", headers=bearer(tokens["access_token"])) as ws:
        await next_message(ws)
        refresh = bearer(tokens["refresh_token"])
        assert (await client.post("/token/refresh", headers=refresh)).status_code == 200
        assert (await client.post("/token/refresh", headers=refresh)).status_code == 401
        assert await close_of(ws) == (CLOSE_UNAUTHORIZED, REVOKED)


async def test_a_password_change_closes_every_earlier_socket(client: Client) -> None:
    await register(client)
    first, second = await login(client), await login(client)
    async with (
        client.websocket("/ws", headers=bearer(first["access_token"])) as a,
        client.websocket("/ws", headers=bearer(second["access_token"])) as b,
    ):
        await next_message(a)
        await next_message(b)
        response = await client.put(
            "/me/password",
            headers=bearer(first["access_token"]),
            json={"old_password": "correct-horse", "new_password": "battery-staple"},
        )
        assert response.status_code == 200
        assert await close_of(a) == (CLOSE_UNAUTHORIZED, REVOKED)
        assert await close_of(b) == (CLOSE_UNAUTHORIZED, REVOKED)


async def test_reauth_after_refresh_keeps_the_socket(
    client: Client, tokens: dict[str, Any]
) -> None:
    async with client.websocket("/ws", headers=bearer(tokens["access_token"])) as ws:
        await next_message(ws)
        refreshed = await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
        newer = (await refreshed.get_json())["access_token"]
        await ws.send(json.dumps({"type": "auth", "token": newer}))
        assert (await next_message(ws))["type"] == "ready"
        await ws.send(json.dumps({"type": "echo", "data": 1}))
        assert await next_message(ws) == {"type": "echo", "data": 1}


async def test_reauth_as_someone_else_closes_4403(client: Client, tokens: dict[str, Any]) -> None:
    await register(client, "bob")
    bob = await login(client, "bob")
    async with client.websocket("/ws", headers=bearer(tokens["access_token"])) as ws:
        await next_message(ws)
        await ws.send(json.dumps({"type": "auth", "token": bob["access_token"]}))
        assert await close_of(ws) == (CLOSE_FORBIDDEN, [])


async def test_the_openapi_description_documents_the_socket(app: Quart) -> None:
    document = await (await app.test_client().get("/openapi.json")).get_json()
    description = document["info"]["description"]
    assert "GET /ws" in description
    assert "4401" in description


async def test_with_cors_on_only_cookies_depend_on_the_origin(
    app_factory: Callable[..., Quart],
) -> None:
    app = app_factory(
        CORS_ALLOWED_ORIGINS="https://app.example.com", JWT_TOKEN_LOCATION=("headers", "cookies")
    )
    async with app.test_app():
        client = app.test_client()
        await register(client)
        token = (await login(client))["access_token"]
        # A client that is no browser sends no Origin; a token in a header needs none.
        for origin in ({}, {"Origin": "https://elsewhere.example"}):
            async with client.websocket("/ws", headers={**bearer(token), **origin}) as ws:
                assert (await next_message(ws))["type"] == "ready"
        cookie = {"Cookie": f"access_token_cookie={token}"}
        async with client.websocket(
            "/ws", headers={**cookie, "Origin": "https://app.example.com"}
        ) as ws:
            assert (await next_message(ws))["type"] == "ready"
        with pytest.raises(WebsocketResponseError) as caught:
            async with client.websocket(
                "/ws", headers={**cookie, "Origin": "https://elsewhere.example"}
            ) as ws:
                await ws.receive()
        assert caught.value.response.status_code == 401
        assert await caught.value.response.get_json() == {
            "msg": "Origin not allowed: https://elsewhere.example"
        }
