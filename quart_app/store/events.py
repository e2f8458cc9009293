"""The security event table: written inside the transaction of what it records.

:func:`recording` is the one way to write: a transaction that collects the events added
to it, inserts them with its other statements, and logs them once it has committed. A
store that ends sessions, changes a password or creates a second factor opens its
transaction with it, so the event and the change are committed (or fail) together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..accounts.events import Client, SecurityEvent, log_events
from ..mail.notify import notify_events
from .db import Database, bounded_store
from .errors import retry_conflicts
from .models import SecurityEventRow


def _row(event: SecurityEvent) -> dict[str, Any]:
    client = event.client.clipped()
    return {
        # Shown to the microsecond (ISO 8601): kept so, for ``before`` to page exactly.
        "time": round(event.time, 6),
        "event": event.event,
        "user_id": event.user_id,
        "session_id": event.session_id,
        "client": client.address,
        "user_agent": client.user_agent,
        "detail": dict(event.detail) if event.detail else None,
    }


class Recording:
    """An open transaction (``session``) and the events recorded in it so far."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events: list[SecurityEvent] = []

    async def record(self, *events: SecurityEvent) -> None:
        """Insert ``events`` in this transaction (logged once it commits)."""
        if events:
            await self.session.execute(insert(SecurityEventRow), [_row(e) for e in events])
            self.events.extend(events)
            await notify_events(self.session, events)  # their notices, in this transaction


@contextlib.asynccontextmanager
async def recording(db: Database) -> AsyncIterator[Recording]:
    """``async with recording(db) as tx:`` a write transaction (``tx.session``) whose
    events (``await tx.record(event)``) commit with it and are logged after it.

    Wrap the store method in ``retry_conflicts`` as usual: each attempt is a new
    transaction and only the committed attempt's events are logged.
    """
    async with db.session() as session, session.begin():
        tx = Recording(session)
        yield tx
    log_events(tx.events)


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    time: float
    event: str
    user_id: int | None
    session_id: str | None
    client: str
    user_agent: str
    detail: dict[str, Any] | None


@bounded_store
class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @retry_conflicts()
    async def record(self, *events: SecurityEvent) -> None:
        """Record ``events`` in a transaction of their own."""
        async with recording(self.db) as tx:
            await tx.record(*events)

    async def page(
        self,
        *,
        limit: int,
        user_id: int | None = None,
        event: str | None = None,
        before: float | None = None,
    ) -> list[EventRecord]:
        """Events newest first; ``before`` (an event's time) pages on."""
        query = select(SecurityEventRow)
        if user_id is not None:
            query = query.where(SecurityEventRow.user_id == user_id)
        if event is not None:
            query = query.where(SecurityEventRow.event == event)
        if before is not None:
            # ``before`` comes back from an ISO time (microseconds): half of one below
            # it leaves out the event it names, whatever the float rounding.
            query = query.where(SecurityEventRow.time < before - 5e-7)
        query = query.order_by(SecurityEventRow.time.desc(), SecurityEventRow.id.desc())
        async with self.db.session() as session:
            rows = await session.scalars(query.limit(limit))
            return [
                EventRecord(
                    id=row.id,
                    time=row.time,
                    event=row.event,
                    user_id=row.user_id,
                    session_id=row.session_id,
                    client=row.client,
                    user_agent=row.user_agent,
                    detail=row.detail,
                )
                for row in rows
            ]

    @retry_conflicts()
    async def prune(self, before: float) -> int:
        """Delete events older than ``before``; returns how many."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(SecurityEventRow).where(SecurityEventRow.time < before)
            )
            return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["Client", "EventRecord", "EventStore", "Recording", "SecurityEvent", "recording"]
