"""``GET /metrics``: Prometheus text format, optionally behind a bearer token."""

from __future__ import annotations

from quart import Response, current_app, request

from ..errors import AppError
from ..observability.metrics import CONTENT_TYPE, token_matches


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
