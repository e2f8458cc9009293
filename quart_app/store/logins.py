"""LoginSourceStore: per (account, client network) failure counts, locks and trust.

Each write is one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` statement (SQLite and
PostgreSQL alike): concurrent failures from several workers are all counted, and no
transaction reads before it writes (see users.py on SQLite's busy handling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .db import Database, bounded_store
from .errors import retry_conflicts
from .models import LoginSource


@dataclass(frozen=True, slots=True)
class SourceState:
    failures: int
    locked_until: float | None
    trusted_until: float | None


@bounded_store
class LoginSourceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self) -> Any:
        dialect = self.db.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(LoginSource)
        if dialect == "sqlite":
            return sqlite.insert(LoginSource)
        raise RuntimeError(f"unsupported database dialect {dialect!r}")

    async def get(self, user_id: int, source: str) -> SourceState | None:
        async with self.db.session() as session:
            row = await session.get(LoginSource, (user_id, source))
            if row is None:
                return None
            return SourceState(row.failures, row.locked_until, row.trusted_until)

    @retry_conflicts()
    async def record_failure(
        self,
        user_id: int,
        source: str,
        now: float,
        *,
        threshold: int,
        base: float,
        cap: float,
        window: float,
    ) -> float | None:
        """Count a failure; from ``threshold`` on, lock the source with doubling back-off.

        Failures older than ``window`` (since the previous one) are forgotten, so a typo
        a month after the last one starts from one again. Returns the lock's end or None.
        """
        stale = LoginSource.last_failure_at < now - window
        insert = self._insert().values(
            user_id=user_id, source=source, failures=1, last_failure_at=now
        )
        upsert = insert.on_conflict_do_update(
            index_elements=["user_id", "source"],
            set_={
                "failures": case((stale, 1), else_=LoginSource.failures + 1),
                "last_failure_at": now,
            },
        ).returning(LoginSource.failures)
        async with self.db.session() as session, session.begin():
            failures = int((await session.execute(upsert)).scalar_one())
            if failures < threshold:
                return None
            locked_until = now + min(cap, base * 2 ** min(failures - threshold, 64))
            await session.execute(
                update(LoginSource)
                .where(LoginSource.user_id == user_id, LoginSource.source == source)
                .values(locked_until=locked_until)
            )
            return float(locked_until)

    @retry_conflicts()
    async def record_success(self, user_id: int, source: str, now: float, trust: float) -> None:
        """Reset the source's count and trust it for ``trust`` seconds."""
        values = {"failures": 0, "locked_until": None, "trusted_until": now + trust}
        upsert = (
            self._insert()
            .values(user_id=user_id, source=source, **values)
            .on_conflict_do_update(index_elements=["user_id", "source"], set_=values)
        )
        async with self.db.session() as session, session.begin():
            await session.execute(upsert)

    async def sources(self, user_id: int) -> list[str]:
        """The sources on record for ``user_id`` (for operators and tests)."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(LoginSource.source).where(LoginSource.user_id == user_id)
            )
            return list(rows)
