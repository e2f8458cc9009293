"""The Flask-JWT-Extended 3.x API on quart_app.jwt answers as its 4.x form does on FJE 4.7.

Each case puts a 3.x name (decorator, helper, loader with its 3.x arguments, or setting)
on the Quart twin and the 4.x form that FJE's upgrade guide gives for it on the Flask
twin, sends both the same requests and compares status and body; the DeprecationWarning
must name the 4.x form.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from typing import Any

import flask_jwt_extended as fje
import jwt as pyjwt
import pytest

import quart_app.jwt as qje
from tests.helpers.jwt_apps import GHOST, REVOKED, SECRET, Call, mint
from tests.helpers.twins import Body, twins, whole_token


def request(token: str | None = None, path: str = "/protected") -> Call:
    return Call(path=path, headers={"Authorization": f"Bearer {token}"} if token else {})


def side(old: Callable[[], Any], new: Callable[[], Any]) -> Callable[[types.ModuleType], Any]:
    """``old()`` for quart_app.jwt, ``new()`` for FJE."""
    return lambda lib: old() if lib is qje else new()


ACCESS, REFRESH = mint(), mint(type="refresh")
NOT_FRESH, FRESH = mint(fresh=False), mint(fresh=True)

DECORATORS = [
    (
        "jwt_optional",
        lambda: qje.jwt_optional,
        lambda: fje.jwt_required(optional=True),
        "@jwt_required(optional=True)",
        [request(), request(ACCESS), request(REFRESH), request("garbage")],
    ),
    (
        "jwt_refresh_token_required",
        lambda: qje.jwt_refresh_token_required,
        lambda: fje.jwt_required(refresh=True),
        "@jwt_required(refresh=True)",
        [request(), request(ACCESS), request(REFRESH)],
    ),
    (
        "fresh_jwt_required",
        lambda: qje.fresh_jwt_required,
        lambda: fje.jwt_required(fresh=True),
        "@jwt_required(fresh=True)",
        [request(), request(NOT_FRESH), request(FRESH), request(REFRESH)],
    ),
    (
        "bare-jwt_required",
        lambda: qje.jwt_required,
        lambda: fje.jwt_required(),
        "@jwt_required()",
        [request(), request(ACCESS), request(REFRESH)],
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "form", "calls"), DECORATORS, ids=[d[0] for d in DECORATORS]
)
async def test_3x_decorators(
    name: str, old: Callable[[], Any], new: Callable[[], Any], form: str, calls: list[Call]
) -> None:
    with pytest.warns(DeprecationWarning, match=re.escape(f"use {form}")):
        pair = twins([("/protected", side(old, new), whole_token)])
    for call in calls:
        await pair.same(call)


HELPERS: list[tuple[str, Body, Body, str]] = [
    ("get_raw_jwt", lambda q: q.get_raw_jwt(), lambda f: f.get_jwt(), "get_jwt()"),
    (
        "get_raw_jwt_header",
        lambda q: q.get_raw_jwt_header(),
        lambda f: f.get_jwt_header(),
        "get_jwt_header()",
    ),
    ("get_jwt_claims", lambda q: q.get_jwt_claims(), lambda f: f.get_jwt(), "get_jwt()"),
]


@pytest.mark.parametrize(("name", "old", "new", "form"), HELPERS, ids=[h[0] for h in HELPERS])
async def test_3x_helpers(name: str, old: Body, new: Body, form: str) -> None:
    pair = twins([("/protected", {}, lambda lib: old(lib) if lib is qje else new(lib))])
    token = mint(role="admin", headers={"kid": "k1"})
    with pytest.warns(DeprecationWarning, match=re.escape(f"use {form}")):
        status, body = await pair.same(request(token))
    assert status == 200 and body


async def test_get_jwt_claims_of_a_token_made_by_fje_3() -> None:
    """3.x nested the user claims under JWT_USER_CLAIMS ("user_claims")."""
    pair = twins([("/protected", {}, lambda lib: lib.get_jwt_claims() if lib is qje else 0)])
    call = request(mint(user_claims={"role": "admin"}))
    with pytest.warns(DeprecationWarning):
        assert (await pair.send(call))[1] == (200, {"role": "admin"})
    pair.quart_app.config["JWT_USER_CLAIMS"] = "claims"
    call = request(mint(claims={"role": "user"}))
    with pytest.warns(DeprecationWarning) as caught:
        assert (await pair.send(call))[1] == (200, {"role": "user"})
    assert any("additional claims are at the top level" in str(w.message) for w in caught)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("verify_jwt_in_request_optional", {"optional": True}),
        ("verify_jwt_refresh_token_in_request", {"refresh": True}),
        ("verify_fresh_jwt_in_request", {"fresh": True}),
    ],
)
async def test_3x_verify_functions(old: str, new: dict[str, Any]) -> None:
    pair = twins()
    for token in (None, ACCESS, REFRESH, FRESH):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with pair.flask_app.test_request_context("/", headers=headers):
            try:
                fje.verify_jwt_in_request(**new)
                theirs: Any = fje.get_jwt()
            except Exception as error:
                theirs = type(error).__name__
        async with pair.quart_app.test_request_context("/", headers=headers):
            with pytest.warns(
                DeprecationWarning,
                match=re.escape(f"verify_jwt_in_request({next(iter(new))}=True)"),
            ):
                try:
                    await getattr(qje, old)()
                    ours: Any = qje.get_jwt()
                except Exception as error:
                    ours = type(error).__name__
        assert ours == theirs, token


# -- loaders ----------------------------------------------------------------------------


def user_body(lib: types.ModuleType) -> Any:
    return {"user": lib.get_current_user(), "jwt": lib.get_jwt()}


async def test_user_loader_callback_loader_and_its_error_loader() -> None:
    def setup(lib: types.ModuleType, manager: Any) -> None:
        def find(identity: str) -> Any:
            return None if identity == GHOST else {"name": identity}

        def missing(identity: str) -> Any:
            return {"msg": f"who is {identity}?"}, 404

        if lib is qje:
            with pytest.warns(DeprecationWarning, match="use user_lookup_loader"):
                manager.user_loader_callback_loader(find)
            with pytest.warns(DeprecationWarning, match="use user_lookup_error_loader"):
                manager.user_loader_error_loader(missing)
        else:
            manager.user_lookup_loader(lambda h, d: find(d["sub"]))
            manager.user_lookup_error_loader(lambda h, d: missing(d["sub"]))

    pair = twins([("/protected", {}, user_body)], setup=setup)
    assert (await pair.same(request(ACCESS)))[1]["user"] == {"name": "alice"}
    assert await pair.same(request(mint(sub=GHOST))) == (404, {"msg": "who is ghost?"})


@pytest.mark.parametrize(
    ("settings", "token", "revoked"),
    [
        ({}, mint(jti="revoked-jti"), True),
        ({}, mint(jti="fine"), False),
        ({"JWT_BLACKLIST_ENABLED": False}, mint(jti="revoked-jti"), False),
        ({"JWT_BLACKLIST_ENABLED": True}, mint(jti="revoked-jti"), True),
        ({"JWT_BLACKLIST_TOKEN_CHECKS": ["refresh"]}, mint(jti="revoked-jti"), False),
        ({"JWT_BLACKLIST_TOKEN_CHECKS": "access"}, mint(jti="revoked-jti"), True),
    ],
    ids=["default", "not-revoked", "disabled", "enabled", "refresh-only", "access-only"],
)
async def test_token_in_blacklist_loader_and_the_3x_blacklist_settings(
    settings: dict[str, Any], token: str, revoked: bool
) -> None:
    """3.x's settings become what the upgrade guide says to do instead: a 4.x
    blocklist loader that skips the token types 3.x did not check."""
    enabled = settings.get("JWT_BLACKLIST_ENABLED", True)
    checks = settings.get("JWT_BLACKLIST_TOKEN_CHECKS", ("access", "refresh"))
    checks = (checks,) if isinstance(checks, str) else checks

    def setup(lib: types.ModuleType, manager: Any) -> None:
        if lib is qje:
            with pytest.warns(DeprecationWarning, match="use token_in_blocklist_loader"):
                manager.token_in_blacklist_loader(lambda decoded: decoded["jti"] in REVOKED)
        else:

            def check(jwt_header: Any, jwt_data: Any) -> bool:
                if not enabled or jwt_data["type"] not in checks:
                    return False
                return jwt_data["jti"] in REVOKED

            manager.token_in_blocklist_loader(check)

    pair = twins(setup=setup, JWT_IDENTITY_CLAIM="sub")
    pair.quart_app.config.update(settings)
    expected = (401, {"msg": "Token has been revoked"}) if revoked else 200
    with pytest.warns(DeprecationWarning) if settings else _no_warning():
        answer = await pair.same(request(token))
    assert (answer if revoked else answer[0]) == expected


async def test_claims_verification_loaders() -> None:
    def setup(lib: types.ModuleType, manager: Any) -> None:
        def verify(claims: dict[str, Any]) -> bool:
            return claims.get("role") == "admin"

        def failed() -> Any:
            return {"msg": "admins only"}, 403

        if lib is qje:
            with pytest.warns(DeprecationWarning, match="use token_verification_loader"):
                manager.claims_verification_loader(verify)
            with pytest.warns(DeprecationWarning, match="use token_verification_failed_loader"):
                manager.claims_verification_failed_loader(failed)
        else:
            manager.token_verification_loader(lambda h, d: verify(d))
            manager.token_verification_failed_loader(lambda h, d: failed())

    pair = twins(setup=setup)
    assert (await pair.same(request(mint(role="admin"))))[0] == 200
    assert await pair.same(request(mint(role="user"))) == (403, {"msg": "admins only"})


async def test_3x_arguments_of_the_response_loaders() -> None:
    """expired_token_loader(token), needs_fresh_token_loader(), revoked_token_loader()."""

    def setup(lib: types.ModuleType, manager: Any) -> None:
        manager.token_in_blocklist_loader(lambda h, d: d["jti"] in REVOKED)
        if lib is qje:
            with pytest.warns(DeprecationWarning, match=r"use \(jwt_header, jwt_data\)"):
                manager.expired_token_loader(lambda token: ({"expired": token["sub"]}, 401))
                manager.needs_fresh_token_loader(lambda: ({"msg": "log in again"}, 401))
                manager.revoked_token_loader(lambda: ({"msg": "gone"}, 401))
        else:
            manager.expired_token_loader(lambda h, d: ({"expired": d["sub"]}, 401))
            manager.needs_fresh_token_loader(lambda h, d: ({"msg": "log in again"}, 401))
            manager.revoked_token_loader(lambda h, d: ({"msg": "gone"}, 401))

    pair = twins(setup=setup)
    assert await pair.same(request(mint(exp=1))) == (401, {"expired": "alice"})
    assert await pair.same(request(NOT_FRESH, "/fresh")) == (401, {"msg": "log in again"})
    assert await pair.same(request(mint(jti="revoked-jti"))) == (401, {"msg": "gone"})


async def test_user_claims_loader_and_3x_creation_arguments() -> None:
    def setup(lib: types.ModuleType, manager: Any) -> None:
        def extra(identity: str) -> dict[str, Any]:
            return {"role": "admin", "name": identity}

        if lib is qje:
            with pytest.warns(DeprecationWarning, match="use additional_claims_loader"):
                manager.user_claims_loader(extra)
        else:
            manager.additional_claims_loader(extra)

    pair = twins(setup=setup)
    with pair.flask_app.app_context():
        theirs = fje.create_access_token(
            "alice", additional_claims={"team": "x"}, additional_headers={"kid": "k"}
        )
    async with pair.quart_app.app_context():
        with pytest.warns(DeprecationWarning) as caught:
            ours = await qje.create_access_token(
                "alice", user_claims={"team": "x"}, headers={"kid": "k"}
            )
    assert {str(w.message).split("; ")[1] for w in caught} == {
        "use additional_claims=...",
        "use additional_headers=...",
    }
    ignore = {"iat", "nbf", "exp", "jti", "csrf"}
    theirs_claims, ours_claims = (
        {k: v for k, v in pyjwt.decode(t, SECRET, algorithms=["HS256"]).items() if k not in ignore}
        for t in (theirs, ours)
    )
    assert (
        ours_claims
        == theirs_claims
        == {
            "fresh": False,
            "type": "access",
            "sub": "alice",
            "role": "admin",
            "name": "alice",
            "team": "x",
        }
    )
    assert pyjwt.get_unverified_header(ours)["kid"] == pyjwt.get_unverified_header(theirs)["kid"]


async def test_3x_settings_keep_3x_s_identity_claim() -> None:
    """An app configured for 3.x (a 3.x setting, no JWT_IDENTITY_CLAIM) keeps the 3.x
    default "identity", so its tokens in circulation stay valid; FJE 4 needs it spelled."""
    from quart import Quart

    app = Quart(__name__)
    app.config.update(JWT_SECRET_KEY=SECRET, JWT_BLACKLIST_ENABLED=False)
    with pytest.warns(DeprecationWarning, match="JWT_IDENTITY_CLAIM = 'sub'"):
        qje.JWTManager(app)
    assert app.config["JWT_IDENTITY_CLAIM"] == "identity"
    pair = twins(JWT_IDENTITY_CLAIM="identity")
    pair.quart_app = app

    @app.get("/protected")
    @qje.jwt_required()
    async def protected() -> Any:
        return whole_token(qje)

    old_token = mint(sub=None, identity="alice")
    with pytest.warns(DeprecationWarning):
        status, body = await pair.same(request(old_token))
    assert status == 200 and body["identity"] == "alice"


class _no_warning:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


async def test_3x_loaders_may_be_coroutine_functions() -> None:
    """As every loader here: the 3.x aliases await what the callback returns."""
    from quart import Quart

    app = Quart(__name__)
    app.config["JWT_SECRET_KEY"] = SECRET
    manager = qje.JWTManager(app)

    async def find(identity: str) -> Any:
        return None if identity == GHOST else {"name": identity}

    async def blacklisted(decoded: dict[str, Any]) -> bool:
        return decoded["jti"] in REVOKED

    with pytest.warns(DeprecationWarning):
        manager.user_loader_callback_loader(find)
        manager.token_in_blacklist_loader(blacklisted)

    @app.get("/protected")
    @qje.jwt_required()
    async def protected() -> Any:
        return {"user": qje.get_current_user()}

    client = app.test_client()
    response = await client.get("/protected", headers={"Authorization": f"Bearer {ACCESS}"})
    assert (response.status_code, await response.get_json()) == (200, {"user": {"name": "alice"}})
    response = await client.get(
        "/protected", headers={"Authorization": f"Bearer {mint(jti='revoked-jti')}"}
    )
    assert (response.status_code, await response.get_json()) == (
        401,
        {"msg": "Token has been revoked"},
    )
    response = await client.get(
        "/protected", headers={"Authorization": f"Bearer {mint(sub=GHOST)}"}
    )
    assert (response.status_code, await response.get_json()) == (
        401,
        {"msg": "Error loading the user ghost"},
    )
