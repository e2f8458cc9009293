"""Brute-force lockout: per account, growing back-off, no probing, and no hostage-taking.

The clock of the login route is replaced by a fake one (``clock``), so back-offs of
seconds and minutes are walked through without sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from quart import Quart
from support import Client, bearer, login, register

from quart_app.routes import auth

LOCKED = {"msg": "Too many failed login attempts; try later"}
RIGHT = "correct-horse"
ATTACKER, OWNER, ELSEWHERE = "203.0.113.66", "198.51.100.10", "192.0.2.77"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(auth, "time", fake)
    return fake


@pytest.fixture
async def lockout_app(app_factory: Callable[..., Quart]) -> AsyncIterator[Quart]:
    # A generous per-address limit: these tests are about the account lock.
    app = app_factory(RATELIMIT_AUTH_LIMIT=10_000)
    async with app.test_app():
        await register(app.test_client())
        yield app


async def attempt(client: Client, password: str, address: str = ATTACKER) -> Any:
    return await client.post(
        "/login",
        json={"username": "alice", "password": password},
        scope_base={"client": (address, 50000)},
    )


async def fail(client: Client, times: int, address: str = ATTACKER) -> list[int]:
    return [(await attempt(client, "wrong-password", address)).status_code for _ in range(times)]


async def test_ten_failures_lock_the_account(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    assert await fail(client, 9) == [401] * 9
    tenth = await attempt(client, "wrong-password")
    assert tenth.status_code == 429
    assert await tenth.get_json() == LOCKED
    assert int(tenth.headers["Retry-After"]) >= 1


async def test_locked_account_refuses_even_the_right_password(
    lockout_app: Quart, clock: Clock
) -> None:
    """No probing: while locked the answer does not depend on the password."""
    client = lockout_app.test_client()
    await fail(client, 10)
    right, wrong = await attempt(client, RIGHT), await attempt(client, "wrong-password")
    for response in (right, wrong):
        assert response.status_code == 429
        assert await response.get_json() == LOCKED
        assert response.headers["Retry-After"] == right.headers["Retry-After"]


async def test_backoff_doubles_up_to_the_cap(
    app_factory: Callable[..., Quart], clock: Clock
) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=10_000, LOGIN_LOCKOUT_MAX_SECONDS=60)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        await fail(client, 9)
        waits = []
        for _ in range(9):
            response = await attempt(client, "wrong-password")
            assert response.status_code == 429
            waits.append(int(response.headers["Retry-After"]))
            clock.advance(waits[-1])  # the lock has just run out: the next try counts
        assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


async def test_attempts_during_a_lock_do_not_extend_it(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    await fail(client, 12, ATTACKER)  # 1 s, then locked: the last two are not counted
    clock.advance(1)
    statuses = await fail(client, 1)
    assert statuses == [429]  # the 11th counted failure: 2 s
    retry = int((await attempt(client, RIGHT)).headers["Retry-After"])
    assert retry == 2


async def test_success_after_the_backoff_resets_the_count(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    await fail(client, 10)
    clock.advance(1)
    assert (await attempt(client, RIGHT)).status_code == 200
    # The count starts again: nine more failures are plain 401s.
    assert await fail(client, 9) == [401] * 9
    assert (await attempt(client, "wrong-password")).status_code == 429


async def test_lock_is_per_account(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    await register(client, "bob")
    await fail(client, 10)
    other = await client.post(
        "/login",
        json={"username": "bob", "password": RIGHT},
        scope_base={"client": (ATTACKER, 1)},
    )
    assert other.status_code == 200


async def test_unknown_usernames_are_never_locked(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    for _ in range(15):
        response = await client.post("/login", json={"username": "nobody", "password": RIGHT})
        assert response.status_code == 401


async def test_lock_is_shared_by_workers(app_factory: Callable[..., Quart], clock: Clock) -> None:
    async with AsyncExitStack() as stack:
        first, second = (app_factory(RATELIMIT_AUTH_LIMIT=10_000) for _ in "ab")
        for app in (first, second):
            await stack.enter_async_context(app.test_app())
        a, b = first.test_client(), second.test_client()
        await register(a)
        await fail(a, 5)
        await fail(b, 4)
        assert (await attempt(a, "wrong-password")).status_code == 429
        assert (await attempt(b, RIGHT)).status_code == 429


# --- the trade-off: an attacker must not keep the owner out -----------------------------


async def test_owner_on_a_trusted_network_is_not_locked_out(
    lockout_app: Quart, clock: Clock
) -> None:
    client = lockout_app.test_client()
    assert (await attempt(client, RIGHT, OWNER)).status_code == 200  # the owner's network
    for _ in range(5):  # a sustained attack from elsewhere: the account stays locked ...
        await fail(client, 12, ATTACKER)
        assert (await attempt(client, RIGHT, ELSEWHERE)).status_code == 429
        # ... but not for the owner's network, with the right password.
        assert (await attempt(client, RIGHT, OWNER)).status_code == 200
        clock.advance(120)


async def test_owner_success_during_an_attack_does_not_reset_the_attackers_count(
    lockout_app: Quart, clock: Clock
) -> None:
    client = lockout_app.test_client()
    assert (await attempt(client, RIGHT, OWNER)).status_code == 200
    await fail(client, 10, ATTACKER)
    assert (await attempt(client, RIGHT, OWNER)).status_code == 200
    clock.advance(1)
    # The lock has run out, but the count has not been reset by the owner's login:
    # the attacker's very next failure locks again (for longer).
    response = await attempt(client, "wrong-password", ATTACKER)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


async def test_trusted_network_still_has_its_own_lock(lockout_app: Quart, clock: Clock) -> None:
    """Guessing from the owner's network (same NAT) is limited like anywhere else."""
    client = lockout_app.test_client()
    assert (await attempt(client, RIGHT, OWNER)).status_code == 200
    assert await fail(client, 9, OWNER) == [401] * 9
    assert (await attempt(client, "wrong-password", OWNER)).status_code == 429
    assert (await attempt(client, RIGHT, OWNER)).status_code == 429


async def test_trust_can_be_switched_off(app_factory: Callable[..., Quart], clock: Clock) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=10_000, LOGIN_TRUSTED_SOURCE_SECONDS=0)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        assert (await attempt(client, RIGHT, OWNER)).status_code == 200
        await fail(client, 10, ATTACKER)
        assert (await attempt(client, RIGHT, OWNER)).status_code == 429


async def test_trust_expires(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    assert (await attempt(client, RIGHT, OWNER)).status_code == 200
    clock.advance(31 * 24 * 3600)
    await fail(client, 10, ATTACKER)
    assert (await attempt(client, RIGHT, OWNER)).status_code == 429


async def test_sessions_survive_a_lock(lockout_app: Quart, clock: Clock) -> None:
    """The lock gates /login only: a client holding a refresh token carries on."""
    client = lockout_app.test_client()
    pair = await login(client)
    await fail(client, 10, ATTACKER)
    refreshed = await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    assert refreshed.status_code == 200


async def test_old_locks_are_forgotten(lockout_app: Quart, clock: Clock) -> None:
    """A lock that ended more than a window (24 h) ago does not make the next typo a lock."""
    client = lockout_app.test_client()
    await fail(client, 10)
    clock.advance(25 * 3600)
    assert await fail(client, 9) == [401] * 9
    assert (await attempt(client, "wrong-password")).status_code == 429
