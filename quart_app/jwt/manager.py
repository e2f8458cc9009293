"""``JWTManager``: the async counterpart of ``flask_jwt_extended.JWTManager``, in one class.

What it holds for one app: the settings (one :class:`~quart_app.jwt.config.JWTConfig`
snapshot of ``app.config``, rebuilt after a write to a ``JWT_*`` key), what is derived from
them (the key set, the fast verifier's rules, the verified-token cache), the callbacks
(FJE's defaults in ``default_callbacks``, each replaced by its loader decorator below),
the revocation mirror, and the error handlers that answer through those callbacks.
Creating and verifying tokens are functions of the manager (``creation``, ``decoding``);
the methods of the same names call them. The FJE 3.x loader names come from
:class:`~quart_app.jwt.v3.V3LoaderNames`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import jwt
from quart import Quart, Response, make_response

from . import creation, decoding
from .config import DEFAULTS, V3_IDENTITY_CLAIM, V3_SETTINGS, JWTConfig
from .config_writes import WriteCounting, count_writes
from .context import current_user
from .default_callbacks import Callbacks, call
from .deprecation import deprecated
from .dpop import DPoPError, dpop_error_response
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
from .extension import EXTENSION_KEY, Claims, get_manager
from .fast_verify import Rules
from .keys import KeySet
from .revocation import RevocationList
from .v3 import V3LoaderNames, adapted
from .websocket import init_websockets

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["EXTENSION_KEY", "Claims", "F", "JWTManager", "call", "get_manager"]


def _checked_clock(clock: Any) -> Callable[[], float]:
    if not callable(clock):
        raise TypeError("clock must be a callable returning POSIX seconds, such as time.time")
    return cast(Callable[[], float], clock)


class JWTManager(V3LoaderNames):
    """Settings, loaders, token creation and verification of one Quart app."""

    def __init__(
        self,
        app: Quart | None = None,
        add_context_processor: bool = False,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.callbacks = Callbacks()
        self._clock = _checked_clock(clock)
        self._revocations: RevocationList | None = None
        #: token string -> (header, claims, exp): tokens this worker verified already.
        self.verified_tokens: dict[str, tuple[Claims, Claims, float | None]] = {}
        self._app_config: WriteCounting | None = None  # set by init_app
        #: Moves whenever the settings are rebuilt or a loader is set or replaced.
        self._generation = 0
        self._config: JWTConfig | None = None
        self._keys: KeySet | None = None
        self._explicit_keys: KeySet | None = None
        self._rules: Rules | None = None
        self._clock_skew = 0.0
        if app is not None:
            self.init_app(app, add_context_processor)

    def init_app(self, app: Quart, add_context_processor: bool = False) -> None:
        """Register with ``app`` (``app.extensions["flask-jwt-extended"]``), set FJE's
        ``JWT_*`` defaults, answer the extension's errors, and end sockets with their token."""
        app.extensions[EXTENSION_KEY] = self
        if "JWT_IDENTITY_CLAIM" not in app.config and any(k in app.config for k in V3_SETTINGS):
            # An app configured for FJE 3.x keeps 3.x's identity claim, so its tokens in
            # circulation stay valid.
            deprecated(
                "3.x settings without JWT_IDENTITY_CLAIM (identity claim 'identity')",
                "JWT_IDENTITY_CLAIM = 'sub', the 4.x default",
            )
            app.config["JWT_IDENTITY_CLAIM"] = V3_IDENTITY_CLAIM
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        self._watch(count_writes(app.config))
        self._set_error_handlers(app)
        init_websockets(app)
        if add_context_processor:
            app.context_processor(lambda: {"current_user": current_user})

    # -- settings and what is built from them ----------------------------------------

    @property
    def config(self) -> JWTConfig:
        """The ``JWT_*`` settings, as ``app.config`` holds them now."""
        config = self._config
        if config is None:
            config = self._rebuild()
        return config

    def _watch(self, app_config: WriteCounting) -> None:
        """Read the settings from ``app_config``; rebuild after each write to them."""
        self._app_config = app_config
        app_config.watch(self.reload_config)
        self._config = None

    def _rebuild(self) -> JWTConfig:
        app_config = self._app_config
        if app_config is None:
            raise RuntimeError("JWTManager.init_app(app) has not been called")
        self._changed()
        config = self._config = JWTConfig(app_config)
        return config

    def reload_config(self) -> None:
        """Re-read ``JWT_*`` settings and forget verified tokens.

        Writes to ``app.config`` are noticed without it; a value changed in place (a list
        appended to) is not.
        """
        self._config = None

    @property
    def generation(self) -> int:
        """A number that changes with the settings or the loaders (for callers' caches)."""
        self.config  # noqa: B018 - rebuilds the view if a setting was written
        return self._generation

    def _changed(self) -> None:
        """Forget everything built from the settings or checked with the loaders."""
        self._generation += 1
        self._config = None
        self._rules = None
        self._keys = None
        self.verified_tokens.clear()

    @property
    def rules(self) -> Rules:
        """What the fast verifier checks, from the decode settings."""
        config = self.config
        if self._rules is None:
            self._rules = Rules(
                algorithms=frozenset(config.decode_algorithms),
                required=config.required_claims,
                identity_claim_key=config.identity_claim_key,
                audience=config.decode_audience,
                issuer=config.decode_issuer,
                leeway=config.leeway,
                clock_skew=self._clock_skew,
                verify_sub=config.verify_sub,
            )
        return self._rules

    @property
    def clock_skew(self) -> float:
        """Seconds a token's ``iat``/``nbf`` may lie in the future (0, as FJE, by default).

        For a service whose hosts' clocks differ a little: a token issued by a host a
        second ahead is otherwise refused elsewhere as "not yet valid". ``exp`` is not
        affected: it keeps ``JWT_DECODE_LEEWAY`` alone.
        """
        return self._clock_skew

    @clock_skew.setter
    def clock_skew(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("clock_skew cannot be negative")
        self._clock_skew = float(seconds)
        self._changed()

    # -- time ------------------------------------------------------------------------

    @property
    def clock(self) -> Callable[[], float]:
        """What "now" is, in POSIX seconds (``time.time`` by default): the one time source
        of the extension.

        New tokens take ``iat``/``nbf``/``exp``/``fresh`` from it; verification checks
        them against it (the fast verifier, PyJWT's full decode, the verified-token cache,
        ``fresh``, the clock skew), and so do cookies' ``Expires``, the end of sockets at
        their token's ``exp``, keys' activation and retirement, the revocation mirror's
        pruning and DPoP proofs' ``iat`` and nonces (the key set, mirror and DPoP object
        follow it unless made with a clock of their own). Tests replace it to cross a
        lifetime without waiting.
        """
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._clock = _checked_clock(clock)

    def now(self) -> float:
        """The time by :attr:`clock` (pass ``manager.now`` where a clock is wanted: it
        follows a later change of the clock)."""
        return self._clock()

    @property
    def revocations(self) -> RevocationList | None:
        """The in-memory revocation mirror checked on every request (None: no built-in
        check). It prunes by this manager's clock."""
        return self._revocations

    @revocations.setter
    def revocations(self, mirror: RevocationList | None) -> None:
        if mirror is not None:
            mirror.adopt_clock(self.now)
        self._revocations = mirror

    @property
    def keys(self) -> KeySet:
        """The signing and verification keys (built from ``JWT_*`` settings unless set)."""
        if self._explicit_keys is not None:
            return self._explicit_keys
        config = self.config  # first: a changed setting drops the keys built from it
        keys = self._keys
        if keys is None:
            if config.jwks_url:
                # Deferred for start-up speed: httpx (resource-server mode) only when used.
                from .jwks import remote_key_set

                keys = remote_key_set(config)
            else:
                keys = KeySet.from_config(
                    config.algorithm,
                    secret=config.secret_key,
                    private_key=config.private_key,
                    public_key=config.public_key,
                    decode_algorithms=config.decode_algorithms,
                )
            keys.adopt_clock(self.now)
            self._keys = keys
        return keys

    @keys.setter
    def keys(self, keys: KeySet | None) -> None:
        """Use ``keys`` (e.g. a ``KeyDirectory``) instead of the ``JWT_*`` key settings; a
        set made without a clock of its own follows this manager's."""
        if keys is not None:
            keys.adopt_clock(self.now)
        self._explicit_keys = keys
        self._changed()

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set of every public key still accepted (empty for HS* only)."""
        return self.keys.jwks()

    def forget_verified(self) -> None:
        """Drop every cached verification (after a key rotation)."""
        self.verified_tokens.clear()

    # -- creating and verifying (``creation``, ``decoding``) --------------------------

    async def encode(
        self,
        identity: Any,
        token_type: str,
        *,
        fresh: Any = False,
        expires_delta: Any = None,
        additional_claims: dict[str, Any] | None = None,
        additional_headers: dict[str, Any] | None = None,
    ) -> str:
        """A signed token of ``token_type`` for ``identity`` (see ``creation.encode``)."""
        return await creation.encode(
            self,
            identity,
            token_type,
            fresh=fresh,
            expires_delta=expires_delta,
            additional_claims=additional_claims,
            additional_headers=additional_headers,
        )

    async def decode(self, encoded: str, allow_expired: bool = False) -> tuple[Claims, Claims]:
        """Verify ``encoded``; ``(header, claims)`` (see ``decoding.decode``)."""
        return await decoding.decode(self, encoded, allow_expired)

    def cached(self, encoded: str) -> tuple[Claims, Claims] | None:
        """``(header, claims)`` of a token verified before and unexpired, not copied."""
        return decoding.cached(self, encoded)

    async def check_revoked(self, header: Claims, claims: Claims) -> None:
        """Raise ``RevokedTokenError`` for a revoked token (mirror, then blocklist loader)."""
        await decoding.check_revoked(self, header, claims)

    async def check_custom(self, header: Claims, claims: Claims) -> None:
        """Raise ``UserClaimsVerificationError`` when the verification loader says False."""
        await decoding.check_custom(self, header, claims)

    async def load_user(self, header: Claims, claims: Claims) -> Any:
        """The user of the token (``user_lookup_loader``); ``UserLookupError`` for None."""
        return await decoding.load_user(self, header, claims)

    # -- loader decorators: each replaces one callback of ``default_callbacks`` -------

    def _set(self, name: str, callback: Callable[..., Any]) -> None:
        setattr(self.callbacks, name, callback)
        self._changed()

    def additional_claims_loader(self, callback: F) -> F:
        """``callback(identity) -> dict``: claims added to every new token (default none)."""
        self._set("additional_claims", callback)
        return callback

    def additional_headers_loader(self, callback: F) -> F:
        """``callback(identity) -> dict``: JOSE headers added to every new token."""
        self._set("additional_headers", callback)
        return callback

    def user_identity_loader(self, callback: F) -> F:
        """``callback(identity) -> JSON-serialisable``: what the identity claim holds
        (default: the identity as given)."""
        self._set("user_identity", callback)
        return callback

    def user_lookup_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> user | None``: the user of each verified
        token, for ``current_user``; None answers with the ``user_lookup_error_loader``."""
        self._set("user_lookup", callback)
        return callback

    def user_lookup_error_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> response`` when the lookup found no user
        (default: 401 ``Error loading the user <identity>``)."""
        self._set("user_lookup_error", callback)
        return callback

    def token_in_blocklist_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> bool``: True means revoked.

        Runs after the built-in revocation check, which stays on.
        """
        self._set("token_in_blocklist", callback)
        return callback

    def token_verification_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> bool``: False rejects the token."""
        self._set("token_verification", callback)
        return callback

    def token_verification_failed_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> response`` when the verification loader
        rejected the token (default: 400 ``User claims verification failed``)."""
        self._set("token_verification_failed", callback)
        return callback

    def expired_token_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> response`` for an expired token (default:
        401 ``Token has expired``); a 3.x ``callback(expired_token)`` is adapted."""
        old = "expired_token_loader(expired_token)"
        self._set("expired_token", adapted(callback, old, 1, lambda h, d: callback(d)))
        return callback

    def invalid_token_loader(self, callback: F) -> F:
        """``callback(error_string) -> response`` for a malformed or badly signed token
        (default: 422 with the error's text)."""
        self._set("invalid_token", callback)
        return callback

    def unauthorized_loader(self, callback: F) -> F:
        """``callback(error_string) -> response`` when no token was found, or CSRF failed
        (default: 401 with the error's text)."""
        self._set("unauthorized", callback)
        return callback

    def needs_fresh_token_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> response`` for a token that is not fresh
        (default: 401 ``Fresh token required``); a 3.x ``callback()`` is adapted."""
        old = "needs_fresh_token_loader()"
        self._set("needs_fresh_token", adapted(callback, old, 0, lambda h, d: callback()))
        return callback

    def revoked_token_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> response`` for a revoked token (default:
        401 ``Token has been revoked``); a 3.x ``callback()`` is adapted."""
        old = "revoked_token_loader()"
        self._set("revoked_token", adapted(callback, old, 0, lambda h, d: callback()))
        return callback

    def decode_key_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> key`` used to verify a token (asked on
        every verification: it turns the verified-token cache off)."""
        self._set("decode_key", callback)
        return callback

    def encode_key_loader(self, callback: F) -> F:
        """``callback(identity) -> key`` used to sign a new token."""
        self._set("encode_key", callback)
        return callback

    # -- which loaders are set -------------------------------------------------------

    @property
    def has_custom_checks(self) -> bool:
        """Whether a loader takes part in verification (blocklist, claims check, user lookup)."""
        callbacks = self.callbacks
        return (
            callbacks.token_in_blocklist is not None
            or callbacks.token_verification is not None
            or callbacks.user_lookup is not None
        )

    @property
    def has_token_verification(self) -> bool:
        """Whether a ``token_verification_loader`` is set."""
        return self.callbacks.token_verification is not None

    @property
    def has_user_lookup(self) -> bool:
        """Whether a ``user_lookup_loader`` is set."""
        return self.callbacks.user_lookup is not None

    # -- the one place where the extension's exceptions become responses ---------------

    def _set_error_handlers(self, app: Quart) -> None:
        """Answer each JWT failure with the callback its loader set (FJE's mapping)."""
        callbacks = self.callbacks

        async def respond(callback: Callable[..., Any], *args: Any) -> Response:
            return cast(Response, await make_response(await call(callback, *args)))

        async def no_auth(e: NoAuthorizationError | CSRFError) -> Response:
            return await respond(callbacks.unauthorized, str(e))

        async def invalid(e: Exception) -> Response:
            return await respond(callbacks.invalid_token, str(e))

        async def expired(e: jwt.ExpiredSignatureError) -> Response:
            header, data = getattr(e, "jwt_header", {}), getattr(e, "jwt_data", {})
            return await respond(callbacks.expired_token, header, data)

        async def revoked(e: RevokedTokenError) -> Response:
            return await respond(callbacks.revoked_token, e.jwt_header, e.jwt_data)

        async def needs_fresh(e: FreshTokenRequired) -> Response:
            return await respond(callbacks.needs_fresh_token, e.jwt_header, e.jwt_data)

        async def lookup(e: UserLookupError) -> Response:
            return await respond(callbacks.user_lookup_error, e.jwt_header, e.jwt_data)

        async def claims_failed(e: UserClaimsVerificationError) -> Response:
            return await respond(callbacks.token_verification_failed, e.jwt_header, e.jwt_data)

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
        # RFC 9449's 401: the DPoP challenge (and a fresh nonce), not a loader's answer.
        app.register_error_handler(DPoPError, dpop_error_response)
