"""The overridable behaviours of ``JWTManager``: default callbacks and loader decorators.

Every overridable behaviour is a default callback that a loader decorator swaps, as in
Flask-JWT-Extended. Any loader may be a plain function or a coroutine function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from quart import Response, jsonify

from .view import Claims, ConfigView

F = TypeVar("F", bound=Callable[..., Any])


async def call(func: Callable[..., Any], *args: Any) -> Any:
    """Call a loader that may be sync or async."""
    result = func(*args)
    if inspect.isawaitable(result):
        return await result
    return result


class Loaders(ConfigView):
    """The callbacks of one manager, with FJE's defaults, texts and status codes."""

    def __init__(self) -> None:
        super().__init__()
        self._additional_claims: Callable[..., Any] = lambda identity: {}
        self._additional_headers: Callable[..., Any] = lambda identity: {}
        self._user_identity: Callable[..., Any] = lambda identity: identity
        self._user_lookup: Callable[..., Any] | None = None
        self._user_lookup_error: Callable[..., Any] = self._default_user_lookup_error
        self._token_in_blocklist: Callable[..., Any] | None = None
        self._token_verification: Callable[..., Any] | None = None
        self._token_verification_failed: Callable[..., Any] = self._default_verification_failed
        self._expired_token: Callable[..., Any] = self._default_expired
        self._invalid_token: Callable[..., Any] = self._default_invalid
        self._unauthorized: Callable[..., Any] = self._default_unauthorized
        self._needs_fresh_token: Callable[..., Any] = self._default_needs_fresh
        self._revoked_token: Callable[..., Any] = self._default_revoked
        self._decode_key: Callable[..., Any] | None = None
        self._encode_key: Callable[..., Any] | None = None

    # -- default callbacks (FJE's texts and status codes) ----------------------------

    def _error(self, message: str, status: int) -> tuple[Response, int]:
        return jsonify({self.config.error_msg_key: message}), status

    def _default_expired(self, jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
        return self._error("Token has expired", 401)

    def _default_invalid(self, error_string: str) -> tuple[Response, int]:
        return self._error(error_string, 422)

    def _default_unauthorized(self, error_string: str) -> tuple[Response, int]:
        return self._error(error_string, 401)

    def _default_needs_fresh(self, jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
        return self._error("Fresh token required", 401)

    def _default_revoked(self, jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
        return self._error("Token has been revoked", 401)

    def _default_user_lookup_error(
        self, jwt_header: Claims, jwt_data: Claims
    ) -> tuple[Response, int]:
        identity = jwt_data[self.config.identity_claim_key]
        return self._error(f"Error loading the user {identity}", 401)

    def _default_verification_failed(
        self, jwt_header: Claims, jwt_data: Claims
    ) -> tuple[Response, int]:
        return self._error("User claims verification failed", 400)

    # -- loader decorators -----------------------------------------------------------

    def additional_claims_loader(self, callback: F) -> F:
        """``callback(identity) -> dict`` of claims added to every new token."""
        self._additional_claims = callback
        self._changed()
        return callback

    def additional_headers_loader(self, callback: F) -> F:
        """``callback(identity) -> dict`` of JOSE headers added to every new token."""
        self._additional_headers = callback
        self._changed()
        return callback

    def user_identity_loader(self, callback: F) -> F:
        """``callback(identity) -> JSON-serialisable`` value stored in the identity claim."""
        self._user_identity = callback
        self._changed()
        return callback

    def user_lookup_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> user | None``; sets ``current_user``."""
        self._user_lookup = callback
        self._changed()
        return callback

    def user_lookup_error_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> response`` when the lookup found no user."""
        self._user_lookup_error = callback
        self._changed()
        return callback

    def token_in_blocklist_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> bool``: True means revoked.

        Runs after the built-in revocation check, which stays on.
        """
        self._token_in_blocklist = callback
        self._changed()
        return callback

    def token_verification_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> bool``: False rejects the token."""
        self._token_verification = callback
        self._changed()
        return callback

    def token_verification_failed_loader(self, callback: F) -> F:
        self._token_verification_failed = callback
        self._changed()
        return callback

    def expired_token_loader(self, callback: F) -> F:
        self._expired_token = callback
        self._changed()
        return callback

    def invalid_token_loader(self, callback: F) -> F:
        self._invalid_token = callback
        self._changed()
        return callback

    def unauthorized_loader(self, callback: F) -> F:
        self._unauthorized = callback
        self._changed()
        return callback

    def needs_fresh_token_loader(self, callback: F) -> F:
        self._needs_fresh_token = callback
        self._changed()
        return callback

    def revoked_token_loader(self, callback: F) -> F:
        self._revoked_token = callback
        self._changed()
        return callback

    def decode_key_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> key`` used to verify a token."""
        self._decode_key = callback
        self._changed()
        return callback

    def encode_key_loader(self, callback: F) -> F:
        """``callback(identity) -> key`` used to sign a new token."""
        self._encode_key = callback
        self._changed()
        return callback

    # -- which loaders are set -------------------------------------------------------

    @property
    def has_custom_checks(self) -> bool:
        """Whether a loader takes part in verification (blocklist, claims check, user lookup)."""
        return (
            self._token_in_blocklist is not None
            or self._token_verification is not None
            or self._user_lookup is not None
        )

    @property
    def has_token_verification(self) -> bool:
        return self._token_verification is not None

    @property
    def has_user_lookup(self) -> bool:
        return self._user_lookup is not None
