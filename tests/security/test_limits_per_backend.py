"""Throttling on each backend: per-address limits live in Redis (shared by every host) or
in each worker's memory; per-account lockout lives in the database (shared on both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

import pytest
from quart import Quart
from redis.asyncio import Redis

from tests.helpers.backend_servers import REDIS_URL
from tests.helpers.support import Client, bearer, login, register, started

#: Redis-only behaviour, or PostgreSQL-only: the SQLite backend has nothing to test.
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"])

BAD = {"username": "nobody", "password": "wrong-password"}


async def _statuses(clients: list[Client], body: dict[str, str]) -> list[int]:
    return [(await client.post("/login", json=body)).status_code for client in clients]


async def test_per_address_limit_is_shared_through_redis_only(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    # 4 a minute: the 5th request of one address is refused, wherever it lands.
    async with AsyncExitStack() as stack:
        apps = [app_factory(RATELIMIT_AUTH_LIMIT=4, RATELIMIT_AUTH_PERIOD=60) for _ in "ab"]
        for app in apps:
            await stack.enter_async_context(started(app))
        a, b = (app.test_client() for app in apps)
        assert await _statuses([a, b, a, b], BAD) == [401, 401, 401, 401]
        fifth = await a.post("/login", json=BAD)
        if backend == "postgres":
            assert fifth.status_code == 429
            assert int(fifth.headers["Retry-After"]) >= 1
            assert "msg" in await fifth.get_json()
        else:
            # In memory each worker counts alone: N workers allow N times the limit.
            assert fifth.status_code == 401


async def test_account_lockout_is_shared_by_every_host(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    async with AsyncExitStack() as stack:
        apps = [app_factory(LOGIN_LOCKOUT_THRESHOLD=3) for _ in "ab"]
        for app in apps:
            await stack.enter_async_context(started(app))
        a, b = (app.test_client() for app in apps)
        await register(a)
        wrong = {"username": "alice", "password": "not-her-password"}
        assert await _statuses([a, b, a], wrong) == [401, 401, 401]
        assert (await b.post("/login", json=wrong)).status_code == 429
        right = await b.post("/login", json={"username": "alice", "password": "correct-horse"})
        assert right.status_code == 429  # even the right password, on the other host


@POSTGRES_ONLY
async def test_limit_keys_carry_the_prefix_and_expire(client: Client, backend: str) -> None:
    prefix = client.app.config["REDIS_PREFIX"]
    assert (await client.post("/login", json=BAD)).status_code == 401
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}limits:*")]
        assert keys
        ttls = [await redis.pttl(key) for key in keys]
        assert all(0 < ttl <= 61_000 for ttl in ttls), ttls
    finally:
        await redis.aclose()


@POSTGRES_ONLY
async def test_without_redis_every_feature_keeps_working(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    """Redis unreachable from the start: serve, throttle per worker, revoke through SQL."""
    dead = "redis://127.0.0.1:1/0"
    app = app_factory(REDIS_URL=dead, RATELIMIT_AUTH_LIMIT=3, REVOCATION_SYNC_INTERVAL=0.2)
    other = app_factory(REDIS_URL=dead, REVOCATION_SYNC_INTERVAL=0.2)
    async with app.test_app(), other.test_app():
        client, peer = app.test_client(), other.test_client()
        await register(client)
        pair = await login(client)
        assert (
            await client.post("/logout", headers=bearer(pair["access_token"]))
        ).status_code == 200
        for _ in range(40):  # the peer learns through the SQL poll
            if (
                await peer.get("/protected", headers=bearer(pair["access_token"]))
            ).status_code == 401:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the revocation did not reach the other worker through SQL")
        # The per-address limit (3 a minute; one /login spent above) still holds, counted
        # in this worker's memory.
        assert await _statuses([client] * 3, BAD) == [401, 401, 429]
