"""Migration 0007 (addresses, recovery tokens, the outbox) on a database that has rows,
on SQLite and PostgreSQL: upgrade keeps them and the new tables work with them; the
downgrade goes back."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from quart_app.store import migrate

REVISION = "0007"


async def execute(url: str, *statements: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            rows: list[tuple[object, ...]] = []
            for statement in statements:
                result = await conn.execute(text(statement))
                if result.returns_rows:
                    rows = [tuple(row) for row in result]
            return rows
    finally:
        await engine.dispose()


async def test_0007_upgrades_a_database_with_rows(scratch_url: str) -> None:
    previous = migrate.script().get_revision(REVISION).down_revision
    assert isinstance(previous, str)
    await asyncio.to_thread(migrate.upgrade, scratch_url, previous)
    await execute(
        scratch_url,
        "INSERT INTO users (id, username, username_key, password_hash, created_at)"
        " VALUES (1, 'Alice', 'alice', 'h1', CURRENT_TIMESTAMP),"
        " (2, 'bob', 'bob', 'h2', CURRENT_TIMESTAMP)",
        "INSERT INTO revocations (key, kind, value, expires_at, created_at)"
        " VALUES ('jti:x', 'jti', 'x', 1e10, 1)",
    )
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    assert await asyncio.to_thread(migrate.current, scratch_url) == migrate.heads()
    rows = await execute(scratch_url, "SELECT id, username, password_hash FROM users ORDER BY id")
    assert rows == [(1, "Alice", "h1"), (2, "bob", "h2")]
    assert await execute(scratch_url, "SELECT key FROM revocations") == [("jti:x",)]

    await execute(
        scratch_url,
        "INSERT INTO user_emails (user_id, email, verified_key, reset_mail_1, reset_mail_2,"
        " reset_mail_3) VALUES (1, 'A@x.example', 'a@x.example', 0, 0, 0)",
        "INSERT INTO recovery_tokens (token_hash, user_id, purpose, expires_at)"
        " VALUES ('t1', 1, 'reset', 1e10)",
        "INSERT INTO mail_outbox (message_id, recipient, template, context, state, attempts,"
        " created_at, next_attempt_at) VALUES ('m1', 'A@x.example', 'notice', '{}',"
        " 'pending', 0, 1, 1)",
    )
    with pytest.raises(IntegrityError):  # a verified address belongs to one account
        await execute(
            scratch_url,
            "INSERT INTO user_emails (user_id, email, verified_key, reset_mail_1,"
            " reset_mail_2, reset_mail_3) VALUES (2, 'a@X.example', 'a@x.example', 0, 0, 0)",
        )
    # Deleting a user takes its address and tokens along.
    await execute(scratch_url, "DELETE FROM users WHERE id = 1")
    assert await execute(scratch_url, "SELECT count(*) FROM user_emails") == [(0,)]
    assert await execute(scratch_url, "SELECT count(*) FROM recovery_tokens") == [(0,)]

    await asyncio.to_thread(migrate.downgrade, scratch_url, previous)
    assert await execute(scratch_url, "SELECT username FROM users") == [("bob",)]
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    assert await execute(scratch_url, "SELECT count(*) FROM mail_outbox") == [(0,)]
