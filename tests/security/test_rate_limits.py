"""Per-address throttling (quart-rate-limiter): 429 + Retry-After + JSON, trusted proxy hops."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart import Quart

from quart_app.security.client_address import limit_key
from quart_app.store.rate_limits import MemoryRateLimitStore
from tests.helpers.support import Client

#: Cheap requests that still pass through the limiter: an empty body is a 400 at once.
INVALID = {"username": "x"}


@pytest.fixture
async def small_limit(app_factory: Callable[..., Quart]) -> AsyncIterator[Quart]:
    app = app_factory(RATELIMIT_AUTH_LIMIT=3, RATELIMIT_AUTH_PERIOD=60)
    async with app.test_app():
        yield app


def peer(address: str) -> dict[str, Any]:
    return {"client": (address, 40000)}


async def hit(
    client: Client, path: str = "/register", address: str = "10.0.0.1", **kwargs: Any
) -> int:
    response = await client.post(path, json=INVALID, scope_base=peer(address), **kwargs)
    return response.status_code


async def test_429_has_retry_after_and_json_msg(small_limit: Quart) -> None:
    client = small_limit.test_client()
    assert [await hit(client) for _ in range(3)] == [400, 400, 400]
    response = await client.post("/register", json=INVALID, scope_base=peer("10.0.0.1"))
    assert response.status_code == 429
    assert await response.get_json() == {"msg": "Too many requests"}
    assert response.mimetype == "application/json"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/register", "/login", "/token/refresh"])
async def test_every_auth_route_is_limited(small_limit: Quart, path: str) -> None:
    client = small_limit.test_client()
    statuses = [await hit(client, path) for _ in range(4)]
    assert 429 not in statuses[:3]
    assert statuses[3] == 429


async def test_limit_is_per_address(small_limit: Quart) -> None:
    client = small_limit.test_client()
    for _ in range(3):
        await hit(client, address="10.0.0.1")
    assert await hit(client, address="10.0.0.1") == 429
    assert await hit(client, address="10.0.0.2") == 400


async def test_protected_routes_are_not_limited(small_limit: Quart) -> None:
    client = small_limit.test_client()
    statuses = {(await client.get("/protected", scope_base=peer("10.0.0.1"))).status_code}
    for _ in range(5):
        statuses.add((await client.get("/protected", scope_base=peer("10.0.0.1"))).status_code)
    assert statuses == {401}


async def test_default_allows_an_office_of_100_a_minute(app: Quart) -> None:
    """At least 100 requests a minute per address by default (one NAT, many users)."""
    client = app.test_client()
    statuses = [await hit(client) for _ in range(100)]
    assert 429 not in statuses
    # ... and it is a limit. The budget refills at 100/min (one request per 0.6 s), so on a
    # slow machine the 101st request may have earned one back: allow for a few.
    extra = [await hit(client) for _ in range(20)]
    assert 429 in extra


async def test_spoofed_forwarded_for_is_ignored_without_trusted_hops(small_limit: Quart) -> None:
    client = small_limit.test_client()
    for n in range(3):
        await hit(client, headers={"X-Forwarded-For": f"203.0.113.{n}"})
    # A new spoofed address each time does not buy a new budget.
    assert await hit(client, headers={"X-Forwarded-For": "203.0.113.99"}) == 429


async def test_trusted_hop_counts_the_address_the_proxy_saw(
    app_factory: Callable[..., Quart],
) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=3, TRUSTED_PROXY_HOPS=1, TRUSTED_PROXIES="10.0.0.0/8")
    async with app.test_app():
        client = app.test_client()
        proxy = "10.0.0.1"
        for _ in range(3):
            await hit(client, address=proxy, headers={"X-Forwarded-For": "198.51.100.7"})
        assert await hit(client, address=proxy, headers={"X-Forwarded-For": "198.51.100.7"}) == 429
        # The client prepends a forged address: the proxy appends the real one, which counts.
        forged = {"X-Forwarded-For": "192.0.2.1, 198.51.100.7"}
        assert await hit(client, address=proxy, headers=forged) == 429
        # Another client behind the same proxy has its own budget.
        assert await hit(client, address=proxy, headers={"X-Forwarded-For": "198.51.100.8"}) == 400


async def test_two_trusted_hops(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=2, TRUSTED_PROXY_HOPS=2)
    async with app.test_app():
        client = app.test_client()

        def chain(spoof: str) -> dict[str, str]:
            # spoof (client-written), client (seen by the outer proxy), outer proxy.
            return {"X-Forwarded-For": f"{spoof}, 198.51.100.7, 10.1.1.1"}

        assert await hit(client, headers=chain("192.0.2.1")) == 400
        assert await hit(client, headers=chain("192.0.2.2")) == 400
        assert await hit(client, headers=chain("192.0.2.3")) == 429
        # Fewer entries than trusted hops: the header is not trusted at all (the peer counts).
        short = {"X-Forwarded-For": "198.51.100.9"}
        assert await hit(client, address="10.9.9.9", headers=short) == 400
        assert await hit(client, address="10.9.9.9", headers=short) == 400
        assert await hit(client, address="10.9.9.9", headers={"X-Forwarded-For": "1.2.3.4"}) == 429


async def test_ipv6_counts_per_64(small_limit: Quart) -> None:
    client = small_limit.test_client()
    for n in range(3):
        await hit(client, address=f"2001:db8:1:2::{n + 1}")
    # Rotating through the same /64 does not buy a new budget ...
    assert await hit(client, address="2001:db8:1:2:ffff::1") == 429
    # ... another /64 has its own.
    assert await hit(client, address="2001:db8:1:3::1") == 400


def test_limit_key() -> None:
    assert limit_key("192.0.2.1") == "192.0.2.1"
    assert limit_key("2001:db8::1") == limit_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert limit_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert limit_key("unknown") == "unknown"


async def test_cors_preflight_is_not_counted(small_limit: Quart) -> None:
    client = small_limit.test_client()
    for _ in range(5):
        response = await client.options("/login", scope_base=peer("10.0.0.1"))
        assert response.status_code == 200
    assert await hit(client, "/login") != 429


async def test_disabled(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=1, RATELIMIT_ENABLED=False)
    async with app.test_app():
        client = app.test_client()
        assert [await hit(client) for _ in range(5)] == [400] * 5


async def test_memory_store_forgets_clients_whose_budget_is_back() -> None:
    store = MemoryRateLimitStore()
    past = datetime.now(UTC) - timedelta(seconds=1)
    future = datetime.now(UTC) + timedelta(seconds=60)
    await store.set("still-limited", future)
    for n in range(MemoryRateLimitStore.MIN_SWEEP * 4):
        await store.set(f"client-{n}", past)
    # Expired entries are swept; what still limits is kept.
    assert len(store._tats) < MemoryRateLimitStore.MIN_SWEEP
    assert await store.get("still-limited", past) == future
