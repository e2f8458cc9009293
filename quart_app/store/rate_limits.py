"""Where rate limits are kept: a bounded in-memory store per worker, or Redis, shared by
every worker and host and failing open (the policy: quart_app/security/rate_limits.py).

:class:`RedisRateLimitStore` replaces the library's ``RedisStore`` for four reasons:

* **Atomic.** The library reads a key, decides, and writes it back in separate round
  trips, so N requests in flight at once all read the same state and all pass (three
  bursts of 300 logins from one address once passed 900 of 900 against a limit of 100).
  :meth:`RedisRateLimitStore.consume` checks and updates every limit of a request in one Lua
  script (GCRA, the library's own algorithm), which Redis runs alone: whatever the
  concurrency, no more than the limit passes. The script reads Redis's clock, so hosts
  whose clocks disagree still share one limit.
* Keys carry ``REDIS_PREFIX`` (deployments and test runs can share a Redis).
* Keys expire once their theoretical arrival time (TAT) has passed (the library's keys
  live forever).
* **One round trip for many requests.** Scripts of requests arriving together are sent
  in one pipeline over one connection (:class:`_Batcher`), so a flood of logins neither
  opens a connection per request nor queues behind a pool, either of which would time
  out under load and drop the limit to per-worker memory exactly when it matters.
* When Redis is unreachable, each worker keeps limiting on its own in memory instead of
  answering 500, and says so in the log once.

TATs are stored as integer microseconds since the epoch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from quart_rate_limiter import RateLimit
from quart_rate_limiter.store import MemoryStore, RateLimiterStoreABC
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from .redis_breaker import RedisBreaker

log = logging.getLogger(__name__)

#: Kept a little past the TAT, so clocks a little apart between hosts do not matter.
EXPIRY_SLACK_MS = 1000
#: KEYS: one per limit. ARGV: per limit its emission interval and its allowed burst
#: separation (µs). Returns nil when admitted (every TAT advanced), else the seconds
#: until the first refusing limit would admit (nothing written).
CONSUME = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tats = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local interval, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  if tat - now > burst then
    return string.format('%.6f', (tat - burst - now) / 1000000)
  end
  tats[i] = tat + interval
end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((tats[i] - now) / 1000) + tonumber(ARGV[#ARGV])
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl)
end
return false
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit of one request: its store key and its GCRA parameters (seconds)."""

    key: str
    #: Period / count: how far each admitted request moves the key's TAT.
    interval: float
    #: Period - interval: how far ahead of now the TAT may be for a request to pass.
    burst: float

    @classmethod
    def of(cls, key: str, rate_limit: RateLimit) -> Limit:
        interval = rate_limit.inverse
        return cls(key, interval, rate_limit.period.total_seconds() - interval)


class AtomicStore(Protocol):
    async def consume(self, limits: Sequence[Limit]) -> float | None:
        """Admit one request against every limit, atomically: None when admitted (all
        TATs advanced), else the seconds until the refusing limit admits (nothing kept)."""


class MemoryRateLimitStore(MemoryStore):
    """The library's in-memory store, atomic, and without its leak (one entry per key,
    for ever).

    An entry whose theoretical arrival time (TAT) has passed decides nothing (the limiter
    uses ``max(tat, now)``), so such entries are swept whenever the table has doubled
    since the last sweep: amortised O(1) per request, and memory bounded by the clients
    seen within one period instead of every client ever seen.
    """

    MIN_SWEEP = 1024

    def __init__(self) -> None:
        super().__init__()
        self._sweep_at = self.MIN_SWEEP

    async def consume(self, limits: Sequence[Limit]) -> float | None:
        # No await from here on: no other request runs until the decision is stored.
        now = datetime.now(UTC)
        advanced = []
        for limit in limits:
            tat = max(self._tats.get(limit.key, now), now)
            ahead = (tat - now).total_seconds()
            if ahead > limit.burst:
                return ahead - limit.burst
            advanced.append(tat + timedelta(seconds=limit.interval))
        for limit, tat in zip(limits, advanced, strict=True):
            self._put(limit.key, tat)
        return None

    async def set(self, key: str, tat: datetime) -> None:
        self._put(key, tat)

    def _put(self, key: str, tat: datetime) -> None:
        self._tats[key] = tat
        if len(self._tats) >= self._sweep_at:
            now = datetime.now(UTC)
            self._tats = {k: v for k, v in self._tats.items() if v > now}
            self._sweep_at = max(self.MIN_SWEEP, 2 * len(self._tats))


#: Queues one command on a pipeline (returns the pipeline, or an awaitable of it).
Command = Callable[[Pipeline], object]


class _Batcher:
    """Runs every caller's command, pipelining the calls made while one is in flight."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[tuple[Command, asyncio.Future[object]]] = []
        self._task: asyncio.Task[None] | None = None

    async def call(self, command: Command) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending.append((command, future))
        if self._task is None:
            self._task = asyncio.create_task(self._flush(), name="rate-limit-batch")
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                pipe = self.redis.pipeline(transaction=False)
                for command, _ in batch:
                    queued = command(pipe)
                    if inspect.isawaitable(queued):
                        await queued
                try:
                    results = await pipe.execute(raise_on_error=False)
                except (RedisError, OSError) as error:
                    results = [error] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the request was cancelled meanwhile
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class RedisRateLimitStore(RateLimiterStoreABC):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "quart_app:",
        timeout: float = 0.5,
        breaker: RedisBreaker | None = None,
    ) -> None:
        self.url = url
        #: Every command passes it: while Redis is down, limiting falls back at once.
        self.breaker = breaker
        self.prefix = f"{prefix}limits:"
        self.timeout = timeout
        self.fallback = MemoryRateLimitStore()
        self.failing = False
        self._redis: Redis | None = None
        self._batcher: _Batcher | None = None
        self._script: AsyncScript | None = None

    async def before_serving(self) -> None:
        connect = (
            self.breaker.client if self.breaker is not None else partial(Redis.from_url, self.url)
        )
        self._redis = connect(
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            client_name=f"{self.prefix.rstrip(':')}".replace(" ", "_"),
        )
        self._batcher = _Batcher(self._redis)
        self._script = self._redis.register_script(CONSUME)
        # Connect now, not inside the first flood of requests (an unreachable Redis is
        # not fatal: requests are then limited in memory until it answers).
        try:
            await self._redis.ping()
        except (RedisError, OSError) as error:
            self._down(error)

    async def after_serving(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
            self._batcher = None
            self._script = None
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

    async def consume(self, limits: Sequence[Limit]) -> float | None:
        """Admit a request against every limit at once (see the module docstring)."""
        if self._batcher is None or self._script is None:
            return await self.fallback.consume(limits)
        script = self._script
        args: list[float | int] = []
        for limit in limits:
            args += [round(limit.interval * 1e6), round(limit.burst * 1e6)]
        try:
            keys = [self.prefix + limit.key for limit in limits]
            refused = await self._batcher.call(
                lambda pipe: script(keys=keys, args=[*args, EXPIRY_SLACK_MS], client=pipe)
            )
        except (RedisError, OSError) as error:
            self._down(error)
            return await self.fallback.consume(limits)
        self._up()
        return None if refused is None else float(refused)  # type: ignore[arg-type]

    async def get(self, key: str, default: datetime) -> datetime:
        """The TAT of ``key`` (the limiter's RateLimit-* response headers read it)."""
        if self._batcher is None:
            return await self.fallback.get(key, default)
        try:
            raw = await self._batcher.call(lambda pipe: pipe.get(self.prefix + key))
        except (RedisError, OSError) as error:
            self._down(error)
            return await self.fallback.get(key, default)
        self._up()
        if raw is None:
            return default
        return datetime.fromtimestamp(int(raw) / 1e6, UTC)  # type: ignore[call-overload]

    async def set(self, key: str, tat: datetime) -> None:
        """Unused by :class:`~quart_app.security.rate_limits.AtomicRateLimiter` (it consumes);
        kept for the store interface: one SET with the same expiry as the script's."""
        if self._redis is None:
            await self.fallback.set(key, tat)
            return
        ttl_ms = round((tat - datetime.now(UTC)).total_seconds() * 1000)
        try:
            await self._redis.set(
                self.prefix + key,
                str(round(tat.timestamp() * 1e6)),
                px=max(1, ttl_ms) + EXPIRY_SLACK_MS,
            )
        except (RedisError, OSError) as error:
            self._down(error)
            await self.fallback.set(key, tat)
            return
        self._up()
