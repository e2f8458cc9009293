"""Where an app keeps its ``JWTManager``: ``app.extensions["flask-jwt-extended"]``.

The modules that act on a request (``decorators``, ``context``, ``websocket``, ...) find
the manager through :func:`get_manager` and never import ``manager`` itself, so the
manager can import them (as Flask-JWT-Extended's ``internal_utils.get_jwt_manager``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from quart import Quart

if TYPE_CHECKING:  # annotations only: manager imports the modules that import this one
    from .manager import JWTManager

EXTENSION_KEY = "flask-jwt-extended"

#: A token's JOSE header or claims, as decoded.
Claims = dict[str, Any]


def get_manager(app: Quart) -> JWTManager:
    """The ``JWTManager`` initialised with ``app``; RuntimeError (FJE's text) without one."""
    try:
        return cast("JWTManager", app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "You must initialize a JWTManager with this quart application before using it"
        ) from None
