"""OAuth clients (client_credentials) and the shared replay check of DPoP proofs.

A proof's ``jti`` must be accepted once across every worker and host (RFC 9449 section
11.1). Each worker remembers what it accepted (``quart_app.jwt.dpop``); the store here
makes it hold across workers and hosts: one ``INSERT`` on a primary key in SQL, or, with
``REDIS_URL``, one ``SET key 1 NX PX`` (SQL again while Redis is unreachable).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from .db import Database, bounded_store
from .errors import retry_conflicts
from .models import DPoPProof, OAuthClient, utcnow

log = logging.getLogger(__name__)


class ClientExists(Exception):
    """A client of that id exists already."""


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    secret_hash: str
    created_at: datetime
    rotated_at: datetime


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _record(row: OAuthClient) -> ClientRecord:
    return ClientRecord(row.client_id, row.secret_hash, _utc(row.created_at), _utc(row.rotated_at))


@bounded_store
class ClientStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @retry_conflicts()
    async def create(self, client_id: str, secret_hash: str) -> ClientRecord:
        row = OAuthClient(client_id=client_id, secret_hash=secret_hash)
        try:
            async with self.db.session() as session, session.begin():
                session.add(row)
        except IntegrityError:
            raise ClientExists(client_id) from None
        return _record(row)

    async def get(self, client_id: str) -> ClientRecord | None:
        async with self.db.session() as session:
            row = await session.get(OAuthClient, client_id)
            return _record(row) if row else None

    async def all(self) -> list[ClientRecord]:
        async with self.db.session() as session:
            rows = await session.scalars(select(OAuthClient).order_by(OAuthClient.client_id))
            return [_record(row) for row in rows]

    @retry_conflicts()
    async def set_secret(self, client_id: str, secret_hash: str) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(OAuthClient)
                .where(OAuthClient.client_id == client_id)
                .values(secret_hash=secret_hash, rotated_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    @retry_conflicts()
    async def delete(self, client_id: str) -> bool:
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                delete(OAuthClient).where(OAuthClient.client_id == client_id)
            )
            return bool(getattr(result, "rowcount", 0))


@bounded_store
class SqlReplayStore:
    """``ReplayStore`` of ``quart_app.jwt.dpop`` in SQL: the primary key decides."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @retry_conflicts()
    async def claim(self, key: str, expires_at: float) -> bool:
        try:
            async with self.db.session() as session, session.begin():
                session.add(DPoPProof(key=key, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    @retry_conflicts()
    async def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(DPoPProof).where(DPoPProof.expires_at <= now))
            return int(getattr(result, "rowcount", 0) or 0)


class RedisReplayStore:
    """``SET NX PX`` in Redis; the SQL store while Redis does not answer."""

    def __init__(self, redis: Any, prefix: str, fallback: SqlReplayStore) -> None:
        self.redis = redis
        self.prefix = f"{prefix}dpop:"
        self.fallback = fallback
        self.failing = False

    async def claim(self, key: str, expires_at: float) -> bool:
        ttl_ms = max(1000, int((expires_at - time.time()) * 1000))
        try:
            stored = await self.redis.set(self.prefix + key, b"1", nx=True, px=ttl_ms)
        except (RedisError, OSError) as error:
            if not self.failing:
                log.warning("DPoP replay store unreachable (%s); using the database", error)
            self.failing = True
            return await self.fallback.claim(key, expires_at)
        self.failing = False
        return bool(stored)

    async def close(self) -> None:
        await self.redis.aclose()
