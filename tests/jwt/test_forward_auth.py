"""/auth/verify: forward auth for gateways, every method, 401 with RFC 6750 challenges."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from quart import Quart

from quart_app.jwt import get_manager
from quart_app.jwt.forward_auth import SubjectHeaders, challenge
from tests.helpers.clock import FrozenClock
from tests.helpers.support import Client, bearer, count_quart_requests, login, register, send

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
BEARER_EXPECTED = "Expected 'Authorization: Bearer <JWT>'"


async def started(app: Quart) -> tuple[Client, dict[str, Any]]:
    client = app.test_client()
    await register(client)
    return client, await login(client)


@pytest.mark.parametrize("method", METHODS)
async def test_every_method_gets_200_with_the_subject_headers(app: Quart, method: str) -> None:
    client, pair = await started(app)
    for _ in range(2):  # the first through Quart, the second on the fast path
        response = await send(client, "/auth/verify", method, headers=bearer(pair["access_token"]))
        assert response.status_code == 200
        assert await response.get_data() == b""
        assert response.headers["X-Auth-Subject"] == "1"
        assert response.headers["X-Auth-Username"] == "alice"
        assert len(response.headers["X-Auth-Token-Id"]) == 36
        assert int(response.headers["X-Auth-Expires"]) > 0


async def test_paths_below_are_answered_alike_for_envoy(app: Quart) -> None:
    client, pair = await started(app)
    seen = count_quart_requests(app)
    for _ in range(2):
        response = await client.put(
            "/auth/verify/api/v1/items", headers=bearer(pair["access_token"])
        )
        assert response.status_code == 200
        assert response.headers["X-Auth-Subject"] == "1"
    assert seen == ["/auth/verify/api/v1/items"]
    denied = await client.get("/auth/verify/api")
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"] == "Bearer"
    # Routes without subpaths stay exact.
    assert (
        await client.get("/protected/x", headers=bearer(pair["access_token"]))
    ).status_code == 404


async def test_seen_tokens_are_answered_below_quart_with_the_same_headers(app: Quart) -> None:
    client, pair = await started(app)
    seen = count_quart_requests(app)
    headers = {**bearer(pair["access_token"]), "X-Request-ID": "gw-1"}
    first = await client.get("/auth/verify", headers=headers)
    second = await client.post("/auth/verify", headers=headers)
    assert seen == ["/auth/verify"]
    assert sorted(first.headers.items()) == sorted(second.headers.items())
    assert await first.get_data() == await second.get_data() == b""


@pytest.mark.parametrize(
    ("headers", "msg", "www_authenticate"),
    [
        ({}, "Missing Authorization Header", "Bearer"),
        (
            {"Authorization": "Token abc"},
            f"Missing 'Bearer' type in 'Authorization' header. {BEARER_EXPECTED}",
            'Bearer error="invalid_request", error_description='
            f"\"Missing 'Bearer' type in 'Authorization' header. {BEARER_EXPECTED}\"",
        ),
        (
            {"Authorization": "Bearer"},
            f"Bad Authorization header. {BEARER_EXPECTED}",
            'Bearer error="invalid_request", error_description='
            f'"Bad Authorization header. {BEARER_EXPECTED}"',
        ),
        (
            {"Authorization": "Bearer a b"},
            f"Bad Authorization header. {BEARER_EXPECTED}",
            'Bearer error="invalid_request", error_description='
            f'"Bad Authorization header. {BEARER_EXPECTED}"',
        ),
        (
            {"Authorization": "Bearer not-a-jwt"},
            "Not enough segments",
            'Bearer error="invalid_token", error_description="Not enough segments"',
        ),
    ],
)
@pytest.mark.parametrize("method", ["GET", "OPTIONS", "POST"])
async def test_failures_are_401_with_the_challenge(
    client: Client, method: str, headers: dict[str, str], msg: str, www_authenticate: str
) -> None:
    response = await send(client, "/auth/verify", method, headers=headers)
    assert response.status_code == 401
    assert await response.get_json() == {"msg": msg}
    assert response.headers["WWW-Authenticate"] == www_authenticate


async def test_bad_signature_refresh_and_revoked_tokens_are_invalid_token(app: Quart) -> None:
    client, pair = await started(app)
    token = pair["access_token"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    cases = [
        (forged, "Signature verification failed"),
        (pair["refresh_token"], "Only non-refresh tokens are allowed"),
    ]
    for sent, msg in cases:
        response = await client.get("/auth/verify", headers=bearer(sent))
        assert response.status_code == 401
        assert await response.get_json() == {"msg": msg}
        assert response.headers["WWW-Authenticate"] == (
            f'Bearer error="invalid_token", error_description="{msg}"'
        )
    assert (await client.get("/auth/verify", headers=bearer(token))).status_code == 200
    assert (await client.post("/logout", headers=bearer(token))).status_code == 200
    for method in ("GET", "OPTIONS"):
        response = await send(client, "/auth/verify", method, headers=bearer(token))
        assert response.status_code == 401
        assert await response.get_json() == {"msg": "Token has been revoked"}
        assert response.headers["WWW-Authenticate"] == (
            'Bearer error="invalid_token", error_description="Token has been revoked"'
        )


async def test_expired_token_is_invalid_token(
    app_factory: Callable[..., Quart], frozen_clock: FrozenClock
) -> None:
    app = app_factory(JWT_ACCESS_TOKEN_EXPIRES=5)
    get_manager(app).clock = frozen_clock
    async with app.test_app():
        client, pair = await started(app)
        headers = bearer(pair["access_token"])
        assert (await client.get("/auth/verify", headers=headers)).status_code == 200
        frozen_clock.past_expiry(pair["access_token"])
        response = await client.get("/auth/verify", headers=headers)
        assert response.status_code == 401
        assert await response.get_json() == {"msg": "Token has expired"}
        assert response.headers["WWW-Authenticate"] == (
            'Bearer error="invalid_token", error_description="Token has expired"'
        )


def test_error_description_keeps_to_rfc_6750_characters() -> None:
    text = challenge("invalid_token", 'No key matches the token\'s "kid" and "alg"\\ é\r\n')
    assert text == (
        "Bearer error=\"invalid_token\", error_description=\"No key matches the token's 'kid'"
        " and 'alg'? ???\""
    )
    assert challenge() == "Bearer"


def test_subject_headers_never_carry_raw_control_or_non_latin_characters() -> None:
    answer = SubjectHeaders("uid")(
        {"uid": "a\r\nSet-Cookie: x", "username": "zoë", "jti": "j", "exp": 10.7}
    )
    assert answer.headers == {
        "X-Auth-Subject": "a%0D%0ASet-Cookie: x",
        "X-Auth-Username": "zo%C3%AB",
        "X-Auth-Token-Id": "j",
        "X-Auth-Expires": "10",
    }
    assert answer.status == 200 and answer.body == b"" and answer.content_type is None


async def test_paths_below_count_under_one_route_label(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(METRICS_ENABLED=True, METRICS_PUBLIC=True)
    async with app.test_app():
        client, pair = await started(app)
        for path in ("/auth/verify/a/b", "/auth/verify/c", "/auth/verify/d"):  # Quart, fast, fast
            response = await client.get(path, headers=bearer(pair["access_token"]))
            assert response.status_code == 200
        metrics = await (await client.get("/metrics")).get_data(as_text=True)
        lines = [
            line
            for line in metrics.splitlines()
            if line.startswith("quart_app_http_requests_total") and "/auth/verify" in line
        ]
        assert lines and all('"/auth/verify/<path:subpath>"' in line for line in lines), lines
        assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == 3.0


async def test_both_paths_write_the_same_log_line(
    app_factory: Callable[..., Quart], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(ACCESS_LOG=True)
    async with app.test_app():
        client, pair = await started(app)
        with caplog.at_level(logging.INFO, logger="quart_app.access"):
            for _ in range(2):  # Quart, then the fast path
                await client.get("/auth/verify", headers=bearer(pair["access_token"]))
        lines = [
            r.fields  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == "quart_app.access" and r.fields["path"] == "/auth/verify"  # type: ignore[attr-defined]
        ]
        assert [(f["status"], f["user_id"], f["route"]) for f in lines] == [
            (200, "1", "/auth/verify"),
            (200, "1", "/auth/verify"),
        ]
        assert pair["access_token"] not in caplog.text
