"""Pairs of apps built from one description: Flask-JWT-Extended 4.7 on Flask and
quart_app.jwt on Quart, for the parity tests.

A route is ``(path, protection, body)``, where ``body(lib)`` builds the JSON answer with
either library's functions (``lib`` is ``flask_jwt_extended`` or ``quart_app.jwt``) and
``protection`` is ``jwt_required``'s options, or ``protection(lib)`` gives the decorator
(to put a 3.x name on one side and its 4.x form on the other); ``setup(lib, manager)``
registers loaders on both. The
requests themselves go through ``jwt_apps.send_flask``/``send_quart``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flask
import flask_jwt_extended as fje
from quart import Quart, jsonify

import quart_app.jwt as qje
from tests.helpers.jwt_apps import SECRET, Call, send_flask, send_quart

Body = Callable[[types.ModuleType], Any]
Setup = Callable[[types.ModuleType, Any], None]
Protection = dict[str, Any] | Callable[[types.ModuleType], Callable[..., Any]]
Route = tuple[str, Protection, Body]


def whole_token(lib: types.ModuleType) -> Any:
    """The default body: everything a view can read about the token."""
    return {"jwt": lib.get_jwt(), "identity": lib.get_jwt_identity()}


ROUTES: list[Route] = [
    ("/protected", {}, whole_token),
    ("/refresh", {"refresh": True}, whole_token),
    ("/fresh", {"fresh": True}, whole_token),
    ("/optional", {"optional": True}, whole_token),
]


@dataclass
class Twins:
    flask_app: flask.Flask
    quart_app: Quart

    async def send(self, call: Call) -> tuple[tuple[int, Any], tuple[int, Any]]:
        """``(FJE's answer, ours)``, each as ``(status, JSON body)``."""
        return send_flask(self.flask_app, call), await send_quart(self.quart_app, call)

    async def same(self, call: Call) -> tuple[int, Any]:
        """Send ``call`` to both, assert equal answers and return it."""
        theirs, ours = await self.send(call)
        assert ours == theirs, call
        return ours

    def set(self, **config: Any) -> None:
        """Change settings of both running apps (after they answered requests)."""
        self.flask_app.config.update(config)
        self.quart_app.config.update(config)

    async def tokens(self, kind: str = "access", **kwargs: Any) -> tuple[str, str]:
        """A token made by each app: ``(FJE's, ours)``."""
        with self.flask_app.app_context():
            theirs = getattr(fje, f"create_{kind}_token")("alice", **kwargs)
        async with self.quart_app.app_context():
            ours = await getattr(qje, f"create_{kind}_token")("alice", **kwargs)
        return theirs, ours


def twins(routes: list[Route] | None = None, setup: Setup | None = None, **config: Any) -> Twins:
    settings = {"JWT_SECRET_KEY": SECRET, "TESTING": True, **config}
    flask_app = flask.Flask("fje_twin")
    flask_app.config.update(settings)
    flask_manager = fje.JWTManager(flask_app)
    quart_app = Quart("quart_twin")
    quart_app.config.update(settings)
    quart_manager = qje.JWTManager(quart_app)
    if setup is not None:
        setup(fje, flask_manager)
        setup(qje, quart_manager)
    for path, protection, body in routes or ROUTES:
        endpoint = path.strip("/") or "root"

        def flask_view(body: Body = body) -> Any:
            return flask.jsonify(body(fje))

        async def quart_view(body: Body = body) -> Any:
            return jsonify(body(qje))

        flask_app.add_url_rule(path, endpoint, _protect(fje, protection)(flask_view))
        quart_app.add_url_rule(path, endpoint, _protect(qje, protection)(quart_view))
    return Twins(flask_app, quart_app)


def _protect(lib: types.ModuleType, protection: Protection) -> Callable[..., Any]:
    if callable(protection):
        return protection(lib)
    return lib.jwt_required(**protection)  # type: ignore[no-any-return]
