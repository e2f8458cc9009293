"""SessionStore: the only code that touches session rows.

Every decision is made in one transaction that also writes its security events and the
revocations of the sessions it ends (see :mod:`.events` and :mod:`.revocations`):

* :meth:`SessionStore.start` locks the user row first (``SELECT ... FOR UPDATE`` on
  PostgreSQL; on SQLite a no-op ``UPDATE`` that takes the write lock), checks that the
  credential epoch the login read before its password check is still current and the
  account is not disabled, inserts the session and ends the least recently used ones
  beyond the limit. :meth:`SessionStore.end_all` starts with the ``UPDATE`` of that row
  (bumping the epoch), so a login and a password change are serialised on it: either
  the login committed first and its session is ended by the change, or the login sees
  the new epoch and creates nothing. No clock is compared.
* :meth:`SessionStore.rotate` spends a refresh token with one conditional ``UPDATE`` of
  the session row (the presented jti is the current one, the session is live), which
  ending the session updates too: whichever commits second sees the other's write.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update

from ..accounts.events import (
    LOGIN,
    REFRESH,
    REFRESH_REUSE,
    SESSION_ENDED,
    Client,
    SecurityEvent,
)
from ..jwt.revocation import Revocation
from .db import Database, bounded_store
from .errors import retry_conflicts
from .events import Recording, recording
from .models import SessionRow, User
from .revocations import add_revocations


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Seconds: ``idle`` without a refresh, ``max_age`` from the login; ``limit`` live
    sessions per user (0: no limit); ``grace`` for the previous refresh token (0: off);
    ``horizon``: how long a revocation must be kept (the longest token lifetime)."""

    idle: float
    max_age: float
    limit: int
    grace: float
    horizon: float


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    user_id: int
    created_at: float
    last_used_at: float
    expires_at: float
    client: str
    user_agent: str
    current_jti: str
    ended_at: float | None = None
    ended_reason: str | None = None


class SessionRefused(Exception):
    """No session for this login: ``reason`` is "disabled", "credentials_changed" (the
    epoch read before the password check is no longer current) or "unknown_user"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UserNotFound(Exception):
    """No user with that id."""


Outcome = Literal["rotated", "grace", "unknown", "ended", "expired", "reuse"]


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a refresh got: "rotated" or "grace" (``session`` is live: issue a pair whose
    refresh token carries ``session.current_jti``), else why not; ``revoked`` lists what
    was revoked in the transaction (announce it)."""

    outcome: Outcome
    session: SessionRecord | None = None
    revoked: tuple[Revocation, ...] = ()


@dataclass(frozen=True, slots=True)
class Ended:
    """Sessions ended in one transaction, and the revocations recorded with them."""

    ids: tuple[str, ...]
    revoked: tuple[Revocation, ...]


def _record(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        client=row.client,
        user_agent=row.user_agent,
        current_jti=row.current_jti,
        ended_at=row.ended_at,
        ended_reason=row.ended_reason,
    )


_COLUMNS = (
    SessionRow.id,
    SessionRow.user_id,
    SessionRow.created_at,
    SessionRow.last_used_at,
    SessionRow.expires_at,
    SessionRow.client,
    SessionRow.user_agent,
    SessionRow.current_jti,
    SessionRow.ended_at,
    SessionRow.ended_reason,
)


@bounded_store
class SessionStore:
    def __init__(
        self, db: Database, lifetimes: Lifetimes, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.lifetimes = lifetimes
        #: What "now" is for sessions' lifetimes (the app passes its JWT manager's clock).
        self.clock = clock

    # -- what is live ---------------------------------------------------------------

    def _live(self, now: float) -> ColumnElement[bool]:
        return and_(
            SessionRow.ended_at.is_(None),
            SessionRow.expires_at > now,
            SessionRow.last_used_at > now - self.lifetimes.idle,
        )

    def _family(self, session_id: str, now: float) -> Revocation:
        return Revocation("family", session_id, now + self.lifetimes.horizon)

    async def _end(
        self,
        tx: Recording,
        where: ColumnElement[bool],
        reason: str,
        now: float,
        event: SecurityEvent | None,
    ) -> Ended:
        """End the sessions ``where`` selects (live or not yet marked ended)."""
        result = await tx.session.execute(
            update(SessionRow)
            .where(where, SessionRow.ended_at.is_(None))
            .values(ended_at=now, ended_reason=reason)
            .returning(SessionRow.id)
        )
        ids = tuple(sorted(str(row[0]) for row in result))
        revoked = tuple(self._family(session_id, now) for session_id in ids)
        await add_revocations(tx.session, revoked)
        if event is not None:
            detail = {**(event.detail or {}), "reason": reason, "ended": len(ids)}
            await tx.record(
                SecurityEvent(
                    event.event,
                    user_id=event.user_id,
                    session_id=event.session_id,
                    client=event.client,
                    detail=detail,
                    time=event.time,
                )
            )
        return Ended(ids, revoked)

    # -- login ----------------------------------------------------------------------

    async def _lock_user(self, tx: Recording, user_id: int) -> tuple[int, bool] | None:
        """Lock the user row for this transaction; its (credential_epoch, disabled)."""
        if self.db.is_sqlite:
            # Starting with a write takes SQLite's write lock now (a read upgraded to a
            # write later could fail at once under WAL instead of waiting).
            result = await tx.session.execute(
                update(User)
                .where(User.id == user_id)
                .values(credential_epoch=User.credential_epoch)
                .returning(User.credential_epoch, User.disabled)
            )
        else:
            result = await tx.session.execute(
                select(User.credential_epoch, User.disabled)
                .where(User.id == user_id)
                .with_for_update()
            )
        row = result.first()
        return None if row is None else (int(row[0]), bool(row[1]))

    @retry_conflicts()
    async def start(
        self,
        *,
        user_id: int,
        epoch: int,
        session_id: str,
        jti: str,
        client: Client,
        now: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> tuple[SessionRecord, Ended]:
        """Create the session of a login whose password check read ``epoch``, or raise
        :class:`SessionRefused`; records the ``login`` event. Also ends the least
        recently used sessions beyond the limit (returned: announce their revocations).
        """
        now = self.clock() if now is None else now
        clipped = client.clipped()
        async with recording(self.db) as tx:
            state = await self._lock_user(tx, user_id)
            if state is None:
                raise SessionRefused("unknown_user")
            current, disabled = state
            if disabled:
                raise SessionRefused("disabled")
            if current != epoch:
                raise SessionRefused("credentials_changed")
            record = SessionRecord(
                id=session_id,
                user_id=user_id,
                created_at=now,
                last_used_at=now,
                expires_at=now + self.lifetimes.max_age,
                client=clipped.address,
                user_agent=clipped.user_agent,
                current_jti=jti,
            )
            await tx.session.execute(
                insert(SessionRow).values(
                    id=record.id,
                    user_id=user_id,
                    created_at=now,
                    last_used_at=now,
                    expires_at=record.expires_at,
                    client=record.client,
                    user_agent=record.user_agent,
                    current_jti=jti,
                )
            )
            await tx.record(
                SecurityEvent(
                    LOGIN,
                    user_id=user_id,
                    session_id=session_id,
                    client=client,
                    detail=detail,
                    time=now,
                )
            )
            ended = await self._enforce_limit(tx, user_id, client, now)
        return record, ended

    async def _enforce_limit(
        self, tx: Recording, user_id: int, client: Client, now: float
    ) -> Ended:
        """End the user's sessions that aged out, and the least recently used live ones
        beyond the limit. Runs under the user row's lock, so logins of one user at once
        cannot both count below the limit."""
        mine = SessionRow.user_id == user_id
        expired = await self._end(
            tx,
            and_(
                mine,
                or_(
                    SessionRow.expires_at <= now,
                    SessionRow.last_used_at <= now - self.lifetimes.idle,
                ),
            ),
            "expired",
            now,
            None,
        )
        limit = self.lifetimes.limit
        if limit <= 0:
            return expired
        surplus = await tx.session.scalars(
            select(SessionRow.id)
            .where(mine, SessionRow.ended_at.is_(None))
            .order_by(SessionRow.last_used_at.desc(), SessionRow.created_at.desc())
            .offset(limit)
        )
        ids = list(surplus)
        if not ids:
            return expired
        over = await self._end(
            tx,
            SessionRow.id.in_(ids),
            "limit",
            now,
            SecurityEvent(SESSION_ENDED, user_id=user_id, client=client, time=now),
        )
        return Ended(expired.ids + over.ids, expired.revoked + over.revoked)

    # -- refresh --------------------------------------------------------------------

    @retry_conflicts()
    async def rotate(
        self,
        *,
        session_id: str,
        user_id: int,
        presented_jti: str,
        new_jti: str,
        client: Client,
        now: float | None = None,
    ) -> Rotation:
        """Spend the refresh token ``presented_jti`` of a session (see :class:`Rotation`).

        Only the current token rotates. The one it replaced, presented again within the
        grace, gets a pair carrying the current jti (so both answers stay usable, and
        spending either one rotates the session). Any other token of the session is
        reuse: the session ends. A session that idled or aged out ends as "expired".
        """
        now = self.clock() if now is None else now
        this = and_(SessionRow.id == session_id, SessionRow.user_id == user_id)
        async with recording(self.db) as tx:
            result = await tx.session.execute(
                update(SessionRow)
                .where(this, self._live(now), SessionRow.current_jti == presented_jti)
                .values(
                    current_jti=new_jti,
                    previous_jti=presented_jti,
                    rotated_at=now,
                    last_used_at=now,
                )
                .returning(*_COLUMNS)
            )
            row = result.first()
            event = SecurityEvent(
                REFRESH, user_id=user_id, session_id=session_id, client=client, time=now
            )
            if row is not None:
                await tx.record(event)
                return Rotation("rotated", _record(row))
            # Not the current token of a live session: find out why, under the row's
            # lock (the UPDATE above took SQLite's write lock already).
            found = (
                await tx.session.execute(select(SessionRow).where(this).with_for_update())
            ).scalar_one_or_none()
            if found is None:
                return Rotation("unknown")
            if found.ended_at is not None:
                return Rotation("ended")
            if found.expires_at <= now or found.last_used_at <= now - self.lifetimes.idle:
                ended = await self._end(
                    tx,
                    SessionRow.id == session_id,
                    "expired",
                    now,
                    SecurityEvent(
                        SESSION_ENDED,
                        user_id=user_id,
                        session_id=session_id,
                        client=client,
                        time=now,
                    ),
                )
                return Rotation("expired", revoked=ended.revoked)
            grace = self.lifetimes.grace
            if (
                grace > 0
                and found.previous_jti == presented_jti
                and found.rotated_at is not None
                # Either side: a refresh that waited for the row may have read its clock
                # before the one it waited for rotated (or on a host whose clock is behind).
                and abs(now - found.rotated_at) <= grace
            ):
                found.last_used_at = max(found.last_used_at, now)
                await tx.record(
                    SecurityEvent(
                        REFRESH,
                        user_id=user_id,
                        session_id=session_id,
                        client=client,
                        detail={"grace": True},
                        time=now,
                    )
                )
                return Rotation("grace", _record(found))
            ended = await self._end(
                tx,
                SessionRow.id == session_id,
                "refresh_reuse",
                now,
                SecurityEvent(
                    REFRESH_REUSE,
                    user_id=user_id,
                    session_id=session_id,
                    client=client,
                    time=now,
                ),
            )
            return Rotation("reuse", revoked=ended.revoked)

    # -- ending ---------------------------------------------------------------------

    @retry_conflicts()
    async def end(
        self,
        session_id: str,
        *,
        user_id: int,
        reason: str,
        event: SecurityEvent,
        extra: Sequence[Revocation] = (),
        now: float | None = None,
    ) -> Ended:
        """End one live session of ``user_id`` (nothing when it is not one); ``extra``
        revocations (the logout's access token) are recorded with it."""
        now = self.clock() if now is None else now
        async with recording(self.db) as tx:
            ended = await self._end(
                tx,
                and_(
                    SessionRow.id == session_id,
                    SessionRow.user_id == user_id,
                    self._live(now),
                ),
                reason,
                now,
                event,
            )
            if extra:
                await add_revocations(tx.session, extra)
        return Ended(ended.ids, ended.revoked + tuple(extra))

    @retry_conflicts()
    async def end_all(
        self,
        user_id: int,
        *,
        reason: str,
        event: SecurityEvent,
        keep: str | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
        now: float | None = None,
        within: Callable[[Recording], Awaitable[object]] | None = None,
    ) -> Ended:
        """End every session of the user (but ``keep``), race-free with logins in flight.

        One transaction: the user row's ``credential_epoch`` is bumped first (with the
        new ``password_hash`` / ``disabled`` when given), which waits for logins holding
        the row and makes the ones still checking a password create nothing; then every
        session not yet ended is ended and its family revoked; ``event`` is recorded.
        ``within`` runs first in that transaction (e.g. a password reset using up its
        token): whatever it raises rolls everything back. Raises :class:`UserNotFound`.
        """
        now = self.clock() if now is None else now
        values: dict[str, Any] = {"credential_epoch": User.credential_epoch + 1}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if disabled is not None:
            values["disabled"] = disabled
        async with recording(self.db) as tx:
            if within is not None:
                await within(tx)
            found = await tx.session.execute(
                update(User).where(User.id == user_id).values(**values).returning(User.id)
            )
            if found.first() is None:
                raise UserNotFound(user_id)
            where = SessionRow.user_id == user_id
            if keep is not None:
                where = and_(where, SessionRow.id != keep)
            return await self._end(tx, where, reason, now, event)

    # -- reading --------------------------------------------------------------------

    async def live(self, user_id: int, now: float | None = None) -> list[SessionRecord]:
        """The user's live sessions, most recent activity first."""
        now = self.clock() if now is None else now
        async with self.db.session() as session:
            rows = await session.execute(
                select(*_COLUMNS)
                .where(SessionRow.user_id == user_id, self._live(now))
                .order_by(SessionRow.last_used_at.desc(), SessionRow.created_at.desc())
            )
            return [_record(row) for row in rows]

    async def spendable(self, session_id: str, user_id: int, jti: str) -> bool:
        """Whether ``jti`` is a refresh token a refresh would accept now (the current one
        of a live session, or the previous one within the grace)."""
        now = self.clock()
        tokens = SessionRow.current_jti == jti
        if self.lifetimes.grace > 0:
            tokens = or_(
                tokens,
                and_(
                    SessionRow.previous_jti == jti,
                    SessionRow.rotated_at >= now - self.lifetimes.grace,
                ),
            )
        async with self.db.session() as session:
            found = await session.scalar(
                select(SessionRow.id).where(
                    SessionRow.id == session_id,
                    SessionRow.user_id == user_id,
                    self._live(now),
                    tokens,
                )
            )
            return found is not None

    @retry_conflicts()
    async def prune(self, before: float) -> int:
        """Delete sessions that ended or expired before ``before``; returns how many."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(SessionRow).where(
                    or_(SessionRow.ended_at < before, SessionRow.expires_at < before)
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)
