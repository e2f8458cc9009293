"""JWTManager: configuration, overridable loaders, verification and error responses.

Every overridable behaviour is a default callback that a loader decorator swaps, as in
Flask-JWT-Extended. Any loader may be a plain function or a coroutine function.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import jwt
from quart import Quart, Response, jsonify, make_response

from . import tokens
from .config import DEFAULTS, JWTConfig, seconds
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
from .keys import KeySet, family
from .revocation import RevocationList
from .verifier import Rules, fast_verify

EXTENSION_KEY = "flask-jwt-extended"
F = TypeVar("F", bound=Callable[..., Any])
Claims = dict[str, Any]


async def call(func: Callable[..., Any], *args: Any) -> Any:
    """Call a loader that may be sync or async."""
    result = func(*args)
    if inspect.isawaitable(result):
        return await result
    return result


class JWTManager:
    """The async counterpart of ``flask_jwt_extended.JWTManager``."""

    def __init__(self, app: Quart | None = None, add_context_processor: bool = False) -> None:
        self._additional_claims: Callable[..., Any] = lambda identity: {}
        self._additional_headers: Callable[..., Any] = lambda identity: {}
        self._user_identity: Callable[..., Any] = lambda identity: identity
        self._user_lookup: Callable[..., Any] | None = None
        self._user_lookup_error: Callable[..., Any] = self._default_user_lookup_error
        self._token_in_blocklist: Callable[..., Any] | None = None
        self._token_verification: Callable[..., Any] | None = None
        self._token_verification_failed: Callable[..., Any] = self._default_verification_failed
        self._expired_token: Callable[..., Any] = self._default_expired
        self._invalid_token: Callable[..., Any] = self._default_invalid
        self._unauthorized: Callable[..., Any] = self._default_unauthorized
        self._needs_fresh_token: Callable[..., Any] = self._default_needs_fresh
        self._revoked_token: Callable[..., Any] = self._default_revoked
        self._decode_key: Callable[..., Any] | None = None
        self._encode_key: Callable[..., Any] | None = None
        self._config: JWTConfig | None = None
        self._keys: KeySet | None = None
        self._explicit_keys: KeySet | None = None
        self._rules: Rules | None = None
        self._app_config: Any = None
        #: The in-memory revocation mirror checked on every request (None: no built-in check).
        self.revocations: RevocationList | None = None
        # token string -> (header, claims, exp): tokens already verified by this worker.
        self._verified: dict[str, tuple[Claims, Claims, float | None]] = {}
        if app is not None:
            self.init_app(app, add_context_processor)

    # -- set-up ----------------------------------------------------------------------

    def init_app(self, app: Quart, add_context_processor: bool = False) -> None:
        app.extensions[EXTENSION_KEY] = self
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        self._app_config = app.config
        self._set_error_handlers(app)
        if add_context_processor:
            from .context import current_user

            app.context_processor(lambda: {"current_user": current_user})

    @property
    def config(self) -> JWTConfig:
        """The ``JWT_*`` settings, read once from the app's config."""
        if self._config is None:
            self._config = JWTConfig(self._app_config)
        return self._config

    def reload_config(self) -> None:
        """Re-read ``JWT_*`` settings (after changing ``app.config``) and forget cached tokens."""
        self._config = None
        self._rules = None
        self._keys = None
        self._verified.clear()

    def _set_error_handlers(self, app: Quart) -> None:
        async def respond(callback: Callable[..., Any], *args: Any) -> Response:
            return cast(Response, await make_response(await call(callback, *args)))

        async def no_auth(e: NoAuthorizationError | CSRFError) -> Response:
            return await respond(self._unauthorized, str(e))

        async def invalid(e: Exception) -> Response:
            return await respond(self._invalid_token, str(e))

        async def expired(e: jwt.ExpiredSignatureError) -> Response:
            header, data = getattr(e, "jwt_header", {}), getattr(e, "jwt_data", {})
            return await respond(self._expired_token, header, data)

        async def revoked(e: RevokedTokenError) -> Response:
            return await respond(self._revoked_token, e.jwt_header, e.jwt_data)

        async def needs_fresh(e: FreshTokenRequired) -> Response:
            return await respond(self._needs_fresh_token, e.jwt_header, e.jwt_data)

        async def lookup(e: UserLookupError) -> Response:
            return await respond(self._user_lookup_error, e.jwt_header, e.jwt_data)

        async def claims_failed(e: UserClaimsVerificationError) -> Response:
            return await respond(self._token_verification_failed, e.jwt_header, e.jwt_data)

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

    # -- default callbacks (FJE's texts and status codes) ----------------------------

    def _error(self, message: str, status: int) -> tuple[Response, int]:
        return jsonify({self.config.error_msg_key: message}), status

    def _default_expired(self, jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
        return self._error("Token has expired", 401)

    def _default_invalid(self, error_string: str) -> tuple[Response, int]:
        return self._error(error_string, 422)

    def _default_unauthorized(self, error_string: str) -> tuple[Response, int]:
        return self._error(error_string, 401)

    def _default_needs_fresh(self, jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
        return self._error("Fresh token required", 401)

    def _default_revoked(self, jwt_header: Claims, jwt_data: Claims) -> tuple[Response, int]:
        return self._error("Token has been revoked", 401)

    def _default_user_lookup_error(
        self, jwt_header: Claims, jwt_data: Claims
    ) -> tuple[Response, int]:
        identity = jwt_data[self.config.identity_claim_key]
        return self._error(f"Error loading the user {identity}", 401)

    def _default_verification_failed(
        self, jwt_header: Claims, jwt_data: Claims
    ) -> tuple[Response, int]:
        return self._error("User claims verification failed", 400)

    # -- loader decorators -----------------------------------------------------------

    def additional_claims_loader(self, callback: F) -> F:
        """``callback(identity) -> dict`` of claims added to every new token."""
        self._additional_claims = callback
        return callback

    def additional_headers_loader(self, callback: F) -> F:
        """``callback(identity) -> dict`` of JOSE headers added to every new token."""
        self._additional_headers = callback
        return callback

    def user_identity_loader(self, callback: F) -> F:
        """``callback(identity) -> JSON-serialisable`` value stored in the identity claim."""
        self._user_identity = callback
        return callback

    def user_lookup_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> user | None``; sets ``current_user``."""
        self._user_lookup = callback
        return callback

    def user_lookup_error_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> response`` when the lookup found no user."""
        self._user_lookup_error = callback
        return callback

    def token_in_blocklist_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> bool``: True means revoked.

        Runs after the built-in revocation check, which stays on.
        """
        self._token_in_blocklist = callback
        return callback

    def token_verification_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> bool``: False rejects the token."""
        self._token_verification = callback
        return callback

    def token_verification_failed_loader(self, callback: F) -> F:
        self._token_verification_failed = callback
        return callback

    def expired_token_loader(self, callback: F) -> F:
        self._expired_token = callback
        return callback

    def invalid_token_loader(self, callback: F) -> F:
        self._invalid_token = callback
        return callback

    def unauthorized_loader(self, callback: F) -> F:
        self._unauthorized = callback
        return callback

    def needs_fresh_token_loader(self, callback: F) -> F:
        self._needs_fresh_token = callback
        return callback

    def revoked_token_loader(self, callback: F) -> F:
        self._revoked_token = callback
        return callback

    def decode_key_loader(self, callback: F) -> F:
        """``callback(jwt_header, jwt_data) -> key`` used to verify a token."""
        self._decode_key = callback
        self._verified.clear()
        return callback

    def encode_key_loader(self, callback: F) -> F:
        """``callback(identity) -> key`` used to sign a new token."""
        self._encode_key = callback
        return callback

    # -- keys ------------------------------------------------------------------------

    @property
    def keys(self) -> KeySet:
        """The signing and verification keys (built from ``JWT_*`` settings unless set)."""
        if self._explicit_keys is not None:
            return self._explicit_keys
        if self._keys is None:
            config = self.config
            self._keys = KeySet.from_config(
                config.algorithm,
                secret=config.secret_key,
                private_key=config.private_key,
                public_key=config.public_key,
                decode_algorithms=config.decode_algorithms,
            )
        return self._keys

    @keys.setter
    def keys(self, keys: KeySet | None) -> None:
        """Use ``keys`` (e.g. a ``KeyDirectory``) instead of the ``JWT_*`` key settings."""
        self._explicit_keys = keys
        self._verified.clear()

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set of every public key still accepted (empty for HS* only)."""
        return self.keys.jwks()

    async def _decode_key_for(self, encoded: str) -> tuple[Any, tuple[str, ...]]:
        """The key to verify ``encoded`` with, and the algorithms it may be used with.

        Structural errors surface first, with PyJWT's texts, as in FJE. A key from the
        ``decode_key_loader`` is only offered to the algorithms of the token's family, a
        key of the key set only to its own family (see ``keys``): never algorithm confusion.
        """
        claims = tokens.unverified_claims(encoded)
        header = tokens.unverified_header(encoded)
        algorithms = self.config.decode_algorithms
        if self._decode_key is None:
            key, alg = self.keys.verification_key(header, algorithms)
            return key, (alg,)
        token_alg = header.get("alg")
        if not isinstance(token_alg, str) or token_alg not in algorithms:
            raise jwt.InvalidAlgorithmError("The specified alg value is not allowed")
        same_family = tuple(a for a in algorithms if family(a) == family(token_alg))
        return await call(self._decode_key, header, claims), same_family

    # -- encode / decode -------------------------------------------------------------

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
        config = self.config
        if expires_delta is None:
            expires_in = (
                config.access_expires if token_type == tokens.ACCESS else config.refresh_expires
            )
        else:
            expires_in = seconds(expires_delta, "expires_delta")
        headers = dict(await call(self._additional_headers, identity) or {})
        if additional_headers:
            headers.update(additional_headers)
        claims = dict(await call(self._additional_claims, identity) or {})
        if additional_claims:
            claims.update(additional_claims)
        if self._encode_key is not None:
            key = await call(self._encode_key, identity)
        else:
            signing = self.keys.signing_key(config.algorithm)
            key = signing.signing_key
            if signing.kid is not None:
                headers.setdefault("kid", signing.kid)
        return tokens.encode_token(
            identity=await call(self._user_identity, identity),
            key=key,
            algorithm=config.algorithm,
            token_type=token_type,
            expires_in=expires_in,
            fresh=fresh,
            csrf=config.csrf_protect,
            audience=config.encode_audience,
            issuer=config.encode_issuer,
            identity_claim_key=config.identity_claim_key,
            encode_nbf=config.encode_nbf,
            claims=claims,
            headers=headers,
        )

    @property
    def rules(self) -> Rules:
        if self._rules is None:
            config = self.config
            self._rules = Rules(
                algorithms=frozenset(config.decode_algorithms),
                required=config.required_claims,
                identity_claim_key=config.identity_claim_key,
                audience=config.decode_audience,
                issuer=config.decode_issuer,
                leeway=config.leeway,
                verify_sub=config.verify_sub,
            )
        return self._rules

    async def decode(self, encoded: str, allow_expired: bool = False) -> tuple[Claims, Claims]:
        """Verify ``encoded``; return ``(header, claims)``. Raises PyJWT's errors.

        Tokens verified before are answered from a bounded per-worker cache until their
        ``exp`` (a signature cannot change its verdict); revocation is checked by the
        caller on every request, cached or not. Well-formed tokens take the fast path
        (``verifier``); anything else gets PyJWT's full decode and its error texts.
        """
        cached = self._verified.get(encoded)
        if cached is not None:
            header, claims, exp = cached
            if exp is None or allow_expired or exp > time.time() - self.config.leeway:
                # Copies: a view that edits get_jwt() must not edit the cached entry.
                return dict(header), dict(claims)
            del self._verified[encoded]
            raise _expired(dict(header), dict(claims))
        fast = (
            fast_verify(encoded, self.keys, self.rules, allow_expired)
            if self._decode_key is None
            else None
        )
        if fast is not None:
            header, claims = fast
        else:
            header, claims = await self._full_decode(encoded, allow_expired)
        tokens.check_numeric_dates(claims)
        exp = claims.get("exp")
        # Not with a decode_key_loader: the key it returns may change (FJE asks it each time).
        cache_size = self.config.verified_cache_size if self._decode_key is None else 0
        if cache_size and not allow_expired and (exp is None or type(exp) in (int, float)):
            verified = self._verified
            if len(verified) >= cache_size:
                # Drop the oldest entry (dicts keep insertion order).
                del verified[next(iter(verified))]
            verified[encoded] = (dict(header), dict(claims), exp)
        return header, claims

    async def _full_decode(self, encoded: str, allow_expired: bool) -> tuple[Claims, Claims]:
        config = self.config
        key, algorithms = await self._decode_key_for(encoded)

        def run(allow_expired: bool) -> tuple[Claims, Claims]:
            return tokens.decode_complete(
                encoded,
                key=key,
                algorithms=algorithms,
                audience=config.decode_audience,
                issuer=config.decode_issuer,
                leeway=config.leeway,
                required_claims=config.required_claims,
                identity_claim_key=config.identity_claim_key,
                verify_sub=config.verify_sub,
                allow_expired=allow_expired,
            )

        try:
            return run(allow_expired)
        except jwt.ExpiredSignatureError as error:
            # As FJE: the expired_token_loader gets the expired token's header and claims.
            header, claims = run(True)
            raise _expired(header, claims) from error

    def cached(self, encoded: str) -> tuple[Claims, Claims] | None:
        """``(header, claims)`` of a token this worker verified before and that has not
        expired, without copying (callers must not modify them); None otherwise."""
        cached = self._verified.get(encoded)
        if cached is None:
            return None
        header, claims, exp = cached
        if exp is not None and exp <= time.time() - self.config.leeway:
            return None
        return header, claims

    @property
    def has_custom_checks(self) -> bool:
        """Whether a loader takes part in verification (blocklist, claims check, user lookup)."""
        return (
            self._token_in_blocklist is not None
            or self._token_verification is not None
            or self._user_lookup is not None
        )

    def forget_verified(self) -> None:
        """Drop every cached verification (after a key rotation)."""
        self._verified.clear()

    # -- checks after decoding (FJE's order) -----------------------------------------

    async def check_revoked(self, header: Claims, claims: Claims) -> None:
        revocations = self.revocations
        if revocations is not None and revocations.is_revoked(
            claims, self.config.identity_claim_key
        ):
            raise RevokedTokenError(header, claims)
        if self._token_in_blocklist is not None and await call(
            self._token_in_blocklist, header, claims
        ):
            raise RevokedTokenError(header, claims)

    async def check_custom(self, header: Claims, claims: Claims) -> None:
        if self._token_verification is not None and not await call(
            self._token_verification, header, claims
        ):
            raise UserClaimsVerificationError("User claims verification failed", header, claims)

    @property
    def has_token_verification(self) -> bool:
        return self._token_verification is not None

    @property
    def has_user_lookup(self) -> bool:
        return self._user_lookup is not None

    async def load_user(self, header: Claims, claims: Claims) -> Any:
        if self._user_lookup is None:
            return None
        user = await call(self._user_lookup, header, claims)
        if user is None:
            identity = claims.get(self.config.identity_claim_key)
            raise UserLookupError(f"Error loading the user {identity}", header, claims)
        return user


def _expired(header: Claims, claims: Claims) -> jwt.ExpiredSignatureError:
    error = jwt.ExpiredSignatureError("Signature has expired")
    error.jwt_header = header  # type: ignore[attr-defined]
    error.jwt_data = claims  # type: ignore[attr-defined]
    return error


def get_manager(app: Quart) -> JWTManager:
    try:
        return cast(JWTManager, app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError(
            "You must initialize a JWTManager with this quart application before using it"
        ) from None
