"""Engine and session lifecycle: opened in ``before_serving``, disposed in ``after_serving``."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ..middleware.inflight import mark_committed
from . import aiosqlite_stop
from .breaker import ProbingBreaker
from .errors import CircuitOpen, OperationTimeout, unavailable_reason
from .migrate import SchemaError, create_private, ensure_schema
from .models import Base

aiosqlite_stop.install()

log = logging.getLogger(__name__)

T = TypeVar("T")

#: SQLite faults after which a worker's connections are opened anew (a connection opened
#: while the file was read-only stays read-only).
REOPEN_AFTER = frozenset({"read-only", "I/O error", "unreachable"})
#: The longest wait between two attempts to reach a database that was down at start-up.
RECONNECT_MAX_DELAY = 5.0
#: SQLite maps its WAL index (``-shm``) in units of this many bytes.
SHM_REGION = 32768


def _bound(limit: float, timeout: float) -> float:
    """``limit`` capped by ``timeout`` (either may be 0: no limit)."""
    if timeout <= 0:
        return limit
    return timeout if limit <= 0 else min(limit, timeout)


class Database:
    """One async engine and its session factory, per app."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 10.0,
        pool_recycle: float = 1800.0,
        connect_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        sqlite_busy_timeout: float = 10.0,
        operation_timeout: float = 0.0,
        breaker_cooldown: float = 0.0,
        echo: bool = False,
    ) -> None:
        self.url = make_url(url)
        #: Seconds any one operation of a store may take (0: unbounded); see run_bounded.
        self.operation_timeout = operation_timeout
        #: The circuit breaker of this worker's database calls (off with a cool-down of 0).
        self.breaker = DatabaseBreaker(self, breaker_cooldown)
        # Every wait inside an operation ends by then too, so that an abandoned one
        # (run_bounded) lets go of its connection soon after instead of hanging on.
        pool_timeout = _bound(pool_timeout, operation_timeout)
        connect_timeout = _bound(connect_timeout, operation_timeout)
        statement_timeout = _bound(statement_timeout, operation_timeout)
        sqlite_busy_timeout = _bound(sqlite_busy_timeout, operation_timeout)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._options: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if not self.is_sqlite:
            self._options.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                # Below the idle timeouts of load balancers and PgBouncer in front of PG.
                pool_recycle=pool_recycle if pool_recycle > 0 else -1,
            )
        if self.url.get_driver_name() == "asyncpg":
            settings = {"application_name": "quart_app"}
            if statement_timeout > 0:
                # A stuck query fails (57014, answered 503) instead of holding a connection.
                settings["statement_timeout"] = str(int(statement_timeout * 1000))
            self._options["connect_args"] = {
                "timeout": connect_timeout,
                "server_settings": settings,
            }
            if operation_timeout > 0:
                # Client side: a statement the server never answers (hung host, lost
                # network) fails too, where statement_timeout cannot fire.
                self._options["connect_args"]["command_timeout"] = operation_timeout
        self._busy_timeout_ms = int(sqlite_busy_timeout * 1000)
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._connector: asyncio.Task[None] | None = None
        #: A SQLite fault was seen (or the file was not writable): connections opened
        #: meanwhile may be read-only, and are replaced once the file is writable.
        self._suspect = False
        #: True once the database answered and its schema is at head.
        self.ready = False
        #: The largest size of the WAL index file seen (what this worker may have mapped).
        self._shm_size = 0

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is not open (is the app serving?)")
        return self._engine

    def session(self) -> AsyncSession:
        if self._sessions is None:
            raise RuntimeError("the database is not open (is the app serving?)")
        self.check_shared_memory()
        return self._sessions()

    def check_shared_memory(self) -> None:
        """Raise OSError (answered 503) instead of letting SQLite touch a WAL index file
        that would kill this process with SIGBUS.

        In WAL mode every connection maps ``<database>-shm`` and writes to it on every
        transaction. Made immutable (``chattr +i``), a page the kernel has written back
        faults on the next write with SIGBUS; truncated, any access past its new end
        does. Either killed every worker that had it mapped, mid-request. Checked before
        every use of a connection (two or three system calls): while the file is not
        writable nothing calls SQLite, so the worker lives and answers 503, and the
        probes say so (:meth:`_check_writable`); once it is writable again the same
        connections go on. A truncated file gets its size back before SQLite touches it.
        Only an operation already running when the file changes can still fault.
        """
        path = self._shm_path
        if path is None:
            return
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            self._shm_size = 0
            return
        except OSError as error:
            raise OSError(errno.EIO, f"SQLite WAL index {path}: {error}") from None
        if not os.access(path, os.W_OK):
            raise OSError(errno.EROFS, f"SQLite WAL index not writable: {path}")
        if size < self._shm_size:
            # Past its end the mapping faults: give the file its size back. Zeros make
            # SQLite rebuild the index from the WAL on the next transaction, as it does
            # when a first connection finds no index.
            log.warning(
                "SQLite WAL index truncated (%d of %d bytes): restoring its size; SQLite"
                " rebuilds it from the WAL",
                size,
                self._shm_size,
            )
            try:
                os.truncate(path, self._shm_size)
            except OSError as error:
                raise OSError(errno.EIO, f"SQLite WAL index truncated: {error}") from None
        elif size >= SHM_REGION:
            self._shm_size = size

    @property
    def _shm_path(self) -> Path | None:
        database = self.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            return None
        if database.startswith("file:"):
            return None
        return Path(f"{database}-shm")

    async def open(self, create_tables: bool = True, *, in_background: bool = False) -> None:
        """Connect and check the schema is at the migrations' head.

        ``create_tables`` lets SQLite's first start create the schema (and stamp it);
        any other database behind head raises :class:`~.migrate.SchemaError` naming
        the upgrade command. With ``in_background`` (a serving worker), a database that
        cannot be reached does not fail the start-up: the worker serves (503 for what
        needs the database) and keeps trying with back-off; ``ready`` says when the
        schema has been checked.
        """
        if self._engine is not None:
            return
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            create_private(Path(self.url.database))
        engine = create_async_engine(self.url, **self._options)
        # A request that commits is not cut by a worker's drain deadline: it is answered
        # as it happened, never 503 for a write that was made (quart_app/serving/drain.py).
        event.listen(engine.sync_engine, "commit", _committing)
        if self.is_sqlite:
            busy = self._busy_timeout_ms

            @event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                # The busy timeout makes a second worker wait for the write lock instead
                # of failing at once. (WAL, which lets readers run beside the writer, is
                # a property of the file: ensure_schema sets it once, under a file lock.)
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout={busy}")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()
                # A connection opened while the file cannot be written is read-only for
                # good (SQLite says nothing): it must be replaced once the file is
                # writable, before the first write fails on it.
                try:
                    self._check_writable()
                except OSError:
                    self._suspect = True

        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            await ensure_schema(engine, create_sqlite=create_tables)
        except Exception as error:
            reason = unavailable_reason(error)
            if not in_background or reason is None:
                await self.close()
                raise
            log.warning(
                "database unavailable at start-up (%s: %s); serving 503 for what needs it"
                " and retrying with back-off",
                reason,
                error or type(error).__name__,
            )
            self._connector = asyncio.create_task(
                self._keep_connecting(create_tables), name="database-connect"
            )
            return
        self.ready = True

    async def _keep_connecting(self, create_tables: bool) -> None:
        """Check the schema until the database answers (back-off from 0.5 s to 5 s)."""
        delay, started, attempts = 0.5, time.monotonic(), 0
        schema_reported = False
        while True:
            await asyncio.sleep(delay)
            attempts += 1
            try:
                await ensure_schema(self.engine, create_sqlite=create_tables)
            except SchemaError as error:
                # Reachable but not migrated: say so (once) until someone upgrades it.
                if not schema_reported:
                    log.error("%s", error)
                    schema_reported = True
                delay = RECONNECT_MAX_DELAY
                continue
            except Exception as error:
                if unavailable_reason(error) is None:
                    log.exception("database check failed; retrying")
                delay = min(RECONNECT_MAX_DELAY, delay * 2)
                continue
            self.ready = True
            log.warning(
                "database reachable after %.1fs (%d attempts); serving",
                time.monotonic() - started,
                attempts,
            )
            return

    async def create_tables(self) -> None:
        """Create missing tables without migrations (scratch databases only)."""
        for attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(Base.metadata.create_all)
                return
            except DBAPIError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))

    async def close(self) -> None:
        await self.breaker.close()
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
            self._connector = None
        if self._engine is not None:
            try:
                self.check_shared_memory()
            except OSError as error:
                # Closing the last connection checkpoints through the WAL index: leave
                # them to the process's exit rather than fault on it.
                log.warning("SQLite connections left open: %s", error)
            else:
                await self._engine.dispose()
        self._engine = None
        self._sessions = None
        self.ready = False

    async def run_bounded(self, operation: Awaitable[T]) -> T:
        """Await ``operation`` for at most ``operation_timeout`` seconds.

        On time-out it raises :class:`~.errors.OperationTimeout` at once (answered 503)
        and cancels the operation in the background: SQLAlchemy then closes the
        connection it held, which on a hung server may take seconds more (its graceful
        close), seconds the client does not wait for.
        """
        try:
            if self._suspect:
                await self._reopen_if_writable()
            self.check_shared_memory()
        except OSError:
            if inspect.iscoroutine(operation):
                operation.close()  # never started: no "was never awaited" warning
            self._suspect = True
            raise
        try:
            return await self._run_bounded(operation)
        except Exception as error:
            if self.is_sqlite and unavailable_reason(error) in REOPEN_AFTER:
                self._suspect = True
            raise

    async def _reopen_if_writable(self) -> None:
        """Once the SQLite file can be written again, close this worker's connections so
        that the next ones are opened anew.

        SQLite opens a file it cannot write read-only, silently, and such a connection
        stays read-only after the file is writable again: without this, writes would
        answer 503 until the worker restarts.
        """
        try:
            self._check_writable()
        except OSError:
            return
        self._suspect = False
        if self._engine is not None:
            log.info("SQLite database writable again: reopening this worker's connections")
            await self._engine.dispose()

    async def _run_bounded(self, operation: Awaitable[T]) -> T:
        timeout = self.operation_timeout
        if timeout <= 0:
            return await operation
        if self.breaker.is_open:
            if inspect.iscoroutine(operation):
                operation.close()  # never started: no "was never awaited" warning
            raise CircuitOpen(
                f"the database did not answer within {timeout:g}s; not called until it"
                " answers a probe"
            )
        task = asyncio.ensure_future(operation)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_consume)
            self.breaker.failed()
            raise OperationTimeout(f"no answer from the database within {timeout:g}s")
        return task.result()

    async def ping(self) -> None:
        await self.run_bounded(self._ping())

    async def _ping(self) -> None:
        self.check_shared_memory()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        if self.is_sqlite:
            if self._suspect:
                await self._reopen_if_writable()
            try:
                self._check_writable()
            except OSError:
                self._suspect = True
                raise

    def _check_writable(self) -> None:
        """SQLite answers SELECT 1 from a file it cannot write: a probe must see that
        writes would fail (a read-only file, folder or mount)."""
        database = self.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        for path in (Path(database), Path(database).parent, Path(f"{database}-wal")):
            if path.exists() and not os.access(path, os.W_OK):
                raise OSError(errno.EROFS, f"SQLite database not writable: {path}")
        self.check_shared_memory()


class DatabaseBreaker(ProbingBreaker):
    """Open after an operation times out, probe in the background, close when it answers.

    Like Redis's (quart_app/store/redis_breaker.py): without it a hung database (a
    SIGSTOPped server, a blackholed network) costs every request the whole
    ``DATABASE_OPERATION_TIMEOUT`` for as long as it hangs. With it, what was in flight
    when the database stopped answering waits out that one timeout; from then on this
    worker answers 503 (``Retry-After``) at once, without calling the database, and a
    background task tries ``SELECT 1`` every ``cooldown`` seconds (each try bounded by
    the operation timeout). The first answer closes the breaker. No request waits for a
    probe. Errors that come fast (a refused connection, a full disk, a lock) do not open
    it: they cost nothing to find out again.
    """

    task_name = "database-breaker-probe"

    def __init__(self, db: Database, cooldown: float) -> None:
        super().__init__(cooldown)
        self.db = db

    def failed(self) -> None:
        if self.cooldown <= 0 or self.is_open:
            return
        self._open(
            log,
            "database did not answer within %gs; answering 503 without calling it and"
            " probing every %gs",
            self.db.operation_timeout,
            self.cooldown,
        )

    async def _probe_until_answered(self) -> None:
        await self._probe_loop(
            self.db._ping,
            self.db.operation_timeout,
            log,
            lambda error: log.debug("database probe failed: %s", error or type(error).__name__),
            "database answers again after %.1fs; calling it again",
        )

    async def close(self) -> None:
        await super().close()
        self.is_open = False


def _committing(_connection: Any) -> None:
    mark_committed()


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned operation's outcome, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


class HasDatabase(Protocol):
    db: Database


C = TypeVar("C", bound=type)


def bounded(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    """A store method whose every call (retries included) ends within
    ``DATABASE_OPERATION_TIMEOUT``: a hung database is a 503, never a hung request.
    """

    @functools.wraps(method)
    async def wrapper(self: HasDatabase, *args: Any, **kwargs: Any) -> T:
        return await self.db.run_bounded(method(self, *args, **kwargs))

    wrapper.__bounded__ = True  # type: ignore[attr-defined]
    return wrapper


def bounded_store(cls: C) -> C:
    """Apply :func:`bounded` to every public coroutine method of a store class."""
    for name, member in list(vars(cls).items()):
        if (
            not name.startswith("_")
            and inspect.iscoroutinefunction(member)
            and not getattr(member, "__bounded__", False)
        ):
            setattr(cls, name, bounded(member))
    return cls
