"""The Redis circuit breaker: one failure opens it, calls then fail at once, a background
probe closes it when Redis answers; through a fault proxy in front of the shared Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from quart import Quart
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from quart_app.store.redis_breaker import CircuitOpen, RedisBreaker, breaker
from tests.helpers.backend_servers import RedisRun
from tests.helpers.faultproxy import FaultProxy
from tests.helpers.support import login, register


@pytest.fixture
def redis_proxy(redis_server: RedisRun) -> Iterator[tuple[FaultProxy, str]]:
    """A fault proxy in front of the shared Redis, and a URL through it."""
    where = urlsplit(redis_server.url)
    with FaultProxy(where.hostname or "127.0.0.1", where.port or 6379) as proxy:
        yield proxy, f"redis://127.0.0.1:{proxy.port}{where.path or '/0'}"


@pytest.fixture
async def guarded(redis_proxy: tuple[FaultProxy, str]) -> AsyncIterator[tuple[Any, FaultProxy]]:
    proxy, url = redis_proxy
    circuit = RedisBreaker(url, cooldown=0.2, timeout=0.2)
    client = circuit.client(socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        yield client, proxy
    finally:
        await client.aclose()
        await circuit.close()


async def wait_closed(circuit: RedisBreaker) -> None:
    for _ in range(300):
        if not circuit.is_open:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the breaker never closed again")


async def test_one_failure_opens_the_breaker_and_a_probe_closes_it(
    guarded: tuple[Any, FaultProxy],
) -> None:
    client, proxy = guarded
    circuit: RedisBreaker = client.breaker
    assert await client.ping()
    proxy.hang()
    with pytest.raises(RedisTimeout):
        await client.get("qa:breaker:key")
    assert circuit.is_open and circuit.trips == 1
    sent = len(proxy.transcript)
    for _ in range(20):  # refused without a byte sent
        with pytest.raises(CircuitOpen):
            await client.set("qa:breaker:key", "1")
    pipe = client.pipeline(transaction=False)
    pipe.get("qa:breaker:key")
    with pytest.raises(CircuitOpen):
        await pipe.execute()
    assert b"SET" not in proxy.transcript[sent:]
    assert circuit.trips == 1

    proxy.restore()
    await wait_closed(circuit)
    assert await client.set("qa:breaker:key", "1", px=1000)
    assert circuit.trips == 1


async def test_an_error_answer_is_not_an_outage(guarded: tuple[Any, FaultProxy]) -> None:
    client, _ = guarded
    with pytest.raises(ResponseError):
        await client.execute_command("NO-SUCH-COMMAND")
    assert not client.breaker.is_open


async def test_the_app_falls_back_while_redis_hangs(
    app_factory: Callable[..., Quart],
    redis_proxy: tuple[FaultProxy, str],
    redis_server: RedisRun,
) -> None:
    """Logins (throttled through Redis), logout (published on Redis) and /readyz."""
    proxy, url = redis_proxy
    app = app_factory(
        REDIS_URL=url, REDIS_PREFIX=redis_server.next_prefix(), REDIS_BREAKER_COOLDOWN=0.2
    )
    async with app.test_app():
        client = app.test_client()
        await register(client)
        circuit = breaker(app)
        assert circuit is not None and not circuit.is_open
        proxy.hang()
        first = await login(client)  # waits out one timeout, and opens the breaker
        assert circuit.is_open
        sent = len(proxy.transcript)
        pairs = await asyncio.gather(*(login(client) for _ in range(10)))
        assert all(pair["access_token"] for pair in pairs)
        logout = await client.post(
            "/logout", headers={"Authorization": f"Bearer {first['access_token']}"}
        )
        assert logout.status_code == 200
        gone = await client.get(
            "/protected", headers={"Authorization": f"Bearer {first['access_token']}"}
        )
        assert gone.status_code == 401
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert (await ready.get_json())["checks"]["redis"] == "unavailable"
        held = bytes(proxy.transcript[sent:])
        assert b"EVALSHA" not in held and b"PUBLISH" not in held, held[:200]

        proxy.restore()
        await wait_closed(circuit)
        sent = len(proxy.transcript)
        await login(client)
        assert b"EVALSHA" in proxy.transcript[sent:]  # throttled through Redis again
        assert (await (await client.get("/readyz")).get_json())["checks"]["redis"] == "ok"
