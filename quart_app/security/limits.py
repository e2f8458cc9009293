"""Request limits that hold whatever the route, the content type or the auth outcome."""

from __future__ import annotations

from typing import Any

from quart import Quart, Request, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import AppError
from ..jsonprovider import describe_json_error


class StrictJsonRequest(Request):
    """Quart's request, except that a body that is not UTF-8 is bad JSON (400), not a 500,
    and that the 400 says what is wrong and where instead of "Bad request".

    Quart decodes the body to text before its ``try`` around the JSON parser, so the
    ``UnicodeDecodeError`` of a body like ``b"\\xff"`` escapes ``on_json_loading_failed``.
    """

    def on_json_loading_failed(self, error: Exception) -> Any:
        raise AppError(400, describe_json_error(error))

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return await super().get_json(force=force, silent=silent, cache=cache)
        except UnicodeDecodeError as error:
            if silent:
                return None
            return self.on_json_loading_failed(error)


def init_request_limits(app: Quart) -> None:
    """413 for a declared body over ``MAX_CONTENT_LENGTH``, before anything else runs;
    400 for a JSON body that is not UTF-8.

    Quart itself only enforces the limit when a view reads the body, so a route that
    answers without reading it (a 400 for a non-JSON content type, a 401 for a missing
    token) would otherwise answer something else, and differently per route. Bodies
    without a declared length (chunked) are still cut off by Quart at the same limit
    as they are read.
    """

    @app.before_request
    async def refuse_large_bodies() -> None:
        limit = app.config["MAX_CONTENT_LENGTH"]
        length = request.content_length
        if limit is not None and length is not None and length > limit:
            raise RequestEntityTooLarge()

    app.request_class = StrictJsonRequest
    # Run first: before throttling, authentication and validation.
    funcs = app.before_request_funcs.setdefault(None, [])
    funcs.insert(0, funcs.pop())
