"""The manager's clock: one time source for creating and verifying tokens.

Verification with the real clock gives PyJWT's verdicts exactly (its error and text for
every mix of date, audience, issuer and claim faults); an injected clock moves every time
check at once, so a lifetime is crossed without waiting.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import jwt as pyjwt
import pytest
from jwt.types import Options
from quart import Quart, Response, websocket

import quart_app.jwt as qje
from quart_app.jwt import tokens
from quart_app.jwt.dpop import get_dpop
from quart_app.jwt.fast_verify import Rules, fast_verify
from tests.helpers.clock import FrozenClock

SECRET = "clock-secret-" + "c" * 40
#: Far from any boundary: the real clock moves during a test, never by this much.
FAR = 100_000


# -- parity with PyJWT's own date checks ---------------------------------------------------

DATES: dict[str, list[Any]] = {
    "iat": [None, -FAR, FAR, "soon", 1e400],
    "nbf": [None, -FAR, FAR, "x"],
    "exp": [None, FAR, -FAR, "later", [1]],
}
OTHERS: list[dict[str, Any]] = [
    {},
    {"aud": "elsewhere"},
    {"aud": None},
    {"iss": "mallory"},
    {"sub": 5},
    {"jti": 7},
    {"scope": None},
]


def _claims(dates: dict[str, Any], others: dict[str, Any], shift: float) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "1", "aud": "api", "iss": "us", "scope": "read"}
    for name, offset in dates.items():
        if offset is not None:
            claims[name] = time.time() + offset - shift if isinstance(offset, int) else offset
    for name, value in others.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _outcome(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        call()
    except pyjwt.PyJWTError as error:
        return type(error).__name__, str(error)
    return "ok", ""


@pytest.mark.parametrize("allow_expired", [False, True])
def test_date_checks_give_pyjwt_s_verdicts(allow_expired: bool) -> None:
    """Same error, same text, same precedence as PyJWT's decode, with the real clock and
    with a clock a day behind for a token made then."""
    plain = pyjwt.PyJWT()
    options: Options = {"require": ["scope"], "verify_exp": not allow_expired}
    combos = itertools.product(DATES["iat"], DATES["nbf"], DATES["exp"], OTHERS)
    for iat, nbf, exp, others in combos:
        dates = {"iat": iat, "nbf": nbf, "exp": exp}
        encoded = pyjwt.encode(_claims(dates, others, 0), SECRET, algorithm="HS256")
        expected = _outcome(
            partial(
                plain.decode_complete,
                encoded,
                SECRET,
                ["HS256"],
                options=options,
                audience="api",
                issuer="us",
            )
        )
        for shift in (0, 86_400):
            shifted = pyjwt.encode(_claims(dates, others, shift), SECRET, algorithm="HS256")
            now = None if shift == 0 else time.time() - shift
            got = _outcome(
                partial(
                    tokens.decode_complete,
                    shifted,
                    key=SECRET,
                    algorithms=["HS256"],
                    audience="api",
                    issuer="us",
                    required_claims=["scope"],
                    allow_expired=allow_expired,
                    now=now,
                )
            )
            assert got == expected, (dates, others, shift)


def test_the_fast_verifier_reads_the_given_time() -> None:
    keys = qje.KeySet.from_config("HS256", secret=SECRET)
    rules = Rules(algorithms=frozenset({"HS256"}), required=(), identity_claim_key="sub")
    now = time.time()
    encoded = pyjwt.encode({"sub": "1", "iat": now, "exp": int(now) + 60}, SECRET, "HS256")
    assert fast_verify(encoded, keys, rules, now=now) is not None
    assert fast_verify(encoded, keys, rules, now=now + 61) is None  # expired then
    assert fast_verify(encoded, keys, rules, now=now - 60) is None  # not yet issued


# -- the manager's clock -------------------------------------------------------------------


def clocked_app(clock: Callable[[], float], **config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update({"JWT_SECRET_KEY": SECRET, "TESTING": True, **config})
    qje.JWTManager(app, clock=clock)

    @app.get("/protected")
    @qje.jwt_required()
    async def protected() -> dict[str, Any]:
        return {"sub": qje.get_jwt_identity()}

    @app.get("/fresh")
    @qje.jwt_required(fresh=True)
    async def fresh() -> dict[str, Any]:
        return {"sub": qje.get_jwt_identity()}

    @app.post("/cookie")
    async def cookie() -> Response:
        response = Response("{}", content_type="application/json")
        qje.set_access_cookies(response, await qje.create_access_token("1"))
        return response

    @app.websocket("/ws")
    @qje.jwt_required()
    async def socket() -> None:
        await websocket.send("ready")
        while True:
            await websocket.send(await websocket.receive())

    return app


async def status(app: Quart, encoded: str, path: str = "/protected") -> tuple[int, Any]:
    response = await app.test_client().get(path, headers={"Authorization": f"Bearer {encoded}"})
    return response.status_code, await response.get_json()


def test_the_default_clock_is_the_real_one() -> None:
    manager = qje.JWTManager()
    assert manager.clock is time.time
    before = time.time()
    assert before <= manager.now() <= time.time()


def test_a_clock_must_be_callable() -> None:
    with pytest.raises(TypeError, match="clock must be a callable"):
        qje.JWTManager(clock=12.0)  # type: ignore[arg-type]
    manager = qje.JWTManager()
    with pytest.raises(TypeError, match="clock must be a callable"):
        manager.clock = "now"  # type: ignore[assignment]


async def test_new_tokens_take_their_dates_from_the_clock() -> None:
    clock = FrozenClock(1_700_000_000.25)
    app = clocked_app(clock, JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=15))
    async with app.app_context():
        encoded = await qje.create_access_token("1", fresh=timedelta(minutes=5))
    claims = pyjwt.decode(encoded, options={"verify_signature": False})
    assert claims["iat"] == 1_700_000_000.25
    assert claims["nbf"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_000 + 900
    assert claims["fresh"] == 1_700_000_000.25 + 300


async def test_expiry_is_crossed_by_advancing_the_clock() -> None:
    clock = FrozenClock()
    app = clocked_app(clock, JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=15))
    async with app.app_context():
        encoded = await qje.create_access_token("1")
    assert await status(app, encoded) == (200, {"sub": "1"})  # first sight: fast verifier
    assert await status(app, encoded) == (200, {"sub": "1"})  # the verified-token cache
    clock.advance(899)
    assert await status(app, encoded) == (200, {"sub": "1"})
    clock.advance(1)
    assert await status(app, encoded) == (401, {"msg": "Token has expired"})
    assert qje.get_manager(app).cached(encoded) is None


async def test_expiry_by_the_clock_on_the_full_decode() -> None:
    """A ``decode_key_loader`` sends every token through PyJWT's decode."""
    clock = FrozenClock()
    app = clocked_app(clock, JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=30), JWT_DECODE_LEEWAY=5)
    qje.get_manager(app).decode_key_loader(lambda header, claims: SECRET)
    async with app.app_context():
        encoded = await qje.create_access_token("1")
    assert await status(app, encoded) == (200, {"sub": "1"})
    clock.advance(34)
    assert await status(app, encoded) == (200, {"sub": "1"})  # within the leeway
    clock.advance(1)
    assert await status(app, encoded) == (401, {"msg": "Token has expired"})


async def test_a_token_from_the_clock_s_future_is_not_yet_valid() -> None:
    clock = FrozenClock()
    app = clocked_app(clock)
    async with app.app_context():
        encoded = await qje.create_access_token("1")
    clock.advance(-60)
    assert await status(app, encoded) == (422, {"msg": "The token is not yet valid (iat)"})
    qje.get_manager(app).clock_skew = 60
    assert await status(app, encoded) == (200, {"sub": "1"})


async def test_freshness_ends_by_the_clock() -> None:
    clock = FrozenClock()
    app = clocked_app(clock)
    async with app.app_context():
        encoded = await qje.create_access_token("1", fresh=timedelta(seconds=2))
    assert await status(app, encoded, "/fresh") == (200, {"sub": "1"})
    clock.advance(2)
    assert await status(app, encoded, "/fresh") == (200, {"sub": "1"})  # FJE: fresh >= now
    clock.advance(0.001)
    assert await status(app, encoded, "/fresh") == (401, {"msg": "Fresh token required"})
    assert await status(app, encoded) == (200, {"sub": "1"})


async def test_cookie_expiry_follows_the_clock() -> None:
    clock = FrozenClock(1_700_000_000)
    app = clocked_app(clock, JWT_SESSION_COOKIE=False, JWT_TOKEN_LOCATION=["cookies"])
    response = await app.test_client().post("/cookie")
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies
    for cookie in cookies:
        expires = next(p for p in cookie.split("; ") if p.startswith("Expires="))
        moment = parsedate_to_datetime(expires.removeprefix("Expires=")).timestamp()
        assert moment == 1_700_000_000 + 31_540_000  # FJE's one year (365 days)
        assert "Max-Age=31540000" in cookie


async def test_a_socket_ends_when_the_clock_passes_its_token_s_exp() -> None:
    clock = FrozenClock()
    app = clocked_app(clock, JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=15))
    async with app.app_context():
        encoded = await qje.create_access_token("1")
    headers = {"Authorization": f"Bearer {encoded}"}
    async with app.test_client().websocket("/ws", headers=headers) as ws:
        assert await ws.receive() == "ready"
        registry = qje.get_registry(app)
        clock.advance(899)
        registry.expire_due()
        await ws.send("still there?")
        assert await ws.receive() == "still there?"
        clock.advance(1)
        registry.expire_due()
        assert await ws.receive_json() == {"type": "expired", "msg": "Token has expired"}
    assert registry.ended["expired"] == 1


def test_keys_revocation_mirror_and_dpop_follow_the_manager_s_clock() -> None:
    clock = FrozenClock(1_000.0)
    app = clocked_app(clock)
    manager = qje.get_manager(app)
    manager.revocations = mirror = qje.RevocationList()
    mirror.apply([qje.Revocation("jti", "a", 1_010.0), qje.Revocation("jti", "b", 1_100.0)])
    assert mirror.prune() == 0
    clock.advance(10)
    assert mirror.prune() == 1
    assert not mirror.has_jti("a") and mirror.has_jti("b")
    assert get_dpop(app).clock() == 1_010.0
    clock.advance(5)
    assert get_dpop(app).clock() == 1_015.0
    manager.keys = keys = qje.KeySet.from_config("HS256", secret=SECRET)
    assert keys.clock() == 1_015.0
    own = qje.KeySet(clock=time.time)
    manager.keys = own
    assert own.clock is time.time  # made with a clock of its own: kept
