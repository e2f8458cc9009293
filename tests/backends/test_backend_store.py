"""UserStore and SqlRevocationStore on each backend: same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from quart import Quart
from support import Client, bearer, login, register

from quart_app.jwt.revocation import Revocation
from quart_app.services import services
from quart_app.store import SqlRevocationStore, UsernameTaken


async def test_users_round_trip(app: Quart, backend: str) -> None:
    users = services(app).users
    alice = await users.create("Alice", "alice", "hash-a")
    bob = await users.create("bob", "bob", "hash-b")
    assert (alice.id, bob.id) == (1, 2)  # every test starts on empty tables
    assert alice.created_at.tzinfo is not None
    found = await users.by_key("alice")
    assert found is not None and found.username == "Alice"
    assert (await users.by_id(bob.id)) == bob
    assert [u.id for u in await users.page(limit=1)] == [alice.id]
    assert [u.id for u in await users.page(limit=10, after_id=alice.id)] == [bob.id]
    assert await users.count() == 2
    with pytest.raises(UsernameTaken):
        await users.create("ALICE", "alice", "hash-c")


async def test_concurrent_registrations_of_one_name_give_one_201(
    client: Client, backend: str
) -> None:
    names = ["carol", "Carol", "CAROL", "carol", "cArOl", "carol"]
    responses = await asyncio.gather(
        *(client.post("/register", json={"username": n, "password": "pw-123456"}) for n in names)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (len(names) - 1)
    for response in responses:
        if response.status_code == 409:
            assert await response.get_json() == {"msg": "Username already exists"}


async def test_concurrent_failed_logins_are_all_counted(app: Quart, backend: str) -> None:
    users = services(app).users
    user = await users.create("dave", "dave", "hash")
    await asyncio.gather(
        *(users.record_failure(user.id, time.time(), 100, 1.0, 10.0) for _ in range(20))
    )
    stored = await users.by_id(user.id)
    assert stored is not None and stored.failed_logins == 20


def _entry(kind: Any, value: str, ttl: float = 60.0) -> Revocation:
    return Revocation(kind, value, time.time() + ttl)


async def test_revocation_store_semantics(app: Quart, backend: str) -> None:
    store = SqlRevocationStore(services(app).db)
    _, start = await store.changes_since(None)
    await store.add([_entry("jti", "a"), _entry("family", "f")])
    await store.add([_entry("jti", "a")])  # recorded twice: not an error, one row
    assert await store.contains("jti", "a") and await store.contains("family", "f")
    assert not await store.contains("jti", "b")
    entries, cursor = await store.changes_since(start)
    assert sorted((e.kind, e.value) for e in entries) == [("family", "f"), ("jti", "a")]
    assert cursor > start
    # Two password changes of one user are two rows.
    await store.add([Revocation("user", "7", time.time() + 60, not_before=1.0)])
    await store.add([Revocation("user", "7", time.time() + 60, not_before=2.0)])
    entries, _ = await store.changes_since(None)
    assert sorted(e.not_before for e in entries if e.kind == "user") == [1.0, 2.0]


async def test_claim_is_won_exactly_once_under_concurrency(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    # Two apps on one database stand for two workers (or hosts) racing with one token.
    first, second = app_factory(), app_factory()
    async with first.test_app(), second.test_app():
        stores = [SqlRevocationStore(services(a).db) for a in (first, second)]
        entry = _entry("jti", "refresh-1")
        results = await asyncio.gather(*(stores[i % 2].claim(entry) for i in range(10)))
        assert results.count(True) == 1


async def test_prune_deletes_only_expired_entries(app: Quart, backend: str) -> None:
    store = SqlRevocationStore(services(app).db)
    await store.add([_entry("jti", "old", ttl=-1), _entry("jti", "live")])
    assert await store.prune() == 1
    assert not await store.contains("jti", "old")
    assert await store.contains("jti", "live")
    entries, _ = await store.changes_since(None)  # expired entries are never handed out
    assert [e.value for e in entries] == ["live"]


async def test_the_whole_flow_on_each_backend(client: Client, backend: str) -> None:
    await register(client)
    pair = await login(client)
    me = await client.get("/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    refreshed = await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    assert refreshed.status_code == 200
    replay = await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    assert replay.status_code == 401
    assert await replay.get_json() == {"msg": "Token has been revoked"}
    # The replay revoked the family: the rotated pair is dead too.
    new_pair = await refreshed.get_json()
    again = await client.post("/token/refresh", headers=bearer(new_pair["refresh_token"]))
    assert again.status_code == 401
    # ... and so is the access token of that login.
    me = await client.get("/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 401
    users = await client.get("/users", headers=bearer((await login(client))["access_token"]))
    assert users.status_code == 200
    assert [u["username"] for u in await users.get_json()] == ["alice"]
