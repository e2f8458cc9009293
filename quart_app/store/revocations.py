"""The SQL revocation store: the default shared store of ``quart_app.jwt.revocation``.

Rows are only appended (and pruned once expired). Workers pull what is new by id; the
last few seconds are read again on every pull because on PostgreSQL ids from concurrent
transactions can become visible out of order, and re-applying an entry is harmless.
Those seconds are counted by the database's clock, never by the hosts' own clocks, so
hosts whose clocks disagree cannot make a late-visible row fall outside the window.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..jwt.revocation import Kind, Revocation
from .db import Database, bounded_store
from .errors import retry_conflicts
from .models import RevocationRow

#: Seconds of recent rows every pull reads again (see the module docstring).
REREAD_SECONDS = 5.0


def _key(entry: Revocation) -> str:
    if entry.kind == "user":
        # Several password changes of one user are several rows.
        return f"user:{entry.value}:{secrets.token_hex(8)}"
    return f"{entry.kind}:{entry.value}"


def _row(entry: Revocation) -> dict[str, Any]:
    return {
        "key": _key(entry),
        "kind": entry.kind,
        "value": entry.value,
        "not_before": entry.not_before,
        "expires_at": entry.expires_at,
    }


def database_clock(dialect: str) -> Any:
    """Now, by the database's clock where several hosts write (their clocks may differ):
    ``created_at`` is only ever compared with this same clock (the re-read window).
    """
    if dialect == "postgresql":
        return func.extract("epoch", func.clock_timestamp())
    return time.time()  # SQLite: one host, one clock


def insert_ignoring_duplicates(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(RevocationRow).on_conflict_do_nothing(index_elements=["key"])
    if dialect == "sqlite":
        return sqlite.insert(RevocationRow).on_conflict_do_nothing(index_elements=["key"])
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


async def add_revocations(session: AsyncSession, entries: Iterable[Revocation]) -> None:
    """Record ``entries`` inside the caller's transaction (e.g. with the sessions it
    ends), so the revocation commits with the change or not at all. Workers learn of it
    at their next poll; announce it with ``RevocationSync.revoke`` after the commit to
    enforce it at once (here) and publish it (Redis).
    """
    rows = [_row(entry) for entry in entries]
    if rows:
        dialect = session.get_bind().dialect.name
        insert = insert_ignoring_duplicates(dialect).values(created_at=database_clock(dialect))
        await session.execute(insert, rows)


@bounded_store
class SqlRevocationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _clock(self) -> Any:
        return database_clock(self.db.engine.dialect.name)

    @retry_conflicts()
    async def add(self, entries: Iterable[Revocation]) -> None:
        batch = list(entries)
        if not batch:
            return
        async with self.db.session() as session, session.begin():
            await add_revocations(session, batch)

    @retry_conflicts()
    async def claim(self, entry: Revocation) -> bool:
        """Record ``entry`` unless it exists; True if this call recorded it.

        The unique key makes this the one place where two workers racing to use the same
        refresh token are told apart: exactly one of them wins.
        """
        try:
            async with self.db.session() as session, session.begin():
                session.add(RevocationRow(**_row(entry), created_at=self._clock()))
        except IntegrityError:
            return False
        return True

    async def contains(self, kind: Kind, value: str) -> bool:
        async with self.db.session() as session:
            found = await session.scalar(
                select(RevocationRow.id).where(RevocationRow.key == f"{kind}:{value}")
            )
            return found is not None

    async def ends_session(self, sub: str, family: str | None, started: float | None) -> bool:
        """One indexed query: the family's entry, or a ``user`` entry made after ``started``."""
        user = and_(RevocationRow.value == sub, RevocationRow.kind == "user")
        if started is not None:
            user = and_(user, RevocationRow.not_before > started)
        ends = or_(user, RevocationRow.key == f"family:{family}") if family else user
        async with self.db.session() as session:
            found = await session.scalar(select(RevocationRow.id).where(ends).limit(1))
            return found is not None

    async def changes_since(self, cursor: int | None) -> tuple[list[Revocation], int]:
        query = select(RevocationRow).where(RevocationRow.expires_at > time.time())
        if cursor is not None:
            query = query.where(
                or_(
                    RevocationRow.id > cursor,
                    RevocationRow.created_at > self._clock() - REREAD_SECONDS,
                )
            )
        async with self.db.session() as session:
            rows = list(await session.scalars(query.order_by(RevocationRow.id)))
            if cursor is None:
                top = await session.scalar(select(func.max(RevocationRow.id)))
                new_cursor = int(top or 0)
            else:
                new_cursor = max([cursor, *(row.id for row in rows)])
        entries = [
            Revocation(
                kind=row.kind,  # type: ignore[arg-type]
                value=row.value,
                expires_at=row.expires_at,
                not_before=row.not_before,
            )
            for row in rows
        ]
        return entries, new_cursor

    @retry_conflicts()
    async def prune(self, now: float | None = None) -> int:
        """Delete revocations whose tokens have all expired; returns how many."""
        now = time.time() if now is None else now
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(RevocationRow).where(RevocationRow.expires_at <= now)
            )
            return int(getattr(result, "rowcount", 0) or 0)
