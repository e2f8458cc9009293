"""Safe failure: generic 500s with the trace in the log only, no secrets in logs, headers."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from quart import Quart

from tests.helpers.support import SECRET, Client, bearer, login, register

BOOM = "kaboom: internal detail the client must not see"


@pytest.fixture
async def fragile(app_factory: Callable[..., Quart]) -> AsyncIterator[Quart]:
    """The app with one extra route that fails the way a bug would."""
    app = app_factory()

    async def boom() -> Any:
        raise RuntimeError(BOOM)

    app.add_url_rule("/boom", "boom", boom, methods=["GET"])
    async with app.test_app():
        yield app


async def test_unhandled_exception_is_a_generic_500(
    fragile: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    response = await fragile.test_client().get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    body = await response.get_data(as_text=True)
    assert await response.get_json() == {"msg": "Internal server error"}
    assert "Traceback" not in body and BOOM not in body
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # ... while the server log has the whole story.
    traced = [r for r in caplog.records if r.exc_info and BOOM in str(r.exc_info[1])]
    assert traced, "the trace of a 500 must be logged"
    assert any("Traceback" in (r.exc_text or "") or r.exc_info for r in traced)


async def test_a_500_from_a_protected_route_keeps_the_trace_out(
    fragile: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    """The same through HTTP methods the route lacks, HEAD, and an unknown path."""
    client = fragile.test_client()
    assert (await client.post("/boom")).status_code == 405
    assert await (await client.post("/boom")).get_json() == {"msg": "Method not allowed"}
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert await missing.get_json() == {"msg": "Not found"}


# --- security headers ------------------------------------------------------------------


async def test_nosniff_on_every_kind_of_response(
    fragile: Quart, app_factory: Callable[..., Quart]
) -> None:
    client = fragile.test_client()
    await register(client)
    pair = await login(client)
    responses = {
        "200": await client.get("/healthz"),
        "200-protected": await client.get("/protected", headers=bearer(pair["access_token"])),
        "200-protected-again": await client.get("/protected", headers=bearer(pair["access_token"])),
        "201": await client.post("/register", json={"username": "bob", "password": "p" * 12}),
        "200-token": await client.post("/login", json={"username": "bob", "password": "p" * 12}),
        "400": await client.post("/register", json={"username": 1}),
        "401": await client.get("/protected"),
        "404": await client.get("/nowhere"),
        "405": await client.delete("/protected"),
        "409": await client.post("/register", json={"username": "BOB", "password": "p" * 12}),
        "413": await client.post(
            "/register", data=b"x" * 70_000, headers={"Content-Length": "70000"}
        ),
        "422": await client.get("/protected", headers=bearer("a.b")),
        "500": await client.get("/boom"),
        "openapi": await client.get("/openapi.json"),
        "docs": await client.get("/docs"),
        "preflight": await client.options("/login"),
        "refresh": await client.post("/token/refresh", headers=bearer(pair["refresh_token"])),
    }
    for name, response in responses.items():
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
    assert responses["413"].status_code == 413
    # The second /protected may be answered from the verified-token cache: same headers.
    assert responses["200-protected-again"].status_code == 200


async def test_token_responses_are_not_stored(tokens: dict[str, Any], client: Client) -> None:
    refreshed = await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    logged_in = await client.post("/login", json={"username": "alice", "password": "correct-horse"})
    for response in (refreshed, logged_in):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"


# --- no secrets in the logs ------------------------------------------------------------


async def test_passwords_tokens_and_secrets_never_reach_the_logs(
    app_factory: Callable[..., Quart], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = app_factory(ACCESS_LOG=True)
    password, wrong, new_password = "first-Secret-pw1", "wrong-Secret-pw2", "third-Secret-pw3"
    secrets: set[str] = {password, wrong, new_password, SECRET}
    async with app.test_app():
        client = app.test_client()
        await register(client, "carol", password)
        failed = await client.post("/login", json={"username": "carol", "password": wrong})
        assert failed.status_code == 401
        basic = base64.b64encode(f"carol:{password}".encode()).decode()
        secrets.add(basic)
        via_basic = await client.post("/login", headers={"Authorization": f"Basic {basic}"})
        assert via_basic.status_code == 200
        pair = await login(client, "carol", password)
        refreshed = await (
            await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
        ).get_json()
        # Replaying the used refresh token, a token in the query string, a tampered one.
        await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
        await client.get(f"/protected?jwt={refreshed['access_token']}")
        await client.get("/protected", headers=bearer(refreshed["access_token"][:-3] + "AAA"))
        fresh = await login(client, "carol", password)
        changed = await client.put(
            "/me/password",
            headers=bearer(fresh["access_token"]),
            json={"old_password": password, "new_password": new_password},
        )
        assert changed.status_code == 200
        await client.post("/logout", headers=bearer(refreshed["access_token"]))
        # A body that fails validation echoes nothing of the password either.
        await client.post("/register", json={"username": "carol", "password": wrong, "x": 1})
        await client.post("/login", data=f'{{"username": "carol", "password": "{wrong}"')
        for token in (*pair.values(), *refreshed.values(), *fresh.values()):
            if isinstance(token, str) and token.count(".") == 2:
                secrets.add(token)
                secrets.add(token.rsplit(".", 1)[1])  # the signature alone
    assert caplog.records, "nothing was logged: the check would be vacuous"
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} {record.__dict__}"
        for record in caplog.records
    )
    for secret in secrets:
        assert secret not in logged


async def test_validation_errors_do_not_echo_the_password(client: Client) -> None:
    password = "p" * 2000  # too long: the 400 names the field, not its value
    response = await client.post("/register", json={"username": "dave", "password": password})
    assert response.status_code == 400
    body = await response.get_data(as_text=True)
    assert "password" in body and "pppppppp" not in body
