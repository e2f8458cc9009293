"""Clock tolerance: a token whose iat/nbf lie a little in the future (issued by a host
whose clock is ahead) is accepted, on first sight and on the fast path; exp stays exact.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jwt
import pytest
from quart import Quart

from quart_app.jwt import get_manager
from quart_app.jwt.fast_verify import Rules, fast_verify
from quart_app.jwt.keys import KeySet
from quart_app.jwt.tokens import decode_complete
from tests.helpers.support import SECRET, bearer


def token(*, issued_in: float = 0.0, expires_in: float = 900.0, **extra: Any) -> str:
    """An access token as a host whose clock is ``issued_in`` seconds ahead makes it."""
    now = time.time() + issued_in
    claims = {
        "sub": "1",
        "username": "alice",
        "iat": now,
        "nbf": int(now),
        "exp": int(now + expires_in),
        "jti": str(uuid.uuid4()),
        "type": "access",
        "fresh": False,
        **extra,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def protected(app: Quart, encoded: str) -> tuple[int, Any]:
    response = await app.test_client().get("/protected", headers=bearer(encoded))
    return response.status_code, await response.get_json()


async def test_a_token_issued_10s_in_the_future_is_accepted(
    app_factory: Callable[..., Quart],
) -> None:
    app = app_factory()
    encoded = token(issued_in=10)
    async with app.test_app():
        manager = get_manager(app)
        assert manager.cached(encoded) is None
        assert await protected(app, encoded) == (200, {"logged_in_as": "alice"})  # first sight
        assert manager.cached(encoded) is not None
        assert await protected(app, encoded) == (200, {"logged_in_as": "alice"})  # fast path


async def test_without_tolerance_it_is_not_yet_valid(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(JWT_CLOCK_SKEW_SECONDS=0)
    async with app.test_app():
        status, body = await protected(app, token(issued_in=10))
        assert status == 422
        assert body == {"msg": "The token is not yet valid (iat)"}


async def test_beyond_the_tolerance_it_is_not_yet_valid(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(JWT_CLOCK_SKEW_SECONDS=30)
    async with app.test_app():
        assert (await protected(app, token(issued_in=60)))[0] == 422
        status, body = await protected(app, token(nbf=int(time.time()) + 60))
        assert (status, body) == (422, {"msg": "The token is not yet valid (nbf)"})


async def test_exp_stays_exact(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(JWT_CLOCK_SKEW_SECONDS=30)
    async with app.test_app():
        expired = token(issued_in=-100, expires_in=95)  # expired 5 s ago
        assert await protected(app, expired) == (401, {"msg": "Token has expired"})
    lenient = app_factory(JWT_CLOCK_SKEW_SECONDS=30, JWT_DECODE_LEEWAY=10)
    async with lenient.test_app():
        assert (await protected(lenient, expired))[0] == 200  # JWT_DECODE_LEEWAY says so


def test_both_verifiers_apply_it_to_iat_and_nbf_only() -> None:
    """The first-sight fast verifier and PyJWT's full decode agree."""
    keys = KeySet.from_config("HS256", secret=SECRET)
    rules = Rules(algorithms=frozenset({"HS256"}), required=("exp",), identity_claim_key="sub")
    skewed = replace(rules, clock_skew=30.0)
    ahead = token(issued_in=10)
    expired = token(issued_in=-100, expires_in=95)
    assert fast_verify(ahead, keys, rules) is None  # refused: PyJWT then decides
    assert fast_verify(ahead, keys, skewed) is not None
    assert fast_verify(expired, keys, skewed) is None

    def decode(encoded: str, skew: float) -> dict[str, Any]:
        return decode_complete(encoded, key=SECRET, algorithms=["HS256"], clock_skew=skew)[1]

    with pytest.raises(jwt.ImmatureSignatureError, match=r"not yet valid \(iat\)"):
        decode(ahead, 0)
    assert decode(ahead, 30)["sub"] == "1"
    with pytest.raises(jwt.ExpiredSignatureError, match="Signature has expired"):
        decode(expired, 30)
