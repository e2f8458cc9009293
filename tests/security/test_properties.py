"""Property tests (hypothesis): the Authorization header parser and the request models.

The header properties run against the whole app (one event loop, one lifespan for all
examples): whatever the header, the answer is a 401 or 422 with one of FJE's texts, and a
valid token is found wherever FJE finds it among comma-separated fields.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from quart import Quart

from quart_app import create_app
from quart_app.errors import describe_validation_error
from quart_app.jwt import tokens
from quart_app.jwt.errors import JWTExtendedException
from quart_app.schemas import (
    USERNAME_RE,
    Credentials,
    PasswordChange,
    UsersQuery,
    normalise_username,
    username_key,
)
from tests.helpers.support import SECRET, make_config

MISSING_HEADER = "Missing Authorization Header"
MISSING_BEARER = (
    "Missing 'Bearer' type in 'Authorization' header. Expected 'Authorization: Bearer <JWT>'"
)
BAD_HEADER = "Bad Authorization header. Expected 'Authorization: Bearer <JWT>'"
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

# --- strategies --------------------------------------------------------------------------

B64URL = string.ascii_letters + string.digits + "-_"
#: Printable ASCII and tabs. (Non-ASCII octets are in the token corpus: the test client
#: sends header text as UTF-8 where a server would hand the app latin-1, so a NEL or NBSP
#: would be whitespace to the oracle and not to the app here.)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=300
)
token_like = st.one_of(
    st.text(alphabet=B64URL + ".=", max_size=200),
    st.lists(st.text(alphabet=B64URL, max_size=60), min_size=0, max_size=5).map(".".join),
    st.integers(min_value=8000, max_value=20_000).map(lambda n: "a" * n),
)
scheme = st.sampled_from(["Bearer", "bearer", "BEARER", "Token", "Basic", "JWT", ""])
separator = st.sampled_from([" ", "  ", "\t", "", ", ", ","])
authorization = st.one_of(
    header_text,
    st.tuples(scheme, separator, token_like).map("".join),
    st.tuples(scheme, st.just(" "), token_like, separator, header_text).map("".join),
)
#: Comma-separated fields that are not a Bearer field (FJE skips them).
other_field = st.tuples(
    st.sampled_from(["Basic", "Token", "Digest", "X"]),
    st.text(alphabet=string.ascii_letters + string.digits + "=/+", min_size=1, max_size=30),
).map(" ".join)

# --- the app, run once for every example ----------------------------------------------


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Quart, Any]]:
    app = create_app(make_config(Path(tmp_path_factory.mktemp("properties"))))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.startup())
    try:
        yield app, loop
    finally:
        loop.run_until_complete(app.shutdown())
        loop.close()


def get(running: tuple[Quart, Any], headers: dict[str, str]) -> tuple[int, Any]:
    app, loop = running

    async def call() -> tuple[int, Any]:
        response = await app.test_client().get("/protected", headers=headers)
        return response.status_code, await response.get_json()

    result: tuple[int, Any] = loop.run_until_complete(call())
    return result


def valid_token() -> str:
    import time
    import uuid

    now = int(time.time())
    claims = {"sub": "1", "iat": now, "nbf": now, "exp": now + 600, "type": "access"}
    return jwt.encode({**claims, "jti": str(uuid.uuid4())}, SECRET, algorithm="HS256")


def test_any_authorization_header_is_401_or_422(running: tuple[Quart, Any]) -> None:
    @PROPERTY
    @given(value=authorization)
    def check(value: str) -> None:
        status, body = get(running, {"Authorization": value})
        assert status in (401, 422), (value, status, body)
        assert set(body) == {"msg"} and isinstance(body["msg"], str)
        if status == 401:
            assert body["msg"] in (MISSING_HEADER, MISSING_BEARER), body
        # FJE's reading: comma-separated fields; the one whose first word is "Bearer".
        stripped = value.strip().strip(",")
        if not stripped:
            assert body == {"msg": MISSING_HEADER}, repr(value)
        elif not any(f.split()[:1] == ["Bearer"] for f in re.split(r",\s*", stripped)):
            assert body == {"msg": MISSING_BEARER}, value

    check()


def test_bearer_field_is_found_among_other_fields(running: tuple[Quart, Any]) -> None:
    @PROPERTY
    @given(
        before=st.lists(other_field, max_size=3),
        after=st.lists(other_field, max_size=3),
        spaces=st.sampled_from([" ", "  ", "\t"]),
    )
    def check(before: list[str], after: list[str], spaces: str) -> None:
        field = f"Bearer{spaces}{valid_token()}"
        status, body = get(running, {"Authorization": ", ".join([*before, field, *after])})
        assert status == 200, body

    check()


def test_extra_words_after_the_token_are_422(running: tuple[Quart, Any]) -> None:
    @PROPERTY
    @given(extra=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=20))
    def check(extra: str) -> None:
        status, body = get(running, {"Authorization": f"Bearer {valid_token()} {extra}"})
        assert (status, body) == (422, {"msg": BAD_HEADER})

    check()


@PROPERTY
@given(encoded=st.one_of(st.text(max_size=400), token_like))
def test_token_decoding_raises_only_token_errors(encoded: str) -> None:
    """Whatever the string, decoding fails with a PyJWT or extension error, nothing else."""
    try:
        tokens.decode_complete(encoded, key=SECRET, algorithms=["HS256"])
    except (jwt.PyJWTError, JWTExtendedException):
        pass
    else:
        raise AssertionError(f"decoded garbage: {encoded!r}")


# --- request models ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
usernames = st.one_of(
    st.text(max_size=70),
    st.from_regex(USERNAME_RE, fullmatch=True),
    st.text(alphabet="\uff41\uff42\uff21\uff22\ufb01\u212a\u2163abcAB_.-0", max_size=70),
)
passwords = st.one_of(st.text(max_size=40), st.text(min_size=1000, max_size=1100))


@PROPERTY
@given(
    username=st.one_of(usernames, json_values),
    password=st.one_of(passwords, json_values),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=2),
    drop=st.sampled_from([None, "username", "password"]),
)
def test_credentials_accept_exactly_the_documented_inputs(
    username: Any, password: Any, extra: dict[str, Any], drop: str | None
) -> None:
    raw = {"username": username, "password": password, **extra}
    if drop:
        raw.pop(drop, None)
    try:
        creds = Credentials.model_validate(raw)
    except ValidationError as error:
        msg = describe_validation_error(error)
        names = [*(str(key) or '""' for key in raw), "username", "password"]
        assert any(msg.startswith(f"{name}: ") for name in names), msg
        assert "Traceback" not in msg
        if isinstance(password, str) and 8 <= len(password) <= 1024:
            assert not msg.startswith("password:") or drop == "password"
        return
    assert set(raw) == {"username", "password"}, "unknown fields must be refused"
    assert isinstance(username, str) and isinstance(password, str)
    assert USERNAME_RE.fullmatch(creds.username)
    assert creds.username == normalise_username(username)
    assert 8 <= len(creds.password) <= 1024 and creds.password == password


@PROPERTY
@given(value=usernames)
def test_username_normalisation_is_idempotent_and_keys_are_case_free(value: str) -> None:
    try:
        once = normalise_username(value)
    except ValueError:
        return
    assert normalise_username(once) == once
    assert username_key(once) == username_key(once.upper()) == once.lower()
    assert username_key(normalise_username(value.swapcase())) == username_key(once)


@PROPERTY
@given(body=json_values)
def test_any_json_body_is_valid_or_a_named_400(body: Any) -> None:
    for model in (Credentials, PasswordChange):
        try:
            model.model_validate(body)
        except ValidationError as error:
            msg = describe_validation_error(error)
            assert msg == "Request body must be a JSON object" or ":" in msg, msg
            json.dumps(msg)  # always serialisable


@PROPERTY
@given(
    limit=st.one_of(st.integers(), st.text(max_size=12)),
    after_id=st.one_of(st.integers(), st.text(max_size=25)),
)
def test_users_query_bounds(limit: Any, after_id: Any) -> None:
    try:
        query = UsersQuery.model_validate({"limit": limit, "after_id": after_id})
    except ValidationError:
        return
    assert 1 <= query.limit <= 500
    assert 0 <= query.after_id < 2**63
