"""An async, Flask-JWT-Extended-compatible JWT extension for Quart.

Public names are FJE 4.x's. Differences: every loader may be a coroutine function, so
token creation and decoding are awaited (``await create_access_token(...)``); revocation
is built in (see ``revocation``); ``JWT_REQUIRED_CLAIMS`` can require claims beyond FJE's
identity claim (RFC 8725); asymmetric keys carry a ``kid`` and rotate (see ``keys``).
The FJE 3.x names (``jwt_optional``, ``get_raw_jwt``, ``user_claims_loader``, ...) are
deprecated aliases of their 4.x forms (``v3``). Documented in docs/jwt.md.
"""

from __future__ import annotations

from .claims_routes import ClaimsFastPath, ClaimsResponse, claims_route
from .context import (
    current_user,
    get_current_user,
    get_jwt,
    get_jwt_header,
    get_jwt_identity,
    get_jwt_request_location,
)
from .decorators import jwt_required, verify_jwt_in_request
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
from .forward_auth import forward_auth_route, subject_headers
from .key_files import KeyDirectory, keys_from_settings, rotate_keys
from .keys import Key, KeySet
from .manager import JWTManager, get_manager
from .revocation import (
    Revocation,
    RevocationList,
    RevocationStore,
    RevocationsUnknown,
    RevocationSync,
)
from .socket_sessions import SocketRegistry, SocketSession
from .utils import (
    create_access_token,
    create_refresh_token,
    decode_token,
    get_csrf_token,
    get_jti,
    get_unverified_jwt_headers,
    set_access_cookies,
    set_refresh_cookies,
    unset_access_cookies,
    unset_jwt_cookies,
    unset_refresh_cookies,
)
from .v3 import (
    fresh_jwt_required,
    get_jwt_claims,
    get_raw_jwt,
    get_raw_jwt_header,
    jwt_optional,
    jwt_refresh_token_required,
    verify_fresh_jwt_in_request,
    verify_jwt_in_request_optional,
    verify_jwt_refresh_token_in_request,
)
from .websocket import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORIZED,
    WebSocketAuthError,
    get_registry,
    get_websocket_session,
    websocket_auth,
    websocket_reauth,
)

__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_UNAUTHORIZED",
    "CSRFError",
    "ClaimsFastPath",
    "ClaimsResponse",
    "FreshTokenRequired",
    "InvalidHeaderError",
    "InvalidQueryParamError",
    "JWTDecodeError",
    "JWTExtendedException",
    "JWTManager",
    "Key",
    "KeyDirectory",
    "KeySet",
    "NoAuthorizationError",
    "Revocation",
    "RevocationList",
    "RevocationStore",
    "RevocationSync",
    "RevocationsUnknown",
    "RevokedTokenError",
    "SocketRegistry",
    "SocketSession",
    "UserClaimsVerificationError",
    "UserLookupError",
    "WebSocketAuthError",
    "WrongTokenError",
    "claims_route",
    "create_access_token",
    "create_refresh_token",
    "current_user",
    "decode_token",
    "forward_auth_route",
    "fresh_jwt_required",
    "get_csrf_token",
    "get_current_user",
    "get_jti",
    "get_jwt",
    "get_jwt_claims",
    "get_jwt_header",
    "get_jwt_identity",
    "get_jwt_request_location",
    "get_manager",
    "get_raw_jwt",
    "get_raw_jwt_header",
    "get_registry",
    "get_unverified_jwt_headers",
    "get_websocket_session",
    "jwt_optional",
    "jwt_refresh_token_required",
    "jwt_required",
    "keys_from_settings",
    "rotate_keys",
    "set_access_cookies",
    "set_refresh_cookies",
    "subject_headers",
    "unset_access_cookies",
    "unset_jwt_cookies",
    "unset_refresh_cookies",
    "verify_fresh_jwt_in_request",
    "verify_jwt_in_request",
    "verify_jwt_in_request_optional",
    "verify_jwt_refresh_token_in_request",
    "websocket_auth",
    "websocket_reauth",
]
