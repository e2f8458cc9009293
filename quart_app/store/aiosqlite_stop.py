"""One fix to aiosqlite: a connection stopped twice is closed, not awaited forever.

aiosqlite (0.22) ends a connection's thread by queueing a stop sentinel; ``stop()``
queues one more each time it is called, and ``close()`` calls it last and awaits it.
SQLAlchemy's ``terminate()`` does both when the graceful close it shields is cancelled
(a request's time bound, a worker stopping): it calls ``stop()``, then the shielded
``close()`` runs on and queues a second sentinel behind the first. The thread ends at
the first, so the second's future is never resolved and that close, and any event loop
waiting for its tasks at shutdown, waits forever.

The fix: ``stop()`` on a connection that is already stopping queues nothing and
returns nothing (``close()`` then has nothing left to wait for: the first sentinel ends
the thread after every queued call). Applied once, when the store is imported.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import aiosqlite

_FIXED = "_stops_once"


def install() -> None:
    """Make ``aiosqlite.Connection.stop`` idempotent (does nothing the second time)."""
    stop: Callable[[aiosqlite.Connection], asyncio.Future[Any] | None]
    stop = aiosqlite.Connection.stop
    if getattr(stop, _FIXED, False):
        return

    @functools.wraps(stop)
    def stop_once(self: aiosqlite.Connection) -> asyncio.Future[Any] | None:
        if not self._running:  # already stopping: its sentinel ends the thread
            return None
        return stop(self)

    setattr(stop_once, _FIXED, True)
    aiosqlite.Connection.stop = stop_once  # type: ignore[method-assign]
