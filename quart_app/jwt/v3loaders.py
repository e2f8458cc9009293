"""The Flask-JWT-Extended 3.x loader names and signatures, as thin aliases of the 4.x ones.

Code written for FJE 3.x, or for quart-jwt-extended (its Quart port), registers its
callbacks under the old names and with the old arguments; each alias adapts the callback
to the 4.x signature, registers it with the 4.x loader and warns with a
``DeprecationWarning`` that names the 4.x form. Three loaders kept their names but took
fewer arguments in 3.x (``expired_token_loader``, ``needs_fresh_token_loader``,
``revoked_token_loader``): a callback with the old number of arguments is adapted too.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

from .config import V3_USER_CLAIMS
from .loaders import F, Loaders
from .view import Claims


def deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f"{old} is the Flask-JWT-Extended 3.x API; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def positional_count(callback: Callable[..., Any]) -> int | None:
    """How many positional arguments ``callback`` takes (None: any number)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def user_claims(claims: Claims, key: str = V3_USER_CLAIMS) -> Claims:
    """3.x's "user claims" of a token: the nested ``user_claims`` dict of a token made by
    FJE 3.x, otherwise (4.x tokens carry them at the top level) the whole claim set."""
    nested = claims.get(key)
    return nested if isinstance(nested, dict) else claims


class V3Loaders(Loaders):
    """The 3.x loader decorators of ``JWTManager``."""

    def user_claims_loader(self, callback: F) -> F:
        """3.x name of :meth:`additional_claims_loader` (claims now at the top level)."""
        deprecated("user_claims_loader", "additional_claims_loader")
        self.additional_claims_loader(callback)
        return callback

    def user_loader_callback_loader(self, callback: F) -> F:
        """3.x ``callback(identity) -> user | None``; the 4.x form is
        :meth:`user_lookup_loader` with ``callback(jwt_header, jwt_data)``."""
        deprecated("user_loader_callback_loader", "user_lookup_loader(jwt_header, jwt_data)")
        self.user_lookup_loader(lambda h, d: callback(d.get(self.config.identity_claim_key)))
        return callback

    def user_loader_error_loader(self, callback: F) -> F:
        """3.x ``callback(identity) -> response``; 4.x: :meth:`user_lookup_error_loader`."""
        deprecated("user_loader_error_loader", "user_lookup_error_loader(jwt_header, jwt_data)")
        self.user_lookup_error_loader(lambda h, d: callback(d.get(self.config.identity_claim_key)))
        return callback

    def token_in_blacklist_loader(self, callback: F) -> F:
        """3.x ``callback(decoded_token) -> bool``; 4.x: :meth:`token_in_blocklist_loader`.

        ``JWT_BLACKLIST_ENABLED = False`` and ``JWT_BLACKLIST_TOKEN_CHECKS`` still decide
        which tokens it is asked about.
        """
        deprecated("token_in_blacklist_loader", "token_in_blocklist_loader(jwt_header, jwt_data)")
        self.token_in_blocklist_loader(lambda h, d: callback(d))
        return callback

    def claims_verification_loader(self, callback: F) -> F:
        """3.x ``callback(user_claims) -> bool``; 4.x: :meth:`token_verification_loader`."""
        deprecated("claims_verification_loader", "token_verification_loader(jwt_header, jwt_data)")
        self.token_verification_loader(
            lambda h, d: callback(user_claims(d, self.config.user_claims_key))
        )
        return callback

    def claims_verification_failed_loader(self, callback: F) -> F:
        """3.x ``callback() -> response``; 4.x: :meth:`token_verification_failed_loader`."""
        deprecated(
            "claims_verification_failed_loader",
            "token_verification_failed_loader(jwt_header, jwt_data)",
        )
        self.token_verification_failed_loader(lambda h, d: callback())
        return callback

    # -- same names, fewer arguments in 3.x ------------------------------------------

    def expired_token_loader(self, callback: F) -> F:
        if positional_count(callback) == 1:  # 3.x: callback(expired_token)
            deprecated("expired_token_loader(expired_token)", "(jwt_header, jwt_data)")
            return _registered(super().expired_token_loader, lambda h, d: callback(d), callback)
        return super().expired_token_loader(callback)

    def needs_fresh_token_loader(self, callback: F) -> F:
        if positional_count(callback) == 0:  # 3.x: callback()
            deprecated("needs_fresh_token_loader()", "(jwt_header, jwt_data)")
            return _registered(super().needs_fresh_token_loader, lambda h, d: callback(), callback)
        return super().needs_fresh_token_loader(callback)

    def revoked_token_loader(self, callback: F) -> F:
        if positional_count(callback) == 0:  # 3.x: callback()
            deprecated("revoked_token_loader()", "(jwt_header, jwt_data)")
            return _registered(super().revoked_token_loader, lambda h, d: callback(), callback)
        return super().revoked_token_loader(callback)


def _registered(loader: Callable[[Any], Any], adapted: Callable[..., Any], callback: F) -> F:
    """Register ``adapted`` with the 4.x ``loader``; give back the user's ``callback``."""
    loader(adapted)
    return callback
