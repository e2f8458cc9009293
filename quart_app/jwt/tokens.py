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
    now: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``encoded`` and return ``(header, claims)``; raise PyJWT's errors otherwise.

    ``iat``, ``nbf`` and ``exp`` are checked against ``now`` (default: ``time.time()``) by
    :func:`check_dates`, not by PyJWT, which can only read the real clock: same order,
    same errors and texts. ``clock_skew`` widens ``leeway`` for ``iat`` and ``nbf`` only.

    Only ``algorithms`` are accepted, whatever the token's own header says. Claims in
    ``required_claims`` get PyJWT's "Token is missing the ..." text; the identity claim,
    unless listed there, FJE's own check (``Missing claim: <key>``).
    """
    required = list(required_claims)
    options = {
        "require": required,
        "verify_aud": audience is not None,
        "verify_sub": verify_sub,
        **_DATES_OFF,
    }
    moment = time.time() if now is None else now
    late: jwt.InvalidTokenError | None = None
    try:
        result = _jwt.decode_complete(
            encoded,
            key,
            algorithms=list(algorithms),
            options=options,  # type: ignore[arg-type]
            audience=audience,
            issuer=issuer,
        )
    except _AFTER_DATES as error:
        # A claim missing from ``required`` is found before the dates, as in PyJWT.
        if isinstance(error, jwt.MissingRequiredClaimError) and error.claim in required:
            raise
        late = error
    if late is not None:
        # PyJWT checks these after the dates (``_validate_claims``) and after the
        # signature: a date error of the same token comes first, as it would there.
        check_dates(unverified_claims(encoded), moment, leeway, clock_skew, allow_expired)
        raise late
    claims: dict[str, Any] = result["payload"]
    check_dates(claims, moment, leeway, clock_skew, allow_expired)
    if identity_claim_key not in claims:
        raise JWTDecodeError(f"Missing claim: {identity_claim_key}")
    return result["header"], claims


#: PyJWT reads the real clock: the date claims are checked by :func:`check_dates` instead.
_DATES_OFF = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
#: What PyJWT raises after its date checks (issuer, audience, subject, jti).
_AFTER_DATES = (
    jwt.InvalidIssuerError,
    jwt.InvalidAudienceError,
    jwt.exceptions.InvalidSubjectError,
    jwt.exceptions.InvalidJTIError,
    jwt.MissingRequiredClaimError,
)


def check_dates(
    claims: Mapping[str, Any],
    now: float,
    leeway: float = 0,
    clock_skew: float = 0,
    allow_expired: bool = False,
) -> None:
    """PyJWT's checks of ``iat``, ``nbf`` and ``exp`` (``api_jwt._validate_iat`` and its
    siblings: the same conversions, errors and texts), at ``now`` rather than the real
    time. ``iat``/``nbf`` may lie ``max(leeway, clock_skew)`` ahead, ``exp`` ``leeway``
    behind; ``allow_expired`` skips ``exp``."""
    early = max(leeway, clock_skew)
    if "iat" in claims:
        try:
            iat = int(claims["iat"])
        except (ValueError, TypeError, OverflowError):
            raise jwt.InvalidIssuedAtError("Issued At claim (iat) must be an integer.") from None
        if iat > now + early:
            raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")
    if "nbf" in claims:
        try:
            nbf = int(claims["nbf"])
        except (ValueError, TypeError, OverflowError):
            raise jwt.DecodeError("Not Before claim (nbf) must be an integer.") from None
        if nbf > now + early:
            raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
    if "exp" in claims and not allow_expired:
        try:
            exp = int(claims["exp"])
        except (ValueError, TypeError, OverflowError):
            raise jwt.DecodeError("Expiration Time claim (exp) must be an integer.") from None
        if exp <= now - leeway:
            raise jwt.ExpiredSignatureError("Signature has expired")


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
#: OpenID Connect's ``auth_time`` (the session's start): a number is range-checked like
#: the others; any other type is left to the revocation check, which fails closed on it.
SESSION_DATE = "auth_time"
#: 9999-12-31T23:59:59Z: beyond it a date is an attack (or a bug), not a lifetime.
_MAX_NUMERIC_DATE = 253_402_300_799


def numeric_date(value: Any) -> float | None:
    """``value`` as a NumericDate in seconds, or None when it is not one: only an int or a
    float (a bool is neither), finite, within +-9999-12-31. The one range check of every
    date claim, wherever a token is read."""
    if type(value) not in (int, float):
        return None
    # Compared as the int or float it is: float(10**400) would raise OverflowError, and
    # NaN fails every comparison.
    if not -_MAX_NUMERIC_DATE <= value <= _MAX_NUMERIC_DATE:
        return None
    return float(value)


def check_numeric_dates(claims: Mapping[str, Any]) -> None:
    """Refuse ``exp``/``nbf``/``iat`` (and a numeric ``auth_time``) that PyJWT lets through
    but no issuer of ours makes.

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
        if numeric_date(value) is None:
            raise JWTDecodeError(f"{name} is out of range")
    session = claims.get(SESSION_DATE)
    if type(session) in (int, float) and numeric_date(session) is None:
        raise JWTDecodeError("Authentication Time claim (auth_time) is out of range")


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
