"""Every ``JWT_*`` setting with Flask-JWT-Extended's default, read through one object.

``JWTManager.init_app`` puts these defaults into ``app.config`` with ``setdefault`` and
builds a :class:`JWTConfig` snapshot from it (again whenever a ``JWT_*`` key is written,
see ``config_writes``); the hot path reads plain attributes instead of looking keys up in the
config mapping on every request.

A bad value raises FJE's RuntimeError where FJE raises it: a bad ``JWT_TOKEN_LOCATION``
when a request looks for its token, a bad ``JWT_ACCESS_TOKEN_EXPIRES`` when an access
token is made, and so on; the rest of the extension keeps working meanwhile.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from .durations import expires_delta, leeway_seconds
from .keys import SUPPORTED_ALGORITHMS

DEFAULTS: dict[str, Any] = {
    "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=15),
    "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=30),
    "JWT_ALGORITHM": "HS256",
    "JWT_DECODE_ALGORITHMS": None,
    "JWT_SECRET_KEY": None,
    "JWT_PRIVATE_KEY": None,
    "JWT_PUBLIC_KEY": None,
    "JWT_TOKEN_LOCATION": ("headers",),
    "JWT_HEADER_NAME": "Authorization",
    "JWT_HEADER_TYPE": "Bearer",
    "JWT_QUERY_STRING_NAME": "jwt",
    "JWT_QUERY_STRING_VALUE_PREFIX": "",
    "JWT_JSON_KEY": "access_token",
    "JWT_REFRESH_JSON_KEY": "refresh_token",
    "JWT_ACCESS_COOKIE_NAME": "access_token_cookie",
    "JWT_REFRESH_COOKIE_NAME": "refresh_token_cookie",
    "JWT_ACCESS_COOKIE_PATH": "/",
    "JWT_REFRESH_COOKIE_PATH": "/",
    "JWT_COOKIE_SECURE": False,
    "JWT_COOKIE_SAMESITE": None,
    "JWT_COOKIE_DOMAIN": None,
    "JWT_SESSION_COOKIE": True,
    "JWT_COOKIE_CSRF_PROTECT": True,
    "JWT_CSRF_METHODS": ["POST", "PUT", "PATCH", "DELETE"],
    "JWT_CSRF_IN_COOKIES": True,
    "JWT_CSRF_CHECK_FORM": False,
    "JWT_ACCESS_CSRF_COOKIE_NAME": "csrf_access_token",
    "JWT_REFRESH_CSRF_COOKIE_NAME": "csrf_refresh_token",
    "JWT_ACCESS_CSRF_COOKIE_PATH": "/",
    "JWT_REFRESH_CSRF_COOKIE_PATH": "/",
    "JWT_ACCESS_CSRF_HEADER_NAME": "X-CSRF-TOKEN",
    "JWT_REFRESH_CSRF_HEADER_NAME": "X-CSRF-TOKEN",
    "JWT_ACCESS_CSRF_FIELD_NAME": "csrf_token",
    "JWT_REFRESH_CSRF_FIELD_NAME": "csrf_token",
    "JWT_ENCODE_AUDIENCE": None,
    "JWT_DECODE_AUDIENCE": None,
    "JWT_ENCODE_ISSUER": None,
    "JWT_DECODE_ISSUER": None,
    "JWT_DECODE_LEEWAY": 0,
    "JWT_IDENTITY_CLAIM": "sub",
    "JWT_ERROR_MESSAGE_KEY": "msg",
    "JWT_VERIFY_SUB": True,
    "JWT_ENCODE_NBF": True,
    # Not in FJE: claims a token must carry, refused with PyJWT's 'Token is missing the "exp"
    # claim' (422). FJE requires none but the identity claim ("Missing claim: sub").
    "JWT_REQUIRED_CLAIMS": (),
    # Not in FJE: how many verified tokens each worker remembers (0 disables the cache).
    "JWT_VERIFIED_CACHE_SIZE": 10_000,
    # Not in FJE: longer tokens are refused before any parsing (422).
    "JWT_MAX_TOKEN_LENGTH": 8192,
    # Not in FJE: the page origins whose WebSocket handshakes may authenticate by cookie
    # (a browser sends cookies with any site's WebSocket: cross-site WebSocket hijacking).
    "JWT_WEBSOCKET_ORIGINS": (),
    # Not in FJE: resource-server mode (see ``jwks``): verify with the public keys this
    # URL publishes; an unknown kid refetches them at most once per MIN_REFRESH seconds,
    # and they are refreshed in the background once CACHE seconds old.
    "JWT_JWKS_URL": None,
    "JWT_JWKS_MIN_REFRESH_SECONDS": 30.0,
    "JWT_JWKS_CACHE_SECONDS": 300.0,
    "JWT_JWKS_TIMEOUT_SECONDS": 5.0,
}

#: Flask-JWT-Extended 3.x settings, still read (``v3``), and 3.x's defaults.
V3_SETTINGS = ("JWT_BLACKLIST_ENABLED", "JWT_BLACKLIST_TOKEN_CHECKS", "JWT_USER_CLAIMS")
V3_IDENTITY_CLAIM = "identity"
V3_USER_CLAIMS = "user_claims"

VALID_LOCATIONS = frozenset({"headers", "cookies", "query_string", "json"})


def _names(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def token_locations(value: Any) -> tuple[str, ...]:
    """``JWT_TOKEN_LOCATION``, checked with FJE's texts."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable):
        raise RuntimeError("JWT_TOKEN_LOCATION must be a sequence or a set")
    locations = tuple(value)
    if not locations:
        raise RuntimeError(
            "JWT_TOKEN_LOCATION must contain at least one "
            'of "headers", "cookies", "query_string", or "json"'
        )
    if any(location not in VALID_LOCATIONS for location in locations):
        raise RuntimeError(
            'JWT_TOKEN_LOCATION can only contain "headers", "cookies", "query_string", or "json"'
        )
    return locations


def header_name(value: Any) -> str:
    if not value:
        # FJE's text, with the setting's 3.x name.
        raise RuntimeError("JWT_ACCESS_HEADER_NAME cannot be empty")
    return str(value)


#: Settings FJE checks where it uses them: a bad one raises there, and only there.
CHECKED_WHEN_USED = ("access_expires", "refresh_expires", "token_location", "header_name")


class JWTConfig:
    """A snapshot of the ``JWT_*`` settings of one app."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        get = config.__getitem__
        self.access_expires: Any = _checked(
            expires_delta, get("JWT_ACCESS_TOKEN_EXPIRES"), "JWT_ACCESS_TOKEN_EXPIRES"
        )
        self.refresh_expires: Any = _checked(
            expires_delta, get("JWT_REFRESH_TOKEN_EXPIRES"), "JWT_REFRESH_TOKEN_EXPIRES"
        )
        self.algorithm: str = get("JWT_ALGORITHM")
        # As FJE: JWT_ALGORITHM is always among the accepted algorithms.
        decode_algorithms = _names(get("JWT_DECODE_ALGORITHMS") or [self.algorithm])
        self.decode_algorithms = tuple(dict.fromkeys((*decode_algorithms, self.algorithm)))
        if any(alg.lower() == "none" for alg in self.decode_algorithms):
            raise RuntimeError("the 'none' algorithm is never accepted")
        unsupported = set(self.decode_algorithms) - SUPPORTED_ALGORITHMS
        if unsupported:
            raise RuntimeError(
                f"unsupported JWT algorithm(s) {sorted(unsupported)};"
                f" choose from {sorted(SUPPORTED_ALGORITHMS)}"
            )
        # As FJE: the app's SECRET_KEY when JWT_SECRET_KEY is unset.
        self.secret_key = get("JWT_SECRET_KEY") or config.get("SECRET_KEY")
        self.private_key = get("JWT_PRIVATE_KEY")
        self.public_key = get("JWT_PUBLIC_KEY")

        self.token_location: tuple[str, ...] = _checked(token_locations, get("JWT_TOKEN_LOCATION"))
        self.header_name: str = _checked(header_name, get("JWT_HEADER_NAME"))
        self.header_type: str = get("JWT_HEADER_TYPE")
        self.query_string_name: str = get("JWT_QUERY_STRING_NAME")
        self.query_string_value_prefix: str = get("JWT_QUERY_STRING_VALUE_PREFIX")
        self.json_key: str = get("JWT_JSON_KEY")
        self.refresh_json_key: str = get("JWT_REFRESH_JSON_KEY")

        self.access_cookie_name: str = get("JWT_ACCESS_COOKIE_NAME")
        self.refresh_cookie_name: str = get("JWT_REFRESH_COOKIE_NAME")
        self.access_cookie_path: str = get("JWT_ACCESS_COOKIE_PATH")
        self.refresh_cookie_path: str = get("JWT_REFRESH_COOKIE_PATH")
        self.cookie_secure: bool = get("JWT_COOKIE_SECURE")
        self.cookie_samesite: str | None = get("JWT_COOKIE_SAMESITE")
        self.cookie_domain: str | None = get("JWT_COOKIE_DOMAIN")
        self.session_cookie: bool = get("JWT_SESSION_COOKIE")
        self.csrf_protect: bool = get("JWT_COOKIE_CSRF_PROTECT")
        self.csrf_request_methods = frozenset(m.upper() for m in get("JWT_CSRF_METHODS"))
        self.csrf_in_cookies: bool = get("JWT_CSRF_IN_COOKIES")
        self.csrf_check_form: bool = get("JWT_CSRF_CHECK_FORM")
        self.access_csrf_cookie_name: str = get("JWT_ACCESS_CSRF_COOKIE_NAME")
        self.refresh_csrf_cookie_name: str = get("JWT_REFRESH_CSRF_COOKIE_NAME")
        self.access_csrf_cookie_path: str = get("JWT_ACCESS_CSRF_COOKIE_PATH")
        self.refresh_csrf_cookie_path: str = get("JWT_REFRESH_CSRF_COOKIE_PATH")
        self.access_csrf_header_name: str = get("JWT_ACCESS_CSRF_HEADER_NAME")
        self.refresh_csrf_header_name: str = get("JWT_REFRESH_CSRF_HEADER_NAME")
        self.access_csrf_field_name: str = get("JWT_ACCESS_CSRF_FIELD_NAME")
        self.refresh_csrf_field_name: str = get("JWT_REFRESH_CSRF_FIELD_NAME")

        self.encode_audience = get("JWT_ENCODE_AUDIENCE")
        self.decode_audience = get("JWT_DECODE_AUDIENCE")
        self.encode_issuer: str | None = get("JWT_ENCODE_ISSUER")
        self.decode_issuer: str | None = get("JWT_DECODE_ISSUER")
        self.leeway = leeway_seconds(get("JWT_DECODE_LEEWAY"))
        self.identity_claim_key: str = get("JWT_IDENTITY_CLAIM")
        self.error_msg_key: str = get("JWT_ERROR_MESSAGE_KEY")
        self.verify_sub: bool = get("JWT_VERIFY_SUB")
        self.encode_nbf: bool = get("JWT_ENCODE_NBF")
        self.required_claims = tuple(dict.fromkeys(_names(get("JWT_REQUIRED_CLAIMS"))))
        self.verified_cache_size: int = get("JWT_VERIFIED_CACHE_SIZE")
        self.max_token_length: int = get("JWT_MAX_TOKEN_LENGTH")
        self.jwks_url: str | None = get("JWT_JWKS_URL") or None
        self.jwks_min_refresh = float(get("JWT_JWKS_MIN_REFRESH_SECONDS"))
        self.jwks_cache_seconds = float(get("JWT_JWKS_CACHE_SECONDS"))
        self.jwks_timeout = float(get("JWT_JWKS_TIMEOUT_SECONDS"))
        self.websocket_origins = frozenset(
            origin.rstrip("/").lower() for origin in _names(get("JWT_WEBSOCKET_ORIGINS") or ())
        )
        # FJE 3.x: which token types the blocklist loader is asked about (None: every one,
        # as in 4.x), and where 3.x tokens nest the claims of user_claims_loader.
        self.blocklist_types = _blocklist_types(config)
        self.user_claims_key: str = config.get("JWT_USER_CLAIMS", V3_USER_CLAIMS)
        # FJE exempts OPTIONS (CORS preflight) from every check.
        self.exempt_methods = frozenset({"OPTIONS"})

        if self.problems:
            # Plain attributes when every setting is usable (the hot path reads them).
            self.__class__ = _RaisingJWTConfig

    @property
    def problems(self) -> list[str]:
        """FJE's texts for the settings that will raise when used (empty: all usable)."""
        values = [vars(self)[name] for name in CHECKED_WHEN_USED]
        return [str(value) for value in values if isinstance(value, RuntimeError)]


def _raising(name: str) -> property:
    def get(self: JWTConfig) -> Any:
        value = vars(self)[name]
        if isinstance(value, RuntimeError):
            raise RuntimeError(*value.args)
        return value

    return property(get)


#: A JWTConfig with an unusable setting: reading that one raises FJE's RuntimeError.
_RaisingJWTConfig = type(
    "RaisingJWTConfig", (JWTConfig,), {name: _raising(name) for name in CHECKED_WHEN_USED}
)


def _checked(check: Any, *args: Any) -> Any:
    """``check(*args)``, or the RuntimeError it raised, to be raised where it is used."""
    try:
        return check(*args)
    except RuntimeError as error:
        return error


def _blocklist_types(config: Mapping[str, Any]) -> frozenset[str] | None:
    present = [name for name in V3_SETTINGS if name in config]
    if present:
        warnings.warn(
            f"{', '.join(present)}: Flask-JWT-Extended 3.x settings; in 4.x a registered"
            " token_in_blocklist_loader is asked about every token (check jwt_data['type'])"
            " and additional claims are at the top level of the token",
            DeprecationWarning,
            stacklevel=2,
        )
    if config.get("JWT_BLACKLIST_ENABLED", True) is False:
        return frozenset()
    checks = config.get("JWT_BLACKLIST_TOKEN_CHECKS")
    return None if checks is None else frozenset(_names(checks))


def settings_problems(config: Mapping[str, Any]) -> list[str]:
    """One line per ``JWT_*`` setting of ``config`` (FJE's defaults for the missing ones)
    that cannot work: what a service checks before it starts."""
    try:
        return JWTConfig({**DEFAULTS, **config}).problems
    except (RuntimeError, TypeError, ValueError) as error:
        return [str(error)]
