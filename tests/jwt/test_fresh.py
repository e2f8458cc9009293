"""Fresh tokens: a bool, or a time until which the token counts as fresh (FJE 4)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt as pyjwt
from quart import Quart

from quart_app.jwt import JWTManager, create_access_token, jwt_required
from quart_app.jwt.tokens import is_fresh
from tests.helpers.clock import FrozenClock
from tests.helpers.support import SECRET, bearer, login, register


def fresh_app(clock: Callable[[], float] = time.time) -> Quart:
    app = Quart(__name__)
    app.config["JWT_SECRET_KEY"] = SECRET
    JWTManager(app, clock=clock)

    @app.get("/fresh")
    @jwt_required(fresh=True)
    async def fresh() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/any")
    @jwt_required()
    async def any_token() -> dict[str, Any]:
        return {"ok": True}

    return app


async def answer(app: Quart, token: str, path: str = "/fresh") -> tuple[int, Any]:
    response = await app.test_client().get(path, headers=bearer(token))
    return response.status_code, await response.get_json()


async def test_bool_fresh() -> None:
    app = fresh_app()
    async with app.app_context():
        fresh = await create_access_token("1", fresh=True)
        stale = await create_access_token("1")
    assert await answer(app, fresh) == (200, {"ok": True})
    assert await answer(app, stale) == (401, {"msg": "Fresh token required"})
    assert (await answer(app, stale, "/any"))[0] == 200  # fresh only matters where asked


async def test_timedelta_fresh_is_a_deadline(frozen_clock: FrozenClock) -> None:
    app = fresh_app(frozen_clock)
    async with app.app_context():
        window = await create_access_token("1", fresh=timedelta(seconds=2))
        closed = await create_access_token("1", fresh=timedelta(seconds=-1))
    claims = pyjwt.decode(window, options={"verify_signature": False})
    assert isinstance(claims["fresh"], float)
    assert claims["iat"] + 1.9 < claims["fresh"] <= claims["iat"] + 2.0
    assert (await answer(app, window))[0] == 200
    assert await answer(app, closed) == (401, {"msg": "Fresh token required"})
    frozen_clock.advance(max(0.0, claims["fresh"] - frozen_clock() + 0.05))
    assert await answer(app, window) == (401, {"msg": "Fresh token required"})
    assert (await answer(app, window, "/any"))[0] == 200  # still a valid token


def test_fresh_boundary_is_fje_s() -> None:
    # FJE refuses when fresh < now: the very instant is still fresh.
    assert is_fresh({"fresh": 100.0}, now=100.0)
    assert not is_fresh({"fresh": 100.0}, now=100.001)
    assert not is_fresh({}, now=0)
    assert not is_fresh({"fresh": "yes"}, now=0)


async def test_login_gives_a_fresh_token_refresh_does_not(client: Any) -> None:
    await register(client)
    pair = await login(client)
    assert pyjwt.decode(pair["access_token"], options={"verify_signature": False})["fresh"] is True
    refreshed = await (
        await client.post("/token/refresh", headers=bearer(pair["refresh_token"]))
    ).get_json()
    body = {"old_password": "correct-horse", "new_password": "battery-staple"}
    stale = await client.put("/me/password", headers=bearer(refreshed["access_token"]), json=body)
    assert (stale.status_code, await stale.get_json()) == (401, {"msg": "Fresh token required"})
    ok = await client.put("/me/password", headers=bearer(pair["access_token"]), json=body)
    assert ok.status_code == 200
