"""The clients allowed to introspect tokens (``INTROSPECTION_CLIENTS``), and their check.

``INTROSPECTION_CLIENTS`` is ``id:secret,id:secret,...``. A secret is either the secret
itself or a hash of it: argon2 (``$argon2id$...``, what ``quart-app hash-secret`` prints)
or a Werkzeug hash (``pbkdf2:...``, ``scrypt:...``). An argon2 hash holds commas of its
own (``m=19456,t=2,p=1``): a comma-separated piece without a ``:`` continues the secret
before it. Plain secrets are compared in constant time (their SHA-256 digests, so not
even the length leaks); hashes are verified in the password-hashing threads, off the
event loop, and a verified pair is remembered (by its digest) so that a resource server
asking on every request does not pay for argon2 each time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

from ..settings import SettingsError
from .passwords import Passwords

SETTING = "INTROSPECTION_CLIENTS"
_HASH_PREFIXES = ("$argon2", "pbkdf2:", "scrypt:")
#: Verified (id, secret) digests remembered; the oldest is forgotten first.
_REMEMBERED = 256


class ClientsSettingError(SettingsError):
    """``INTROSPECTION_CLIENTS`` cannot be read; the message names the setting."""


def parse_clients(value: str | None) -> dict[str, str]:
    """``{client id: secret or hash}``; empty when unset (the endpoint is then off)."""
    if not value or not value.strip():
        return {}
    entries: list[list[str]] = []
    for piece in value.split(","):
        if ":" not in piece and entries:
            entries[-1][1] += "," + piece  # a comma inside the previous secret
            continue
        client_id, sep, secret = piece.strip().partition(":")
        if not sep:
            raise ClientsSettingError(
                f"{SETTING}: {piece.strip()!r} is not 'id:secret'; expected 'id:secret,id:secret'"
            )
        entries.append([client_id.strip(), secret])
    clients: dict[str, str] = {}
    for client_id, secret in entries:
        secret = secret.strip()
        if not client_id or not secret:
            raise ClientsSettingError(f"{SETTING}: every entry needs a client id and a secret")
        if client_id in clients:
            raise ClientsSettingError(f"{SETTING}: client id {client_id!r} is given twice")
        clients[client_id] = secret
    return clients


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()


class IntrospectionClients:
    """Checks HTTP Basic client credentials against the configured clients."""

    def __init__(self, clients: dict[str, str], passwords: Passwords) -> None:
        self._plain = {cid: _digest(s) for cid, s in clients.items() if not _is_hash(s)}
        self._hashed = {cid: s for cid, s in clients.items() if _is_hash(s)}
        self._passwords = passwords
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        # Compared against when the id is unknown, so that costs what a known id costs.
        self._decoy = _digest(secrets.token_hex(32))

    @property
    def enabled(self) -> bool:
        return bool(self._plain or self._hashed)

    async def authenticate(self, client_id: str, secret: str) -> bool:
        stored_hash = self._hashed.get(client_id)
        if stored_hash is None:
            expected = self._plain.get(client_id, self._decoy)
            matched = hmac.compare_digest(_digest(secret), expected)
            return matched and client_id in self._plain
        remembered = _digest(client_id, stored_hash, secret)
        if remembered in self._verified:
            self._verified.move_to_end(remembered)
            return True
        if not await self._passwords.verify(stored_hash, secret):
            return False
        self._verified[remembered] = None
        if len(self._verified) > _REMEMBERED:
            self._verified.popitem(last=False)
        return True


def _is_hash(secret: str) -> bool:
    return secret.startswith(_HASH_PREFIXES)
