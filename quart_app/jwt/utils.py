"""Creating and decoding tokens in views, and the cookie helpers, as in FJE's ``utils``.

Creating and decoding are coroutines here (``await create_access_token(...)``) because
every loader they call may be a coroutine function.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from quart import Response, current_app

from . import tokens
from .deprecation import deprecated
from .extension import get_manager
from .locate import check_csrf

#: FJE's cookie lifetime when JWT_SESSION_COOKIE is False (one year).
COOKIE_MAX_AGE = 31_540_000


async def create_access_token(
    identity: Any,
    fresh: Any = False,
    expires_delta: Any = None,
    additional_claims: dict[str, Any] | None = None,
    additional_headers: dict[str, Any] | None = None,
    *,
    user_claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A new access token for ``identity`` (passed through ``user_identity_loader``).

    ``fresh``: a bool, or a duration (timedelta, relativedelta) for which the token is
    fresh; ``expires_delta``: a duration, seconds, or False for no ``exp``. ``user_claims``
    and ``headers`` are FJE 3.x's names of ``additional_claims``/``additional_headers``.
    """
    return await get_manager(current_app).encode(
        identity,
        tokens.ACCESS,
        fresh=fresh,
        expires_delta=expires_delta,
        additional_claims=_v3_argument(additional_claims, user_claims, "user_claims"),
        additional_headers=_v3_argument(additional_headers, headers, "headers"),
    )


async def create_refresh_token(
    identity: Any,
    expires_delta: Any = None,
    additional_claims: dict[str, Any] | None = None,
    additional_headers: dict[str, Any] | None = None,
    *,
    user_claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A new refresh token for ``identity`` (arguments as ``create_access_token``)."""
    return await get_manager(current_app).encode(
        identity,
        tokens.REFRESH,
        expires_delta=expires_delta,
        additional_claims=_v3_argument(additional_claims, user_claims, "user_claims"),
        additional_headers=_v3_argument(additional_headers, headers, "headers"),
    )


def _v3_argument(value: Any, old_value: Any, old: str) -> Any:
    if old_value is None:
        return value
    new = "additional_claims" if old == "user_claims" else "additional_headers"
    deprecated(f"create_*_token({old}=...)", f"{new}=...", stacklevel=4)
    return {**old_value, **(value or {})}


async def decode_token(
    encoded_token: str, csrf_value: str | None = None, allow_expired: bool = False
) -> dict[str, Any]:
    """Verify ``encoded_token`` and return its claims (revocation is not checked here)."""
    _, claims = await get_manager(current_app).decode(encoded_token, allow_expired=allow_expired)
    if csrf_value is not None:
        check_csrf(claims, csrf_value)
    return claims


def get_unverified_jwt_headers(encoded_token: str) -> dict[str, Any]:
    """The JOSE header of a token, without verifying it."""
    return tokens.unverified_header(encoded_token)


async def get_jti(encoded_token: str) -> str | None:
    """The ``jti`` of a verified token."""
    return (await decode_token(encoded_token)).get("jti")


async def get_csrf_token(encoded_token: str) -> str | None:
    """The CSRF double-submit value of a verified token."""
    return (await decode_token(encoded_token)).get("csrf")


def _set_cookies(
    response: Response,
    encoded_token: str,
    max_age: int | None,
    domain: str | None,
    refresh: bool,
) -> None:
    manager = get_manager(current_app)
    config = manager.config
    name = config.refresh_cookie_name if refresh else config.access_cookie_name
    path = config.refresh_cookie_path if refresh else config.access_cookie_path
    # As FJE: a session cookie unless JWT_SESSION_COOKIE is False, then one year.
    max_age = max_age or (None if config.session_cookie else COOKIE_MAX_AGE)
    # Expires as Werkzeug would derive it from Max-Age, by the manager's clock.
    seconds = int(max_age.total_seconds()) if isinstance(max_age, timedelta) else max_age
    expires = None if seconds is None else manager.now() + seconds
    response.set_cookie(
        name,
        value=encoded_token,
        max_age=max_age,
        expires=expires,
        secure=config.cookie_secure,
        httponly=True,
        domain=domain or config.cookie_domain,
        path=path,
        samesite=config.cookie_samesite,
    )
    if config.csrf_protect and config.csrf_in_cookies:
        # The token was just made by this app; FJE decodes (verifies) it here.
        claims = tokens.unverified_claims(encoded_token)
        csrf_name = config.refresh_csrf_cookie_name if refresh else config.access_csrf_cookie_name
        csrf_path = config.refresh_csrf_cookie_path if refresh else config.access_csrf_cookie_path
        response.set_cookie(
            csrf_name,
            value=str(claims.get("csrf", "")),
            max_age=max_age,
            expires=expires,
            secure=config.cookie_secure,
            httponly=False,
            domain=domain or config.cookie_domain,
            path=csrf_path,
            samesite=config.cookie_samesite,
        )


def set_access_cookies(
    response: Response,
    encoded_access_token: str,
    max_age: int | None = None,
    domain: str | None = None,
) -> None:
    """Put an access token (and its CSRF cookie) on ``response``."""
    _set_cookies(response, encoded_access_token, max_age, domain, refresh=False)


def set_refresh_cookies(
    response: Response,
    encoded_refresh_token: str,
    max_age: int | None = None,
    domain: str | None = None,
) -> None:
    """Put a refresh token (and its CSRF cookie) on ``response``."""
    _set_cookies(response, encoded_refresh_token, max_age, domain, refresh=True)


def _unset(response: Response, domain: str | None, refresh: bool) -> None:
    config = get_manager(current_app).config
    pairs = [
        (config.refresh_cookie_name, config.refresh_cookie_path, True)
        if refresh
        else (config.access_cookie_name, config.access_cookie_path, True)
    ]
    if config.csrf_protect and config.csrf_in_cookies:
        pairs.append(
            (config.refresh_csrf_cookie_name, config.refresh_csrf_cookie_path, False)
            if refresh
            else (config.access_csrf_cookie_name, config.access_csrf_cookie_path, False)
        )
    for name, path, httponly in pairs:
        response.set_cookie(
            name,
            value="",
            expires=0,
            secure=config.cookie_secure,
            httponly=httponly,
            domain=domain or config.cookie_domain,
            path=path,
            samesite=config.cookie_samesite,
        )


def unset_access_cookies(response: Response, domain: str | None = None) -> None:
    _unset(response, domain, refresh=False)


def unset_refresh_cookies(response: Response, domain: str | None = None) -> None:
    _unset(response, domain, refresh=True)


def unset_jwt_cookies(response: Response, domain: str | None = None) -> None:
    """Remove every JWT cookie (e.g. at logout)."""
    unset_access_cookies(response, domain)
    unset_refresh_cookies(response, domain)
