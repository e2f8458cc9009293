"""Alembic migrations run from code: the ``quart-app db ...`` commands and the start-up check.

The scripts live in ``quart_app/store/migrations`` and ship inside the package, so an
installed service migrates itself without an ``alembic.ini``. Every function takes the
same async URL as ``DATABASE_URL``.

Start-up (:func:`ensure_schema`) never migrates a database behind the code's head: it
refuses with a message naming :data:`UPGRADE_COMMAND`, because N hosts restarting at once
must not race to alter a shared schema. The one exception is SQLite's zero-config first
start, where an empty database is created from the models and stamped at head.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .models import Base

MIGRATIONS = Path(__file__).with_name("migrations")
#: What an operator runs to bring a database to this release's schema.
UPGRADE_COMMAND = "quart-app db upgrade"
#: The revision that matches a schema made by ``create_all`` before migrations existed.
BASELINE = "0001"
#: Hosts migrating one PostgreSQL database at once queue on this advisory lock.
ADVISORY_LOCK_ID = 0x7175_6172_74

T = TypeVar("T")


class SchemaError(RuntimeError):
    """The database schema does not match the one this release needs."""


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def script() -> ScriptDirectory:
    """The migration scripts (read once per process: they are part of the package)."""
    return ScriptDirectory.from_config(alembic_config())


def heads() -> set[str]:
    return set(script().get_heads())


def _state(conn: Connection) -> tuple[set[str], bool]:
    """The revisions the database is stamped with, and whether any of our tables exist."""
    current = set(MigrationContext.configure(conn).get_current_heads())
    tables = set(inspect(conn).get_table_names())
    return current, bool(tables & set(Base.metadata.tables))


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})


def _run(conn: Connection, action: Callable[[Config], None]) -> None:
    _lock(conn)
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    current, has_tables = _state(conn)
    if not current and has_tables:
        # Tables made by create_all before migrations existed: they are the baseline.
        command.stamp(cfg, BASELINE)
    action(cfg)


def _create_and_stamp(conn: Connection) -> None:
    Base.metadata.create_all(conn)
    MigrationContext.configure(conn).stamp(script(), "head")


async def _in_transaction(engine: AsyncEngine, fn: Callable[[Connection], T]) -> T:
    async with engine.begin() as conn:
        return await conn.run_sync(fn)


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    await _in_transaction(engine, lambda conn: _run(conn, lambda c: command.upgrade(c, revision)))


async def downgrade_engine(engine: AsyncEngine, revision: str) -> None:
    await _in_transaction(engine, lambda conn: _run(conn, lambda c: command.downgrade(c, revision)))


async def current_revisions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        current, _ = await conn.run_sync(_state)
    return current


async def schema_diff(engine: AsyncEngine) -> list[Any]:
    """What autogenerate would change to make the database match the models ([] if none)."""

    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


def describe_mismatch(current: set[str], has_tables: bool, url: str) -> str:
    known = {rev.revision for rev in script().walk_revisions()}
    where = make_url(url).render_as_string(hide_password=True)
    head = ", ".join(sorted(heads()))
    if current - known:
        return (
            f"The database {where} is at revision {', '.join(sorted(current))}, which this"
            f" release does not know (its newest is {head}): it was migrated by a newer"
            " release. Deploy that release, or downgrade the database with it."
        )
    at = ", ".join(sorted(current)) or ("no revision (tables exist)" if has_tables else "empty")
    return (
        f"The database schema of {where} is behind this release (database: {at};"
        f" needed: {head}). Run `{UPGRADE_COMMAND}` with the same DATABASE_URL, then start"
        " again."
    )


async def ensure_schema(engine: AsyncEngine, *, create_sqlite: bool = True) -> None:
    """Refuse to serve a database whose schema is not at head (see the module docstring)."""
    if engine.dialect.name == "sqlite":
        # Switching a file to WAL needs it to itself: workers starting together on a new
        # file take turns (four at once can get "database is locked").
        async with _sqlite_lock(engine), engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    async with engine.connect() as conn:
        current, has_tables = await conn.run_sync(_state)
    if current == heads():
        return
    if create_sqlite and engine.dialect.name == "sqlite" and not current:
        async with _sqlite_lock(engine):
            async with engine.connect() as conn:
                current, has_tables = await conn.run_sync(_state)
            if current == heads():
                return  # another worker created it while we waited
            if not current and not has_tables:
                await _in_transaction(engine, _create_and_stamp)
                return
            if not current:
                await upgrade_engine(engine)  # adopt tables made before migrations
                return
    raise SchemaError(
        describe_mismatch(current, has_tables, engine.url.render_as_string(hide_password=False))
    )


@contextlib.asynccontextmanager
async def _sqlite_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Serialise the first start of workers sharing one SQLite file (one host by nature)."""
    database = engine.url.database
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: workers race, the loser retries
        yield
        return
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _with_engine(url: str, work: Callable[[AsyncEngine], Any]) -> Any:
    async def run() -> Any:
        if make_url(url).get_backend_name() == "sqlite":
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (what ``quart-app db upgrade`` runs)."""
    _with_engine(url, lambda engine: upgrade_engine(engine, revision))


def downgrade(url: str, revision: str) -> None:
    _with_engine(url, lambda engine: downgrade_engine(engine, revision))


def current(url: str) -> set[str]:
    """The revisions the database at ``url`` is stamped with (empty if none)."""
    result: set[str] = _with_engine(url, current_revisions)
    return result


def revision(url: str, message: str) -> None:
    """Write a new migration script from the difference between models and the database.

    For developers: run against a database at head (e.g. a scratch SQLite file after
    ``db upgrade``), then review the script in ``quart_app/store/migrations/versions``.
    """

    def generate(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)

    _with_engine(url, lambda engine: _in_transaction(engine, generate))
