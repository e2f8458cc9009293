"""No 500 from any claim value: validly signed tokens whose claims hold huge, negative,
float, NaN and Infinity, boolean and nested values, on every path that reads a token.

``auth_time = 10**400`` was a 500 on every protected route (OverflowError); so was an
``exp`` of ``1e400`` (PyJWT's ``int(inf)``). Every date claim now goes through one range
check (``quart_app.jwt.tokens.numeric_date``) wherever a token is read: the fast path, the
decorators, the WebSocket handshake and first message, and introspection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import Quart
from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

from quart_app import create_app
from tests.helpers.support import SECRET, make_config, send

CLIENT_SECRET = "s" * 40
DATES = ("exp", "iat", "nbf", "auth_time")
CLAIMS = (*DATES, "fresh", "sub", "jti", "type", "fam", "username")

scalar = st.one_of(
    st.just(10**400),
    st.just(-(10**400)),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.sampled_from(["1e400", "NaN", "Infinity", "-1", "17000000000"]),
)
value = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


def signed(claims: dict[str, Any]) -> str:
    """HS256 over ``json.dumps`` (which writes NaN and Infinity, as a hostile issuer may)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    payload = b64(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = jwt.get_algorithm_by_name("HS256").sign(signing_input, SECRET.encode())
    return f"{header}.{payload}.{b64(signature)}"


def base_claims(kind: str) -> dict[str, Any]:
    now = time.time()
    return {
        "sub": "1",
        "iat": now,
        "nbf": int(now),
        "exp": int(now) + 600,
        "jti": str(uuid.uuid4()),
        "type": kind,
        "fresh": True,
        "username": "alice",
        "fam": uuid.uuid4().hex,
        "auth_time": now,
    }


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Quart, Any]]:
    config = make_config(
        Path(tmp_path_factory.mktemp("claims")),
        INTROSPECTION_CLIENTS=f"gateway:{CLIENT_SECRET}",
        RATELIMIT_ENABLED=False,
    )
    app = create_app(config)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.startup())
    client = app.test_client()
    loop.run_until_complete(
        client.post("/register", json={"username": "alice", "password": "correct-horse"})
    )
    try:
        yield app, loop
    finally:
        loop.run_until_complete(app.shutdown())
        loop.close()


async def _answers(app: Quart, access: str, refresh: str) -> list[tuple[str, int]]:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {access}"}
    answers = []
    for method, path in [
        ("GET", "/protected"),
        ("GET", "/protected"),  # the fast path, for a token verified once
        ("GET", "/auth/verify"),
        ("GET", "/me"),
    ]:
        response = await send(client, path, method, headers=auth)
        answers.append((path, response.status_code))
    response = await client.post("/token/refresh", headers={"Authorization": f"Bearer {refresh}"})
    answers.append(("/token/refresh", response.status_code))
    basic = base64.b64encode(f"gateway:{CLIENT_SECRET}".encode()).decode()
    for token in (access, refresh):
        response = await client.post(
            "/oauth/introspect",
            data=f"token={token}",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {basic}",
            },
        )
        answers.append(("/oauth/introspect", response.status_code))
    # The WebSocket handshake, then the first-message auth.
    try:
        async with client.websocket("/ws", headers=auth) as ws:
            await asyncio.wait_for(ws.receive(), 10)
        answers.append(("/ws header", 101))
    except WebsocketResponseError as error:
        answers.append(("/ws header", error.response.status_code))
    try:
        async with client.websocket("/ws") as ws:
            await ws.send(json.dumps({"type": "auth", "token": access}))
            await asyncio.wait_for(ws.receive(), 10)
        answers.append(("/ws message", 101))
    except WebsocketDisconnectError as error:
        answers.append(("/ws message", int(error.args[0]) if error.args else 0))
    return answers


def test_no_claim_value_is_a_500(running: tuple[Quart, Any]) -> None:
    app, loop = running

    @PROPERTY
    @given(claim=st.sampled_from(CLAIMS), hostile=value)
    def check(claim: str, hostile: Any) -> None:
        access, refresh = base_claims("access"), base_claims("refresh")
        access[claim] = refresh[claim] = hostile
        answers = loop.run_until_complete(_answers(app, signed(access), signed(refresh)))
        assert all(status not in (500, 1011) for _, status in answers), (claim, hostile, answers)
        if claim in DATES and type(hostile) in (int, float) and not -1e12 < hostile < 1e12:
            # A date out of range is refused everywhere, never carried.
            assert answers[0][1] in (401, 422), (claim, hostile, answers)
            assert answers[4][1] in (401, 422), (claim, hostile, answers)

    check()


@pytest.mark.parametrize("claim", DATES)
@pytest.mark.parametrize("hostile", [10**400, float("inf"), float("nan"), -(10**400)])
def test_each_date_claim_out_of_range_is_refused(
    running: tuple[Quart, Any], claim: str, hostile: Any
) -> None:
    """422 (out of range, not an integer), or 401 for an ``exp`` far in the past (expired,
    as Flask-JWT-Extended says of any past ``exp``)."""
    app, loop = running
    access = base_claims("access")
    access[claim] = hostile
    answers = loop.run_until_complete(_answers(app, signed(access), signed(base_claims("refresh"))))
    refused = 401 if claim == "exp" and hostile == -(10**400) else 422
    # /auth/verify (forward auth) answers every refused token with 401.
    assert answers[:4] == [
        ("/protected", refused),
        ("/protected", refused),
        ("/auth/verify", 401),
        ("/me", refused),
    ], answers
    assert answers[7:] == [("/ws header", refused), ("/ws message", 4401)], answers
