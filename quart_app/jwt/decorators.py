"""``jwt_required`` and ``verify_jwt_in_request``: the async, FJE-compatible request checks.

The order of checks is Flask-JWT-Extended's: locate the token, decode and verify it,
CSRF double submit, token type, freshness, revocation, the verification loader, and the
user lookup. Only what succeeds in full is stored in the request context.
"""

from __future__ import annotations

import hmac
import inspect
import re
from collections.abc import Callable, Sequence
from functools import partial, wraps
from typing import Any, TypeVar, cast, overload

from quart import Request, current_app, g, has_websocket_context, request

from . import tokens
from .config import JWTConfig
from .errors import (
    CSRFError,
    FreshTokenRequired,
    InvalidHeaderError,
    InvalidQueryParamError,
    JWTDecodeError,
    NoAuthorizationError,
    WrongTokenError,
)
from .manager import Claims, JWTManager, get_manager
from .v3loaders import deprecated

F = TypeVar("F", bound=Callable[..., Any])
_COMMA = re.compile(r",\s*")


def _from_headers(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
    header_name, header_type = config.header_name, config.header_type
    value = req.headers.get(header_name, "").strip().strip(",")
    if not value:
        raise NoAuthorizationError(f"Missing {header_name} Header")
    if header_type == "Bearer" and value[:5] == "DPoP ":
        header_type = "DPoP"  # RFC 9449: a bound token's scheme (checked in check_token)
    if header_type:
        # The header may hold several comma-separated fields: "<type> <value>, ...".
        if "," in value:
            fields = [f for f in _COMMA.split(value) if f.split(maxsplit=1)[:1] == [header_type]]
        else:
            fields = [value] if value.split(maxsplit=1)[0] == header_type else []
        if len(fields) != 1:
            raise NoAuthorizationError(
                f"Missing '{header_type}' type in '{header_name}' header."
                f" Expected '{header_name}: {header_type} <JWT>'"
            )
        parts = fields[0].split()
        if len(parts) != 2:
            raise InvalidHeaderError(
                f"Bad {header_name} header. Expected '{header_name}: {header_type} <JWT>'"
            )
        return parts[1], None
    parts = value.split()
    if len(parts) != 1:
        raise InvalidHeaderError(f"Bad {header_name} header. Expected '{header_name}: <JWT>'")
    return parts[0], None


def _from_query_string(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
    name, prefix = config.query_string_name, config.query_string_value_prefix
    value = req.args.get(name)
    if not value:
        # FJE's text, typo included.
        raise NoAuthorizationError(f"Missing '{name}' query paramater")
    if not value.startswith(prefix):
        raise InvalidQueryParamError(
            f"Invalid value for query parameter '{name}'."
            f" Expected the value to start with '{prefix}'"
        )
    return value[len(prefix) :], None


async def _from_cookies(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
    if refresh:
        cookie, csrf_header, csrf_field = (
            config.refresh_cookie_name,
            config.refresh_csrf_header_name,
            config.refresh_csrf_field_name,
        )
    else:
        cookie, csrf_header, csrf_field = (
            config.access_cookie_name,
            config.access_csrf_header_name,
            config.access_csrf_field_name,
        )
    encoded = req.cookies.get(cookie)
    if not encoded:
        raise NoAuthorizationError(f'Missing cookie "{cookie}"')
    csrf_value: str | None = None
    if config.csrf_protect and req.method in config.csrf_request_methods:
        csrf_value = req.headers.get(csrf_header)
        if not csrf_value and config.csrf_check_form:
            csrf_value = (await req.form).get(csrf_field)
        if not csrf_value:
            raise CSRFError("Missing CSRF token")
    return encoded, csrf_value


async def _from_json(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
    if not req.is_json:
        raise NoAuthorizationError("Invalid content-type. Must be application/json.")
    key = config.refresh_json_key if refresh else config.json_key
    data = await req.get_json(silent=True)
    encoded = data.get(key) if isinstance(data, dict) else None
    if not encoded or not isinstance(encoded, str):
        raise NoAuthorizationError(f'Missing "{key}" key in json data.')
    return encoded, None


def check_csrf(claims: Claims, csrf_value: str) -> None:
    """Double submit: the CSRF value sent with the request must match the token's."""
    expected = claims.get("csrf")
    if not isinstance(expected, str):
        raise JWTDecodeError("Missing claim: csrf")
    if not hmac.compare_digest(expected, csrf_value):
        raise CSRFError("CSRF double submit tokens do not match")


async def _locate(
    req: Request, config: JWTConfig, locations: Sequence[str], refresh: bool
) -> tuple[str, str | None, str]:
    errors: list[str] = []
    for location in locations:
        try:
            if location == "headers":
                encoded, csrf = _from_headers(req, config, refresh)
            elif location == "query_string":
                encoded, csrf = _from_query_string(req, config, refresh)
            elif location == "cookies":
                encoded, csrf = await _from_cookies(req, config, refresh)
            elif location == "json":
                encoded, csrf = await _from_json(req, config, refresh)
            else:
                raise RuntimeError(f"'{location}' is not a valid location")
            return encoded, csrf, location
        except NoAuthorizationError as error:
            errors.append(str(error))
    raise missing_jwt(locations, errors)


def missing_jwt(locations: Sequence[str], errors: Sequence[str]) -> NoAuthorizationError:
    """FJE's error when no location held a token: the one message, or all of them."""
    if len(locations) == 1:
        return NoAuthorizationError(errors[0])
    return NoAuthorizationError(
        f"Missing JWT in {', '.join(locations[:-1])} or {locations[-1]} ({'; '.join(errors)})"
    )


async def check_token(
    manager: JWTManager,
    encoded: str,
    csrf_value: str | None,
    fresh: bool,
    refresh: bool,
    verify_type: bool,
    skip_revocation_check: bool,
    sent_with: tuple[Any, str] | None = None,
) -> tuple[Claims, Claims]:
    """Every check of a located token, in FJE's order, up to the user lookup (excluded):
    size, signature and claims, CSRF, type, freshness, revocation, verification loader.
    ``sent_with`` (the request and the token's location) adds the DPoP rules (``dpop``)."""
    if len(encoded) > manager.config.max_token_length:
        raise JWTDecodeError("Token is too large")
    header, claims = await manager.decode(encoded)
    if csrf_value is not None:
        check_csrf(claims, csrf_value)
    if verify_type:
        token_type = claims.get("type")
        if refresh and token_type != tokens.REFRESH:
            raise WrongTokenError("Only refresh tokens are allowed")
        if not refresh and token_type == tokens.REFRESH:
            raise WrongTokenError("Only non-refresh tokens are allowed")
    if fresh and not tokens.is_fresh(claims):
        raise FreshTokenRequired("Fresh token required", header, claims)
    if not skip_revocation_check:
        await manager.check_revoked(header, claims)
    if manager.has_token_verification:
        await manager.check_custom(header, claims)
    if "cnf" in claims or (sent_with is not None and sent_with[1] == "headers"):
        from .dpop import check_sent_token

        await check_sent_token(sent_with, encoded, claims)
    return header, claims


async def verify_jwt_in_request(
    optional: bool = False,
    fresh: bool = False,
    refresh: bool = False,
    locations: str | Sequence[str] | None = None,
    verify_type: bool = True,
    skip_revocation_check: bool = False,
) -> tuple[Claims, Claims] | None:
    """Verify the request's token and store it for ``get_jwt()`` and friends.

    Returns ``(jwt_header, jwt_data)``, or None when ``optional`` and no token was sent.
    A token that is present but invalid is always an error, optional or not. In a
    websocket view it verifies the handshake, and the socket lives only as long as the
    token (see ``quart_app.jwt.websocket``).
    """
    # This runs on every protected request: each context-local proxy is resolved once
    # (they cost about a microsecond per access) and the checks are inlined.
    try:
        req: Request = request._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        if not has_websocket_context():
            raise
        from .websocket import verify_jwt_in_websocket

        return await verify_jwt_in_websocket(
            optional, fresh, refresh, locations, verify_type, skip_revocation_check
        )
    manager = get_manager(current_app._get_current_object())  # type: ignore[attr-defined]
    config = manager.config
    if req.method in config.exempt_methods:
        return None
    if isinstance(locations, str):
        locations = (locations,)
    store = vars(g._get_current_object())  # type: ignore[attr-defined]
    try:
        encoded, csrf_value, location = await _locate(
            req, config, locations or config.token_location, refresh
        )
    except NoAuthorizationError:
        if not optional:
            raise
        store.update(
            _jwt_extended_jwt={},
            _jwt_extended_jwt_header={},
            _jwt_extended_jwt_user={"loaded_user": None},
            _jwt_extended_jwt_location=None,
        )
        return None
    header, claims = await check_token(
        manager,
        encoded,
        csrf_value,
        fresh,
        refresh,
        verify_type,
        skip_revocation_check,
        (req, location),
    )
    # Stored only now, once every check and callback has succeeded (as FJE).
    store.update(
        _jwt_extended_jwt_user=(
            {"loaded_user": await manager.load_user(header, claims)}
            if manager.has_user_lookup
            else None
        ),
        _jwt_extended_jwt_header=header,
        _jwt_extended_jwt=claims,
        _jwt_extended_jwt_location=location,
    )
    return header, claims


@overload
def jwt_required(
    optional: bool = False,
    fresh: bool = False,
    refresh: bool = False,
    locations: str | Sequence[str] | None = None,
    verify_type: bool = True,
    skip_revocation_check: bool = False,
) -> Callable[[F], F]: ...


@overload
def jwt_required(optional: F) -> F: ...


def jwt_required(
    optional: bool | F = False,
    fresh: bool = False,
    refresh: bool = False,
    locations: str | Sequence[str] | None = None,
    verify_type: bool = True,
    skip_revocation_check: bool = False,
) -> Callable[[F], F] | F:
    """Protect a view: it runs only with a valid token (see ``verify_jwt_in_request``).

    Note the parentheses, as in FJE 4: ``@jwt_required()``. The bare ``@jwt_required`` of
    FJE 3.x works too, with a DeprecationWarning.
    """
    if callable(optional):
        deprecated("@jwt_required without parentheses", "@jwt_required()")
        return jwt_required()(optional)
    is_optional = bool(optional)

    def decorator(fn: F) -> F:
        is_async = inspect.iscoroutinefunction(fn)

        @wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if has_websocket_context():
                from .websocket import run_websocket_view

                # Few frames: each one stays alive for as long as the socket is open.
                verify = partial(
                    verify_jwt_in_request,
                    is_optional,
                    fresh,
                    refresh,
                    locations,
                    verify_type,
                    skip_revocation_check,
                )
                view = fn if is_async else current_app.ensure_async(fn)
                return await run_websocket_view(view, args, kwargs, verify)
            await verify_jwt_in_request(
                is_optional, fresh, refresh, locations, verify_type, skip_revocation_check
            )
            if is_async:
                return await fn(*args, **kwargs)
            return await current_app.ensure_async(fn)(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
