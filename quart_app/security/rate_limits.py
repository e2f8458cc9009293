"""Throttling: per-address limits (quart-rate-limiter) and the client address behind proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import wraps
from typing import Any, cast

from quart import Quart, current_app, request
from quart_rate_limiter import rate_limit

from ..accounts.events import Client
from ..startup.settings import SettingsError
from .ratelimit import AtomicRateLimiter, BoundedMemoryStore

__all__ = [
    "BoundedMemoryStore",
    "client_address",
    "init_rate_limits",
    "limit_key",
    "parse_proxies",
    "peer_client",
    "request_client",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PROXIES_KEY = "quart_app.trusted_proxies"


def parse_proxies(value: str | Iterable[str] | None) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES`` (addresses or CIDR networks) as networks; SettingsError names a
    bad entry."""
    entries = value.split(",") if isinstance(value, str) else list(value or ())
    networks = []
    for entry in entries:
        text = str(entry).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES entry {text[:64]!r} is not an IP address or CIDR network"
                " (e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8)"
            ) from None
    return tuple(networks)


def _proxies(app: Quart) -> tuple[Network, ...]:
    networks = app.extensions.get(_PROXIES_KEY)
    if networks is None:
        networks = app.extensions[_PROXIES_KEY] = parse_proxies(app.config["TRUSTED_PROXIES"])
    return cast(tuple[Network, ...], networks)


def trusted_peer(app: Quart, peer: str | None) -> bool:
    """Whether ``peer`` (the TCP peer's address) is one of ``TRUSTED_PROXIES``."""
    try:
        ip = ipaddress.ip_address(peer or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _proxies(app))


def peer_client(app: Quart, peer: str | None, forwarded_for: Iterable[str]) -> str:
    """The client's address for a connection from ``peer``: the peer itself, or, when the
    peer is a trusted proxy (``TRUSTED_PROXY_HOPS`` > 0 and the peer in
    ``TRUSTED_PROXIES``), the address the proxies report in ``X-Forwarded-For``."""
    hops = int(app.config["TRUSTED_PROXY_HOPS"])
    if hops <= 0 or not trusted_peer(app, peer):
        return peer or "unknown"
    return forwarded_address(peer, forwarded_for, hops)


def client_address() -> str:
    """The client's address: the peer, or the address ``TRUSTED_PROXY_HOPS`` proxies report
    when the peer is one of ``TRUSTED_PROXIES``."""
    return peer_client(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        request.remote_addr,
        request.headers.getlist("X-Forwarded-For"),
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
        from ..store.rate_limits import RedisLimitStore
        from ..store.redis_breaker import breaker

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
