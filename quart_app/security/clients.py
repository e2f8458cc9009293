"""OAuth client authentication: the clients allowed to introspect tokens
(``INTROSPECTION_CLIENTS``), the clients of the token endpoint (``quart-app
create-client``, in the database), and the limits on guessing their secrets.

``INTROSPECTION_CLIENTS`` is ``id:secret,id:secret,...``. A secret is either the secret
itself or a hash of it: argon2 (``$argon2id$...``, what ``quart-app hash-secret`` prints)
or a Werkzeug hash (``pbkdf2:...``, ``scrypt:...``). An argon2 hash holds commas of its
own (``m=19456,t=2,p=1``): a comma-separated piece without a ``:`` continues the secret
before it. Plain secrets are compared in constant time (their SHA-256 digests, so not
even the length leaks); hashes are verified in the password-hashing threads, off the
event loop, and a verified pair is remembered (by its digest) so that a resource server
asking on every request does not pay for argon2 each time. A plain secret shorter than
32 characters stops start-up (a hash cannot be measured: ``hash-secret`` asks for 32).

Every check of a client secret not verified before is throttled like a password check
(``LoginGuard``: per client id, per (client id, network), per network), reserved before
the secret is looked at; an unknown client id is refused before any hash; and hashes of
client secrets run at most ``CLIENT_SECRET_HASH_CONCURRENCY`` at a time per worker, a
queue of their own in front of the shared hashing threads, so a flood of wrong secrets
cannot starve /login of them (past a short queue it is answered 503 at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from ..errors import AppError, Throttled
from ..startup.settings import SettingsError
from .login_limits import LoginGuard
from .passwords import Passwords

SETTING = "INTROSPECTION_CLIENTS"
MIN_SECRET_LENGTH = 32
#: Client ids made by ``create-client``: what may appear in a URL, a log and a header.
CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Prefix of a stored client-secret digest (a generated 256-bit secret needs no slow hash).
SHA256_PREFIX = "sha256$"
CLIENT_THROTTLED = "Too many failed client authentications; try later"
HASHING_BUSY = "Client authentication is busy; try later"
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
        if not _is_hash(secret) and len(secret) < MIN_SECRET_LENGTH:
            raise ClientsSettingError(
                f"{SETTING}: the secret of client {client_id!r} has {len(secret)} characters;"
                f" use at least {MIN_SECRET_LENGTH} (python -c 'import secrets;"
                " print(secrets.token_urlsafe(32))')"
            )
        clients[client_id] = secret
    return clients


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).digest()


def new_secret() -> tuple[str, str]:
    """A generated client secret and what is stored of it: ``(secret, sha256$<hex>)``."""
    secret = secrets.token_urlsafe(32)
    return secret, secret_digest(secret)


def secret_digest(secret: str) -> str:
    return SHA256_PREFIX + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def digest_matches(stored: str, secret: str) -> bool:
    return stored.startswith(SHA256_PREFIX) and hmac.compare_digest(stored, secret_digest(secret))


def _client_key(client_id: str) -> str:
    # A NUL cannot be in a username: client counters never meet an account's.
    return f"\0client\0{client_id}"


class ClientGuard:
    """Throttles client-secret checks (per id, per (id, network), per network) and bounds
    the hashing they may do; one per app, shared by introspection and the token endpoint."""

    def __init__(self, guard: LoginGuard | None, hash_slots: int = 1, queue: int = 4) -> None:
        self.guard = guard
        self._slots = asyncio.Semaphore(max(1, hash_slots))
        self._queue = max(0, queue)
        self._waiting = 0

    async def check(
        self,
        client_id: str,
        network: str,
        verify: Callable[[], Awaitable[bool | None]],
        *,
        hashes: bool = False,
    ) -> bool:
        """Run ``verify()`` (None: unknown client id) under the limits; True if it passed.
        ``hashes``: it will hash, so a full hashing queue answers 503 before anything
        else (not even the limits' database round trip)."""
        if hashes:
            self._refuse_when_full()
        if self.guard is None:
            return bool(await verify())
        now = time.time()
        try:
            attempt = await self.guard.admit(_client_key(client_id), network, now)
        except Throttled as throttled:
            raise Throttled(float(throttled.headers["Retry-After"]), CLIENT_THROTTLED) from None
        try:
            verdict = await verify()
        except BaseException:
            await attempt.failed()
            raise
        if verdict:
            await attempt.succeeded()
            return True
        await attempt.failed()
        return False

    async def hashing(self, run: Callable[[], Awaitable[bool]]) -> bool:
        """``run()`` (a slow hash) in the client-secret queue: 503 at once when it is full."""
        self._refuse_when_full()
        self._waiting += 1
        entered = False
        try:
            async with self._slots:
                self._waiting -= 1
                entered = True
                return await run()
        finally:
            if not entered:
                self._waiting -= 1

    def _refuse_when_full(self) -> None:
        if self._slots.locked() and self._waiting >= self._queue:
            raise AppError(503, HASHING_BUSY, {"Retry-After": "1"})


class IntrospectionClients:
    """Checks HTTP Basic client credentials against the configured clients."""

    def __init__(
        self, clients: dict[str, str], passwords: Passwords, guard: ClientGuard | None = None
    ) -> None:
        self._plain = {cid: _digest(s) for cid, s in clients.items() if not _is_hash(s)}
        self._hashed = {cid: s for cid, s in clients.items() if _is_hash(s)}
        self._passwords = passwords
        self.guard = guard or ClientGuard(None)
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return bool(self._plain or self._hashed)

    async def authenticate(self, client_id: str, secret: str, network: str = "") -> bool:
        """Whether ``(client_id, secret)`` is a configured client; a pair verified before
        costs a dict lookup, any other goes through the guard (Throttled: 429)."""
        stored_hash = self._hashed.get(client_id)
        remembered = _digest(client_id, stored_hash or "", secret)
        if remembered in self._verified:
            self._verified.move_to_end(remembered)
            return True
        return await self.guard.check(
            client_id,
            network,
            lambda: self._verify(client_id, stored_hash, secret),
            hashes=stored_hash is not None,
        )

    async def _verify(self, client_id: str, stored_hash: str | None, secret: str) -> bool | None:
        if stored_hash is None:
            expected = self._plain.get(client_id)
            if expected is None:
                return None  # unknown: refused before any hash
            if not hmac.compare_digest(_digest(secret), expected):
                return False
        elif not await self.guard.hashing(lambda: self._passwords.verify(stored_hash, secret)):
            return False
        self._verified[_digest(client_id, stored_hash or "", secret)] = None
        if len(self._verified) > _REMEMBERED:
            self._verified.popitem(last=False)
        return True


def _is_hash(secret: str) -> bool:
    return secret.startswith(_HASH_PREFIXES)
