"""Sessions as the user and an admin see them: listing, ending one, ending the others,
refresh rotation, reuse and lifetimes, disabling; on both storage profiles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from quart import Quart

from quart_app.jwt import get_manager
from quart_app.services import services
from tests.helpers.clock import FrozenClock
from tests.helpers.support import Client, bearer, login, register

# Introspection client secrets must be at least 32 characters (a shorter one stops start-up).
GATEWAY_SECRET = "gateway-secret-0123456789abcdefghij"

PASSWORD = "correct-horse"


@pytest.fixture
async def app(app_factory: Callable[..., Quart], backend: str) -> AsyncIterator[Quart]:
    app = app_factory(REFRESH_REUSE_GRACE_SECONDS=0)
    async with app.test_app():
        yield app


@pytest.fixture
def client(app: Quart) -> Client:
    return app.test_client()


async def _refresh(client: Client, token: str) -> Any:
    return await client.post("/token/refresh", headers=bearer(token))


async def _protected(client: Client, access: str) -> int:
    return int((await client.get("/protected", headers=bearer(access))).status_code)


async def _sessions(client: Client, access: str) -> list[dict[str, Any]]:
    response = await client.get("/sessions", headers=bearer(access))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()  # type: ignore[no-any-return]


async def test_every_login_is_a_session_the_user_sees(client: Client) -> None:
    await register(client)
    first = await login(client)
    second = await client.post(
        "/login", json={"username": "alice", "password": PASSWORD}, headers={"User-Agent": "B/2"}
    )
    second_pair = await second.get_json()
    listed = await _sessions(client, second_pair["access_token"])
    assert len(listed) == 2
    assert [s["current"] for s in listed] == [True, False]  # most recent activity first
    assert listed[0]["user_agent"] == "B/2"
    assert set(listed[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "client",
        "user_agent",
        "current",
    }
    # A refresh of the first moves it to the top and keeps its id.
    refreshed = await _refresh(client, first["refresh_token"])
    assert refreshed.status_code == 200
    listed_again = await _sessions(client, second_pair["access_token"])
    assert listed_again[0]["id"] == listed[1]["id"]


async def test_ending_one_session_revokes_its_tokens(client: Client) -> None:
    await register(client)
    victim = await login(client)
    me = await login(client)
    sessions = await _sessions(client, me["access_token"])
    other = next(s["id"] for s in sessions if not s["current"])
    gone = await client.delete(f"/sessions/{other}", headers=bearer(me["access_token"]))
    assert gone.status_code == 200
    assert await gone.get_json() == {"msg": "Session ended"}
    assert (
        await client.get("/protected", headers=bearer(victim["access_token"]))
    ).status_code == 401
    assert (await _refresh(client, victim["refresh_token"])).status_code == 401
    again = await client.delete(f"/sessions/{other}", headers=bearer(me["access_token"]))
    assert again.status_code == 404
    assert await again.get_json() == {"msg": "Session not found"}
    # Another user's session is "not found" too.
    await register(client, "bob")
    bob = await login(client, "bob")
    bobs = (await _sessions(client, bob["access_token"]))[0]["id"]
    assert (
        await client.delete(f"/sessions/{bobs}", headers=bearer(me["access_token"]))
    ).status_code == 404
    assert await _protected(client, me["access_token"]) == 200


async def test_sign_out_everywhere_else(client: Client) -> None:
    await register(client)
    others = [await login(client) for _ in range(3)]
    me = await login(client)
    response = await client.delete("/sessions", headers=bearer(me["access_token"]))
    assert await response.get_json() == {"msg": "Other sessions ended", "ended": 3}
    for pair in others:
        assert (await _refresh(client, pair["refresh_token"])).status_code == 401
    assert len(await _sessions(client, me["access_token"])) == 1
    assert (await _refresh(client, me["refresh_token"])).status_code == 200


async def test_reuse_of_a_rotated_token_ends_the_session(client: Client) -> None:
    await register(client)
    pair = await login(client)
    new = await (await _refresh(client, pair["refresh_token"])).get_json()
    replay = await _refresh(client, pair["refresh_token"])
    assert replay.status_code == 401
    assert await replay.get_json() == {"msg": "Token has been revoked"}
    # The whole session ended: the pair the thief's replay would have raced is dead too.
    assert (await _refresh(client, new["refresh_token"])).status_code == 401
    events = await services(client.app).events.page(limit=10, event="refresh_reuse")
    assert len(events) == 1


async def test_password_change_ends_every_session(client: Client) -> None:
    await register(client)
    other = await login(client)
    me = await login(client)
    changed = await client.put(
        "/me/password",
        json={"old_password": PASSWORD, "new_password": "another-horse-9"},
        headers=bearer(me["access_token"]),
    )
    assert changed.status_code == 200
    for pair in (other, me):
        assert (await _refresh(client, pair["refresh_token"])).status_code == 401
        assert (
            await client.get("/protected", headers=bearer(pair["access_token"]))
        ).status_code == 401
    fresh = await login(client, password="another-horse-9")
    assert (await _refresh(client, fresh["refresh_token"])).status_code == 200


async def test_session_limit_ends_the_least_recently_used(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    app = app_factory(SESSION_LIMIT=2)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        oldest, middle = await login(client), await login(client)
        await _refresh(client, oldest["refresh_token"])  # now "middle" is least recently used
        newest = await login(client)
        assert len(await _sessions(client, newest["access_token"])) == 2
        assert (await _refresh(client, middle["refresh_token"])).status_code == 401


async def test_idle_and_absolute_lifetimes(
    app_factory: Callable[..., Quart], backend: str, frozen_clock: FrozenClock
) -> None:
    app = app_factory(SESSION_IDLE_TIMEOUT=1, SESSION_MAX_AGE=3)
    get_manager(app).clock = frozen_clock  # the sessions' clock too
    async with app.test_app():
        client = app.test_client()
        await register(client)
        idle = await login(client)
        frozen_clock.advance(1.2)
        expired = await _refresh(client, idle["refresh_token"])
        assert expired.status_code == 401
        assert await expired.get_json() == {"msg": "Session has expired"}
    app = app_factory(SESSION_IDLE_TIMEOUT=100, SESSION_MAX_AGE=2)
    get_manager(app).clock = frozen_clock
    async with app.test_app():
        client = app.test_client()
        pair = await login(client)
        import jwt

        claims = jwt.decode(pair["refresh_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] <= 2  # no refresh token outlives the session
        frozen_clock.advance(2.2)
        # The token itself expired with the session.
        assert (await _refresh(client, pair["refresh_token"])).status_code == 401


async def test_grace_accepts_only_the_previous_token_within_the_window(
    app_factory: Callable[..., Quart], backend: str, frozen_clock: FrozenClock
) -> None:
    app = app_factory(REFRESH_REUSE_GRACE_SECONDS=1)
    get_manager(app).clock = frozen_clock
    async with app.test_app():
        client = app.test_client()
        await register(client)
        t0 = await login(client)
        t1 = await (await _refresh(client, t0["refresh_token"])).get_json()
        again = await _refresh(client, t0["refresh_token"])  # the other tab, within the grace
        assert again.status_code == 200
        t1b = await again.get_json()
        # Both answers are of one session and both work.
        assert (
            await client.get("/protected", headers=bearer(t1["access_token"]))
        ).status_code == 200
        t2 = await (await _refresh(client, t1b["refresh_token"])).get_json()
        # t0 is now two rotations old: reuse, the session ends.
        assert (await _refresh(client, t0["refresh_token"])).status_code == 401
        assert (await _refresh(client, t2["refresh_token"])).status_code == 401
        # Outside the window the previous token is reuse too.
        s0 = await login(client)
        s1 = await (await _refresh(client, s0["refresh_token"])).get_json()
        frozen_clock.advance(1.3)
        assert (await _refresh(client, s0["refresh_token"])).status_code == 401
        assert (await _refresh(client, s1["refresh_token"])).status_code == 401


async def test_me_events(client: Client) -> None:
    await register(client)
    bad = await client.post("/login", json={"username": "alice", "password": "wrong-horse"})
    assert bad.status_code == 401
    pair = await login(client)
    await _refresh(client, pair["refresh_token"])
    response = await client.get("/me/events", headers=bearer(pair["access_token"]))
    events = await response.get_json()
    assert [e["event"] for e in events] == ["refresh", "login", "login_failed", "register"]
    assert set(events[0]) == {"time", "event", "client", "user_agent", "session_id"}
    page = await client.get(
        "/me/events",
        query_string={"limit": 2, "before": events[1]["time"]},
        headers=bearer(pair["access_token"]),
    )
    assert [e["event"] for e in await page.get_json()] == ["login_failed", "register"]
    too_many = await client.get(
        "/me/events", query_string={"limit": 201}, headers=bearer(pair["access_token"])
    )
    assert too_many.status_code == 400


async def test_introspection_asks_the_session_for_refresh_tokens(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    import base64

    app = app_factory(INTROSPECTION_CLIENTS="gateway:" + GATEWAY_SECRET)
    auth = "Basic " + base64.b64encode(b"gateway:" + GATEWAY_SECRET.encode()).decode()

    async def active(client: Client, token: str) -> bool:
        response = await client.post(
            "/oauth/introspect",
            data=f"token={token}",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth},
        )
        assert response.status_code == 200
        return bool((await response.get_json())["active"])

    async with app.test_app():
        client = app.test_client()
        await register(client)
        pair = await login(client)
        assert await active(client, pair["refresh_token"])
        rotated = await (await _refresh(client, pair["refresh_token"])).get_json()
        assert not await active(client, pair["refresh_token"])  # spent: no longer usable
        assert await active(client, rotated["refresh_token"])
        await client.post("/logout", headers=bearer(rotated["access_token"]))
        assert not await active(client, rotated["refresh_token"])
