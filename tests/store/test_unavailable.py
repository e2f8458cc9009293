"""Which failures are "the database cannot serve now" (503 + Retry-After), in one place."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from quart import Quart
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from quart_app.services import services
from quart_app.store.db import Database
from quart_app.store.errors import OperationTimeout, unavailable_reason
from tests.helpers.support import Client, bearer, login, register


def wrapped(orig: BaseException, cls: type[DBAPIError] = OperationalError) -> DBAPIError:
    return cls("INSERT ...", {}, orig)


def sqlite_error(code: int, text: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(text)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError(), "timeout"),  # asyncio's and asyncpg's (command_timeout)
        (TimeoutError(), "timeout"),
        (PoolTimeout("QueuePool limit reached"), "busy"),
        (OperationTimeout("no answer"), "timeout"),
        (ConnectionRefusedError(111, "refused"), "unreachable"),
        (ConnectionResetError(104, "reset"), "unreachable"),
        (OSError(28, "No space left on device"), "I/O error"),
        (wrapped(sqlite_error(13, "database or disk is full")), "disk full"),
        (wrapped(sqlite_error(778, "disk I/O error")), "I/O error"),  # SQLITE_IOERR_WRITE
        (wrapped(sqlite_error(1032, "attempt to write a readonly database")), "read-only"),
        (wrapped(sqlite_error(14, "unable to open database file")), "unreachable"),
        (wrapped(sqlite_error(5, "database is locked")), "busy"),
        # No result code attached (older drivers): the words decide.
        (wrapped(sqlite3.OperationalError("database or disk is full")), "disk full"),
        (wrapped(sqlite3.OperationalError("disk I/O error")), "I/O error"),
        (wrapped(sqlite3.OperationalError("database is locked")), "busy"),
        (wrapped(asyncpg.exceptions.CannotConnectNowError("starting up")), "unavailable"),
        (wrapped(asyncpg.exceptions.TooManyConnectionsError("too many")), "unavailable"),
        (wrapped(asyncpg.exceptions.QueryCanceledError("statement timeout")), "busy"),
        (wrapped(asyncpg.exceptions.LockNotAvailableError("lock")), "busy"),
        (wrapped(asyncpg.exceptions.AdminShutdownError("shutting down")), "unavailable"),
        (wrapped(ConnectionResetError(104, "reset")), "unreachable"),
    ],
)
def test_every_fault_of_the_database_is_unavailable(error: BaseException, reason: str) -> None:
    assert unavailable_reason(error) == reason


@pytest.mark.parametrize(
    "error",
    [
        wrapped(sqlite3.IntegrityError("UNIQUE constraint failed"), IntegrityError),
        wrapped(sqlite3.OperationalError("no such table: users")),
        wrapped(asyncpg.exceptions.UndefinedColumnError("no column"), ProgrammingError),
        RuntimeError("a bug"),
        ValueError("bad"),
    ],
)
def test_bugs_and_constraints_are_not_unavailability(error: BaseException) -> None:
    assert unavailable_reason(error) is None


async def test_a_slow_operation_ends_at_the_bound_and_is_abandoned() -> None:
    db = Database("sqlite+aiosqlite:///:memory:", operation_timeout=0.05)
    finished = asyncio.Event()
    cancelled = asyncio.Event()

    async def hung() -> None:
        try:
            await finished.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(OperationTimeout):
        await db.run_bounded(hung())
    await asyncio.wait_for(cancelled.wait(), 10)  # the abandoned operation was cancelled
    assert await db.run_bounded(asyncio.sleep(0, "done")) == "done"


@pytest.mark.parametrize(
    "error",
    [
        OperationTimeout("no answer from the database within 5s"),
        wrapped(sqlite_error(13, "database or disk is full")),
        wrapped(sqlite_error(10, "disk I/O error")),
        wrapped(sqlite_error(8, "attempt to write a readonly database")),
        ConnectionRefusedError(111, "Connect call failed"),
    ],
)
async def test_the_answer_is_503_with_retry_after(
    app_factory: Callable[..., Quart], error: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory()
    async with app.test_app():
        client: Client = app.test_client()
        await register(client)

        async def failing(*_: object, **__: object) -> None:
            raise error

        monkeypatch.setattr(services(app).users, "by_key", failing)
        response = await client.post(
            "/login", json={"username": "alice", "password": "correct-horse"}
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert await response.get_json() == {"msg": "Service temporarily unavailable"}


async def test_a_full_sqlite_database_answers_503_and_recovers(
    app_factory: Callable[..., Quart],
) -> None:
    """SQLite's own "database or disk is full", made with a page limit on the file."""
    app = app_factory()
    async with app.test_app():
        client = app.test_client()
        await register(client, "first")
        engine = services(app).db.engine
        async with engine.connect() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()

        def cap(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection.cursor().execute(f"PRAGMA max_page_count={pages}")

        event.listen(engine.sync_engine, "connect", cap)
        await engine.dispose()  # new connections, with the cap
        statuses = []
        for n in range(40):
            response = await client.post(
                "/register", json={"username": f"user{n:03d}", "password": "p" * 400}
            )
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert int(response.headers["Retry-After"]) >= 1
        assert set(statuses) <= {201, 503} and 503 in statuses, statuses

        event.remove(engine.sync_engine, "connect", cap)
        await engine.dispose()
        response = await client.post("/register", json={"username": "after", "password": "p" * 9})
        assert response.status_code == 201


async def test_a_read_only_sqlite_database_answers_503_and_recovers(
    app_factory: Callable[..., Quart],
) -> None:
    """SQLite's own "attempt to write a readonly database" (query_only connections), for
    a file that turns read-only while serving. (At start-up, a database directory that
    cannot be written stops the service with one line naming DATABASE_URL.)
    """
    app = app_factory()
    async with app.test_app():
        client = app.test_client()
        await register(client, "first")
        pair = await login(client, "first")
        engine = services(app).db.engine

        def read_only(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection.cursor().execute("PRAGMA query_only=ON")

        event.listen(engine.sync_engine, "connect", read_only)
        await engine.dispose()
        for name in ("second", "third"):
            response = await client.post("/register", json={"username": name, "password": "p" * 9})
            assert response.status_code == 503
            assert int(response.headers["Retry-After"]) >= 1
        logout = await client.post("/logout", headers=bearer(pair["access_token"]))
        assert logout.status_code == 503  # not recorded: the token still works
        protected = await client.get("/protected", headers=bearer(pair["access_token"]))
        assert protected.status_code == 200

        event.remove(engine.sync_engine, "connect", read_only)
        await engine.dispose()
        assert (
            await client.post("/logout", headers=bearer(pair["access_token"]))
        ).status_code == 200
        response = await client.post("/register", json={"username": "second", "password": "p" * 9})
        assert response.status_code == 201
