"""Forward authentication: a gateway asks this app whether a request's bearer token is good.

nginx ``auth_request``, Traefik ``ForwardAuth`` and Envoy's ``ext_authz`` HTTP service all
send the client's ``Authorization`` header to one URL and let the request through on a
2xx, copying chosen response headers to the upstream. :func:`forward_auth_route` declares
that URL as a claims-only route (``quart_app.jwt.claims_routes``), answered for every method
(gateways forward the client's, OPTIONS included, which ``jwt_required`` would exempt),
and for every path below it too (Envoy's ``ext_authz`` appends the request's path):

* 200, empty body, ``X-Auth-Subject`` (the identity claim), ``X-Auth-Username``,
  ``X-Auth-Token-Id`` (jti) and ``X-Auth-Expires`` (exp, integer seconds);
* a DPoP-bound token (RFC 9449) needs ``Authorization: DPoP`` and a proof naming the
  client's request: its method and URL as the gateway forwards them
  (``X-Forwarded-Method``, ``X-Forwarded-Proto``, ``X-Forwarded-Host``,
  ``X-Original-URI`` or ``X-Forwarded-Uri``; see ``dpop.forwarded_target``), refused
  with a ``DPoP`` challenge;
* every failure 401 (nginx turns any status but 2xx/401/403 into a 500 for its client)
  with Flask-JWT-Extended's ``msg`` and an RFC 6750 section 3 challenge: a bare
  ``Bearer`` when no ``Authorization`` header came at all, ``error="invalid_request"``
  for a malformed header, ``error="invalid_token"`` for a bad, expired, revoked or
  refresh token, each with the ``msg`` as ``error_description``.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import jwt
from quart import Blueprint, Quart, Response, current_app, jsonify, request

from .claims_routes import ClaimsResponse, ClaimsView, claims_route
from .dpop import DPoPError, forwarded_target
from .dpop import challenge as dpop_challenge
from .errors import (
    InvalidHeaderError,
    JWTExtendedException,
    NoAuthorizationError,
    RevokedTokenError,
)
from .extension import get_manager
from .locate import from_headers, verify_and_store

#: What gateways forward: the client's method, whatever it is.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SUBJECT = "X-Auth-Subject"
USERNAME = "X-Auth-Username"
TOKEN_ID = "X-Auth-Token-Id"
EXPIRES = "X-Auth-Expires"

# RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"', no '\').
_DESCRIPTION_SAFE = frozenset(string.printable[:-5]) - {'"', "\\"}
_HEADER_SAFE = "".join(sorted(set(string.printable[:-5]) - {"%"}))


class BearerChallengeError(JWTExtendedException):
    """A forward-auth request failed: answered 401 with ``msg`` and ``challenge``."""

    def __init__(self, msg: str, challenge: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.challenge = challenge


def challenge(error: str | None = None, description: str | None = None) -> str:
    """The ``WWW-Authenticate`` value for an RFC 6750 error (bare ``Bearer`` without one)."""
    if error is None:
        return "Bearer"
    text = f'Bearer error="{error}"'
    if description:
        safe = "".join(
            c if c in _DESCRIPTION_SAFE else "'" if c == '"' else "?" for c in description
        )
        text += f', error_description="{safe}"'
    return text


async def verify_bearer() -> Mapping[str, Any]:
    """The claims of the request's access token, for any method; else BearerChallengeError.

    The same checks as ``jwt_required()`` with the token in the header (Flask-JWT-Extended's
    order and texts), without its OPTIONS exemption.
    """
    manager = get_manager(current_app)
    config = manager.config
    try:
        encoded, _ = from_headers(request, config, False)
        # Where jwt_required() keeps them: get_jwt(), current_user and the request log see them.
        _, claims = await verify_and_store(
            manager,
            encoded,
            None,
            "headers",
            fresh=False,
            refresh=False,
            verify_type=True,
            skip_revocation_check=False,
            sent_with=(request, "headers"),
            target=_proof_target,
        )
    except DPoPError as error:
        raise BearerChallengeError(error.msg, dpop_challenge(error.error, error.msg)) from None
    except NoAuthorizationError as error:
        if config.header_name not in request.headers:
            raise BearerChallengeError(str(error), challenge()) from None
        raise BearerChallengeError(str(error), challenge("invalid_request", str(error))) from None
    except InvalidHeaderError as error:
        raise BearerChallengeError(str(error), challenge("invalid_request", str(error))) from None
    except jwt.ExpiredSignatureError:
        raise _invalid_token("Token has expired") from None
    except RevokedTokenError:
        raise _invalid_token("Token has been revoked") from None
    except (JWTExtendedException, jwt.InvalidTokenError) as error:
        raise _invalid_token(str(error)) from None
    return claims


def _proof_target() -> tuple[str, str]:
    """What a DPoP proof must name here: the request the gateway asks about (its method
    and URL, from the forwarded headers: ``dpop.forwarded_target``)."""
    raw = request.scope.get("raw_path") or request.path.encode()
    return forwarded_target(
        lambda name: request.headers.get(name),
        request.method,
        request.scheme,
        request.host,
        raw.decode("latin-1").split("?", 1)[0],
        str(request.url_rule.rule).split("/<", 1)[0] if request.url_rule else "/",
    )


def _invalid_token(msg: str) -> BearerChallengeError:
    return BearerChallengeError(msg, challenge("invalid_token", msg))


def _header_value(value: Any) -> str:
    text = str(value)
    if text.isascii() and text.isprintable() and "%" not in text:
        return text
    return quote(text, safe=_HEADER_SAFE)  # never a raw CR/LF or non-latin-1 byte


class SubjectHeaders:
    """The success answer: 200, an empty body and the ``X-Auth-*`` headers of the claims.

    Called by the fast path outside any app context, so it is told the identity claim
    (``JWT_IDENTITY_CLAIM``) instead of reading it from the app.
    """

    def __init__(self, identity_claim: str = "sub") -> None:
        self.identity_claim = identity_claim

    def __call__(self, claims: Mapping[str, Any]) -> ClaimsResponse:
        headers = {SUBJECT: _header_value(claims.get(self.identity_claim))}
        if claims.get("username") is not None:
            headers[USERNAME] = _header_value(claims["username"])
        if claims.get("jti") is not None:
            headers[TOKEN_ID] = _header_value(claims["jti"])
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            headers[EXPIRES] = str(int(exp))
        return ClaimsResponse(headers=headers)


subject_headers = SubjectHeaders()


async def challenge_response(error: BearerChallengeError) -> Response:
    response = jsonify({get_manager(current_app).config.error_msg_key: error.msg})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = error.challenge
    return response


def forward_auth_route(
    target: Quart | Blueprint, rule: str = "/auth/verify", **options: Any
) -> Callable[[ClaimsView], ClaimsView]:
    """Declare the forward-auth URL (and every path below it); decorate ``subject_headers``
    (or a view of your own returning a :class:`ClaimsResponse`)::

        forward_auth_route(app)(subject_headers)
    """
    target.register_error_handler(BearerChallengeError, challenge_response)
    return claims_route(
        target,
        rule,
        methods=ALL_METHODS,
        verify=verify_bearer,
        subpaths=True,
        proof_target=forwarded_target,
        **options,
    )
