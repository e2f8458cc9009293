"""Revocation fan-out through Redis pub/sub: every worker on every host learns in milliseconds.

The SQL store stays the source of truth and every worker keeps polling it
(:class:`~quart_app.jwt.revocation.RevocationSync`); Redis only shortens the wait.
:class:`RedisRevocationBus` wraps the store so each recorded revocation is also published
on ``<REDIS_PREFIX>revocations``, and a listener in each worker applies what arrives to
that worker's mirror. The JWT extension knows nothing of this: it sees a store and a
mirror, as before.

Pub/sub delivers at most once, so nothing here may be the only path:

* a publish that fails is logged and dropped: the SQL poll carries that revocation;
* when the listener's connection drops (Redis restarted, connection killed, network
  gone) it logs once, retries with back-off, and on every (re)subscription pulls the SQL
  store at once, so whatever was published while it was away is caught up immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..jwt.revocation import Kind, Revocation, RevocationStore, RevocationSync
from .redis_breaker import RedisBreaker

log = logging.getLogger(__name__)

#: Where create_app keeps the app's bus (None without REDIS_URL).
BUS_EXTENSION_KEY = "quart_app.redis_bus"
KINDS: frozenset[str] = frozenset({"jti", "family", "user"})


def encode(entries: Iterable[Revocation]) -> str:
    return json.dumps([[e.kind, e.value, e.expires_at, e.not_before] for e in entries])


def decode(payload: str | bytes) -> list[Revocation]:
    """Entries of one message; anything malformed is dropped (the SQL poll still has it)."""
    entries: list[Revocation] = []
    for item in json.loads(payload):
        kind, value, expires_at, not_before = item
        if kind not in KINDS or not isinstance(value, str):
            continue
        entries.append(
            Revocation(
                kind=kind,
                value=value,
                expires_at=float(expires_at),
                not_before=None if not_before is None else float(not_before),
            )
        )
    return entries


class PublishingStore:
    """A :class:`RevocationStore` that also announces what it recorded on the bus."""

    def __init__(self, inner: RevocationStore, bus: RedisRevocationBus) -> None:
        self.inner = inner
        self.bus = bus

    async def add(self, entries: Iterable[Revocation]) -> None:
        batch = list(entries)
        await self.inner.add(batch)  # committed first: a message never outruns the truth
        await self.bus.publish(batch)

    async def claim(self, entry: Revocation) -> bool:
        claimed = await self.inner.claim(entry)
        if claimed:
            await self.bus.publish([entry])
        return claimed

    async def contains(self, kind: Kind, value: str) -> bool:
        return await self.inner.contains(kind, value)

    async def ends_session(self, sub: str, family: str | None, started: float | None) -> bool:
        return await self.inner.ends_session(sub, family, started)

    async def changes_since(self, cursor: int | None) -> tuple[list[Revocation], int]:
        return await self.inner.changes_since(cursor)


class RedisRevocationBus:
    """Publishes revocations and feeds those of every other worker into this one's mirror.

    ``start(sync)`` after the sync has started; ``stop()`` before the database closes.
    Start-up waits at most ``2 * timeout`` for Redis: without it a worker serves on the
    SQL poll until it connects.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "quart_app:",
        timeout: float = 0.5,
        heartbeat: float = 5.0,
        max_backoff: float = 2.0,
    ) -> None:
        self.url = url
        self.channel = f"{prefix}revocations"
        self.client_name = f"{prefix.rstrip(':')}:revocations".replace(" ", "_")
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.max_backoff = max_backoff
        #: Set while the listener is subscribed (and has caught up with the SQL store).
        self.connected = asyncio.Event()
        self.received = 0
        self.reconnects = 0
        self._publisher: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._publish_failing = False
        #: Publishes pass it (logout must not wait for a hung Redis); the listener,
        #: a background task with its own back-off, does not.
        self.breaker: RedisBreaker | None = None

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], *, breaker: RedisBreaker | None = None
    ) -> RedisRevocationBus | None:
        url = settings.get("REDIS_URL")
        if not url:
            return None
        bus = cls(str(url), prefix=str(settings["REDIS_PREFIX"]))
        bus.breaker = breaker
        return bus

    def wrap(self, store: RevocationStore) -> PublishingStore:
        return PublishingStore(store, self)

    def _client(self, guarded: bool = False) -> Redis:
        options: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "socket_keepalive": True,
            "client_name": self.client_name,
        }
        if guarded and self.breaker is not None:
            return self.breaker.client(**options)
        return Redis.from_url(self.url, **options)

    async def publish(self, entries: list[Revocation]) -> None:
        """Announce ``entries``; a failure is logged, never raised (the SQL poll has them)."""
        if not entries or self._publisher is None:
            return
        try:
            await self._publisher.publish(self.channel, encode(entries))
        except (RedisError, OSError) as error:
            if not self._publish_failing:
                log.warning("revocation publish failed (%s); other workers learn by SQL", error)
            self._publish_failing = True
            return
        if self._publish_failing:
            log.info("revocation publish works again")
            self._publish_failing = False

    async def start(self, sync: RevocationSync) -> None:
        """Start listening; wait briefly for the subscription, so that a worker reporting
        ready is on the channel whenever Redis is up (and serves without it otherwise).
        """
        self._publisher = self._client(guarded=True)
        self._task = asyncio.create_task(self._listen(sync), name="revocation-bus")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=2 * self.timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
        self.connected.clear()

    async def _listen(self, sync: RevocationSync) -> None:
        backoff = 0.05
        lost_at: float | None = None
        while True:
            client = self._client()
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    # Whatever was published before we listened is in SQL: fetch it now.
                    await self._catch_up(sync)
                    self.connected.set()
                    if lost_at is not None:
                        log.warning(
                            "revocation channel back after %.1fs; caught up from SQL",
                            time.monotonic() - lost_at,
                        )
                        lost_at = None
                    backoff = 0.05
                    await self._receive(pubsub, sync)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as error:
                self.connected.clear()
                if lost_at is None:
                    lost_at = time.monotonic()
                    log.warning(
                        "revocation channel unavailable (%s); falling back to the SQL poll"
                        " every %.1fs until Redis answers",
                        error,
                        sync.interval,
                    )
                self.reconnects += 1
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)

    async def _catch_up(self, sync: RevocationSync) -> None:
        try:
            await sync.pull()
        except Exception:  # the SQL poll retries on its own schedule
            log.warning("catch-up pull from the revocation store failed", exc_info=True)

    async def _receive(self, pubsub: Any, sync: RevocationSync) -> None:
        """Apply messages until the connection fails; a silent connection is pinged."""
        last_seen = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self.heartbeat)
            now = time.monotonic()
            if message is None:
                if now - last_seen < self.heartbeat:
                    continue
                if pinged:
                    raise TimeoutError(f"no answer from Redis in {now - last_seen:.1f}s")
                await pubsub.ping()
                pinged = True
                continue
            last_seen, pinged = now, False
            if message.get("type") != "message":
                continue
            try:
                entries = decode(message["data"])
            except (ValueError, TypeError):
                log.warning("ignored a malformed revocation message")
                continue
            sync.mirror.apply(entries)
            self.received += 1
