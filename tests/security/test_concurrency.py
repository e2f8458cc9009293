"""Concurrency faults: refresh and registration races, SQLite busy under two live workers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart

from tests.helpers.live import running
from tests.helpers.support import SECRET, Client, bearer, login, register, started

REVOKED = {"msg": "Token has been revoked"}


async def _eventually_revoked(client: Client, token: str) -> None:
    """Revocations reach every worker within the sync interval (docs/jwt.md: 1.5 s)."""
    for _ in range(40):
        response = await client.get("/protected", headers=bearer(token))
        if response.status_code == 401:
            assert await response.get_json() == REVOKED
            return
        await asyncio.sleep(0.05)
    pytest.fail("the family was not revoked")


@pytest.mark.parametrize("racers", [2, 8])
async def test_refresh_race_has_at_most_one_winner_and_burns_the_family(
    tokens: dict[str, Any], client: Client, racers: int
) -> None:
    refresh = bearer(tokens["refresh_token"])
    responses = await asyncio.gather(
        *(client.post("/token/refresh", headers=refresh) for _ in range(racers))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] <= 1 and statuses[200] + statuses[401] == racers, statuses
    for response in responses:
        if response.status_code == 401:
            assert await response.get_json() == REVOKED
    # Both tried: it was replayed, so every token of that login is dead, the winner's too.
    await _eventually_revoked(client, tokens["access_token"])
    for response in responses:
        if response.status_code == 200:
            won = await response.get_json()
            await _eventually_revoked(client, won["access_token"])
            again = await client.post("/token/refresh", headers=bearer(won["refresh_token"]))
            assert again.status_code == 401


async def test_refresh_race_across_two_workers(app_factory: Callable[..., Quart]) -> None:
    """Two apps on one database (two workers): the shared store decides, once."""
    async with AsyncExitStack() as stack:
        apps = [app_factory(REVOCATION_SYNC_INTERVAL=0.1) for _ in "ab"]
        for app in apps:
            await stack.enter_async_context(started(app))
        a, b = (app.test_client() for app in apps)
        await register(a)
        pair = await login(a)
        refresh = bearer(pair["refresh_token"])
        first, second = await asyncio.gather(
            a.post("/token/refresh", headers=refresh), b.post("/token/refresh", headers=refresh)
        )
        assert sorted([first.status_code, second.status_code]) in ([200, 401], [401, 401])
        for worker in (a, b):
            await _eventually_revoked(worker, pair["access_token"])


async def test_registration_race_across_two_workers(app_factory: Callable[..., Quart]) -> None:
    async with AsyncExitStack() as stack:
        apps = [app_factory() for _ in "ab"]
        for app in apps:
            await stack.enter_async_context(started(app))
        clients = [app.test_client() for app in apps]
        names = ["mallory", "MALLORY", "Mallory", "\uff4d\uff41\uff4c\uff4c\uff4f\uff52\uff59"] * 3
        responses = await asyncio.gather(
            *(
                clients[n % 2].post("/register", json={"username": name, "password": "pw-123456"})
                for n, name in enumerate(names)
            )
        )
        assert sorted(r.status_code for r in responses) == [201] + [409] * (len(names) - 1)


# --- live: two Hypercorn workers on one SQLite file ---------------------------------------


@pytest.mark.live
async def test_two_live_workers_on_sqlite_never_answer_500(tmp_path: Path) -> None:
    """Writes from both workers at once (register, failed logins, refresh, logout): SQLite
    serialises them; busy waits, never a 500. Also: hostile sizes against the real server."""
    env = {
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",
        "REVOCATION_SYNC_INTERVAL": "0.2",
    }
    with running(tmp_path / "instance", workers=2, env=env) as server:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
            statuses: Counter[int] = Counter()

            async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
                response = await http.request(method, path, **kwargs)
                statuses[response.status_code] += 1
                return response

            for n in range(8):
                await call(
                    "POST", "/register", json={"username": f"user{n}", "password": "pw-123456"}
                )

            async def session(n: int) -> None:
                name = f"user{n % 8}"
                rnd = random.Random(n)
                await call(
                    "POST", "/register", json={"username": f"extra{n}", "password": "pw-123456"}
                )
                await call("POST", "/register", json={"username": name, "password": "pw-123456"})
                await call("POST", "/login", json={"username": name, "password": "wrong-pass"})
                response = await call(
                    "POST", "/login", json={"username": name, "password": "pw-123456"}
                )
                if response.status_code != 200:
                    return
                pair = response.json()
                for _ in range(rnd.randint(1, 3)):
                    response = await call(
                        "POST", "/token/refresh", headers=bearer(pair["refresh_token"])
                    )
                    if response.status_code != 200:
                        break
                    pair = response.json()
                await call("GET", "/me", headers=bearer(pair["access_token"]))
                await call("POST", "/logout", headers=bearer(pair["access_token"]))

            await asyncio.gather(*(session(n) for n in range(48)))
            print(f"\nlive statuses: {dict(statuses)}")
            assert statuses[500] == 0, statuses
            assert statuses[201] >= 48 and statuses[200] > 0, statuses
            assert set(statuses) <= {200, 201, 401, 409, 429, 503}, statuses

            # A replayed refresh token raced over two connections, possibly two workers.
            pair = await call("POST", "/login", json={"username": "user0", "password": "pw-123456"})
            if pair.status_code == 200:
                token = bearer(pair.json()["refresh_token"])
                race = await asyncio.gather(
                    *(http.post("/token/refresh", headers=token) for _ in range(4))
                )
                assert sum(r.status_code == 200 for r in race) <= 1
                assert all(r.status_code in (200, 401) for r in race)

            # Hostile sizes: a 100 KB Authorization header, a declared 1 MB body.
            huge = await http.get(
                "/protected", headers={"Authorization": "Bearer " + "a" * 100_000}
            )
            assert 400 <= huge.status_code < 500
            # The declared length alone earns the 413: the server does not wait for the body.
            host, port = server.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(
                    b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000000\r\n\r\n{"
                )
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            finally:
                writer.close()
            assert head.startswith(b"HTTP/1.1 413"), head
            assert b"connection: close" in head.lower()
