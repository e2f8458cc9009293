"""Database faults against live Hypercorn: every one is a 503 with Retry-After, then heals.

PostgreSQL is the run's own database on the shared server, reached through a
:class:`~faultproxy.FaultProxy` that hangs (as a SIGSTOPped or blackholed server would)
or refuses (a stopped server); the server itself is never touched. SQLite sits on a
small tmpfs of its own that is filled up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.backend_servers import unavailable
from tests.helpers.fault_support import (
    PATIENCE,
    all_at_once,
    assert_unavailable,
    credentials,
    env_for,
    eventually,
)
from tests.helpers.faultproxy import FaultProxy
from tests.helpers.live import Server

pytestmark = pytest.mark.live


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def proxied(
    tmp_path: Path, pg_proxy: tuple[FaultProxy, str]
) -> Iterator[tuple[Server, FaultProxy]]:
    """Hypercorn (2 workers) on the run's PostgreSQL database, through the fault proxy."""
    proxy, url = pg_proxy
    env = env_for(url, DATABASE_CREATE_TABLES="false")
    with Server(tmp_path / "instance", workers=2, env=env) as server:
        yield server, proxy


@pytest.mark.serial  # fast answers are told from timeouts by their time
def test_a_hung_postgresql_is_a_503_within_the_bound_and_heals(
    proxied: tuple[Server, FaultProxy],
) -> None:
    server, proxy = proxied
    with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
        assert client.post("/register", json=credentials("alice")).status_code == 201
        pair = client.post("/login", json=credentials("alice")).json()
        access = bearer(pair["access_token"])
        assert client.get("/protected", headers=access).status_code == 200

        proxy.hang()
        # Twenty registrations at once: more than the pool holds, each one bounded.
        for response in asyncio.run(all_at_once(server.url, [f"hung{n}" for n in range(20)])):
            assert_unavailable(response)
        assert_unavailable(client.post("/login", json=credentials("alice")))
        assert_unavailable(client.post("/token/refresh", headers=bearer(pair["refresh_token"])))
        # A logout cannot be recorded: 503, and the token stays valid until it can.
        assert_unavailable(client.post("/logout", headers=access))
        assert client.get("/protected", headers=access).status_code == 200  # no database
        assert client.get("/healthz").status_code == 503
        assert client.get("/readyz").status_code == 503

        proxy.restore()
        assert eventually(lambda: client.get("/healthz").status_code == 200)
        assert client.post("/register", json=credentials("bob")).status_code == 201
        assert client.post("/logout", headers=access).status_code == 200
        assert client.get("/protected", headers=access).status_code == 401
    assert server.process is not None and server.process.poll() is None


def test_a_hung_postgresql_costs_one_timeout_per_worker_then_fast_503s(
    tmp_path: Path, pg_proxy: tuple[FaultProxy, str]
) -> None:
    """The database's circuit breaker: after one operation times out in a worker, that
    worker answers 503 without calling the database until a probe answers (the probes
    are an hour apart here, so none answers during the test).
    """
    proxy, url = pg_proxy
    timeout = 3.0
    env = env_for(
        url,
        DATABASE_CREATE_TABLES="false",
        DATABASE_OPERATION_TIMEOUT=str(timeout),
        DATABASE_BREAKER_COOLDOWN="3600",
    )
    with Server(tmp_path / "instance", workers=2, env=env) as server:
        with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
            assert client.post("/register", json=credentials("alice")).status_code == 201
        proxy.hang()
        waited = []
        for _ in range(12):
            # A new connection each time: the kernel picks either worker.
            with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
                started = time.monotonic()
                assert_unavailable(client.post("/login", json=credentials("alice")))
                waited.append(time.monotonic() - started)
        # At most one timeout per worker, never one per request (a worker's revocation
        # sync, which polls the database every second, may have paid it already).
        slow = [seconds for seconds in waited if seconds >= timeout * 0.9]
        assert len(slow) <= 2, waited
        sent = len(proxy.transcript)
        with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
            for _ in range(5):
                assert_unavailable(client.post("/login", json=credentials("alice")))
        assert len(proxy.transcript) == sent  # nothing more was sent to the database
        proxy.restore()


def test_a_stopped_postgresql_is_a_503_and_heals(proxied: tuple[Server, FaultProxy]) -> None:
    server, proxy = proxied
    with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
        assert client.post("/register", json=credentials("alice")).status_code == 201
        proxy.refuse()  # open connections reset, new ones refused
        for response in asyncio.run(all_at_once(server.url, [f"down{n}" for n in range(10)])):
            assert_unavailable(response)
        assert_unavailable(client.post("/login", json=credentials("alice")))
        assert client.get("/healthz").status_code == 503
        proxy.restore()
        assert eventually(lambda: client.get("/healthz").status_code == 200)
        assert client.post("/login", json=credentials("alice")).status_code == 200
        assert client.post("/register", json=credentials("down0")).status_code == 201


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; deleting it frees the space."""
    filler = disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def test_a_full_disk_is_a_503_and_heals(tmp_path: Path, small_disk: Path) -> None:
    env = env_for(f"sqlite+aiosqlite:///{small_disk / 'app.db'}")
    with (
        Server(tmp_path / "instance", workers=2, env=env) as server,
        httpx.Client(base_url=server.url, timeout=PATIENCE) as client,
    ):
        assert client.post("/register", json=credentials("alice")).status_code == 201
        pair = client.post("/login", json=credentials("alice")).json()
        filler = fill(small_disk)

        # Long names, so that pages fill quickly; all in flight at once.
        names = [f"full{n:03d}-" + "x" * 50 for n in range(60)]
        responses = asyncio.run(all_at_once(server.url, names))
        statuses = [response.status_code for response in responses]
        assert set(statuses) <= {201, 503}, statuses
        assert 503 in statuses, "the disk never filled up"
        for response in responses:
            if response.status_code == 503:
                assert_unavailable(response)
        for _ in range(20):
            logout = client.post("/logout", headers=bearer(pair["access_token"]))
            if logout.status_code == 503:
                break
            # A page freed by a rolled-back write took this one: log in again, retry.
            assert logout.status_code == 200
            pair = client.post("/login", json=credentials("alice")).json()
        assert_unavailable(logout)
        assert client.get("/protected", headers=bearer(pair["access_token"])).status_code == 200

        filler.unlink()
        assert client.post("/logout", headers=bearer(pair["access_token"])).status_code == 200
        assert client.get("/protected", headers=bearer(pair["access_token"])).status_code == 401
        assert client.post("/register", json=credentials("after")).status_code == 201
    log = server.log_path.read_text()
    assert "disk full" in log and "Traceback" not in log


def chattr(flag: str, path: Path) -> None:
    if shutil.which("chattr") is None:
        unavailable("chattr (e2fsprogs)", FileNotFoundError("chattr"))
    subprocess.run(["chattr", flag, str(path)], check=True)


def test_a_read_only_sqlite_is_seen_by_the_probes_and_heals(
    tmp_path: Path, small_disk: Path
) -> None:
    """Workers start while the database file cannot be written (immutable): SQLite then
    opens it read-only, silently, and SELECT 1 still answers. The probes must say 503,
    and once the file is writable again writes must work without a restart.
    """
    database = small_disk / "app.db"
    env = env_for(f"sqlite+aiosqlite:///{database}")
    with (
        Server(tmp_path / "instance", workers=2, env=env) as server,
        httpx.Client(base_url=server.url, timeout=PATIENCE) as client,
    ):
        assert client.post("/register", json=credentials("alice")).status_code == 201
    chattr("+i", database)
    try:
        with Server(tmp_path / "instance", workers=2, env=env, healthz=None) as server:
            for n in range(6):  # new connections: both workers
                with httpx.Client(base_url=server.url, timeout=PATIENCE) as fresh:
                    assert fresh.get("/healthz").status_code == 503
                    assert fresh.get("/readyz").status_code == 503
                    assert_unavailable(fresh.post("/register", json=credentials(f"ro{n}")))
            chattr("-i", database)
            with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
                assert eventually(lambda: client.get("/healthz").status_code == 200)
            for n in range(6):
                with httpx.Client(base_url=server.url, timeout=PATIENCE) as fresh:
                    registered = fresh.post("/register", json=credentials(f"rw{n}"))
                    assert registered.status_code == 201, registered.text
                    assert fresh.get("/healthz").status_code == 200
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=False)


SERVE = [sys.executable, "-m", "quart_app.serving"]


def wal_index_in_use(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An SQLite database on a disk filesystem (ext4 here: its pages are written back,
    unlike tmpfs's) and the settings of a server on it."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder / "app.db", env_for(f"sqlite+aiosqlite:///{folder / 'app.db'}")


def register_on_new_connections(server: Server, prefix: str, count: int = 6) -> list[int]:
    statuses = []
    for n in range(count):  # each on a new connection: both workers
        with httpx.Client(base_url=server.url, timeout=PATIENCE) as fresh:
            response = fresh.post("/register", json=credentials(f"{prefix}{n}"))
            if response.status_code == 503:
                assert_unavailable(response)
            statuses.append(response.status_code)
    return statuses


def test_an_immutable_wal_index_is_a_503_and_heals_with_every_worker_alive(
    tmp_path: Path,
) -> None:
    """SQLite maps ``app.db-shm`` (its WAL index) into every worker. Made immutable while
    serving, the next write to a page the kernel had written back killed each worker
    with SIGBUS. Now no worker dies: writes and probes are 503 until it is writable."""
    database, env = wal_index_in_use(tmp_path)
    shm = Path(f"{database}-shm")
    with Server(tmp_path / "instance", workers=2, launcher=SERVE, env=env) as server:
        assert register_on_new_connections(server, "before") == [201] * 6
        assert shm.stat().st_size >= 32768
        os.sync()  # the mapped pages are clean: the next write to each asks the filesystem
        chattr("+i", shm)
        try:
            assert register_on_new_connections(server, "frozen") == [503] * 6
            for _ in range(6):
                with httpx.Client(base_url=server.url, timeout=PATIENCE) as fresh:
                    assert fresh.get("/readyz").status_code == 503
        finally:
            chattr("-i", shm)
        with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
            assert eventually(lambda: client.get("/readyz").status_code == 200)
        assert register_on_new_connections(server, "after") == [201] * 6
    log = server.log_path.read_text(errors="replace")
    assert " died " not in log and "SIGBUS" not in log, log[-3000:]


def test_a_truncated_wal_index_is_restored_with_every_worker_alive(tmp_path: Path) -> None:
    """Truncated while mapped, the WAL index faulted (SIGBUS) on the next access in every
    worker. Now the worker gives it its size back and SQLite rebuilds it from the WAL:
    no write is refused and nothing committed is lost."""
    database, env = wal_index_in_use(tmp_path)
    shm = Path(f"{database}-shm")
    with Server(tmp_path / "instance", workers=2, launcher=SERVE, env=env) as server:
        assert register_on_new_connections(server, "before") == [201] * 6
        os.truncate(shm, 0)
        assert register_on_new_connections(server, "after") == [201] * 6
        with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
            for n in range(6):  # what was committed before is still there
                login = client.post("/login", json=credentials(f"before{n}"))
                assert login.status_code == 200, login.text
    log = server.log_path.read_text(errors="replace")
    assert " died " not in log and "SIGBUS" not in log, log[-3000:]
    assert "SQLite WAL index truncated" in log
