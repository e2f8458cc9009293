"""Live: real Hypercorn processes (hypercorn.toml, two workers) on loopback.

* SIGTERM during a slow request (an imported user's first login: PBKDF2 with 4 million
  iterations, then the re-hash to argon2id): the request completes, the workers stop
  cleanly, the process exits 0.
* Metrics in multiprocess mode are exact across workers; the JSON request log and
  Hypercorn's access log carry no token or password.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.security import generate_password_hash

from tests.helpers.ops_helpers import BIN, ROOT, cli_env, flask_database, hypercorn

pytestmark = pytest.mark.live

SLOW_PASSWORD = "imported-slow-password"
TOKEN = "metrics-scrape-token-123"


def import_users(tmp_path: Path, env: dict[str, str], users: list[tuple[int, str, str]]) -> None:
    source = flask_database(tmp_path / "flask.db", users)
    result = subprocess.run(
        [str(BIN / "quart-app"), "import-users", source],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"imported {len(users)}," in result.stdout


@pytest.mark.serial  # the slow hash must end within graceful_timeout
def test_sigterm_lets_the_in_flight_request_finish(tmp_path: Path) -> None:
    env = cli_env(tmp_path, LOG_FORMAT="json")
    slow = generate_password_hash(SLOW_PASSWORD, "pbkdf2:sha256:4000000")
    import_users(tmp_path, env, [(1, "slowpoke", slow)])
    outcome: dict[str, Any] = {}

    with hypercorn(tmp_path, env, "--workers", "2") as server:
        assert server.process is not None

        def slow_login() -> None:
            started = time.monotonic()
            try:
                outcome["response"] = httpx.post(
                    f"{server.url}/login",
                    json={"username": "slowpoke", "password": SLOW_PASSWORD},
                    timeout=30,
                )
            except httpx.HTTPError as error:
                outcome["error"] = error
            outcome["took"] = time.monotonic() - started
            outcome["answered_at"] = time.monotonic()

        thread = threading.Thread(target=slow_login)
        thread.start()
        time.sleep(0.4)  # the request is in and hashing (it needs ~2 s)
        signalled_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        thread.join(30)
        exit_code = server.process.wait(30)
        log = server.log()

    assert "error" not in outcome, outcome.get("error")
    response = outcome["response"]
    assert response.status_code == 200, response.text
    assert set(response.json()) >= {"access_token", "refresh_token"}
    assert outcome["answered_at"] > signalled_at  # it was still in flight at SIGTERM
    assert exit_code == 0, log[-3000:]
    assert [line["msg"] for line in json_lines(log)].count("worker stopped cleanly") == 2, log[
        -3000:
    ]
    assert "Traceback" not in log and "Task was destroyed" not in log, log[-3000:]
    # The first login re-hashed the Werkzeug hash before the worker stopped.
    with sqlite3.connect(tmp_path / "app.db") as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users WHERE id = 1").fetchone()
    assert stored.startswith("$argon2id$")


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_add_up_across_workers_and_logs_hold_no_secrets(tmp_path: Path) -> None:
    prometheus_dir = tmp_path / "prometheus"
    prometheus_dir.mkdir()
    env = cli_env(
        tmp_path,
        LOG_FORMAT="json",
        METRICS_ENABLED="true",
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(prometheus_dir),
    )
    password = "flask-user-password"
    import_users(tmp_path, env, [(5, "erin", generate_password_hash(password, "scrypt:1024:8:1"))])
    access_log = tmp_path / "hypercorn-access.log"
    protected = (
        "quart_app_http_requests_total",
        (
            ("method", "GET"),
            ("route", "/protected"),
            ("status", "200"),
        ),
    )
    with hypercorn(tmp_path, env, "--workers", "2", "--access-logfile", str(access_log)) as server:
        assert server.process is not None
        tokens = httpx.post(
            f"{server.url}/login",
            json={"username": "erin", "password": password},
            timeout=60,
        ).json()
        access = tokens["access_token"]
        sent, pids = 0, set[int]()
        while sent < 300 and (sent < 40 or len(pids) < 2):
            # A new connection each time, so both workers get some.
            response = httpx.get(
                f"{server.url}/protected?jwt={access}",
                headers={"Authorization": f"Bearer {access}", "X-Request-ID": f"req-{sent}"},
                timeout=60,
            )
            assert response.status_code == 200 and response.headers["X-Request-ID"] == f"req-{sent}"
            sent += 1
            if sent % 10 == 0:
                pids = {
                    line["pid"]
                    for line in json_lines(server.log())
                    if line["logger"] == "quart_app.access"
                }
        assert len(pids) == 2, "one worker served every request"
        for _ in range(6):  # whichever worker answers, it reports both
            found = scrape(server.url)
            assert found[protected] == sent
            assert found[("quart_app_logins_total", (("outcome", "ok"),))] == 1
            assert found[("quart_app_jwt_verifications_total", (("outcome", "ok"),))] == sent
        unauthorised = httpx.get(f"{server.url}/metrics", timeout=60)
        assert unauthorised.status_code == 401
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
        log = server.log()

    requests = [line for line in json_lines(log) if line["logger"] == "quart_app.access"]
    assert sum(line["route"] == "/protected" for line in requests) == sent
    assert {line["request_id"] for line in requests if line["route"] == "/protected"} == {
        f"req-{i}" for i in range(sent)
    }
    hypercorn_lines = access_log.read_text().splitlines()
    assert sum('"GET /protected 1.1" 200' in line for line in hypercorn_lines) == sent
    assert any(line.endswith(" req-0") for line in hypercorn_lines)
    everything = log + access_log.read_text()
    for secret in (access, tokens["refresh_token"], password, TOKEN, "jwt="):
        assert secret not in everything
    # Clean shutdown removed the workers' live gauges from the shared directory.
    assert not list(prometheus_dir.glob("gauge_livesum_*.db"))
    assert list(prometheus_dir.glob("counter_*.db"))
