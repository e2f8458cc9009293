"""Sessions that end: after a password change, a logout or ``revoke-user`` answers, no
refresh token of the sessions it ended yields a pair, on any worker, at any moment.

Replayed as an attacker would, against live Hypercorn with two workers on each storage
profile: the victim and the attacker hold the same login; the attacker refreshes while
the victim's request is in flight, and again on fresh connections (spread over both
workers) as soon as it has answered.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live import Server, server_env
from tests.helpers.support import SECRET, bearer, unique_name

pytestmark = pytest.mark.live

ROUNDS = 20
QUART_APP = Path(sys.executable).with_name("quart-app")


@dataclass
class Live:
    """The module's server, a client of it, and this test's own user (``password-0``)."""

    server: Server
    http: httpx.AsyncClient
    user: str


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_backend_config: dict[str, Any]
) -> Iterator[Server]:
    """One server per backend for the module: every test's sessions are its own user's."""
    env = {
        "JWT_SECRET_KEY": SECRET,
        "RATELIMIT_AUTH_LIMIT": "100000",
        "LOGIN_LOCKOUT_THRESHOLD": "100000",
        **server_env(module_backend_config),
    }
    with Server(tmp_path_factory.mktemp("ends") / "instance", workers=2, env=env) as server:
        yield server


@pytest.fixture
async def live(server: Server) -> AsyncIterator[Live]:
    # No keep-alive: every request is a new connection, which the kernel spreads over
    # both workers' sockets.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
        user = unique_name("victim")
        response = await http.post("/register", json={"username": user, "password": "password-0"})
        assert response.status_code == 201, response.text
        yield Live(server, http, user)


async def _login(live: Live, password: str) -> dict[str, Any]:
    response = await live.http.post("/login", json={"username": live.user, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _refresh(http: httpx.AsyncClient, token: str) -> httpx.Response:
    response = await http.post("/token/refresh", headers=bearer(token))
    assert response.status_code in (200, 401), response.text
    return response


async def _race(
    http: httpx.AsyncClient, pair: dict[str, Any], end: Callable[[], Awaitable[None]], race: bool
) -> tuple[int, int]:
    """End the session, then refresh once on a new connection (either worker); with
    ``race``, also refresh while ``end()`` is in flight. Returns (pairs during, after).

    One refresh per token: a second use would be a replay, which revokes the family
    anyway and so would hide what is being tested.
    """
    token, won = pair["refresh_token"], 0
    if race:
        during, _ = await asyncio.gather(_refresh(http, token), end())
        if during.status_code == 200:  # won before the revocation was recorded
            won, stolen = 1, during.json()
            token = stolen["refresh_token"]
            await _eventually_revoked(http, stolen["access_token"])
    else:
        await end()
    after = await _refresh(http, token)
    return won, int(after.status_code == 200)


async def _eventually_revoked(http: httpx.AsyncClient, token: str) -> None:
    """An access token of an ended session dies on every worker within the sync bound."""
    for _ in range(60):
        response = await http.get("/protected", headers=bearer(token))
        if response.status_code == 401:
            assert response.json() == {"msg": "Token has been revoked"}
            return
        await asyncio.sleep(0.05)
    pytest.fail("an access token of an ended session still works after 3 s")


async def test_password_change_race_yields_no_pair(live: Live) -> None:
    http = live.http
    during = after = 0
    for n in range(ROUNDS):
        old, new = f"password-{n}", f"password-{n + 1}"
        pair = await _login(live, old)

        async def change(old: str = old, new: str = new, pair: dict[str, Any] = pair) -> None:
            response = await http.put(
                "/me/password",
                json={"old_password": old, "new_password": new},
                headers=bearer(pair["access_token"]),
            )
            assert response.status_code == 200, response.text

        won, late = await _race(http, pair, change, race=n % 2 == 1)
        during, after = during + won, after + late
        # The session begun after the change lives: only earlier ones ended.
        fresh = await _login(live, new)
        again = await http.post("/token/refresh", headers=bearer(fresh["refresh_token"]))
        assert again.status_code == 200, again.text
    print(f"\npairs won while the change was in flight: {during}; after its 200: {after}")
    assert after == 0


async def test_logout_race_yields_no_pair(live: Live) -> None:
    http = live.http
    after = 0
    for n in range(6):
        pair = await _login(live, "password-0")

        async def logout(pair: dict[str, Any] = pair) -> None:
            response = await http.post("/logout", headers=bearer(pair["access_token"]))
            assert response.status_code == 200, response.text

        after += (await _race(http, pair, logout, race=n % 2 == 1))[1]
    assert after == 0


async def test_revoke_user_ends_every_session(live: Live) -> None:
    server, http = live.server, live.http
    after = 0
    for n in range(4):
        pair = await _login(live, "password-0")

        async def revoke() -> None:
            result = await asyncio.to_thread(
                subprocess.run,
                [str(QUART_APP), "revoke-user", live.user],
                env=server.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr

        after += (await _race(http, pair, revoke, race=n % 2 == 1))[1]
    assert after == 0
