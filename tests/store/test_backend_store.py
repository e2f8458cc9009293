"""UserStore and SqlRevocationStore on each backend: same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import types
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from quart import Quart
from sqlalchemy.engine import make_url

from quart_app.jwt.revocation import Revocation
from quart_app.services import services
from quart_app.store import SqlRevocationStore, UsernameTaken
from quart_app.store import revocations as revocations_module
from quart_app.store.login_limits import Backoff, LoginLimitStore, Refused
from tests.helpers.backend_servers import PostgresRun
from tests.helpers.support import Client, bearer, login, register

#: Redis-only behaviour, or PostgreSQL-only: the SQLite backend has nothing to test.
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"])


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


async def test_concurrent_reservations_admit_exactly_the_threshold(
    app: Quart, backend: str
) -> None:
    """Twenty reservations at one key at once: ten admitted, ten refused, on each engine."""
    store = LoginLimitStore(services(app).db)
    policy = Backoff(threshold=10, base=60.0, cap=600.0, forget=3600.0)
    now = time.time()

    async def reserve() -> bool:
        try:
            await store.reserve(("pair", "k" * 64, policy), now)
        except Refused:
            return False
        return True

    admitted = await asyncio.gather(*(reserve() for _ in range(20)))
    assert sorted(admitted) == [False] * 10 + [True] * 10


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
    changes = [e.not_before for e in entries if e.kind == "user" and e.not_before is not None]
    assert sorted(changes) == [1.0, 2.0]


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


async def test_a_locked_database_answers_503_on_both_engines(
    app_factory: Callable[..., Quart], backend: str, request: pytest.FixtureRequest
) -> None:
    """Another session holds the users table past our wait: 503 + Retry-After, not 500."""
    app = app_factory(SQLITE_BUSY_TIMEOUT=0.2, DATABASE_STATEMENT_TIMEOUT=0.2)
    async with app.test_app(), _table_locked(app, backend, request):
        client = app.test_client()
        response = await client.post(
            "/register", json={"username": "erin", "password": "pw-123456"}
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert await response.get_json() == {"msg": "Service temporarily unavailable"}
    async with app.test_app():  # and once the lock is gone, the same request works
        response = await app.test_client().post(
            "/register", json={"username": "erin", "password": "pw-123456"}
        )
        assert response.status_code == 201


@contextlib.asynccontextmanager
async def _table_locked(
    app: Quart, backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[None]:
    if backend == "sqlite":
        path = make_url(app.config["DATABASE_URL"]).database
        conn = sqlite3.connect(str(path), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    postgres: PostgresRun = request.getfixturevalue("postgres_server")
    pg = await asyncpg.connect(postgres.dsn)
    try:
        async with pg.transaction():
            await pg.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await pg.close()


@POSTGRES_ONLY
async def test_serialization_failures_are_retried_not_answered_500(
    app_factory: Callable[..., Quart], backend: str, request: pytest.FixtureRequest
) -> None:
    """Under SERIALIZABLE, concurrent updates of one row fail with 40001; the stores rerun
    them, so every failed login is still counted and answered as on SQLite.
    """
    postgres: PostgresRun = request.getfixturevalue("postgres_server")
    database = f'"{postgres.name}"'
    await postgres.execute(
        f"ALTER DATABASE {database} SET default_transaction_isolation = 'serializable'"
    )
    try:
        app = app_factory(LOGIN_LOCKOUT_THRESHOLD=100)
        async with app.test_app():
            client = app.test_client()
            await register(client)
            wrong = {"username": "alice", "password": "not-her-password"}
            assert (await client.post("/login", json=wrong)).status_code == 401  # the rows exist
            retried = _Counter("quart_app.store.errors")
            # A transaction of our own updates alice's limit rows and holds them; logins sent
            # meanwhile wait on those rows, and our commit makes each fail with 40001.
            blocker = await asyncpg.connect(postgres.dsn, timeout=3)
            try:
                held = blocker.transaction(isolation="serializable")
                await held.start()
                await blocker.execute("UPDATE login_limits SET failures = failures")
                with retried:
                    logins = [
                        asyncio.ensure_future(client.post("/login", json=wrong)) for _ in range(3)
                    ]
                    await _until_a_statement_waits_on_a_lock(blocker)
                    await held.commit()
                    responses = await asyncio.gather(*logins)
            finally:
                await blocker.close()
            assert [r.status_code for r in responses] == [401] * 3
            assert await services(app).logins.failures("alice") == 4
            assert retried.count > 0  # the conflict did happen, and was retried
    finally:
        await postgres.execute(f"ALTER DATABASE {database} RESET default_transaction_isolation")


async def _until_a_statement_waits_on_a_lock(conn: asyncpg.Connection) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while not await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ):
        assert asyncio.get_running_loop().time() < deadline, "no login waited on the held rows"
        await asyncio.sleep(0.05)


class _Counter(logging.Handler):
    """Counts the retry notices of one logger while in a ``with`` block."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.logger = logging.getLogger(name)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.count += 1

    def __enter__(self) -> _Counter:
        self.level_before = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_before)


@POSTGRES_ONLY
async def test_pool_settings_reach_the_engine_and_exhaustion_answers_503(
    app_factory: Callable[..., Quart], backend: str
) -> None:
    app = app_factory(DATABASE_POOL_SIZE=1, DATABASE_MAX_OVERFLOW=0, DATABASE_POOL_TIMEOUT=0.2)
    async with app.test_app():
        engine = services(app).db.engine
        assert engine.pool.size() == 1  # type: ignore[attr-defined]
        async with engine.connect() as held:  # the only connection, held by someone else
            await held.exec_driver_sql("SELECT 1")
            response = await app.test_client().post(
                "/register", json={"username": "frank", "password": "pw-123456"}
            )
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
        response = await app.test_client().post(
            "/register", json={"username": "frank", "password": "pw-123456"}
        )
        assert response.status_code == 201


@POSTGRES_ONLY
async def test_rows_visible_late_are_read_whatever_the_hosts_clocks(
    app: Quart, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL hands out ids before commit, so a row can become visible after rows
    with higher ids; the re-read window catches it, counted by the database's clock.
    """
    store = SqlRevocationStore(services(app).db)
    # This host's clock is a minute slow: created_at must not come from it.
    skewed = types.SimpleNamespace(time=lambda: time.time() - 60)
    monkeypatch.setattr(revocations_module, "time", skewed)
    _, cursor = await store.changes_since(None)
    postgres: PostgresRun = request.getfixturevalue("postgres_server")
    other_host = await asyncpg.connect(postgres.dsn)
    try:
        late = other_host.transaction()
        await late.start()
        await other_host.execute(  # takes an id now, commits later
            "INSERT INTO revocations (key, kind, value, expires_at, created_at)"
            " VALUES ('jti:late', 'jti', 'late', $1, extract(epoch from clock_timestamp()))",
            time.time() + 60,
        )
        await store.add([_entry("jti", "early")])  # a higher id, committed first
        entries, cursor = await store.changes_since(cursor)
        assert [e.value for e in entries] == ["early"]
        await late.commit()
    finally:
        await other_host.close()
    entries, _ = await store.changes_since(cursor)
    assert "late" in [e.value for e in entries]
    conn = await asyncpg.connect(postgres.dsn)
    try:
        drift = await conn.fetchval(
            "SELECT max(abs(created_at - extract(epoch from clock_timestamp()))) FROM revocations"
        )
    finally:
        await conn.close()
    assert drift < 30  # by the database's clock, not the slow host's
