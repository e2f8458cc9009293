"""The operator's commands, in-process (CliRunner) and as real processes (both entry points)."""

from __future__ import annotations

import asyncio
import os
import pty
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import jwt

from quart_app import create_app
from quart_app.jwt.revocation import Revocation
from quart_app.services import services
from tests.helpers.backend_servers import RedisRun
from tests.helpers.ops_helpers import BIN, ROOT, cli, cli_env, run_cli
from tests.helpers.support import bearer, login, make_config, register


def tables(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "app.db") as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


async def test_init_db_creates_the_tables(tmp_path: Path) -> None:
    result = await cli(["init-db"], cli_env(tmp_path, DATABASE_CREATE_TABLES="false"))
    assert (result.exit_code, result.stdout) == (0, "database ready\n")
    assert {"users", "revocations"} <= tables(tmp_path)


async def test_create_user_reads_the_password_from_stdin_and_it_logs_in(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = await cli(["create-user", "Alice"], env, stdin="from stdin 123\n")
    assert (result.exit_code, result.stdout) == (0, "created user Alice (id 1)\n")
    app = create_app(make_config(tmp_path))
    async with app.test_app():
        await login(app.test_client(), "alice", "from stdin 123")

    taken = await cli(["create-user", "ALICE"], env, stdin="another-password\n")
    assert (taken.exit_code, taken.stderr) == (1, "Error: username 'ALICE' already exists\n")


async def test_create_user_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    for args, stdin, message in [
        (["create-user", "no spaces"], "long-enough-pw\n", "Error: username: Value error,"),
        (["create-user", "bob"], "short\n", "Error: password: String should have at least 8"),
        (["create-user", "bob"], "", "Error: no password on stdin"),
    ]:
        result = await cli(args, env, stdin=stdin)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    # There is no way to pass the password as an argument.
    result = await cli(["create-user", "bob", "--password", "long-enough-pw"], env, stdin="")
    assert result.exit_code == 2 and "No such option '--password'" in result.stderr
    result = await cli(["create-user", "bob", "long-enough-pw"], env, stdin="")
    assert result.exit_code == 2 and "unexpected extra argument" in result.stderr


async def test_create_user_prompts_on_a_terminal_without_echo(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(BIN / "quart-app"), "create-user", "tty_user"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **cli_env(tmp_path)},
        cwd=ROOT,
    )
    os.close(follower)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 20
        while marker not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(leader, 1024)
            except OSError:
                break

    try:
        await asyncio.to_thread(read_until, b"Password:")
        os.write(leader, b"typed-secret-1\n")
        await asyncio.to_thread(read_until, b"Repeat for confirmation:")
        os.write(leader, b"typed-secret-1\n")
        await asyncio.to_thread(read_until, b"created user")
        assert process.wait(20) == 0
        await asyncio.to_thread(read_until, b"\n(id 1)")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    assert b"created user tty_user (id 1)" in seen
    assert b"typed-secret-1" not in seen  # never echoed


async def test_revoke_user_kills_every_token_on_a_running_app(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, REVOCATION_SYNC_INTERVAL=0.1))
    async with app.test_app():
        client = app.test_client()
        await register(client, "alice", "correct-horse")
        await register(client, "bob", "battery-staple")
        alice, bob = await login(client, "alice"), await login(client, "bob", "battery-staple")
        # revoke-user ends sessions (their families), not "tokens issued before a second":
        # nothing to wait for, before it or after it.
        result = await cli(["revoke-user", "ALICE"], cli_env(tmp_path))
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("revoked every token of alice (id 1) issued before ")

        deadline = time.monotonic() + 3
        response = await client.get("/protected", headers=bearer(alice["access_token"]))
        while response.status_code == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            response = await client.get("/protected", headers=bearer(alice["access_token"]))
        assert response.status_code == 401
        assert await response.get_json() == {"msg": "Token has been revoked"}
        refreshed = await client.post("/token/refresh", headers=bearer(alice["refresh_token"]))
        assert refreshed.status_code == 401
        # Other users are untouched; alice can log in again and gets working tokens.
        response = await client.get("/protected", headers=bearer(bob["access_token"]))
        assert response.status_code == 200
        again = await login(client, "alice")
        response = await client.get("/protected", headers=bearer(again["access_token"]))
        assert response.status_code == 200

    missing = await cli(["revoke-user", "nobody"], cli_env(tmp_path))
    assert (missing.exit_code, missing.stderr) == (1, "Error: no user 'nobody'\n")


async def test_prune_deletes_only_expired_revocations(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))
    async with app.test_app():
        store = services(app).revocations.store
        now = time.time()
        await store.add(
            [
                Revocation("jti", "old-1", now - 10),
                Revocation("family", "old-2", now - 1),
                Revocation("jti", "live", now + 3600),
            ]
        )
    result = await cli(["prune"], cli_env(tmp_path))
    assert (result.exit_code, result.stdout) == (0, "pruned 2 expired revocations\n")
    with sqlite3.connect(tmp_path / "app.db") as conn:
        assert [row[0] for row in conn.execute("SELECT value FROM revocations")] == ["live"]


async def test_configuration_errors_are_one_line(tmp_path: Path) -> None:
    result = await cli(["init-db"], cli_env(tmp_path, ARGON2_TIME_COST="lots"))
    assert result.exit_code == 1
    assert result.stderr == "Error: ARGON2_TIME_COST must be a number (int), not 'lots'\n"
    result = await cli(["prune"], cli_env(tmp_path, DATABASE_URL="nosuchdb://x/y"))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    result = await cli(["init-db"], cli_env(tmp_path, JWT_SECRET_KEY="short"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: JWT_SECRET_KEY is 5 bytes") and (
        result.stderr.count("\n") == 1
    )


def test_both_entry_points_run_the_same_commands(tmp_path: Path) -> None:
    env = {**os.environ, **cli_env(tmp_path)}
    script = subprocess.run(
        [str(BIN / "quart-app"), "create-user", "via_script"],
        input="script-password\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert (script.returncode, script.stdout) == (0, "created user via_script (id 1)\n")
    quart = [sys.executable, "-m", "quart", "--app", "quart_app.asgi"]
    created = subprocess.run(
        [*quart, "create-user", "via_quart"],
        input="quart-password\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert (created.returncode, created.stdout) == (0, "created user via_quart (id 2)\n")
    failed = subprocess.run(
        [*quart, "revoke-user", "ghost"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (failed.returncode, failed.stderr) == (1, "Error: no user 'ghost'\n")
    listing = subprocess.run(
        [*quart, "--help"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    for command in ("init-db", "create-user", "revoke-user", "prune", "import-users"):
        assert command in listing.stdout
    assert run_cli(["--help"], cli_env(tmp_path)).exit_code == 0


async def test_rotate_keys_adds_a_signing_key_old_tokens_keep_working(tmp_path: Path) -> None:
    hs = await cli(["rotate-keys"], cli_env(tmp_path))
    assert hs.exit_code == 1
    assert hs.stderr == (
        "Error: HS256 keys come from JWT_SECRET_KEY (HS*): change the secret to rotate it"
        " (every token dies)\n"
    )
    app = create_app(make_config(tmp_path, JWT_ALGORITHM="ES256"))
    async with app.test_app():
        client = app.test_client()
        await register(client)
        before = await login(client)
        old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
        result = await cli(["rotate-keys", "--now"], cli_env(tmp_path, JWT_ALGORITHM="ES256"))
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("new ES256 signing key ")
        new_kid = result.stdout.split()[4]
        assert new_kid != old_kid
        deadline = time.monotonic() + 5
        kid = old_kid
        while kid != new_kid and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            kid = jwt.get_unverified_header((await login(client))["access_token"])["kid"]
        assert kid == new_kid
        response = await client.get("/protected", headers=bearer(before["access_token"]))
        assert response.status_code == 200
        jwks = await (await client.get("/.well-known/jwks.json")).get_json()
        assert {old_kid, new_kid} <= {key["kid"] for key in jwks["keys"]}


def test_first_rotate_keys_in_an_empty_folder_makes_one_key(tmp_path: Path) -> None:
    env = cli_env(tmp_path, JWT_ALGORITHM="ES256")
    first = run_cli(["rotate-keys"], env)
    assert first.exit_code == 0, first.output
    folder = Path(env["INSTANCE_PATH"]) / "jwt-keys"
    assert len(list(folder.glob("key-*-ES256.pem"))) == 1
    second = run_cli(["rotate-keys"], env)
    assert second.exit_code == 0, second.output
    assert len(list(folder.glob("key-*-ES256.pem"))) == 2
    assert second.stdout.split()[4] != first.stdout.split()[4]


async def test_revoke_user_reaches_workers_through_redis_at_once(
    tmp_path: Path, redis_server: RedisRun
) -> None:
    redis = {"REDIS_URL": redis_server.url, "REDIS_PREFIX": redis_server.next_prefix()}
    # The SQL poll is a minute away: only the Redis message can be this fast.
    app = create_app(make_config(tmp_path, REVOCATION_SYNC_INTERVAL=60, **redis))
    async with app.test_app():
        client = app.test_client()
        await register(client)
        tokens = await login(client)
        result = await cli(["revoke-user", "alice"], cli_env(tmp_path, **redis))
        assert result.exit_code == 0, result.output
        deadline = time.monotonic() + 3
        response = await client.get("/protected", headers=bearer(tokens["access_token"]))
        while response.status_code == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            response = await client.get("/protected", headers=bearer(tokens["access_token"]))
        assert response.status_code == 401
