"""Helpers shared by every test module: ``from tests.helpers.support import register, login``."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from quart import Quart, Response
from quart.typing import TestClientProtocol

#: The test client's type, under a name pytest does not try to collect.
Client = TestClientProtocol

#: Cheap argon2 parameters: the tests exercise behaviour, not hashing cost.
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
SECRET = "test-secret-" + "x" * 40


def unique_name(prefix: str = "alice") -> str:
    """A username no other test registers: for a server or store several tests share."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def make_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        "JWT_SECRET_KEY": SECRET,
        "REDIS_URL": None,
        # One pytest process serves hundreds of apps: freezing its heap at every start-up
        # would keep every test's garbage forever (tests/serving/test_worker_hooks.py turns it on).
        "GC_FREEZE": False,
        **FAST_HASHING,
    }
    config.update(overrides)
    return config


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


async def send(client: Client, path: str, method: str, **kwargs: Any) -> Response:
    """``client.open(path, method=method, ...)``, for a method chosen at run time.

    Quart's ``TestClientProtocol`` declares ``open``'s ``json`` without the default the
    client has, so a call without a JSON body does not type-check as written."""
    return await client.open(path, method=method, **kwargs)


@contextlib.asynccontextmanager
async def started(app: Quart) -> AsyncIterator[None]:
    """``app.test_app()`` (the start-up and shutdown hooks around the block) as a context
    an ``AsyncExitStack`` accepts: Quart declares its ``__aexit__`` arguments never None."""
    async with app.test_app():
        yield


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count_quart_requests(app: Quart) -> list[str]:
    """Record every request that reaches Quart's own request handling (not the fast path)."""
    seen: list[str] = []

    @app.before_request
    async def record() -> None:
        from quart import request

        seen.append(request.path)

    return seen
