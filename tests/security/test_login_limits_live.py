"""The brute-force limits replayed as an attacker would: many guesses in flight at once
against live Hypercorn with two workers, on each storage profile.

Each admitted wrong guess is answered 401 after a password check, each refused one 429
without a check, so counting the 401s counts the password checks. Distinct client
addresses are distinct loopback addresses (127.0.x.y) bound by the client. The first
lock lasts a minute here (1 s by default): on a busy machine a burst can outlast a
one-second lock, and the back-off then rightly admits one more check per lapse.

One server per storage profile serves the module: every test guesses at accounts of its
own (uuid-suffixed names) from addresses of its own (no earlier test of this process
used them), so no lock, count or block of another test is in its way.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from tests.helpers.live import Server, server_env
from tests.helpers.support import SECRET, unique_name

pytestmark = pytest.mark.live

THRESHOLD = 10
SOURCE_THRESHOLD = 100
GUESSES = 150
LOCKED = {"msg": "Too many failed login attempts; try later"}
BLOCKED = {"msg": "Too many failed logins from this address; try later"}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_backend_config: dict[str, Any]
) -> Iterator[Server]:
    """One server per backend for the module (see the module docstring)."""
    env = {
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",  # these tests are about the limits behind it
        "LOGIN_LOCKOUT_BASE_SECONDS": "60",
        "PASSWORD_HASH_NICE": "0",  # the checks, not their priority, are under test
        # 150 logins in flight on a busy 2-core machine queue for seconds: counting, not
        # the time bound of each database operation, is under test.
        "DATABASE_OPERATION_TIMEOUT": "60",
        "DATABASE_POOL_TIMEOUT": "60",
        **server_env(module_backend_config),
    }
    with Server(tmp_path_factory.mktemp("limits") / "instance", workers=2, env=env) as live:
        yield live


_addresses = itertools.count()


def fresh_address() -> str:
    """A loopback address no earlier test of this process has used: the per-address
    counts and blocks start from nothing on it, whatever ran on the server before."""
    n = next(_addresses)
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


def client_from(server: Server, address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address``; one connection per request, so
    the kernel spreads them over both workers."""
    transport = httpx.AsyncHTTPTransport(
        local_address=address,
        limits=httpx.Limits(max_connections=GUESSES, max_keepalive_connections=0),
    )
    return httpx.AsyncClient(base_url=server.url, transport=transport, timeout=120)


async def _register(http: httpx.AsyncClient, names: list[str]) -> None:
    responses = await asyncio.gather(
        *(http.post("/register", json={"username": n, "password": "correct-horse"}) for n in names)
    )
    assert all(r.status_code == 201 for r in responses), {r.text for r in responses}


async def test_concurrent_guesses_get_at_most_threshold_checks(server: Server) -> None:
    alice = unique_name("alice")
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(client_from(server, fresh_address()))
        await _register(http, [alice])
        wrong = {"username": alice, "password": "wrong-password"}
        responses = await asyncio.gather(*(http.post("/login", json=wrong) for _ in range(GUESSES)))
        statuses = Counter(r.status_code for r in responses)
        print(f"\n{GUESSES} concurrent guesses: {dict(statuses)}")
        assert set(statuses) == {401, 429}, statuses
        assert statuses[401] <= THRESHOLD, statuses  # each 401 is one password check
        for response in responses:
            if response.status_code == 429:
                assert response.json() == LOCKED and int(response.headers["Retry-After"]) >= 1
        right = await http.post("/login", json={"username": alice, "password": "correct-horse"})
        assert right.status_code == 429 and right.json() == LOCKED


async def test_one_address_is_blocked_across_accounts(server: Server) -> None:
    names = [unique_name(f"user{n}") for n in range(GUESSES)]
    async with AsyncExitStack() as stack:
        setup = await stack.enter_async_context(client_from(server, fresh_address()))
        attacker = await stack.enter_async_context(client_from(server, fresh_address()))
        other = await stack.enter_async_context(client_from(server, fresh_address()))
        await _register(setup, names)
        responses = await asyncio.gather(
            *(
                attacker.post("/login", json={"username": n, "password": "wrong-password"})
                for n in names
            )
        )
        statuses = Counter(r.status_code for r in responses)
        print(f"\n{GUESSES} failed logins at {GUESSES} accounts from one address: {dict(statuses)}")
        assert statuses == {401: SOURCE_THRESHOLD, 429: GUESSES - SOURCE_THRESHOLD}, statuses
        for response in responses:
            if response.status_code == 429:
                assert response.json() == BLOCKED
                # 600 s from the attempt that began it (a little later than some starts)
                assert 1 <= int(response.headers["Retry-After"]) <= 602
        # Blocked for every account, the right password included ...
        right = {"username": names[0], "password": "correct-horse"}
        assert (await attacker.post("/login", json=right)).status_code == 429
        # ... and only that address.
        assert (await other.post("/login", json=right)).status_code == 200
        wrong = {"username": names[1], "password": "wrong-password"}
        assert (await other.post("/login", json=wrong)).status_code == 401
