"""``GET /readyz`` (every dependency a request needs) and ``GET /metrics`` (Prometheus
text format, optionally behind a bearer token); the machinery is in quart_app/observability/."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from quart import Blueprint, Quart, Response, current_app, request
from quart_schema import document_response, security_scheme

from ..errors import AppError
from ..observability import observability
from ..observability.metrics import CONTENT_TYPE, token_matches

# Named as before the views moved here: the name is the routes' OpenAPI tag.
bp = Blueprint("observability", __name__)


def register_observability_routes(app: Quart) -> None:
    """``/readyz``, and ``/metrics`` when ``METRICS_ENABLED`` (after init_observability)."""
    app.register_blueprint(bp)
    if observability(app).metrics is not None:
        app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


async def metrics_view() -> Response:
    """Every metric of this app (of every worker in multiprocess mode)."""
    from ..observability import observability

    token = current_app.config.get("METRICS_TOKEN")
    if token and not token_matches(str(token), request.headers.get("Authorization")):
        raise AppError(401, "Missing or wrong metrics token", {"WWW-Authenticate": "Bearer"})
    metrics = observability(current_app).metrics
    assert metrics is not None  # the route exists only with metrics enabled
    body = metrics.exposition()
    return Response(
        body, status=200, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"}
    )


class Ready(BaseModel):
    """Each dependency's state ("ok" or what failed)."""

    status: str
    checks: dict[str, str]


@bp.get("/readyz")
@security_scheme([])
@document_response(Ready)
@document_response(Ready, 503)
async def readyz() -> tuple[dict[str, Any], int, dict[str, str]]:
    """200 when the database answers and this worker has loaded the revocations; 503
    otherwise (a worker that started during a database outage, until it has caught up).

    Redis (when configured) is reported but does not fail readiness: without it every
    worker keeps serving correctly (revocations through the SQL poll, throttling per
    worker), and taking every host out of the load balancer during a Redis outage would
    turn a degradation into an outage. ``"status": "degraded"`` says so.
    """
    checks = await observability(current_app).readiness.check()
    headers = {"Cache-Control": "no-store"}
    if checks.get("database") != "ok" or "revocations" in checks:
        return {"status": "unavailable", "msg": "Not ready", "checks": checks}, 503, headers
    status = "ready" if all(state == "ok" for state in checks.values()) else "degraded"
    return {"status": status, "checks": checks}, 200, headers
