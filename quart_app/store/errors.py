"""Which database errors mean "unavailable", the same way on SQLite and PostgreSQL.

Such an error says nothing about the request: the same request may succeed later. The
stores retry the ones that guarantee a rollback (serialization failures and deadlocks);
whatever is left -- busy or locked, unreachable, timed out, disk full, I/O error,
read-only file -- is classified here by :func:`unavailable_reason` and answered 503 with
``Retry-After`` by ``quart_app.errors``, on every engine and driver alike. Unique
violations are not transient: the stores turn them into domain errors (``UsernameTaken``
-> 409, a used refresh token -> 401 revoked).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: PostgreSQL SQLSTATEs after which the transaction was rolled back and may simply rerun.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
#: SQLSTATE classes and codes that mean "busy or unavailable", not "bad request".
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})  # connection, resources, operator
TRANSIENT_SQLSTATES = RETRYABLE_SQLSTATES | {"55P03"}  # lock_not_available
#: Contention rather than an outage: a lock wait ran past statement_timeout (57014).
BUSY_SQLSTATES = TRANSIENT_SQLSTATES | {"57014"}
#: SQLite's words for another connection holding the lock past the busy timeout.
SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
#: SQLite's primary result codes (``sqlite3.Error.sqlite_errorcode & 0xFF``) for faults of
#: the file or the disk under it, and the words of each when no code is attached.
SQLITE_FAULTS = {
    5: "busy",  # SQLITE_BUSY
    6: "busy",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "I/O error",  # SQLITE_IOERR
    13: "disk full",  # SQLITE_FULL
    14: "unreachable",  # SQLITE_CANTOPEN
}
SQLITE_FAULT_TEXTS = {
    "database or disk is full": "disk full",
    "disk i/o error": "I/O error",
    "readonly database": "read-only",
    "unable to open database file": "unreachable",
}


class OperationTimeout(TimeoutError):
    """A database operation did not finish within ``DATABASE_OPERATION_TIMEOUT``."""


class CircuitOpen(OperationTimeout):
    """Not sent: an operation timed out recently and the database has not answered a
    probe since (quart_app/store/db.py, ``DatabaseBreaker``).
    """


def sqlstate(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(code) if code else None


def is_retryable(error: BaseException) -> bool:
    """The database rolled the transaction back to resolve a conflict: run it again."""
    return isinstance(error, DBAPIError) and sqlstate(error) in RETRYABLE_SQLSTATES


def is_transient(error: BaseException) -> bool:
    """The database is busy, locked or unreachable; the request may succeed later."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    code = sqlstate(error)
    if code is not None:
        return code in TRANSIENT_SQLSTATES or code[:2] in TRANSIENT_SQLSTATE_CLASSES
    return any(text in str(error.orig).lower() for text in SQLITE_BUSY)


def unavailable_reason(error: BaseException) -> str | None:
    """Why the database cannot serve now ("timeout", "disk full", ...), or None when
    ``error`` is not a fault of the database (a bug, a constraint, a bad statement).

    Covers what SQLAlchemy wraps (``DBAPIError``: SQLSTATEs, SQLite result codes, an
    invalidated connection) and what drivers raise unwrapped: asyncpg's and asyncio's
    ``TimeoutError``, SQLAlchemy's pool ``TimeoutError``, and the OS errors of a refused
    or reset connection.
    """
    if isinstance(error, PoolTimeout):
        return "busy"  # every pooled connection in use: load, gone in moments
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, OSError):  # refused, reset, unreachable; ENOSPC, EIO, EROFS
        return "unreachable" if isinstance(error, ConnectionError) else "I/O error"
    if not isinstance(error, DBAPIError):
        return None
    orig = error.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in SQLITE_FAULTS:
        return SQLITE_FAULTS[code & 0xFF]
    text = str(orig).lower()
    for words, reason in SQLITE_FAULT_TEXTS.items():
        if words in text:
            return reason
    if is_transient(error):
        code = sqlstate(error)
        if code in BUSY_SQLSTATES or any(words in text for words in SQLITE_BUSY):
            return "busy"
        return "unreachable" if code is None or code.startswith("08") else "unavailable"
    if isinstance(orig, TimeoutError | OSError):  # a driver's own, wrapped
        return unavailable_reason(orig)
    return None


def retry_conflicts(
    attempts: int = 5, base_delay: float = 0.01
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Rerun a store method whose transaction lost a serialization conflict or deadlock."""

    def decorate(
        method: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(method)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            for attempt in range(1, attempts + 1):
                try:
                    return await method(*args, **kwargs)
                except DBAPIError as error:
                    if attempt == attempts or not is_retryable(error):
                        raise
                    log.info("%s: %s; retrying", method.__qualname__, sqlstate(error))
                    await asyncio.sleep(base_delay * attempt * (1 + random.random()))  # noqa: S311
            raise AssertionError("unreachable")

        return wrapper

    return decorate
