"""Migration 0005 (sessions, security events, roles) upgrades a database of the previous
release with users in it, on SQLite and PostgreSQL; those users log in afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from argon2 import PasswordHasher
from quart import Quart
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from quart_app.store import migrate
from tests.helpers.support import bearer, login

PREVIOUS = "0004"


async def _execute(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_upgrade_from_0004_with_users_in_it(
    scratch_url: str, app_factory: Callable[..., Quart]
) -> None:
    await asyncio.to_thread(migrate.upgrade, scratch_url, PREVIOUS)
    hashed = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("old-password")
    for user_id, name in ((1, "alice"), (2, "Bob")):
        await _execute(
            scratch_url,
            "INSERT INTO users (id, username, username_key, password_hash, created_at)"
            " VALUES (:id, :name, :key, :hash, :created)",
            id=user_id,
            name=name,
            key=name.casefold(),
            hash=hashed,
            created=datetime(2026, 1, 1, tzinfo=UTC),
        )
    await _execute(
        scratch_url,
        "INSERT INTO revocations (key, kind, value, not_before, expires_at, created_at)"
        " VALUES ('family:f00d', 'family', 'f00d', NULL, 4102444800, 1)",
    )
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    assert await asyncio.to_thread(migrate.current, scratch_url) == migrate.heads()
    rows = await _execute(
        scratch_url, "SELECT id, role, disabled, credential_epoch FROM users ORDER BY id"
    )
    assert rows == [(1, "user", False, 0), (2, "user", False, 0)]
    assert await _execute(scratch_url, "SELECT key FROM revocations") == [("family:f00d",)]

    app = app_factory(DATABASE_URL=scratch_url, DATABASE_CREATE_TABLES=False)
    async with app.test_app():
        client = app.test_client()
        pair = await login(client, "bob", "old-password")  # its password predates the rules
        sessions = await client.get("/sessions", headers=bearer(pair["access_token"]))
        assert len(await sessions.get_json()) == 1
        refreshed = await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
        assert refreshed.status_code == 200
    events = await _execute(scratch_url, "SELECT event, user_id FROM security_events ORDER BY id")
    assert events == [("login", 2), ("refresh", 2)]

    # And back: the users stay, the new tables and columns go.
    await asyncio.to_thread(migrate.downgrade, scratch_url, PREVIOUS)
    assert await _execute(scratch_url, "SELECT id FROM users ORDER BY id") == [(1,), (2,)]
