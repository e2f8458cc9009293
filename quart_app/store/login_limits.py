"""LoginLimitStore: atomic counters of failed password checks (see security/login_limits.py).

Every decision is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement, the
same on SQLite and PostgreSQL: the row is created or updated, and the statement returns
its own verdict (the ``admitted`` column it just wrote), so no read ever precedes the
write it decides. The reservations of one attempt (network, pair, account) run in one
transaction: when a later one refuses, the earlier ones are rolled back, so an attempt
that never reached a password check counts nowhere. PostgreSQL's row locks (SQLite's
database lock) serialise attempts at one counter; every transaction takes the rows in
the same order, so two never wait on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, literal, update
from sqlalchemy.dialects import postgresql, sqlite

from .db import Database, bounded_store
from .errors import retry_conflicts
from .models import LoginLimit

#: Doublings of the back-off spelled out in SQL; past them the cap applies (2**64 s).
MAX_DOUBLINGS = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """After ``threshold`` failures in a row, lock for ``base`` seconds, doubling with each
    further failure up to ``cap``; a failure ``forget`` seconds after the last starts
    the count again. Reserving counts the attempt and sets the lock it would earn."""

    threshold: int
    base: float
    cap: float
    forget: float

    def delays(self) -> list[float]:
        """The lock after the threshold-th failure, the next one, ... until the cap."""
        out: list[float] = []
        for k in range(MAX_DOUBLINGS):
            out.append(min(self.cap, self.base * 2.0**k))
            if out[-1] >= self.cap:
                break
        return out


@dataclass(frozen=True, slots=True)
class Block:
    """``threshold`` failures within ``window`` seconds (counted from the first) block for
    ``seconds``, after which the count starts again. The block starts with the first
    attempt past the threshold, so a check that succeeds (and is refunded) never
    causes one."""

    threshold: int
    window: float
    seconds: float


@dataclass(frozen=True, slots=True)
class Verdict:
    admitted: bool
    locked_until: float | None
    trusted_until: float | None


class Refused(Exception):
    """A reservation refused: the transaction is rolled back."""

    def __init__(self, step: str, until: float) -> None:
        super().__init__(step)
        self.step = step
        self.until = until


@bounded_store
class LoginLimitStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self) -> Any:
        dialect = self.db.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(LoginLimit)
        if dialect == "sqlite":
            return sqlite.insert(LoginLimit)
        raise RuntimeError(f"unsupported database dialect {dialect!r}")

    def _backoff(self, key: str, policy: Backoff, now: float) -> Any:
        row = LoginLimit
        locked = row.locked_until > now
        stale = row.since < now - policy.forget
        counted = case((stale, 1), else_=row.failures + 1)
        delays = policy.delays()

        def lock_for(failures: Any) -> Any:
            over = failures - policy.threshold
            return case(
                (failures < policy.threshold, None),
                *((over == k, literal(now + delay)) for k, delay in enumerate(delays)),
                else_=literal(now + policy.cap),
            )

        horizon = now + policy.cap + policy.forget
        first_lock = now + delays[0] if policy.threshold <= 1 else None
        insert = self._insert().values(
            key=key,
            failures=1,
            since=now,
            locked_until=first_lock,
            admitted=True,
            expires_at=horizon,
        )
        return insert.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "failures": case((locked, row.failures), else_=counted),
                "since": case((locked, row.since), else_=now),
                "locked_until": case((locked, row.locked_until), else_=lock_for(counted)),
                "admitted": ~locked | (row.locked_until.is_(None)),
                "expires_at": func.max(row.expires_at, horizon)
                if self.db.engine.dialect.name == "sqlite"
                else func.greatest(row.expires_at, horizon),
            },
        ).returning(row.admitted, row.locked_until, row.trusted_until)

    def _block(self, key: str, policy: Block, now: float) -> Any:
        row = LoginLimit
        blocked = row.locked_until > now
        expired = row.since < now - policy.window
        full = ~expired & (row.failures >= policy.threshold)
        horizon = now + policy.window + policy.seconds
        insert = self._insert().values(
            key=key, failures=1, since=now, locked_until=None, admitted=True, expires_at=horizon
        )
        refuse = blocked | full
        return insert.on_conflict_do_update(
            index_elements=["key"],
            set_={
                # Beginning a block starts the count again, from the block's end.
                "failures": case(
                    (blocked, row.failures), (full, 0), (expired, 1), else_=row.failures + 1
                ),
                "since": case(
                    (blocked, row.since),
                    (full, now + policy.seconds),
                    (expired, now),
                    else_=row.since,
                ),
                "locked_until": case(
                    (blocked, row.locked_until), (full, now + policy.seconds), else_=None
                ),
                "admitted": ~refuse | (row.locked_until.is_(None) & ~full),
                "expires_at": now + policy.window + policy.seconds,
            },
        ).returning(row.admitted, row.locked_until, row.trusted_until)

    async def _autocommit(self, statement: Any) -> Any:
        """Run one statement as its own transaction, with no BEGIN/COMMIT round trips:
        the row stays locked only while the database executes it."""
        async with self.db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await conn.execute(statement)

    @retry_conflicts()
    async def _step(self, key: str, policy: Backoff | Block, now: float) -> Verdict:
        """One reservation: one statement."""
        statement = (
            self._block(key, policy, now)
            if isinstance(policy, Block)
            else self._backoff(key, policy, now)
        )
        admitted, locked_until, trusted_until = (await self._autocommit(statement)).one()
        return Verdict(bool(admitted), locked_until, trusted_until)

    @retry_conflicts()
    async def _refund(self, keys: Sequence[str]) -> None:
        """Take back one reservation at each of ``keys`` (their locks stay)."""
        row = LoginLimit
        await self._autocommit(
            update(row).where(row.key.in_(keys), row.failures > 0).values(failures=row.failures - 1)
        )

    async def reserve(
        self,
        first: tuple[str, str, Backoff],
        now: float,
        *,
        unless_trusted: tuple[str, str, Backoff] | None = None,
        last: Sequence[tuple[str, str, Backoff | Block]] = (),
    ) -> Verdict:
        """Reserve one attempt at ``first`` (name, key, policy), then at ``unless_trusted``
        unless ``first``'s row trusts the client, then at each of ``last``. Returns
        ``first``'s verdict; raises :class:`Refused` when one refuses, after taking back
        the reservations made before it.

        Each reservation commits on its own: a row is locked for one statement, not for
        the whole attempt, so a flood at one account or from one network queues for
        microseconds per attempt instead of holding every worker's connections. The most
        specific counter comes first, so a flood refused there never touches (nor
        inflates, even for a moment) the counters shared with other attempts.
        """
        verdict = await self._step(first[1], first[2], now)
        if not verdict.admitted:
            raise Refused(first[0], verdict.locked_until or now)
        todo = list(last)
        trusted = verdict.trusted_until is not None and verdict.trusted_until > now
        if unless_trusted is not None and not trusted:
            todo.insert(0, unless_trusted)
        reserved = [first[1]]
        for name, key, policy in todo:
            step = await self._step(key, policy, now)
            if not step.admitted:
                await self._refund(reserved)
                raise Refused(name, step.locked_until or now)
            reserved.append(key)
        return verdict

    async def count(self, key: str, policy: Backoff, now: float) -> None:
        """Count one failure at ``key`` outside any reservation (a trusted network's)."""
        await self._step(key, policy, now)

    @retry_conflicts()
    async def succeeded(
        self,
        now: float,
        *,
        refund: str | None,
        reset: Sequence[str],
        reset_unless_locked: Sequence[str] = (),
        trust: tuple[str, float] | None = None,
    ) -> None:
        """A password check succeeded: take its reservation back from ``refund`` (the
        network's count; its window and block stay), clear the ``reset`` counters, clear
        ``reset_unless_locked`` ones that no lock holds, and trust ``trust``'s pair."""
        row = LoginLimit
        async with self.db.session() as session, session.begin():
            if refund is not None:
                await session.execute(
                    update(row)
                    .where(row.key == refund, row.failures > 0)
                    .values(failures=row.failures - 1)
                )
            cleared = {"failures": 0, "locked_until": None, "admitted": True}
            if reset:
                await session.execute(update(row).where(row.key.in_(reset)).values(cleared))
            if reset_unless_locked:
                await session.execute(
                    update(row)
                    .where(
                        row.key.in_(reset_unless_locked),
                        (row.locked_until.is_(None)) | (row.locked_until <= now),
                    )
                    .values(cleared)
                )
            if trust is not None:
                key, until = trust
                upsert = self._insert().values(
                    key=key,
                    failures=0,
                    since=now,
                    locked_until=None,
                    admitted=True,
                    trusted_until=until,
                    expires_at=until,
                )
                await session.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["key"],
                        set_={**cleared, "trusted_until": until, "expires_at": until},
                    )
                )

    async def failures(self, key: str) -> int:
        """The failures counted at ``key`` (for operators and tests)."""
        async with self.db.session() as session:
            row = await session.get(LoginLimit, key)
            return 0 if row is None else int(row.failures)

    @retry_conflicts()
    async def prune(self, now: float) -> int:
        """Delete counters that decide nothing any more; returns how many."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(LoginLimit).where(LoginLimit.expires_at <= now))
            return int(getattr(result, "rowcount", 0) or 0)
