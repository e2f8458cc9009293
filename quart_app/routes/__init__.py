"""Blueprints: auth (register, login, tokens), users (listing, me), sessions (a user's
sessions and events), admin (administration), meta (``/healthz``, keys), gateway (forward
auth), oauth (introspection, revocation, metadata), ws (the authenticated WebSocket),
apidocs (the /docs page, from local files), mfa and webauthn (second factors), account
(the /account page), recovery (password reset by mail), email (the user's address and
its verification). Also here, registered by ``create_app`` on their own: observability
(``/readyz``, ``/metrics``) and openapi (the error answers of ``/openapi.json``)."""

from __future__ import annotations

from quart import Quart

from .account import bp as account_bp
from .admin import bp as admin_bp
from .apidocs import bp as apidocs_bp
from .auth import bp as auth_bp
from .email import bp as email_bp
from .gateway import bp as gateway_bp
from .meta import bp as meta_bp
from .mfa import bp as mfa_bp
from .oauth import bp as oauth_bp
from .recovery import bp as recovery_bp
from .sessions import bp as sessions_bp
from .users import bp as users_bp
from .webauthn import bp as webauthn_bp
from .ws import bp as ws_bp

#: Endpoints throttled per client address.
THROTTLED_ENDPOINTS = (
    "auth.register",
    "auth.login",
    "auth.refresh",
    "users.change_password",
    "oauth.token",
    "recovery.forgot",
    "recovery.reset",
    "email.change_email",
    "email.verify_email",
    "mfa.login_mfa",
    "webauthn.login_begin",
    "webauthn.login_finish",
)


def register_blueprints(app: Quart) -> None:
    for blueprint in (
        auth_bp,
        users_bp,
        sessions_bp,
        admin_bp,
        meta_bp,
        gateway_bp,
        oauth_bp,
        ws_bp,
        apidocs_bp,
        mfa_bp,
        webauthn_bp,
        account_bp,
    ):
        app.register_blueprint(blueprint)
    for blueprint in (recovery_bp, email_bp):
        app.register_blueprint(blueprint)
