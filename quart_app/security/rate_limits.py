"""Rate limits per client address (quart-rate-limiter), every request decided in one
store operation.

The library checks each limit of a request (a read per limit), then updates them (a read
and a write per limit), awaiting the store in between. Requests in flight at once
interleave at those awaits: with a shared store (Redis), N concurrent requests all read
the same state and all pass. :class:`AtomicRateLimiter` replaces exactly those two steps
(the library's ``_raise_on_rejection`` and ``_update_limits``, the one place it is
patched) with one ``consume`` call that checks and updates every limit of the request
atomically: one Lua script in Redis, plain code without an ``await`` in memory (nothing
else runs on the event loop meanwhile). The algorithm stays the library's GCRA. The
stores are in quart_app/store/rate_limits.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import wraps
from typing import Any

from quart import Quart, request
from quart_rate_limiter import RateLimit, RateLimiter, RateLimitExceeded, rate_limit

from ..store.rate_limits import Limit, MemoryRateLimitStore, RedisRateLimitStore
from ..store.redis_breaker import breaker
from .client_address import client_address, limit_key


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


async def _client_key() -> str:
    return limit_key(client_address())


async def _is_preflight() -> bool:
    # A browser's CORS preflight precedes the real request: count the request only.
    return request.method == "OPTIONS"


def init_rate_limits(app: Quart, endpoints: Iterable[str]) -> None:
    """Limit ``endpoints`` per client address, as configured (RATELIMIT_*).

    The limit is attached to a per-app wrapper of each view, so apps made with
    different settings (tests, several apps in one process) do not share limits.
    """
    store: Any
    if app.config["REDIS_URL"]:
        store = RedisRateLimitStore(
            app.config["REDIS_URL"], prefix=app.config["REDIS_PREFIX"], breaker=breaker(app)
        )
    else:
        store = MemoryRateLimitStore()
    AtomicRateLimiter(
        app,
        key_function=_client_key,
        store=store,
        enabled=app.config["RATELIMIT_ENABLED"],
        skip_function=_is_preflight,
    )
    limit = rate_limit(
        app.config["RATELIMIT_AUTH_LIMIT"],
        timedelta(seconds=app.config["RATELIMIT_AUTH_PERIOD"]),
    )
    for endpoint in endpoints:
        app.view_functions[endpoint] = limit(_per_app(app.view_functions[endpoint]))


def _per_app(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await view(*args, **kwargs)

    # wraps() copied the view's attributes (schemas, limits); this copy is ours alone.
    wrapper.__dict__ = dict(view.__dict__)
    return wrapper
