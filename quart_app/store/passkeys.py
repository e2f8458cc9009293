"""PasskeyStore: a user's WebAuthn credentials; the sign count moves by compare-and-set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..accounts.events import SecurityEvent
from .db import Database, bounded_store
from .errors import retry_conflicts
from .events import recording
from .models import Passkey


class CredentialTaken(Exception):
    """This credential id is registered already."""


@dataclass(frozen=True, slots=True)
class PasskeyRecord:
    id: int
    user_id: int
    credential_id: bytes
    public_key: bytes
    sign_count: int
    backup_eligible: bool
    backed_up: bool
    name: str
    created_at: datetime
    last_used_at: datetime | None


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; they were written in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _record(row: Passkey) -> PasskeyRecord:
    created = _utc(row.created_at)
    assert created is not None
    return PasskeyRecord(
        id=row.id,
        user_id=row.user_id,
        credential_id=row.credential_id,
        public_key=row.public_key,
        sign_count=row.sign_count,
        backup_eligible=row.backup_eligible,
        backed_up=row.backed_up,
        name=row.name,
        created_at=created,
        last_used_at=_utc(row.last_used_at),
    )


@bounded_store
class PasskeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @retry_conflicts()
    async def add(
        self,
        user_id: int,
        credential_id: bytes,
        public_key: bytes,
        sign_count: int,
        backup_eligible: bool,
        backed_up: bool,
        name: str,
        events: Sequence[SecurityEvent] = (),
    ) -> PasskeyRecord:
        row = Passkey(
            user_id=user_id,
            credential_id=credential_id,
            public_key=public_key,
            sign_count=sign_count,
            backup_eligible=backup_eligible,
            backed_up=backed_up,
            name=name,
        )
        try:
            async with recording(self.db) as tx:
                tx.session.add(row)
                await tx.session.flush()
                await tx.record(*events)
        except IntegrityError:
            raise CredentialTaken() from None
        return _record(row)

    async def by_credential(self, credential_id: bytes) -> PasskeyRecord | None:
        async with self.db.session() as session:
            row = await session.scalar(
                select(Passkey).where(Passkey.credential_id == credential_id)
            )
            return _record(row) if row else None

    async def of_user(self, user_id: int) -> list[PasskeyRecord]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
            )
            return [_record(row) for row in rows]

    async def count(self, user_id: int) -> int:
        async with self.db.session() as session:
            value = await session.scalar(
                select(func.count(Passkey.id)).where(Passkey.user_id == user_id)
            )
            return int(value or 0)

    @retry_conflicts()
    async def remove(
        self, user_id: int, passkey_id: int, events: Sequence[SecurityEvent] = ()
    ) -> bool:
        async with recording(self.db) as tx:
            result = await tx.session.execute(
                delete(Passkey)
                .where(Passkey.id == passkey_id, Passkey.user_id == user_id)
                .returning(Passkey.id)
            )
            if result.scalar() is None:
                return False
            await tx.record(*events)
            return True

    @retry_conflicts()
    async def remove_all(self, user_id: int) -> int:
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(Passkey).where(Passkey.user_id == user_id).returning(Passkey.id)
            )
            return len(result.all())

    @retry_conflicts()
    async def used(self, passkey_id: int, seen: int, sign_count: int, backed_up: bool) -> bool:
        """Record a use whose counter was ``seen`` before it: False when another use moved
        it meanwhile (a cloned authenticator, or the same assertion twice)."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(Passkey)
                .where(
                    Passkey.id == passkey_id,
                    # Authenticators that keep no counter always say 0 (WebAuthn 6.1.1).
                    or_(Passkey.sign_count == seen, Passkey.sign_count == 0),
                )
                .values(sign_count=sign_count, backed_up=backed_up, last_used_at=datetime.now(UTC))
                .returning(Passkey.id)
            )
            return result.scalar() is not None
