"""OpenAPI for the error answers too: the document says every status a client can get.

quart-schema documents only what a view declares; without these, /openapi.json listed
the success of each route and nothing else, and public routes inherited the app-wide
bearer requirement. Both are checked by the schemathesis run in tests/security.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart_schema import document_response, security_scheme

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
