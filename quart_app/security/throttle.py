"""Throttling: per-address limits (quart-rate-limiter) and the client address behind proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import wraps
from typing import Any

from quart import Quart, current_app, request
from quart_rate_limiter import rate_limit

from ..accounts.events import Client
from .ratelimit import AtomicRateLimiter, BoundedMemoryStore

__all__ = [
    "BoundedMemoryStore",
    "client_address",
    "init_rate_limits",
    "limit_key",
    "request_client",
]


def client_address() -> str:
    """The client's address: the peer, or the address ``TRUSTED_PROXY_HOPS`` proxies report."""
    return forwarded_address(
        request.remote_addr,
        request.headers.getlist("X-Forwarded-For"),
        int(current_app.config["TRUSTED_PROXY_HOPS"]),
    )


def request_client() -> Client:
    """The request's client, as security events and sessions record it."""
    return Client(client_address(), request.headers.get("User-Agent", "")).clipped()


def forwarded_address(peer: str | None, forwarded_for: Iterable[str], hops: int) -> str:
    """With N trusted proxies, the N-th ``X-Forwarded-For`` entry from the right is the one
    the outermost trusted proxy saw; anything left of it is client-controlled and ignored.
    """
    if hops > 0:
        forwarded = [
            part.strip() for value in forwarded_for for part in value.split(",") if part.strip()
        ]
        if len(forwarded) >= hops:
            return str(forwarded[-hops])
    return peer or "unknown"


def limit_key(address: str) -> str:
    """What an address is counted as: itself, or its /64 network for IPv6.

    One IPv6 subscriber routinely holds a whole /64 (2**64 addresses), so counting single
    IPv6 addresses would give each attacker an unlimited budget; a /64 is the IPv6 peer
    of one NAT-ed IPv4 address. IPv4-mapped IPv6 addresses count as the IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
        from ..store.redis_breaker import breaker
        from ..store.redis_limits import RedisLimitStore

        store = RedisLimitStore(
            app.config["REDIS_URL"], prefix=app.config["REDIS_PREFIX"], breaker=breaker(app)
        )
    else:
        store = BoundedMemoryStore()
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
