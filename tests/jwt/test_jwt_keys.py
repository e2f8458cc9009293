"""Algorithms, keys, kid, JWKS and rotation; algorithm confusion is impossible."""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import flask_jwt_extended as fje
import httpx
import jwt as pyjwt
import pytest
from quart import Quart

from quart_app.jwt import (
    JWTManager,
    create_access_token,
    decode_token,
    get_jwt,
    jwt_required,
    key_files,
)
from quart_app.jwt.key_files import KeyDirectory, rotate_keys
from quart_app.jwt.keys import (
    ASYMMETRIC_ALGORITHMS,
    KeySet,
    generate_private_key,
    private_pem,
    public_pem,
)
from tests.helpers.clock import FrozenClock
from tests.helpers.live import Server
from tests.helpers.support import SECRET, bearer, login, register

ASYMMETRIC = sorted(ASYMMETRIC_ALGORITHMS)
CREDENTIALS = {"username": "alice", "password": "correct-horse"}


def tiny_app(**config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update({"JWT_SECRET_KEY": SECRET, **config})
    JWTManager(app)

    @app.get("/protected")
    @jwt_required()
    async def protected() -> dict[str, Any]:
        return {"sub": get_jwt()["sub"]}

    return app


async def mint(app: Quart, identity: str = "1", **kwargs: Any) -> str:
    async with app.app_context():
        return await create_access_token(identity, **kwargs)


async def status(app: Quart, token: str) -> tuple[int, Any]:
    response = await app.test_client().get("/protected", headers=bearer(token))
    return response.status_code, await response.get_json()


# -- every algorithm -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
async def test_hmac_algorithms_sign_and_verify_without_kid(algorithm: str) -> None:
    app = tiny_app(JWT_ALGORITHM=algorithm, JWT_SECRET_KEY="k" * 64)
    token = await mint(app)
    assert pyjwt.get_unverified_header(token) == {"alg": algorithm, "typ": "JWT"}
    assert await status(app, token) == (200, {"sub": "1"})


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_asymmetric_algorithms_from_pem_settings(algorithm: str) -> None:
    private = generate_private_key(algorithm)
    app = tiny_app(
        JWT_ALGORITHM=algorithm,
        JWT_PRIVATE_KEY=private_pem(private).decode(),
        JWT_PUBLIC_KEY=public_pem(private.public_key()).decode(),
    )
    token = await mint(app)
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == algorithm
    assert header["kid"] == app.extensions["flask-jwt-extended"].jwks()["keys"][0]["kid"]
    assert await status(app, token) == (200, {"sub": "1"})
    # The public key alone verifies it (what a relying party holding the PEM does).
    claims = pyjwt.decode(token, private.public_key(), algorithms=[algorithm])
    assert claims["sub"] == "1"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
async def test_tokens_interoperate_with_flask_jwt_extended_on_the_same_pem(algorithm: str) -> None:
    private = generate_private_key(algorithm)
    config = {
        "JWT_ALGORITHM": algorithm,
        "JWT_PRIVATE_KEY": private_pem(private).decode(),
        "JWT_PUBLIC_KEY": public_pem(private.public_key()).decode(),
    }
    ours = tiny_app(**config)
    flask_app = flask.Flask("fje")
    flask_app.config.update(config)
    fje.JWTManager(flask_app)
    with flask_app.app_context():
        theirs = fje.create_access_token("7")
        assert fje.decode_token(await mint(ours, "8"))["sub"] == "8"
    assert await status(ours, theirs) == (200, {"sub": "7"})  # no kid: the one key


# -- algorithm confusion -------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, SECRET])
async def test_public_key_used_as_hmac_secret_is_refused(secret: str | None) -> None:
    private = generate_private_key("RS256")
    public_text = public_pem(private.public_key())
    app = tiny_app(
        JWT_ALGORITHM="RS256",
        JWT_DECODE_ALGORITHMS=["RS256", "HS256"],  # even with HS256 allowed
        JWT_PRIVATE_KEY=private_pem(private).decode(),
        JWT_PUBLIC_KEY=public_text.decode(),
        JWT_SECRET_KEY=secret,
    )
    good = await mint(app)
    kid = pyjwt.get_unverified_header(good)["kid"]
    claims = pyjwt.decode(good, private.public_key(), algorithms=["RS256"])
    # The classic attack: HMAC-sign with the public key's PEM bytes, keep the kid.
    header = pyjwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT","kid":"%s"}' % kid.encode())
    payload = pyjwt.utils.base64url_encode(json.dumps(claims).encode())
    signing_input = header + b"." + payload
    signature = hmac.new(public_text, signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + pyjwt.utils.base64url_encode(signature)).decode()
    code, body = await status(app, forged)
    expected = (
        "No key to verify an HS256 token" if secret is None else "Signature verification failed"
    )
    assert (code, body) == (422, {"msg": expected})
    assert (await status(app, good))[0] == 200


async def test_secret_never_verifies_an_asymmetric_token() -> None:
    app = tiny_app(JWT_ALGORITHM="HS256", JWT_DECODE_ALGORITHMS=["HS256", "RS256"])
    private = generate_private_key("RS256")
    foreign = pyjwt.encode(
        {"sub": "1", "exp": int(time.time()) + 60, "jti": "j", "type": "access"},
        private,
        algorithm="RS256",
    )
    assert await status(app, foreign) == (422, {"msg": "No key to verify an RS256 token"})


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_none_is_never_accepted(alg: str) -> None:
    app = tiny_app()
    header = pyjwt.utils.base64url_encode(b'{"alg":"%s","typ":"JWT"}' % alg.encode()).decode()
    claims = {"sub": "1", "exp": int(time.time()) + 60, "jti": "j", "type": "access"}
    payload = pyjwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    assert await status(app, f"{header}.{payload}.") == (
        422,
        {"msg": "The specified alg value is not allowed"},
    )
    with pytest.raises(RuntimeError, match="none"):
        _ = tiny_app(JWT_DECODE_ALGORITHMS=["HS256", alg]).extensions["flask-jwt-extended"].config


async def test_token_alg_must_match_its_keys_family_even_with_known_kid() -> None:
    rsa, ec = generate_private_key("RS256"), generate_private_key("ES256")
    key_set = KeySet.from_private_keys([(rsa, "RS256"), (ec, "ES256")])
    app = tiny_app(JWT_ALGORITHM="ES256", JWT_DECODE_ALGORITHMS=["RS256", "ES256", "PS256"])
    app.extensions["flask-jwt-extended"].keys = key_set
    rsa_kid = key_set.keys()[0].kid
    now = int(time.time())
    claims = {"sub": "1", "exp": now + 60, "jti": "j", "type": "access"}
    # PS256 with the RSA key and its kid: same family, allowed, verifies.
    ps = pyjwt.encode(claims, rsa, algorithm="PS256", headers={"kid": rsa_kid})
    assert (await status(app, ps))[0] == 200
    # ES256 claiming the RSA key's kid: refused.
    es = pyjwt.encode(claims, ec, algorithm="ES256", headers={"kid": rsa_kid})
    assert await status(app, es) == (422, {"msg": 'No key matches the token\'s "kid" and "alg"'})
    # An unknown kid: refused.
    other = pyjwt.encode(claims, ec, algorithm="ES256", headers={"kid": "nope"})
    assert (await status(app, other))[0] == 422


def test_unsupported_algorithm_is_a_configuration_error() -> None:
    with pytest.raises(RuntimeError, match="unsupported"):
        _ = tiny_app(JWT_ALGORITHM="XS256").extensions["flask-jwt-extended"].config


# -- JWKS and the app ----------------------------------------------------------------


async def test_jwks_is_404_with_a_json_msg_for_hs(client: Any) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 404
    assert "msg" in await response.get_json()


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
async def test_app_generates_a_key_once_and_publishes_it(
    app_factory: Callable[..., Quart], tmp_path: Path, algorithm: str
) -> None:
    app = app_factory(JWT_ALGORITHM=algorithm)
    async with app.test_app():
        client = app.test_client()
        await register(client)
        pair = await login(client)
        response = await client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert "max-age" in response.headers["Cache-Control"]
        jwks = await response.get_json()
        assert (
            await client.get("/protected", headers=bearer(pair["access_token"]))
        ).status_code == 200
    header = pyjwt.get_unverified_header(pair["access_token"])
    (jwk,) = jwks["keys"]
    assert jwk["kid"] == header["kid"] and jwk["alg"] == algorithm and jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)  # public members only
    # A relying party verifies with the JWKS alone.
    public = pyjwt.PyJWK(jwk)
    claims = pyjwt.decode(pair["access_token"], public, algorithms=[algorithm])
    assert claims["sub"] == "1"
    (key_file,) = (tmp_path / "instance" / "jwt-keys").glob("key-*.pem")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A second app on the same instance directory reuses the key.
    again = app_factory(JWT_ALGORITHM=algorithm)
    assert again.extensions["flask-jwt-extended"].jwks() == jwks


async def test_pem_files_in_settings(app_factory: Callable[..., Quart], tmp_path: Path) -> None:
    private = generate_private_key("ES256")
    (tmp_path / "priv.pem").write_bytes(private_pem(private))
    (tmp_path / "pub.pem").write_bytes(public_pem(private.public_key()))
    app = app_factory(
        JWT_ALGORITHM="ES256",
        JWT_PRIVATE_KEY_FILE=str(tmp_path / "priv.pem"),
        JWT_PUBLIC_KEY_FILE=str(tmp_path / "pub.pem"),
    )
    async with app.test_app():
        client = app.test_client()
        await register(client)
        pair = await login(client)
    assert pyjwt.decode(pair["access_token"], private.public_key(), algorithms=["ES256"])
    assert not (tmp_path / "instance" / "jwt-keys").exists()  # nothing generated


# -- rotation --------------------------------------------------------------------------


async def test_rotation_signs_with_the_new_key_and_still_accepts_the_old(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    worker_a = KeyDirectory(directory, "ES256", max_token_lifetime=900)
    worker_b = KeyDirectory(directory, "ES256", max_token_lifetime=900)  # another process
    app = tiny_app(JWT_ALGORITHM="ES256")
    app.extensions["flask-jwt-extended"].keys = worker_b
    old = await mint(app)
    old_kid = pyjwt.get_unverified_header(old)["kid"]

    new_key = rotate_keys(directory, "ES256", max_token_lifetime=900)
    assert new_key.kid != old_kid
    assert worker_a.signing_key("ES256").kid == old_kid  # not refreshed yet
    worker_b._checked = 0.0  # as if half a second had passed
    new = await mint(app)
    assert pyjwt.get_unverified_header(new)["kid"] == new_key.kid
    assert (await status(app, old))[0] == 200
    assert (await status(app, new))[0] == 200
    kids = [k["kid"] for k in worker_b.jwks()["keys"]]
    assert kids == [new_key.kid, old_kid]  # newest first
    assert len(list(directory.glob("key-*.pem"))) == 2


async def test_retired_keys_are_dropped_once_their_tokens_have_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frozen_clock: FrozenClock
) -> None:
    monkeypatch.setattr(key_files, "RETIREMENT_GRACE", 0.0)
    directory = tmp_path / "keys"
    key_set = KeyDirectory(directory, "EdDSA", max_token_lifetime=1, clock=frozen_clock)
    app = tiny_app(JWT_ALGORITHM="EdDSA", JWT_DECODE_LEEWAY=0)
    app.extensions["flask-jwt-extended"].clock = frozen_clock
    app.extensions["flask-jwt-extended"].keys = key_set
    old = await mint(app, expires_delta=1)
    old_kid = pyjwt.get_unverified_header(old)["kid"]
    key_set.rotate()
    assert old_kid in [k["kid"] for k in key_set.jwks()["keys"]]
    frozen_clock.advance(1.1)
    key_set.rotate()  # the next rotation deletes what is no longer needed
    kids = [k["kid"] for k in key_set.jwks()["keys"]]
    assert old_kid not in kids and len(kids) == 2
    assert len(list(directory.glob("key-*.pem"))) == 2
    app.extensions["flask-jwt-extended"].forget_verified()
    async with app.app_context():
        with pytest.raises(pyjwt.InvalidTokenError):
            await decode_token(old, allow_expired=True)


def _make_directory(path: str) -> str | None:
    return KeyDirectory(path, "ES256", 900).signing_key("ES256").kid


def test_workers_starting_together_generate_one_key(tmp_path: Path) -> None:
    directory = str(tmp_path / "keys")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        kids = pool.map(_make_directory, [directory] * 8)
    assert len(set(kids)) == 1
    assert len(list(Path(directory).glob("key-*.pem"))) == 1
    assert not list(Path(directory).glob(".key-*"))  # no temporary files left


@pytest.mark.live
def test_two_processes_share_the_generated_key_and_jwks(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    env = {"JWT_ALGORITHM": "EdDSA", "RATELIMIT_ENABLED": "false"}
    with Server(instance, env=env) as a, Server(instance, env=env) as b:
        assert httpx.post(f"{a.url}/register", json=CREDENTIALS, timeout=60).status_code == 201
        token = httpx.post(f"{a.url}/login", json=CREDENTIALS, timeout=60).json()["access_token"]
        assert httpx.get(f"{b.url}/protected", headers=bearer(token), timeout=60).status_code == 200
        jwks_a = httpx.get(f"{a.url}/.well-known/jwks.json", timeout=60).json()
        assert jwks_a == httpx.get(f"{b.url}/.well-known/jwks.json", timeout=60).json()
        assert jwks_a["keys"][0]["kid"] == pyjwt.get_unverified_header(token)["kid"]
