"""The app factory: what the app is made of, in the order it is put together.

Each line is one part, set up where that part lives: the settings (``startup/``), the
JWT extension (``jwt/``), the services and the resources behind them (``services.py``,
opened before serving and closed after), the routes (``routes/``), the limits and
headers (``security/``), logs and metrics (``observability/``), and the ASGI layers the
app wraps itself in (``middleware/stack.py``). What a server's worker adds is not here:
``quart_app.asgi`` puts it on (quart_app/serving/worker_hooks.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from quart import Quart
from quart_schema import HttpSecurityScheme, Info, QuartSchema

from .accounts.recovery import init_recovery
from .errors import register_error_handlers
from .jwt import JWTManager, RevocationList
from .jwt.key_files import keys_from_settings
from .mail.sender import init_mail
from .middleware.json_responses import init_json_responses
from .middleware.stack import wrap_asgi
from .middleware.websockets import init_websocket_bounds
from .observability import init_observability
from .routes import THROTTLED_ENDPOINTS, register_blueprints
from .routes.mfa_step import init_mfa
from .routes.oauth import init_dpop_service, init_oauth
from .routes.observability import register_observability_routes
from .routes.openapi import OpenAPIDocument
from .routes.ws import DESCRIPTION as WS_DESCRIPTION
from .security.cors import allowed_origins, init_cors
from .security.headers import init_security_headers
from .security.input_limits import init_input_limits
from .security.rate_limits import init_rate_limits
from .services import init_services
from .startup.preflight import preflight
from .startup.settings import resolve_secret

try:  # the one place the version is written is pyproject.toml
    __version__ = metadata.version("quart-app")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"


def create_app(config: Mapping[str, Any] | None = None) -> Quart:
    """Build the app. ``config`` overrides the environment, which overrides the defaults."""
    settings = preflight(config)
    app = Quart(__name__, instance_path=settings["INSTANCE_PATH"])
    configure(app, settings)
    init_openapi(app)
    init_json_responses(app)
    revoked = RevocationList()
    init_jwt(app, settings, revoked)

    resources = init_services(app, settings, revoked)
    resources.mail = init_mail(app, resources.db)
    init_recovery(app, resources.db, resources.mail)
    register_blueprints(app)
    resources.replay_store = init_dpop_service(app, resources.db, resources.redis_breaker)
    init_mfa(app)
    init_oauth(app, resources.passwords)
    init_rate_limits(app, THROTTLED_ENDPOINTS)
    register_error_handlers(app)
    init_input_limits(app)
    init_cors(app)
    init_security_headers(app)
    app.before_serving(resources.open)
    app.after_serving(resources.close)

    init_observability(app)
    register_observability_routes(app)
    init_websocket_bounds(app)
    wrap_asgi(app)
    return app


def configure(app: Quart, settings: dict[str, Any]) -> None:
    """The settings, and what follows from them: the HMAC secret (generated once when
    none is set) and the pages allowed to open cookie-authenticated WebSockets."""
    app.config.update(settings)
    if str(settings["JWT_ALGORITHM"]).startswith("HS"):
        app.config["JWT_SECRET_KEY"] = resolve_secret(settings)
    # Cookie-authenticated WebSockets only from the pages CORS lets in ("*" is no page).
    app.config.setdefault(
        "JWT_WEBSOCKET_ORIGINS",
        [o for o in allowed_origins(settings["CORS_ALLOWED_ORIGINS"]) if o != "*"],
    )


def init_openapi(app: Quart) -> None:
    """quart-schema's /openapi.json, with the error answers (routes/openapi.py)."""
    QuartSchema(
        app,
        info=Info(title="quart_app", version=__version__, description=WS_DESCRIPTION),
        security_schemes={
            "bearer": HttpSecurityScheme(scheme="bearer", bearer_format="JWT"),
            # POST /login only, as the JSON body's alternative.
            "basic": HttpSecurityScheme(scheme="basic"),
        },
        security=[{"bearer": []}],
        openapi_provider_class=OpenAPIDocument,
        # /docs is served from local files (routes/apidocs); quart-schema's pages use CDNs.
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
    )


def init_jwt(app: Quart, settings: Mapping[str, Any], revoked: RevocationList) -> None:
    """The JWT extension with the service's clock skew, keys and revocation list."""
    jwt = JWTManager(app)
    jwt.clock_skew = float(settings["JWT_CLOCK_SKEW_SECONDS"])
    jwt.keys = keys_from_settings(app.config)
    jwt.revocations = revoked
