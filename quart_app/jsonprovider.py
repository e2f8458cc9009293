"""orjson for every JSON response: several times faster than the standard library."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic_core import to_jsonable_python
from quart.json.provider import DefaultJSONProvider


def _default(value: Any) -> Any:
    return to_jsonable_python(value)


class OrjsonProvider(DefaultJSONProvider):
    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # indent, sort_keys...: the rare pretty-printing callers
            return super().dumps(obj, **kwargs)
        return orjson.dumps(obj, default=_default).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)
