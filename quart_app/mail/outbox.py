"""The outbox table: mail is queued in the caller's transaction and claimed by one sender.

A claim is one statement that moves a due, unclaimed (or abandoned) mail into this
sender's hands until ``claimed_until``: ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE
SKIP LOCKED) RETURNING`` on PostgreSQL (senders on other workers and hosts skip the row
instead of waiting for it), the same statement without the lock clause on SQLite (whose
writers take turns on the whole file). Whatever the sender learns afterwards is written
only while it still holds the claim.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..store.db import Database, bounded_store
from ..store.errors import retry_conflicts
from ..store.models import OutboxMail

PENDING, SENT, FAILED = "pending", "sent", "failed"


async def queue_mail(
    session: AsyncSession,
    *,
    recipient: str,
    template: str,
    context: Mapping[str, Any],
    user_id: int | None = None,
) -> str:
    """Add a mail to the outbox in ``session``'s transaction; returns its Message-ID's
    unique part. It is sent once the transaction commits, and never if it rolls back.
    """
    now = time.time()
    message_id = f"{int(now)}.{secrets.token_hex(12)}"
    session.add(
        OutboxMail(
            message_id=message_id,
            recipient=recipient,
            template=template,
            context=json.dumps(dict(context)),
            user_id=user_id,
            state=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )
    return message_id


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    id: int
    message_id: str
    recipient: str
    template: str
    context: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class MailStatus:
    """One mail as ``quart-app outbox`` shows it (no context: it may hold a token)."""

    id: int
    message_id: str
    recipient: str
    template: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str | None


@bounded_store
class OutboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @retry_conflicts()
    async def claim(self, sender: str, lease: float) -> ClaimedMail | None:
        """Take the oldest due mail for ``lease`` seconds, or None when none is due."""
        now = time.time()
        due = (
            select(OutboxMail.id)
            .where(
                OutboxMail.state == PENDING,
                OutboxMail.next_attempt_at <= now,
                or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now),
            )
            .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
            .limit(1)
        )
        async with self.db.session() as session:
            # A read first: most polls find nothing, and a read takes no write lock
            # (SQLite would otherwise serialise every worker's poll with the requests).
            if await session.scalar(due) is None:
                return None
        if not self.db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(OutboxMail)
            .where(OutboxMail.id == due.scalar_subquery())
            # The subquery's conditions again: on SQLite the statement is the claim.
            .where(
                OutboxMail.state == PENDING,
                or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now),
            )
            .values(claimed_by=sender, claimed_until=now + lease)
            .returning(
                OutboxMail.id,
                OutboxMail.message_id,
                OutboxMail.recipient,
                OutboxMail.template,
                OutboxMail.context,
                OutboxMail.attempts,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session, session.begin():
            row = (await session.execute(statement)).first()
        if row is None:
            return None
        return ClaimedMail(
            id=row.id,
            message_id=row.message_id,
            recipient=row.recipient,
            template=row.template,
            context=json.loads(row.context or "{}"),
            attempts=row.attempts,
        )

    async def _settle(self, mail_id: int, sender: str, **values: Any) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(OutboxMail)
                .where(OutboxMail.id == mail_id, OutboxMail.claimed_by == sender)
                .values(claimed_by=None, claimed_until=None, **values)
                .returning(OutboxMail.id)
                .execution_options(synchronize_session=False)
            )
            return result.scalar() is not None

    @retry_conflicts()
    async def sent(self, mail_id: int, sender: str) -> bool:
        """Mark a claimed mail sent and forget its context (it may hold a token)."""
        return await self._settle(
            mail_id,
            sender,
            state=SENT,
            sent_at=time.time(),
            attempts=OutboxMail.attempts + 1,
            context="{}",
            last_error=None,
        )

    @retry_conflicts()
    async def retry_later(self, mail_id: int, sender: str, delay: float, error: str) -> bool:
        return await self._settle(
            mail_id,
            sender,
            attempts=OutboxMail.attempts + 1,
            next_attempt_at=time.time() + delay,
            last_error=error[:500],
        )

    @retry_conflicts()
    async def failed(self, mail_id: int, sender: str, error: str) -> bool:
        """The mail server refused the mail for good: keep it, for ``quart-app outbox``."""
        return await self._settle(
            mail_id,
            sender,
            state=FAILED,
            attempts=OutboxMail.attempts + 1,
            context="{}",
            last_error=error[:500],
        )

    @retry_conflicts()
    async def prune(self, before: float) -> int:
        """Delete the record of mail sent before ``before``; returns how many."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(OutboxMail).where(OutboxMail.state == SENT, OutboxMail.sent_at < before)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def unsent(self, limit: int = 100) -> list[MailStatus]:
        """Pending mail (oldest first) and mail refused for good."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(OutboxMail)
                .where(OutboxMail.state != SENT)
                .order_by(OutboxMail.id)
                .limit(limit)
            )
            return [
                MailStatus(
                    id=row.id,
                    message_id=row.message_id,
                    recipient=row.recipient,
                    template=row.template,
                    state=row.state,
                    attempts=row.attempts,
                    created_at=row.created_at,
                    next_attempt_at=row.next_attempt_at,
                    last_error=row.last_error,
                )
                for row in rows
            ]

    async def counts(self) -> dict[str, int]:
        """How many mails are pending (of them failing: tried at least once), sent, failed."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    OutboxMail.state,
                    func.count(OutboxMail.id),
                    func.sum(case((OutboxMail.attempts > 0, 1), else_=0)),
                ).group_by(OutboxMail.state)
            )
            counts = {PENDING: 0, SENT: 0, FAILED: 0, "failing": 0}
            for state, count, tried in rows:
                counts[str(state)] = int(count)
                if state == PENDING:
                    counts["failing"] = int(tried or 0)
            return counts
