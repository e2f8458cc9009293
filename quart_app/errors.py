"""Application errors and the one place that turns every error into a JSON response."""

from __future__ import annotations

import logging
import math
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, jsonify
from quart_schema import RequestSchemaValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from .store.errors import is_transient

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
        seconds = max(1, math.ceil(retry_after))
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


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(AppError)
    async def app_error(error: AppError) -> Response:
        return _json(error.status, error.msg, error.headers)

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(error: RequestSchemaValidationError) -> Response:
        return _json(400, describe_validation_error(error.validation_error))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers: dict[str, Any] = {
            key: value for key, value in error.get_headers() if key.lower() != "content-type"
        }
        msg = HTTP_MESSAGES.get(status) or error.name
        if status == 400 and error.description and "JSON" in error.description:
            msg = "Request body is not valid JSON"
        return _json(status, msg, headers)

    @app.errorhandler(PoolTimeout)
    async def pool_timeout(error: PoolTimeout) -> Response:
        log.warning("database pool exhausted: %s", error)
        return _json(503, "Service temporarily unavailable", {"Retry-After": "1"})

    @app.errorhandler(DBAPIError)
    async def database_error(error: DBAPIError) -> Response:
        if is_transient(error):  # busy, locked, unreachable: same answer on every engine
            log.warning("database unavailable or busy: %s", error.orig)
            return _json(503, "Service temporarily unavailable", {"Retry-After": "1"})
        log.exception("database error")
        return _json(500, "Internal server error")

    @app.errorhandler(ConnectionError)
    async def connection_error(error: ConnectionError) -> Response:
        # asyncpg raises the OS error itself when the database refuses connections.
        log.warning("backend unreachable: %s", error)
        return _json(503, "Service temporarily unavailable", {"Retry-After": "1"})

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return _json(500, "Internal server error")
