"""Which database errors are transient, the same way on SQLite and PostgreSQL.

A transient error says nothing about the request: the same request may succeed a moment
later. The stores retry the ones that guarantee a rollback (serialization failures and
deadlocks); whatever is left is answered 503 with ``Retry-After`` by ``quart_app.errors``,
on every engine alike. Unique violations are not transient: the stores turn them into
domain errors (``UsernameTaken`` -> 409, a used refresh token -> 401 revoked).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: PostgreSQL SQLSTATEs after which the transaction was rolled back and may simply rerun.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
#: SQLSTATE classes and codes that mean "busy or unavailable", not "bad request".
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})  # connection, resources, operator
TRANSIENT_SQLSTATES = RETRYABLE_SQLSTATES | {"55P03"}  # lock_not_available
#: SQLite's words for another connection holding the lock past the busy timeout.
SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


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
