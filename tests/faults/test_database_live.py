"""Database faults against live Hypercorn: every one is a 503 with Retry-After, then heals.

PostgreSQL is the run's own database on the shared server, reached through a
:class:`~faultproxy.FaultProxy` that hangs (as a SIGSTOPped or blackholed server would)
or refuses (a stopped server); the server itself is never touched. SQLite sits on a
small tmpfs of its own that is filled up, or remounted read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from backend_servers import PostgresRun, run, unavailable
from faultproxy import FaultProxy
from live import Server
from sqlalchemy.engine import make_url
from support import SECRET

pytestmark = pytest.mark.live

#: Short, so the tests are quick; the default is 5 s.
OPERATION_TIMEOUT = 1.5
#: How long a client waits before it calls an answer lost: far past the bound.
PATIENCE = 30.0
UNAVAILABLE = {"msg": "Service temporarily unavailable"}


def credentials(name: str) -> dict[str, str]:
    return {"username": name, "password": "correct-horse"}


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "DATABASE_OPERATION_TIMEOUT": str(OPERATION_TIMEOUT),
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",
        "LOG_FORMAT": "text",
        **extra,
    }


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.json() == UNAVAILABLE
    assert int(response.headers["Retry-After"]) >= 1


async def all_at_once(url: str, names: list[str]) -> list[httpx.Response]:
    """One registration per name, all in flight together."""
    async with httpx.AsyncClient(timeout=PATIENCE) as client:
        return await asyncio.gather(
            *(client.post(f"{url}/register", json=credentials(name)) for name in names)
        )


@pytest.fixture
def postgres(postgres_server: PostgresRun) -> PostgresRun:
    run(postgres_server.reset())
    return postgres_server


@pytest.fixture
def proxied(tmp_path: Path, postgres: PostgresRun) -> Iterator[tuple[Server, FaultProxy]]:
    """Hypercorn (2 workers) on the run's PostgreSQL database, through a fault proxy."""
    url = make_url(postgres.url)
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        env = env_for(through, DATABASE_CREATE_TABLES="false")
        with Server(tmp_path / "instance", workers=2, env=env) as server:
            yield server, proxy


def test_a_hung_postgresql_is_a_503_within_the_bound_and_heals(
    proxied: tuple[Server, FaultProxy],
) -> None:
    server, proxy = proxied
    with httpx.Client(base_url=server.url, timeout=PATIENCE) as client:
        assert client.post("/register", json=credentials("alice")).status_code == 201
        pair = client.post("/login", json=credentials("alice")).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        assert client.get("/protected", headers=bearer).status_code == 200

        proxy.hang()
        # Twenty registrations at once: more than the pool holds, all bounded.
        names = [f"hung{n}" for n in range(20)]
        for response in asyncio.run(all_at_once(server.url, names)):
            assert_unavailable(response)
        assert_unavailable(client.post("/login", json=credentials("alice")))
        assert_unavailable(client.post("/token/refresh", headers=refresh(pair)))
        # A logout cannot be recorded: 503, and the token stays valid until it can.
        assert_unavailable(client.post("/logout", headers=bearer))
        assert client.get("/protected", headers=bearer).status_code == 200  # no database
        assert client.get("/healthz").status_code == 503
        assert client.get("/readyz").status_code == 503

        proxy.restore()
        assert eventually(lambda: client.get("/healthz").status_code == 200)
        assert client.post("/register", json=credentials("bob")).status_code == 201
        assert client.post("/logout", headers=bearer).status_code == 200
        assert client.get("/protected", headers=bearer).status_code == 401
        # None of the abandoned registrations half-happened: each name is still free
        # or was fully created (the write may have been committed before the hang).
        for name in names[:3]:
            assert client.post("/register", json=credentials(name)).status_code in {201, 409}
    assert server.process is not None and server.process.poll() is None


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


def refresh(pair: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['refresh_token']}"}


def eventually(check: object, attempts: int = 200) -> bool:
    """Poll ``check`` (a callable) until it is true; the server heals on its own."""
    import time

    for _ in range(attempts):
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


# --- SQLite on a filesystem of its own ------------------------------------------------


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the database alone (the instance directory stays outside)."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        mount("-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as error:
        unavailable("a tmpfs mount (needs root or CAP_SYS_ADMIN)", error)
    try:
        yield where
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            mount("-o", "remount,rw", str(where))
        subprocess.run(["umount", "-l", str(where)], check=False)


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
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        filler = fill(small_disk)

        # Long names and passwords, so that pages fill quickly; all in flight at once.
        names = [f"full{n:03d}-" + "x" * 50 for n in range(60)]
        responses = asyncio.run(all_at_once(server.url, names))
        statuses = [response.status_code for response in responses]
        assert set(statuses) <= {201, 503}, statuses
        assert 503 in statuses, "the disk never filled up"
        for response in responses:
            if response.status_code == 503:
                assert_unavailable(response)
        while client.post("/logout", headers=bearer).status_code != 503:
            # A page freed by a rolled-back write may take one more logout first.
            pair = client.post("/login", json=credentials("alice")).json()
            bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        assert client.get("/protected", headers=bearer).status_code == 200

        filler.unlink()
        assert client.post("/logout", headers=bearer).status_code == 200
        assert client.get("/protected", headers=bearer).status_code == 401
        assert client.post("/register", json=credentials("after")).status_code == 201
    log = server.log_path.read_text()
    assert "disk full" in log and "Traceback" not in log
