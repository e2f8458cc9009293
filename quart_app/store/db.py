"""Engine and session lifecycle: opened in ``before_serving``, disposed in ``after_serving``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .migrate import ensure_schema
from .models import Base

log = logging.getLogger(__name__)


class Database:
    """One async engine and its session factory, per app."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 10.0,
        pool_recycle: float = 1800.0,
        connect_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        sqlite_busy_timeout: float = 10.0,
        echo: bool = False,
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._options: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if not self.is_sqlite:
            self._options.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                # Below the idle timeouts of load balancers and PgBouncer in front of PG.
                pool_recycle=pool_recycle if pool_recycle > 0 else -1,
            )
        if self.url.get_driver_name() == "asyncpg":
            settings = {"application_name": "quart_app"}
            if statement_timeout > 0:
                # A stuck query fails (57014, answered 503) instead of holding a connection.
                settings["statement_timeout"] = str(int(statement_timeout * 1000))
            self._options["connect_args"] = {
                "timeout": connect_timeout,
                "server_settings": settings,
            }
        self._busy_timeout_ms = int(sqlite_busy_timeout * 1000)
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is not open (is the app serving?)")
        return self._engine

    def session(self) -> AsyncSession:
        if self._sessions is None:
            raise RuntimeError("the database is not open (is the app serving?)")
        return self._sessions()

    async def open(self, create_tables: bool = True) -> None:
        """Connect and check the schema is at the migrations' head.

        ``create_tables`` lets SQLite's first start create the schema (and stamp it);
        any other database behind head raises :class:`~.migrate.SchemaError` naming
        the upgrade command.
        """
        if self._engine is not None:
            return
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self.url, **self._options)
        if self.is_sqlite:
            busy = self._busy_timeout_ms

            @event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                # The busy timeout makes a second worker wait for the write lock instead
                # of failing at once. (WAL, which lets readers run beside the writer, is
                # a property of the file: ensure_schema sets it once, under a file lock.)
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout={busy}")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

        try:
            await ensure_schema(engine, create_sqlite=create_tables)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create_tables(self) -> None:
        """Create missing tables without migrations (scratch databases only)."""
        for attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(Base.metadata.create_all)
                return
            except DBAPIError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = None
        self._sessions = None

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
