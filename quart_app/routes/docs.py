"""OpenAPI for the error answers too: the document says every status a client can get.

quart-schema documents only what a view declares; without these, /openapi.json listed
the success of each route and nothing else, and public routes inherited the app-wide
bearer requirement. Both are checked by the schemathesis run in tests/security.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from quart_schema import document_response, security_scheme
from quart_schema.openapi import OpenAPIProvider

from ..schemas import Message

F = TypeVar("F", bound=Callable[..., Any])

#: A token is missing, expired, revoked (401) or malformed, badly signed, of the wrong
#: type (422).
TOKEN_ERRORS = (401, 422)
#: The database is busy or unreachable (with Retry-After).
UNAVAILABLE = 503


def errors(*codes: int) -> Callable[[F], F]:
    """Document ``{"msg": ...}`` answers with these status codes."""

    def decorator(func: F) -> F:
        for code in codes:
            func = document_response(Message, code)(func)
        return func

    return decorator


def public(func: F) -> F:
    """No token needed (overrides the app-wide bearer requirement)."""
    return security_scheme([])(func)


class EmptyBody(BaseModel):
    """No body; what the answer says is in its headers."""


class OpenAPIDocument(OpenAPIProvider):
    """quart-schema's document, where an :class:`EmptyBody` answer has no content at all
    and its headers model documents response headers (quart-schema files those under
    ``content``, where no header belongs)."""

    def build_response_object(
        self, model: type[Any], headers_model: type[Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if model is not EmptyBody:
            return super().build_response_object(model, headers_model)  # type: ignore[no-any-return]
        response: dict[str, Any] = {"description": EmptyBody.__doc__}
        if headers_model is not None:
            fields = headers_model.model_fields
            response["headers"] = {
                (field.alias or name): {
                    "description": field.description or "",
                    "schema": {"type": "string"},
                }
                for name, field in fields.items()
            }
        return response, {}
