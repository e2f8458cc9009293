"""The HTTP contract of the README's route table, with the exact FJE error texts."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest
from quart import Quart
from sqlalchemy import delete

from quart_app.services import services
from quart_app.store.models import User
from tests.helpers.support import SECRET, Client, bearer, login, register, send


def forge(**claims: Any) -> str:
    """A token signed with the app's secret, with exactly these claims."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


def valid_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "1",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": "j-1",
        "type": "access",
        "fresh": False,
        "username": "alice",
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


async def msg(response: Any) -> str:
    return str((await response.get_json())["msg"])


# -- /register --------------------------------------------------------------------------


async def test_register_returns_id_and_username(client: Client) -> None:
    body = await register(client, "alice")
    assert body == {"id": 1, "username": "alice"}


async def test_register_duplicate_is_409_without_regard_to_case(
    client: Client,
) -> None:
    await register(client, "alice")
    response = await client.post("/register", json={"username": "ALICE", "password": "x" * 8})
    assert response.status_code == 409
    assert await msg(response) == "Username already exists"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "alice"}, "password"),
        ({"password": "correct-horse"}, "username"),
        ({"username": "alice", "password": "short"}, "password"),
        ({"username": "alice", "password": "x" * 1025}, "password"),
        ({"username": "al", "password": "correct-horse"}, "username"),
        ({"username": "a" * 65, "password": "correct-horse"}, "username"),
        ({"username": "al ice", "password": "correct-horse"}, "username"),
        ({"username": "alice", "password": "correct-horse", "admin": True}, "admin"),
        ({"username": 123, "password": "correct-horse"}, "username"),
    ],
)
async def test_register_rejects_invalid_bodies_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/register", json=body)
    assert response.status_code == 400
    assert field in await msg(response)


async def test_register_rejects_non_json(client: Client) -> None:
    response = await client.post(
        "/register", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "msg" in await response.get_json()


async def test_register_normalises_fullwidth_username(client: Client) -> None:
    body = await register(client, "\uff41\uff4c\uff49\uff43\uff45")  # fullwidth "alice"
    assert body["username"] == "alice"


# -- /login -----------------------------------------------------------------------------


async def test_login_returns_token_pair(client: Client) -> None:
    await register(client)
    response = await client.post("/login", json={"username": "alice", "password": "correct-horse"})
    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert response.headers["Cache-Control"] == "no-store"


async def test_login_with_http_basic(client: Client) -> None:
    await register(client)
    basic = base64.b64encode(b"alice:correct-horse").decode()
    response = await client.post("/login", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200
    assert "access_token" in await response.get_json()


async def test_login_is_case_insensitive_on_username(client: Client) -> None:
    await register(client, "Alice")
    body = await login(client, "aLiCe")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["username"] == "Alice"


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "wrong-password"), ("nobody", "correct-horse")]
)
async def test_login_bad_credentials(client: Client, username: str, password: str) -> None:
    await register(client)
    response = await client.post("/login", json={"username": username, "password": password})
    assert response.status_code == 401
    assert await msg(response) == "Bad username or password"


async def test_login_without_credentials_is_400(client: Client) -> None:
    response = await client.post("/login")
    assert response.status_code == 400
    assert await msg(response) == "Missing JSON body or HTTP Basic credentials"


async def test_login_invalid_body_is_400(client: Client) -> None:
    response = await client.post("/login", json={"username": "alice"})
    assert response.status_code == 400
    assert "password" in await msg(response)


async def test_tokens_carry_the_contract_claims(tokens: dict[str, Any]) -> None:
    access = jwt.decode(tokens["access_token"], SECRET, algorithms=["HS256"])
    refresh = jwt.decode(tokens["refresh_token"], SECRET, algorithms=["HS256"])
    for claims in (access, refresh):
        assert {"sub", "iat", "nbf", "exp", "jti", "type", "fresh", "username"} <= set(claims)
        assert claims["sub"] == "1"
        assert claims["username"] == "alice"
    assert access["type"] == "access" and access["fresh"] is True
    assert refresh["type"] == "refresh" and refresh["fresh"] is False
    assert access["exp"] - int(access["iat"]) == 900
    assert refresh["exp"] - int(refresh["iat"]) == 30 * 24 * 3600
    assert access["jti"] != refresh["jti"]


# -- token errors on /protected ---------------------------------------------------------


async def test_protected_answers_from_the_token(client: Client, tokens: dict[str, Any]) -> None:
    response = await client.get("/protected", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert await response.get_json() == {"logged_in_as": "alice"}


@pytest.mark.parametrize(
    ("headers", "status", "text"),
    [
        ({}, 401, "Missing Authorization Header"),
        (
            {"Authorization": "Token abc"},
            401,
            "Missing 'Bearer' type in 'Authorization' header."
            " Expected 'Authorization: Bearer <JWT>'",
        ),
        (
            {"Authorization": "Bearer"},
            422,
            "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'",
        ),
        (
            {"Authorization": "Bearer a b"},
            422,
            "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'",
        ),
        ({"Authorization": "Bearer abc"}, 422, "Not enough segments"),
        ({"Authorization": "Bearer a.b.c"}, 422, "Invalid header padding"),
    ],
)
async def test_header_errors(
    client: Client, headers: dict[str, str], status: int, text: str
) -> None:
    response = await client.get("/protected", headers=headers)
    assert response.status_code == status
    assert await msg(response) == text


async def test_expired_token(client: Client) -> None:
    token = forge(**valid_claims(exp=int(time.time()) - 10))
    response = await client.get("/protected", headers=bearer(token))
    assert response.status_code == 401
    assert await msg(response) == "Token has expired"


async def test_bad_signature(client: Client) -> None:
    token = jwt.encode(valid_claims(), "another-secret-" + "y" * 40, algorithm="HS256")
    response = await client.get("/protected", headers=bearer(token))
    assert response.status_code == 422
    assert await msg(response) == "Signature verification failed"


@pytest.mark.parametrize("claim", ["sub", "exp", "jti", "type"])
async def test_required_claims(client: Client, claim: str) -> None:
    token = forge(**valid_claims(**{claim: None}))
    response = await client.get("/protected", headers=bearer(token))
    assert response.status_code == 422
    assert await msg(response) == f'Token is missing the "{claim}" claim'


async def test_alg_none_is_refused(client: Client) -> None:
    token = jwt.encode(valid_claims(), "", algorithm="none")
    response = await client.get("/protected", headers=bearer(token))
    assert response.status_code == 422
    assert await msg(response) == "The specified alg value is not allowed"


async def test_refresh_token_where_access_is_needed(client: Client, tokens: dict[str, Any]) -> None:
    response = await client.get("/protected", headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 422
    assert await msg(response) == "Only non-refresh tokens are allowed"


async def test_access_token_at_refresh(client: Client, tokens: dict[str, Any]) -> None:
    response = await client.post("/token/refresh", headers=bearer(tokens["access_token"]))
    assert response.status_code == 422
    assert await msg(response) == "Only refresh tokens are allowed"


async def test_options_is_exempt(client: Client) -> None:
    response = await client.options("/protected")
    assert response.status_code == 200


# -- /token/refresh ---------------------------------------------------------------------


async def test_refresh_rotates(client: Client, tokens: dict[str, Any]) -> None:
    response = await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["refresh_token"] != tokens["refresh_token"]
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert claims["fresh"] is False and claims["username"] == "alice"
    protected = await client.get("/protected", headers=bearer(body["access_token"]))
    assert protected.status_code == 200


async def test_reused_refresh_token_revokes_its_family(
    client: Client, tokens: dict[str, Any]
) -> None:
    first = await (
        await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    ).get_json()
    replay = await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    assert replay.status_code == 401
    assert await msg(replay) == "Token has been revoked"
    # The whole family is dead: the rotated pair and the original access token.
    for token, path, method in [
        (first["access_token"], "/protected", "GET"),
        (tokens["access_token"], "/protected", "GET"),
        (first["refresh_token"], "/token/refresh", "POST"),
    ]:
        response = await send(client, path, method, headers=bearer(token))
        assert response.status_code == 401, path
        assert await msg(response) == "Token has been revoked"


async def test_refresh_of_another_login_is_unaffected_by_reuse(
    client: Client, tokens: dict[str, Any]
) -> None:
    other = await login(client)
    await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    response = await client.get("/protected", headers=bearer(other["access_token"]))
    assert response.status_code == 200


# -- /logout ----------------------------------------------------------------------------


async def test_logout_revokes_access_and_refresh_family(
    client: Client, tokens: dict[str, Any]
) -> None:
    response = await client.post("/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert await response.get_json() == {"msg": "Successfully logged out"}
    again = await client.get("/protected", headers=bearer(tokens["access_token"]))
    assert again.status_code == 401 and await msg(again) == "Token has been revoked"
    refresh = await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    assert refresh.status_code == 401 and await msg(refresh) == "Token has been revoked"


async def test_logout_leaves_other_sessions_alone(client: Client, tokens: dict[str, Any]) -> None:
    other = await login(client)
    await client.post("/logout", headers=bearer(tokens["access_token"]))
    response = await client.get("/protected", headers=bearer(other["access_token"]))
    assert response.status_code == 200


# -- /users -----------------------------------------------------------------------------


async def test_users_keyset_pagination(client: Client) -> None:
    for index in range(5):
        await register(client, f"user{index}")
    token = (await login(client, "user0"))["access_token"]
    first = await (await client.get("/users?limit=2", headers=bearer(token))).get_json()
    assert [user["username"] for user in first] == ["user0", "user1"]
    after = first[-1]["id"]
    second = await (
        await client.get(f"/users?limit=2&after_id={after}", headers=bearer(token))
    ).get_json()
    assert [user["username"] for user in second] == ["user2", "user3"]
    everyone = await (await client.get("/users", headers=bearer(token))).get_json()
    assert len(everyone) == 5
    assert all(set(user) == {"id", "username"} for user in everyone)


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "after_id=-1"])
async def test_users_bad_query(client: Client, tokens: dict[str, Any], query: str) -> None:
    response = await client.get(f"/users?{query}", headers=bearer(tokens["access_token"]))
    assert response.status_code == 400
    assert "msg" in await response.get_json()


async def test_users_requires_a_token(client: Client) -> None:
    response = await client.get("/users")
    assert response.status_code == 401


# -- /me --------------------------------------------------------------------------------


async def test_me(client: Client, tokens: dict[str, Any]) -> None:
    response = await client.get("/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    body = await response.get_json()
    assert body["id"] == 1 and body["username"] == "alice"
    assert body["created_at"].endswith("+00:00")


async def test_me_for_a_deleted_user(app: Quart, client: Client, tokens: dict[str, Any]) -> None:
    async with services(app).db.session() as session, session.begin():
        await session.execute(delete(User))
    response = await client.get("/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 401
    assert await msg(response) == "Error loading the user 1"


# -- /me/password -----------------------------------------------------------------------


async def test_password_change_needs_a_fresh_token(client: Client, tokens: dict[str, Any]) -> None:
    refreshed = await (
        await client.post("/token/refresh", headers=bearer(tokens["refresh_token"]))
    ).get_json()
    response = await client.put(
        "/me/password",
        json={"old_password": "correct-horse", "new_password": "battery-staple"},
        headers=bearer(refreshed["access_token"]),
    )
    assert response.status_code == 401
    assert await msg(response) == "Fresh token required"


async def test_password_change_wrong_old_password(client: Client, tokens: dict[str, Any]) -> None:
    response = await client.put(
        "/me/password",
        json={"old_password": "not-the-password", "new_password": "battery-staple"},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 401
    assert await msg(response) == "Old password is incorrect"


async def test_password_change_revokes_every_earlier_token(
    client: Client, tokens: dict[str, Any]
) -> None:
    second = await login(client)
    response = await client.put(
        "/me/password",
        json={"old_password": "correct-horse", "new_password": "battery-staple"},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200
    for token, path, method in [
        (tokens["access_token"], "/protected", "GET"),
        (second["access_token"], "/protected", "GET"),
        (second["refresh_token"], "/token/refresh", "POST"),
    ]:
        stale = await send(client, path, method, headers=bearer(token))
        assert stale.status_code == 401 and await msg(stale) == "Token has been revoked"
    old = await client.post("/login", json={"username": "alice", "password": "correct-horse"})
    assert old.status_code == 401
    # A login right after the change (same second) gets tokens that work.
    fresh = await login(client, password="battery-staple")
    ok = await client.get("/protected", headers=bearer(fresh["access_token"]))
    assert ok.status_code == 200


async def test_password_change_validates_the_new_password(
    client: Client, tokens: dict[str, Any]
) -> None:
    response = await client.put(
        "/me/password",
        json={"old_password": "correct-horse", "new_password": "short"},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 400
    assert "new_password" in await msg(response)


# -- meta -------------------------------------------------------------------------------


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}


async def test_healthz_reports_a_dead_database(app: Quart, client: Client) -> None:
    db = services(app).db
    await db.close()
    try:
        response = await client.get("/healthz")
        assert response.status_code == 503
    finally:
        await db.open()


async def test_jwks_is_404_for_hmac(client: Client) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 404
    assert "msg" in await response.get_json()


async def test_openapi_describes_every_route(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    paths = spec["paths"]
    for path, method in [
        ("/register", "post"),
        ("/login", "post"),
        ("/token/refresh", "post"),
        ("/logout", "post"),
        ("/protected", "get"),
        ("/users", "get"),
        ("/me", "get"),
        ("/me/password", "put"),
        ("/healthz", "get"),
    ]:
        assert method in paths[path], path
    body = paths["/register"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    assert "username" in spec["components"]["schemas"][name]["properties"]
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_every_response_says_nosniff(client: Client) -> None:
    for path in ("/healthz", "/protected", "/nowhere"):
        response = await client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_unknown_route_and_method(client: Client) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404 and await msg(missing) == "Not found"
    wrong = await client.get("/login")
    assert wrong.status_code == 405 and await msg(wrong) == "Method not allowed"
