"""What ``JWTManager`` does until a loader decorator says otherwise: FJE's defaults.

Every overridable behaviour is a callback in :class:`Callbacks`; a loader decorator of
the manager replaces one. The defaults answer with Flask-JWT-Extended's texts and status
codes, under the app's ``JWT_ERROR_MESSAGE_KEY``. Any callback may be a plain function or
a coroutine function: the extension always goes through :func:`call`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quart import Response, current_app, jsonify

from .extension import Claims, get_manager


async def call(func: Callable[..., Any], *args: Any) -> Any:
    """Call a loader that may be sync or async."""
    result = func(*args)
    if inspect.isawaitable(result):
        return await result
    return result


def _error(message: str, status: int) -> tuple[Response, int]:
    key = get_manager(current_app).config.error_msg_key
    return jsonify({key: message}), status


def additional_claims(identity: Any) -> Claims:
    """No claims beyond the standard ones."""
    return {}


def additional_headers(identity: Any) -> Claims:
    """No JOSE headers beyond the standard ones."""
    return {}


def user_identity(identity: Any) -> Any:
    """The identity goes into the token as given."""
    return identity


def expired_token(jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
    return _error("Token has expired", 401)


def invalid_token(error_string: str) -> tuple[Response, int]:
    return _error(error_string, 422)


def unauthorized(error_string: str) -> tuple[Response, int]:
    return _error(error_string, 401)


def needs_fresh_token(jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
    return _error("Fresh token required", 401)


def revoked_token(jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
    return _error("Token has been revoked", 401)


def user_lookup_error(jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
    identity = jwt_data[get_manager(current_app).config.identity_claim_key]
    return _error(f"Error loading the user {identity}", 401)


def token_verification_failed(jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
    return _error("User claims verification failed", 400)


@dataclass
class Callbacks:
    """One manager's callbacks; None where FJE has no default (the check is skipped)."""

    additional_claims: Callable[..., Any] = additional_claims
    additional_headers: Callable[..., Any] = additional_headers
    user_identity: Callable[..., Any] = user_identity
    user_lookup: Callable[..., Any] | None = None
    user_lookup_error: Callable[..., Any] = user_lookup_error
    token_in_blocklist: Callable[..., Any] | None = None
    token_verification: Callable[..., Any] | None = None
    token_verification_failed: Callable[..., Any] = token_verification_failed
    expired_token: Callable[..., Any] = expired_token
    invalid_token: Callable[..., Any] = invalid_token
    unauthorized: Callable[..., Any] = unauthorized
    needs_fresh_token: Callable[..., Any] = needs_fresh_token
    revoked_token: Callable[..., Any] = revoked_token
    decode_key: Callable[..., Any] | None = None
    encode_key: Callable[..., Any] | None = None
