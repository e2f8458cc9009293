"""``jwt_required`` on websocket routes, with Quart's websocket test client.

The app here is the extension alone (no database): a ``RevocationList`` stands for the
worker's mirror, and applying entries to it is what the SQL poll or the Redis listener
would do.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import jwt as pyjwt
import pytest
from quart import Quart, websocket
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

import quart_app.jwt as qje
from quart_app.jwt import Revocation, RevocationList
from tests.helpers.clock import FrozenClock, ShiftedClock

SECRET = "websocket-secret-" + "w" * 40
ORIGIN = "https://app.example.com"
#: Generous: the machine running the tests may be busy.
WAIT = 10.0


def make_app(**config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update(
        {"JWT_SECRET_KEY": SECRET, "JWT_WEBSOCKET_ORIGINS": [ORIGIN], "TESTING": True, **config}
    )
    manager = qje.JWTManager(app)
    manager.revocations = RevocationList()

    @app.websocket("/ws")
    @qje.jwt_required()
    async def strict() -> None:
        await websocket.send_json(
            {"sub": qje.get_jwt_identity(), "where": qje.get_jwt_request_location()}
        )
        while True:
            data = await websocket.receive()
            await websocket.send(data)

    @app.websocket("/browser")
    @qje.jwt_required(optional=True)
    async def browser() -> None:
        claims = await qje.websocket_auth(timeout=float(app.config.get("AUTH_TIMEOUT", 5)))
        await websocket.send_json({"type": "ready", "sub": claims["sub"], "exp": claims["exp"]})
        while True:
            message = json.loads(await websocket.receive())
            if message["type"] == "auth":
                claims = await qje.websocket_reauth(message["token"])
                await websocket.send_json(
                    {"type": "ready", "sub": claims["sub"], "exp": claims["exp"]}
                )
            else:
                await websocket.send_json(message)

    @app.websocket("/bare")
    async def bare() -> None:
        await qje.verify_jwt_in_request()
        await websocket.send_json({"sub": qje.get_jwt_identity()})
        while True:
            await websocket.send(await websocket.receive())

    @app.websocket("/cookies")
    @qje.jwt_required(locations=["cookies"])
    async def cookies() -> None:
        await websocket.send_json({"sub": qje.get_jwt_identity()})

    return app


@pytest.fixture
async def app() -> AsyncIterator[Quart]:
    app = make_app()
    async with app.test_app():
        yield app


async def token(
    app: Quart, sub: str = "alice", *, refresh: bool = False, family: str = "fam-1", **kwargs: Any
) -> str:
    async with app.app_context():
        claims = {"fam": family, **kwargs.pop("additional_claims", {})}
        if refresh:
            return await qje.create_refresh_token(sub, additional_claims=claims, **kwargs)
        return await qje.create_access_token(sub, additional_claims=claims, **kwargs)


def mirror(app: Quart) -> RevocationList:
    revocations = qje.get_manager(app).revocations
    assert revocations is not None
    return revocations


async def refused(app: Quart, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """The HTTP answer to a handshake the app must refuse before the upgrade."""
    client = app.test_client()
    with pytest.raises(WebsocketResponseError) as caught:
        async with client.websocket(path, **kwargs) as ws:
            await asyncio.wait_for(ws.receive(), WAIT)
    response = caught.value.response
    return response.status_code, await response.get_json()


async def closed_with(ws: Any) -> tuple[int, list[Any]]:
    """Messages until the server closes, and its close code."""
    seen: list[Any] = []
    with pytest.raises(WebsocketDisconnectError) as caught:
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.receive(), WAIT)))
    return caught.value.args[0], seen


def bearer(encoded: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encoded}"}


# -- the handshake -------------------------------------------------------------------------


async def test_a_header_token_opens_the_socket(app: Quart) -> None:
    async with app.test_client().websocket("/ws", headers=bearer(await token(app))) as ws:
        assert await ws.receive_json() == {"sub": "alice", "where": "headers"}
        await ws.send("ping")
        assert await ws.receive() == "ping"
        assert len(qje.get_registry(app)) == 1
    assert len(qje.get_registry(app)) == 0


@pytest.mark.parametrize(
    ("headers", "status", "msg"),
    [
        ({}, 401, "Missing Authorization Header"),
        (
            {"Authorization": "Token abc"},
            401,
            "Missing 'Bearer' type in 'Authorization' header."
            " Expected 'Authorization: Bearer <JWT>'",
        ),
        (
            {"Authorization": "Bearer a b"},
            422,
            "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'",
        ),
        ({"Authorization": "Bearer not-a-jwt"}, 422, "Not enough segments"),
    ],
)
async def test_a_bad_header_refuses_the_handshake_with_the_http_answer(
    app: Quart, headers: dict[str, str], status: int, msg: str
) -> None:
    assert await refused(app, "/ws", headers=headers) == (status, {"msg": msg})


async def test_optional_means_no_token_at_all_not_a_malformed_one(app: Quart) -> None:
    status, body = await refused(app, "/browser", headers={"Authorization": "Token abc"})
    assert status == 401
    assert body["msg"].startswith("Missing 'Bearer' type")
    assert (await refused(app, "/browser", headers={"Authorization": "Bearer"}))[0] == 422


async def test_expired_revoked_and_refresh_tokens_are_refused_before_the_upgrade(
    app: Quart,
) -> None:
    expired = await token(app, expires_delta=timedelta(seconds=-5))
    assert await refused(app, "/ws", headers=bearer(expired)) == (401, {"msg": "Token has expired"})
    refresh = await token(app, refresh=True)
    assert await refused(app, "/ws", headers=bearer(refresh)) == (
        422,
        {"msg": "Only non-refresh tokens are allowed"},
    )
    mirror(app).apply([Revocation("family", "fam-9", time.time() + 60)])
    revoked = await token(app, family="fam-9")
    assert await refused(app, "/ws", headers=bearer(revoked)) == (
        401,
        {"msg": "Token has been revoked"},
    )
    assert len(qje.get_registry(app)) == 0


async def test_query_string_tokens_work_when_configured() -> None:
    app = make_app(JWT_TOKEN_LOCATION=["headers", "query_string"])
    async with app.test_app():
        encoded = await token(app)
        async with app.test_client().websocket("/ws", query_string={"jwt": encoded}) as ws:
            assert await ws.receive_json() == {"sub": "alice", "where": "query_string"}
        status, body = await refused(app, "/ws")
        assert status == 401
        assert body["msg"].startswith("Missing JWT in headers or query_string")


async def test_cookies_need_an_allowed_origin(app: Quart) -> None:
    encoded = await token(app)
    cookie = {"Cookie": f"access_token_cookie={encoded}"}
    async with app.test_client().websocket("/cookies", headers={**cookie, "Origin": ORIGIN}) as ws:
        assert await ws.receive_json() == {"sub": "alice"}
    # A page of another site opening a socket to us gets the victim's cookies sent along.
    for origin in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {}):
        status, body = await refused(app, "/cookies", headers={**cookie, **origin})
        assert status == 401
        assert "Origin" in body["msg"]
    assert await refused(app, "/cookies", headers={"Origin": ORIGIN}) == (
        401,
        {"msg": 'Missing cookie "access_token_cookie"'},
    )


async def test_cookies_from_any_origin_are_refused_when_none_is_allowed() -> None:
    app = make_app(JWT_WEBSOCKET_ORIGINS=())
    async with app.test_app():
        cookie = {"Cookie": f"access_token_cookie={await token(app)}", "Origin": ORIGIN}
        status, body = await refused(app, "/cookies", headers=cookie)
        assert status == 401
        assert body["msg"] == f"Origin not allowed: {ORIGIN}"


# -- first-message auth --------------------------------------------------------------------


async def test_first_message_auth(app: Quart) -> None:
    encoded = await token(app)
    async with app.test_client().websocket("/browser") as ws:
        await ws.send_json({"type": "auth", "token": encoded})
        ready = await ws.receive_json()
        assert ready["type"] == "ready"
        assert ready["sub"] == "alice"
        await ws.send_json({"type": "echo", "data": [1, "two"]})
        assert await ws.receive_json() == {"type": "echo", "data": [1, "two"]}


async def test_a_handshake_token_needs_no_auth_message(app: Quart) -> None:
    async with app.test_client().websocket("/browser", headers=bearer(await token(app))) as ws:
        assert (await ws.receive_json())["type"] == "ready"


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "not-a-jwt"},
        {"type": "auth"},
        {"type": "echo", "data": 1},
        "not json",
    ],
)
async def test_a_bad_first_message_closes_4401(app: Quart, first: Any) -> None:
    async with app.test_client().websocket("/browser") as ws:
        await ws.send(first if isinstance(first, str) else json.dumps(first))
        code, seen = await closed_with(ws)
    assert (code, seen) == (qje.CLOSE_UNAUTHORIZED, [])


async def test_a_revoked_first_message_token_closes_4401(app: Quart) -> None:
    mirror(app).apply([Revocation("jti", "dead", time.time() + 60)])
    encoded = await token(app, additional_claims={"jti": "dead"})
    async with app.test_client().websocket("/browser") as ws:
        await ws.send_json({"type": "auth", "token": encoded})
        assert await closed_with(ws) == (qje.CLOSE_UNAUTHORIZED, [])


async def test_no_auth_message_in_time_closes_4401() -> None:
    app = make_app(AUTH_TIMEOUT=0.2)
    async with app.test_app(), app.test_client().websocket("/browser") as ws:
        assert await closed_with(ws) == (qje.CLOSE_UNAUTHORIZED, [])


# -- the socket lives as long as its token -------------------------------------------------


@pytest.mark.parametrize("kind", ["jti", "family", "user"])
async def test_a_revocation_closes_the_socket(app: Quart, kind: str) -> None:
    encoded = await token(app, additional_claims={"jti": "the-jti"})
    entry = {
        "jti": Revocation("jti", "the-jti", time.time() + 600),
        "family": Revocation("family", "fam-1", time.time() + 600),
        # Every token of alice issued before now: hers was.
        "user": Revocation("user", "alice", time.time() + 600, not_before=time.time()),
    }[kind]
    async with app.test_client().websocket("/ws", headers=bearer(encoded)) as ws:
        await ws.receive_json()
        mirror(app).apply([entry])
        code, seen = await closed_with(ws)
    assert code == qje.CLOSE_UNAUTHORIZED
    assert seen == [{"type": "revoked", "msg": "Token has been revoked"}]
    assert qje.get_registry(app).ended["revoked"] == 1


async def test_a_bare_verify_jwt_in_request_ends_the_same_way(app: Quart) -> None:
    async with app.test_client().websocket("/bare", headers=bearer(await token(app))) as ws:
        assert await ws.receive_json() == {"sub": "alice"}
        mirror(app).apply([Revocation("family", "fam-1", time.time() + 600)])
        code, seen = await closed_with(ws)
    assert (code, seen) == (4401, [{"type": "revoked", "msg": "Token has been revoked"}])
    assert len(qje.get_registry(app)) == 0


async def test_revocations_that_do_not_cover_the_socket_leave_it_open(app: Quart) -> None:
    encoded = await token(app)
    async with app.test_client().websocket("/ws", headers=bearer(encoded)) as ws:
        await ws.receive_json()
        mirror(app).apply(
            [
                Revocation("jti", "other", time.time() + 600),
                Revocation("family", "fam-2", time.time() + 600),
                Revocation("user", "bob", time.time() + 600, not_before=time.time() + 1),
                # Tokens of alice issued before a moment ago: hers is newer.
                Revocation("user", "alice", time.time() + 600, not_before=time.time() - 60),
            ]
        )
        await ws.send("still there?")
        assert await ws.receive() == "still there?"


async def test_expiry_closes_the_socket(app: Quart) -> None:
    clock = ShiftedClock()
    qje.get_manager(app).clock = clock
    encoded = await token(app, expires_delta=timedelta(seconds=3))
    exp = pyjwt.decode(encoded, options={"verify_signature": False})["exp"]
    async with app.test_client().websocket("/ws", headers=bearer(encoded)) as ws:
        await ws.receive_json()
        # 0.2 s before exp: re-armed for the moved clock, the registry's timer fires by itself.
        clock.advance(exp - clock() - 0.2)
        qje.get_registry(app).expire_due()
        code, seen = await closed_with(ws)
    assert code == qje.CLOSE_UNAUTHORIZED
    assert seen == [{"type": "expired", "msg": "Token has expired"}]


async def test_reauth_with_a_newer_token_extends_the_socket(
    app: Quart, frozen_clock: FrozenClock
) -> None:
    qje.get_manager(app).clock = frozen_clock
    short = await token(app, expires_delta=timedelta(seconds=4), additional_claims={"jti": "old"})
    longer = await token(app, family="fam-2", additional_claims={"jti": "new"})
    async with app.test_client().websocket("/browser", headers=bearer(short)) as ws:
        first = await ws.receive_json()
        await ws.send_json({"type": "auth", "token": longer})
        again = await ws.receive_json()
        assert again["type"] == "ready"
        assert again["exp"] > first["exp"]
        # The old token's death no longer concerns the socket: neither its expiry...
        frozen_clock.advance(first["exp"] + 0.5 - frozen_clock())
        qje.get_registry(app).expire_due()  # what its timer does at the old exp
        # ...nor its revocation.
        mirror(app).apply([Revocation("jti", "old", time.time() + 600)])
        await ws.send_json({"type": "echo", "data": "alive"})
        assert await ws.receive_json() == {"type": "echo", "data": "alive"}
        mirror(app).apply([Revocation("jti", "new", time.time() + 600)])
        code, seen = await closed_with(ws)
    assert (code, seen) == (
        qje.CLOSE_UNAUTHORIZED,
        [{"type": "revoked", "msg": "Token has been revoked"}],
    )


async def test_reauth_with_another_identity_closes_4403(app: Quart) -> None:
    async with app.test_client().websocket("/browser", headers=bearer(await token(app))) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "token": await token(app, "bob")})
        assert await closed_with(ws) == (qje.CLOSE_FORBIDDEN, [])


async def test_reauth_with_a_bad_token_closes_4401(app: Quart) -> None:
    async with app.test_client().websocket("/browser", headers=bearer(await token(app))) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "token": await token(app, refresh=True)})
        assert await closed_with(ws) == (qje.CLOSE_UNAUTHORIZED, [])


async def test_no_task_outlives_its_socket(app: Quart) -> None:
    before = len(asyncio.all_tasks())
    encoded = await token(app)
    for _ in range(3):
        async with app.test_client().websocket("/ws", headers=bearer(encoded)) as ws:
            await ws.receive_json()
    async with app.test_client().websocket("/ws", headers=bearer(encoded)) as ws:
        await ws.receive_json()
        mirror(app).apply([Revocation("family", "fam-1", time.time() + 60)])
        await closed_with(ws)
    for _ in range(100):
        if len(asyncio.all_tasks()) <= before:
            break
        await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks()) == before
    assert len(qje.get_registry(app)) == 0
