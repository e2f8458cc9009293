"""One exception class per failure; JWTManager turns each into a response in one place.

Names follow Flask-JWT-Extended's ``flask_jwt_extended.exceptions`` so code written
against it keeps catching the same classes.
"""

from __future__ import annotations

from typing import Any


class JWTExtendedException(Exception):
    """Base class of every error raised by this extension."""


class JWTDecodeError(JWTExtendedException):
    """The token could not be decoded or verified."""


class InvalidHeaderError(JWTExtendedException):
    """The Authorization header is present but not ``<type> <JWT>``."""


class InvalidQueryParamError(JWTExtendedException):
    """The query-string token parameter is malformed."""


class NoAuthorizationError(JWTExtendedException):
    """No token was found in any of the allowed locations."""


class CSRFError(JWTExtendedException):
    """A cookie token was sent without its matching CSRF token."""


class WrongTokenError(JWTExtendedException):
    """A refresh token was used where an access token is needed, or the reverse."""


class RevokedTokenError(JWTExtendedException):
    """The token has been revoked."""

    def __init__(self, jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> None:
        super().__init__("Token has been revoked")
        self.jwt_header = jwt_header
        self.jwt_data = jwt_data


class FreshTokenRequired(JWTExtendedException):
    """A fresh token is required and the token is not fresh."""

    def __init__(self, message: str, jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> None:
        super().__init__(message)
        self.jwt_header = jwt_header
        self.jwt_data = jwt_data


class UserLookupError(JWTExtendedException):
    """The user lookup loader found no user for the token's identity."""

    def __init__(self, message: str, jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> None:
        super().__init__(message)
        self.jwt_header = jwt_header
        self.jwt_data = jwt_data


class UserClaimsVerificationError(JWTExtendedException):
    """The token verification loader returned False."""

    def __init__(self, message: str, jwt_header: dict[str, Any], jwt_data: dict[str, Any]) -> None:
        super().__init__(message)
        self.jwt_header = jwt_header
        self.jwt_data = jwt_data
