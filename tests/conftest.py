"""Shared fixtures: an app per test on a fresh SQLite file, its test client, and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol
from support import login, make_config, register

from quart_app import create_app


@pytest.fixture
def app_factory(tmp_path: Path) -> Callable[..., Quart]:
    """``app_factory(**overrides)`` builds an app on this test's own database."""

    def factory(**overrides: Any) -> Quart:
        return create_app(make_config(tmp_path, **overrides))

    return factory


@pytest.fixture
async def app(app_factory: Callable[..., Quart]) -> AsyncIterator[Quart]:
    app = app_factory()
    async with app.test_app():
        yield app


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


@pytest.fixture
async def tokens(client: TestClientProtocol) -> dict[str, Any]:
    """A registered user "alice" and a fresh token pair from /login."""
    await register(client)
    return await login(client)
