"""The app factory: settings, extensions, blueprints, error handlers, lifecycle."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from quart import Quart, Response
from quart_schema import HttpSecurityScheme, Info, QuartSchema

from .accounts.recovery import init_recovery
from .errors import register_error_handlers
from .jwt import JWTManager, RevocationList, RevocationSync
from .jwt.key_files import keys_from_settings
from .jwt.revocation import Snapshot
from .mail.sender import init_mail
from .middleware.claims_fast_path import install_fast_path
from .middleware.connection import DrainRequestBody, ServingHeaders
from .middleware.json_responses import OrjsonProvider, install_fast_responses
from .middleware.websockets import init_websocket_bounds
from .observability import init_observability
from .routes import THROTTLED_ENDPOINTS, register_blueprints
from .routes.mfa_step import init_mfa
from .routes.oauth import init_dpop_service, init_oauth
from .routes.observability import register_observability_routes
from .routes.openapi import OpenAPIDocument
from .routes.ws import DESCRIPTION as WS_DESCRIPTION
from .security.cors import allowed_origins, init_cors
from .security.input_limits import init_request_limits
from .security.login_limits import LoginGuard, LoginPolicy
from .security.passwords import Passwords
from .security.rate_limits import init_rate_limits
from .services import EXTENSION_KEY, Services
from .startup.preflight import preflight
from .startup.settings import NOTES_KEY, SNAPSHOT_FILE, resolve_secret
from .store import Database, SqlRevocationStore, UserStore
from .store.events import EventStore
from .store.login_limits import LoginLimitStore
from .store.redis_breaker import EXTENSION_KEY as BREAKER_EXTENSION_KEY
from .store.redis_breaker import breaker_from_settings
from .store.redis_bus import BUS_EXTENSION_KEY, RedisRevocationBus
from .store.sessions import Lifetimes, SessionStore

try:  # the one place the version is written is pyproject.toml
    __version__ = metadata.version("quart-app")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
log = logging.getLogger(__name__)


def session_lifetimes(settings: Mapping[str, Any]) -> Lifetimes:
    return Lifetimes(
        idle=float(settings["SESSION_IDLE_TIMEOUT"]),
        max_age=float(settings["SESSION_MAX_AGE"]),
        limit=int(settings["SESSION_LIMIT"]),
        grace=float(settings["REFRESH_REUSE_GRACE_SECONDS"]),
        # A family revocation must outlive every token of the session.
        horizon=max(
            float(settings["JWT_REFRESH_TOKEN_EXPIRES"]),
            float(settings["JWT_ACCESS_TOKEN_EXPIRES"]),
        ),
    )


def create_app(config: Mapping[str, Any] | None = None) -> Quart:
    """Build the app. ``config`` overrides the environment, which overrides the defaults."""
    settings = preflight(config)
    app = Quart(__name__, instance_path=settings["INSTANCE_PATH"])
    app.config.update(settings)
    if str(settings["JWT_ALGORITHM"]).startswith("HS"):
        app.config["JWT_SECRET_KEY"] = resolve_secret(settings)
    # Cookie-authenticated WebSockets only from the pages CORS lets in ("*" is no page).
    app.config.setdefault(
        "JWT_WEBSOCKET_ORIGINS",
        [o for o in allowed_origins(settings["CORS_ALLOWED_ORIGINS"]) if o != "*"],
    )

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
    app.json = OrjsonProvider(app)
    install_fast_responses(app)
    jwt = JWTManager(app)
    jwt.clock_skew = float(settings["JWT_CLOCK_SKEW_SECONDS"])
    jwt.keys = keys_from_settings(app.config)
    jwt.revocations = RevocationList()

    db = Database(
        settings["DATABASE_URL"],
        pool_size=settings["DATABASE_POOL_SIZE"],
        max_overflow=settings["DATABASE_MAX_OVERFLOW"],
        pool_timeout=settings["DATABASE_POOL_TIMEOUT"],
        pool_recycle=settings["DATABASE_POOL_RECYCLE"],
        connect_timeout=settings["DATABASE_CONNECT_TIMEOUT"],
        statement_timeout=settings["DATABASE_STATEMENT_TIMEOUT"],
        sqlite_busy_timeout=settings["SQLITE_BUSY_TIMEOUT"],
        operation_timeout=settings["DATABASE_OPERATION_TIMEOUT"],
        breaker_cooldown=settings["DATABASE_BREAKER_COOLDOWN"],
    )
    passwords = Passwords(
        time_cost=settings["ARGON2_TIME_COST"],
        memory_cost=settings["ARGON2_MEMORY_COST"],
        parallelism=settings["ARGON2_PARALLELISM"],
        threads=settings["PASSWORD_HASH_THREADS"],
        nice=settings["PASSWORD_HASH_NICE"],
    )
    # With Redis, revocations also fan out by pub/sub (milliseconds); SQL stays the truth.
    # Every Redis client of this worker goes through one circuit breaker (a hung Redis
    # costs one timeout, then the fallbacks answer until it responds again).
    redis_breaker = breaker_from_settings(settings)
    app.extensions[BREAKER_EXTENSION_KEY] = redis_breaker
    bus = RedisRevocationBus.from_settings(settings, breaker=redis_breaker)
    app.extensions[BUS_EXTENSION_KEY] = bus
    revocation_store = SqlRevocationStore(db)
    snapshot_age = float(settings["REVOCATION_SNAPSHOT_MAX_AGE"])
    revocations = RevocationSync(
        bus.wrap(revocation_store) if bus else revocation_store,
        jwt.revocations,
        settings["REVOCATION_SYNC_INTERVAL"],
        snapshot=Snapshot(Path(settings["INSTANCE_PATH"]) / SNAPSHOT_FILE, snapshot_age)
        if snapshot_age > 0
        else None,
    )
    app.extensions[EXTENSION_KEY] = Services(
        db=db,
        users=UserStore(db),
        passwords=passwords,
        revocations=revocations,
        logins=LoginGuard(LoginLimitStore(db), LoginPolicy.from_config(app.config)),
        sessions=SessionStore(db, session_lifetimes(settings)),
        events=EventStore(db),
        config=app.config,
    )

    mail = init_mail(app, db)
    init_recovery(app, db, mail)
    register_blueprints(app)
    replay_store = init_dpop_service(app, db, redis_breaker)
    init_mfa(app)
    init_oauth(app, passwords)
    init_rate_limits(app, THROTTLED_ENDPOINTS)
    register_error_handlers(app)
    init_request_limits(app)
    init_cors(app)

    @app.after_request
    async def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Answers carry tokens or depend on one (RFC 6749 5.1, RFC 9111): no cache keeps
        # them unless the view says otherwise (the JWKS, the OAuth metadata). The claims
        # fast path (quart_app/middleware/claims_fast_path.py) sends the same.
        if "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_serving
    async def open_resources() -> None:
        for note in settings[NOTES_KEY]:
            log.info("%s", note)
        # An unreachable database does not stop the worker: it serves 503 until it answers.
        await db.open(create_tables=settings["DATABASE_CREATE_TABLES"], in_background=True)
        await passwords.start()
        await revocations.start()
        if bus is not None:
            await bus.start(revocations)
        await mail.start()

    @app.after_serving
    async def close_resources() -> None:
        await mail.stop()
        if bus is not None:
            await bus.stop()
        if replay_store is not None:
            await replay_store.close()
        await revocations.stop()
        await passwords.stop()
        await db.close()
        if redis_breaker is not None:
            await redis_breaker.close()

    init_observability(app)
    register_observability_routes(app)
    init_websocket_bounds(app)
    app.asgi_app = DrainRequestBody(app.asgi_app, max_body_size=app.config["MAX_CONTENT_LENGTH"])  # type: ignore[method-assign]
    # Answers claims-only routes for cached tokens before any layer below it.
    install_fast_path(app)
    # Around everything: Connection: close while draining, HSTS, ambiguous framing.
    app.asgi_app = ServingHeaders(app.asgi_app, hsts=settings["STRICT_TRANSPORT_SECURITY"] or "")  # type: ignore[method-assign]
    return app
