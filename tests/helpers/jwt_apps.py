"""Twin apps for the JWT tests: the real Flask-JWT-Extended on Flask, ours on Quart.

Both have the same routes and loaders, so one request can be sent to each and the answers
compared. ``quart_twin``/``flask_twin`` take ``JWT_*`` overrides.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import flask
import flask_jwt_extended as fje
import jwt as pyjwt
from quart import Quart, Response

import quart_app.jwt as qje

SECRET = "parity-secret-" + "s" * 60
#: jtis the blocklist loaders of both twins call revoked.
REVOKED = {"revoked-jti"}
#: The identity the user lookup loaders of both twins cannot find.
GHOST = "ghost"

ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/protected", {}),
    ("/refresh", {"refresh": True}),
    ("/fresh", {"fresh": True}),
    ("/optional", {"optional": True}),
    ("/any-type", {"verify_type": False}),
    ("/skip-revocation", {"skip_revocation_check": True}),
    ("/headers", {"locations": "headers"}),
    ("/cookies", {"locations": ["cookies"]}),
    ("/query", {"locations": ["query_string"]}),
    ("/json", {"locations": ["json"]}),
    ("/headers-or-cookies", {"locations": ["headers", "cookies"]}),
    ("/everywhere", {"locations": ["headers", "cookies", "query_string", "json"]}),
]
METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"]


def base_config(**overrides: Any) -> dict[str, Any]:
    return {"JWT_SECRET_KEY": SECRET, "TESTING": True, **overrides}


def _blocklisted(header: dict[str, Any], claims: dict[str, Any]) -> bool:
    return claims.get("jti") in REVOKED


def _lookup(header: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any] | None:
    identity = claims.get("sub", claims.get("identity"))
    return None if identity == GHOST else {"name": identity}


def _verify(header: dict[str, Any], claims: dict[str, Any]) -> bool:
    return not claims.get("reject")


def flask_twin(**overrides: Any) -> flask.Flask:
    app = flask.Flask("fje_twin")
    app.config.update(base_config(**overrides))
    manager = fje.JWTManager(app)
    manager.token_in_blocklist_loader(_blocklisted)
    manager.user_lookup_loader(_lookup)
    manager.token_verification_loader(_verify)

    def view() -> Any:
        if flask.request.method == "OPTIONS":  # exempt: no token was looked at
            return flask.jsonify(exempt=True)
        return flask.jsonify(
            identity=fje.get_jwt_identity(),
            location=fje.get_jwt_request_location(),
            type=fje.get_jwt().get("type"),
            user=fje.get_current_user(),
        )

    for path, options in ROUTES:
        endpoint = path.strip("/") or "root"
        app.add_url_rule(path, endpoint, fje.jwt_required(**options)(view), methods=METHODS)
    return app


def quart_twin(**overrides: Any) -> Quart:
    app = Quart("quart_twin")
    app.config.update(base_config(**overrides))
    manager = qje.JWTManager(app)
    manager.token_in_blocklist_loader(_blocklisted)
    manager.user_lookup_loader(_lookup)
    manager.token_verification_loader(_verify)

    async def view() -> Response:
        from quart import jsonify, request

        if request.method == "OPTIONS":  # exempt: no token was looked at
            return jsonify(exempt=True)
        return jsonify(
            identity=qje.get_jwt_identity(),
            location=qje.get_jwt_request_location(),
            type=qje.get_jwt().get("type"),
            user=qje.get_current_user(),
        )

    for path, options in ROUTES:
        endpoint = path.strip("/") or "root"
        app.add_url_rule(path, endpoint, qje.jwt_required(**options)(view), methods=METHODS)
    return app


@dataclass
class Call:
    """One request, sendable to either twin."""

    path: str = "/protected"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    def all_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers


def send_flask(app: flask.Flask, call: Call) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {
        "method": call.method,
        "headers": call.headers,
        "query_string": call.query,
    }
    if call.json is not None:
        kwargs["json"] = call.json
    elif call.data is not None:
        kwargs["data"] = call.data
    client = app.test_client()
    for name, value in call.cookies.items():
        client.set_cookie(name, value)
    response = client.open(call.path, **kwargs)
    return response.status_code, response.get_json(silent=True)


async def send_quart(app: Quart, call: Call) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": call.all_headers(), "query_string": call.query}
    if call.json is not None:
        kwargs["json"] = call.json
    elif call.data is not None:
        kwargs["data"] = call.data
    response = await app.test_client().open(call.path, method=call.method, **kwargs)
    return response.status_code, await response.get_json()


def mint(
    secret: str = SECRET,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A token with FJE's claim set; ``claims`` override it (a None value drops the claim).

    It lives a day: modules mint their tokens at collection, and a slow run of the whole
    suite may reach them long after.
    """
    now = int(time.time())
    data: dict[str, Any] = {
        "fresh": False,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "type": "access",
        "sub": "alice",
        "nbf": now,
        "exp": now + 86_400,
        "csrf": "csrf-value",
    }
    data.update(claims)
    data = {k: v for k, v in data.items() if v is not None}
    return pyjwt.encode(data, secret, algorithm=algorithm, headers=headers)
