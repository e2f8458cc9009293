"""Resource-server mode: tokens verified with keys from a JWKS URL (httpx mock transport)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from quart import Quart

import quart_app.jwt as qje
from quart_app.jwt.jwks import RemoteKeySet, keys_from_jwks
from quart_app.jwt.keys import Key, generate_private_key
from tests.helpers.clock import FrozenClock

JWKS_URL = "http://issuer.test/.well-known/jwks.json"


def public_jwk(key: Key) -> dict[str, Any]:
    """The JWK of an asymmetric key (an HMAC secret has none)."""
    assert key.jwk is not None
    return key.jwk


class Issuer:
    """A JWKS endpoint we can rotate, break and count."""

    def __init__(self) -> None:
        self.keys: list[Key] = [Key("RS256", private=generate_private_key("RS256"))]
        self.down = False
        self.requests = 0

    def rotate(self) -> None:
        self.keys.append(Key("RS256", private=generate_private_key("RS256")))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk for key in self.keys]}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            return httpx.Response(503, text="down")
        return httpx.Response(200, json=self.jwks())

    def token(self, key: Key | None = None, **claims: Any) -> str:
        key = key or self.keys[-1]
        now = int(time.time())
        data = {"sub": "42", "iat": now, "nbf": now, "exp": now + 600, "jti": str(uuid.uuid4())}
        data |= {"type": "access", **claims}
        return pyjwt.encode(
            data, key.signing_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )


def resource_server(issuer: Issuer, **config: Any) -> Quart:
    """A Quart app with the extension and a JWKS URL, nothing else."""
    app = Quart(__name__)
    app.config.update(
        {
            "JWT_ALGORITHM": "RS256",
            "JWT_JWKS_URL": JWKS_URL,
            "JWT_JWKS_MIN_REFRESH_SECONDS": 3600,
            **config,
        }
    )
    manager = qje.JWTManager(app)
    keys = manager.keys
    assert isinstance(keys, RemoteKeySet)
    keys._transport = httpx.MockTransport(issuer.handler)

    @app.get("/whoami")
    @qje.jwt_required()
    async def whoami() -> dict[str, Any]:
        return {"sub": qje.get_jwt_identity()}

    return app


async def get(app: Quart, token: str) -> tuple[int, Any]:
    response = await app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, await response.get_json()


async def test_tokens_verify_with_the_published_keys_fetched_once() -> None:
    issuer = Issuer()
    app = resource_server(issuer)
    for _ in range(5):
        assert await get(app, issuer.token()) == (200, {"sub": "42"})
    assert issuer.requests == 1


async def test_an_unknown_kid_refetches_once_for_a_rotation_and_not_for_a_flood() -> None:
    issuer = Issuer()
    app = resource_server(issuer, JWT_JWKS_MIN_REFRESH_SECONDS=0)
    assert (await get(app, issuer.token()))[0] == 200
    issuer.rotate()
    assert await get(app, issuer.token()) == (200, {"sub": "42"})
    assert issuer.requests == 2

    flooded = resource_server(issuer)  # MIN_REFRESH one hour
    assert (await get(flooded, issuer.token()))[0] == 200
    strangers = [Key("RS256", private=generate_private_key("RS256")) for _ in range(3)]
    answers = await asyncio.gather(*(get(flooded, issuer.token(k)) for k in strangers * 10))
    assert {status for status, _ in answers} == {422}
    assert answers[0][1] == {"msg": 'No key matches the token\'s "kid" and "alg"'}
    assert issuer.requests == 3  # the first fetch of `flooded`, then one for the 30 tokens


async def test_concurrent_first_requests_share_one_fetch() -> None:
    issuer = Issuer()
    app = resource_server(issuer)
    answers = await asyncio.gather(*(get(app, issuer.token()) for _ in range(20)))
    assert {status for status, _ in answers} == {200}
    assert issuer.requests == 1


async def test_stale_keys_keep_serving_while_the_issuer_is_down() -> None:
    issuer = Issuer()
    app = resource_server(issuer, JWT_JWKS_MIN_REFRESH_SECONDS=0, JWT_JWKS_CACHE_SECONDS=0)
    assert (await get(app, issuer.token()))[0] == 200
    issuer.down = True
    for _ in range(3):  # each one also starts a background revalidation, which fails
        assert (await get(app, issuer.token()))[0] == 200
        await asyncio.sleep(0)
    issuer.rotate()  # a key the resource server cannot learn while the issuer is down
    assert (await get(app, issuer.token()))[0] == 422
    assert (await get(app, issuer.token(issuer.keys[0])))[0] == 200
    issuer.down = False
    assert (await get(app, issuer.token()))[0] == 200


async def test_a_retired_key_stops_verifying_after_a_background_refresh() -> None:
    issuer = Issuer()
    app = resource_server(issuer, JWT_JWKS_MIN_REFRESH_SECONDS=0, JWT_JWKS_CACHE_SECONDS=0)
    old = issuer.keys[0]
    assert (await get(app, issuer.token(old)))[0] == 200
    issuer.rotate()
    issuer.keys.remove(old)
    keys = qje.get_manager(app).keys
    assert isinstance(keys, RemoteKeySet)
    before = issuer.requests
    await keys.fetch()
    assert issuer.requests == before + 1
    assert (await get(app, issuer.token(old)))[0] == 422


async def test_the_algorithm_comes_from_the_configuration() -> None:
    issuer = Issuer()
    app = resource_server(issuer)
    key = issuer.keys[0]
    now = int(time.time())
    claims = {"sub": "1", "exp": now + 60, "jti": "x", "type": "access"}
    # HS256 with the published key's modulus as the secret (algorithm confusion): the key
    # is RSA, so it is never offered to HMAC, and HS256 is not configured anyway.
    confused = pyjwt.encode(
        claims, public_jwk(key)["n"], algorithm="HS256", headers={"kid": key.kid}
    )
    assert (await get(app, confused))[0] == 422
    # A token with an algorithm outside the configuration, valid key or not.
    rs512 = pyjwt.encode(claims, key.signing_key, algorithm="RS512", headers={"kid": key.kid})
    status, body = await get(app, rs512)
    assert status == 422 and body == {"msg": "The specified alg value is not allowed"}
    none = pyjwt.encode(claims, "", algorithm="none")
    assert (await get(app, none))[0] == 422


def test_jwks_entries_are_used_for_configured_algorithms_of_their_type_only() -> None:
    rsa_key = Key("RS256", private=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_key = Key("ES256", private=ec.generate_private_key(ec.SECP256R1()))
    document = {
        "keys": [
            {**public_jwk(rsa_key), "kid": "pinned-rs512", "alg": "RS512"},  # not configured
            {**public_jwk(rsa_key), "kid": "encryption", "use": "enc"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "secret"},
            {**public_jwk(ec_key), "kid": "ec-unpinned"},  # no ES* configured
            {**public_jwk(rsa_key), "kid": "rsa-unpinned"},
            {**public_jwk(rsa_key), "kid": "ps-pinned", "alg": "PS256"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not an object",
        ]
    }
    keys = keys_from_jwks(document, ["RS256", "PS256", "HS256"])
    by_kid = {key.kid: key for key in keys}
    assert set(by_kid) == {"rsa-unpinned", "ps-pinned"}
    assert by_kid["ps-pinned"].prepared("PS256") is not None
    assert by_kid["ps-pinned"].prepared("RS256") is None
    assert by_kid["rsa-unpinned"].prepared("HS256") is None
    with pytest.raises(ValueError, match="keys"):
        keys_from_jwks({"nokeys": []}, ["RS256"])


def test_jwks_mode_needs_an_asymmetric_algorithm_and_signs_nothing() -> None:
    app = Quart(__name__)
    app.config.update(JWT_JWKS_URL=JWKS_URL)  # JWT_ALGORITHM stays HS256
    manager = qje.JWTManager(app)
    with pytest.raises(RuntimeError, match="JWT_JWKS_URL needs an asymmetric"):
        manager.keys  # noqa: B018
    app.config.update(JWT_ALGORITHM="ES256")
    keys: Callable[[], Any] = lambda: qje.get_manager(app).keys  # noqa: E731
    with pytest.raises(RuntimeError, match="signs none"):
        keys().signing_key("ES256")


async def test_made_up_kids_cannot_starve_a_key_published_before_it_signs() -> None:
    """An attacker spends the resource server's refetch on made-up kids right before a
    rotation. Without a publication delay the first tokens of the new key are refused
    until the next refetch window; with the issuer's KEY_ACTIVATION_DELAY (at least the
    refetch bound) the key is published well before its first token, and one refetch
    finds it. Made-up kids within the window cost no fetch at all."""
    min_refresh = 1.0
    stranger = Key("RS256", private=generate_private_key("RS256"))
    for delay, expected in ((0.0, 422), (min_refresh + 0.2, 200)):
        issuer = Issuer()
        app = resource_server(issuer, JWT_JWKS_MIN_REFRESH_SECONDS=min_refresh)
        timer = FrozenClock(0.0)  # the refetch window's: moved, not waited for
        cast(RemoteKeySet, qje.get_manager(app).keys).timer = timer
        assert (await get(app, issuer.token()))[0] == 200
        timer.advance(min_refresh + 0.1)
        assert (await get(app, issuer.token(stranger)))[0] == 422  # spends the refetch
        issuer.rotate()  # published now; the issuer signs with it after `delay`
        fetches = issuer.requests
        for _ in range(20):  # a flood of made-up kids within the window: no fetch
            assert (await get(app, issuer.token(stranger)))[0] == 422
        assert issuer.requests == fetches
        timer.advance(delay)
        status, _ = await get(app, issuer.token())
        assert status == expected, (delay, status)
        if expected == 200:
            assert issuer.requests == fetches + 1  # one refetch found the new key
