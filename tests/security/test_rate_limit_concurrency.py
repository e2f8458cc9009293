"""The per-address rate limit under concurrency: no more than the limit plus a few,
whatever the number of requests in flight, in memory and in Redis.

The allowance is computed, not guessed: GCRA admits ``limit`` at once, then one more per
``period / limit`` seconds, so over a burst that took ``elapsed`` seconds at most
``limit + elapsed * limit / period + 1`` requests may pass.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart

from quart_app.security.rate_limits import AtomicRateLimiter
from quart_app.store.rate_limits import Limit, MemoryRateLimitStore
from tests.helpers.live import running, server_env
from tests.helpers.support import SECRET

LIMIT, PERIOD = 100, 60
#: Cheap requests that still pass through the limiter: an invalid body is a 400 at once.
INVALID = {"username": "x"}


def allowance(limit: int, elapsed: float, period: float = PERIOD) -> int:
    return limit + math.ceil(elapsed * limit / period) + 1


async def test_memory_store_holds_under_concurrency(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=LIMIT, RATELIMIT_AUTH_PERIOD=PERIOD)
    async with app.test_app():
        client = app.test_client()
        started = time.monotonic()
        responses = await asyncio.gather(
            *(client.post("/register", json=INVALID) for _ in range(300))
        )
        elapsed = time.monotonic() - started
    passed = sum(r.status_code != 429 for r in responses)
    assert LIMIT <= passed <= allowance(LIMIT, elapsed), (passed, elapsed)


class YieldingStore(MemoryRateLimitStore):
    """An in-memory store whose every operation awaits, as a networked store's does."""

    async def get(self, key: str, default: Any) -> Any:
        await asyncio.sleep(0)
        return await super().get(key, default)

    async def set(self, key: str, tat: Any) -> None:
        await asyncio.sleep(0)
        await super().set(key, tat)

    async def consume(self, limits: Any) -> float | None:
        await asyncio.sleep(0)
        return await super().consume(limits)


async def test_the_library_alone_admits_every_concurrent_request() -> None:
    """Why the limiter is patched: with a store that awaits, the library's read-decide-
    write lets every request in flight through; ``consume`` does not."""
    from quart import Quart as Bare
    from quart_rate_limiter import RateLimiter, rate_limit

    results = {}
    for limiter in (RateLimiter, AtomicRateLimiter):
        app = Bare(__name__)
        limiter(app, store=YieldingStore())

        @app.post("/x")
        @rate_limit(5, timedelta(seconds=PERIOD))
        async def view() -> str:
            return "ok"

        async with app.test_app():
            client = app.test_client()
            responses = await asyncio.gather(*(client.post("/x") for _ in range(50)))
        results[limiter.__name__] = sum(r.status_code == 200 for r in responses)
    assert results == {"RateLimiter": 50, "AtomicRateLimiter": 5}, results


def test_limit_parameters() -> None:
    from datetime import timedelta

    from quart_rate_limiter import RateLimit

    limit = Limit.of("k", RateLimit(100, timedelta(seconds=60)))
    assert (limit.interval, limit.burst) == (0.6, 59.4)


@pytest.mark.live
async def test_three_bursts_of_300_against_two_live_workers(
    tmp_path: Path, backend: str, backend_config: dict[str, Any]
) -> None:
    """One address, 3 x 300 requests in flight at once, two Hypercorn workers: with Redis
    the limit is shared (at most the limit plus a few pass); in memory each worker
    counts alone (at most twice that)."""
    env = {
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": str(LIMIT),
        "RATELIMIT_AUTH_PERIOD": str(PERIOD),
        **server_env(backend_config),
    }
    workers = 2
    with running(tmp_path / "instance", workers=workers, env=env) as server:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            started = time.monotonic()
            statuses: list[int] = []
            for _ in range(3):
                burst = await asyncio.gather(
                    *(http.post("/login", json=INVALID) for _ in range(300))
                )
                statuses += [r.status_code for r in burst]
            elapsed = time.monotonic() - started
    assert set(statuses) <= {400, 429}, set(statuses)
    passed = statuses.count(400)
    shared = backend == "postgres"  # PostgreSQL + Redis: one limit for every worker
    bound = allowance(LIMIT, elapsed) * (1 if shared else workers)
    print(f"\n{backend}: {passed} of 900 passed in {elapsed:.1f}s (bound {bound})")
    assert LIMIT <= passed <= bound, (passed, bound, elapsed)
