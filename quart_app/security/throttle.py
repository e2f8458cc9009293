"""Throttling: per-address limits (quart-rate-limiter) and the client address behind proxies."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import wraps
from typing import Any

from quart import Quart, current_app, request
from quart_rate_limiter import RateLimiter, rate_limit
from quart_rate_limiter.store import MemoryStore


def client_address() -> str:
    """The client's address: the peer, or the address ``TRUSTED_PROXY_HOPS`` proxies report.

    With N trusted proxies, the N-th ``X-Forwarded-For`` entry from the right is the one
    the outermost trusted proxy saw; anything left of it is client-controlled and ignored.
    """
    hops = int(current_app.config["TRUSTED_PROXY_HOPS"])
    if hops > 0:
        forwarded = [
            part.strip()
            for value in request.headers.getlist("X-Forwarded-For")
            for part in value.split(",")
            if part.strip()
        ]
        if len(forwarded) >= hops:
            return str(forwarded[-hops])
    return request.remote_addr or "unknown"


async def _client_key() -> str:
    return client_address()


def init_rate_limits(app: Quart, endpoints: Iterable[str]) -> None:
    """Limit ``endpoints`` per client address, as configured (RATELIMIT_*).

    The limit is attached to a per-app wrapper of each view, so apps made with
    different settings (tests, several apps in one process) do not share limits.
    """
    store: Any
    if app.config["REDIS_URL"]:
        from ..store.redis_limits import RedisLimitStore

        store = RedisLimitStore(app.config["REDIS_URL"], prefix=app.config["REDIS_PREFIX"])
    else:
        store = MemoryStore()
    RateLimiter(app, key_function=_client_key, store=store, enabled=app.config["RATELIMIT_ENABLED"])
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
