"""Input limits: body size, strict request models, usernames, passwords, header sizes."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest
from quart import Quart

from tests.helpers.support import Client, bearer, login, register, send

# --- body size -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/register"),
        ("POST", "/login"),
        ("POST", "/token/refresh"),
        ("POST", "/logout"),
        ("PUT", "/me/password"),
        ("GET", "/protected"),
        ("POST", "/nowhere"),
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_declared_body_over_the_limit_is_413_everywhere(
    client: Client, method: str, path: str, content_type: str | None
) -> None:
    """Whatever the route, the type, or the (missing) token: a 65 KiB body is a 413."""
    body = b'{"username": "' + b"a" * (64 * 1024) + b'"}'
    headers = {"Content-Length": str(len(body))}
    if content_type:
        headers["Content-Type"] = content_type
    response = await send(client, path, method, data=body, headers=headers)
    assert response.status_code == 413
    assert await response.get_json() == {"msg": "Request body too large"}


async def test_undeclared_body_over_the_limit_is_413(client: Client) -> None:
    """Without Content-Length (chunked), Quart cuts the body off as it is read."""
    response = await client.post("/login", json={"username": "a" * 70_000, "password": "x" * 8})
    assert response.status_code == 413


async def test_limit_is_configurable(app_factory: Callable[..., Quart]) -> None:
    app = app_factory(MAX_CONTENT_LENGTH=200)
    async with app.test_app():
        client = app.test_client()
        small = b'{"username": "alice", "password": "correct-horse"}'
        big = b'{"username": "alice", "password": "' + b"x" * 300 + b'"}'
        ok = await client.post(
            "/register",
            data=small,
            headers={"Content-Type": "application/json", "Content-Length": str(len(small))},
        )
        assert ok.status_code == 201
        refused = await client.post(
            "/register",
            data=big,
            headers={"Content-Type": "application/json", "Content-Length": str(len(big))},
        )
        assert refused.status_code == 413


# --- strict request models -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/register", "/login"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": 1, "password": "correct-horse"}, "username"),
        ({"username": ["alice"], "password": "correct-horse"}, "username"),
        ({"username": "alice", "password": 12345678}, "password"),
        ({"username": "alice", "password": None}, "password"),
        ({"username": "alice", "password": True}, "password"),
        ({"username": "alice"}, "password"),
        ({"password": "correct-horse"}, "username"),
        ({"username": "alice", "password": "correct-horse", "is_admin": True}, "is_admin"),
        ({"username": "alice", "password": "correct-horse", "id": 1}, "id"),
    ],
)
async def test_bad_fields_are_400_naming_the_field(
    client: Client, path: str, body: dict[str, Any], field: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 400
    msg = (await response.get_json())["msg"]
    assert msg.startswith(f"{field}:"), msg


@pytest.mark.parametrize("path", ["/register", "/login"])
@pytest.mark.parametrize("body", [[], ["alice", "pw"], "alice", 1, None, True])
async def test_json_that_is_not_an_object_is_400(client: Client, path: str, body: Any) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 400
    assert await response.get_json() == {"msg": "Request body must be a JSON object"}


@pytest.mark.parametrize("path", ["/register", "/login"])
@pytest.mark.parametrize("body", [b"{", b'{"username": "alice",}', b"\xff\xfe", b"NaN"])
async def test_broken_json_is_400(client: Client, path: str, body: bytes) -> None:
    response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "msg" in await response.get_json()


async def test_password_change_fields(tokens: dict[str, Any], client: Client) -> None:
    auth = bearer(tokens["access_token"])
    cases = [
        ({"old_password": "correct-horse"}, "new_password"),
        ({"old_password": "correct-horse", "new_password": "short"}, "new_password"),
        ({"old_password": 1, "new_password": "long-enough"}, "old_password"),
        ({"old_password": "correct-horse", "new_password": "long-enough", "x": 1}, "x"),
    ]
    for body, field in cases:
        response = await client.put("/me/password", json=body, headers=auth)
        assert response.status_code == 400, body
        assert (await response.get_json())["msg"].startswith(f"{field}:"), body


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("limit=1e3", "limit"),
        ("after_id=-1", "after_id"),
        ("after_id=99999999999999999999999", "after_id"),
    ],
)
async def test_bad_query_is_400_naming_the_parameter(
    tokens: dict[str, Any], client: Client, query: str, field: str
) -> None:
    response = await client.get(f"/users?{query}", headers=bearer(tokens["access_token"]))
    assert response.status_code == 400
    assert field in (await response.get_json())["msg"]


# --- usernames -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("submitted", "stored"),
    [
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth letters
        ("\ufb01le", "file"),  # the "fi" ligature
        ("\u212aelvin", "Kelvin"),  # KELVIN SIGN
        ("x\u2163", "xIV"),  # ROMAN NUMERAL FOUR
        ("user_name.with-dots", "user_name.with-dots"),
    ],
)
async def test_usernames_are_nfkc_normalised(client: Client, submitted: str, stored: str) -> None:
    created = await client.post("/register", json={"username": submitted, "password": "p" * 10})
    assert created.status_code == 201
    assert (await created.get_json())["username"] == stored
    # The normal form logs in, and so does any spelling with the same normal form.
    await login(client, stored, "p" * 10)
    await login(client, submitted, "p" * 10)


@pytest.mark.parametrize(
    "username",
    [
        "al",  # too short
        "a" * 65,  # too long
        "al ice",
        "alice!",
        "ali\u0000ce",
        "alice\n",
        "\u0430lice",  # Cyrillic a: a homoglyph of "alice"
        "\u0430\u043b\u0438\u0441\u0430",  # Cyrillic
        "ali\u200bce",  # zero-width space
        "\u0131stanbul",  # dotless i
        "../etc",
        "a/b",
        "'; DROP TABLE users; --",
        "",
    ],
)
async def test_usernames_outside_the_alphabet_are_400(client: Client, username: str) -> None:
    response = await client.post("/register", json={"username": username, "password": "p" * 10})
    assert response.status_code == 400
    assert (await response.get_json())["msg"].startswith("username:")


@pytest.mark.parametrize("variant", ["ALICE", "Alice", "aLiCe", "\uff21\uff2c\uff29\uff23\uff25"])
async def test_usernames_are_unique_without_regard_to_case(client: Client, variant: str) -> None:
    await register(client, "alice")
    response = await client.post("/register", json={"username": variant, "password": "p" * 10})
    assert response.status_code == 409
    assert await response.get_json() == {"msg": "Username already exists"}
    # ... and any of those spellings logs in as the one account.
    pair = await login(client, variant, "correct-horse")
    me = await client.get("/me", headers=bearer(pair["access_token"]))
    assert (await me.get_json())["username"] == "alice"


async def test_registration_race_has_one_winner(client: Client) -> None:
    """N parallel registrations of one name (in several spellings): one 201, the rest 409."""
    spellings = ["racer", "RACER", "Racer", "rAcEr", "\uff52\uff41\uff43\uff45\uff52"] * 4
    responses = await asyncio.gather(
        *(
            client.post("/register", json={"username": name, "password": f"password-{n}"})
            for n, name in enumerate(spellings)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (len(spellings) - 1)
    users = await client.get(
        "/users",
        headers=bearer((await login(client, "racer", await _winner(responses)))["access_token"]),
    )
    assert [u["username"].lower() for u in await users.get_json()] == ["racer"]


async def _winner(responses: list[Any]) -> str:
    for n, response in enumerate(responses):
        if response.status_code == 201:
            return f"password-{n}"
    raise AssertionError("no winner")


# --- passwords -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "status"),
    [
        ("p" * 7, 400),
        ("p" * 8, 201),
        ("p" * 1024, 201),
        ("p" * 1025, 400),
        ("\u00e9" * 1024, 201),  # characters, not bytes
        ("pass word \u0000 \U0001f600", 201),  # no composition rules, anything goes
    ],
)
async def test_password_length(client: Client, password: str, status: int) -> None:
    response = await client.post("/register", json={"username": "alice", "password": password})
    assert response.status_code == status
    if status == 400:
        assert (await response.get_json())["msg"].startswith("password:")
    else:
        await login(client, "alice", password)


# --- header sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status", "msg"),
    [
        ("Bearer " + "a" * 1_000_000, 422, "Token is too large"),
        ("Bearer " + "a." * 500_000, 422, "Token is too large"),
        (
            "Bearer " + "a " * 500_000,
            422,
            "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'",
        ),
        (
            "Token " + "a" * 1_000_000,
            401,
            "Missing 'Bearer' type in 'Authorization' header."
            " Expected 'Authorization: Bearer <JWT>'",
        ),
        ("Bearer x, " * 100_000, 401, None),
    ],
)
async def test_absurd_authorization_headers_are_4xx(
    client: Client, value: str, status: int, msg: str | None
) -> None:
    response = await client.get("/protected", headers={"Authorization": value})
    assert response.status_code == status
    body = await response.get_json()
    if msg is not None:
        assert body == {"msg": msg}


async def test_absurd_basic_credentials_are_400(client: Client) -> None:
    basic = base64.b64encode(b"a" * 500_000 + b":" + b"p" * 500_000).decode()
    response = await client.post("/login", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 400
    assert (await response.get_json())["msg"].startswith("username:")
