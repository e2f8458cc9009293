"""A SQLite connection force-closed while its graceful close runs is closed, not awaited
forever (SQLAlchemy's terminate() on a cancelled close does exactly this)."""

from __future__ import annotations

import asyncio

import aiosqlite

from quart_app.store import db  # noqa: F401  (importing the store installs the fix)


async def test_a_close_racing_a_stop_finishes() -> None:
    connection = await aiosqlite.connect(":memory:")
    await connection.execute("SELECT 1")
    closing = asyncio.ensure_future(connection.close())
    await asyncio.sleep(0)  # the graceful close has queued its call to the thread
    stopped = connection.stop()  # the force close SQLAlchemy falls back to
    async with asyncio.timeout(30):
        await closing
        if stopped is not None:
            await stopped


async def test_stop_twice_queues_one_sentinel() -> None:
    connection = await aiosqlite.connect(":memory:")
    first = connection.stop()
    assert first is not None
    assert connection.stop() is None
    async with asyncio.timeout(30):
        await first
    connection._thread.join(30)
    assert not connection._thread.is_alive()
