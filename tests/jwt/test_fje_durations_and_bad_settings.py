"""Durations and bad settings as in Flask-JWT-Extended 4.7: ``relativedelta`` wherever FJE
takes a ``timedelta``, and FJE's RuntimeError, with its text, raised at the moment FJE
raises it (a bad token location when a request looks for its token, a bad lifetime when
a token of that type is made), while everything else keeps working."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest
from dateutil.relativedelta import relativedelta

from tests.helpers.jwt_apps import SECRET, Call, mint, send_flask, send_quart
from tests.helpers.twins import Twins, twins


def request(token: str) -> Call:
    return Call(headers={"Authorization": f"Bearer {token}"})


def claims(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})


async def request_errors(pair: Twins, call: Call) -> tuple[Any, Any]:
    """What each app answers to ``call`` when a RuntimeError reaches its error handler."""

    def handler(error: RuntimeError) -> Any:
        return {"RuntimeError": str(error)}, 500

    pair.flask_app.register_error_handler(RuntimeError, handler)
    pair.quart_app.register_error_handler(RuntimeError, handler)
    return send_flask(pair.flask_app, call), await send_quart(pair.quart_app, call)


async def creation_errors(pair: Twins, kind: str) -> tuple[str, str]:
    """The RuntimeError each app raised making a ``kind`` token."""
    import flask_jwt_extended as fje

    import quart_app.jwt as qje

    with pair.flask_app.app_context(), pytest.raises(RuntimeError) as theirs:
        getattr(fje, f"create_{kind}_token")("alice")
    async with pair.quart_app.app_context():
        with pytest.raises(RuntimeError) as ours:
            await getattr(qje, f"create_{kind}_token")("alice")
    return str(theirs.value), str(ours.value)


LOCATION_ERRORS = [
    (1, "JWT_TOKEN_LOCATION must be a sequence or a set"),
    (
        [],
        'JWT_TOKEN_LOCATION must contain at least one of "headers", "cookies", "query_string",'
        ' or "json"',
    ),
    (
        ["headers", "body"],
        'JWT_TOKEN_LOCATION can only contain "headers", "cookies", "query_string", or "json"',
    ),
]


@pytest.mark.parametrize(("value", "text"), LOCATION_ERRORS, ids=["int", "empty", "unknown"])
async def test_bad_token_location_raises_when_a_token_is_looked_for(value: Any, text: str) -> None:
    pair = twins(JWT_TOKEN_LOCATION=value)
    answer = (500, {"RuntimeError": text})
    assert await request_errors(pair, request(mint())) == (answer, answer)
    # Making tokens does not read the setting: it still works in both.
    theirs, ours = await pair.tokens()
    assert claims(theirs)["sub"] == claims(ours)["sub"] == "alice"


async def test_empty_header_name_raises_when_headers_are_read() -> None:
    pair = twins(JWT_HEADER_NAME="")
    answer = (500, {"RuntimeError": "JWT_ACCESS_HEADER_NAME cannot be empty"})
    assert await request_errors(pair, request(mint())) == (answer, answer)


@pytest.mark.parametrize("value", ["15 minutes", None, True, [60]], ids=repr)
@pytest.mark.parametrize("kind", ["access", "refresh"])
async def test_bad_lifetime_raises_when_a_token_of_that_type_is_made(kind: str, value: Any) -> None:
    setting = f"JWT_{kind.upper()}_TOKEN_EXPIRES"
    pair = twins(**{setting: value})
    text = f"must be able to add {setting} to datetime.datetime"
    assert await creation_errors(pair, kind) == (text, text)
    # The other type's tokens are made, and every token is still verified.
    other = "refresh" if kind == "access" else "access"
    for token in await pair.tokens(other):
        assert claims(token)["type"] == other
    assert (await pair.same(request(mint())))[0] == 200


@pytest.mark.parametrize(
    "delta",
    [relativedelta(months=1), relativedelta(days=2, hours=3), timedelta(minutes=5), 90],
    ids=repr,
)
async def test_relativedelta_as_lifetime_setting(delta: Any) -> None:
    pair = twins(JWT_ACCESS_TOKEN_EXPIRES=delta, JWT_REFRESH_TOKEN_EXPIRES=delta)
    for kind in ("access", "refresh"):
        before = datetime.now(UTC)
        theirs, ours = await pair.tokens(kind)
        if isinstance(delta, int):
            delta = timedelta(seconds=delta)
        expected = int((before + delta).timestamp())
        for token in (theirs, ours):
            assert expected <= claims(token)["exp"] <= expected + 2, (kind, token)
        assert (await pair.same(request(theirs if kind == "access" else mint())))[0] == 200


async def test_relativedelta_as_expires_delta_and_fresh() -> None:
    pair = twins()
    delta = relativedelta(months=2)
    before = datetime.now(UTC)
    theirs, ours = await pair.tokens(expires_delta=delta, fresh=timedelta(minutes=10))
    expected = int((before + delta).timestamp())
    for token in (theirs, ours):
        assert expected <= claims(token)["exp"] <= expected + 2
        assert before.timestamp() + 600 <= claims(token)["fresh"] <= time.time() + 600
    # FJE takes only a timedelta as ``fresh``; here a relativedelta works as well.
    import quart_app.jwt as qje

    async with pair.quart_app.app_context():
        token = await qje.create_access_token("alice", fresh=relativedelta(minutes=10))
    assert before.timestamp() + 600 <= claims(token)["fresh"] <= time.time() + 600
    fresh = Call(path="/fresh", headers={"Authorization": f"Bearer {token}"})
    assert (await pair.same(fresh))[0] == 200


async def test_zero_lifetime_gives_tokens_without_exp_as_in_fje() -> None:
    pair = twins(JWT_ACCESS_TOKEN_EXPIRES=0)
    for token in await pair.tokens():
        assert "exp" not in claims(token)


async def test_relativedelta_as_leeway() -> None:
    """FJE hands JWT_DECODE_LEEWAY to PyJWT, which takes seconds or a timedelta only."""
    expired = mint(exp=int(time.time()) - 5)
    pair = twins(JWT_DECODE_LEEWAY=relativedelta(seconds=30))
    assert (await send_quart(pair.quart_app, request(expired)))[0] == 200
    pair.quart_app.config["JWT_DECODE_LEEWAY"] = relativedelta(seconds=1)
    assert await send_quart(pair.quart_app, request(expired)) == (401, {"msg": "Token has expired"})
