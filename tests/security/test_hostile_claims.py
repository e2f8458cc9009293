"""Validly signed tokens whose claims hold any JSON type: never a 500, on any route.

A compromised or buggy issuer (or a leaked secret) can sign anything. The session claims
(``jti``, ``fam``, ``auth_time``) of a token that cannot be matched against revocations
fail closed (401 revoked); ``sub`` must be a string (422); other claims are carried, not
trusted. Each token is sent twice to ``/protected``: the second answer comes from the
fast path, which must agree with the first.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from quart import Quart

from tests.helpers.support import SECRET, bearer, login, register

VALUES: dict[str, Any] = {
    "null": None,
    "true": True,
    "zero": 0,
    "negative": -1,
    "float": 1.5,
    "huge": 1e308,
    "empty": "",
    "string": "x" * 300,
    "list": [],
    "list-of-int": [1],
    "list-of-str": ["a"],
    "object": {},
    "object-nested": {"a": [{"b": None}]},
}
#: Claims whose wrong type must be refused (401/422) everywhere, not only survived.
SESSION = {"jti", "fam", "auth_time", "sub"}
CLAIMS = [*sorted(SESSION), "username", "fresh", "extra"]
ROUTES = [
    ("GET", "/protected", None),
    ("GET", "/protected", None),  # again: the fast path answers verified tokens
    ("GET", "/me", None),
    ("GET", "/users", None),
    ("PUT", "/me/password", {"old_password": "not-the-password", "new_password": "x" * 12}),
    ("POST", "/logout", None),
]


def token(claim: str, value: Any, kind: str = "access") -> str:
    now = time.time()
    claims: dict[str, Any] = {
        "sub": "1",
        "iat": now,
        "nbf": int(now),
        "exp": int(now) + 600,
        "jti": f"hostile-{claim}-{kind}-{now}",
        "type": kind,
        "fresh": True,
        "username": "alice",
        "fam": "f" * 32,
        "auth_time": now,
    }
    claims[claim] = value
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _is_well_typed(claim: str, value: Any) -> bool:
    if claim == "fam":  # null: a token of no family
        return isinstance(value, str | None)
    if claim in {"jti", "sub"}:
        return isinstance(value, str)
    if claim == "auth_time":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


@pytest.fixture
async def populated(app: Quart) -> Quart:
    """A mirror holding every kind of entry: a jti, a family and a user (``sub`` 2)."""
    client = app.test_client()
    await register(client)
    await register(client, "bob")
    alice = await login(client)
    assert (await client.post("/logout", headers=bearer(alice["access_token"]))).status_code == 200
    bob = await login(client, "bob")
    change = await client.put(
        "/me/password",
        json={"old_password": "correct-horse", "new_password": "battery-staple"},
        headers=bearer(bob["access_token"]),
    )
    assert change.status_code == 200
    return app


@pytest.mark.parametrize("claim", CLAIMS)
async def test_any_json_type_in_a_claim_never_500s(populated: Quart, claim: str) -> None:
    client = populated.test_client()
    for name, value in VALUES.items():
        access = token(claim, value)
        answers = []
        for method, path, body in ROUTES:
            response = await client.open(path, method=method, headers=bearer(access), json=body)
            data = await response.get_json()
            answers.append((path, response.status_code, data))
            assert response.status_code != 500, (claim, name, path, data)
            if response.status_code != 200:
                assert set(data) == {"msg"}, (claim, name, path, data)
            if not _is_well_typed(claim, value):
                assert response.status_code in (401, 422), (claim, name, path, data)
        assert answers[0] == answers[1], (claim, name, answers[:2])
        refresh_token = token(claim, value, "refresh")
        refresh = await client.post("/token/refresh", headers=bearer(refresh_token))
        data = await refresh.get_json()
        assert refresh.status_code != 500, (claim, name, data)
        if not _is_well_typed(claim, value):
            assert refresh.status_code in (401, 422), (claim, name, data)
