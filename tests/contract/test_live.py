"""The real thing: Hypercorn with two workers sharing one SQLite file, over HTTP."""

from __future__ import annotations

import contextlib
import re
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import Server
from tests.helpers.rawhttp import Reader

pytestmark = pytest.mark.live

CREDENTIALS = {"username": "alice", "password": "correct-horse"}


def worker_pids(access_log: Path) -> list[str]:
    if not access_log.exists():
        return []
    # Lines look like "[date] [pid] [INFO] <pid> status": the "<pid>" atom is ours.
    return re.findall(r"<(\d+)> \d{3}", access_log.read_text())


def on_every_worker(server: Server, request: httpx.Request, workers: int = 2) -> list[int]:
    """Send ``request`` on fresh connections until every worker has answered it.

    Hypercorn's workers share one listening socket, so which one accepts a connection is
    up to the kernel; new connections spread across them over a few tries.
    """
    assert server.access_log is not None
    seen: dict[str, int] = {}
    for _ in range(400):
        before = len(worker_pids(server.access_log))
        with httpx.Client(timeout=5) as client:
            status = client.send(request).status_code
        deadline = time.monotonic() + 2
        while len(worker_pids(server.access_log)) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        pid = worker_pids(server.access_log)[-1]
        seen.setdefault(pid, status)
        if len(seen) == workers:
            return list(seen.values())
        time.sleep(0.01)
    raise AssertionError(f"only workers {sorted(seen)} answered")


def test_two_workers_share_users_tokens_and_revocations(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    log = tmp_path / "access.log"
    with Server(instance, workers=2, access_log=log) as server:
        base = server.url
        assert httpx.post(f"{base}/register", json=CREDENTIALS, timeout=60).status_code == 201
        pair = httpx.post(f"{base}/login", json=CREDENTIALS, timeout=60).json()
        access = {"Authorization": f"Bearer {pair['access_token']}"}
        protected = httpx.Request("GET", f"{base}/protected", headers=access)
        assert on_every_worker(server, protected) == [200, 200]

        rotated = httpx.post(
            f"{base}/token/refresh",
            headers={"Authorization": f"Bearer {pair['refresh_token']}"},
            timeout=60,
        )
        assert rotated.status_code == 200
        new_access = {"Authorization": f"Bearer {rotated.json()['access_token']}"}

        assert httpx.post(f"{base}/logout", headers=new_access, timeout=60).status_code == 200
        time.sleep(1.5)  # the documented bound for every worker to learn a revocation
        revoked = httpx.Request("GET", f"{base}/protected", headers=new_access)
        assert on_every_worker(server, revoked) == [401, 401]
        # The logout revoked the whole login: the first access token too.
        assert on_every_worker(server, protected) == [401, 401]

        # A login that survives the restart below.
        kept = httpx.post(f"{base}/login", json=CREDENTIALS, timeout=60).json()

    # No JWT_SECRET_KEY: a secret was generated once, private to its owner.
    secret = instance / "jwt-secret.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 64

    with Server(instance, workers=2, access_log=log) as server:
        base = server.url
        headers = {"Authorization": f"Bearer {kept['access_token']}"}
        ok = httpx.get(f"{base}/protected", headers=headers, timeout=60)
        assert ok.status_code == 200 and ok.json() == {"logged_in_as": "alice"}
        dead = httpx.get(f"{base}/protected", headers=new_access, timeout=60)
        assert dead.status_code == 401 and dead.json()["msg"] == "Token has been revoked"
        assert httpx.post(f"{base}/login", json=CREDENTIALS, timeout=60).status_code == 200


def installed(server: Server) -> int:
    """How many workers said they accept through quart_app.serving.acceptor."""
    return server.log_path.read_text().count("drains the accept queue on uvloop")


def test_a_burst_of_connections_is_accepted_and_served(tmp_path: Path) -> None:
    """300 connections opened at once on 2 uvloop workers: every one gets its answer, and
    the workers accept through quart_app.serving.acceptor (not libuv's one-per-iteration accept)."""
    env = {"LOG_LEVEL": "DEBUG", "ACCESS_LOG": "false"}
    with Server(tmp_path / "instance", workers=2, env=env) as server:
        assert httpx.post(f"{server.url}/register", json=CREDENTIALS, timeout=60).status_code == 201
        token = httpx.post(f"{server.url}/login", json=CREDENTIALS, timeout=60).json()[
            "access_token"
        ]
        request = (
            f"GET /protected HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        with contextlib.ExitStack() as stack:
            clients = [
                stack.enter_context(socket.create_connection(("127.0.0.1", server.port), 10))
                for _ in range(300)
            ]
            for client in clients:
                client.sendall(request)
            answers = [Reader(client).response() for client in clients]
        assert all(answer is not None and answer.status == 200 for answer in answers)
        assert {answer.body for answer in answers if answer} == {b'{"logged_in_as":"alice"}\n'}
        # Once per worker; the server answered once one worker was up, and the other
        # may still be starting on a busy machine: wait for its line, then count.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and installed(server) < 2:
            time.sleep(0.1)
        assert installed(server) == 2
