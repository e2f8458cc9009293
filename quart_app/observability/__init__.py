"""Observability: request ids and structured logs, Prometheus metrics, readiness.

``init_observability(app)`` (called last in ``create_app``) adds

* a first ``before_request`` hook and an ``after_request`` hook: request id (accepted
  from ``X-Request-ID`` or generated, echoed back), one log line per request, request
  metrics -- a handful of dict look-ups and counter increments on the hot path;
* the state ``GET /readyz`` and ``GET /metrics`` answer from (their views are in
  quart_app/routes/observability.py);
* wrappers around the JWT error handlers that count why verifications fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

from jwt import InvalidTokenError
from quart import Quart, Response, g, request

from ..jwt.errors import JWTExtendedException
from ..security.client_address import client_address
from ..services import services
from ..store.redis_breaker import breaker
from .logs import (
    ACCESS_LOGGER,
    REQUEST_ID_HEADER,
    configure_logging,
    log_request,
    request_id_from,
    request_id_var,
)
from .metrics import Metrics, verification_reason
from .readiness import Readiness

__all__ = ["EXTENSION_KEY", "Observability", "init_observability", "observability"]

EXTENSION_KEY = "quart_app.observability"
#: Where a view notes the user of a request that carries no token (see note_user).
USER_KEY = "_obs_user"
log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()


@dataclass
class Observability:
    metrics: Metrics | None
    readiness: Readiness
    access_log: bool

    def record(
        self,
        *,
        method: str,
        path: str,
        route: str,
        status: int,
        elapsed: float,
        endpoint: str | None,
        verified: bool,
        client: Callable[[], str],
        user_id: str | None,
    ) -> None:
        """Count and log one finished request (Quart's hook and the fast path alike).

        ``client`` is only called when the line is logged: it may parse headers.
        """
        if self.metrics is not None:
            self.metrics.observe_request(method, route, status, elapsed, endpoint)
            if verified:
                self.metrics.observe_verification("ok")
        if self.access_log and access_log.isEnabledFor(logging.INFO):
            log_request(
                access_log,
                method=method,
                path=path,
                route=route,
                status=status,
                duration=elapsed,
                client=client(),
                user_id=user_id,
            )


def note_user(user_id: int | str) -> None:
    """Name the user of this request in its log line when no token does (login, register)."""
    setattr(g._get_current_object(), USER_KEY, str(user_id))


def observability(app: Quart) -> Observability:
    return cast(Observability, app.extensions[EXTENSION_KEY])


def init_observability(app: Quart) -> None:
    config = app.config
    if config["LOG_FORMAT"]:
        configure_logging(str(config["LOG_FORMAT"]), str(config["LOG_LEVEL"]))
    metrics = Metrics() if config["METRICS_ENABLED"] else None
    state = Observability(
        metrics=metrics,
        readiness=Readiness(
            config.get("REDIS_URL"), float(config["READINESS_TIMEOUT"]), breaker(app)
        ),
        access_log=bool(config["ACCESS_LOG"]),
    )
    app.extensions[EXTENSION_KEY] = state
    if metrics is not None:
        services(app).passwords.observer = metrics
        services(app).logins.observer = metrics
        _count_verification_failures(app, metrics)
    _add_request_hooks(app, state)

    @app.before_serving
    async def announce() -> None:
        if metrics is not None and not metrics.multiprocess:
            log.info("metrics are per process: with several workers set PROMETHEUS_MULTIPROC_DIR")

    @app.after_serving
    async def stopped() -> None:
        # Runs after create_app's own after_serving: in-flight requests are done and
        # the pools are closed by now.
        await state.readiness.close()
        if metrics is not None:
            metrics.process_stopped()
        log.info("worker stopped cleanly")


def _add_request_hooks(app: Quart, state: Observability) -> None:
    # No proxy to trust: the peer is the client (what client_address() would say, cheaper).
    direct_clients = int(app.config["TRUSTED_PROXY_HOPS"]) <= 0

    async def start_request() -> None:
        # The raw ASGI headers: werkzeug's Headers.get raises (and builds) an HTTP
        # exception for a missing header, the common case here.
        sent = None
        for name, value in request.scope["headers"]:
            if name == _REQUEST_ID_KEY:
                sent = value.decode("latin-1")
                break
        request_id = request_id_from(sent)
        request_id_var.set(request_id)
        g._obs = (perf_counter(), request_id)

    async def finish_request(response: Response) -> Response:
        store = g._get_current_object()
        started = getattr(store, "_obs", None)
        if started is None:  # a hook before ours failed: nothing to time
            return response
        elapsed = perf_counter() - started[0]
        response.headers[REQUEST_ID_HEADER] = started[1]
        req = request._get_current_object()  # type: ignore[attr-defined]
        rule = req.url_rule
        route = rule.rule if rule is not None else "<unmatched>"
        claims = getattr(store, "_jwt_extended_jwt", None)
        user = claims.get("sub") if claims else getattr(store, USER_KEY, None)
        state.record(
            method=req.method,
            path=req.path,
            route=route,
            status=response.status_code,
            elapsed=elapsed,
            endpoint=req.endpoint,
            verified=bool(claims) and not getattr(store, "_obs_failed", False),
            client=(lambda: req.remote_addr or "unknown") if direct_clients else client_address,
            user_id=None if user is None else str(user),
        )
        return response

    # First, so that even a request another hook refuses (429) is timed and logged.
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)
    app.after_request(finish_request)


def _count_verification_failures(app: Quart, metrics: Metrics) -> None:
    """Wrap the JWT extension's error handlers so each failure is counted by reason."""
    handlers: Any = app.error_handler_spec[None][None]
    for cls, handler in list(handlers.items()):
        if issubclass(cls, JWTExtendedException | InvalidTokenError):
            handlers[cls] = _counting(app, handler, metrics)


def _counting(app: Quart, handler: Any, metrics: Metrics) -> Any:
    async def counted(error: Exception) -> Any:
        g._obs_failed = True
        metrics.observe_verification(verification_reason(error))
        return await app.ensure_async(handler)(error)

    return counted
