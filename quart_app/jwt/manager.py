"""JWTManager: the async counterpart of ``flask_jwt_extended.JWTManager``.

Its parts live in their own modules: the settings view (``view``), the loaders and
default callbacks (``loaders``), token creation (``creation``), verification
(``verification``) and the error responses (``handlers``).
"""

from __future__ import annotations

from typing import cast

from quart import Quart

from .config import DEFAULTS, V3_IDENTITY_CLAIM, V3_SETTINGS
from .creation import Creation
from .handlers import register_error_handlers
from .live import count_writes
from .loaders import F, call
from .v3loaders import V3Loaders, deprecated
from .verification import Verification
from .view import Claims

EXTENSION_KEY = "flask-jwt-extended"

__all__ = ["EXTENSION_KEY", "Claims", "F", "JWTManager", "call", "get_manager"]


class JWTManager(Creation, Verification, V3Loaders):
    """Settings, loaders, token creation and verification of one Quart app."""

    def __init__(self, app: Quart | None = None, add_context_processor: bool = False) -> None:
        super().__init__()
        if app is not None:
            self.init_app(app, add_context_processor)

    def init_app(self, app: Quart, add_context_processor: bool = False) -> None:
        app.extensions[EXTENSION_KEY] = self
        if "JWT_IDENTITY_CLAIM" not in app.config and any(k in app.config for k in V3_SETTINGS):
            # An app configured for FJE 3.x keeps 3.x's identity claim, so its tokens in
            # circulation stay valid.
            deprecated(
                "3.x settings without JWT_IDENTITY_CLAIM (identity claim 'identity')",
                "JWT_IDENTITY_CLAIM = 'sub', the 4.x default",
            )
            app.config["JWT_IDENTITY_CLAIM"] = V3_IDENTITY_CLAIM
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        self._watch(count_writes(app.config))
        register_error_handlers(app, self)
        from .websocket import init_websockets

        init_websockets(app)
        if add_context_processor:
            from .context import current_user

            app.context_processor(lambda: {"current_user": current_user})


def get_manager(app: Quart) -> JWTManager:
    try:
        return cast(JWTManager, app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "You must initialize a JWTManager with this quart application before using it"
        ) from None
