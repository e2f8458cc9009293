"""Revocation across workers and hosts on each backend, and through Redis outages.

Two apps on one database stand for two workers (or two hosts): each has its own
in-memory mirror, its own SQL poll and (on the PostgreSQL + Redis backend) its own Redis
subscriber, exactly as separate processes would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from quart import Quart

from quart_app.store.redis_bus import BUS_EXTENSION_KEY, RedisRevocationBus
from tests.helpers.backend_servers import PrivateRedis, kill_clients
from tests.helpers.support import Client, bearer, login, register, started

#: Redis-only behaviour, or PostgreSQL-only: the SQLite backend has nothing to test.
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"])

#: Requests are retried this often while waiting for a revocation to arrive.
STEP = 0.005


def bus_of(app: Quart) -> RedisRevocationBus:
    bus = app.extensions[BUS_EXTENSION_KEY]
    assert isinstance(bus, RedisRevocationBus)
    return bus


async def connected(*apps: Quart) -> None:
    for app in apps:
        await asyncio.wait_for(bus_of(app).connected.wait(), timeout=5)


async def revoked_after(client: Client, token: str, budget: float) -> float | None:
    """Seconds until ``client`` answers 401 revoked for ``token``; None if not in ``budget``."""
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        response = await client.get("/protected", headers=bearer(token))
        if response.status_code == 401:
            assert await response.get_json() == {"msg": "Token has been revoked"}
            return elapsed
        assert response.status_code == 200
        await asyncio.sleep(STEP)
    return None


@pytest.fixture
async def two_hosts(
    app_factory: Callable[..., Quart], request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Quart, Quart]]:
    overrides = getattr(request, "param", {})
    async with AsyncExitStack() as stack:
        apps = (app_factory(**overrides), app_factory(**overrides))
        for app in apps:
            await stack.enter_async_context(started(app))
        yield apps


@pytest.mark.serial  # a propagation deadline of 100 ms
async def test_logout_on_one_host_is_enforced_by_the_other(
    two_hosts: tuple[Quart, Quart], backend: str
) -> None:
    a, b = (app.test_client() for app in two_hosts)
    if backend == "postgres":
        await connected(*two_hosts)
    await register(a)
    pair = await login(a)
    assert (await b.get("/protected", headers=bearer(pair["access_token"]))).status_code == 200
    assert (await a.post("/logout", headers=bearer(pair["access_token"]))).status_code == 200
    # Redis fans out in milliseconds; without it the 1 s SQL poll is the bound (docs/jwt.md: 1.5 s).
    budget = 0.1 if backend == "postgres" else 1.5
    elapsed = await revoked_after(b, pair["access_token"], budget)
    assert elapsed is not None, f"host B still accepts the token after {budget}s"
    refresh = await b.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    assert refresh.status_code == 401  # the whole family went with it


@pytest.mark.serial  # a propagation deadline of 100 ms
@POSTGRES_ONLY
@pytest.mark.parametrize("two_hosts", [{"REVOCATION_SYNC_INTERVAL": 60.0}], indirect=True)
async def test_redis_alone_carries_revocations_within_100ms(
    two_hosts: tuple[Quart, Quart], backend: str
) -> None:
    """With the SQL poll all but off, only the Redis channel can deliver in time."""
    await connected(*two_hosts)
    a, b = (app.test_client() for app in two_hosts)
    await register(a)
    delays = []
    for _ in range(5):
        pair = await login(a)
        await a.post("/logout", headers=bearer(pair["access_token"]))
        elapsed = await revoked_after(b, pair["access_token"], 0.1)
        assert elapsed is not None
        delays.append(elapsed)
    assert bus_of(two_hosts[1]).received >= 5
    print(f"redis propagation (s): max {max(delays):.4f}, all {delays}")


async def test_password_change_on_one_host_kills_old_tokens_on_the_other(
    two_hosts: tuple[Quart, Quart], backend: str
) -> None:
    a, b = (app.test_client() for app in two_hosts)
    if backend == "postgres":
        await connected(*two_hosts)
    await register(a)
    pair = await login(a)
    changed = await a.put(
        "/me/password",
        json={"old_password": "correct-horse", "new_password": "battery-staple"},
        headers=bearer(pair["access_token"]),
    )
    assert changed.status_code == 200, await changed.get_data(as_text=True)
    assert await revoked_after(b, pair["access_token"], 1.5) is not None
    fresh = await login(b, password="battery-staple")
    assert (await b.get("/protected", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_a_refresh_token_raced_on_two_hosts_is_used_once(
    two_hosts: tuple[Quart, Quart], backend: str
) -> None:
    """Concurrent uses of one refresh token are a replay: at most one wins the claim, the
    others revoke the family, and so no pair that came out of the race stays usable.

    Whether the winner still gets its 200 depends on timing: on SQLite the writes are
    serialised and it usually does; on PostgreSQL a loser often revokes the family before
    the winner's final check, and the winner answers 401 too.
    """
    a, b = (app.test_client() for app in two_hosts)
    await register(a)
    pair = await login(a)
    header = bearer(pair["refresh_token"])
    responses = await asyncio.gather(
        *(client.post("/token/refresh", headers=header) for client in (a, b, a, b))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) <= 1 and statuses.count(401) >= 3, statuses
    for response in responses:
        if response.status_code == 200:
            issued = await response.get_json()
            for client in (a, b):
                again = await client.post("/token/refresh", headers=bearer(issued["refresh_token"]))
                assert again.status_code == 401
        else:
            assert await response.get_json() == {"msg": "Token has been revoked"}


@POSTGRES_ONLY
@pytest.mark.parametrize("two_hosts", [{"REVOCATION_SYNC_INTERVAL": 0.3}], indirect=True)
async def test_killed_redis_connections_lose_no_revocation(
    two_hosts: tuple[Quart, Quart], backend: str
) -> None:
    await connected(*two_hosts)
    a, b = (app.test_client() for app in two_hosts)
    bus = bus_of(two_hosts[1])
    await register(a)
    pairs = [await login(a) for _ in range(3)]
    # Drop every connection of ours (publishers and subscribers of both hosts), then
    # revoke at once, while the subscribers are away.
    assert await kill_clients(bus.url, bus.client_name) >= 2
    for pair in pairs:
        assert (await a.post("/logout", headers=bearer(pair["access_token"]))).status_code == 200
    for pair in pairs:
        assert await revoked_after(b, pair["access_token"], 1.5) is not None
    await asyncio.wait_for(bus.connected.wait(), timeout=5)
    assert bus.reconnects >= 1
    pair = await login(a)
    await a.post("/logout", headers=bearer(pair["access_token"]))
    assert await revoked_after(b, pair["access_token"], 0.1) is not None  # fast path is back


@POSTGRES_ONLY
async def test_a_redis_restart_loses_no_revocation(
    app_factory: Callable[..., Quart], backend: str, tmp_path: Path
) -> None:
    """Revocations made while Redis is down reach every host: at once by SQL poll, and by
    the catch-up pull when the channel comes back (here the poll is off, to show it).
    """
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        async with AsyncExitStack() as stack:
            host_a = app_factory(REDIS_URL=redis.url, REVOCATION_SYNC_INTERVAL=0.5)
            host_b = app_factory(REDIS_URL=redis.url, REVOCATION_SYNC_INTERVAL=60.0)
            for app in (host_a, host_b):
                await stack.enter_async_context(started(app))
            await connected(host_a, host_b)
            a, b = host_a.test_client(), host_b.test_client()
            await register(a)
            pair = await login(a)

            redis.stop()
            await asyncio.wait_for(_disconnected(host_b), timeout=5)
            # Redis is down: logging in (throttled in Redis) and out still work.
            victim = await login(b)
            assert (
                await a.post("/logout", headers=bearer(pair["access_token"]))
            ).status_code == 200
            assert (
                await b.post("/logout", headers=bearer(victim["access_token"]))
            ).status_code == 200
            # Host A polls SQL every 0.5 s: B's logout reaches it without Redis.
            assert await revoked_after(a, victim["access_token"], 1.5) is not None
            # Host B does not poll (60 s) and missed the message...
            assert (
                await b.get("/protected", headers=bearer(pair["access_token"]))
            ).status_code == 200

            redis.start()
            # ...until its subscriber is back and catches up from SQL.
            assert await revoked_after(b, pair["access_token"], 5.0) is not None
            assert bus_of(host_b).connected.is_set()
    finally:
        redis.stop()


async def _disconnected(app: Quart) -> None:
    while bus_of(app).connected.is_set():
        await asyncio.sleep(0.01)
