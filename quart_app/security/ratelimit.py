"""quart-rate-limiter with every request decided in one store operation.

The library checks each limit of a request (a read per limit), then updates them (a read
and a write per limit), awaiting the store in between. Requests in flight at once
interleave at those awaits: with a shared store (Redis), N concurrent requests all read
the same state and all pass. :class:`AtomicRateLimiter` replaces exactly those two steps
(the library's ``_raise_on_rejection`` and ``_update_limits``, the one place it is
patched) with one ``consume`` call that checks and updates every limit of the request
atomically: one Lua script in Redis, plain code without an ``await`` in memory (nothing
else runs on the event loop meanwhile). The algorithm stays the library's GCRA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from quart_rate_limiter import RateLimit, RateLimiter, RateLimitExceeded
from quart_rate_limiter.store import MemoryStore


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


class AtomicRateLimiter(RateLimiter):
    """The library's limiter, deciding each request in one atomic ``consume``."""

    async def _raise_on_rejection(self, endpoint: str, rate_limits: list[RateLimit]) -> None:
        consume = getattr(self.store, "consume", None)
        if consume is None:  # a store of the library's own kind: its two steps
            await super()._raise_on_rejection(endpoint, rate_limits)
            return
        limits = [Limit.of(await self._create_key(endpoint, rl), rl) for rl in rate_limits]
        if limits:
            retry_after = await consume(limits)
            if retry_after is not None:
                raise RateLimitExceeded(max(1, math.ceil(retry_after)))

    async def _update_limits(self, endpoint: str, rate_limits: list[RateLimit]) -> None:
        if getattr(self.store, "consume", None) is None:
            await super()._update_limits(endpoint, rate_limits)


class BoundedMemoryStore(MemoryStore):
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
