"""Pure encode/decode of tokens over PyJWT: no Quart, no app, no I/O."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import jwt

from .durations import after, is_duration
from .errors import JWTDecodeError

ACCESS = "access"
REFRESH = "refresh"

_jwt = jwt.PyJWT()


def encode_token(
    *,
    identity: Any,
    key: Any,
    algorithm: str,
    token_type: str,
    expires_delta: Any = None,
    fresh: Any = False,
    csrf: bool = False,
    audience: str | Iterable[str] | None = None,
    issuer: str | None = None,
    identity_claim_key: str = "sub",
    encode_nbf: bool = True,
    claims: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
    now: float | None = None,
    json_encoder: type[json.JSONEncoder] | None = None,
) -> str:
    """Build and sign a token with Flask-JWT-Extended's claim set.

    ``expires_delta`` (a timedelta, relativedelta, ...; None: no ``exp``) and a duration
    as ``fresh`` are counted from now.

    ``iat`` keeps sub-second precision so that a per-user "revoke everything issued
    before T" (password change) can tell a token issued just before T from one issued
    just after it; ``nbf`` and ``exp`` are whole seconds as usual.
    """
    now = time.time() if now is None else now
    if is_duration(fresh):
        fresh = after(now, fresh)
    data: dict[str, Any] = {
        "fresh": fresh,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "type": token_type,
        identity_claim_key: identity,
    }
    if encode_nbf:
        data["nbf"] = int(now)
    if csrf:
        data["csrf"] = str(uuid.uuid4())
    if audience:
        data["aud"] = audience if isinstance(audience, str) else list(audience)
    if issuer:
        data["iss"] = issuer
    if expires_delta is not None:
        data["exp"] = int(after(now, expires_delta))
    if claims:
        data.update(claims)
    return _jwt.encode(
        data,
        key,
        algorithm=algorithm,
        headers=dict(headers) if headers else None,
        json_encoder=json_encoder,
    )


def decode_complete(
    encoded: str,
    *,
    key: Any,
    algorithms: Iterable[str],
    audience: str | Iterable[str] | None = None,
    issuer: str | None = None,
    leeway: float = 0,
    required_claims: Iterable[str] = (),
    identity_claim_key: str = "sub",
    verify_sub: bool = True,
    allow_expired: bool = False,
    clock_skew: float = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``encoded`` and return ``(header, claims)``; raise PyJWT's errors otherwise.

    ``clock_skew`` widens ``leeway`` for ``iat`` and ``nbf`` only: ``exp`` is then checked
    again with ``leeway`` alone, as PyJWT does it.

    Only ``algorithms`` are accepted, whatever the token's own header says. Claims in
    ``required_claims`` get PyJWT's "Token is missing the ..." text; the identity claim,
    unless listed there, FJE's own check (``Missing claim: <key>``).
    """
    options = {
        "require": list(required_claims),
        "verify_aud": audience is not None,
        "verify_sub": verify_sub,
        "verify_exp": not allow_expired,
    }
    result = _jwt.decode_complete(
        encoded,
        key,
        algorithms=list(algorithms),
        options=options,  # type: ignore[arg-type]
        audience=audience,
        issuer=issuer,
        leeway=max(leeway, clock_skew),
    )
    claims: dict[str, Any] = result["payload"]
    # PyJWT's own exp check (api_jwt._validate_exp) again, with the exact leeway (exp is
    # known to be an integer by now).
    widened = clock_skew > leeway and not allow_expired and "exp" in claims
    if widened and int(claims["exp"]) <= time.time() - leeway:
        raise jwt.ExpiredSignatureError("Signature has expired")
    if identity_claim_key not in claims:
        raise JWTDecodeError(f"Missing claim: {identity_claim_key}")
    return result["header"], claims


def fill_defaults(claims: dict[str, Any]) -> None:
    """FJE's defaults for claims a decoded token lacks: ``type``, ``fresh`` and ``jti``."""
    if "type" not in claims:
        claims["type"] = ACCESS
    if "fresh" not in claims:
        claims["fresh"] = False
    if "jti" not in claims:
        claims["jti"] = None


#: RFC 7519 NumericDate claims, with PyJWT's names for them.
_NUMERIC_DATES = {
    "exp": "Expiration Time claim (exp)",
    "nbf": "Not Before claim (nbf)",
    "iat": "Issued At claim (iat)",
}
#: 9999-12-31T23:59:59Z: beyond it a date is an attack (or a bug), not a lifetime.
_MAX_NUMERIC_DATE = 253_402_300_799


def check_numeric_dates(claims: Mapping[str, Any]) -> None:
    """Refuse ``exp``/``nbf``/``iat`` that PyJWT lets through but no issuer of ours makes.

    PyJWT passes each through ``int()``, so it accepts digit strings and numbers past any
    float (``10**400``), which later code converting them to float would choke on. Runs
    once per token, before the token enters the verified cache.
    """
    for claim, name in _NUMERIC_DATES.items():
        if claim not in claims:
            continue
        value = claims[claim]
        if type(value) not in (int, float):
            raise JWTDecodeError(f"{name} must be an integer.")
        if not -_MAX_NUMERIC_DATE <= value <= _MAX_NUMERIC_DATE:
            raise JWTDecodeError(f"{name} is out of range")


def unverified_header(encoded: str) -> dict[str, Any]:
    """The token's header, not verified: only for choosing a key."""
    return jwt.get_unverified_header(encoded)


def unverified_claims(encoded: str) -> dict[str, Any]:
    """The token's claims, not verified: only for choosing a key.

    Raises PyJWT's errors for a token that is not well-formed (as FJE's first step does).
    """
    return _jwt.decode(encoded, options={"verify_signature": False})


def is_fresh(claims: Mapping[str, Any], now: float | None = None) -> bool:
    """FJE's ``fresh`` claim is either a bool or the time until which the token is fresh."""
    fresh = claims.get("fresh", False)
    if isinstance(fresh, bool):
        return fresh
    if isinstance(fresh, int | float):
        # FJE refuses when ``fresh < now``: the boundary second is still fresh.
        return fresh >= (time.time() if now is None else now)
    return False
