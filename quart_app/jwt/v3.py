"""The Flask-JWT-Extended 3.x view decorators and helpers, as thin aliases of the 4.x API.

Each warns with a ``DeprecationWarning`` naming its 4.x form (the decorators when they
decorate, the helpers when they are called), then does exactly what that form does. The
3.x loader names are on ``JWTManager`` (``v3loaders``); a bare ``@jwt_required`` (3.x,
without parentheses) works as ``@jwt_required()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart import current_app

from .context import get_jwt, get_jwt_header
from .decorators import jwt_required, verify_jwt_in_request
from .manager import Claims, get_manager
from .v3loaders import deprecated, user_claims

F = TypeVar("F", bound=Callable[..., Any])


def jwt_optional(fn: F) -> F:
    """3.x: ``@jwt_required(optional=True)``."""
    deprecated("@jwt_optional", "@jwt_required(optional=True)")
    return jwt_required(optional=True)(fn)


def jwt_refresh_token_required(fn: F) -> F:
    """3.x: ``@jwt_required(refresh=True)``."""
    deprecated("@jwt_refresh_token_required", "@jwt_required(refresh=True)")
    return jwt_required(refresh=True)(fn)


def fresh_jwt_required(fn: F) -> F:
    """3.x: ``@jwt_required(fresh=True)``."""
    deprecated("@fresh_jwt_required", "@jwt_required(fresh=True)")
    return jwt_required(fresh=True)(fn)


async def verify_jwt_in_request_optional() -> None:
    """3.x: ``await verify_jwt_in_request(optional=True)``."""
    deprecated("verify_jwt_in_request_optional()", "verify_jwt_in_request(optional=True)")
    await verify_jwt_in_request(optional=True)


async def verify_jwt_refresh_token_in_request() -> None:
    """3.x: ``await verify_jwt_in_request(refresh=True)``."""
    deprecated("verify_jwt_refresh_token_in_request()", "verify_jwt_in_request(refresh=True)")
    await verify_jwt_in_request(refresh=True)


async def verify_fresh_jwt_in_request() -> None:
    """3.x: ``await verify_jwt_in_request(fresh=True)``."""
    deprecated("verify_fresh_jwt_in_request()", "verify_jwt_in_request(fresh=True)")
    await verify_jwt_in_request(fresh=True)


def get_raw_jwt() -> Claims:
    """3.x: ``get_jwt()``."""
    deprecated("get_raw_jwt()", "get_jwt()")
    return get_jwt()


def get_raw_jwt_header() -> Claims:
    """3.x: ``get_jwt_header()``."""
    deprecated("get_raw_jwt_header()", "get_jwt_header()")
    return get_jwt_header()


def get_jwt_claims() -> Claims:
    """3.x: the claims added by ``user_claims_loader``. In 4.x they are at the top level of
    the token, so this is ``get_jwt()``; for a token made by FJE 3.x, its nested
    ``JWT_USER_CLAIMS`` ("user_claims") dict."""
    deprecated("get_jwt_claims()", "get_jwt()")
    return user_claims(get_jwt(), get_manager(current_app).config.user_claims_key)
