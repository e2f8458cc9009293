"""Alembic: models and migrations agree, start-up refuses a schema behind head, CLI."""

from __future__ import annotations

import asyncio
import fnmatch
import sqlite3
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from quart import Quart
from sqlalchemy.ext.asyncio import create_async_engine

from quart_app.cli.database import db
from quart_app.services import services
from quart_app.store import migrate
from quart_app.store.models import Base
from tests.helpers.backend_servers import run

#: Redis-only behaviour, or PostgreSQL-only: the SQLite backend has nothing to test.
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"])

ROOT = Path(__file__).resolve().parents[2]
#: The tables of revision 0001, the baseline that pre-migration databases are stamped at.
BASELINE_TABLES = ("users", "revocations")


async def _diff(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        return await migrate.schema_diff(engine)
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(scratch_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    assert await asyncio.to_thread(migrate.current, scratch_url) == migrate.heads()
    assert await _diff(scratch_url) == []


async def test_downgrade_to_base_and_up_again(scratch_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    await asyncio.to_thread(migrate.downgrade, scratch_url, "base")
    assert await asyncio.to_thread(migrate.current, scratch_url) == set()
    diff = await _diff(scratch_url)
    assert {op[0] for op in diff} == {"add_table", "add_index"}  # every table is gone
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    assert await _diff(scratch_url) == []


async def test_start_up_refuses_a_database_behind_head(
    app_factory: Callable[..., Quart], scratch_url: str, backend: str
) -> None:
    # On PostgreSQL an empty database is "behind"; on SQLite too once creation is off.
    app = app_factory(DATABASE_URL=scratch_url, DATABASE_CREATE_TABLES=False)
    with pytest.raises(Exception, match="behind this release") as refused:
        async with app.test_app():
            pass
    assert "Run `quart-app db upgrade` with the same DATABASE_URL" in str(refused.value)
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    async with app.test_app():
        assert await services(app).users.count() == 0


@POSTGRES_ONLY
async def test_postgres_never_creates_its_schema_at_start_up(
    app_factory: Callable[..., Quart], scratch_url: str, backend: str
) -> None:
    app = app_factory(DATABASE_URL=scratch_url, DATABASE_CREATE_TABLES=True)
    with pytest.raises(Exception, match="quart-app db upgrade"):
        async with app.test_app():
            pass
    assert await asyncio.to_thread(migrate.current, scratch_url) == set()


async def test_start_up_refuses_a_database_from_a_newer_release(
    app_factory: Callable[..., Quart], scratch_url: str
) -> None:
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    engine = create_async_engine(scratch_url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed'")
    await engine.dispose()
    app = app_factory(DATABASE_URL=scratch_url)
    with pytest.raises(Exception, match="newer release"):
        async with app.test_app():
            pass


async def test_sqlite_first_start_creates_and_stamps_the_schema(
    app_factory: Callable[..., Quart], tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    # Four workers starting together on a fresh file: one creates, the others wait.
    apps = [app_factory(DATABASE_URL=url) for _ in range(4)]
    await asyncio.gather(*(a.startup() for a in apps))
    try:
        assert await asyncio.to_thread(migrate.current, url) == migrate.heads()
        assert await _diff(url) == []
    finally:
        await asyncio.gather(*(a.shutdown() for a in apps))
    rows = sqlite3.connect(tmp_path / "fresh.db").execute("SELECT * FROM alembic_version")
    assert len(rows.fetchall()) == 1
    # WAL, so readers run beside the writer: set once in the file, by the first worker.
    mode = sqlite3.connect(tmp_path / "fresh.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


async def test_tables_made_before_migrations_are_adopted(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        # What releases before 0001 did: create_all of the tables 0001 knows.
        await conn.run_sync(
            Base.metadata.create_all, tables=[Base.metadata.tables[t] for t in BASELINE_TABLES]
        )
    await engine.dispose()
    assert await asyncio.to_thread(migrate.current, url) == set()
    await asyncio.to_thread(migrate.upgrade, url)
    assert await asyncio.to_thread(migrate.current, url) == migrate.heads()


def test_db_commands(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    behind = runner.invoke(db, ["current", "--url", url])
    assert behind.exit_code == 1
    assert "quart-app db upgrade" in behind.output
    upgraded = runner.invoke(db, ["upgrade", "--url", url])
    assert upgraded.exit_code == 0, upgraded.output
    (head,) = migrate.heads()
    assert f"database at {head}" in upgraded.output
    current = runner.invoke(db, ["current", "--url", url])
    assert current.exit_code == 0
    assert f"database: {head}; head: {head}" in current.output
    bad = runner.invoke(db, ["upgrade", "--url", "postgresql+asyncpg://nobody@127.0.0.1:1/x"])
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: ")


def test_db_commands_read_database_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert CliRunner().invoke(db, ["upgrade"]).exit_code == 0
    assert run(asyncio.to_thread(migrate.current, url)) == migrate.heads()


def test_every_migration_file_ships_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["quart_app"]
    package = ROOT / "quart_app"
    files = [
        path.relative_to(package).as_posix()
        for path in (package / "store" / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert "store/migrations/env.py" in files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert missing == []


async def test_0008_upgrades_a_database_with_rows(scratch_url: str) -> None:
    """OAuth clients and DPoP proofs arrive on a database in use at 0004: its rows stay."""
    from sqlalchemy import text

    await asyncio.to_thread(migrate.upgrade, scratch_url, "0004")
    engine = create_async_engine(scratch_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (username, username_key, password_hash, created_at)"
                    " VALUES ('alice', 'alice', 'x', CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO revocations (key, kind, value, expires_at, created_at)"
                    " VALUES ('jti:j1', 'jti', 'j1', 9e9, 1)"
                )
            )
        await asyncio.to_thread(migrate.upgrade, scratch_url, "0008")
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT username FROM users"))).scalar() == "alice"
            assert (await conn.execute(text("SELECT key FROM revocations"))).scalar() == "jti:j1"
            await conn.execute(
                text(
                    "INSERT INTO oauth_clients (client_id, secret_hash, created_at, rotated_at)"
                    " VALUES ('svc', 'sha256$00', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(text("INSERT INTO dpop_proofs (key, expires_at) VALUES ('k', 1.0)"))
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO dpop_proofs (key, expires_at) VALUES ('k', 2.0)")
                )
        await asyncio.to_thread(migrate.downgrade, scratch_url, "0004")
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT username FROM users"))).scalar() == "alice"
    finally:
        await engine.dispose()
