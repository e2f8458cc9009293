"""Who the client is: the TCP peer, or the address trusted proxies report, and what an
address is counted as by every limit (an IPv6 /64 is one client)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import cast

from quart import Quart, current_app, request

from ..accounts.events import Client
from ..startup.settings import SettingsError

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
