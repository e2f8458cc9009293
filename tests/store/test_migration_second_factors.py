"""Revision 0006 (second factors) upgrades a database made at the previous schema with
rows in it, and downgrades again, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from quart_app.store import migrate

REVISION = "0006"


async def _execute(
    url: str, *statements: str, params: dict[str, object] | None = None
) -> list[tuple[object, ...]]:
    engine = create_async_engine(url)
    rows: list[tuple[object, ...]] = []
    try:
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement), params or {})
                if result.returns_rows:
                    rows = [tuple(row) for row in result]
    finally:
        await engine.dispose()
    return rows


async def test_second_factors_migrate_a_database_with_rows(scratch_url: str) -> None:
    previous = migrate.script().get_revision(REVISION).down_revision
    assert isinstance(previous, str)
    await asyncio.to_thread(migrate.upgrade, scratch_url, previous)
    await _execute(
        scratch_url,
        "INSERT INTO users (id, username, username_key, password_hash, created_at)"
        " VALUES (1, 'Alice', 'alice', 'hash-a', '2026-01-01 00:00:00'),"
        " (2, 'bob', 'bob', 'hash-b', '2026-01-02 00:00:00')",
        "INSERT INTO login_limits (key, failures, since, admitted, expires_at)"
        " VALUES ('k', 3, 1.0, true, 99.0)",
    )
    await asyncio.to_thread(migrate.upgrade, scratch_url, REVISION)
    users = await _execute(scratch_url, "SELECT id, username, password_hash FROM users ORDER BY id")
    assert users == [(1, "Alice", "hash-a"), (2, "bob", "hash-b")]
    assert await _execute(scratch_url, "SELECT failures FROM login_limits") == [(3,)]
    # The new tables take rows of those users.
    await _execute(
        scratch_url,
        "INSERT INTO mfa_totp (user_id, secret, confirmed, last_step, created_at)"
        " VALUES (1, 'ciphertext', true, 5, 1.0)",
        "INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES (1, 'h1'), (1, 'h2')",
        "INSERT INTO mfa_tickets (key, kind, user_id, expires_at) VALUES ('t', 'login', 1, 9.0)",
    )
    await _execute(
        scratch_url,
        "INSERT INTO passkeys (user_id, credential_id, public_key, sign_count,"
        " backup_eligible, backed_up, name, created_at)"
        " VALUES (2, :cid, :key, 0, false, false, 'key', '2026-01-03 00:00:00')",
        params={"cid": b"\x01\x02", "key": b"\x03\x04"},
    )
    counts = await _execute(
        scratch_url,
        "SELECT (SELECT count(*) FROM mfa_totp), (SELECT count(*) FROM mfa_recovery_codes),"
        " (SELECT count(*) FROM passkeys), (SELECT count(*) FROM mfa_tickets)",
    )
    assert counts == [(1, 2, 1, 1)]
    with pytest.raises(Exception, match=r"(?i)unique"):
        await _execute(
            scratch_url, "INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES (2, 'h1')"
        )
    assert await asyncio.to_thread(migrate.current, scratch_url) == {REVISION}

    await asyncio.to_thread(migrate.downgrade, scratch_url, previous)
    assert await _execute(scratch_url, "SELECT count(*) FROM users") == [(2,)]
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    assert await asyncio.to_thread(migrate.current, scratch_url) == migrate.heads()
