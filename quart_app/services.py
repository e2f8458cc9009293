"""The per-app objects views use, kept in ``app.extensions`` (never module globals), and
the resources behind them: :func:`init_services` builds both from the settings;
:class:`Resources` opens them before serving and closes them after."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from quart import Quart, current_app

from .jwt import RevocationList, RevocationSync, get_manager
from .jwt.revocation import Snapshot
from .mail.sender import MailSender
from .security.login_limits import LoginGuard, LoginPolicy
from .security.passwords import Passwords
from .startup.settings import NOTES_KEY, SNAPSHOT_FILE
from .store import Database, SqlRevocationStore, UserStore
from .store.errors import unavailable_reason
from .store.events import EventStore
from .store.login_limits import LoginLimitStore
from .store.oauth import RedisReplayStore
from .store.redis_breaker import EXTENSION_KEY as BREAKER_EXTENSION_KEY
from .store.redis_breaker import RedisBreaker, breaker_from_settings
from .store.redis_bus import BUS_EXTENSION_KEY, RedisRevocationBus
from .store.sessions import Lifetimes, SessionStore

EXTENSION_KEY = "quart_app"
log = logging.getLogger(__name__)


@dataclass
class Services:
    db: Database
    users: UserStore
    passwords: Passwords
    revocations: RevocationSync
    logins: LoginGuard
    sessions: SessionStore
    events: EventStore
    config: dict[str, Any]


def services(app: Quart | None = None) -> Services:
    target = app if app is not None else current_app
    return cast(Services, target.extensions[EXTENSION_KEY])


def session_lifetimes(settings: Mapping[str, Any]) -> Lifetimes:
    return Lifetimes(
        idle=float(settings["SESSION_IDLE_TIMEOUT"]),
        max_age=float(settings["SESSION_MAX_AGE"]),
        limit=int(settings["SESSION_LIMIT"]),
        grace=float(settings["REFRESH_REUSE_GRACE_SECONDS"]),
        # A family revocation must outlive every token of the session.
        horizon=max(
            float(settings["JWT_REFRESH_TOKEN_EXPIRES"]),
            float(settings["JWT_ACCESS_TOKEN_EXPIRES"]),
        ),
    )


@dataclass
class Resources:
    """What a worker opens before serving (:meth:`open`) and closes after (:meth:`close`):
    the pools behind :class:`Services`, and the background tasks that keep them current."""

    settings: Mapping[str, Any]
    db: Database
    passwords: Passwords
    revocations: RevocationSync
    #: Revocations fanned out by Redis pub/sub (None without ``REDIS_URL``).
    bus: RedisRevocationBus | None
    #: The one circuit breaker of this worker's Redis clients (None without Redis).
    redis_breaker: RedisBreaker | None
    #: The outbox's sender (``init_mail``) and the DPoP replay store in Redis
    #: (``init_dpop_service``), set once those are made.
    mail: MailSender | None = None
    replay_store: RedisReplayStore | None = None

    async def open(self) -> None:
        for note in self.settings[NOTES_KEY]:
            log.info("%s", note)
        # An unreachable database does not stop the worker: it serves 503 until it answers.
        await self.db.open(
            create_tables=self.settings["DATABASE_CREATE_TABLES"], in_background=True
        )
        await self.passwords.start()
        await self.revocations.start()
        if self.bus is not None:
            await self.bus.start(self.revocations)
        if self.mail is not None:
            await self.mail.start()

    async def close(self) -> None:
        if self.mail is not None:
            await self.mail.stop()
        if self.bus is not None:
            await self.bus.stop()
        if self.replay_store is not None:
            await self.replay_store.close()
        await self.revocations.stop()
        await self.passwords.stop()
        await self.db.close()
        if self.redis_breaker is not None:
            await self.redis_breaker.close()


def init_services(
    app: Quart, settings: Mapping[str, Any], revocation_list: RevocationList
) -> Resources:
    """Build the database, the password hasher, the Redis breaker and bus, the revocation
    sync into ``revocation_list``, and the :class:`Services` of ``app``."""
    db = Database(
        settings["DATABASE_URL"],
        pool_size=settings["DATABASE_POOL_SIZE"],
        max_overflow=settings["DATABASE_MAX_OVERFLOW"],
        pool_timeout=settings["DATABASE_POOL_TIMEOUT"],
        pool_recycle=settings["DATABASE_POOL_RECYCLE"],
        connect_timeout=settings["DATABASE_CONNECT_TIMEOUT"],
        statement_timeout=settings["DATABASE_STATEMENT_TIMEOUT"],
        sqlite_busy_timeout=settings["SQLITE_BUSY_TIMEOUT"],
        operation_timeout=settings["DATABASE_OPERATION_TIMEOUT"],
        breaker_cooldown=settings["DATABASE_BREAKER_COOLDOWN"],
    )
    passwords = Passwords(
        time_cost=settings["ARGON2_TIME_COST"],
        memory_cost=settings["ARGON2_MEMORY_COST"],
        parallelism=settings["ARGON2_PARALLELISM"],
        threads=settings["PASSWORD_HASH_THREADS"],
        nice=settings["PASSWORD_HASH_NICE"],
    )
    # With Redis, revocations also fan out by pub/sub (milliseconds); SQL stays the truth.
    # Every Redis client of this worker goes through one circuit breaker (a hung Redis
    # costs one timeout, then the fallbacks answer until it responds again).
    redis_breaker = breaker_from_settings(settings)
    app.extensions[BREAKER_EXTENSION_KEY] = redis_breaker
    bus = RedisRevocationBus.from_settings(settings, breaker=redis_breaker)
    app.extensions[BUS_EXTENSION_KEY] = bus
    revocation_store = SqlRevocationStore(db)
    snapshot_age = float(settings["REVOCATION_SNAPSHOT_MAX_AGE"])
    revocations = RevocationSync(
        bus.wrap(revocation_store) if bus else revocation_store,
        revocation_list,
        settings["REVOCATION_SYNC_INTERVAL"],
        snapshot=Snapshot(Path(settings["INSTANCE_PATH"]) / SNAPSHOT_FILE, snapshot_age)
        if snapshot_age > 0
        else None,
        outage_reason=unavailable_reason,
    )
    app.extensions[EXTENSION_KEY] = Services(
        db=db,
        users=UserStore(db),
        passwords=passwords,
        revocations=revocations,
        logins=LoginGuard(LoginLimitStore(db), LoginPolicy.from_config(app.config)),
        # Sessions' lifetimes and the tokens they sign follow one clock.
        sessions=SessionStore(db, session_lifetimes(settings), clock=get_manager(app).now),
        events=EventStore(db),
        config=app.config,
    )
    return Resources(settings, db, passwords, revocations, bus, redis_breaker)
