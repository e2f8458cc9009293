"""The same requests to the real Flask-JWT-Extended 4.7 and to quart_app.jwt: same answers.

Every case is sent to a Flask app running FJE and to its Quart twin (``jwt_apps``) with
the same config and loaders; the status and the whole JSON body must be identical. The
rows of the token-error table (docs/jwt.md) also assert the documented status and text, so a case
cannot pass by both twins failing the same wrong way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import jwt as pyjwt
import pytest

from tests.helpers.jwt_apps import (
    GHOST,
    SECRET,
    Call,
    flask_twin,
    mint,
    quart_twin,
    send_flask,
    send_quart,
)

NOW = int(time.time())
# PyJWT refuses to make it: header {"alg": "HS256", "kid": 5}, signed with SECRET.
KID_NOT_STRING = (
    lambda h, p: (
        f"{h}.{p}."
        + pyjwt.utils.base64url_encode(
            hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
        ).decode()
    )
)(
    pyjwt.utils.base64url_encode(b'{"alg":"HS256","kid":5}').decode(),
    mint().split(".")[1],
)
BEARER_HINT = "Expected 'Authorization: Bearer <JWT>'"


def token(**claims: Any) -> str:
    return mint(**claims)


def auth(value: str) -> dict[str, str]:
    return {"Authorization": value}


# (id, JWT_* overrides, request, expected (status, msg) or None for "same as FJE")
Case = tuple[str, dict[str, Any], Call, tuple[int, str] | None]

ACCESS = token()
REFRESH = token(type="refresh")
FRESH = token(fresh=True)

API_TABLE: list[Case] = [
    ("no-header", {}, Call(), (401, "Missing Authorization Header")),
    (
        "no-bearer-field",
        {},
        Call(headers=auth("Token abc")),
        (401, f"Missing 'Bearer' type in 'Authorization' header. {BEARER_HINT}"),
    ),
    (
        "bearer-alone",
        {},
        Call(headers=auth("Bearer")),
        (422, f"Bad Authorization header. {BEARER_HINT}"),
    ),
    (
        "bearer-two-values",
        {},
        Call(headers=auth("Bearer a b")),
        (422, f"Bad Authorization header. {BEARER_HINT}"),
    ),
    (
        "expired",
        {},
        Call(headers=auth(f"Bearer {token(exp=NOW - 10)}")),
        (401, "Token has expired"),
    ),
    (
        "bad-signature",
        {},
        Call(headers=auth(f"Bearer {mint(secret='another-secret-' + 'y' * 40)}")),
        (422, "Signature verification failed"),
    ),
    ("not-a-jwt", {}, Call(headers=auth("Bearer abc")), (422, "Not enough segments")),
    ("two-segments", {}, Call(headers=auth("Bearer abc.def")), (422, "Not enough segments")),
    ("bad-base64", {}, Call(headers=auth("Bearer !!!.abc.def")), (422, "Invalid header padding")),
    (
        "header-not-json",
        {},
        Call(headers=auth("Bearer bm90IGpzb24.e30.c2ln")),
        (422, "Invalid header string: Expecting value: line 1 column 1 (char 0)"),
    ),
    (
        "alg-not-allowed",
        {},
        Call(headers=auth(f"Bearer {mint(algorithm='HS512')}")),
        (422, "The specified alg value is not allowed"),
    ),
    (
        "alg-none",
        {},
        Call(headers=auth(f"Bearer {mint(secret='', algorithm='none')}")),
        (422, "The specified alg value is not allowed"),
    ),
    (
        "refresh-for-access",
        {},
        Call(headers=auth(f"Bearer {REFRESH}")),
        (422, "Only non-refresh tokens are allowed"),
    ),
    (
        "access-for-refresh",
        {},
        Call(path="/refresh", method="POST", headers=auth(f"Bearer {ACCESS}")),
        (422, "Only refresh tokens are allowed"),
    ),
    (
        "revoked",
        {},
        Call(headers=auth(f"Bearer {token(jti='revoked-jti')}")),
        (401, "Token has been revoked"),
    ),
    (
        "fresh-required",
        {},
        Call(path="/fresh", headers=auth(f"Bearer {ACCESS}")),
        (401, "Fresh token required"),
    ),
    (
        "user-gone",
        {},
        Call(headers=auth(f"Bearer {token(sub=GHOST)}")),
        (401, f"Error loading the user {GHOST}"),
    ),
]

HEADERS: list[Case] = [
    ("ok", {}, Call(headers=auth(f"Bearer {ACCESS}")), None),
    ("double-space", {}, Call(headers=auth(f"Bearer  {ACCESS}")), None),
    ("surrounding-space", {}, Call(headers=auth(f"  Bearer {ACCESS}  ")), None),
    ("lowercase-type", {}, Call(headers=auth(f"bearer {ACCESS}")), None),
    ("trailing-comma", {}, Call(headers=auth(f"Bearer {ACCESS},")), None),
    ("other-scheme-first", {}, Call(headers=auth(f"Basic Zm9vOmJhcg==, Bearer {ACCESS}")), None),
    ("other-scheme-after", {}, Call(headers=auth(f"Bearer {ACCESS}, Basic Zm9vOmJhcg==")), None),
    ("two-bearers", {}, Call(headers=auth(f"Bearer {ACCESS}, Bearer {ACCESS}")), None),
    ("empty-value", {}, Call(headers=auth("")), None),
    ("only-commas", {}, Call(headers=auth(",,")), None),
    ("refresh-any-type", {}, Call(path="/any-type", headers=auth(f"Bearer {REFRESH}")), None),
    (
        "custom-name",
        {"JWT_HEADER_NAME": "X-Auth"},
        Call(headers={"X-Auth": f"Bearer {ACCESS}"}),
        None,
    ),
    (
        "custom-name-missing",
        {"JWT_HEADER_NAME": "X-Auth"},
        Call(headers=auth(f"Bearer {ACCESS}")),
        None,
    ),
    ("custom-type", {"JWT_HEADER_TYPE": "JWT"}, Call(headers=auth(f"JWT {ACCESS}")), None),
    ("custom-type-wrong", {"JWT_HEADER_TYPE": "JWT"}, Call(headers=auth(f"Bearer {ACCESS}")), None),
    ("no-type", {"JWT_HEADER_TYPE": ""}, Call(headers=auth(ACCESS)), None),
    ("no-type-two-parts", {"JWT_HEADER_TYPE": ""}, Call(headers=auth(f"Bearer {ACCESS}")), None),
    (
        "custom-name-and-no-type",
        {"JWT_HEADER_NAME": "X-Token", "JWT_HEADER_TYPE": ""},
        Call(headers={"X-Token": f"a {ACCESS}"}),
        None,
    ),
]

LOCATIONS: list[Case] = [
    ("query-ok", {}, Call(path="/query", query={"jwt": ACCESS}), None),
    ("query-missing", {}, Call(path="/query"), None),
    ("query-empty", {}, Call(path="/query", query={"jwt": ""}), None),
    (
        "query-custom-name",
        {"JWT_QUERY_STRING_NAME": "t"},
        Call(path="/query", query={"t": ACCESS}),
        None,
    ),
    (
        "query-prefix-ok",
        {"JWT_QUERY_STRING_VALUE_PREFIX": "Bearer "},
        Call(path="/query", query={"jwt": f"Bearer {ACCESS}"}),
        None,
    ),
    (
        "query-prefix-missing",
        {"JWT_QUERY_STRING_VALUE_PREFIX": "Bearer "},
        Call(path="/query", query={"jwt": ACCESS}),
        None,
    ),
    ("json-ok", {}, Call(path="/json", method="POST", json={"access_token": ACCESS}), None),
    ("json-missing-key", {}, Call(path="/json", method="POST", json={"token": ACCESS}), None),
    ("json-wrong-type", {}, Call(path="/json", method="POST", data="access_token=x"), None),
    ("json-no-body", {}, Call(path="/json", method="POST"), None),
    (
        "json-custom-key",
        {"JWT_JSON_KEY": "tok"},
        Call(path="/json", method="POST", json={"tok": ACCESS}),
        None,
    ),
    (
        "json-vendor-type",
        {},
        Call(
            path="/json",
            method="POST",
            data=json.dumps({"access_token": ACCESS}),
            headers={"Content-Type": "application/vnd.api+json"},
        ),
        None,
    ),
    (
        "json-refresh-key",
        {"JWT_TOKEN_LOCATION": ["json"]},
        Call(path="/refresh", method="POST", json={"refresh_token": REFRESH}),
        None,
    ),
    (
        "json-refresh-wrong-key",
        {"JWT_TOKEN_LOCATION": ["json"]},
        Call(path="/refresh", method="POST", json={"access_token": REFRESH}),
        None,
    ),
    ("cookie-get-ok", {}, Call(path="/cookies", cookies={"access_token_cookie": ACCESS}), None),
    ("cookie-missing", {}, Call(path="/cookies"), None),
    (
        "cookie-post-no-csrf",
        {},
        Call(path="/cookies", method="POST", cookies={"access_token_cookie": ACCESS}),
        None,
    ),
    (
        "cookie-post-csrf-ok",
        {},
        Call(
            path="/cookies",
            method="POST",
            cookies={"access_token_cookie": ACCESS},
            headers={"X-CSRF-TOKEN": "csrf-value"},
        ),
        None,
    ),
    (
        "cookie-post-csrf-mismatch",
        {},
        Call(
            path="/cookies",
            method="DELETE",
            cookies={"access_token_cookie": ACCESS},
            headers={"X-CSRF-TOKEN": "other"},
        ),
        None,
    ),
    (
        "cookie-post-token-without-csrf-claim",
        {},
        Call(
            path="/cookies",
            method="PUT",
            cookies={"access_token_cookie": token(csrf=None)},
            headers={"X-CSRF-TOKEN": "x"},
        ),
        None,
    ),
    (
        "cookie-csrf-off",
        {"JWT_COOKIE_CSRF_PROTECT": False},
        Call(path="/cookies", method="POST", cookies={"access_token_cookie": ACCESS}),
        None,
    ),
    (
        "cookie-csrf-methods",
        {"JWT_CSRF_METHODS": ["GET"]},
        Call(path="/cookies", method="GET", cookies={"access_token_cookie": ACCESS}),
        None,
    ),
    (
        "cookie-refresh",
        {"JWT_TOKEN_LOCATION": ["cookies"]},
        Call(path="/refresh", cookies={"refresh_token_cookie": REFRESH}),
        None,
    ),
    (
        "cookie-refresh-csrf-header",
        {"JWT_TOKEN_LOCATION": ["cookies"], "JWT_REFRESH_CSRF_HEADER_NAME": "X-R"},
        Call(
            path="/refresh",
            method="POST",
            cookies={"refresh_token_cookie": REFRESH},
            headers={"X-CSRF-TOKEN": "csrf-value"},
        ),
        None,
    ),
    ("combined-none", {}, Call(path="/headers-or-cookies"), None),
    (
        "combined-cookie",
        {},
        Call(path="/headers-or-cookies", cookies={"access_token_cookie": ACCESS}),
        None,
    ),
    (
        "combined-bad-header-wins",
        {},
        Call(
            path="/headers-or-cookies",
            headers=auth("Bearer"),
            cookies={"access_token_cookie": ACCESS},
        ),
        None,
    ),
    ("everywhere-none", {}, Call(path="/everywhere"), None),
    ("everywhere-none-post", {}, Call(path="/everywhere", method="POST", json={}), None),
    ("everywhere-query", {}, Call(path="/everywhere", query={"jwt": ACCESS}), None),
    (
        "config-locations",
        {"JWT_TOKEN_LOCATION": ["query_string", "headers"]},
        Call(path="/protected"),
        None,
    ),
    (
        "config-location-string",
        {"JWT_TOKEN_LOCATION": "cookies"},
        Call(path="/protected", cookies={"access_token_cookie": ACCESS}),
        None,
    ),
]

BEHAVIOUR: list[Case] = [
    ("options-exempt", {}, Call(method="OPTIONS"), None),
    ("optional-absent", {}, Call(path="/optional"), None),
    ("optional-present", {}, Call(path="/optional", headers=auth(f"Bearer {ACCESS}")), None),
    (
        "optional-expired",
        {},
        Call(path="/optional", headers=auth(f"Bearer {token(exp=NOW - 9)}")),
        None,
    ),
    ("optional-bad-header", {}, Call(path="/optional", headers=auth("Bearer")), None),
    ("fresh-ok", {}, Call(path="/fresh", headers=auth(f"Bearer {FRESH}")), None),
    (
        "fresh-until-future",
        {},
        Call(path="/fresh", headers=auth(f"Bearer {token(fresh=NOW + 86_400)}")),
        None,
    ),
    (
        "fresh-until-past",
        {},
        Call(path="/fresh", headers=auth(f"Bearer {token(fresh=NOW - 60)}")),
        None,
    ),
    (
        "skip-revocation",
        {},
        Call(path="/skip-revocation", headers=auth(f"Bearer {token(jti='revoked-jti')}")),
        None,
    ),
    ("claims-verification-failed", {}, Call(headers=auth(f"Bearer {token(reject=True)}")), None),
    (
        "error-message-key",
        {"JWT_ERROR_MESSAGE_KEY": "error"},
        Call(headers=auth(f"Bearer {token(exp=NOW - 10)}")),
        None,
    ),
    (
        "audience-ok",
        {"JWT_DECODE_AUDIENCE": "api"},
        Call(headers=auth(f"Bearer {token(aud='api')}")),
        None,
    ),
    (
        "audience-list",
        {"JWT_DECODE_AUDIENCE": ["other", "api"]},
        Call(headers=auth(f"Bearer {token(aud=['x', 'api'])}")),
        None,
    ),
    (
        "audience-wrong",
        {"JWT_DECODE_AUDIENCE": "api"},
        Call(headers=auth(f"Bearer {token(aud='web')}")),
        None,
    ),
    (
        "audience-missing",
        {"JWT_DECODE_AUDIENCE": "api"},
        Call(headers=auth(f"Bearer {ACCESS}")),
        None,
    ),
    ("audience-unchecked", {}, Call(headers=auth(f"Bearer {token(aud='web')}")), None),
    (
        "issuer-ok",
        {"JWT_DECODE_ISSUER": "me"},
        Call(headers=auth(f"Bearer {token(iss='me')}")),
        None,
    ),
    (
        "issuer-wrong",
        {"JWT_DECODE_ISSUER": "me"},
        Call(headers=auth(f"Bearer {token(iss='you')}")),
        None,
    ),
    ("issuer-missing", {"JWT_DECODE_ISSUER": "me"}, Call(headers=auth(f"Bearer {ACCESS}")), None),
    (
        "leeway-covers",
        {"JWT_DECODE_LEEWAY": 60},
        Call(headers=auth(f"Bearer {token(exp=NOW - 10)}")),
        None,
    ),
    (
        "leeway-timedelta",
        {"JWT_DECODE_LEEWAY": timedelta(seconds=60)},
        Call(headers=auth(f"Bearer {token(exp=NOW - 10)}")),
        None,
    ),
    (
        "leeway-too-short",
        {"JWT_DECODE_LEEWAY": 5},
        Call(headers=auth(f"Bearer {token(exp=NOW - 30)}")),
        None,
    ),
    ("nbf-future", {}, Call(headers=auth(f"Bearer {token(nbf=NOW + 3600)}")), None),
    ("iat-future", {}, Call(headers=auth(f"Bearer {token(iat=NOW + 3600)}")), None),
    ("sub-not-string", {}, Call(headers=auth(f"Bearer {token(sub=42)}")), None),
    (
        "sub-not-string-unverified",
        {"JWT_VERIFY_SUB": False},
        Call(headers=auth(f"Bearer {token(sub=42)}")),
        None,
    ),
    ("jti-not-string", {}, Call(headers=auth(f"Bearer {token(jti=7)}")), None),
    (
        "identity-claim",
        {"JWT_IDENTITY_CLAIM": "identity"},
        Call(headers=auth(f"Bearer {token(sub=None, identity='bob')}")),
        None,
    ),
    (
        "decode-algorithms-list",
        {"JWT_DECODE_ALGORITHMS": ["HS512"]},
        Call(headers=auth(f"Bearer {mint(algorithm='HS512')}")),
        None,
    ),
    (
        "decode-algorithms-keep-algorithm",
        {"JWT_DECODE_ALGORITHMS": ["HS512"]},
        Call(headers=auth(f"Bearer {ACCESS}")),
        None,
    ),
    ("payload-not-object", {}, Call(headers=auth("Bearer eyJhbGciOiJIUzI1NiJ9.WzFd.c2ln")), None),
    ("kid-not-string", {}, Call(headers=auth(f"Bearer {KID_NOT_STRING}")), None),
    ("four-segments", {}, Call(headers=auth(f"Bearer {ACCESS}.x")), None),
]


def _cases() -> list[Any]:
    return [
        pytest.param(config, call, expected, id=f"{group}-{name}")
        for group, cases in (
            ("table", API_TABLE),
            ("headers", HEADERS),
            ("locations", LOCATIONS),
            ("behaviour", BEHAVIOUR),
        )
        for name, config, call, expected in cases
    ]


@pytest.mark.parametrize(("config", "call", "expected"), _cases())
async def test_same_answer_as_flask_jwt_extended(
    config: dict[str, Any], call: Call, expected: tuple[int, str] | None
) -> None:
    theirs = send_flask(flask_twin(**config), call)
    ours = await send_quart(quart_twin(**config), call)
    assert ours == theirs
    assert ours[0] < 500, ours
    if expected is not None:
        key = config.get("JWT_ERROR_MESSAGE_KEY", "msg")
        assert (ours[0], ours[1][key]) == expected


async def test_parity_covers_successes_and_every_status() -> None:
    """The table above is not all errors: both twins also let valid requests through."""
    seen = set()
    for param in _cases():
        config, call, _ = param.values
        seen.add((await send_quart(quart_twin(**config), call))[0])
    assert {200, 400, 401, 422} <= seen


# -- the same with asymmetric keys (FJE's JWT_PRIVATE_KEY / JWT_PUBLIC_KEY) -------------


def _pem_config(algorithm: str) -> tuple[dict[str, Any], Any]:
    from quart_app.jwt.keys import generate_private_key, private_pem, public_pem

    private = generate_private_key(algorithm)
    config = {
        "JWT_ALGORITHM": algorithm,
        "JWT_PRIVATE_KEY": private_pem(private).decode(),
        "JWT_PUBLIC_KEY": public_pem(private.public_key()).decode(),
    }
    return config, private


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "EdDSA"])
async def test_asymmetric_answers_match_flask_jwt_extended(algorithm: str) -> None:
    from quart_app.jwt.keys import generate_private_key

    config, private = _pem_config(algorithm)
    stranger = generate_private_key(algorithm)
    now = int(time.time())
    base = {"sub": "alice", "jti": "j", "type": "access", "fresh": False, "csrf": "c"}
    tokens = {
        "valid": pyjwt.encode({**base, "exp": now + 60}, private, algorithm=algorithm),
        "expired": pyjwt.encode({**base, "exp": now - 60}, private, algorithm=algorithm),
        "other-key": pyjwt.encode({**base, "exp": now + 60}, stranger, algorithm=algorithm),
        "hs256": mint(),
        "none": mint(secret="", algorithm="none"),
        "refresh": pyjwt.encode(
            {**base, "type": "refresh", "exp": now + 60}, private, algorithm=algorithm
        ),
    }
    answers = {}
    for name, token in tokens.items():
        call = Call(headers=auth(f"Bearer {token}"))
        ours = await send_quart(quart_twin(**config), call)
        assert ours == send_flask(flask_twin(**config), call), name
        answers[name] = ours
    assert answers["valid"][0] == 200
    assert answers["expired"] == (401, {"msg": "Token has expired"})
    assert answers["other-key"] == (422, {"msg": "Signature verification failed"})
    for name in ("hs256", "none"):
        assert answers[name] == (422, {"msg": "The specified alg value is not allowed"})
    assert answers["refresh"] == (422, {"msg": "Only non-refresh tokens are allowed"})


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            Call(path="/json", method="POST", json=[1]),
            (401, {"msg": 'Missing "access_token" key in json data.'}),
        ),
        (Call(headers=auth(f", ,Bearer {ACCESS}")), (200, None)),
    ],
    ids=["json-not-an-object", "blank-header-field"],
)
async def test_where_fje_crashes_we_answer(call: Call, expected: tuple[int, Any]) -> None:
    """The documented exceptions to parity: FJE raises (500) on these two inputs."""
    flask_app = flask_twin()
    flask_app.testing = False
    flask_app.logger.disabled = True
    assert send_flask(flask_app, call)[0] == 500
    status, body = await send_quart(quart_twin(), call)
    assert status == expected[0]
    if expected[1] is not None:
        assert body == expected[1]
