"""OAuth endpoints for other services: introspection (RFC 7662), revocation (RFC 7009) and
the server's metadata (RFC 8414).

Introspection is for resource servers that would rather ask than verify: client
authentication by HTTP Basic against ``INTROSPECTION_CLIENTS`` (unset: 404). Revocation
needs no client authentication (holding a token is enough to give it up) and always
answers 200 with an empty body, whether the token was known or not (RFC 7009 2.2), so it
tells nothing about tokens. Both take ``application/x-www-form-urlencoded`` bodies, as
OAuth requires; anything else is a 400 with a JSON ``msg``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import parse_qsl, unquote_plus

import jwt
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Quart, Response, current_app, request
from quart_schema import DataSource, document_request, document_response

from ..accounts.events import SESSION_ENDED, SecurityEvent
from ..accounts.sessions import end_session, user_id_of
from ..errors import AppError
from ..jwt import JWTExtendedException, get_manager
from ..jwt.revocation import FAMILY_CLAIM, Revocation
from ..security.clients import IntrospectionClients, parse_clients
from ..security.passwords import Passwords
from ..security.throttle import request_client
from ..services import services
from .docs import UNAVAILABLE, EmptyBody, errors, public

bp = Blueprint("oauth", __name__)

CLIENTS_KEY = "quart_app.introspection_clients"
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
    introspection_endpoint: str
    introspection_endpoint_auth_methods_supported: list[str]
    revocation_endpoint: str
    revocation_endpoint_auth_methods_supported: list[str]


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
    if not await clients().authenticate(client_id, secret):
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
    if claims.get("type") not in TOKEN_TYPES:
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
    for name in ("iss", "aud"):
        if name in claims:
            answer[name] = claims[name]
    return answer


def _seconds(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
        svc = services()
        entries = [Revocation("jti", str(claims["jti"]), float(claims["exp"]))]
        family = claims.get(FAMILY_CLAIM)
        user_id = user_id_of(claims.get("sub"))
        if claims["type"] == "refresh" and isinstance(family, str) and family and user_id:
            entries.append(
                Revocation("family", family, time.time() + svc.sessions.lifetimes.horizon)
            )
            await end_session(
                user_id,
                family,
                reason="revoked",
                event=SecurityEvent(
                    SESSION_ENDED, user_id=user_id, session_id=family, client=request_client()
                ),
                extra=entries,
            )
        else:
            await svc.revocations.revoke(entries)
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
    """RFC 8414: the issuer and where its keys, introspection and revocation are."""
    issuer = current_app.config.get("JWT_ENCODE_ISSUER")
    base = request.host_url.rstrip("/")
    if isinstance(issuer, str) and issuer.startswith(("https://", "http://")):
        base = issuer.rstrip("/")
    else:
        issuer = issuer or base
    document = {
        "issuer": issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint": f"{base}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": ["none"],
    }
    return document, 200, {"Cache-Control": "public, max-age=300"}


def init_oauth(app: Quart, passwords: Passwords) -> None:
    """Read ``INTROSPECTION_CLIENTS`` once (start-up fails on a bad value)."""
    app.extensions[CLIENTS_KEY] = IntrospectionClients(
        parse_clients(app.config.get("INTROSPECTION_CLIENTS")), passwords
    )
