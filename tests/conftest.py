"""Shared fixtures: an app per test on a fresh SQLite file, its test client, and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol

from quart_app import create_app

#: Cheap argon2 parameters: the tests exercise behaviour, not hashing cost.
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
SECRET = "test-secret-" + "x" * 40


def make_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "JWT_SECRET_KEY": SECRET,
        "REDIS_URL": None,
        **FAST_HASHING,
    }
    config.update(overrides)
    return config


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


async def register(
    client: TestClientProtocol, username: str = "alice", password: str = "correct-horse"
) -> dict[str, Any]:
    response = await client.post("/register", json={"username": username, "password": password})
    assert response.status_code == 201, await response.get_data(as_text=True)
    return await response.get_json()  # type: ignore[no-any-return]


async def login(
    client: TestClientProtocol, username: str = "alice", password: str = "correct-horse"
) -> dict[str, Any]:
    response = await client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tokens(client: TestClientProtocol) -> dict[str, Any]:
    """A registered user "alice" and a fresh token pair from /login."""
    await register(client)
    return await login(client)
