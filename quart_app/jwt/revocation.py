"""Revocation: a shared store behind one small interface, mirrored in each worker's memory.

``jwt_required`` must not await I/O on every request, so each worker keeps a
:class:`RevocationList` in memory and a background task (:class:`RevocationSync`) pulls
new entries from the shared :class:`RevocationStore` every ``interval`` seconds. A
revocation made on one worker is therefore enforced by that worker at once and by every
other worker within ``interval`` plus one store round trip (1 s + a few ms by default).

Three kinds of entry cover every case:

* ``jti``: one token (logout, a rotated-out refresh token);
* ``family``: every token descended from one login (logout, refresh-token reuse);
* ``user``: every token of a user issued before a time (password change).

Each entry is kept until the tokens it kills would have expired anyway.

Whatever feeds the mirror (this worker's own revocations, the SQL poll, the Redis
listener) goes through :meth:`RevocationList.apply`, which tells its listeners about the
entries that were new to it: that is how open WebSockets learn that their token died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from .tokens import numeric_date

log = logging.getLogger(__name__)

Kind = Literal["jti", "family", "user"]
FAMILY_CLAIM = "fam"
#: When the session (the login) a token descends from began (OpenID Connect's name):
#: refreshed tokens keep their login's value, so a "user" revocation ends every session
#: begun before it, including tokens refreshed from it later.
SESSION_CLAIM = "auth_time"


def session_start(claims: Mapping[str, Any]) -> float | None:
    """When the token's session began: ``auth_time``, else ``iat``; None if not a number."""
    return numeric_date(claims.get(SESSION_CLAIM, claims.get("iat")))


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation: ``value`` is a jti, a family id, or a user id (the ``sub``)."""

    kind: Kind
    value: str
    expires_at: float
    not_before: float | None = None  # for "user": tokens issued before this are dead


class RevocationStore(Protocol):
    """Where revocations are shared between workers and hosts."""

    async def add(self, entries: Iterable[Revocation]) -> None:
        """Record ``entries``; recording one that exists already is not an error."""

    async def claim(self, entry: Revocation) -> bool:
        """Record ``entry`` unless it exists; True if this call recorded it (atomically)."""

    async def contains(self, kind: Kind, value: str) -> bool:
        """Whether a ``kind`` entry for ``value`` is recorded (authoritative, not the mirror)."""

    async def ends_session(self, sub: str, family: str | None, started: float | None) -> bool:
        """Whether a recorded entry ends this session (authoritative, not the mirror): its
        ``family``, or a ``user`` entry of ``sub`` made after the session ``started``
        (any ``user`` entry of ``sub`` when ``started`` is unknown).
        """

    async def changes_since(self, cursor: int | None) -> tuple[list[Revocation], int]:
        """Entries recorded since ``cursor`` (all live ones when None), and the new cursor.

        An implementation may return entries seen before (they are applied idempotently)
        but must never skip one.
        """


class RevocationsUnknown(Exception):
    """This worker has not loaded the revocations yet (its store has not answered since
    it started), so it cannot tell a revoked token from a valid one.
    """


class RevocationList:
    """The in-memory mirror consulted on every request; all checks are dict lookups.

    ``complete`` is False while the mirror lacks the store's state (a worker that started
    while the store was unreachable): then every token counts as possibly revoked, so a
    logout or password change made earlier is never forgotten by a fresh worker.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.complete = True
        #: What :meth:`prune` calls "now". None given: ``time.time``, or the clock of the
        #: manager whose mirror this becomes (:meth:`adopt_clock`).
        self.clock: Callable[[], float] = clock or time.time
        self._own_clock = clock is not None
        self._jtis: dict[str, float] = {}
        self._families: dict[str, float] = {}
        self._users: dict[str, tuple[float, float]] = {}  # sub -> (not_before, expires_at)
        self._listeners: list[Callable[[list[Revocation]], None]] = []

    def __len__(self) -> int:
        return len(self._jtis) + len(self._families) + len(self._users)

    def adopt_clock(self, clock: Callable[[], float]) -> None:
        """Use ``clock`` unless this mirror was made with a clock of its own."""
        if not self._own_clock:
            self.clock = clock

    def add_listener(self, listener: Callable[[list[Revocation]], None]) -> None:
        """Call ``listener(entries)`` with every batch of entries new to this mirror.

        It runs synchronously inside :meth:`apply`, on the event loop: it must be quick
        and must not raise (an exception is logged and the other listeners still run).
        """
        self._listeners.append(listener)

    def apply(self, entries: Iterable[Revocation]) -> None:
        fresh: list[Revocation] = []
        for entry in entries:
            if entry.kind == "jti":
                if entry.value not in self._jtis:
                    fresh.append(entry)
                self._jtis[entry.value] = entry.expires_at
            elif entry.kind == "family":
                if entry.value not in self._families:
                    fresh.append(entry)
                self._families[entry.value] = entry.expires_at
            elif entry.kind == "user" and entry.not_before is not None:
                known = self._users.get(entry.value)
                if known is None or known[0] < entry.not_before:
                    self._users[entry.value] = (entry.not_before, entry.expires_at)
                    fresh.append(entry)
        if fresh and self._listeners:
            for listener in self._listeners:
                try:
                    listener(fresh)
                except Exception:
                    log.exception("revocation listener failed")

    def has_jti(self, jti: str) -> bool:
        return jti in self._jtis

    def is_revoked(self, claims: Mapping[str, Any], identity_claim_key: str = "sub") -> bool:
        """Whether the mirror revokes a token with these claims.

        Claims of a validly signed token may hold any JSON type. A token whose session
        claims cannot be matched against revocations (a ``jti`` or ``fam`` that is not a
        string, an ``auth_time`` that is not a number) fails closed: it counts as revoked.
        """
        if not self.complete:
            return True  # unknown: refuse rather than accept a revoked token
        jti, family = claims.get("jti"), claims.get(FAMILY_CLAIM)
        if not isinstance(jti, str | None) or not isinstance(family, str | None):
            return True
        if SESSION_CLAIM in claims and session_start(claims) is None:
            return True
        if jti in self._jtis or family in self._families:
            return True
        if self._users:
            user = self._users.get(str(claims.get(identity_claim_key)))
            if user is not None:
                started = session_start(claims)
                return started is None or started < user[0]
        return False

    def entries(self) -> list[Revocation]:
        """Everything the mirror holds, as entries :meth:`apply` takes back."""
        return [
            *(Revocation("jti", key, expires) for key, expires in self._jtis.items()),
            *(Revocation("family", key, expires) for key, expires in self._families.items()),
            *(
                Revocation("user", key, expires, not_before)
                for key, (not_before, expires) in self._users.items()
            ),
        ]

    def prune(self, now: float | None = None) -> int:
        """Forget entries whose tokens have all expired; returns how many were dropped."""
        now = self.clock() if now is None else now
        dropped = 0
        for table in (self._jtis, self._families):
            dead = [key for key, expires in table.items() if expires <= now]
            for key in dead:
                del table[key]
            dropped += len(dead)
        dead_users = [key for key, (_, expires) in self._users.items() if expires <= now]
        for key in dead_users:
            del self._users[key]
        return dropped + len(dead_users)


class Snapshot:
    """The revocations a worker holds, in a file its siblings (and successors) can read.

    Written (atomically: a new file renamed over the old) after each sync that brought
    something new, and touched after every other successful sync, so its mtime says when
    a worker last knew it held the store's state. A worker that starts while the store
    does not answer takes the state from it when that is at most ``max_age`` seconds
    old, instead of refusing every token until the store is back; an older or missing
    snapshot leaves it failing closed, as before.
    """

    def __init__(self, path: Path, max_age: float) -> None:
        self.path = path
        self.max_age = max_age
        self._written_cursor: int | None = None

    def save(self, mirror: RevocationList, cursor: int | None) -> None:
        if cursor is not None and cursor == self._written_cursor and self.path.exists():
            with contextlib.suppress(OSError):
                os.utime(self.path)
            return
        data = {
            "cursor": cursor,
            "entries": [[e.kind, e.value, e.expires_at, e.not_before] for e in mirror.entries()],
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, separators=(",", ":"))
            os.replace(temporary, self.path)
        except OSError as error:
            log.debug("revocation snapshot not written: %s", error)
            return
        self._written_cursor = cursor

    def load(self) -> tuple[list[Revocation], int | None, float] | None:
        """The entries, cursor and age (s) of a fresh enough snapshot, or None."""
        try:
            age = time.time() - self.path.stat().st_mtime
            if age > self.max_age:
                return None
            data = json.loads(self.path.read_text())
            entries = [
                Revocation(kind, str(value), float(expires), not_before)
                for kind, value, expires, not_before in data["entries"]
                if kind in ("jti", "family", "user")
            ]
            cursor = data["cursor"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entries, cursor if isinstance(cursor, int) else None, age


class RevocationSync:
    """Keeps a :class:`RevocationList` up to date from a :class:`RevocationStore`."""

    def __init__(
        self,
        store: RevocationStore,
        mirror: RevocationList,
        interval: float = 1.0,
        snapshot: Snapshot | None = None,
        outage_reason: Callable[[BaseException], str | None] = lambda error: None,
    ) -> None:
        self.store = store
        self.mirror = mirror
        self.interval = interval
        self.snapshot = snapshot
        #: Names an error that is the store being unreachable (logged in one line, not
        #: as a traceback); None for anything else. The service passes its store's.
        self.outage_reason = outage_reason
        self._cursor: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def revoke(self, entries: Iterable[Revocation]) -> None:
        """Record ``entries`` in the store and enforce them in this worker at once."""
        batch = list(entries)
        await self.store.add(batch)
        self.mirror.apply(batch)

    async def claim(self, entry: Revocation) -> bool:
        """Use up ``entry`` (a refresh token's jti) once; False if it was used before."""
        claimed = await self.store.claim(entry)
        self.mirror.apply([entry])
        return claimed

    async def pull(self) -> None:
        """One round trip to the store: apply what is new."""
        entries, self._cursor = await self.store.changes_since(self._cursor)
        self.mirror.apply(entries)
        self.mirror.complete = True
        if self.snapshot is not None:
            self.snapshot.save(self.mirror, self._cursor)

    async def start(self) -> None:
        """Load the store's revocations and keep pulling them every ``interval``.

        A store that does not answer does not stop the start-up: the mirror stays
        incomplete (tokens are refused as unknown, never accepted) and the loop keeps
        trying until the store answers.
        """
        try:
            await self.pull()
        except Exception as error:
            self._failing = True
            taken = self.snapshot.load() if self.snapshot is not None else None
            if taken is not None:
                entries, self._cursor, age = taken
                self.mirror.apply(entries)
                self.mirror.complete = True
                log.warning(
                    "revocations not loaded from the store (%s); took a sibling's snapshot"
                    " %.1fs old (%d entries), retrying the store every %.1fs",
                    error or type(error).__name__,
                    age,
                    len(entries),
                    self.interval,
                )
            else:
                self.mirror.complete = False
                log.warning(
                    "revocations not loaded (%s) and no snapshot fresh enough; token checks"
                    " answer 503 until the store answers, retrying every %.1fs",
                    error or type(error).__name__,
                    self.interval,
                )
        self._task = asyncio.create_task(self._run(), name="revocation-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.pull()
            except Exception as error:
                # Keep serving with what we know; say so once, and once when it recovers.
                if not self._failing:
                    reason = self.outage_reason(error)
                    if reason is None:
                        log.exception("revocation sync failed; retrying every %.1fs", self.interval)
                    else:  # an outage, not a bug: one line
                        log.warning(
                            "revocation sync failed (database %s: %s); retrying every %.1fs",
                            reason,
                            error,
                            self.interval,
                        )
                self._failing = True
                continue
            if self._failing:
                log.warning("revocation sync recovered; revocations loaded")
                self._failing = False
            if time.monotonic() - last_prune > 60:
                self.mirror.prune()
                last_prune = time.monotonic()
