"""quart-rate-limiter's state in Redis, shared by every worker and host, failing open.

Replaces the library's ``RedisStore`` for three reasons: keys carry ``REDIS_PREFIX``
(deployments and test runs can share a Redis), they expire once their theoretical
arrival time has passed (the library's keys live forever), and when Redis is unreachable
each worker keeps limiting on its own in memory instead of answering 500, and says so
in the log once.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime

from quart_rate_limiter.store import MemoryStore, RateLimiterStoreABC
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: Kept a little past the TAT, so clocks a little apart between hosts do not matter.
EXPIRY_SLACK_MS = 1000


class RedisLimitStore(RateLimiterStoreABC):
    def __init__(self, url: str, *, prefix: str = "quart_app:", timeout: float = 0.5) -> None:
        self.url = url
        self.prefix = f"{prefix}limits:"
        self.timeout = timeout
        self.fallback = MemoryStore()
        self.failing = False
        self._redis: Redis | None = None

    async def before_serving(self) -> None:
        self._redis = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            client_name=f"{self.prefix.rstrip(':')}".replace(" ", "_"),
        )

    async def after_serving(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _down(self, error: Exception) -> None:
        if not self.failing:
            log.warning("rate-limit store unreachable (%s); limiting per worker in memory", error)
        self.failing = True

    def _up(self) -> None:
        if self.failing:
            log.warning("rate-limit store reachable again")
        self.failing = False

    async def get(self, key: str, default: datetime) -> datetime:
        if self._redis is None:
            return await self.fallback.get(key, default)
        try:
            raw = await self._redis.get(self.prefix + key)
        except (RedisError, OSError) as error:
            self._down(error)
            return await self.fallback.get(key, default)
        self._up()
        if raw is None:
            return default
        return datetime.fromtimestamp(float(raw), UTC)

    async def set(self, key: str, tat: datetime) -> None:
        if self._redis is None:
            await self.fallback.set(key, tat)
            return
        ttl_ms = math.ceil((tat - datetime.now(UTC)).total_seconds() * 1000)
        try:
            await self._redis.set(
                self.prefix + key, repr(tat.timestamp()), px=max(1, ttl_ms) + EXPIRY_SLACK_MS
            )
        except (RedisError, OSError) as error:
            self._down(error)
            await self.fallback.set(key, tat)
            return
        self._up()
