"""Readiness for load balancers: what ``GET /readyz`` (routes/observability.py) checks,
every dependency a request needs.

``/healthz`` (routes/meta.py, docs/operating.md) answers whether the process serves and its database
answers. ``/readyz`` answers whether this instance should get traffic: the database, and
Redis when ``REDIS_URL`` is configured, each within ``READINESS_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from ..services import services

log = logging.getLogger(__name__)


class Readiness:
    def __init__(self, redis_url: str | None, timeout: float, breaker: Any = None) -> None:
        self.redis_url = redis_url or None
        self.timeout = timeout
        #: The worker's Redis breaker: while it is open, Redis is reported unavailable
        #: at once instead of after a timeout.
        self.breaker = breaker
        self._redis: Any = None

    def _redis_client(self) -> Any:
        if self._redis is None:
            from redis.asyncio import Redis

            options: dict[str, Any] = {
                "socket_connect_timeout": self.timeout,
                "socket_timeout": self.timeout,
            }
            if self.breaker is not None:
                self._redis = self.breaker.client(str(self.redis_url), **options)
            else:
                self._redis = Redis.from_url(str(self.redis_url), **options)
        return self._redis

    async def _probe(self, name: str, check: Awaitable[Any]) -> str:
        try:
            await asyncio.wait_for(check, self.timeout)
        except Exception as error:
            log.warning("readiness: %s unavailable: %s", name, error or type(error).__name__)
            return "unavailable"
        return "ok"

    async def check(self) -> dict[str, str]:
        """``{"database": "ok"|"unavailable", "redis": ...}`` (redis only when configured)."""
        svc = services()
        checks = {"database": await self._probe("database", svc.db.ping())}
        if checks["database"] == "ok" and not svc.db.ready:
            checks["database"] = "starting"  # answers, schema not checked yet
        if not svc.revocations.mirror.complete:
            checks["revocations"] = "loading"  # token checks answer 503 meanwhile
        if self.redis_url:
            checks["redis"] = await self._probe("redis", self._redis_client().ping())
        return checks

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
