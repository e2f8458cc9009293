"""The claims fast path answers exactly as Quart would, and only when it is certain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from quart import Quart

from quart_app.jwt import get_manager
from tests.helpers.clock import FrozenClock
from tests.helpers.support import Client, bearer, count_quart_requests, login, register


async def started(app: Quart) -> tuple[Client, dict[str, Any]]:
    client = app.test_client()
    await register(client)
    return client, await login(client)


@pytest.fixture
async def fast_app(app_factory: Callable[..., Quart]) -> Any:
    app = app_factory()
    async with app.test_app():
        yield app


async def test_cached_token_is_answered_below_quart_with_the_same_response(
    fast_app: Quart,
) -> None:
    client, pair = await started(fast_app)
    seen = count_quart_requests(fast_app)
    headers = {**bearer(pair["access_token"]), "X-Request-ID": "req-123"}
    first = await client.get("/protected", headers=headers)  # verifies, fills the cache
    second = await client.get("/protected", headers=headers)  # the fast path
    assert seen == ["/protected"]
    assert second.status_code == first.status_code == 200
    assert await second.get_data() == await first.get_data()
    assert await second.get_json() == {"logged_in_as": "alice"}
    for name in ("Content-Type", "X-Content-Type-Options", "X-Request-ID", "Content-Length"):
        assert second.headers[name] == first.headers[name], name
    assert second.headers["X-Request-ID"] == "req-123"


async def test_fast_path_can_be_turned_off(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(FAST_PATH=False)
    async with app.test_app():
        client, pair = await started(app)
        seen = count_quart_requests(app)
        for _ in range(3):
            response = await client.get("/protected", headers=bearer(pair["access_token"]))
            assert response.status_code == 200
        assert seen == ["/protected"] * 3


async def test_revoked_cached_token_gets_quarts_answer(fast_app: Quart) -> None:
    client, pair = await started(fast_app)
    headers = bearer(pair["access_token"])
    assert (await client.get("/protected", headers=headers)).status_code == 200
    assert (await client.post("/logout", headers=headers)).status_code == 200
    response = await client.get("/protected", headers=headers)
    assert response.status_code == 401
    assert await response.get_json() == {"msg": "Token has been revoked"}


async def test_expired_cached_token_gets_quarts_answer(
    app_factory: Callable[..., Quart], frozen_clock: FrozenClock
) -> None:
    app = app_factory(JWT_ACCESS_TOKEN_EXPIRES=1)
    get_manager(app).clock = frozen_clock
    async with app.test_app():
        client, pair = await started(app)
        headers = bearer(pair["access_token"])
        assert (await client.get("/protected", headers=headers)).status_code == 200
        frozen_clock.advance(2.1)
        response = await client.get("/protected", headers=headers)
        assert response.status_code == 401
        assert await response.get_json() == {"msg": "Token has expired"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a.b.c"},
        {},
    ],
)
async def test_anything_uncertain_goes_to_quart(fast_app: Quart, headers: dict[str, str]) -> None:
    client, _ = await started(fast_app)
    seen = count_quart_requests(fast_app)
    response = await client.get("/protected", headers=headers)
    assert response.status_code in (401, 422)
    assert seen == ["/protected"]


async def test_refresh_token_is_never_answered_by_the_fast_path(fast_app: Quart) -> None:
    client, pair = await started(fast_app)
    headers = bearer(pair["refresh_token"])
    # The refresh token is in the cache once /token/refresh has verified it.
    await client.post("/token/refresh", headers=headers)
    response = await client.get("/protected", headers=headers)
    assert response.status_code == 422
    assert await response.get_json() == {"msg": "Only non-refresh tokens are allowed"}


async def test_a_user_lookup_loader_turns_the_fast_path_off(
    app_factory: Callable[..., Quart],
) -> None:
    app = app_factory()
    looked_up: list[str] = []

    @get_manager(app).user_lookup_loader
    async def load(header: dict[str, Any], claims: dict[str, Any]) -> str:
        looked_up.append(claims["sub"])
        return "someone"

    async with app.test_app():
        client, pair = await started(app)
        for _ in range(3):
            response = await client.get("/protected", headers=bearer(pair["access_token"]))
            assert response.status_code == 200
        assert looked_up == ["1", "1", "1"]


async def test_fast_path_logs_and_counts_like_quart(
    app_factory: Callable[..., Quart], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(METRICS_ENABLED=True, METRICS_PUBLIC=True, ACCESS_LOG=True)
    async with app.test_app():
        client, pair = await started(app)
        headers = bearer(pair["access_token"])
        with caplog.at_level(logging.INFO, logger="quart_app.access"):
            await client.get("/protected", headers=headers)
            await client.get("/protected", headers=headers)
        lines = [
            r
            for r in caplog.records
            if r.name == "quart_app.access" and r.fields["path"] == "/protected"  # type: ignore[attr-defined]
        ]
        assert len(lines) == 2
        assert [r.fields["status"] for r in lines] == [200, 200]  # type: ignore[attr-defined]
        assert [r.fields["user_id"] for r in lines] == ["1", "1"]  # type: ignore[attr-defined]
        clients = {r.fields["client"] for r in lines}  # type: ignore[attr-defined]
        assert len(clients) == 1
        assert pair["access_token"] not in caplog.text
        metrics = await (await client.get("/metrics")).get_data(as_text=True)
        protected = [
            line
            for line in metrics.splitlines()
            if line.startswith("quart_app_http_requests_total") and '"/protected"' in line
        ]
        assert protected and protected[0].endswith(" 2.0"), protected
