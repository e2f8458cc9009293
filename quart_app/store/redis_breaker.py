"""A circuit breaker around every Redis call of a worker, so a hung Redis costs one timeout.

Redis only speeds things up here (revocation fan-out, shared throttling); each use has a
fallback that needs no Redis: the SQL poll for revocations, per-worker memory for
throttling. Without a breaker, every request would still try Redis first and wait out the
socket timeout (and its retries) for as long as Redis hangs. With it:

* the first call that fails with a connection error or a timeout **opens** the breaker;
* while it is open, every call through :class:`GuardedRedis` fails at once with
  :class:`CircuitOpen` (a ``redis.exceptions.ConnectionError``), so each caller takes
  its fallback without waiting;
* a background task PINGs Redis every ``cooldown`` seconds; the first answer **closes**
  the breaker, and calls go to Redis again. No request ever waits for a probe.

The breaker wraps the client, not the callers: whatever commands a store sends (GET/SET,
a Lua script, a pipeline, PUBLISH) go through it, and each store keeps its own fallback.
One breaker per worker and Redis URL is shared by all of that worker's clients
(:func:`breaker`), so a failure seen by one stops the others calling too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any, cast

from quart import Quart
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .breaker import ProbingBreaker

log = logging.getLogger(__name__)

EXTENSION_KEY = "quart_app.redis_breaker"
#: What counts as "Redis is not answering" (a ResponseError is an answer).
FAILURES = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class CircuitOpen(RedisConnectionError):
    """Not sent: Redis failed recently and has not answered a probe since."""


class RedisBreaker(ProbingBreaker):
    """Open after a failure, probe in the background, close when Redis answers."""

    task_name = "redis-breaker-probe"

    def __init__(self, url: str, *, cooldown: float = 2.0, timeout: float = 0.5) -> None:
        super().__init__(cooldown)
        self.url = url
        self.timeout = timeout

    def client(self, url: str | None = None, **options: Any) -> GuardedRedis:
        """A Redis client (of this breaker's Redis, or ``url``) whose every command goes
        through this breaker.

        One retry (a pooled connection may have been closed by the server) instead of
        redis-py's three: a hung Redis costs at most two socket timeouts, once.
        """
        options.setdefault("retry", Retry(NoBackoff(), 1))
        client = cast(GuardedRedis, GuardedRedis.from_url(url or self.url, **options))
        client.breaker = self
        return client

    def check(self) -> None:
        if self.is_open:
            raise CircuitOpen("Redis failed recently; not called until it answers a probe")

    def failed(self, error: BaseException) -> None:
        if self.is_open:
            return
        self._open(
            log,
            "Redis unavailable (%s); using the fallbacks (SQL poll, per-worker throttling)"
            " and probing every %.1fs",
            error or type(error).__name__,
            self.cooldown,
        )

    async def _probe_until_answered(self) -> None:
        client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            await self._probe_loop(
                client.ping,
                2 * self.timeout,
                log,
                lambda error: log.debug("Redis probe failed: %s", error),
                "Redis answers again after %.1fs; using it again",
            )
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()


class GuardedRedis(Redis):
    """``redis.asyncio.Redis`` whose commands (and pipelines) pass a :class:`RedisBreaker`."""

    breaker: RedisBreaker

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.breaker.check()
        try:
            result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except FAILURES as error:
            self.breaker.failed(error)
            raise
        return result

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipeline = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipeline.breaker = self.breaker
        return pipeline


class GuardedPipeline(Pipeline):
    breaker: RedisBreaker

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.breaker.check()
        try:
            return await super().execute(raise_on_error)
        except FAILURES as error:
            self.breaker.failed(error)
            raise


def breaker_from_settings(settings: Mapping[str, Any]) -> RedisBreaker | None:
    """The worker's breaker; None without ``REDIS_URL`` or with a cool-down of 0 (off:
    every call tries Redis and waits out its timeouts).
    """
    url = settings.get("REDIS_URL")
    if not url or float(settings["REDIS_BREAKER_COOLDOWN"]) <= 0:
        return None
    return RedisBreaker(str(url), cooldown=float(settings["REDIS_BREAKER_COOLDOWN"]))


def breaker(app: Quart) -> RedisBreaker | None:
    """This app's breaker (None without ``REDIS_URL``)."""
    found = app.extensions.get(EXTENSION_KEY)
    return found if isinstance(found, RedisBreaker) else None
