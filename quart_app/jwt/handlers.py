"""The one place where the extension's exceptions become responses, through the loaders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import jwt
from quart import Quart, Response, make_response

from .errors import (
    CSRFError,
    FreshTokenRequired,
    InvalidHeaderError,
    InvalidQueryParamError,
    JWTDecodeError,
    NoAuthorizationError,
    RevokedTokenError,
    UserClaimsVerificationError,
    UserLookupError,
    WrongTokenError,
)
from .loaders import Loaders, call


def register_error_handlers(app: Quart, loaders: Loaders) -> None:
    """Answer each JWT failure with the callback its loader decorator set (FJE's mapping)."""

    async def respond(callback: Callable[..., Any], *args: Any) -> Response:
        return cast(Response, await make_response(await call(callback, *args)))

    async def no_auth(e: NoAuthorizationError | CSRFError) -> Response:
        return await respond(loaders._unauthorized, str(e))

    async def invalid(e: Exception) -> Response:
        return await respond(loaders._invalid_token, str(e))

    async def expired(e: jwt.ExpiredSignatureError) -> Response:
        header, data = getattr(e, "jwt_header", {}), getattr(e, "jwt_data", {})
        return await respond(loaders._expired_token, header, data)

    async def revoked(e: RevokedTokenError) -> Response:
        return await respond(loaders._revoked_token, e.jwt_header, e.jwt_data)

    async def needs_fresh(e: FreshTokenRequired) -> Response:
        return await respond(loaders._needs_fresh_token, e.jwt_header, e.jwt_data)

    async def lookup(e: UserLookupError) -> Response:
        return await respond(loaders._user_lookup_error, e.jwt_header, e.jwt_data)

    async def claims_failed(e: UserClaimsVerificationError) -> Response:
        return await respond(loaders._token_verification_failed, e.jwt_header, e.jwt_data)

    app.register_error_handler(NoAuthorizationError, no_auth)
    app.register_error_handler(CSRFError, no_auth)
    app.register_error_handler(jwt.ExpiredSignatureError, expired)
    for exc in (
        InvalidHeaderError,
        InvalidQueryParamError,
        JWTDecodeError,
        WrongTokenError,
        jwt.InvalidTokenError,
    ):
        app.register_error_handler(exc, invalid)
    app.register_error_handler(RevokedTokenError, revoked)
    app.register_error_handler(FreshTokenRequired, needs_fresh)
    app.register_error_handler(UserLookupError, lookup)
    app.register_error_handler(UserClaimsVerificationError, claims_failed)

    from .dpop import DPoPError, dpop_error_response

    app.register_error_handler(DPoPError, dpop_error_response)
