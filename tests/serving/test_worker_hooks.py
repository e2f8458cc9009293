"""Start-up work for a serving worker: the heap frozen out of GC scans, the acceptor."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import pytest
from quart import Quart

from quart_app.serving import acceptor


# The process-wide GC freeze count, which other tests run in the same process may leave
# raised: run in the serial phase's own process.
@pytest.mark.serial
async def test_start_up_objects_are_frozen_while_serving(app_factory: Callable[..., Quart]) -> None:
    assert gc.get_freeze_count() == 0
    app = app_factory(GC_FREEZE=True)
    async with app.test_app():
        frozen = gc.get_freeze_count()
        # Everything alive at start-up: modules, the app, its extensions and caches.
        assert frozen > 10_000
        assert not any(obj is app for obj in gc.get_objects())  # frozen: out of every scan
        response = await app.test_client().get("/healthz")
        assert response.status_code == 200
    assert gc.get_freeze_count() == 0  # after_serving gives the objects back


# The process-wide GC freeze count, which other tests run in the same process may leave
# raised: run in the serial phase's own process.
@pytest.mark.serial
async def test_nothing_is_frozen_when_disabled(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(GC_FREEZE=False)
    async with app.test_app():
        assert gc.get_freeze_count() == 0
        assert any(obj is app for obj in gc.get_objects())  # scanned as usual


async def test_the_acceptor_is_left_alone_on_asyncio_loops(
    app_factory: Callable[..., Quart],
) -> None:
    """Tests run on asyncio's loop: the app must not touch asyncio.start_server there."""
    before = asyncio.start_server
    app = app_factory()
    async with app.test_app():
        assert asyncio.start_server is before
    assert before is not acceptor.start_server
