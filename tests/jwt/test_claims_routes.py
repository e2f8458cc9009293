"""Claims-only routes declared by any app with the extension alone, served by the fast path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from quart import Blueprint, Quart, request

import quart_app.jwt as qje
from quart_app.jwt.claims_routes import ClaimsFastPath, ClaimsResponse, claims_route, claims_routes

SECRET = "claims-route-secret-" + "c" * 40


def build_app(**config: Any) -> tuple[Quart, list[str], list[tuple[str, int]]]:
    """An app that knows nothing of the service: the JWT extension and two claims routes."""
    app = Quart(__name__)
    app.config.update(JWT_SECRET_KEY=SECRET, **config)
    manager = qje.JWTManager(app)
    manager.revocations = qje.RevocationList()

    @claims_route(app, "/whoami")
    def whoami(claims: Mapping[str, Any]) -> dict[str, Any]:
        return {"sub": claims["sub"], "roles": claims.get("roles", [])}

    bp = Blueprint("api", __name__)

    @claims_route(bp, "/ping", methods=("GET", "POST"))
    def ping(claims: Mapping[str, Any]) -> ClaimsResponse:
        return ClaimsResponse(status=202, headers={"X-Sub": str(claims["sub"])}, body=b"pong")

    app.register_blueprint(bp, url_prefix="/api/")

    seen: list[str] = []

    @app.before_request
    async def record() -> None:
        seen.append(f"{request.method} {request.path}")

    observed: list[tuple[str, int]] = []
    app.asgi_app = ClaimsFastPath(  # type: ignore[method-assign]
        app.asgi_app,
        app,
        headers=lambda scope: [(b"x-served", b"yes")],
        observe=lambda scope, rule, claims, status, elapsed: observed.append((rule, status)),
    )

    @app.route("/mint")
    async def mint() -> dict[str, str]:
        token = await qje.create_access_token("7", additional_claims={"roles": ["a"]})
        refresh = await qje.create_refresh_token("7")
        return {"access": token, "refresh": refresh}

    return app, seen, observed


async def tokens(app: Quart) -> dict[str, str]:
    response = await app.test_client().get("/mint")
    return await response.get_json()  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_registry_knows_app_and_blueprint_routes() -> None:
    app, _, _ = build_app()
    routes = claims_routes(app)
    assert set(routes) == {"/whoami", "/api/ping"}
    assert routes["/api/ping"].methods == frozenset({"GET", "POST"})


async def test_second_request_is_answered_below_quart_with_the_same_bytes() -> None:
    app, seen, observed = build_app()
    async with app.test_app():
        pair = await tokens(app)
        client = app.test_client()
        seen.clear()
        first = await client.get("/whoami", headers=bearer(pair["access"]))
        second = await client.get("/whoami", headers=bearer(pair["access"]))
        assert seen == ["GET /whoami"]
        assert observed == [("/whoami", 200)]
        assert first.status_code == second.status_code == 200
        assert await first.get_data() == await second.get_data() == b'{"roles":["a"],"sub":"7"}\n'
        assert first.headers["Content-Type"] == second.headers["Content-Type"]
        assert first.headers["Content-Length"] == second.headers["Content-Length"]
        assert second.headers["X-Served"] == "yes"


async def test_claims_response_on_a_prefixed_blueprint_route() -> None:
    app, seen, _ = build_app()
    async with app.test_app():
        pair = await tokens(app)
        client = app.test_client()
        seen.clear()
        answers = [await client.post("/api/ping", headers=bearer(pair["access"])) for _ in range(2)]
        assert seen == ["POST /api/ping"]
        for answer in answers:
            assert answer.status_code == 202
            assert answer.headers["X-Sub"] == "7"
            assert await answer.get_data() == b"pong"
        # A method the route does not accept is Quart's 405, never a fast answer.
        assert (await client.put("/api/ping", headers=bearer(pair["access"]))).status_code == 405


async def test_errors_revocation_and_refresh_tokens_go_to_quart() -> None:
    app, seen, _ = build_app()
    async with app.test_app():
        pair = await tokens(app)
        client = app.test_client()
        response = await client.get("/whoami", headers=bearer(pair["refresh"]))
        assert response.status_code == 422
        assert await response.get_json() == {"msg": "Only non-refresh tokens are allowed"}
        assert (await client.get("/whoami", headers=bearer(pair["access"]))).status_code == 200
        manager = qje.get_manager(app)
        _, data = await manager.decode(pair["access"])
        manager.revocations.apply([qje.Revocation("jti", data["jti"], data["exp"])])  # type: ignore[union-attr]
        seen.clear()
        response = await client.get("/whoami", headers=bearer(pair["access"]))
        assert response.status_code == 401
        assert await response.get_json() == {"msg": "Token has been revoked"}
        assert seen == ["GET /whoami"]


async def test_a_blocklist_loader_keeps_every_request_in_quart() -> None:
    app, seen, _ = build_app()
    calls: list[str] = []

    @qje.get_manager(app).token_in_blocklist_loader
    def blocked(header: dict[str, Any], claims: dict[str, Any]) -> bool:
        calls.append(claims["jti"])
        return False

    async with app.test_app():
        pair = await tokens(app)
        client = app.test_client()
        seen.clear()
        for _ in range(3):
            assert (await client.get("/whoami", headers=bearer(pair["access"]))).status_code == 200
        assert len(seen) == 3 and len(calls) == 3


def test_a_pattern_is_refused() -> None:
    app = Quart(__name__)
    with pytest.raises(ValueError, match="fixed path"):
        claims_route(app, "/users/<int:id>")(lambda claims: {})
