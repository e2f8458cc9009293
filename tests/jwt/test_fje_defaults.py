"""The extension's defaults are Flask-JWT-Extended's: no claim required but the identity
claim, FJE's exception and text when it is missing, and FJE's defaults filled in on decode.

Each case sends the same request to FJE 4.7 on Flask and to quart_app.jwt on Quart
(``twins``) and compares status and body; the expected answer is written out as well, so
a case cannot pass by both failing the same wrong way.
"""

from __future__ import annotations

import time
from typing import Any

import flask_jwt_extended as fje
import pytest

import quart_app.jwt as qje
from tests.helpers.jwt_apps import Call, mint
from tests.helpers.twins import twins


def bearer(token: str, path: str = "/protected") -> Call:
    return Call(path=path, headers={"Authorization": f"Bearer {token}"})


def bare(**claims: Any) -> str:
    """A token with only ``claims`` (FJE's usual ones dropped)."""
    drop = dict.fromkeys(("fresh", "iat", "jti", "type", "nbf", "exp", "csrf", "sub"))
    return mint(**{**drop, **claims})


async def test_a_token_with_only_sub_gets_fje_s_defaults() -> None:
    pair = twins()
    status, body = await pair.same(bearer(bare(sub="alice")))
    assert status == 200
    assert body["jwt"] == {"sub": "alice", "type": "access", "fresh": False, "jti": None}


@pytest.mark.parametrize(
    ("claims", "config", "text"),
    [
        ({"exp": int(time.time()) + 60}, {}, "Missing claim: sub"),
        ({"sub": "alice"}, {"JWT_IDENTITY_CLAIM": "uid"}, "Missing claim: uid"),
    ],
    ids=["sub", "custom-identity-claim"],
)
async def test_missing_identity_claim(
    claims: dict[str, Any], config: dict[str, Any], text: str
) -> None:
    assert await twins(**config).same(bearer(bare(**claims))) == (422, {"msg": text})


async def test_missing_identity_claim_is_a_jwt_decode_error() -> None:
    token = bare(exp=int(time.time()) + 60)
    pair = twins()
    with pair.flask_app.app_context(), pytest.raises(fje.exceptions.JWTDecodeError) as theirs:
        fje.decode_token(token)
    async with pair.quart_app.app_context():
        with pytest.raises(qje.JWTDecodeError) as ours:
            await qje.decode_token(token)
    assert str(ours.value) == str(theirs.value) == "Missing claim: sub"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/refresh", (422, {"msg": "Only refresh tokens are allowed"})),
        ("/fresh", (401, {"msg": "Fresh token required"})),
    ],
)
async def test_defaults_take_part_in_the_checks(path: str, expected: tuple[int, Any]) -> None:
    """Without ``type`` a token is an access token; without ``fresh`` it is not fresh."""
    assert await twins().same(bearer(bare(sub="alice"), path)) == expected


async def test_tokens_without_expiry_are_accepted_by_the_app_that_made_them() -> None:
    """JWT_ACCESS_TOKEN_EXPIRES = False, as in the classic Flask-JWT-Extended tutorial."""
    pair = twins(JWT_ACCESS_TOKEN_EXPIRES=False)
    theirs, ours = await pair.tokens()
    for token in (theirs, ours):
        status, body = await pair.same(bearer(token))
        assert status == 200 and "exp" not in body["jwt"] and body["identity"] == "alice"


async def test_expired_token_loader_sees_the_defaults() -> None:
    def setup(lib: Any, manager: Any) -> None:
        def expired(jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> Any:
            return {"expired": jwt_data}, 401

        manager.expired_token_loader(expired)

    token = bare(sub="alice", exp=int(time.time()) - 30)
    status, body = await twins(setup=setup).same(bearer(token))
    assert status == 401
    assert body["expired"]["type"] == "access" and body["expired"]["jti"] is None


async def test_identities_json_cannot_encode_use_the_app_s_json_provider() -> None:
    """FJE encodes a UUID identity (or a date claim) with the app's JSON provider."""
    import uuid
    from datetime import date

    pair = twins()
    identity = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with pair.flask_app.app_context():
        theirs = fje.create_access_token(identity, additional_claims={"on": date(2026, 12, 1)})
    async with pair.quart_app.app_context():
        ours = await qje.create_access_token(identity, additional_claims={"on": date(2026, 12, 1)})
    for token in (theirs, ours):
        status, body = await pair.same(bearer(token))
        assert status == 200
        assert body["identity"] == str(identity)
        assert body["jwt"]["on"] == "Tue, 01 Dec 2026 00:00:00 GMT"
