"""The Flask-JWT-Extended 3.x API, as thin aliases of the 4.x one: every 3.x name is here.

Code written for FJE 3.x, or for quart-jwt-extended (its Quart port), keeps working. Each
alias warns with a ``DeprecationWarning`` naming its 4.x form (the decorators when they
decorate, the helpers when they are called, the loaders when they register), then does
exactly what that form does. The loader names are on ``JWTManager`` through
:class:`V3LoaderNames`, whose callbacks are adapted to the 4.x arguments; three loaders
kept their names but took fewer arguments in 3.x (``expired_token_loader``,
``needs_fresh_token_loader``, ``revoked_token_loader``): a callback with the old number of
arguments is adapted too (:func:`adapted`). Two 3.x forms live where their 4.x form does:
a bare ``@jwt_required`` (``decorators``) and ``create_*_token(user_claims=, headers=)``
(``utils``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from quart import current_app

from .config import V3_USER_CLAIMS
from .context import get_jwt, get_jwt_header
from .decorators import jwt_required, verify_jwt_in_request
from .deprecation import deprecated
from .extension import Claims, get_manager

if TYPE_CHECKING:
    from .config import JWTConfig

F = TypeVar("F", bound=Callable[..., Any])


def user_claims(claims: Claims, key: str = V3_USER_CLAIMS) -> Claims:
    """3.x's "user claims" of a token: the nested ``user_claims`` dict of a token made by
    FJE 3.x, otherwise (4.x tokens carry them at the top level) the whole claim set."""
    nested = claims.get(key)
    return nested if isinstance(nested, dict) else claims


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


def adapted(
    callback: F, old: str, v3_arguments: int, adapter: Callable[..., Any]
) -> Callable[..., Any]:
    """``adapter`` (warning that ``old`` is 3.x) when ``callback`` takes the 3.x number of
    positional arguments, else ``callback``: for the three loaders that kept their names
    but took fewer arguments in 3.x (``expired_token_loader(expired_token)``,
    ``needs_fresh_token_loader()``, ``revoked_token_loader()``)."""
    if positional_count(callback) != v3_arguments:
        return callback
    deprecated(old, "(jwt_header, jwt_data)", stacklevel=4)
    return adapter


# -- view decorators and helpers --------------------------------------------------


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


# -- loaders ---------------------------------------------------------------------------


class V3LoaderNames:
    """The 3.x loader decorators of ``JWTManager`` (a base of it): each registers the
    callback, adapted, with the 4.x loader and warns."""

    if TYPE_CHECKING:  # what they use of the manager

        @property
        def config(self) -> JWTConfig: ...
        def additional_claims_loader(self, callback: F) -> F: ...
        def user_lookup_loader(self, callback: F) -> F: ...
        def user_lookup_error_loader(self, callback: F) -> F: ...
        def token_in_blocklist_loader(self, callback: F) -> F: ...
        def token_verification_loader(self, callback: F) -> F: ...
        def token_verification_failed_loader(self, callback: F) -> F: ...

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
