"""Resource-server mode: verify another service's tokens with the keys its JWKS publishes.

With ``JWT_JWKS_URL`` set, the extension verifies RS/PS/ES/EdDSA tokens with public keys
fetched (asynchronously, with ``JWT_JWKS_TIMEOUT_SECONDS``) from that URL, and needs no
secret or key of its own::

    app.config.update(JWT_ALGORITHM="RS256", JWT_JWKS_URL="https://auth.example/.well-known/jwks.json")
    JWTManager(app)

* The keys are cached. A token whose ``kid`` is unknown makes one fetch (concurrent
  requests share it), at most once per ``JWT_JWKS_MIN_REFRESH_SECONDS``, so a flood of
  made-up ``kid`` values cannot turn into a flood of requests to the issuer. The set is
  also refreshed in the background once it is ``JWT_JWKS_CACHE_SECONDS`` old, so keys the
  issuer retires stop verifying.
* While the issuer is unreachable (or answers garbage) the keys fetched before keep
  serving; the failure is logged once, and the recovery.
* The algorithm is the configuration's (``JWT_ALGORITHM``/``JWT_DECODE_ALGORITHMS``),
  never the token's or the JWKS's alone: a JWK is used only for configured algorithms of
  its own key type, and one that names its ``alg`` only for that one. ``oct`` (shared
  secret) keys, keys for encryption (``use: enc``) and private members are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from .keys import ALGORITHMS, HMAC_ALGORITHMS, Key, KeySet, family

log = logging.getLogger(__name__)

#: JWK ``kty`` -> key family of ``keys``.
_KTY = {"RSA": "rsa", "EC": "ec", "OKP": "okp"}
#: A JWKS larger than this is refused (a JWKS is a few KiB).
MAX_JWKS_BYTES = 1024 * 1024


class RemoteKey(Key):
    """A public key from a JWKS; with ``pinned`` it verifies its JWK's ``alg`` only."""

    def __init__(self, algorithm: str, public: Any, kid: str | None, pinned: bool) -> None:
        self.pinned = pinned
        super().__init__(algorithm, public=public, kid=kid)

    def prepared(self, algorithm: str) -> Any:
        if self.pinned and algorithm != self.algorithm:
            return None
        return super().prepared(algorithm)


def keys_from_jwks(document: Any, algorithms: Sequence[str]) -> list[Key]:
    """The usable verification keys of a JWK Set, for the configured ``algorithms``."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWK Set is an object with a "keys" array')
    allowed = [alg for alg in algorithms if alg not in HMAC_ALGORITHMS]
    found: list[Key] = []
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("use", "sig") != "sig":
            continue
        kind = _KTY.get(str(jwk.get("kty")))
        kid = jwk.get("kid")
        named = jwk.get("alg")
        if kind is None or (kid is not None and not isinstance(kid, str)):
            continue
        if named is not None:
            if named not in allowed or family(named) != kind:
                continue  # the JWKS may narrow the configuration, never widen it
            algorithm, pinned = str(named), True
        else:
            candidates = [alg for alg in allowed if family(alg) == kind]
            if not candidates:
                continue
            algorithm, pinned = candidates[0], False
        public = {k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            key = ALGORITHMS[algorithm].from_jwk(json.dumps(public))
            key = key.public_key() if hasattr(key, "private_bytes") else key
            found.append(RemoteKey(algorithm, key, kid, pinned))
        except Exception as error:  # one bad key must not hide the others
            log.warning("JWKS key %r skipped: %s", kid, error)
    return found


class RemoteKeySet(KeySet):
    """The keys published at a JWKS URL, fetched on demand and kept while it is down."""

    def __init__(
        self,
        url: str,
        algorithms: Sequence[str],
        *,
        timeout: float = 5.0,
        min_refresh: float = 60.0,
        max_age: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        #: Seconds that only move forward, for ``min_refresh`` and ``max_age`` (intervals,
        #: not dates: not the manager's clock). Tests replace it to skip a window.
        self.timer = timer
        self.url = url
        self.algorithms = tuple(algorithms)
        self.timeout = timeout
        self.min_refresh = min_refresh
        self.max_age = max_age
        self._transport = transport
        self._fetched_at: float | None = None  # timer() of the last good fetch
        self._attempted_at: float | None = None  # of the last attempt, good or not
        self._inflight: asyncio.Task[bool] | None = None
        self._background: asyncio.Task[bool] | None = None
        self._failing = False
        #: Fetches made (good or not): for tests and metrics.
        self.fetches = 0

    async def fetch(self) -> bool:
        """Fetch the JWKS now; True if it was read. On failure the old keys stay."""
        self.fetches += 1
        self._attempted_at = self.timer()
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout, transport=self._transport, follow_redirects=False
            ) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                if len(response.content) > MAX_JWKS_BYTES:
                    raise ValueError(f"the JWKS is over {MAX_JWKS_BYTES} bytes")
                keys = keys_from_jwks(response.json(), self.algorithms)
        except Exception as error:
            if not self._failing:
                log.warning(
                    "JWKS %s unavailable (%s); %d cached key(s) keep serving",
                    self.url,
                    error,
                    len(self._keys),
                )
            self._failing = True
            return False
        if self._failing:
            log.warning("JWKS %s reachable again (%d keys)", self.url, len(keys))
        self._failing = False
        self._set(keys)
        self._fetched_at = self.timer()
        return True

    async def refetch(self, header: Mapping[str, Any]) -> bool:
        """For a token whose key is unknown: fetch once (shared by concurrent callers,
        at most once per ``min_refresh``); True if the set changed hands since."""
        attempted = self._attempted_at
        if attempted is not None and self.timer() - attempted < self.min_refresh:
            inflight = self._inflight
            return bool(inflight is not None and await asyncio.shield(inflight))
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self.fetch(), name="jwks-fetch")
        return await asyncio.shield(self._inflight)

    def verification_key(
        self, header: Mapping[str, Any], allowed: Sequence[str] | frozenset[str]
    ) -> tuple[Any, str]:
        self._revalidate_if_old()
        return super().verification_key(header, allowed)

    def _revalidate_if_old(self) -> None:
        fetched = self._fetched_at
        if fetched is None or self.timer() - fetched < self.max_age:
            return
        if self._background is not None and not self._background.done():
            return
        attempted = self._attempted_at
        if attempted is not None and self.timer() - attempted < self.min_refresh:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: the next request does it
            self._background = asyncio.get_running_loop().create_task(
                self.fetch(), name="jwks-revalidate"
            )

    def signing_key(self, algorithm: str) -> Key:
        raise RuntimeError(
            "JWT_JWKS_URL is set: this app verifies another issuer's tokens and signs none"
        )


def remote_key_set(config: Any) -> RemoteKeySet:
    """The key set for ``JWT_JWKS_URL`` and its settings (see the module docstring)."""
    algorithms = [alg for alg in config.decode_algorithms if alg not in HMAC_ALGORITHMS]
    if not algorithms:
        raise RuntimeError(
            "JWT_JWKS_URL needs an asymmetric JWT_ALGORITHM or JWT_DECODE_ALGORITHMS"
            " (RS*, PS*, ES*, EdDSA): a JWKS publishes no shared secrets"
        )
    return RemoteKeySet(
        config.jwks_url,
        algorithms,
        timeout=config.jwks_timeout,
        min_refresh=config.jwks_min_refresh,
        max_age=config.jwks_cache_seconds,
    )
