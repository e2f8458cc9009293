"""Sessions under concurrency, on live Hypercorn with two workers, on both storage
profiles: ending a session while its refresh is in flight, two tabs refreshing at once
(within and outside the grace), SESSION_LIMIT under 20 concurrent logins, disabling an
account while it logs in.

No keep-alive: every request is a new connection, which the kernel spreads over both
workers' sockets, so the racing requests run on different workers.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live import Server, server_env
from tests.helpers.support import SECRET, bearer, unique_name

pytestmark = pytest.mark.live

QUART_APP = Path(sys.executable).with_name("quart-app")
LIMIT = 5
GRACE = 2.0
PASSWORD = "correct-horse-9"


@dataclass
class Live:
    """The module's server, a client of it, and this test's own two users."""

    server: Server
    http: httpx.AsyncClient
    alice: str
    alice_id: int
    root: str


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_backend_config: dict[str, Any]
) -> Iterator[Server]:
    """One server per backend for the module: every test logs in users of its own."""
    env = {
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",
        "LOGIN_LOCKOUT_THRESHOLD": "100000",
        # Logins in flight on two hosts of a busy 2-core machine queue for seconds on one
        # SQLite file: who wins the race, not the time bound of each operation, is tested.
        "DATABASE_OPERATION_TIMEOUT": "60",
        "DATABASE_POOL_TIMEOUT": "60",
        "SQLITE_BUSY_TIMEOUT": "60",
        "SESSION_LIMIT": str(LIMIT),
        "REFRESH_REUSE_GRACE_SECONDS": str(GRACE),
        **server_env(module_backend_config),
    }
    with Server(tmp_path_factory.mktemp("sessions") / "instance", workers=2, env=env) as server:
        yield server


@pytest.fixture
async def live(server: Server) -> AsyncIterator[Live]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        names = [unique_name(role) for role in ("alice", "root")]
        ids = []
        for name in names:
            response = await http.post("/register", json={"username": name, "password": PASSWORD})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        yield Live(server, http, names[0], ids[0], names[1])


async def _login(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await http.post("/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    response = await http.post("/token/refresh", headers=bearer(token))
    assert response.status_code in (200, 401), response.text
    return response


async def _sessions(http: httpx.AsyncClient, access: str) -> list[dict[str, Any]]:
    response = await http.get("/sessions", headers=bearer(access))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _eventually_refused(http: httpx.AsyncClient, token: str) -> None:
    for _ in range(100):
        if (await http.get("/protected", headers=bearer(token))).status_code == 401:
            return
        await asyncio.sleep(0.05)
    pytest.fail("an access token of an ended session still works after 5 s")


async def test_ending_a_session_while_its_refresh_is_in_flight(
    live: Live,
) -> None:
    http = live.http
    won = survived = 0
    for _ in range(12):
        me = await _login(http, live.alice)
        target = await _login(http, live.alice)
        session_id = next(
            s["id"] for s in await _sessions(http, me["access_token"]) if not s["current"]
        )
        during, ended = await asyncio.gather(
            _refresh(http, target["refresh_token"]),
            http.delete(f"/sessions/{session_id}", headers=bearer(me["access_token"])),
        )
        # Ended whether the refresh rotated first (200) or not (404 is impossible: it lived).
        assert ended.status_code == 200, ended.text
        token = target["refresh_token"]
        if during.status_code == 200:
            won += 1
            token = during.json()["refresh_token"]
            await _eventually_refused(http, during.json()["access_token"])
        survived += (await _refresh(http, token)).status_code == 200
        await _eventually_refused(http, target["access_token"])
        await http.post("/logout", headers=bearer(me["access_token"]))
    print(f"\nrefreshes that won the race: {won}; sessions that survived their end: {survived}")
    assert survived == 0


async def test_two_tabs_refreshing_at_once(live: Live) -> None:
    http = live.http
    for _ in range(6):
        pair = await _login(http, live.alice)
        first, second = await asyncio.gather(
            _refresh(http, pair["refresh_token"]), _refresh(http, pair["refresh_token"])
        )
        # Within the grace both tabs get a pair of the same session, and both work.
        assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
        for answer in (first, second):
            ok = await http.get("/protected", headers=bearer(answer.json()["access_token"]))
            assert ok.status_code == 200
        assert len(await _sessions(http, first.json()["access_token"])) == 1
        # Either tab's next refresh rotates the session; the original token is now older
        # than the previous one: reuse, the session ends.
        third = await _refresh(http, second.json()["refresh_token"])
        assert third.status_code == 200
        assert (await _refresh(http, pair["refresh_token"])).status_code == 401
        assert (await _refresh(http, third.json()["refresh_token"])).status_code == 401
        await http.post("/logout", headers=bearer(third.json()["access_token"]))


async def test_the_previous_token_after_the_grace_ends_the_session(
    live: Live,
) -> None:
    http = live.http
    pair = await _login(http, live.alice)
    rotated = (await _refresh(http, pair["refresh_token"])).json()
    await asyncio.sleep(GRACE + 0.5)
    late = await asyncio.gather(
        _refresh(http, pair["refresh_token"]), _refresh(http, pair["refresh_token"])
    )
    assert [r.status_code for r in late] == [401, 401]
    assert (await _refresh(http, rotated["refresh_token"])).status_code == 401
    await _eventually_refused(http, rotated["access_token"])


async def test_session_limit_under_concurrent_logins(
    live: Live,
) -> None:
    http = live.http
    pairs = await asyncio.gather(*(_login(http, live.alice) for _ in range(20)))
    # One more login, to look: it ends the least recently used of the LIMIT alive.
    me = await _login(http, live.alice)
    alive = await _sessions(http, me["access_token"])
    assert len(alive) == LIMIT, alive
    refreshed = await asyncio.gather(*(_refresh(http, p["refresh_token"]) for p in pairs))
    working = [r for r in refreshed if r.status_code == 200]
    print(f"\n20 concurrent logins, SESSION_LIMIT {LIMIT}: {len(working)} + 1 sessions live")
    assert len(working) == LIMIT - 1


async def test_disabling_an_account_while_it_logs_in(
    live: Live,
) -> None:
    server, http = live.server, live.http
    granted = await asyncio.to_thread(
        subprocess.run,
        [str(QUART_APP), "admin", "grant", live.root],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert granted.returncode == 0, granted.stderr
    admin = bearer((await _login(http, live.root))["access_token"])
    alice = live.alice_id

    async def log_in(won: list[dict[str, Any]]) -> None:
        body = {"username": live.alice, "password": PASSWORD}
        response = await http.post("/login", json=body)
        assert response.status_code in (200, 403), response.text
        if response.status_code == 200:
            won.append(response.json())

    for _ in range(4):
        won: list[dict[str, Any]] = []

        async def disable() -> None:
            await asyncio.sleep(0.05)
            response = await http.post(f"/admin/users/{alice}/disable", headers=admin)
            assert response.status_code == 200, response.text

        await asyncio.gather(*(log_in(won) for _ in range(10)), disable())
        for pair in won:
            assert (await _refresh(http, pair["refresh_token"])).status_code == 401
            await _eventually_refused(http, pair["access_token"])
        refused = await http.post("/login", json={"username": live.alice, "password": PASSWORD})
        assert (refused.status_code, refused.json()) == (403, {"msg": "Account disabled"})
        enabled = await http.post(f"/admin/users/{alice}/enable", headers=admin)
        assert enabled.status_code == 200
