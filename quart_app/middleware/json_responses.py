"""orjson for every JSON response: several times faster than the standard library."""

from __future__ import annotations

import math
from typing import Any

import orjson
from pydantic_core import to_jsonable_python
from quart import Quart, Response
from quart.json.provider import DefaultJSONProvider


def _default(value: Any) -> Any:
    return to_jsonable_python(value)


#: What Flask's ``response()`` passes on every response: compact, which orjson always is.
_COMPACT = {"separators": (",", ":")}
#: Keys sorted as Flask does by default (``sort_keys = True``); int keys (OpenAPI status
#: codes) become strings, as with the standard library.
OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null, as orjson writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class OrjsonProvider(DefaultJSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs and kwargs != _COMPACT:  # indent...: the rare pretty-printing callers
            return super().dumps(obj, **kwargs)
        try:
            return orjson.dumps(obj, default=_default, option=OPTIONS).decode()
        except orjson.JSONEncodeError:
            # An integer past 64 bits (a claim of a signed token may hold 10**400): the
            # standard library writes any integer.
            return super().dumps(_finite(obj), **_COMPACT)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


def describe_json_error(error: Exception) -> str:
    """What is wrong with a body that is not JSON, and where (for the 400's ``msg``)."""
    if isinstance(error, orjson.JSONDecodeError):
        where = f"line {error.lineno}, column {error.colno}"
        return f"Request body is not valid JSON: {error.msg} at {where}"
    if isinstance(error, UnicodeDecodeError):
        byte = error.object[error.start]
        return f"Request body is not valid JSON: not UTF-8 (byte 0x{byte:02x} at {error.start})"
    return f"Request body is not valid JSON: {error}"


def install_fast_responses(app: Quart) -> None:
    """Skip quart-schema's response conversion for values that are JSON already.

    quart-schema wraps ``app.make_response`` to turn pydantic models and dataclasses into
    JSON; for a plain dict or list it builds a pydantic ``TypeAdapter`` on every response
    (about a third of the protected route's cost in a profile). Views here return plain
    dicts and lists, which orjson encodes directly; models still take quart-schema's path.
    """
    schema_make_response = app.make_response
    plain_make_response = Quart.make_response.__get__(app)

    async def make_response(result: Any) -> Any:
        value = result[0] if isinstance(result, tuple) else result
        if isinstance(value, dict | list | str | bytes | Response):
            return await plain_make_response(result)
        return await schema_make_response(result)

    app.make_response = make_response  # type: ignore[method-assign]


def init_json_responses(app: Quart) -> None:
    """orjson for the app's JSON, and plain values answered without quart-schema's
    conversion (after QuartSchema is set up: it wraps ``make_response`` first)."""
    app.json = OrjsonProvider(app)
    install_fast_responses(app)
