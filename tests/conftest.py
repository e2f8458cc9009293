"""Shared fixtures: an app per test on a fresh SQLite file, its test client, and helpers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import TestApp
from quart.typing import TestClientProtocol

from quart_app import create_app
from quart_app.serving.worker_hooks import install_worker_hooks
from tests.helpers.backend_servers import PostgresRun, RedisRun, run, start_postgres, start_redis
from tests.helpers.clock import FrozenClock

# Ctrl-C and SIGTERM stop the run at once and leave no process behind (tests/helpers/reaper.py).
from tests.helpers.reaper import pytest_configure, pytest_runtest_setup, pytest_sessionfinish  # noqa: F401
from tests.helpers.support import login, make_config, register

# The fault-injection fixtures (the run's PostgreSQL behind a fault proxy, a small tmpfs),
# and pytest-xdist's groups kept on one worker under pytest 9.2.
pytest_plugins = ["tests.helpers.fault_fixtures", "tests.helpers.xdist_loadgroup"]


class PatientTestApp(TestApp):
    """``app.test_app()`` waiting up to a minute for the app's start-up and shutdown, not
    Quart's 6 s: on a busy machine (tests side by side, other runs) a start-up that
    migrates a database can take longer, and a deadline is not what a test checks."""

    def __init__(self, app: Quart, startup_timeout: int = 60, shutdown_timeout: int = 60) -> None:
        super().__init__(app, startup_timeout, shutdown_timeout)


Quart.test_app_class = PatientTestApp


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Side by side (pytest-xdist), for the shortest run:

    * live tests that share a module-scoped fixture (a server started once for the module)
      run on one worker: each worker would otherwise start its own;
    * live tests come first (in their order): the workers then end on short tests instead
      of one of them ending on a minute-long live one."""
    for item in items:
        if item.get_closest_marker("live") is None or not isinstance(item, pytest.Function):
            continue
        fixtures = item._fixtureinfo.name2fixturedefs.values()
        if any(fixture.scope == "module" for defs in fixtures for fixture in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(key=lambda item: item.get_closest_marker("live") is None)


@pytest.fixture
def app_factory(tmp_path: Path, backend_config: dict[str, Any]) -> Callable[..., Quart]:
    """``app_factory(**overrides)`` builds an app on this test's own database, with what a
    server's worker adds to it (as ``quart_app.asgi`` does)."""

    def factory(**overrides: Any) -> Quart:
        config = make_config(tmp_path, **{**backend_config, **overrides})
        return install_worker_hooks(create_app(config))

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
def frozen_clock() -> FrozenClock:
    """A clock at the real time that moves only by ``advance``/``past_expiry``: give it to
    an app's JWT manager (``JWTManager(app, clock=frozen_clock)`` or
    ``get_manager(app).clock = frozen_clock``) to cross a lifetime without sleeping."""
    return FrozenClock()


@pytest.fixture
async def tokens(client: TestClientProtocol) -> dict[str, Any]:
    """A registered user "alice" and a fresh token pair from /login."""
    await register(client)
    return await login(client)


# Backends: "sqlite" is SQLite + in-process state, "postgres" is PostgreSQL +
# Redis (tests/helpers/backend_servers.py). A test that asks for ``backend`` runs on both, and its
# ``app``/``client``/``app_factory`` follow; every other test runs on TEST_BACKEND.
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresRun]:
    """This run's own PostgreSQL database, migrated to head; dropped at the end."""
    server = start_postgres()
    yield server
    server.drop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisRun]:
    """This run's own Redis key prefix; its keys are deleted at the end."""
    server = start_redis()
    yield server
    server.cleanup()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def scratch_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """An empty database on the backend (a file, or a PostgreSQL database of its own),
    for migration tests to build at a given revision."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    main: PostgresRun = request.getfixturevalue("postgres_server")
    scratch = PostgresRun(main.admin_url, name=f"{main.name}_scratch")
    scratch.create(upgrade=False)
    try:
        yield scratch.url
    finally:
        scratch.drop()


def _backend_config(name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if name == "sqlite":
        return {}
    if name != "postgres":
        raise pytest.UsageError(f"TEST_BACKEND must be one of {BACKENDS}, not {name!r}")
    postgres: PostgresRun = request.getfixturevalue("postgres_server")
    redis: RedisRun = request.getfixturevalue("redis_server")
    run(postgres.reset())
    return {
        "DATABASE_URL": postgres.url,
        "REDIS_URL": redis.url,
        "REDIS_PREFIX": redis.next_prefix(),
    }


@pytest.fixture
def backend_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that put this test's apps on its backend (PostgreSQL tables emptied first)."""
    if "backend" in request.fixturenames:
        name = str(request.getfixturevalue("backend"))
    else:
        name = os.environ.get("TEST_BACKEND", "sqlite")
    return _backend_config(name, request)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The same, once per module and backend: for a server the module's tests share (each
    test then works with users of its own; the tables are emptied once, at the start)."""
    return _backend_config(str(request.param), request)


# The HTTP/1.1 parser a live server runs with (HTTP1_PARSER, quart_app/serving/http1.py):
# a live test that asks for ``http1_parser`` runs on both; servers read it from the
# environment (tests/helpers/live.py copies it).
HTTP1_PARSERS = ("httptools", "h11")


@pytest.fixture(params=HTTP1_PARSERS)
def http1_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    parser = str(request.param)
    monkeypatch.setenv("HTTP1_PARSER", parser)
    return parser


@pytest.fixture(scope="module", params=HTTP1_PARSERS)
def http1_parser_module(request: pytest.FixtureRequest) -> str:
    """The same, for module-scoped servers: pass ``{"HTTP1_PARSER": ...}`` to the server."""
    return str(request.param)
