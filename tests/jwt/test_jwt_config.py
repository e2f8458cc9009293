"""Every JWT_* setting of Flask-JWT-Extended 4.7 exists here, with FJE's default."""

from __future__ import annotations

import flask
import flask_jwt_extended as fje
from quart import Quart

from quart_app.jwt import JWTManager
from quart_app.jwt.config import DEFAULTS

#: Ours only, not in FJE (documented in docs/jwt.md's settings).
OURS_ONLY = {
    "JWT_REQUIRED_CLAIMS",
    "JWT_VERIFIED_CACHE_SIZE",
    "JWT_MAX_TOKEN_LENGTH",
    "JWT_WEBSOCKET_ORIGINS",
    "JWT_JWKS_URL",
    "JWT_JWKS_MIN_REFRESH_SECONDS",
    "JWT_JWKS_CACHE_SECONDS",
    "JWT_JWKS_TIMEOUT_SECONDS",
}


def fje_defaults() -> dict[str, object]:
    app = flask.Flask("defaults")
    fje.JWTManager(app)
    return {key: value for key, value in app.config.items() if key.startswith("JWT_")}


def test_every_fje_setting_with_its_default() -> None:
    theirs = fje_defaults()
    assert len(theirs) >= 40
    app = Quart(__name__)
    JWTManager(app)
    ours = {key: value for key, value in app.config.items() if key.startswith("JWT_")}
    assert set(ours) - set(theirs) == OURS_ONLY
    for key, value in theirs.items():
        assert ours[key] == value, key


def test_settings_already_in_the_config_are_kept() -> None:
    app = Quart(__name__)
    app.config["JWT_HEADER_TYPE"] = "JWT"
    JWTManager(app)
    assert app.config["JWT_HEADER_TYPE"] == "JWT"
    assert DEFAULTS["JWT_HEADER_TYPE"] == "Bearer"
