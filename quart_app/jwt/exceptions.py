"""Flask-JWT-Extended's ``flask_jwt_extended.exceptions``, under the same class names.

Code written against Flask-JWT-Extended ports by a mechanical rename::

    from flask_jwt_extended.exceptions import NoAuthorizationError
    from quart_app.jwt.exceptions import NoAuthorizationError

The classes are those the extension raises (:mod:`quart_app.jwt.errors`): catching one
catches what this extension raises.
"""

from __future__ import annotations

from .errors import (
    CSRFError,
    FreshTokenRequired,
    InvalidHeaderError,
    InvalidQueryParamError,
    JWTDecodeError,
    JWTExtendedException,
    NoAuthorizationError,
    RevokedTokenError,
    UserClaimsVerificationError,
    UserLookupError,
    WrongTokenError,
)

__all__ = [
    "CSRFError",
    "FreshTokenRequired",
    "InvalidHeaderError",
    "InvalidQueryParamError",
    "JWTDecodeError",
    "JWTExtendedException",
    "NoAuthorizationError",
    "RevokedTokenError",
    "UserClaimsVerificationError",
    "UserLookupError",
    "WrongTokenError",
]
