"""A classic Flask-JWT-Extended tutorial's app runs on Quart with only imports and async/await
changed (``tutorial_app.py``): login hands out an access and a refresh token, the access token opens
/protected, the refresh token gets a new access token from /token/refresh, and the tokens
never expire (``JWT_ACCESS_TOKEN_EXPIRES = False``)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import ModuleType

import jwt as pyjwt
import pytest
from quart import Quart

from tests.helpers.support import bearer

TUTORIAL_APP = Path(__file__).parents[1] / "helpers" / "tutorial_app.py"


def load_tutorial_app() -> tuple[Quart, list[str]]:
    """A fresh copy of the article's module, and the deprecation warnings it raised."""
    spec = importlib.util.spec_from_file_location("tutorial_app", TUTORIAL_APP)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec.loader.exec_module(module)
    deprecations = [str(w.message) for w in caught if w.category is DeprecationWarning]
    return module.app, deprecations


def test_the_3x_names_warn_with_their_4x_form() -> None:
    _, deprecations = load_tutorial_app()
    assert deprecations == [
        "@jwt_required without parentheses is the Flask-JWT-Extended 3.x API; use @jwt_required()",
        "@jwt_refresh_token_required is the Flask-JWT-Extended 3.x API;"
        " use @jwt_required(refresh=True)",
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_the_article_s_flow() -> None:
    app, _ = load_tutorial_app()
    client = app.test_client()
    response = await client.post("/register", json={"username": "alice", "password": "pw"})
    assert response.status_code == 201
    response = await client.post("/login", json={"username": "alice", "password": "pw"})
    assert response.status_code == 200
    tokens = await response.get_json()
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    claims = pyjwt.decode(access, "your-secret-key", algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["type"] == "access" and "exp" not in claims

    response = await client.get("/protected", headers=bearer(access))
    assert (response.status_code, await response.get_json()) == (200, {"logged_in_as": "alice"})

    response = await client.post("/token/refresh", headers=bearer(refresh))
    assert response.status_code == 200
    new_access = (await response.get_json())["access_token"]
    response = await client.get("/protected", headers=bearer(new_access))
    assert (response.status_code, await response.get_json()) == (200, {"logged_in_as": "alice"})

    # Each token only where it belongs; no token, no entry (FJE's texts).
    response = await client.post("/token/refresh", headers=bearer(access))
    assert (response.status_code, await response.get_json()) == (
        422,
        {"msg": "Only refresh tokens are allowed"},
    )
    response = await client.get("/protected", headers=bearer(refresh))
    assert (response.status_code, await response.get_json()) == (
        422,
        {"msg": "Only non-refresh tokens are allowed"},
    )
    response = await client.get("/protected")
    assert (response.status_code, await response.get_json()) == (
        401,
        {"msg": "Missing Authorization Header"},
    )
