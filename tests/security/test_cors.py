"""CORS (quart-cors): off by default, an allow-list by configuration, never credentials."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from quart import Quart

from quart_app.security.cors import allowed_origins
from tests.helpers.support import Client

APP_ORIGIN = "https://app.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_off_by_default(client: Client) -> None:
    for response in (
        await client.get("/healthz", headers={"Origin": APP_ORIGIN}),
        await client.options("/login", headers={"Origin": APP_ORIGIN, **PREFLIGHT}),
        await client.post("/login", headers={"Origin": APP_ORIGIN}, json={}),
    ):
        assert not [
            k for k, _ in response.headers.items() if k.lower().startswith("access-control-")
        ]


@pytest.fixture
def cors_app(app_factory: Callable[..., Quart]) -> Quart:
    return app_factory(CORS_ALLOWED_ORIGINS=f"{APP_ORIGIN}, https://admin.example.com:8443")


async def test_allowed_origin_is_echoed(cors_app: Quart) -> None:
    async with cors_app.test_app():
        client = cors_app.test_client()
        for origin in (APP_ORIGIN, "https://admin.example.com:8443"):
            response = await client.get("/healthz", headers={"Origin": origin})
            assert response.headers["Access-Control-Allow-Origin"] == origin
            assert "Origin" in response.headers["Vary"]
            assert response.headers.get("Access-Control-Allow-Credentials") != "true"
            exposed = response.headers["Access-Control-Expose-Headers"].lower()
            assert "retry-after" in exposed


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "http://app.example.com",  # another scheme is another origin
        "https://app.example.com.evil.example",
        "https://app.example.com:444",
        "null",
    ],
)
async def test_other_origins_get_no_grant(cors_app: Quart, origin: str) -> None:
    async with cors_app.test_app():
        client = cors_app.test_client()
        response = await client.get("/healthz", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in response.headers
        preflight = await client.options("/login", headers={"Origin": origin, **PREFLIGHT})
        assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_preflight(cors_app: Quart) -> None:
    async with cors_app.test_app():
        client = cors_app.test_client()
        for path in ("/login", "/protected", "/me/password"):
            response = await client.options(path, headers={"Origin": APP_ORIGIN, **PREFLIGHT})
            assert response.status_code == 200, path  # no token needed for a preflight
            assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
            methods = response.headers["Access-Control-Allow-Methods"]
            assert "POST" in methods and "PUT" in methods and "DELETE" not in methods
            allowed = response.headers["Access-Control-Allow-Headers"].lower()
            assert "authorization" in allowed and "content-type" in allowed
            assert int(response.headers["Access-Control-Max-Age"]) > 0


async def test_preflight_does_not_grant_other_headers(cors_app: Quart) -> None:
    async with cors_app.test_app():
        client = cors_app.test_client()
        response = await client.options(
            "/login",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-evil",
            },
        )
        assert "x-evil" not in response.headers.get("Access-Control-Allow-Headers", "").lower()


async def test_wildcard(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(CORS_ALLOWED_ORIGINS="*")
    async with app.test_app():
        response = await app.test_client().get(
            "/healthz", headers={"Origin": "https://any.example"}
        )
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers.get("Access-Control-Allow-Credentials") != "true"


def test_origins_setting() -> None:
    assert allowed_origins("") == []
    assert allowed_origins(None) == []
    assert allowed_origins(" https://a.example ,https://b.example:8443,") == [
        "https://a.example",
        "https://b.example:8443",
    ]
    assert allowed_origins(["http://localhost:3000"]) == ["http://localhost:3000"]


@pytest.mark.parametrize(
    "bad", ["https://app.example.com/", "app.example.com", "https://a.example/path", "ftp://x.y"]
)
def test_malformed_origin_stops_start_up(app_factory: Callable[..., Quart], bad: str) -> None:
    with pytest.raises(RuntimeError, match="CORS_ALLOWED_ORIGINS"):
        app_factory(CORS_ALLOWED_ORIGINS=bad)
