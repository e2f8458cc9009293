"""Request ids, one structured log line per request without secrets, /metrics and /readyz."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart

from quart_app import create_app
from quart_app.observability import observability
from quart_app.observability.logs import (
    JsonFormatter,
    configure_logging,
    log_request,
    request_id_var,
)
from quart_app.services import services
from tests.helpers.ops_helpers import free_port
from tests.helpers.support import SECRET, bearer, login, make_config, register

METRICS_TOKEN = "scrape-token-0123456789"


def json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def access_lines(stderr: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(stderr) if line["logger"] == "quart_app.access"]


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def app_with(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await app_with(**config)`` starts an app; all are stopped at the end."""
    started: list[Quart] = []

    async def start(**overrides: Any) -> Quart:
        app = create_app(make_config(tmp_path, **overrides))
        await app.startup()
        started.append(app)
        return app

    yield start
    for app in started:
        await app.shutdown()


async def test_request_id_is_accepted_generated_and_echoed(
    app_with: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = await app_with(LOG_FORMAT="json")
    client = app.test_client()
    given = await client.get("/healthz", headers={"X-Request-ID": "edge-42.a:b"})
    assert given.headers["X-Request-ID"] == "edge-42.a:b"
    fresh = await client.get("/healthz")
    generated = fresh.headers["X-Request-ID"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    for unsafe in ("has space", "x" * 129, 'quote"d', "new\\nline"):
        response = await client.get("/healthz", headers={"X-Request-ID": unsafe})
        assert response.headers["X-Request-ID"] not in (unsafe, generated)
    lines = access_lines(capsys.readouterr().err)
    assert [line["request_id"] for line in lines[:2]] == ["edge-42.a:b", generated]
    assert request_id_var.get() is None  # nothing leaks out of the request


async def test_one_json_line_per_request_and_no_secrets(
    app_with: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = await app_with(LOG_FORMAT="json")
    client = app.test_client()
    password = "very-secret-password-1"
    await register(client, "alice", password)
    tokens = await login(client, "alice", password)
    access = tokens["access_token"]
    capsys.readouterr()

    await client.get(f"/protected?jwt={access}&x=1", headers=bearer(access))
    await client.post("/login", json={"username": "alice", "password": password + "-wrong"})
    await client.get(
        "/users", headers={"Authorization": f"Basic {password}", "X-Request-ID": "r-1"}
    )
    await client.get("/no/such/route")
    err = capsys.readouterr().err
    lines = access_lines(err)
    assert len(lines) == 4
    protected, failed, users, missing = lines
    assert protected["msg"].startswith("GET /protected 200 ")
    assert {k: protected[k] for k in ("method", "path", "route", "status", "user_id")} == {
        "method": "GET",
        "path": "/protected",
        "route": "/protected",
        "status": 200,
        "user_id": "1",
    }
    assert protected["duration_ms"] > 0 and protected["level"] == "info"
    assert isinstance(protected["pid"], int) and protected["ts"].endswith("Z")
    assert (failed["route"], failed["status"], failed["user_id"]) == ("/login", 401, None)
    assert (users["status"], users["request_id"]) == (401, "r-1")
    assert (missing["route"], missing["status"]) == ("<unmatched>", 404)
    for secret in (access, tokens["refresh_token"], password, "Authorization", "jwt="):
        assert secret not in err


async def test_login_and_register_lines_name_the_user(
    app_with: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = await app_with(LOG_FORMAT="json")
    client = app.test_client()
    await register(client, "alice")
    await register(client, "bob")
    tokens = await login(client, "bob")
    await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    lines = access_lines(capsys.readouterr().err)
    assert [(line["route"], line["user_id"]) for line in lines] == [
        ("/register", "1"),
        ("/register", "2"),
        ("/login", "2"),
        ("/token/refresh", "2"),
    ]


async def test_text_format_and_switching_logs_off(
    app_with: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = await app_with(LOG_FORMAT="text")
    await app.test_client().get("/healthz", headers={"X-Request-ID": "text-1"})
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "quart_app.access" in line)
    assert " INFO quart_app.access [text-1] GET /healthz 200 " in line
    assert "route=/healthz" in line and "user_id=None" in line

    quiet = await app_with(ACCESS_LOG=False, LOG_FORMAT="text")
    response = await quiet.test_client().get("/healthz")
    assert "X-Request-ID" in response.headers
    assert "quart_app.access" not in capsys.readouterr().err

    with pytest.raises(ValueError, match="LOG_FORMAT must be text, json or none"):
        create_app(make_config(Path("/nonexistent"), LOG_FORMAT="yaml"))


def test_json_formatter_keeps_exceptions_and_extra_fields() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "quart_app.x", logging.ERROR, __file__, 1, "failed %s", ("it",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    record.user_id = "7"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "failed it" and line["level"] == "error" and line["user_id"] == "7"
    assert "RuntimeError: boom" in line["exc"]


async def test_metrics_are_off_by_default(app_with: Callable[..., Any]) -> None:
    app = await app_with()
    assert (await app.test_client().get("/metrics")).status_code == 404


async def test_metrics_count_requests_verifications_logins_and_hashing(
    app_with: Callable[..., Any],
) -> None:
    app = await app_with(
        METRICS_ENABLED=True, METRICS_TOKEN=METRICS_TOKEN, LOGIN_LOCKOUT_THRESHOLD=3
    )
    client = app.test_client()
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"

    await register(client, "alice", "correct-horse")
    tokens = await login(client, "alice", "correct-horse")
    for _ in range(3):
        assert (
            await client.get("/protected", headers=bearer(tokens["access_token"]))
        ).status_code == 200
    now = int(time.time())
    claims = {"sub": "1", "jti": "j", "type": "access", "iat": now - 100, "nbf": now - 100}
    expired = jwt.encode({**claims, "exp": now - 50}, SECRET, "HS256")
    forged = jwt.encode({**claims, "exp": now + 500}, "another-secret-" + "y" * 40, "HS256")
    for headers in ({}, bearer("not-a-jwt"), bearer(expired), bearer(forged)):
        await client.get("/protected", headers=headers)
    await client.post("/logout", headers=bearer(tokens["access_token"]))
    await client.get("/protected", headers=bearer(tokens["access_token"]))  # revoked
    for _ in range(4):  # three checks fail and lock the account; the fourth is refused: 429
        await client.post("/login", json={"username": "alice", "password": "wrong-horse"})
    await client.get("/nowhere")

    response = await client.get("/metrics", headers=scrape)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    found = samples(await response.get_data(as_text=True))
    requests = "quart_app_http_requests_total"
    assert value(found, requests, method="GET", route="/protected", status="200") == 3
    assert value(found, requests, method="GET", route="/protected", status="401") == 3
    assert value(found, requests, method="GET", route="/protected", status="422") == 2
    assert value(found, requests, method="GET", route="<unmatched>", status="404") == 1
    assert value(found, requests, method="POST", route="/login", status="429") == 1
    verified = "quart_app_jwt_verifications_total"
    assert {
        outcome: value(found, verified, outcome=outcome)
        for outcome in ("ok", "missing", "malformed", "expired", "bad_signature", "revoked")
    } == {"ok": 4, "missing": 1, "malformed": 1, "expired": 1, "bad_signature": 1, "revoked": 1}
    logins = "quart_app_logins_total"
    assert [value(found, logins, outcome=o) for o in ("ok", "failed", "throttled")] == [1, 3, 1]
    assert value(found, "quart_app_login_refusals_total", limit="pair") == 1
    latency = "quart_app_http_request_duration_seconds_count"
    assert value(found, latency, method="GET", route="/protected") == 8
    assert value(found, "quart_app_password_hash_seconds_count", operation="verify") == 4
    assert value(found, "quart_app_password_hash_seconds_count", operation="hash") >= 1
    assert value(found, "quart_app_password_hash_wait_seconds_count", operation="verify") == 4
    assert value(found, "quart_app_password_hash_queue_depth") == 0


async def test_hash_queue_depth_is_reported_while_hashes_wait(
    app_with: Callable[..., Any],
) -> None:
    app = await app_with(
        METRICS_ENABLED=True,
        METRICS_PUBLIC=True,
        PASSWORD_HASH_THREADS=1,
        ARGON2_TIME_COST=3,
        ARGON2_MEMORY_COST=8192,
    )
    metrics = observability(app).metrics
    assert metrics is not None
    depths: list[int] = []
    original = metrics.queue_depth

    def spy(depth: int) -> None:
        depths.append(depth)
        original(depth)

    metrics.queue_depth = spy  # type: ignore[method-assign]
    import asyncio

    passwords = services(app).passwords
    await asyncio.gather(*(passwords.hash(f"password-{i}") for i in range(4)))
    assert max(depths) == 4 and depths[-1] == 0


async def test_readyz_checks_the_database(app_with: Callable[..., Any]) -> None:
    app = await app_with()
    client = app.test_client()
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ready", "checks": {"database": "ok"}}

    async def broken() -> None:
        raise ConnectionError("database is down")

    services(app).db.ping = broken  # type: ignore[method-assign]
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert await response.get_json() == {
        "status": "unavailable",
        "msg": "Not ready",
        "checks": {"database": "unavailable"},
    }


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = "/usr/bin/redis-server"
    if not Path(server).exists():
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            import socket

            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(10)


async def test_readyz_checks_redis_when_configured(
    app_with: Callable[..., Any], redis_url: str
) -> None:
    app = await app_with(REDIS_URL=redis_url, READINESS_TIMEOUT=0.5)
    client = app.test_client()
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert (await response.get_json())["checks"] == {"database": "ok", "redis": "ok"}
    readiness = observability(app).readiness
    await readiness.close()
    readiness.redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = await client.get("/readyz")
    # Degraded, still ready: workers serve correctly without Redis (SQL poll fallback).
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"] == {"database": "ok", "redis": "unavailable"}


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_direct_request_line_matches_the_logging_one(
    log_format: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production writes request lines directly; it must be the handler's exact text."""
    configure_logging(log_format, "INFO")
    logger = logging.getLogger("quart_app.access")
    fields: dict[str, Any] = {
        "method": "GET",
        "path": "/protected",
        "route": "/protected",
        "status": 200,
        "duration": 0.000421,
        "client": "10.0.0.7",
        "user_id": "3",
    }
    token = request_id_var.set("same-id")
    try:
        assert logging.root.handlers  # pytest's capture: the logging path is taken
        log_request(logger, **fields)
        through_logging = capsys.readouterr().err
        monkeypatch.setattr(logging.root, "handlers", [])  # as under Hypercorn
        log_request(logger, **fields)
        direct = capsys.readouterr().err
    finally:
        request_id_var.reset(token)
    assert through_logging.count("\n") == direct.count("\n") == 1
    if log_format == "json":
        first, second = json.loads(through_logging), json.loads(direct)
        assert first.pop("ts")[:19] == second.pop("ts")[:19]
        assert first == second
        assert second["msg"] == "GET /protected 200 0.42ms" and second["request_id"] == "same-id"
    else:
        # The same line but for the milliseconds of the timestamp.
        assert through_logging[:19] == direct[:19]
        assert through_logging[23:] == direct[23:]
        assert direct[23:].startswith(" INFO quart_app.access [same-id] GET /protected 200 0.42ms")
        assert direct.rstrip().endswith("route=/protected client=10.0.0.7 user_id=3")
