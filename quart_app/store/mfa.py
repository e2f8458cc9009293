"""MfaStore: TOTP factors, recovery codes and single-use tickets, every decision atomic.

* A TOTP code is accepted by one ``UPDATE ... WHERE last_step < :step RETURNING``: two
  workers presenting the same code race on one row and only one raises the step.
* A recovery code is used by ``UPDATE ... SET used_at WHERE used_at IS NULL RETURNING``.
* A ticket (an ``mfa_token``, a WebAuthn challenge) is used by ``DELETE ... RETURNING``.

Each write transaction starts with its write statement (see store/users.py); a change
of the account's factors commits with its security event (store/events.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..accounts.events import SecurityEvent
from .db import Database, bounded_store
from .errors import retry_conflicts
from .events import recording
from .models import MfaTicket, RecoveryCode, TotpFactor


@dataclass(frozen=True, slots=True)
class TotpRecord:
    secret: str
    confirmed: bool
    last_step: int | None


@dataclass(frozen=True, slots=True)
class Ticket:
    user_id: int | None
    epoch: int | None


@bounded_store
class MfaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self, table: Any) -> Any:
        dialect = self.db.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table)
        if dialect == "sqlite":
            return sqlite.insert(table)
        raise RuntimeError(f"unsupported database dialect {dialect!r}")

    async def totp(self, user_id: int) -> TotpRecord | None:
        async with self.db.session() as session:
            row = await session.get(TotpFactor, user_id)
            return TotpRecord(row.secret, row.confirmed, row.last_step) if row else None

    @retry_conflicts()
    async def start_totp(self, user_id: int, secret: str, now: float) -> bool:
        """Store a pending secret (replacing a pending one); False when TOTP is confirmed."""
        insert = self._insert(TotpFactor).values(
            user_id=user_id, secret=secret, confirmed=False, last_step=None, created_at=now
        )
        statement = insert.on_conflict_do_update(
            index_elements=["user_id"],
            set_={"secret": secret, "last_step": None, "created_at": now},
            where=TotpFactor.confirmed.is_(False),
        ).returning(TotpFactor.user_id)
        async with self.db.session() as session, session.begin():
            return (await session.execute(statement)).scalar() is not None

    @retry_conflicts()
    async def use_step(self, user_id: int, step: int) -> bool:
        """Record ``step`` as used by a confirmed factor, if no later or equal one was."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(TotpFactor)
                .where(
                    TotpFactor.user_id == user_id,
                    TotpFactor.confirmed.is_(True),
                    or_(TotpFactor.last_step.is_(None), TotpFactor.last_step < step),
                )
                .values(last_step=step)
                .returning(TotpFactor.user_id)
            )
            return result.scalar() is not None

    @retry_conflicts()
    async def confirm(
        self,
        user_id: int,
        secret: str,
        step: int,
        codes: Sequence[str],
        events: Sequence[SecurityEvent] = (),
    ) -> bool:
        """Confirm the pending factor whose secret is ``secret`` with a code of ``step``,
        and store ``codes`` (hashes) as the only recovery codes; False if it is not
        pending any more (confirmed or replaced meanwhile) or the step was used."""
        async with recording(self.db) as tx:
            session = tx.session
            result = await session.execute(
                update(TotpFactor)
                .where(
                    TotpFactor.user_id == user_id,
                    TotpFactor.confirmed.is_(False),
                    TotpFactor.secret == secret,
                    or_(TotpFactor.last_step.is_(None), TotpFactor.last_step < step),
                )
                .values(confirmed=True, last_step=step)
                .returning(TotpFactor.user_id)
            )
            if result.scalar() is None:
                return False
            await self._replace_codes(session, user_id, codes)
            await tx.record(*events)
            return True

    async def _replace_codes(self, session: Any, user_id: int, codes: Sequence[str]) -> None:
        await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        session.add_all(RecoveryCode(user_id=user_id, code_hash=code) for code in codes)

    @retry_conflicts()
    async def replace_codes(
        self, user_id: int, codes: Sequence[str], events: Sequence[SecurityEvent] = ()
    ) -> bool:
        """New recovery codes for a user whose TOTP is confirmed (the old ones void)."""
        async with recording(self.db) as tx:
            session = tx.session
            # Starts with a write: the lock on the factor row orders this against disable.
            result = await session.execute(
                update(TotpFactor)
                .where(TotpFactor.user_id == user_id, TotpFactor.confirmed.is_(True))
                .values(confirmed=True)
                .returning(TotpFactor.user_id)
            )
            if result.scalar() is None:
                return False
            await self._replace_codes(session, user_id, codes)
            await tx.record(*events)
            return True

    @retry_conflicts()
    async def use_code(
        self, user_id: int, code_hash: str, now: float, events: Sequence[SecurityEvent] = ()
    ) -> bool:
        async with recording(self.db) as tx:
            result = await tx.session.execute(
                update(RecoveryCode)
                .where(
                    RecoveryCode.user_id == user_id,
                    RecoveryCode.code_hash == code_hash,
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=now)
                .returning(RecoveryCode.id)
            )
            if result.scalar() is None:
                return False
            await tx.record(*events)
            return True

    async def codes_left(self, user_id: int) -> int:
        async with self.db.session() as session:
            count = await session.scalar(
                select(func.count(RecoveryCode.id)).where(
                    RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
                )
            )
            return int(count or 0)

    @retry_conflicts()
    async def disable(self, user_id: int, events: Sequence[SecurityEvent] = ()) -> bool:
        """Remove the TOTP factor and the recovery codes; False if there was none."""
        async with recording(self.db) as tx:
            session = tx.session
            result = await session.execute(
                delete(TotpFactor)
                .where(TotpFactor.user_id == user_id)
                .returning(TotpFactor.user_id)
            )
            await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            removed = result.scalar() is not None
            await tx.record(*events)
            return removed

    @retry_conflicts()
    async def rekey(self, rotate: Any) -> int:
        """Re-encrypt every stored secret with ``rotate`` (old ciphertext -> new)."""
        async with self.db.session() as session, session.begin():
            rows = (await session.scalars(select(TotpFactor).with_for_update())).all()
            for row in rows:
                row.secret = rotate(row.secret)
            return len(rows)

    # Single-use tickets.

    @retry_conflicts()
    async def add_ticket(
        self,
        key: str,
        kind: str,
        user_id: int | None,
        expires_at: float,
        now: float,
        epoch: int | None = None,
    ) -> None:
        async with self.db.session() as session, session.begin():
            session.add(
                MfaTicket(key=key, kind=kind, user_id=user_id, epoch=epoch, expires_at=expires_at)
            )
            await session.flush()
            # Expired tickets decide nothing: each new one sweeps them (indexed, few).
            await session.execute(delete(MfaTicket).where(MfaTicket.expires_at < now))

    async def peek_ticket(self, key: str, kind: str, now: float) -> Ticket | None:
        async with self.db.session() as session:
            row = await session.get(MfaTicket, key)
            if row is None or row.kind != kind or row.expires_at <= now:
                return None
            return Ticket(row.user_id, row.epoch)

    @retry_conflicts()
    async def take_ticket(self, key: str, kind: str, now: float) -> tuple[bool, int | None]:
        """Use a ticket up: (True, its user) once, (False, None) for any other call."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(MfaTicket)
                .where(MfaTicket.key == key, MfaTicket.kind == kind, MfaTicket.expires_at > now)
                .returning(MfaTicket.user_id)
            )
            row = result.first()
            return (True, row[0]) if row is not None else (False, None)
