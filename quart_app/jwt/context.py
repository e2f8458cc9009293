"""What a view reads about the verified token: ``get_jwt()``, ``current_user`` and friends."""

from __future__ import annotations

from typing import Any

from quart import current_app, g
from werkzeug.local import LocalProxy

from .extension import get_manager


def get_jwt() -> dict[str, Any]:
    """The claims of the token verified for this request ({} when optional and absent)."""
    claims = g.get("_jwt_extended_jwt")
    if claims is None:
        raise RuntimeError(
            "You must call `@jwt_required()` or `verify_jwt_in_request()` before using this method"
        )
    return claims  # type: ignore[no-any-return]


def get_jwt_header() -> dict[str, Any]:
    """The JOSE header of the token verified for this request."""
    header = g.get("_jwt_extended_jwt_header")
    if header is None:
        raise RuntimeError(
            "You must call `@jwt_required()` or `verify_jwt_in_request()` before using this method"
        )
    return header  # type: ignore[no-any-return]


def get_jwt_identity() -> Any:
    """The identity claim (``sub``) of this request's token, or None."""
    return get_jwt().get(get_manager(current_app).config.identity_claim_key)


def get_jwt_request_location() -> str | None:
    """Where the token was found: headers, cookies, query_string or json."""
    return g.get("_jwt_extended_jwt_location")  # type: ignore[no-any-return]


def get_current_user() -> Any:
    """The user returned by the ``user_lookup_loader`` for this request's token."""
    loaded = g.get("_jwt_extended_jwt_user")
    if loaded is None:
        raise RuntimeError(
            "You must provide a `@jwt.user_lookup_loader` callback to use this method"
        )
    return loaded["loaded_user"]


#: Proxy to ``get_current_user()``.
current_user: Any = LocalProxy(get_current_user)
