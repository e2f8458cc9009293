"""Cookie helpers (byte-for-byte the Set-Cookie headers of FJE) and CSRF double submit."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import flask
import flask_jwt_extended as fje
import pytest
from quart import Quart, jsonify

import quart_app.jwt as qje
from tests.helpers.jwt_apps import SECRET, mint
from tests.helpers.support import send

ACCESS = mint()
REFRESH = mint(type="refresh")

#: Each helper, called on the library (FJE or quart_app.jwt) and a response.
HELPERS: dict[str, Callable[[Any, Any], object]] = {
    "set-access": lambda m, r: m.set_access_cookies(r, ACCESS),
    "set-refresh": lambda m, r: m.set_refresh_cookies(r, REFRESH),
    "set-both-max-age-domain": lambda m, r: (
        m.set_access_cookies(r, ACCESS, max_age=60, domain="api.example.com"),
        m.set_refresh_cookies(r, REFRESH, max_age=120, domain="api.example.com"),
    ),
    "unset-access": lambda m, r: m.unset_access_cookies(r),
    "unset-refresh": lambda m, r: m.unset_refresh_cookies(r, domain="example.com"),
    "unset-all": lambda m, r: m.unset_jwt_cookies(r),
}
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "persistent": {"JWT_SESSION_COOKIE": False},
    "hardened": {
        "JWT_COOKIE_SECURE": True,
        "JWT_COOKIE_SAMESITE": "Strict",
        "JWT_COOKIE_DOMAIN": "example.com",
    },
    "renamed": {
        "JWT_ACCESS_COOKIE_NAME": "a",
        "JWT_REFRESH_COOKIE_NAME": "r",
        "JWT_ACCESS_COOKIE_PATH": "/api/",
        "JWT_REFRESH_COOKIE_PATH": "/token/",
        "JWT_ACCESS_CSRF_COOKIE_NAME": "ca",
        "JWT_REFRESH_CSRF_COOKIE_NAME": "cr",
        "JWT_ACCESS_CSRF_COOKIE_PATH": "/",
        "JWT_REFRESH_CSRF_COOKIE_PATH": "/token/",
    },
    "csrf-off": {"JWT_COOKIE_CSRF_PROTECT": False},
    "csrf-not-in-cookies": {"JWT_CSRF_IN_COOKIES": False},
}


def flask_cookies(config: dict[str, Any], helper: str) -> list[str]:
    app = flask.Flask("fje_cookies")
    app.config.update({"JWT_SECRET_KEY": SECRET, "JWT_TOKEN_LOCATION": ["cookies"], **config})
    fje.JWTManager(app)
    with app.test_request_context():
        response = flask.jsonify(ok=True)
        HELPERS[helper](fje, response)
        return sorted(response.headers.getlist("Set-Cookie"))


async def quart_cookies(config: dict[str, Any], helper: str) -> list[str]:
    app = Quart("quart_cookies")
    app.config.update({"JWT_SECRET_KEY": SECRET, "JWT_TOKEN_LOCATION": ["cookies"], **config})
    qje.JWTManager(app)
    async with app.test_request_context("/"):
        response = jsonify(ok=True)
        HELPERS[helper](qje, response)
        return sorted(response.headers.getlist("Set-Cookie"))


EXPIRES = re.compile(r"Expires=([^;]+)")


def expiry_apart(cookies: list[str]) -> list[tuple[str, float | None]]:
    """Each header with its Expires date taken out (as a timestamp), sorted.

    Both apps compute Expires from their own clock, so a second may tick between them.
    """
    apart = []
    for cookie in cookies:
        dates = EXPIRES.findall(cookie)
        when = parsedate_to_datetime(dates[0]).timestamp() if dates else None
        apart.append((EXPIRES.sub("Expires=<date>", cookie), when))
    return sorted(apart, key=lambda item: item[0])


@pytest.mark.parametrize("helper", sorted(HELPERS))
@pytest.mark.parametrize("config", sorted(CONFIGS))
async def test_set_cookie_headers_match_flask_jwt_extended(config: str, helper: str) -> None:
    ours = expiry_apart(await quart_cookies(CONFIGS[config], helper))
    theirs = expiry_apart(flask_cookies(CONFIGS[config], helper))
    assert [header for header, _ in ours] == [header for header, _ in theirs]
    for (_, our_date), (_, their_date) in zip(ours, theirs, strict=True):
        assert (our_date is None) == (their_date is None)
        if our_date is not None and their_date is not None:
            assert abs(our_date - their_date) <= 2
    assert ours  # something was set


async def test_csrf_cookie_carries_the_tokens_csrf_claim_and_is_readable_by_scripts() -> None:
    cookies = await quart_cookies({}, "set-access")
    csrf = next(c for c in cookies if c.startswith("csrf_access_token="))
    assert csrf.startswith("csrf_access_token=csrf-value;") and "HttpOnly" not in csrf
    jwt_cookie = next(c for c in cookies if c.startswith("access_token_cookie="))
    assert "HttpOnly" in jwt_cookie


# -- the double submit, end to end ------------------------------------------------------


def cookie_app(**config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update({"JWT_SECRET_KEY": SECRET, "JWT_TOKEN_LOCATION": ["cookies"], **config})
    qje.JWTManager(app)

    @app.post("/login")
    async def login() -> Any:
        response = jsonify(login=True)
        qje.set_access_cookies(response, await qje.create_access_token("alice"))
        qje.set_refresh_cookies(response, await qje.create_refresh_token("alice"))
        return response

    @app.post("/logout")
    async def logout() -> Any:
        response = jsonify(logout=True)
        qje.unset_jwt_cookies(response)
        return response

    @app.route("/data", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @qje.jwt_required()
    async def data() -> dict[str, Any]:
        return {"user": qje.get_jwt_identity(), "where": qje.get_jwt_request_location()}

    @app.post("/refresh")
    @qje.jwt_required(refresh=True)
    async def refresh() -> dict[str, Any]:
        return {"refreshed": qje.get_jwt_identity()}

    return app


def cookie(client: Any, name: str) -> str | None:
    jar = client.cookie_jar
    found = [c.value for c in jar if c.name == name]
    return found[0] if found else None


async def test_double_submit_flow() -> None:
    app = cookie_app()
    client = app.test_client()
    assert (await client.post("/login")).status_code == 200
    csrf = cookie(client, "csrf_access_token")
    assert csrf
    ok = await client.get("/data")  # GET is not a CSRF method
    assert (ok.status_code, await ok.get_json()) == (200, {"user": "alice", "where": "cookies"})
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        missing = await send(client, "/data", method)
        assert (missing.status_code, await missing.get_json()) == (
            401,
            {"msg": "Missing CSRF token"},
        )
        wrong = await send(client, "/data", method, headers={"X-CSRF-TOKEN": "forged"})
        assert (wrong.status_code, await wrong.get_json()) == (
            401,
            {"msg": "CSRF double submit tokens do not match"},
        )
        right = await send(client, "/data", method, headers={"X-CSRF-TOKEN": csrf})
        assert right.status_code == 200
    # The refresh cookie has its own CSRF value, which the access one does not replace.
    refresh_csrf = cookie(client, "csrf_refresh_token")
    assert refresh_csrf and refresh_csrf != csrf
    assert (await client.post("/refresh", headers={"X-CSRF-TOKEN": csrf})).status_code == 401
    assert (
        await client.post("/refresh", headers={"X-CSRF-TOKEN": refresh_csrf})
    ).status_code == 200
    # Logout clears every cookie; nothing authenticates any more.
    await client.post("/logout")
    assert cookie(client, "access_token_cookie") is None
    gone = await client.get("/data")
    assert (gone.status_code, await gone.get_json()) == (
        401,
        {"msg": 'Missing cookie "access_token_cookie"'},
    )


async def test_csrf_from_a_form_field_when_enabled() -> None:
    app = cookie_app(JWT_CSRF_CHECK_FORM=True, JWT_ACCESS_CSRF_FIELD_NAME="_csrf")
    client = app.test_client()
    await client.post("/login")
    csrf = cookie(client, "csrf_access_token")
    assert (await client.post("/data", form={"_csrf": csrf})).status_code == 200
    assert (await client.post("/data", form={"_csrf": "nope"})).status_code == 401
    assert (await client.post("/data", form={"other": csrf})).status_code == 401
    # Without the setting the form is not looked at.
    plain = cookie_app()
    plain_client = plain.test_client()
    await plain_client.post("/login")
    csrf = cookie(plain_client, "csrf_access_token")
    response = await plain_client.post("/data", form={"csrf_token": csrf})
    assert (await response.get_json()) == {"msg": "Missing CSRF token"}


async def test_custom_csrf_header_and_methods() -> None:
    app = cookie_app(JWT_ACCESS_CSRF_HEADER_NAME="X-XSRF", JWT_CSRF_METHODS=["DELETE"])
    client = app.test_client()
    await client.post("/login")
    csrf = cookie(client, "csrf_access_token")
    assert (await client.post("/data")).status_code == 200  # POST no longer checked
    assert (await client.delete("/data", headers={"X-CSRF-TOKEN": csrf})).status_code == 401
    assert (await client.delete("/data", headers={"X-XSRF": csrf})).status_code == 200


async def test_tokens_carry_a_csrf_claim_whenever_csrf_protection_is_on() -> None:
    """As FJE: even if the app reads tokens from headers, a route may accept cookies."""
    app = Quart(__name__)
    app.config.update({"JWT_SECRET_KEY": SECRET})
    qje.JWTManager(app)
    async with app.app_context():
        claims = await qje.decode_token(await qje.create_access_token("a"))
        assert isinstance(claims["csrf"], str) and await qje.get_csrf_token(
            await qje.create_access_token("a")
        )
    app.config["JWT_COOKIE_CSRF_PROTECT"] = False
    qje.get_manager(app).reload_config()
    async with app.app_context():
        assert "csrf" not in await qje.decode_token(await qje.create_access_token("a"))
