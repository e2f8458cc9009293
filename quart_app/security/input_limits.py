"""Request limits that hold whatever the route, the content type or the auth outcome."""

from __future__ import annotations

import json
from typing import Any

from quart import Quart, Request, request, websocket
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import AppError
from ..middleware.json_responses import describe_json_error

JSON_TYPE = "application/json"
NOT_JSON = "Content-Type must be application/json"
TWO_AUTHORIZATIONS = "More than one Authorization header"


class DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(
                    f"Request body is not valid JSON: duplicate key {key[:64]!r}"
                )
            seen.add(key)
    return data


class StrictJsonRequest(Request):
    """Quart's request, read the one way a proxy in front of it would read it too.

    * A JSON body must say ``Content-Type: application/json`` (415 otherwise, even where a
      view reads it with ``force=True``): a web page can post ``text/plain`` or a form to
      any site without a CORS preflight, so accepting those would let any page post
      logins (login CSRF).
    * A JSON object with a key twice is a 400: parsers disagree on which one wins.
    * A body that is not UTF-8 is bad JSON (400), not a 500, and the 400 says what is
      wrong and where instead of "Bad request". (Quart decodes the body to text before its
      ``try`` around the JSON parser, so the ``UnicodeDecodeError`` of a body like
      ``b"\\xff"`` escapes ``on_json_loading_failed``.)
    """

    def on_json_loading_failed(self, error: Exception | None) -> Any:
        if error is None:  # Quart's call for a body that is not declared as JSON
            raise AppError(415, NOT_JSON)
        raise AppError(400, describe_json_error(error))

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if (self.mimetype or "").lower() != JSON_TYPE:
            if silent:
                return None
            return self.on_json_loading_failed(None)
        try:
            data = await super().get_json(force=force, silent=silent, cache=cache)
        except UnicodeDecodeError as error:
            if silent:
                return None
            return self.on_json_loading_failed(error)
        if isinstance(data, dict | list):
            # orjson keeps the last of a duplicated key; the standard library's hook sees
            # them all (request bodies are small: MAX_CONTENT_LENGTH).
            try:
                json.loads(await self.get_data(as_text=False), object_pairs_hook=_unique_keys)
            except DuplicateKeyError as error:
                if silent:
                    return None
                raise AppError(400, str(error)) from None
        return data


def _one_authorization(headers: Any) -> None:
    if len(headers.getlist("Authorization")) > 1:
        raise AppError(400, TWO_AUTHORIZATIONS)


def init_input_limits(app: Quart) -> None:
    """413 for a declared body over ``MAX_CONTENT_LENGTH``, before anything else runs;
    400 for a JSON body that is not UTF-8.

    Quart itself only enforces the limit when a view reads the body, so a route that
    answers without reading it (a 415 for a non-JSON content type, a 401 for a missing
    token) would otherwise answer something else, and differently per route. More than
    one ``Authorization`` header is a 400, on requests and WebSocket handshakes. Bodies
    without a declared length (chunked) are still cut off by Quart at the same limit
    as they are read.
    """

    @app.before_request
    async def refuse_large_bodies() -> None:
        limit = app.config["MAX_CONTENT_LENGTH"]
        length = request.content_length
        if limit is not None and length is not None and length > limit:
            raise RequestEntityTooLarge()
        # Two Authorization headers: we would read the first, a gateway may read the last.
        _one_authorization(request.headers)

    @app.before_websocket
    async def refuse_two_authorizations() -> None:
        _one_authorization(websocket.headers)

    app.request_class = StrictJsonRequest
    # Run first: before throttling, authentication and validation.
    funcs = app.before_request_funcs.setdefault(None, [])
    funcs.insert(0, funcs.pop())
