"""Claims: what tokens carry, audience/issuer/leeway/identity claim/nbf settings, and the
deliberate differences from FJE (float iat; JWT_REQUIRED_CLAIMS, which the service sets)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import flask
import flask_jwt_extended as fje
import jwt as pyjwt
import pytest
from quart import Quart

import quart_app.jwt as qje
from tests.helpers.jwt_apps import SECRET, mint
from tests.helpers.support import bearer


def app_with(**config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update({"JWT_SECRET_KEY": SECRET, **config})
    qje.JWTManager(app)

    @app.get("/protected")
    @qje.jwt_required()
    async def protected() -> dict[str, Any]:
        return {"identity": qje.get_jwt_identity()}

    return app


async def create(app: Quart, *args: Any, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    async with app.app_context():
        token = await qje.create_access_token(*args, **kwargs)
    return token, pyjwt.decode(token, options={"verify_signature": False})


async def answer(app: Quart, token: str) -> tuple[int, Any]:
    response = await app.test_client().get("/protected", headers=bearer(token))
    return response.status_code, await response.get_json()


async def test_default_claim_set() -> None:
    app = app_with()
    before = time.time()
    _, claims = await create(app, "1")
    assert set(claims) == {"fresh", "iat", "jti", "type", "sub", "nbf", "csrf", "exp"}
    assert claims["type"] == "access" and claims["fresh"] is False and claims["sub"] == "1"
    # iat keeps sub-second precision (the password-change cut-off); nbf/exp are seconds.
    assert isinstance(claims["iat"], float) and before <= claims["iat"] <= time.time()
    assert claims["nbf"] == int(claims["iat"])
    assert claims["exp"] == int(claims["iat"] + 900)
    async with app.app_context():
        refresh = await qje.create_refresh_token("1")
    refresh_claims = pyjwt.decode(refresh, options={"verify_signature": False})
    assert refresh_claims["type"] == "refresh"
    assert refresh_claims["exp"] == int(refresh_claims["iat"] + 30 * 86400)


@pytest.mark.parametrize(
    ("setting", "seconds"),
    [(timedelta(minutes=5), 300), (60, 60)],
)
async def test_expiry_settings_and_expires_delta(setting: Any, seconds: int) -> None:
    app = app_with(JWT_ACCESS_TOKEN_EXPIRES=setting)
    _, claims = await create(app, "1")
    assert claims["exp"] == int(claims["iat"] + seconds)
    _, claims = await create(app, "1", expires_delta=timedelta(hours=1))
    assert claims["exp"] == int(claims["iat"] + 3600)


async def test_encode_nbf_off() -> None:
    _, claims = await create(app_with(JWT_ENCODE_NBF=False), "1")
    assert "nbf" not in claims


async def test_audience_and_issuer_round_trip() -> None:
    config = {
        "JWT_ENCODE_AUDIENCE": ["api", "web"],
        "JWT_DECODE_AUDIENCE": "api",
        "JWT_ENCODE_ISSUER": "https://issuer.example",
        "JWT_DECODE_ISSUER": "https://issuer.example",
    }
    app = app_with(**config)
    token, claims = await create(app, "1")
    assert claims["aud"] == ["api", "web"] and claims["iss"] == "https://issuer.example"
    assert await answer(app, token) == (200, {"identity": "1"})
    other = app_with(**{**config, "JWT_DECODE_AUDIENCE": "billing"})
    assert await answer(other, token) == (422, {"msg": "Audience doesn't match"})
    other = app_with(**{**config, "JWT_DECODE_ISSUER": "https://else.example"})
    assert await answer(other, token) == (422, {"msg": "Invalid issuer"})


async def test_leeway() -> None:
    token = mint(exp=int(time.time()) - 5)
    assert await answer(app_with(), token) == (401, {"msg": "Token has expired"})
    assert (await answer(app_with(JWT_DECODE_LEEWAY=30), token))[0] == 200
    early = mint(nbf=int(time.time()) + 20)
    assert (await answer(app_with(JWT_DECODE_LEEWAY=timedelta(seconds=30)), early))[0] == 200


async def test_identity_claim_and_error_message_key() -> None:
    app = app_with(JWT_IDENTITY_CLAIM="uid", JWT_ERROR_MESSAGE_KEY="error")
    token, claims = await create(app, "u-9")
    assert claims["uid"] == "u-9" and "sub" not in claims
    assert await answer(app, token) == (200, {"identity": "u-9"})
    assert await answer(app, "garbage") == (422, {"error": "Not enough segments"})
    no_uid = mint()  # has sub, not uid
    assert await answer(app, no_uid) == (422, {"error": "Missing claim: uid"})


async def test_identity_must_be_a_string_unless_verify_sub_is_off() -> None:
    app = app_with()
    token, _ = await create(app, 42)
    assert await answer(app, token) == (422, {"msg": "Subject must be a string"})
    relaxed = app_with(JWT_VERIFY_SUB=False)
    assert await answer(relaxed, token) == (200, {"identity": 42})


STRICT = ("exp", "jti", "type", "sub")


@pytest.mark.parametrize("claim", STRICT)
async def test_required_claims_are_stricter_than_fje(claim: str) -> None:
    """RFC 8725 hardening as the service sets it: FJE accepts a token without exp/jti/type;
    with JWT_REQUIRED_CLAIMS each is refused with PyJWT's text."""
    dropped: dict[str, Any] = {claim: None}
    token = mint(**dropped)
    flask_app = flask.Flask("fje")
    flask_app.config["JWT_SECRET_KEY"] = SECRET
    fje.JWTManager(flask_app)
    with flask_app.app_context():
        if claim == "sub":
            with pytest.raises(fje.exceptions.JWTDecodeError):
                fje.decode_token(token)
        else:
            fje.decode_token(token)  # FJE is fine with it
    assert await answer(app_with(JWT_REQUIRED_CLAIMS=STRICT), token) == (
        422,
        {"msg": f'Token is missing the "{claim}" claim'},
    )
    expected = (422, {"msg": "Missing claim: sub"}) if claim == "sub" else 200
    status = await answer(app_with(), token)
    assert (status if claim == "sub" else status[0]) == expected


async def test_fje_s_defaults_accept_tokens_without_expiry() -> None:
    app = app_with(JWT_ACCESS_TOKEN_EXPIRES=False)
    token, claims = await create(app, "1")
    assert "exp" not in claims
    assert (await answer(app, token))[0] == 200
    strict = app_with(JWT_REQUIRED_CLAIMS=STRICT)
    assert (await answer(strict, token)) == (422, {"msg": 'Token is missing the "exp" claim'})


async def test_tokens_cross_between_fje_and_us() -> None:
    flask_app = flask.Flask("fje")
    flask_app.config["JWT_SECRET_KEY"] = SECRET
    fje.JWTManager(flask_app)
    app = app_with()
    ours, _ = await create(app, "ours")
    with flask_app.app_context():
        theirs = fje.create_access_token("theirs")
        assert fje.decode_token(ours)["sub"] == "ours"  # float iat is fine for FJE
    assert await answer(app, theirs) == (200, {"identity": "theirs"})


async def test_decode_token_and_helpers() -> None:
    app = app_with()
    async with app.app_context():
        token = await qje.create_access_token("1", additional_headers={"x": "y"})
        expired = await qje.create_access_token("1", expires_delta=timedelta(seconds=-5))
        claims = await qje.decode_token(token)
        assert await qje.get_jti(token) == claims["jti"]
        assert await qje.get_csrf_token(token) == claims["csrf"]
        assert qje.get_unverified_jwt_headers(token)["x"] == "y"
        with pytest.raises(pyjwt.ExpiredSignatureError):
            await qje.decode_token(expired)
        assert (await qje.decode_token(expired, allow_expired=True))["sub"] == "1"
        with pytest.raises(qje.CSRFError):
            await qje.decode_token(token, csrf_value="wrong")
        assert (await qje.decode_token(token, csrf_value=claims["csrf"]))["sub"] == "1"


async def test_oversized_tokens_are_refused_before_parsing() -> None:
    app = app_with(JWT_MAX_TOKEN_LENGTH=512)
    big = mint(padding="x" * 600)
    assert await answer(app, big) == (422, {"msg": "Token is too large"})
