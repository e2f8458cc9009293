"""UserStore: the only code that touches user rows.

Every write transaction starts with its write statement (INSERT or UPDATE ... RETURNING),
never with a read it later upgrades: under SQLite's WAL a read-then-write transaction
can fail at once with "database is locked" when another worker wrote in between, while
a transaction that starts by writing just waits for the lock (busy timeout).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..accounts.events import SecurityEvent
from .db import Database, bounded_store
from .errors import retry_conflicts
from .events import recording
from .models import User

#: The ``role`` of an administrator (anyone else is "user").
ADMIN = "admin"


class UsernameTaken(Exception):
    """The username (compared without regard to case) is registered already."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    created_at: datetime
    #: See ``User.credential_epoch``: read it before a password check, hand it to
    #: ``start_session``.
    credential_epoch: int = 0
    disabled: bool = False
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def _record(user: User) -> UserRecord:
    return UserRecord(
        id=user.id,
        username=user.username,
        password_hash=user.password_hash,
        # SQLite hands back naive datetimes; they were written in UTC.
        created_at=user.created_at
        if user.created_at.tzinfo is not None
        else user.created_at.replace(tzinfo=UTC),
        credential_epoch=user.credential_epoch or 0,
        disabled=bool(user.disabled),
        role=user.role or "user",
    )


@bounded_store
class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @retry_conflicts()
    async def create(
        self,
        username: str,
        username_key: str,
        password_hash: str,
        *,
        event: SecurityEvent | None = None,
        then: Callable[[AsyncSession, User], Awaitable[object]] | None = None,
    ) -> UserRecord:
        """Insert a user; ``event`` (``register``) is recorded with it, naming its id;
        ``then`` runs in the same transaction once the row has its id."""
        user = User(
            username=username,
            username_key=username_key,
            password_hash=password_hash,
            role="user",
            disabled=False,
            credential_epoch=0,
        )
        try:
            async with recording(self.db) as tx:
                tx.session.add(user)
                await tx.session.flush()
                if event is not None:
                    await tx.record(replace(event, user_id=user.id))
                if then is not None:
                    await then(tx.session, user)
        except IntegrityError:
            raise UsernameTaken(username) from None
        return _record(user)

    async def by_key(self, username_key: str) -> UserRecord | None:
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.username_key == username_key))
            return _record(user) if user else None

    async def by_id(self, user_id: int) -> UserRecord | None:
        async with self.db.session() as session:
            user = await session.get(User, user_id)
            return _record(user) if user else None

    async def page(self, limit: int, after_id: int = 0) -> list[UserRecord]:
        """Users ordered by id, after ``after_id`` (keyset pagination: no OFFSET scans)."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(User).where(User.id > after_id).order_by(User.id).limit(limit)
            )
            return [_record(user) for user in rows]

    async def count(self) -> int:
        async with self.db.session() as session:
            return int(await session.scalar(select(func.count(User.id))) or 0)

    @retry_conflicts()
    async def set_password_hash(self, user_id: int, password_hash: str) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(password_hash=password_hash)
                .returning(User.id)
            )
            return result.scalar() is not None

    @retry_conflicts()
    async def set_role(self, user_id: int, role: str, *, event: SecurityEvent) -> bool:
        """Grant or revoke a role; False when there is no such user."""
        async with recording(self.db) as tx:
            result = await tx.session.execute(
                update(User).where(User.id == user_id).values(role=role).returning(User.id)
            )
            if result.scalar() is None:
                return False
            await tx.record(replace(event, user_id=user_id))
            return True

    @retry_conflicts()
    async def enable(self, user_id: int, *, event: SecurityEvent) -> bool:
        """Let a disabled account log in again; False when there is no such user.

        (Disabling ends every session, so it goes through ``SessionStore.end_all``.)
        """
        async with recording(self.db) as tx:
            result = await tx.session.execute(
                update(User).where(User.id == user_id).values(disabled=False).returning(User.id)
            )
            if result.scalar() is None:
                return False
            await tx.record(replace(event, user_id=user_id))
            return True
