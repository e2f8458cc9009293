"""``/ws`` sockets end on every host when their token is revoked, on each storage profile.

Two hosts (Hypercorn processes on their own ports, the first with two workers) share the
database, and on the PostgreSQL profile Redis. There the SQL poll is slowed to 30 s, so a
socket that closes within the contract's 100 ms can only have heard it from Redis.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers.live import ROOT, Server, running_together
from tests.helpers.support import SECRET, bearer, unique_name
from tests.helpers.ws_client import WAIT, ended_within, open_socket, session

pytestmark = pytest.mark.live

#: The contract: REVOCATION_SYNC_INTERVAL + 0.5 s on SQL, 100 ms with Redis.
BOUND = {"sqlite": 1.0 + 0.5, "postgres": 0.1}
INTERVAL = {"sqlite": "1.0", "postgres": "30"}
#: Sockets per test: spread by the kernel over the first host's two workers.
SOCKETS = 8


@dataclass
class Hosts:
    """The module's two hosts on one backend, and the settings they run with."""

    a: Server
    b: Server
    env: dict[str, str]
    backend: str


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory, module_backend_config: dict[str, Any]
) -> Iterator[Hosts]:
    """Two hosts per backend for the module: each test's sockets are its own users'."""
    backend = "postgres" if "DATABASE_URL" in module_backend_config else "sqlite"
    env = {
        **{key: str(value) for key, value in module_backend_config.items()},
        "JWT_SECRET_KEY": SECRET,
        "REVOCATION_SYNC_INTERVAL": INTERVAL[backend],
        "RATELIMIT_AUTH_LIMIT": "10000",
    }
    if backend == "postgres":
        env["DATABASE_CREATE_TABLES"] = "false"
    # One instance directory: on SQLite it holds the shared database file.
    instance = tmp_path_factory.mktemp("hosts") / "instance"
    with running_together(Server(instance, workers=2, env=env), Server(instance, env=env)) as (
        a,
        b,
    ):
        yield Hosts(a, b, {**env, "INSTANCE_PATH": str(instance)}, backend)


@pytest.mark.serial  # a closing deadline
async def test_logout_on_another_host_closes_every_socket_in_time(hosts: Hosts) -> None:
    a, b, backend = hosts.a, hosts.b, hosts.backend
    pair = await session(a.url, unique_name("alice"))
    sockets = [(await open_socket(a.url, pair["access_token"]))[0] for _ in range(SOCKETS)]
    async with httpx.AsyncClient(base_url=b.url, timeout=WAIT) as client:
        response = await client.post("/logout", headers=bearer(pair["access_token"]))
        assert response.status_code == 200
    done = time.perf_counter()
    delays = await asyncio.gather(*(ended_within(ws, done, "revoked") for ws in sockets))
    print(f"{backend}: logout on host B -> {SOCKETS} sockets on host A closed: {max(delays):.3f} s")
    assert max(delays) <= BOUND[backend], delays


@pytest.mark.serial  # a closing deadline
async def test_revoke_user_closes_every_socket_of_the_user_in_time(hosts: Hosts) -> None:
    a, b, env, backend = hosts.a, hosts.b, hosts.env, hosts.backend
    name = unique_name("alice")
    alice = [await session(a.url, name), await session(b.url, name)]  # one login per host
    sockets = [
        (await open_socket(host.url, pair["access_token"]))[0]
        for host, pair in ((a, alice[0]), (b, alice[1]), (a, alice[1]), (b, alice[0]))
    ]
    bob = await session(a.url, unique_name("bob"))
    bystander, _ = await open_socket(a.url, bob["access_token"])
    command = [sys.executable, "-m", "quart_app.cli", "revoke-user", name]
    result = await asyncio.to_thread(
        subprocess.run,
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    done = time.perf_counter()
    delays = await asyncio.gather(*(ended_within(ws, done, "revoked") for ws in sockets))
    print(f"{backend}: revoke-user -> sockets closed on both hosts: max {max(delays):.3f} s")
    assert max(delays) <= BOUND[backend], delays
    await bystander.send('{"type": "echo", "data": 1}')
    assert await asyncio.wait_for(bystander.recv(), WAIT) == '{"type":"echo","data":1}'
    await bystander.close()
