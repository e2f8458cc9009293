"""``python -m quart_app.serve``: Hypercorn's options, one listening socket per worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from live import Server

pytestmark = pytest.mark.live

SERVE = [sys.executable, "-m", "quart_app.serve"]


def listening_sockets(port: int) -> list[str]:
    """The LISTEN sockets on ``port``, one line each (from ss)."""
    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_each_worker_binds_its_own_socket_and_stops_cleanly(tmp_path: Path) -> None:
    server = Server(tmp_path / "instance", workers=2, launcher=SERVE)
    server.start()
    try:
        # Plain hypercorn shows one socket shared by its workers; here there is one each.
        # The first worker may answer /healthz before the second has bound: wait for it.
        deadline = time.monotonic() + 20
        while len(sockets := listening_sockets(server.port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(sockets) == 2, sockets
        credentials = {"username": "alice", "password": "correct-horse"}
        assert httpx.post(f"{server.url}/register", json=credentials).status_code == 201
        token = httpx.post(f"{server.url}/login", json=credentials).json()["access_token"]
        for _ in range(20):
            response = httpx.get(
                f"{server.url}/protected", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.json() == {"logged_in_as": "alice"}
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
    finally:
        server.stop()


def test_plain_hypercorn_shares_one_socket(tmp_path: Path) -> None:
    """The contrast that makes the launcher worth having."""
    with Server(tmp_path / "instance", workers=2) as server:
        assert len(listening_sockets(server.port)) == 1
