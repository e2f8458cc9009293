"""Workers that start while their database is down: they serve, wait, and catch up.

None of them exits (nor brings its siblings down); /healthz and /readyz say 503 until the
database answers; token checks answer 503 until the worker has loaded the revocations,
so a token revoked before the outage is never accepted by a worker that started during
it. When the database is back, everything works without a restart.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.fault_support import (
    PATIENCE,
    assert_unavailable,
    credentials,
    env_for,
    eventually,
    signed_token,
)
from tests.helpers.faultproxy import FaultProxy
from tests.helpers.live import Server

pytestmark = pytest.mark.live

WORKERS = 2


def workers_of(server: Server) -> set[int]:
    """The pids of the master's worker processes (not multiprocessing's helpers)."""
    assert server.process is not None
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    workers = set()
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline or b"fork" in cmdline:
            workers.add(child)
    return workers


def bearer(token: str) -> dict[str, str]:
    # A new connection each time, so the kernel hands requests to either worker.
    return {"Authorization": f"Bearer {token}", "Connection": "close"}


def test_workers_start_while_postgresql_is_down_and_catch_up(
    tmp_path: Path, pg_proxy: tuple[FaultProxy, str]
) -> None:
    proxy, url = pg_proxy
    env = env_for(url, DATABASE_CREATE_TABLES="false")
    # Before the outage: alice logs in twice and logs one session out.
    with Server(tmp_path / "first", env=env) as first:
        assert httpx.post(f"{first.url}/register", json=credentials("alice"), timeout=60).is_success
        kept, revoked = (
            httpx.post(f"{first.url}/login", json=credentials("alice"), timeout=60).json()
            for _ in range(2)
        )
        logout = httpx.post(
            f"{first.url}/logout", headers=bearer(revoked["access_token"]), timeout=60
        )
        assert logout.status_code == 200

    proxy.refuse()
    with (
        Server(tmp_path / "second", workers=WORKERS, env=env, healthz=503) as server,
        httpx.Client(base_url=server.url, timeout=PATIENCE) as client,
    ):
        started = workers_of(server)
        assert len(started) == WORKERS
        for _ in range(10):
            assert client.get("/healthz", headers={"Connection": "close"}).status_code == 503
            ready = client.get("/readyz", headers={"Connection": "close"})
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] == "unavailable"
            for pair in (kept, revoked):  # unknown revocations: neither is accepted
                assert_unavailable(client.get("/protected", headers=bearer(pair["access_token"])))
            assert_unavailable(client.post("/login", json=credentials("alice")))

        proxy.restore()
        # Ready on 20 fresh connections in a row: with two workers, all of them landing on
        # one (the kernel spreads connections by a hash) is a chance of 2 in a million.
        assert eventually(
            lambda: all(
                client.get("/readyz", headers={"Connection": "close"}).status_code == 200
                for _ in range(20)
            )
        )
        for _ in range(6):
            assert client.get("/protected", headers=bearer(kept["access_token"])).status_code == 200
            gone = client.get("/protected", headers=bearer(revoked["access_token"]))
            assert gone.status_code == 401 and gone.json() == {"msg": "Token has been revoked"}
        assert client.post("/register", json=credentials("bob")).status_code == 201
        assert client.post("/login", json=credentials("alice")).status_code == 200
        assert workers_of(server) == started  # the same workers: nothing restarted
    assert "database reachable after" in server.log_path.read_text()


def test_a_token_of_a_known_key_waits_for_the_revocations(
    tmp_path: Path, pg_proxy: tuple[FaultProxy, str]
) -> None:
    """A token this worker never saw, signed with the configured key, during the outage."""
    proxy, url = pg_proxy
    proxy.refuse()
    env = env_for(url, DATABASE_CREATE_TABLES="false")
    token = signed_token("7", "carol")
    with Server(tmp_path / "instance", workers=WORKERS, env=env, healthz=503) as server:
        assert_unavailable(httpx.get(f"{server.url}/protected", headers=bearer(token), timeout=60))
        proxy.restore()
        assert eventually(
            lambda: (
                httpx.get(f"{server.url}/protected", headers=bearer(token), timeout=60).status_code
                == 200
            )
        )
