"""Where a request's token is found, and every check of a found token, in FJE's order.

The locators read FJE's four places (``headers``, ``query_string``, ``cookies``, ``json``)
with FJE's error texts; :func:`check_token` runs the checks that follow, up to the user
lookup; :func:`verify_and_store` adds the user lookup and keeps the result where
``get_jwt()``, ``current_user`` and friends read it. ``decorators`` (requests),
``websocket`` (handshakes and in-band tokens) and ``forward_auth`` (gateways) all verify
through here.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from quart import Request, g

from . import tokens
from .config import JWTConfig
from .dpop import check_sent_token
from .errors import (
    CSRFError,
    FreshTokenRequired,
    InvalidHeaderError,
    InvalidQueryParamError,
    JWTDecodeError,
    NoAuthorizationError,
    WrongTokenError,
)
from .extension import Claims

if TYPE_CHECKING:  # annotations only: the manager imports the modules that import this one
    from .manager import JWTManager

_COMMA = re.compile(r",\s*")

#: ``() -> (htm, htu)``: the method and URL a DPoP proof must name, when not the request's
#: own (forward authentication: the gateway's client request, ``dpop.forwarded_target``).
ProofTarget = Callable[[], tuple[str, str]]


def from_headers(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
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


def from_query_string(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
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


async def from_cookies(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
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


async def from_json(req: Request, config: JWTConfig, refresh: bool) -> tuple[str, str | None]:
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


async def locate(
    req: Request, config: JWTConfig, locations: Sequence[str], refresh: bool
) -> tuple[str, str | None, str]:
    errors: list[str] = []
    for location in locations:
        try:
            if location == "headers":
                encoded, csrf = from_headers(req, config, refresh)
            elif location == "query_string":
                encoded, csrf = from_query_string(req, config, refresh)
            elif location == "cookies":
                encoded, csrf = await from_cookies(req, config, refresh)
            elif location == "json":
                encoded, csrf = await from_json(req, config, refresh)
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
    target: ProofTarget | None = None,
) -> tuple[Claims, Claims]:
    """Every check of a located token, in FJE's order, up to the user lookup (excluded):
    size, signature and claims, CSRF, type, freshness, revocation, verification loader.
    ``sent_with`` (the request and the token's location) adds the DPoP rules (``dpop``),
    for the method and URL ``target`` names (default: the request's own)."""
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
    if fresh and not tokens.is_fresh(claims, manager.now()):
        raise FreshTokenRequired("Fresh token required", header, claims)
    if not skip_revocation_check:
        await manager.check_revoked(header, claims)
    if manager.has_token_verification:
        await manager.check_custom(header, claims)
    if "cnf" in claims or (sent_with is not None and sent_with[1] == "headers"):
        await check_sent_token(sent_with, encoded, claims, target)
    return header, claims


def store(
    manager: JWTManager, header: Claims, claims: Claims, user: Any, location: str | None
) -> None:
    """Keep a verified token where ``get_jwt()`` and friends read it (the request's ``g``)."""
    vars(g._get_current_object()).update(
        _jwt_extended_jwt_user={"loaded_user": user} if manager.has_user_lookup else None,
        _jwt_extended_jwt_header=header,
        _jwt_extended_jwt=claims,
        _jwt_extended_jwt_location=location,
    )


async def check_and_load(
    manager: JWTManager,
    encoded: str,
    csrf_value: str | None,
    fresh: bool,
    refresh: bool,
    verify_type: bool,
    skip_revocation_check: bool,
    sent_with: tuple[Any, str] | None = None,
    target: ProofTarget | None = None,
) -> tuple[Claims, Claims, Any]:
    """:func:`check_token`, then the user lookup: ``(header, claims, loaded user)``."""
    header, claims = await check_token(
        manager,
        encoded,
        csrf_value,
        fresh,
        refresh,
        verify_type,
        skip_revocation_check,
        sent_with,
        target,
    )
    user = await manager.load_user(header, claims) if manager.has_user_lookup else None
    return header, claims, user


async def verify_and_store(
    manager: JWTManager,
    encoded: str,
    csrf_value: str | None,
    location: str | None,
    fresh: bool,
    refresh: bool,
    verify_type: bool,
    skip_revocation_check: bool,
    sent_with: tuple[Any, str] | None = None,
    target: ProofTarget | None = None,
) -> tuple[Claims, Claims]:
    """Verify a located token, load its user, and store them; stored only once every
    check and callback has succeeded (as FJE)."""
    header, claims, user = await check_and_load(
        manager,
        encoded,
        csrf_value,
        fresh,
        refresh,
        verify_type,
        skip_revocation_check,
        sent_with,
        target,
    )
    store(manager, header, claims, user, location)
    return header, claims
