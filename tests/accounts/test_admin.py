"""Administration: the role read from the database at each request, a user's sessions,
ending them, disabling and enabling, every event; and the command line equivalents."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from quart import Quart

from quart_app import create_app
from quart_app.accounts.events import SecurityEvent
from quart_app.cli import main
from quart_app.services import services
from tests.helpers.support import (
    FAST_HASHING,
    SECRET,
    Client,
    bearer,
    login,
    make_config,
    register,
    send,
)

PASSWORD = "correct-horse"


def cli_env(tmp_path: Path) -> dict[str, str]:
    """What the command line reads: the test app's database and instance."""
    return {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "JWT_SECRET_KEY": SECRET,
        **{key: str(value) for key, value in FAST_HASHING.items()},
    }


async def cli(args: list[str], env: dict[str, str]) -> Result:
    """``quart-app ARGS`` in-process, in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, main, args, env=env)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Quart]:
    app = create_app(make_config(tmp_path))
    async with app.test_app():
        yield app


async def _admin(app: Quart, tmp_path: Path) -> dict[str, Any]:
    client = app.test_client()
    await register(client, "root")
    granted = await cli(["admin", "grant", "root"], cli_env(tmp_path))
    assert (granted.exit_code, granted.stdout) == (0, "root is an admin\n"), granted.output
    return await login(client, "root")


async def test_non_admins_get_403_and_a_demoted_admin_at_once(app: Quart, tmp_path: Path) -> None:
    client: Client = app.test_client()
    user = await register(client)
    pair = await login(client)
    for method, path in [
        ("GET", f"/admin/users/{user['id']}/sessions"),
        ("DELETE", f"/admin/users/{user['id']}/sessions"),
        ("POST", f"/admin/users/{user['id']}/disable"),
        ("POST", f"/admin/users/{user['id']}/enable"),
        ("GET", "/admin/events"),
    ]:
        response = await send(client, path, method, headers=bearer(pair["access_token"]))
        assert response.status_code == 403, path
        assert await response.get_json() == {"msg": "Admin rights required"}
    root = await _admin(app, tmp_path)
    ok = await client.get("/admin/events", headers=bearer(root["access_token"]))
    assert ok.status_code == 200
    revoked = await cli(["admin", "revoke", "root"], cli_env(tmp_path))
    assert revoked.exit_code == 0, revoked.output
    # The same, still valid token: the role is read from the database, not the token.
    again = await client.get("/admin/events", headers=bearer(root["access_token"]))
    assert again.status_code == 403


async def test_admin_sees_and_ends_a_users_sessions(app: Quart, tmp_path: Path) -> None:
    client: Client = app.test_client()
    alice = await register(client)
    pairs = [await login(client) for _ in range(2)]
    root = await _admin(app, tmp_path)
    admin = bearer(root["access_token"])
    listed = await client.get(f"/admin/users/{alice['id']}/sessions", headers=admin)
    sessions = await listed.get_json()
    assert len(sessions) == 2 and not any(s["current"] for s in sessions)
    ended = await client.delete(f"/admin/users/{alice['id']}/sessions", headers=admin)
    assert await ended.get_json() == {"msg": "Sessions ended", "ended": 2}
    for pair in pairs:
        refreshed = await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
        assert refreshed.status_code == 401
        protected = await client.get("/protected", headers=bearer(pair["access_token"]))
        assert protected.status_code == 401
    missing = await client.get("/admin/users/999/sessions", headers=admin)
    assert (missing.status_code, await missing.get_json()) == (404, {"msg": "User not found"})
    huge = await client.post(f"/admin/users/{2**70}/disable", headers=admin)
    assert huge.status_code == 404


async def test_disable_and_enable(app: Quart, tmp_path: Path) -> None:
    client: Client = app.test_client()
    alice = await register(client)
    pair = await login(client)
    root = await _admin(app, tmp_path)
    admin = bearer(root["access_token"])
    disabled = await client.post(f"/admin/users/{alice['id']}/disable", headers=admin)
    assert await disabled.get_json() == {"msg": "Account disabled"}
    assert (await client.get("/protected", headers=bearer(pair["access_token"]))).status_code == 401
    refused = await client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert (refused.status_code, await refused.get_json()) == (403, {"msg": "Account disabled"})
    wrong = await client.post("/login", json={"username": "alice", "password": "wrong-horse"})
    assert wrong.status_code == 401
    assert (
        await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    ).status_code == 401
    enabled = await client.post(f"/admin/users/{alice['id']}/enable", headers=admin)
    assert await enabled.get_json() == {"msg": "Account enabled"}
    await login(client)
    events = await client.get("/admin/events", query_string={"user_id": alice["id"]}, headers=admin)
    names = [e["event"] for e in await events.get_json()]
    assert names[:5] == [
        "login",
        "account_enabled",
        "login_failed",  # the wrong password
        "login_failed",  # the right one, while disabled
        "account_disabled",
    ]
    only = await client.get("/admin/events", query_string={"event": "register"}, headers=admin)
    assert sorted(e["user_id"] for e in await only.get_json()) == [alice["id"], alice["id"] + 1]


async def test_command_line(app: Quart, tmp_path: Path) -> None:
    client: Client = app.test_client()
    await register(client)
    pair = await login(client)
    env = cli_env(tmp_path)
    listed = await cli(["sessions", "alice"], env)
    assert listed.exit_code == 0 and listed.stdout.endswith("1 live sessions\n"), listed.output
    ended = await cli(["end-sessions", "alice"], env)
    assert ended.stdout == "ended 1 sessions of alice (id 1)\n", ended.output
    assert (
        await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    ).status_code == 401
    disabled = await cli(["disable", "alice"], env)
    assert disabled.stdout == "disabled alice (id 1); ended 0 sessions\n", disabled.output
    refused = await client.post("/login", json={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403
    assert (await cli(["enable", "alice"], env)).stdout == "enabled alice\n"
    await login(client)
    shown = await cli(["events", "--user", "alice", "--limit", "3"], env)
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [line["event"] for line in lines] == ["login", "account_enabled", "login_failed"]
    assert lines[2]["detail"] == {"reason": "disabled"}
    unknown = await cli(["disable", "nobody"], env)
    assert (unknown.exit_code, unknown.stderr.splitlines()[-1]) == (1, "Error: no user 'nobody'")


async def test_prune_keeps_audit_retention_days(app: Quart, tmp_path: Path) -> None:
    client: Client = app.test_client()
    await register(client)
    svc = services(app)
    old = time.time() - 91 * 86400
    await svc.events.record(SecurityEvent("login", user_id=1, time=old))
    pruned = await cli(["prune"], cli_env(tmp_path))
    assert pruned.exit_code == 0, pruned.output
    assert "pruned 1 security events" in pruned.stdout
    kept = await svc.events.page(limit=10, user_id=1)
    assert [e.event for e in kept] == ["register"]
