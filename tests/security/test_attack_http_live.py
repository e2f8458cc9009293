"""HTTP findings of an attack round, replayed against live Hypercorn (2 workers).

* A validly signed token with ``auth_time = 10**400`` was a 500 on every protected route.
* ``/login`` took a JSON body sent as ``text/plain``, a form or multipart (login CSRF: no
  CORS preflight for those), the last of two duplicated JSON keys, and the first of two
  ``Authorization`` headers.
* Answers carrying or depending on a token had no ``Cache-Control: no-store``.
* With ``TRUSTED_PROXY_HOPS=1`` any client's ``X-Forwarded-For`` was believed: rotating it
  escaped the per-source block on failed logins.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers.live import Server
from tests.helpers.support import SECRET
from tests.helpers.ws_client import CREDENTIALS, WAIT, ws_url

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    instance = tmp_path_factory.mktemp("attackhttp") / "instance"
    with Server(instance, workers=2, env={"JWT_SECRET_KEY": SECRET}) as running:
        with httpx.Client(base_url=running.url, timeout=WAIT) as client:
            assert client.post("/register", json=CREDENTIALS).status_code == 201
        yield running


def _login(client: httpx.Client) -> dict[str, str]:
    response = client.post("/login", json=CREDENTIALS)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_huge_auth_time_is_refused_not_a_500(server: Server) -> None:
    now = int(time.time())
    claims = {"sub": "1", "iat": now, "nbf": now, "exp": now + 600, "jti": "j-huge"}
    token = jwt.encode({**claims, "type": "access", "auth_time": 10**400}, SECRET, "HS256")
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        for path in ("/protected", "/protected", "/me", "/users"):
            response = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 422, (path, response.text)
            assert response.json() == {
                "msg": "Authentication Time claim (auth_time) is out of range"
            }
        verify = client.get("/auth/verify", headers={"Authorization": f"Bearer {token}"})
        assert verify.status_code == 401


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (json.dumps(CREDENTIALS), {"Content-Type": "text/plain"}),
        (json.dumps(CREDENTIALS), {"Content-Type": "text/plain;charset=UTF-8"}),
        (
            "username=alice&password=correct-horse",
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
        (json.dumps(CREDENTIALS), {}),
    ],
    ids=["text-plain", "text-plain-charset", "form", "no-type"],
)
def test_login_takes_json_only_as_json(
    server: Server, content: str, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        response = client.post("/login", content=content, headers=headers)
        assert response.status_code == 415, response.text
        assert response.json() == {"msg": "Content-Type must be application/json"}
        multipart = client.post("/login", files={"username": (None, "alice")})
        assert multipart.status_code == 415
        assert client.post("/register", content=content, headers=headers).status_code == 415


def test_http_basic_login_needs_no_body(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        response = client.post("/login", auth=(CREDENTIALS["username"], CREDENTIALS["password"]))
        assert response.status_code == 200, response.text


def test_a_duplicated_json_key_is_a_400(server: Server) -> None:
    body = '{"username": "alice", "password": "wrong-password", "password": "correct-horse"}'
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        response = client.post("/login", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json() == {
            "msg": "Request body is not valid JSON: duplicate key 'password'"
        }
        nested = '{"username": "bob", "password": {"a": 1, "a": 2}}'
        response = client.post(
            "/register", content=nested, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert "duplicate key 'a'" in response.json()["msg"]


def test_two_authorization_headers_are_a_400(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        pair = _login(client)
        good = f"Bearer {pair['access_token']}"
        for path in ("/protected", "/protected", "/me", "/auth/verify"):
            response = client.get(
                path, headers=[("Authorization", good), ("Authorization", "Bearer x.y.z")]
            )
            assert response.status_code == 400, (path, response.text)
            assert response.json() == {"msg": "More than one Authorization header"}
        assert client.get("/protected", headers={"Authorization": good}).status_code == 200

    async def handshake() -> int:
        headers = [("Authorization", good), ("Authorization", good)]
        with pytest.raises(InvalidStatus) as caught:
            await connect(ws_url(server.url), additional_headers=headers, open_timeout=WAIT)
        return caught.value.response.status_code

    assert asyncio.run(handshake()) == 400


def test_token_answers_are_not_stored(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        pair = _login(client)
        auth = {"Authorization": f"Bearer {pair['access_token']}"}
        answers = {
            "/login": client.post("/login", json=CREDENTIALS),
            "/login 401": client.post("/login", json={**CREDENTIALS, "password": "wrong-one"}),
            "/token/refresh": client.post(
                "/token/refresh", headers={"Authorization": f"Bearer {pair['refresh_token']}"}
            ),
            "/protected": client.get("/protected", headers=auth),
            "/protected fast path": client.get("/protected", headers=auth),
            "/protected 401": client.get("/protected"),
            "/auth/verify": client.get("/auth/verify", headers=auth),
            "/me": client.get("/me", headers=auth),
            "/users": client.get("/users", headers=auth),
            "/register 409": client.post("/register", json=CREDENTIALS),
        }
        for name, response in answers.items():
            assert response.headers.get("Cache-Control") == "no-store", name


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    """Rotating X-Forwarded-For from a peer that is not in TRUSTED_PROXIES does not escape
    the per-source block; from a trusted proxy each forwarded address counts on its own."""
    blocked: dict[str, int] = {}
    for proxies in ("10.0.0.0/8", "127.0.0.1"):
        env = {
            "TRUSTED_PROXY_HOPS": "1",
            "TRUSTED_PROXIES": proxies,
            "LOGIN_SOURCE_BLOCK_THRESHOLD": "5",
        }
        with (
            Server(tmp_path / proxies.replace("/", "_"), workers=2, env=env) as running,
            httpx.Client(base_url=running.url, timeout=WAIT) as client,
        ):
            client.post("/register", json=CREDENTIALS)
            statuses = [
                client.post(
                    "/login",
                    json={**CREDENTIALS, "password": f"wrong-password-{i}"},
                    headers={"X-Forwarded-For": f"198.51.100.{i}"},
                ).status_code
                for i in range(8)  # fewer than the account's own lockout threshold (10)
            ]
            blocked[proxies] = statuses.count(429)
    assert blocked["10.0.0.0/8"] > 0, blocked  # the loopback peer is not a proxy: one source
    assert blocked["127.0.0.1"] == 0, blocked  # a trusted proxy: eight sources
