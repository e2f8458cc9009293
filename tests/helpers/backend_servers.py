"""The real servers behind the ``backend`` fixture: PostgreSQL and Redis for one test run.

Each run gets its own PostgreSQL database (``qa_<pid>_<hex>``, migrated to head once,
dropped at the end) and its own Redis namespace (``qa:<hex>:``, every key under it
deleted at the end); each test then gets emptied tables and its own sub-prefix. Where
the servers are: ``TEST_POSTGRES_URL`` (an async URL of a database we may connect to in
order to create ours) and ``TEST_REDIS_URL``. Under ``CI=true`` an unreachable server
fails the tests that need it; elsewhere they are skipped, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from quart_app.serving.worker import alive
from quart_app.store import migrate

T = TypeVar("T")

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(what: str, error: BaseException) -> None:
    """Fail under CI, skip elsewhere: a server the test needs does not answer."""
    message = f"{what} unreachable: {type(error).__name__}: {error}"
    if on_ci():
        pytest.fail(f"{message} (mandatory under CI=true)", pytrace=False)
    pytest.skip(message)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a private loop in a thread (no test loop is touched)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class PostgresRun:
    """This run's own database."""

    admin_url: str
    name: str = field(default_factory=lambda: f"qa_{os.getpid()}_{secrets.token_hex(4)}")

    @property
    def url(self) -> str:
        return make_url(self.admin_url).set(database=self.name).render_as_string(False)

    @property
    def dsn(self) -> str:
        return _asyncpg_dsn(self.url)

    def create(self, *, upgrade: bool = True) -> None:
        async def create() -> None:
            conn = await asyncpg.connect(_asyncpg_dsn(self.admin_url), timeout=3)
            try:
                await conn.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                await conn.close()

        run(create())
        if upgrade:
            run(asyncio.to_thread(migrate.upgrade, self.url))

    def drop(self) -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(_asyncpg_dsn(self.admin_url), timeout=3)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await conn.close()

        run(drop())

    async def reset(self) -> None:
        """Empty every table, ids from 1 again (the schema stays at head)."""
        conn = await asyncpg.connect(self.dsn, timeout=3)
        try:
            tables = await conn.fetch(
                "SELECT quote_ident(tablename) FROM pg_tables"
                " WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
            )
            if tables:
                names = ", ".join(row[0] for row in tables)
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@dataclass
class RedisRun:
    """This run's own key prefix (and so its own revocation channel) in a shared Redis."""

    url: str
    prefix: str = field(default_factory=lambda: f"qa:{secrets.token_hex(4)}:")
    tests: int = 0

    def ping(self) -> None:
        async def ping() -> None:
            client = Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
            try:
                await client.ping()
            finally:
                await client.aclose()

        run(ping())

    def next_prefix(self) -> str:
        self.tests += 1
        return f"{self.prefix}{self.tests}:"

    def cleanup(self) -> int:
        async def cleanup() -> int:
            client = Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
            try:
                keys = [key async for key in client.scan_iter(match=f"{self.prefix}*")]
                if keys:
                    await client.delete(*keys)
                return len(keys)
            finally:
                await client.aclose()

        return run(cleanup())


async def sweep_stale_databases(admin_url: str) -> list[str]:
    """Drop ``qa_<pid>_*`` databases left by runs that were killed before cleaning up:
    their process is gone from this machine and nobody is connected to them.
    """
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=3)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database d WHERE datname ~ '^qa_[0-9]+_[0-9a-f]+'"
            " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
        )
        dropped = []
        for (name,) in rows:
            if not alive(int(name.split("_")[1])):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
        return dropped
    finally:
        await conn.close()


def start_postgres() -> PostgresRun:
    server = PostgresRun(POSTGRES_URL)
    try:
        run(sweep_stale_databases(POSTGRES_URL))
        server.create()
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        unavailable(f"PostgreSQL at {make_url(POSTGRES_URL).render_as_string()}", error)
    return server


def start_redis() -> RedisRun:
    server = RedisRun(REDIS_URL)
    try:
        server.ping()
    except Exception as error:
        unavailable(f"Redis at {REDIS_URL}", error)
    return server


class PrivateRedis:
    """A redis-server of our own on a free port, to stop and restart without disturbing
    the shared one. Unavailable (skip, or fail under CI) without the redis-server binary.
    """

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server binary", FileNotFoundError("not on PATH"))
        self.binary = str(binary)
        self.workdir = workdir
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


async def kill_clients(url: str, name_prefix: str) -> int:
    """``CLIENT KILL`` every connection whose name starts with ``name_prefix`` (ours only)."""
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        killed = 0
        for info in await client.client_list():
            if str(info.get("name", "")).startswith(name_prefix):
                # redis-py leaves execute_command unannotated
                reply = await client.execute_command(  # type: ignore[no-untyped-call]
                    "CLIENT", "KILL", "ID", info["id"]
                )
                killed += int(reply)
        return killed
    finally:
        await client.aclose()
