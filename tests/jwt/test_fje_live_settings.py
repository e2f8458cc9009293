"""Settings stay live, as in Flask-JWT-Extended: a ``JWT_*`` key written after the app
answered requests applies to the next request, and tokens verified before are checked
again under the new settings. Every case runs against FJE 4.7 on Flask and against
quart_app.jwt (``twins``), with the expected answer written out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quart_app import create_app
from tests.helpers.jwt_apps import Call, mint
from tests.helpers.support import bearer, login, make_config, register
from tests.helpers.twins import twins


def request(token: str, path: str = "/protected", **headers: str) -> Call:
    return Call(path=path, headers={"Authorization": f"Bearer {token}", **headers})


TOKEN = mint()
JWT_HINT = "Expected 'Authorization: JWT <JWT>'"

# (setting written after a first request, the next request, the answer both give)
CHANGES: list[tuple[dict[str, Any], Call, tuple[int, Any]]] = [
    (
        {"JWT_ALGORITHM": "HS512"},
        request(TOKEN),
        (422, {"msg": "The specified alg value is not allowed"}),
    ),
    (
        {"JWT_SECRET_KEY": "another-secret-" + "z" * 40},
        request(TOKEN),
        (422, {"msg": "Signature verification failed"}),
    ),
    (
        {"JWT_HEADER_TYPE": "JWT"},
        request(TOKEN),
        (
            401,
            {"msg": "Missing 'JWT' type in 'Authorization' header. " + JWT_HINT},
        ),
    ),
    ({"JWT_HEADER_NAME": "X-Token"}, request(TOKEN), (401, {"msg": "Missing X-Token Header"})),
    (
        {"JWT_TOKEN_LOCATION": ["cookies"]},
        request(TOKEN),
        (401, {"msg": 'Missing cookie "access_token_cookie"'}),
    ),
    (
        {"JWT_DECODE_ISSUER": "https://issuer.example"},
        request(TOKEN),
        (422, {"msg": 'Token is missing the "iss" claim'}),
    ),
    (
        {"JWT_DECODE_AUDIENCE": "api"},
        request(TOKEN),
        (422, {"msg": 'Token is missing the "aud" claim'}),
    ),
    ({"JWT_IDENTITY_CLAIM": "uid"}, request(TOKEN), (422, {"msg": "Missing claim: uid"})),
    (
        {"JWT_ERROR_MESSAGE_KEY": "error"},
        request("garbage"),
        (422, {"error": "Not enough segments"}),
    ),
]


@pytest.mark.parametrize(("change", "call", "expected"), CHANGES, ids=lambda v: str(v)[:40])
async def test_a_setting_written_after_requests_applies_to_the_next(
    change: dict[str, Any], call: Call, expected: tuple[int, Any]
) -> None:
    pair = twins()
    # The token is verified (and, here, cached) before the change.
    first = await pair.same(request(TOKEN))
    assert first[0] == 200
    pair.set(**change)
    assert await pair.same(call) == expected


async def test_changing_back_restores_the_old_answer() -> None:
    pair = twins()
    assert (await pair.same(request(TOKEN)))[0] == 200
    pair.set(JWT_ALGORITHM="HS512")
    assert (await pair.same(request(TOKEN)))[0] == 422
    pair.set(JWT_ALGORITHM="HS256")
    assert (await pair.same(request(TOKEN)))[0] == 200


async def test_settings_given_after_the_manager_as_in_the_tutorial() -> None:
    """``JWTManager(app)`` first, then ``app.config[...] = ...``; new tokens follow them."""
    pair = twins()
    pair.set(JWT_ACCESS_TOKEN_EXPIRES=False)
    for token in await pair.tokens():
        status, body = await pair.same(request(token))
        assert status == 200 and "exp" not in body["jwt"]
    pair.set(JWT_ACCESS_TOKEN_EXPIRES=60)
    for token in await pair.tokens():
        status, body = await pair.same(request(token))
        assert status == 200 and body["jwt"]["exp"] - int(body["jwt"]["iat"]) == 60


async def test_other_ways_of_writing_the_config_are_seen() -> None:
    pair = twins()
    assert (await pair.same(request(TOKEN)))[0] == 200
    for app in (pair.flask_app, pair.quart_app):
        app.config.from_mapping({"JWT_ALGORITHM": "HS384"})
    assert (await pair.same(request(TOKEN)))[0] == 422
    for app in (pair.flask_app, pair.quart_app):
        app.config |= {"JWT_ALGORITHM": "HS256"}
    assert (await pair.same(request(TOKEN)))[0] == 200
    for app in (pair.flask_app, pair.quart_app):
        app.config.setdefault("JWT_ALGORITHM", "HS512")  # present: no change
    assert (await pair.same(request(TOKEN)))[0] == 200


async def test_the_service_s_fast_path_follows_a_change(tmp_path: Path) -> None:
    """The service answers /protected below Quart for tokens it verified before; a setting
    written afterwards must reach those tokens too."""
    app = create_app(make_config(tmp_path))
    async with app.test_app():
        client = app.test_client()
        await register(client)
        tokens = await login(client)
        for _ in range(2):  # the second one is answered from the verified-token cache
            response = await client.get("/protected", headers=bearer(tokens["access_token"]))
            assert response.status_code == 200
        app.config["JWT_DECODE_ISSUER"] = "https://issuer.example"
        response = await client.get("/protected", headers=bearer(tokens["access_token"]))
        assert response.status_code == 422
        assert (await response.get_json())["msg"] == 'Token is missing the "iss" claim'
