"""A password change wins every race with logins of the old password in flight, on hosts
whose clocks disagree.

Two hosts (two Hypercorn masters with two workers each) share one store; in the skewed
case host B's clock runs ``SKEW`` seconds ahead (libfaketime), so the tokens it mints
carry ``iat`` and ``auth_time`` in the future. An attacker who knows the old password logs
in on host B without pause while the owner changes the password on host A. Once the
change has answered and every login in flight has finished, no pair any of those logins
got may still refresh, on either host, and their access tokens die within the revocation
bound. Nothing here compares clocks: the credential epoch read before each password check
is compared, under the user row's lock, when the session is created.

One deployment per store serves the module: host A, host B on the real clock and host B
with its clock ahead, started together; each test takes A and the B of its clock, and
races for a user of its own (credential epochs, sessions and revocations are per user).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.backend_servers import PostgresRun, RedisRun, run
from tests.helpers.debian import ensure_tool
from tests.helpers.live import Server, running_together, server_env
from tests.helpers.support import SECRET, bearer, unique_name

pytestmark = pytest.mark.live

ROUNDS = 5
ATTACKERS = 6
SKEW = 20
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def _libfaketime() -> str | None:
    return str(LIBFAKETIME) if LIBFAKETIME.exists() else None


@pytest.fixture(scope="module", params=["sqlite", "postgres", "postgres+redis"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[0, SKEW], ids=["same-clock", f"skew-{SKEW}s"])
def skew(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, store: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Server, dict[int, Server]]]:
    """Host A and a host B for each clock, on one store (emptied once, here), started
    together and shared by the module's tests."""
    root = tmp_path_factory.mktemp("race")
    config: dict[str, Any] = {"DATABASE_URL": f"sqlite+aiosqlite:///{root / 'app.db'}"}
    if store != "sqlite":
        postgres: PostgresRun = request.getfixturevalue("postgres_server")
        run(postgres.reset())
        config = {"DATABASE_URL": postgres.url}
        if store == "postgres+redis":
            redis: RedisRun = request.getfixturevalue("redis_server")
            config.update(REDIS_URL=redis.url, REDIS_PREFIX=redis.next_prefix())
    env = {
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",
        "LOGIN_LOCKOUT_THRESHOLD": "100000",
        # Logins in flight on two hosts of a busy 2-core machine queue for seconds on one
        # SQLite file: who wins the race, not the time bound of each operation, is tested.
        "DATABASE_OPERATION_TIMEOUT": "60",
        "DATABASE_POOL_TIMEOUT": "60",
        "SQLITE_BUSY_TIMEOUT": "60",
        "LOGIN_SOURCE_BLOCK_THRESHOLD": "0",
        **server_env(config),
    }
    clocks: dict[int, dict[str, str]] = {0: {}}
    library = _libfaketime()
    if library is not None:  # without it, the skewed test says so (``hosts``)
        # The wall clock (every token's iat and auth_time) runs ahead; the monotonic one
        # moves by the same constant. Leaving it unfaked (FAKETIME_DONT_FAKE_MONOTONIC)
        # breaks libfaketime's timed waits, which CPython's GIL hand-over uses: the
        # host would spin and run about ten times slower than a real one.
        clocks[SKEW] = {"LD_PRELOAD": library, "FAKETIME": f"+{SKEW}s"}
    servers = [Server(root / "a", workers=2, env=env)] + [
        Server(root / f"b{skew}", workers=2, env={**env, **faked}) for skew, faked in clocks.items()
    ]
    with running_together(*servers):
        yield servers[0], dict(zip(clocks, servers[1:], strict=True))


@dataclass
class Hosts:
    """Clients of host A and of this test's host B, and this test's own user."""

    a: httpx.AsyncClient
    b: httpx.AsyncClient
    user: str


@pytest.fixture
async def hosts(deployment: tuple[Server, dict[int, Server]], skew: int) -> AsyncIterator[Hosts]:
    if skew:
        ensure_tool(_libfaketime, "faketime")
    host_a, host_b = deployment[0], deployment[1][skew]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(base_url=host_a.url, timeout=60, limits=limits) as a,
        httpx.AsyncClient(base_url=host_b.url, timeout=60, limits=limits) as b,
    ):
        user = unique_name()
        created = await a.post("/register", json={"username": user, "password": "pw-0-horse"})
        assert created.status_code == 201, created.text
        yield Hosts(a, b, user)


async def _attack(
    b: httpx.AsyncClient,
    user: str,
    password: str,
    stop: asyncio.Event,
    won: list[dict[str, Any]],
    sent: list[tuple[float, float, int]],
) -> None:
    """Log in with ``password`` on host B until told to stop; keep every pair, and when
    each login was sent and answered, with its status."""
    while not stop.is_set():
        start = time.monotonic()
        response = await b.post("/login", json={"username": user, "password": password})
        sent.append((start, time.monotonic(), response.status_code))
        if response.status_code == 200:
            won.append(response.json())
        else:
            assert response.status_code == 401, response.text
            return  # the change has committed: the old password no longer works


async def test_no_login_in_flight_outlives_a_password_change(hosts: Hosts, skew: int) -> None:
    a, b, user = hosts.a, hosts.b, hosts.user
    survivors = pairs = in_flight = 0
    for n in range(ROUNDS):
        old, new = f"pw-{n}-horse", f"pw-{n + 1}-horse"
        owner = (await a.post("/login", json={"username": user, "password": old})).json()
        stop, won, sent = asyncio.Event(), list[dict[str, Any]](), list[tuple[float, float, int]]()
        attackers = [
            asyncio.create_task(_attack(b, user, old, stop, won, sent)) for _ in range(ATTACKERS)
        ]
        for _ in range(400):  # until logins stream on host B (hashing threads busy)
            if len(won) >= ATTACKERS:
                break
            await asyncio.sleep(0.05)
        started_at = time.monotonic()
        changed = await a.put(
            "/me/password",
            json={"old_password": old, "new_password": new},
            headers=bearer(owner["access_token"]),
        )
        assert changed.status_code == 200, changed.text
        changed_at = time.monotonic()
        stop.set()
        await asyncio.gather(*attackers)  # every login in flight has answered
        pairs += len(won)
        # Logins in flight while the change ran: the race itself.
        in_flight += sum(1 for begun, done, _ in sent if begun < changed_at and done > started_at)
        for pair in won:
            for host in (a, b):
                response = await host.post("/token/refresh", headers=bearer(pair["refresh_token"]))
                assert response.status_code == 401, response.text
                survivors += response.status_code == 200
        for pair in won[-3:]:  # the latest pairs: their access tokens die everywhere
            await _eventually_refused(a, pair["access_token"])
            await _eventually_refused(b, pair["access_token"])
        # A login after the change, on the fast host, lives on the other host.
        fresh = await b.post("/login", json={"username": user, "password": new})
        assert fresh.status_code == 200, fresh.text
        again = await a.post("/token/refresh", headers=bearer(fresh.json()["refresh_token"]))
        assert again.status_code == 200, again.text
    print(
        f"\nskew {skew}s: {pairs} attacker pairs in {ROUNDS} rounds, {in_flight} logins in"
        f" flight during the change; {survivors} sessions survived it"
    )
    assert in_flight > 0  # the attack did race the change
    assert survivors == 0


async def _eventually_refused(http: httpx.AsyncClient, token: str) -> None:
    for _ in range(100):
        response = await http.get("/protected", headers=bearer(token))
        if response.status_code == 401:
            return
        await asyncio.sleep(0.05)
    pytest.fail("an access token of a session the password change ended still works after 5 s")
