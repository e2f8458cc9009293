"""jwt_required / verify_jwt_in_request: locations, optional, OPTIONS, context helpers."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Quart, jsonify, request

import quart_app.jwt as qje
from tests.helpers.jwt_apps import SECRET, mint

TOKEN = mint()


def app_with(**config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update({"JWT_SECRET_KEY": SECRET, **config})
    manager = qje.JWTManager(app)

    @manager.user_lookup_loader
    async def lookup(header: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
        return {"name": claims["sub"]}

    @app.route("/where", methods=["GET", "POST", "OPTIONS"])
    @qje.jwt_required(optional=True)
    async def where() -> Any:
        if request.method == "OPTIONS":
            return jsonify(preflight=True)
        if not qje.get_jwt():
            return jsonify(anonymous=True, location=qje.get_jwt_request_location())
        return jsonify(location=qje.get_jwt_request_location(), user=qje.current_user["name"])

    @app.route("/strict", methods=["GET", "POST", "OPTIONS"])
    @qje.jwt_required()
    def strict() -> Any:  # a sync view works too
        if request.method == "OPTIONS":  # exempt: no token was looked at (as FJE)
            return jsonify(preflight=True)
        return jsonify(identity=qje.get_jwt_identity())

    @app.get("/manual")
    async def manual() -> Any:
        verified = await qje.verify_jwt_in_request(optional=True, locations="query_string")
        return jsonify(verified=verified is not None, identity=qje.get_jwt_identity())

    return app


async def call(app: Quart, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, Any]:
    response = await app.test_client().open(path, method=method, **kwargs)
    return response.status_code, await response.get_json()


@pytest.mark.parametrize(
    ("kwargs", "location"),
    [
        ({"headers": {"Authorization": f"Bearer {TOKEN}"}}, "headers"),
        ({"query_string": {"jwt": TOKEN}}, "query_string"),
        ({"json": {"access_token": TOKEN}, "method": "POST"}, "json"),
        ({"headers": {"Cookie": f"access_token_cookie={TOKEN}"}}, "cookies"),
    ],
)
async def test_every_location_alone_and_in_combination(
    kwargs: dict[str, Any], location: str
) -> None:
    method = kwargs.pop("method", "GET")
    alone = app_with(JWT_TOKEN_LOCATION=[location])
    assert await call(alone, "/where", method, **kwargs) == (
        200,
        {"location": location, "user": "alice"},
    )
    everywhere = app_with(JWT_TOKEN_LOCATION=["headers", "cookies", "query_string", "json"])
    assert (await call(everywhere, "/where", method, **kwargs))[1]["location"] == location


async def test_first_configured_location_wins() -> None:
    app = app_with(JWT_TOKEN_LOCATION=["query_string", "headers"])
    other = mint(sub="bob")
    status, body = await call(
        app, "/strict", headers={"Authorization": f"Bearer {other}"}, query_string={"jwt": TOKEN}
    )
    assert (status, body) == (200, {"identity": "alice"})


async def test_combined_locations_message_lists_every_reason() -> None:
    app = app_with(JWT_TOKEN_LOCATION=["headers", "cookies", "query_string", "json"])
    assert await call(app, "/strict", "POST", json={}) == (
        401,
        {
            "msg": "Missing JWT in headers, cookies, query_string or json ("
            "Missing Authorization Header; "
            'Missing cookie "access_token_cookie"; '
            "Missing 'jwt' query paramater; "
            'Missing "access_token" key in json data.)'
        },
    )
    two = app_with(JWT_TOKEN_LOCATION=["headers", "cookies"])
    assert await call(two, "/strict") == (
        401,
        {
            "msg": "Missing JWT in headers or cookies (Missing Authorization Header; "
            'Missing cookie "access_token_cookie")'
        },
    )


async def test_optional_without_token_and_with_bad_token() -> None:
    app = app_with()
    assert await call(app, "/where") == (200, {"anonymous": True, "location": None})
    # A token that is present but bad is still an error (FJE).
    assert await call(app, "/where", headers={"Authorization": "Bearer x.y"}) == (
        422,
        {"msg": "Not enough segments"},
    )
    expired = mint(exp=1)
    assert await call(app, "/where", headers={"Authorization": f"Bearer {expired}"}) == (
        401,
        {"msg": "Token has expired"},
    )


async def test_options_is_exempt() -> None:
    app = app_with()
    for path in ("/strict", "/where"):
        assert await call(app, path, "OPTIONS") == (200, {"preflight": True}), path


async def test_verify_jwt_in_request_directly() -> None:
    app = app_with()
    assert await call(app, "/manual") == (200, {"verified": False, "identity": None})
    assert await call(app, "/manual", query_string={"jwt": TOKEN}) == (
        200,
        {"verified": True, "identity": "alice"},
    )


async def test_context_helpers_need_a_verified_request() -> None:
    app = app_with()
    async with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="jwt_required"):
            qje.get_jwt()
        with pytest.raises(RuntimeError, match="jwt_required"):
            qje.get_jwt_header()
        with pytest.raises(RuntimeError, match="user_lookup_loader"):
            qje.get_current_user()
        assert qje.get_jwt_request_location() is None


async def test_get_current_user_without_a_lookup_loader_raises_as_in_fje() -> None:
    app = Quart(__name__)
    app.config["JWT_SECRET_KEY"] = SECRET
    qje.JWTManager(app)
    async with app.test_request_context("/", headers={"Authorization": f"Bearer {TOKEN}"}):
        await qje.verify_jwt_in_request()
        assert qje.get_jwt_identity() == "alice"
        with pytest.raises(RuntimeError, match="user_lookup_loader"):
            qje.get_current_user()


async def test_unknown_location_is_an_error_when_a_token_is_looked_for() -> None:
    config = app_with(JWT_TOKEN_LOCATION=["body"]).extensions["flask-jwt-extended"].config
    with pytest.raises(RuntimeError, match="JWT_TOKEN_LOCATION can only contain"):
        _ = config.token_location


async def test_without_a_manager() -> None:
    app = Quart(__name__)
    async with app.test_request_context("/"):
        with pytest.raises(RuntimeError, match="JWTManager"):
            await qje.verify_jwt_in_request()


async def test_editing_get_jwt_does_not_leak_into_the_next_request() -> None:
    """Verified tokens are cached per worker; each request gets its own claims dict."""
    app = Quart(__name__)
    app.config["JWT_SECRET_KEY"] = SECRET
    qje.JWTManager(app)

    @app.get("/edit")
    @qje.jwt_required()
    async def edit() -> Any:
        claims = qje.get_jwt()
        seen = claims.get("seen", False)
        claims["seen"] = True
        qje.get_jwt_header()["seen"] = True
        return jsonify(seen=seen)

    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(3):
        assert await call(app, "/edit", headers=headers) == (200, {"seen": False})
