"""Every JWTManager loader, as a plain function and as a coroutine function."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from quart import Quart, jsonify

from quart_app.jwt import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    current_user,
    decode_token,
    get_current_user,
    get_jwt,
    get_jwt_header,
    get_jwt_identity,
    jwt_required,
)
from tests.helpers.clock import FrozenClock
from tests.helpers.support import SECRET, bearer

Mode = str


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> Mode:
    return str(request.param)


def as_loader(mode: Mode, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` itself, or a coroutine function that yields to the loop and returns it."""
    if mode == "sync":
        return fn

    async def loader(*args: Any) -> Any:
        await asyncio.sleep(0)  # a real await, as a database call would
        return fn(*args)

    return loader


def make_app(**config: Any) -> tuple[Quart, JWTManager]:
    app = Quart(__name__)
    app.config.update({"JWT_SECRET_KEY": SECRET, **config})
    manager = JWTManager(app)

    @app.route("/protected", methods=["GET", "POST"])
    @jwt_required()
    async def protected() -> Any:
        return jsonify(claims=get_jwt(), header=get_jwt_header(), identity=get_jwt_identity())

    @app.get("/fresh")
    @jwt_required(fresh=True)
    async def fresh() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/user")
    @jwt_required()
    async def user() -> dict[str, Any]:
        return {"user": get_current_user(), "proxy": current_user["name"]}

    return app, manager


async def mint(app: Quart, identity: Any = "1", **kwargs: Any) -> str:
    async with app.app_context():
        return await create_access_token(identity, **kwargs)


async def get(app: Quart, token: str, path: str = "/protected") -> tuple[int, Any]:
    response = await app.test_client().get(path, headers=bearer(token))
    return response.status_code, await response.get_json()


# -- token creation ------------------------------------------------------------------


async def test_additional_claims_and_headers_loaders(mode: Mode) -> None:
    app, manager = make_app()
    manager.additional_claims_loader(as_loader(mode, lambda identity: {"role": f"r{identity}"}))
    manager.additional_headers_loader(as_loader(mode, lambda identity: {"x-who": identity}))
    token = await mint(app, "7", additional_claims={"extra": 1}, additional_headers={"x-more": 2})
    code, body = await get(app, token)
    assert code == 200
    assert body["claims"]["role"] == "r7" and body["claims"]["extra"] == 1
    assert body["header"]["x-who"] == "7" and body["header"]["x-more"] == 2


async def test_explicit_additional_claims_win_over_the_loader(mode: Mode) -> None:
    app, manager = make_app()
    manager.additional_claims_loader(as_loader(mode, lambda identity: {"role": "loader"}))
    token = await mint(app, additional_claims={"role": "explicit"})
    assert (await get(app, token))[1]["claims"]["role"] == "explicit"


async def test_user_identity_loader_turns_objects_into_the_identity(mode: Mode) -> None:
    app, manager = make_app()
    manager.user_identity_loader(as_loader(mode, lambda user: str(user["id"])))
    token = await mint(app, {"id": 42, "name": "zed"})
    assert (await get(app, token))[1]["identity"] == "42"
    async with app.app_context():
        refresh = await create_refresh_token({"id": 43})
        assert (await decode_token(refresh))["sub"] == "43"


async def test_encode_and_decode_key_loaders(mode: Mode) -> None:
    app, manager = make_app()
    per_user = {"1": "one-" + "k" * 40, "2": "two-" + "k" * 40}
    manager.encode_key_loader(as_loader(mode, lambda identity: per_user[identity]))
    seen: list[tuple[str, str]] = []

    def decode_key(header: dict[str, Any], claims: dict[str, Any]) -> str:
        seen.append((header["alg"], claims["sub"]))  # unverified contents
        return per_user[claims["sub"]]

    manager.decode_key_loader(as_loader(mode, decode_key))
    one, two = await mint(app, "1"), await mint(app, "2")
    assert (await get(app, one))[0] == 200 and (await get(app, two))[0] == 200
    assert seen == [("HS256", "1"), ("HS256", "2")]
    pyjwt.decode(one, per_user["1"], algorithms=["HS256"])
    # A token signed with another user's key fails verification.
    forged = pyjwt.encode(
        {**pyjwt.decode(one, options={"verify_signature": False}), "sub": "2"},
        per_user["1"],
        algorithm="HS256",
    )
    assert await get(app, forged) == (422, {"msg": "Signature verification failed"})


# -- verification --------------------------------------------------------------------


async def test_user_lookup_and_error_loaders(mode: Mode) -> None:
    app, manager = make_app()
    users = {"1": {"name": "alice"}}
    calls: list[str] = []

    def lookup(header: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any] | None:
        calls.append(claims["sub"])
        return users.get(claims["sub"])

    manager.user_lookup_loader(as_loader(mode, lookup))
    assert await get(app, await mint(app, "1"), "/user") == (
        200,
        {"user": {"name": "alice"}, "proxy": "alice"},
    )
    gone = await mint(app, "9")
    assert await get(app, gone, "/user") == (401, {"msg": "Error loading the user 9"})
    manager.user_lookup_error_loader(
        as_loader(mode, lambda header, claims: (jsonify(gone=claims["sub"]), 404))
    )
    assert await get(app, gone, "/user") == (404, {"gone": "9"})
    assert calls == ["1", "9", "9"]


async def test_token_in_blocklist_and_revoked_token_loaders(mode: Mode) -> None:
    app, manager = make_app()
    manager.token_in_blocklist_loader(
        as_loader(mode, lambda header, claims: claims.get("banned", False))
    )
    assert (await get(app, await mint(app)))[0] == 200
    banned = await mint(app, additional_claims={"banned": True})
    assert await get(app, banned) == (401, {"msg": "Token has been revoked"})
    manager.revoked_token_loader(
        as_loader(mode, lambda header, claims: (jsonify(revoked=claims["jti"]), 403))
    )
    code, body = await get(app, banned)
    assert (
        code == 403
        and body["revoked"] == pyjwt.decode(banned, options={"verify_signature": False})["jti"]
    )


async def test_token_verification_and_failed_loaders(mode: Mode) -> None:
    app, manager = make_app()
    manager.token_verification_loader(
        as_loader(mode, lambda header, claims: claims.get("scope") == "api")
    )
    assert (await get(app, await mint(app, additional_claims={"scope": "api"})))[0] == 200
    wrong = await mint(app, additional_claims={"scope": "web"})
    assert await get(app, wrong) == (400, {"msg": "User claims verification failed"})
    manager.token_verification_failed_loader(
        as_loader(mode, lambda header, claims: (jsonify(scope=claims["scope"]), 403))
    )
    assert await get(app, wrong) == (403, {"scope": "web"})


async def test_expired_token_loader_gets_the_expired_tokens_header_and_claims(
    mode: Mode, frozen_clock: FrozenClock
) -> None:
    app, manager = make_app()
    manager.clock = frozen_clock
    received: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def expired(header: dict[str, Any], claims: dict[str, Any]) -> Any:
        received.append((header, claims))
        return jsonify(expired_for=claims["sub"]), 419

    token = await mint(app, "5", expires_delta=-10)
    assert await get(app, token) == (401, {"msg": "Token has expired"})
    manager.expired_token_loader(as_loader(mode, expired))
    assert await get(app, token) == (419, {"expired_for": "5"})
    # Also when the token was verified (and cached) before it expired.
    live = await mint(app, "6", expires_delta=2)
    assert (await get(app, live))[0] == 200
    exp = pyjwt.decode(live, options={"verify_signature": False})["exp"]
    frozen_clock.advance(max(0.0, exp - frozen_clock() + 0.05))
    assert await get(app, live) == (419, {"expired_for": "6"})
    assert [claims["sub"] for _, claims in received] == ["5", "6"]
    assert all(header["alg"] == "HS256" for header, _ in received)


async def test_invalid_token_and_unauthorized_loaders(mode: Mode) -> None:
    app, manager = make_app()
    manager.invalid_token_loader(as_loader(mode, lambda reason: (jsonify(invalid=reason), 400)))
    manager.unauthorized_loader(as_loader(mode, lambda reason: (jsonify(missing=reason), 403)))
    assert await get(app, "abc") == (400, {"invalid": "Not enough segments"})
    response = await app.test_client().get("/protected")
    assert (response.status_code, await response.get_json()) == (
        403,
        {"missing": "Missing Authorization Header"},
    )
    refresh_app_token = await mint(app)  # the type check goes through invalid_token too
    async with app.app_context():
        refresh = await create_refresh_token("1")
    assert await get(app, refresh) == (400, {"invalid": "Only non-refresh tokens are allowed"})
    assert (await get(app, refresh_app_token))[0] == 200


async def test_unauthorized_loader_answers_csrf_errors(mode: Mode) -> None:
    app, manager = make_app(JWT_TOKEN_LOCATION=["cookies"])
    manager.unauthorized_loader(as_loader(mode, lambda reason: (jsonify(why=reason), 401)))
    token = await mint(app)
    client = app.test_client()
    client.set_cookie("localhost", "access_token_cookie", token)
    response = await client.post("/protected")
    assert await response.get_json() == {"why": "Missing CSRF token"}


async def test_needs_fresh_token_loader(mode: Mode) -> None:
    app, manager = make_app()
    stale = await mint(app)
    assert await get(app, stale, "/fresh") == (401, {"msg": "Fresh token required"})
    manager.needs_fresh_token_loader(
        as_loader(mode, lambda header, claims: (jsonify(fresh=claims["fresh"]), 403))
    )
    assert await get(app, stale, "/fresh") == (403, {"fresh": False})
    assert (await get(app, await mint(app, fresh=True), "/fresh"))[0] == 200


async def test_loader_order_is_fje_s(mode: Mode) -> None:
    """Decode, type, fresh, blocklist, verification loader, user lookup: each only runs
    when the checks before it passed."""
    app, manager = make_app()
    calls: list[str] = []

    def record(name: str, result: Any) -> Callable[..., Any]:
        def loader(header: dict[str, Any], claims: dict[str, Any]) -> Any:
            calls.append(name)
            return result

        return as_loader(mode, loader)

    manager.token_in_blocklist_loader(record("blocklist", False))
    manager.token_verification_loader(record("verification", True))
    manager.user_lookup_loader(record("lookup", {"name": "x"}))
    assert (await get(app, await mint(app, fresh=True), "/fresh"))[0] == 200
    assert calls == ["blocklist", "verification", "lookup"]
    calls.clear()
    assert (await get(app, await mint(app), "/fresh"))[0] == 401  # not fresh: stops there
    assert calls == []
    manager.token_verification_loader(record("verification", False))
    calls.clear()
    assert (await get(app, await mint(app)))[0] == 400
    assert calls == ["blocklist", "verification"]  # no lookup after a failed verification


async def test_decode_key_loader_is_asked_on_every_request(mode: Mode) -> None:
    """As FJE: changing the key it returns takes effect at once (no verified-token cache)."""
    app, manager = make_app()
    current = {"key": SECRET}
    manager.decode_key_loader(as_loader(mode, lambda header, claims: current["key"]))
    token = await mint(app)
    assert (await get(app, token))[0] == 200
    current["key"] = "rotated-" + "k" * 40
    assert await get(app, token) == (422, {"msg": "Signature verification failed"})
