"""Application errors and the one place that turns every error into a JSON response."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, jsonify
from quart_schema import RequestSchemaValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from .jwt import RevocationsUnknown
from .store.errors import unavailable_reason

log = logging.getLogger(__name__)


class AppError(Exception):
    """An expected failure with a status, a ``msg`` and optional headers."""

    def __init__(self, status: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.headers = headers or {}


class Throttled(AppError):
    def __init__(self, retry_after: float, msg: str = "Too many requests") -> None:
        # Rounded first: (now + 600) - now is 600.0000001 in floating point, not 601 s.
        seconds = max(1, math.ceil(round(retry_after, 3)))
        super().__init__(429, msg, {"Retry-After": str(seconds)})


# Texts for HTTP errors raised by Quart/Werkzeug themselves.
HTTP_MESSAGES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests",
}


def _json(status: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"msg": msg})
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


#: Seconds a client is told to wait: a lock clears in moments, an outage takes longer.
RETRY_AFTER = {"busy": 1}
RETRY_AFTER_DEFAULT = 5


#: Seconds between two WARNINGs of one outage reason (a worker serving 1,000 requests a
#: second during an outage would otherwise log 1,000 lines a second).
WARNING_INTERVAL = 10.0
_warned: dict[str, tuple[float, int]] = {}  # reason -> (last WARNING, answers since)


def unavailable(reason: str, error: BaseException | None = None) -> Response:
    """The one 503 answer for a dependency that cannot serve now."""
    detail = getattr(error, "orig", None) or error
    now = time.monotonic()
    last, since = _warned.get(reason, (-WARNING_INTERVAL, 0))
    if now - last >= WARNING_INTERVAL:
        more = f" (and {since} more 503s like it since the last warning)" if since else ""
        log.warning(
            "dependency unavailable (%s): %s%s", reason, detail or type(error).__name__, more
        )
        _warned[reason] = (now, 0)
    else:
        _warned[reason] = (last, since + 1)
    retry_after = RETRY_AFTER.get(reason, RETRY_AFTER_DEFAULT)
    return _json(503, "Service temporarily unavailable", {"Retry-After": str(retry_after)})


def describe_validation_error(error: Exception) -> str:
    """A one-line message naming the first offending field."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        loc = first.get("loc", ())
        message = str(first.get("msg", "invalid"))
        if first.get("type") == "model_type" or not loc:
            return "Request body must be a JSON object"
        # An empty field name ({"": 1}) is still a field: quote it rather than lose it.
        where = ".".join(str(part) or '""' for part in loc)
        return f"{where}: {message}"
    if isinstance(error, TypeError | ValueError):
        return "Request body must be a JSON object"
    return str(error) or "Invalid request"


def error_headers(error: HTTPException) -> dict[str, Any]:
    """The headers an HTTP error carries (Retry-After, Allow...), without its HTML type."""
    return {key: value for key, value in error.get_headers() if key.lower() != "content-type"}


def http_error_response(error: HTTPException) -> Response:
    """An HTTP error (404, 405, 413, 429...) as the service answers it: ``{"msg"}``."""
    status = error.code or 500
    msg = HTTP_MESSAGES.get(status) or error.name
    if status == 400 and error.description and "JSON" in error.description:
        msg = "Request body is not valid JSON"
    return _json(status, msg, error_headers(error))


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(AppError)
    async def app_error(error: AppError) -> Response:
        return _json(error.status, error.msg, error.headers)

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(error: RequestSchemaValidationError) -> Response:
        return _json(400, describe_validation_error(error.validation_error))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        return http_error_response(error)

    async def dependency_error(error: Exception) -> Response:
        reason = unavailable_reason(error)
        if reason is None:
            log.exception("database error")
            return _json(500, "Internal server error")
        return unavailable(reason, error)

    # Every database, driver and disk fault: 503 + Retry-After (store/errors.py decides).
    for kind in (DBAPIError, PoolTimeout, OSError):
        app.register_error_handler(kind, dependency_error)

    @app.errorhandler(RevocationsUnknown)
    async def revocations_unknown(error: RevocationsUnknown) -> Response:
        # A worker that started during an outage cannot check tokens until it has
        # loaded the revocations: refusing for a while beats accepting a revoked token.
        return unavailable("revocations not loaded yet", error)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return _json(500, "Internal server error")
