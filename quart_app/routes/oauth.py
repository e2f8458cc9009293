"""OAuth endpoints for other services: the token endpoint (RFC 6749: the refresh_token and
client_credentials grants, DPoP-bound on request), introspection (RFC 7662), revocation
(RFC 7009) and the server's metadata (RFC 8414).

Introspection is for resource servers that would rather ask than verify: client
authentication by HTTP Basic against ``INTROSPECTION_CLIENTS`` (unset: 404). Revocation
needs no client authentication (holding a token is enough to give it up) and always
answers 200 with an empty body, whether the token was known or not (RFC 7009 2.2), so it
tells nothing about tokens. Both take ``application/x-www-form-urlencoded`` bodies, as
OAuth requires; anything else is a 400 with a JSON ``msg``.

``POST /oauth/token`` answers as RFC 6749 section 5 says (``{"error", "error_description"}``
on failure). Its clients are made with ``quart-app create-client`` and authenticate by
HTTP Basic or by ``client_id``/``client_secret`` in the form; every check of a secret is
throttled like a password check (``security.clients``). There is no password grant
(RFC 9700 section 2.4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import parse_qsl, unquote_plus

import jwt
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Quart, Response, current_app, jsonify, request
from quart_rate_limiter import RateLimitExceeded
from quart_schema import DataSource, document_request, document_response

from ..accounts.events import SESSION_ENDED
from ..accounts.sessions import revoke_token, user_id_of
from ..errors import HTTP_MESSAGES, AppError, Throttled, error_headers, http_error_response
from ..jwt import JWTExtendedException, create_access_token, get_manager
from ..jwt.dpop import ALGORITHMS, PROOF_KEY, DPoP, DPoPError, bound_thumbprint, init_dpop
from ..jwt.revocation import FAMILY_CLAIM
from ..jwt.tokens import numeric_date
from ..security.binding import request_binding
from ..security.client_address import client_address, limit_key, request_client
from ..security.clients import (
    ClientGuard,
    IntrospectionClients,
    digest_matches,
    parse_clients,
)
from ..security.passwords import Passwords
from ..services import services
from ..startup.settings import resolve_secret
from ..store.oauth import ClientStore, RedisReplayStore, SqlReplayStore
from .auth import rotate
from .openapi import UNAVAILABLE, EmptyBody, errors, public

bp = Blueprint("oauth", __name__)

CLIENTS_KEY = "quart_app.introspection_clients"
GUARD_KEY = "quart_app.client_guard"
GRANT_TYPES = ("refresh_token", "client_credentials")
FORM = "application/x-www-form-urlencoded"
TOKEN_TYPES = {"access": "access_token", "refresh": "refresh_token"}
BAD_CLIENT = "Invalid client credentials"
#: The parameters a form may carry (any other is ignored, as OAuth extensions may add some).
_MAX_FIELDS = 32


class TokenForm(BaseModel):
    token: str = Field(description="The token (access or refresh)")
    token_type_hint: str | None = Field(
        default=None, description="access_token or refresh_token (optional, a hint only)"
    )


class TokenIntrospection(BaseModel):
    """RFC 7662 section 2.2; only ``active`` for a token that is not active."""

    model_config = ConfigDict(extra="allow")
    active: bool
    sub: str | None = None
    username: str | None = None
    jti: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    token_type: str | None = Field(default=None, description="access_token or refresh_token")
    iss: str | None = None
    aud: str | list[str] | None = None


class OAuthMetadata(BaseModel):
    """RFC 8414 authorization server metadata."""

    issuer: str
    jwks_uri: str
    token_endpoint: str
    token_endpoint_auth_methods_supported: list[str]
    grant_types_supported: list[str]
    dpop_signing_alg_values_supported: list[str]
    introspection_endpoint: str
    introspection_endpoint_auth_methods_supported: list[str]
    revocation_endpoint: str
    revocation_endpoint_auth_methods_supported: list[str]


class TokenRequest(BaseModel):
    grant_type: str = Field(description="refresh_token or client_credentials")
    refresh_token: str | None = Field(default=None, description="refresh_token grant")
    client_id: str | None = Field(default=None, description="client_credentials (or Basic)")
    client_secret: str | None = Field(
        default=None, description="client_credentials (or HTTP Basic)"
    )
    scope: str | None = Field(default=None, description="Ignored (no scopes)")


class TokenAnswer(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: str = Field(description="Bearer, or DPoP when a DPoP proof was sent")
    expires_in: int
    refresh_token: str | None = Field(default=None, description="refresh_token grant only")


class TokenError(BaseModel):
    """RFC 6749 section 5.2."""

    error: str
    error_description: str


class OAuthError(Exception):
    """An RFC 6749 section 5.2 answer: ``{"error", "error_description"}``."""

    def __init__(
        self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}


def clients(app: Quart | None = None) -> IntrospectionClients:
    return cast(IntrospectionClients, (app or current_app).extensions[CLIENTS_KEY])


async def _form(*required: str) -> dict[str, str]:
    """The form's parameters, each at most once (RFC 6749 3.2), ``required`` ones present."""
    mimetype = (request.mimetype or "").lower()
    if mimetype != FORM:
        raise AppError(400, f"Request body must be {FORM}")
    body = cast(bytes, await request.get_data(as_text=False))
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise AppError(400, "Request body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise AppError(400, f"Parameter '{name}' is given more than once")
        form[name] = value
    for name in required:
        if not form.get(name):
            raise AppError(400, f"Missing '{name}' parameter")
    return form


async def _authenticate_client() -> None:
    auth = request.authorization
    challenge = {"WWW-Authenticate": 'Basic realm="introspection"'}
    if auth is None or auth.type != "basic":
        raise AppError(401, BAD_CLIENT, challenge)
    # RFC 6749 2.3.1: the id and secret are form-encoded before Basic's base64.
    client_id = unquote_plus(auth.username or "")
    secret = unquote_plus(auth.password or "")
    network = limit_key(client_address())
    if not await clients().authenticate(client_id, secret, network):
        raise AppError(401, BAD_CLIENT, challenge)


async def _verified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(header, claims)`` of a good, unexpired, unrevoked token of ours; None otherwise."""
    manager = get_manager(current_app)
    if len(token) > manager.config.max_token_length:
        return None
    try:
        header, claims = await manager.decode(token)
        await manager.check_revoked(header, claims)
    except (JWTExtendedException, jwt.InvalidTokenError):
        return None
    kind = claims.get("type")
    if not isinstance(kind, str) or kind not in TOKEN_TYPES:  # a list or dict is unhashable
        return None
    return header, claims


@bp.post("/oauth/introspect")
@public
@errors(400, 401, 404, 413, UNAVAILABLE)
@document_request(TokenForm, source=DataSource.FORM)
@document_response(TokenIntrospection)
async def introspect() -> tuple[dict[str, Any], int, dict[str, str]]:
    """RFC 7662: whether a token is active, and its claims (clients of
    ``INTROSPECTION_CLIENTS`` only, by HTTP Basic)."""
    if not clients().enabled:
        raise AppError(404, "Not found")
    await _authenticate_client()
    form = await _form("token")
    no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    verified = await _verified(form["token"])
    if verified is None or await _revoked_in_store(verified[1]):
        return {"active": False}, 200, no_store
    return _description(verified[1]), 200, no_store


def _token_error(error: OAuthError) -> Response:
    response = jsonify({"error": error.error, "error_description": error.description})
    response.status_code = error.status
    response.headers.update(error.headers)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.errorhandler(RateLimitExceeded)
async def _address_limited(error: RateLimitExceeded) -> Response:
    """The per-address limit (RATELIMIT_AUTH_*) on /oauth/token answers like its other
    errors, as documented; elsewhere in the blueprint, the service's ``{"msg"}``."""
    if request.endpoint != "oauth.token":
        return http_error_response(error)
    headers = error_headers(error)
    return _token_error(OAuthError("invalid_request", HTTP_MESSAGES[429], 429, headers))


@bp.post("/oauth/token")
@public
@errors(413, UNAVAILABLE)
@document_request(TokenRequest, source=DataSource.FORM)
@document_response(TokenAnswer)
@document_response(TokenError, 400)
@document_response(TokenError, 401)
@document_response(TokenError, 429)
async def token() -> Response:
    """RFC 6749 token endpoint: ``grant_type=refresh_token`` (the rotation of
    /token/refresh) or ``client_credentials`` (clients of ``quart-app create-client``, by
    HTTP Basic or form). A ``DPoP`` proof binds the tokens to its key. No password grant.
    """
    try:
        try:
            form = await _form()
        except AppError as error:
            raise OAuthError("invalid_request", error.msg) from None
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "Missing 'grant_type' parameter")
        if grant == "refresh_token":
            return await _refresh_grant(form)
        if grant == "client_credentials":
            return await _client_credentials_grant(form)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant[:64]!r} is not supported")
    except OAuthError as error:
        return _token_error(error)


async def _binding() -> Any:
    try:
        return await request_binding()
    except DPoPError as error:
        raise _proof_error(error) from None


def _proof_error(error: DPoPError) -> OAuthError:
    """RFC 9449 sections 5 and 8: a token endpoint answers a bad proof with 400."""
    headers = {"DPoP-Nonce": error.nonce} if error.nonce else {}
    code = "use_dpop_nonce" if error.error == "use_dpop_nonce" else "invalid_dpop_proof"
    return OAuthError(code, error.msg, 400, headers)


async def _refresh_grant(form: Mapping[str, str]) -> Response:
    encoded = form.get("refresh_token")
    if not encoded:
        raise OAuthError("invalid_request", "Missing 'refresh_token' parameter")
    manager = get_manager(current_app)
    try:
        if len(encoded) > manager.config.max_token_length:
            raise OAuthError("invalid_grant", "Token is too large")
        header, claims = await manager.decode(encoded)
        if claims.get("type") != "refresh":
            raise OAuthError("invalid_grant", "Only refresh tokens are allowed")
        if bound_thumbprint(claims) is not None:
            dpop = _dpop()
            proof = await dpop.check(
                scheme=None,
                proof_headers=request.headers.getlist("DPoP"),
                method=request.method,
                url=dpop.request_url(request),
                encoded=encoded,
                claims=claims,
            )
            setattr(request_globals(), PROOF_KEY, proof)
        binding = await _binding()
        return await rotate(header, claims, binding)
    except DPoPError as error:
        raise _proof_error(error) from None
    except jwt.ExpiredSignatureError:
        raise OAuthError("invalid_grant", "Token has expired") from None
    except (JWTExtendedException, jwt.InvalidTokenError) as error:
        raise OAuthError("invalid_grant", str(error) or "Invalid refresh token") from None


def request_globals() -> Any:
    from quart import g

    return g._get_current_object()


def _dpop() -> DPoP:
    from ..jwt.dpop import get_dpop

    return get_dpop(current_app)


def _client_credentials(form: Mapping[str, str]) -> tuple[str, str]:
    """``(client_id, secret)`` from HTTP Basic or the form, not both (RFC 6749 2.3.1)."""
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Client credentials given twice")
        # RFC 6749 2.3.1: the id and secret are form-encoded before Basic's base64.
        return unquote_plus(auth.username or ""), unquote_plus(auth.password or "")
    if "client_id" in form or "client_secret" in form:
        return form.get("client_id", ""), form.get("client_secret", "")
    raise OAuthError("invalid_client", BAD_CLIENT, 401, {"WWW-Authenticate": 'Basic realm="token"'})


async def _client_credentials_grant(form: Mapping[str, str]) -> Response:
    client_id, secret = _client_credentials(form)
    if not client_id or not secret:
        raise OAuthError("invalid_client", BAD_CLIENT, 401)
    guard: ClientGuard = current_app.extensions[GUARD_KEY]
    store = ClientStore(services().db)

    async def verify() -> bool | None:
        record = await store.get(client_id) if len(client_id) <= 64 else None
        if record is None:
            return None  # unknown: refused before any hash
        return digest_matches(record.secret_hash, secret)

    try:
        known = await guard.check(client_id, limit_key(client_address()), verify)
    except Throttled as throttled:
        raise OAuthError("invalid_client", throttled.msg, 429, throttled.headers) from None
    if not known:
        raise OAuthError("invalid_client", BAD_CLIENT, 401)
    binding = await _binding()
    access = await create_access_token(
        client_id, additional_claims={"client_id": client_id, **binding.claims}
    )
    response = jsonify(
        {
            "access_token": access,
            "token_type": binding.token_type,
            "expires_in": int(services().config["JWT_ACCESS_TOKEN_EXPIRES"]),
        }
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


async def _revoked_in_store(claims: Mapping[str, Any]) -> bool:
    """Ask the shared store too: a revocation made on another worker a moment ago may not
    have reached this worker's mirror yet, and introspection is asked to be sure."""
    svc = services()
    store = svc.revocations.store
    if await store.contains("jti", str(claims.get("jti"))):
        return True
    family = claims.get(FAMILY_CLAIM)
    if claims.get("type") == "refresh":
        # A refresh token lives while it is its live session's token to spend.
        user_id, jti = user_id_of(claims.get("sub")), claims.get("jti")
        if not isinstance(family, str) or user_id is None or not isinstance(jti, str):
            return True
        return not await svc.sessions.spendable(family, user_id, jti)
    return isinstance(family, str) and bool(family) and await store.contains("family", family)


def _description(claims: Mapping[str, Any]) -> dict[str, Any]:
    identity = get_manager(current_app).config.identity_claim_key
    answer: dict[str, Any] = {
        "active": True,
        "sub": claims.get(identity),
        "username": claims.get("username"),
        "jti": claims.get("jti"),
        "exp": _seconds(claims.get("exp")),
        "iat": _seconds(claims.get("iat")),
        "token_type": TOKEN_TYPES[claims["type"]],
    }
    if "nbf" in claims:
        answer["nbf"] = _seconds(claims["nbf"])
    for name in ("iss", "aud", "cnf", "client_id"):
        if name in claims:
            answer[name] = claims[name]
    return answer


def _seconds(value: Any) -> int | None:
    seconds = numeric_date(value)
    return None if seconds is None else int(seconds)


@bp.post("/oauth/revoke")
@public
@errors(400, 413, UNAVAILABLE)
@document_request(TokenForm, source=DataSource.FORM)
@document_response(EmptyBody)
async def revoke() -> Response:
    """RFC 7009: revoke a token; a refresh token takes its whole login (every access and
    refresh token of it) along. 200 with an empty body, even for an unknown token."""
    form = await _form("token")
    verified = await _verified(form["token"])
    if verified is not None:
        claims = verified[1]
        await revoke_token(
            claims,
            float(claims["exp"]),
            login=claims["type"] == "refresh",
            reason="revoked",
            kind=SESSION_ENDED,
            client=request_client(),
        )
    return _empty()


def _empty() -> Response:
    response = current_app.response_class(b"", status=200)
    del response.headers["Content-Type"]
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/.well-known/oauth-authorization-server")
@public
@document_response(OAuthMetadata)
async def metadata() -> tuple[dict[str, Any], int, dict[str, str]]:
    """RFC 8414: the issuer and where its keys and endpoints are.

    From ``PUBLIC_URL`` (or a URL ``JWT_ENCODE_ISSUER``), never from ``Host``; where
    neither is set the request's own URL is used, answered with ``Vary: Host`` and
    ``no-store`` so no cache hands one client's ``Host`` to another.
    """
    base, configured = public_base(current_app.config)
    issuer = current_app.config.get("JWT_ENCODE_ISSUER")
    if base is None:
        base = request.host_url.rstrip("/")
    if not isinstance(issuer, str) or not issuer:
        issuer = base
    document = {
        "issuer": issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}/oauth/token",
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": list(GRANT_TYPES),
        "dpop_signing_alg_values_supported": list(ALGORITHMS),
        "introspection_endpoint": f"{base}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint": f"{base}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": ["none"],
    }
    if configured:
        return document, 200, {"Cache-Control": "public, max-age=300"}
    return document, 200, {"Cache-Control": "no-store", "Vary": "Host"}


def public_base(config: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The service's public base URL from its settings (``PUBLIC_URL``, else a URL
    ``JWT_ENCODE_ISSUER``), and whether there was one."""
    for name in ("PUBLIC_URL", "JWT_ENCODE_ISSUER"):
        value = config.get(name)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value.rstrip("/"), True
    return None, False


def init_oauth(app: Quart, passwords: Passwords) -> None:
    """Read ``INTROSPECTION_CLIENTS`` once (start-up fails on a bad value); one client guard
    (throttling, the client-secret hashing queue) for introspection and the token endpoint."""
    guard = ClientGuard(
        services(app).logins, int(app.config.get("CLIENT_SECRET_HASH_CONCURRENCY", 1))
    )
    app.extensions[GUARD_KEY] = guard
    app.extensions[CLIENTS_KEY] = IntrospectionClients(
        parse_clients(app.config.get("INTROSPECTION_CLIENTS")), passwords, guard
    )


def init_dpop_service(app: Quart, db: Any, breaker: Any) -> RedisReplayStore | None:
    """The extension's DPoP checks with the service's settings and shared replay store
    (Redis when configured, SQL otherwise); returns the Redis store to close, if any."""
    config = app.config
    secret: str | bytes | None = config.get("DPOP_NONCE_SECRET")
    if not secret and config.get("DPOP_NONCE_REQUIRED"):
        # Every worker and host sharing the JWT secret file makes the same nonces.
        base = resolve_secret({**config, "JWT_SECRET_KEY": None})
        secret = hashlib.sha256(f"dpop-nonce\0{base}".encode()).hexdigest()
    sql = SqlReplayStore(db)
    store: Any = sql
    redis_store = None
    if config.get("REDIS_URL") and breaker is not None:
        client = breaker.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        store = redis_store = RedisReplayStore(client, str(config["REDIS_PREFIX"]), sql)
    public, _ = public_base(config)
    init_dpop(
        app,
        DPoP(
            store=store,
            max_age=float(config["DPOP_PROOF_MAX_AGE"]),
            skew=float(config["JWT_CLOCK_SKEW_SECONDS"]),
            nonce_required=bool(config["DPOP_NONCE_REQUIRED"]),
            nonce_secret=secret.encode() if isinstance(secret, str) else secret,
            public_url=public if config.get("PUBLIC_URL") else None,
        ),
    )
    return redis_store
