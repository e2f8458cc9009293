"""Brute-force limits: per account, growing back-off, no probing, no hostage-taking, the
per-network block, and PUT /me/password under the same lock.

The clock of the login route is replaced by a fake one (``clock``), so back-offs of
seconds and minutes are walked through without sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from quart import Quart

from quart_app.routes import auth, users
from tests.helpers.support import Client, bearer, login, register, started

LOCKED = {"msg": "Too many failed login attempts; try later"}
BLOCKED = {"msg": "Too many failed logins from this address; try later"}
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
    monkeypatch.setattr(users, "time", fake)
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
    """Ten password checks fail (401); the eleventh attempt is not even checked."""
    client = lockout_app.test_client()
    assert await fail(client, 10) == [401] * 10
    eleventh = await attempt(client, "wrong-password")
    assert eleventh.status_code == 429
    assert await eleventh.get_json() == LOCKED
    assert int(eleventh.headers["Retry-After"]) >= 1


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
        await fail(client, 10)
        waits = []
        for _ in range(9):
            response = await attempt(client, "wrong-password")
            assert response.status_code == 429
            waits.append(int(response.headers["Retry-After"]))
            clock.advance(waits[-1])  # the lock has just run out: the next try is checked
            assert (await attempt(client, "wrong-password")).status_code == 401
        assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


async def test_attempts_during_a_lock_do_not_extend_it(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    assert await fail(client, 12, ATTACKER) == [401] * 10 + [429] * 2  # not counted
    clock.advance(1)
    statuses = await fail(client, 1)
    assert statuses == [401]  # the 11th counted failure: 2 s
    retry = int((await attempt(client, RIGHT)).headers["Retry-After"])
    assert retry == 2


async def test_success_after_the_backoff_resets_the_count(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    await fail(client, 10)
    clock.advance(1)
    assert (await attempt(client, RIGHT)).status_code == 200
    # The count starts again: ten more failures are plain 401s.
    assert await fail(client, 10) == [401] * 10
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


async def test_unknown_usernames_answer_as_known_ones(lockout_app: Quart, clock: Clock) -> None:
    """Same path, same answers: neither the lock nor its timing tells whether a name exists."""
    client = lockout_app.test_client()
    answers = {}
    for name in ("alice", "nobody"):
        responses = [
            await client.post("/login", json={"username": name, "password": "wrong-password"})
            for _ in range(12)
        ]
        answers[name] = [(r.status_code, await r.get_json()) for r in responses]
    assert answers["alice"] == answers["nobody"]
    assert [status for status, _ in answers["nobody"]] == [401] * 10 + [429] * 2


async def test_lock_is_shared_by_workers(app_factory: Callable[..., Quart], clock: Clock) -> None:
    async with AsyncExitStack() as stack:
        first, second = (app_factory(RATELIMIT_AUTH_LIMIT=10_000) for _ in "ab")
        for app in (first, second):
            await stack.enter_async_context(started(app))
        a, b = first.test_client(), second.test_client()
        await register(a)
        await fail(a, 5)
        await fail(b, 5)
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
    assert (await attempt(client, "wrong-password", ATTACKER)).status_code == 401
    response = await attempt(client, "wrong-password", ATTACKER)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


async def test_trusted_network_still_has_its_own_lock(lockout_app: Quart, clock: Clock) -> None:
    """Guessing from the owner's network (same NAT) is limited like anywhere else."""
    client = lockout_app.test_client()
    assert (await attempt(client, RIGHT, OWNER)).status_code == 200
    assert await fail(client, 10, OWNER) == [401] * 10
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
    """A count with no failure for a window (24 h) starts again from one."""
    client = lockout_app.test_client()
    await fail(client, 10)
    clock.advance(25 * 3600)
    assert await fail(client, 10) == [401] * 10
    assert (await attempt(client, "wrong-password")).status_code == 429


# --- PUT /me/password: the same lock ------------------------------------------------------


async def change(client: Client, token: str, old: str, address: str = ATTACKER) -> Any:
    return await client.put(
        "/me/password",
        json={"old_password": old, "new_password": "brand-new-password"},
        headers=bearer(token),
        scope_base={"client": (address, 50000)},
    )


async def test_wrong_old_passwords_lock_the_account(lockout_app: Quart, clock: Clock) -> None:
    """A stolen fresh token is no password oracle: ten wrong guesses, then 429 for
    everything (the right old password, and /login) until the lock runs out."""
    client = lockout_app.test_client()
    token = (await login(client))["access_token"]
    statuses = [(await change(client, token, f"guess-{n}")).status_code for n in range(10)]
    assert statuses == [401] * 10
    for response in (await change(client, token, RIGHT), await attempt(client, RIGHT)):
        assert response.status_code == 429
        assert await response.get_json() == LOCKED
        assert int(response.headers["Retry-After"]) >= 1


async def test_failed_logins_lock_the_password_change(lockout_app: Quart, clock: Clock) -> None:
    client = lockout_app.test_client()
    token = (await login(client))["access_token"]
    await fail(client, 10)
    assert (await change(client, token, RIGHT)).status_code == 429
    clock.advance(1)
    assert (await change(client, token, RIGHT)).status_code == 200


async def test_password_change_is_rate_limited_per_address(
    app_factory: Callable[..., Quart],
) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=3, LOGIN_LOCKOUT_THRESHOLD=100)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        token = (await login(client))["access_token"]
        statuses = [(await change(client, token, "wrong-guess")).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]


# --- per network, across accounts ---------------------------------------------------------


@pytest.fixture
async def block_app(app_factory: Callable[..., Quart]) -> AsyncIterator[Quart]:
    app = app_factory(RATELIMIT_AUTH_LIMIT=10_000, LOGIN_SOURCE_BLOCK_THRESHOLD=20)
    async with app.test_app():
        await register(app.test_client())
        yield app


async def spray(client: Client, count: int, address: str = ATTACKER, start: int = 0) -> list[int]:
    """One wrong guess at each of ``count`` usernames (unknown ones count the same)."""
    return [
        (
            await client.post(
                "/login",
                json={"username": f"user{n}", "password": "wrong-password"},
                scope_base={"client": (address, 50000)},
            )
        ).status_code
        for n in range(start, start + count)
    ]


async def test_a_network_is_blocked_across_accounts(block_app: Quart, clock: Clock) -> None:
    client = block_app.test_client()
    assert await spray(client, 20) == [401] * 20
    blocked = await attempt(client, RIGHT)
    assert blocked.status_code == 429  # even the right password of another account
    assert await blocked.get_json() == BLOCKED
    assert int(blocked.headers["Retry-After"]) == 600
    # Other networks are unaffected.
    assert (await attempt(client, RIGHT, ELSEWHERE)).status_code == 200
    assert await spray(client, 1, ELSEWHERE) == [401]
    clock.advance(600)
    assert (await attempt(client, RIGHT)).status_code == 200


async def test_a_success_does_not_reset_the_block_count(block_app: Quart, clock: Clock) -> None:
    client = block_app.test_client()
    assert await spray(client, 19) == [401] * 19
    assert (await attempt(client, RIGHT)).status_code == 200
    assert await spray(client, 1, start=19) == [401]
    assert await spray(client, 1, start=20) == [429]


async def test_the_block_window_starts_again(block_app: Quart, clock: Clock) -> None:
    client = block_app.test_client()
    assert await spray(client, 19) == [401] * 19
    clock.advance(601)
    assert await spray(client, 19, start=19) == [401] * 19


async def test_ipv6_networks_are_blocked_per_64(block_app: Quart, clock: Clock) -> None:
    client = block_app.test_client()
    assert await spray(client, 10, "2001:db8:1:2::1") == [401] * 10
    assert await spray(client, 10, "2001:db8:1:2:ffff::9", start=10) == [401] * 10
    assert await spray(client, 1, "2001:db8:1:2::77", start=20) == [429]
    assert await spray(client, 1, "2001:db8:1:3::1", start=21) == [401]


async def test_the_block_can_be_switched_off(
    app_factory: Callable[..., Quart], clock: Clock
) -> None:
    app = app_factory(RATELIMIT_AUTH_LIMIT=10_000, LOGIN_SOURCE_BLOCK_THRESHOLD=0)
    async with app.test_app():
        assert await spray(app.test_client(), 120) == [401] * 120


async def test_refusals_are_counted_in_metrics(
    app_factory: Callable[..., Quart], clock: Clock
) -> None:
    app = app_factory(
        RATELIMIT_AUTH_LIMIT=10_000,
        LOGIN_SOURCE_BLOCK_THRESHOLD=20,
        METRICS_ENABLED=True,
        METRICS_TOKEN="metrics-token",
    )
    async with app.test_app():
        client = app.test_client()
        await register(client)
        await fail(client, 12)  # two refused by the account lock (from that network first)
        await spray(client, 10)  # the block's 20 are full now
        await spray(client, 3, start=10)
        text = await (await client.get("/metrics", headers=bearer("metrics-token"))).get_data(
            as_text=True
        )
    assert 'quart_app_login_refusals_total{limit="pair"} 2.0' in text
    assert 'quart_app_login_refusals_total{limit="source"} 3.0' in text


async def test_client_addresses_of_any_length_are_counted_safely(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    """A trusted proxy may forward anything as the client address: it is counted under a
    hash, on each engine (PostgreSQL once answered 500 past 64 characters)."""
    app = app_factory(TRUSTED_PROXY_HOPS=1, RATELIMIT_AUTH_LIMIT=10_000)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        for forwarded in ("x" * 300, "2001:db8::" + "f" * 200, "\U0001f642" * 100, "b" * 5000):
            headers = {"X-Forwarded-For": forwarded}
            statuses = [
                (
                    await client.post(
                        "/login",
                        json={"username": "alice", "password": password},
                        headers=headers,
                    )
                ).status_code
                for password in ("wrong-password", RIGHT)
            ]
            assert statuses == [401, 200], (forwarded[:20], statuses)
